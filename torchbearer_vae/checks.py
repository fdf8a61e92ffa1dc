"""Argument checks, one implementation for the whole package, and the words messages use for values and counts.

The rule: a value of the wrong *type* raises :class:`TypeError`; a value of the right type but
the wrong *value* (out of range, not finite, not one of the choices) raises :class:`ValueError`.
``bool`` is never accepted as a number. Every message names the argument, what it must be and
what it got.
"""
import math
import numbers
import os
from typing import Any, Callable, Iterable, Literal, Optional, Sequence, Tuple, TypeVar, Union, overload

__all__ = []  # internal

_Callable = TypeVar('_Callable', bound=Callable[..., Any])
_Path = TypeVar('_Path', bound=Union[str, 'os.PathLike[str]'])


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f'a {type(value).__name__}'


@overload
def check_int(name: str, value: Any, *, minimum: Optional[int] = ..., allow_none: Literal[False] = ...) -> int: ...
@overload
def check_int(name: str, value: Any, *, minimum: Optional[int] = ..., allow_none: bool) -> Optional[int]: ...


def check_int(name: str, value: Any, *, minimum: Optional[int] = None, allow_none: bool = False) -> Optional[int]:
    """``value`` if it is an int (not a bool) ``>= minimum``; else TypeError (type) or ValueError (range)."""
    if value is None and allow_none:
        return None
    bound = f' >= {minimum}' if minimum is not None else ''
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f'{name} must be an int{bound}, got {_got(value)}')
    if minimum is not None and value < minimum:
        raise ValueError(f'{name} must be an int{bound}, got {value!r}')
    return int(value)


@overload
def check_number(name: str, value: Any, *, minimum: Optional[float] = ..., above: Optional[float] = ...,
                 maximum: Optional[float] = ..., below: Optional[float] = ...,
                 allow_none: Literal[False] = ...) -> float: ...
@overload
def check_number(name: str, value: Any, *, minimum: Optional[float] = ..., above: Optional[float] = ...,
                 maximum: Optional[float] = ..., below: Optional[float] = ...,
                 allow_none: bool) -> Optional[float]: ...


def check_number(name: str, value: Any, *, minimum: Optional[float] = None, above: Optional[float] = None,
                 maximum: Optional[float] = None, below: Optional[float] = None,
                 allow_none: bool = False) -> Optional[float]:
    """``float(value)`` for a finite real number (not a bool) within the bounds.

    ``minimum``/``maximum`` are inclusive bounds, ``above``/``below`` exclusive ones.
    """
    if value is None and allow_none:
        return None
    bounds = [text for bound, text in ((minimum, f'>= {minimum:g}' if minimum is not None else ''),
                                       (above, f'> {above:g}' if above is not None else ''),
                                       (maximum, f'<= {maximum:g}' if maximum is not None else ''),
                                       (below, f'< {below:g}' if below is not None else '')) if bound is not None]
    wanted = 'a finite number' + (' ' + ' and '.join(bounds) if bounds else '')
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f'{name} must be {wanted}, got {_got(value)}')
    number = float(value)
    if (not math.isfinite(number) or (minimum is not None and number < minimum)
            or (above is not None and number <= above) or (maximum is not None and number > maximum)
            or (below is not None and number >= below)):
        raise ValueError(f'{name} must be {wanted}, got {number!r}')
    return number


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``; else TypeError."""
    if not isinstance(value, bool):
        raise TypeError(f'{name} must be True or False, got {_got(value)}')
    return value


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of the strings ``choices`` (as torchvision's ``verify_str_arg``)."""
    listed = ', '.join(map(repr, choices))
    if not isinstance(value, str):
        raise TypeError(f'{name} must be one of {listed}, got {_got(value)}')
    if value not in choices:
        raise ValueError(f'{name} must be one of {listed}, got {value!r}')
    return value


@overload
def check_callable(name: str, value: _Callable, *, allow_none: bool = ..., how: str = ...) -> _Callable: ...
@overload
def check_callable(name: str, value: Any, *, allow_none: bool, how: str = ...) -> Optional[Callable[..., Any]]: ...


def check_callable(name: str, value: Any, *, allow_none: bool = False, how: str = '') -> Optional[Callable[..., Any]]:
    """``value`` if it is callable (``how`` describes the call, e.g. ``'as f(state)'``)."""
    if value is None and allow_none:
        return None
    if not callable(value):
        raise TypeError(f'{name} must be callable{" " + how if how else ""}, got {_got(value)}')
    function: Callable[..., Any] = value
    return function


def check_range(name: str, value: Any) -> Tuple[float, float]:
    """``(low, high)``: two finite numbers with ``low < high``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f'{name} must be two numbers (low, high), got {_got(value)}')
    values = list(value)
    if len(values) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in values):
        raise TypeError(f'{name} must be two numbers (low, high), got {_got(value)}')
    low, high = float(values[0]), float(values[1])
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f'{name} must be two finite numbers with low < high, got {_got(value)}')
    return low, high


def check_shape(name: str, value: Any, *, ndim: Optional[int] = None, example: str = '(1, 28, 28)') -> Tuple[int, ...]:
    """A shape: an int or a sequence of ints >= 1 (of ``ndim`` of them if given), as a tuple."""
    wanted = (f'{ndim} ints >= 1, e.g. {example}' if ndim is not None
              else f'an int >= 1 or a sequence of them, e.g. {example}')
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and ndim in (None, 1):
        value = (value,)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f'{name} must be {wanted}, got {_got(value)}')
    shape = tuple(value)
    if not shape or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) for d in shape):
        raise TypeError(f'{name} must be {wanted}, got {_got(value)}')
    if any(d < 1 for d in shape) or (ndim is not None and len(shape) != ndim):
        raise ValueError(f'{name} must be {wanted}, got {_got(value)}')
    return tuple(int(d) for d in shape)


def check_path(name: str, value: _Path) -> _Path:
    """``value`` if it is a path (str or ``os.PathLike``); else TypeError."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f'{name} must be a path (str or os.PathLike), got {_got(value)}')
    return value


def describe(value: Any) -> str:
    """A short description of a value for an error message: a tensor's dtype and shape, else its type."""
    shape = getattr(value, 'shape', None)
    if shape is not None and hasattr(value, 'dtype'):
        return f'a {value.dtype} {type(value).__name__} of shape {tuple(shape)}'
    return f'a {type(value).__name__}'


def plural(count: int, noun: str, nouns: Optional[str] = None) -> str:
    """``count`` and ``noun``, agreeing: '1 image', '2 images', '10,000 images'; ``nouns`` when not ``noun + 's'``.

    Every message that counts something says it with this, so that none reads "1 images".
    """
    return f'{count:,} {noun if count == 1 else nouns or noun + "s"}'
