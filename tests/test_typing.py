"""The package is typed: mypy finds no error, and every public callable says its types.

mypy's configuration is ``[tool.mypy]`` in pyproject.toml. The second check needs no mypy: it reads the
annotations of what the package exports (each module's ``__all__``) with :mod:`inspect`, the way a user's
type checker and IDE see them, and the last test runs it on a made-up function to show that it can fail.
"""
import importlib
import inspect
import pathlib
import pkgutil
import subprocess
import sys
from typing import Any, Iterator, List, Optional, Tuple

import pytest

import torchbearer_vae

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_mypy_reports_no_error(tmp_path):
    result = subprocess.run([sys.executable, '-m', 'mypy', '--cache-dir', str(tmp_path), 'torchbearer_vae'],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr


def _modules() -> Iterator[Any]:
    """The package and each of its modules (not ``__main__``, which runs the command line)."""
    yield torchbearer_vae
    for info in pkgutil.walk_packages(torchbearer_vae.__path__, prefix='torchbearer_vae.'):
        if not info.name.endswith('.__main__'):
            yield importlib.import_module(info.name)


def _ours(function: Any) -> bool:
    return getattr(function, '__module__', '').split('.')[0] == 'torchbearer_vae'


def _methods(cls: type) -> Iterator[Tuple[str, Any]]:
    """The public methods (and properties) of ``cls`` that the package defines."""
    for name, member in inspect.getmembers(cls):
        if name.startswith('_'):
            continue
        function = member.fget if isinstance(member, property) else member
        if inspect.isroutine(function) and _ours(function):
            yield f'{cls.__name__}.{name}', function


def unannotated(name: str, function: Any, *, method: bool = False) -> List[str]:
    """What ``function`` leaves without a type: each parameter (``self``/``cls`` aside) and its return.

    ``__init__`` may leave its return out (it returns None, as mypy assumes).
    """
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to read
        return []
    parameters = list(signature.parameters.values())
    if method and parameters and parameters[0].name in ('self', 'cls'):
        parameters = parameters[1:]
    missing = [f'{name}: parameter {p.name!r}' for p in parameters if p.annotation is inspect.Parameter.empty]
    if signature.return_annotation is inspect.Signature.empty and not name.endswith('__init__'):
        missing.append(f'{name}: return')
    return missing


def _public_callables() -> Iterator[Tuple[str, Any, bool]]:
    """``(name, function, is_method)`` for every exported function and every public method of an exported class."""
    seen = set()
    for module in _modules():
        for export in getattr(module, '__all__', ()):
            value = getattr(module, export)
            if id(value) in seen or not _ours(value):
                continue
            seen.add(id(value))
            if inspect.isclass(value):
                init = value.__init__  # the package's (a metric's: the signature torchbearer's wrapper shows), or
                if _ours(init) or hasattr(init, '__signature__'):  # one inherited from torchbearer, not checked
                    yield f'{value.__module__}.{export}.__init__', value, False
                for name, function in _methods(value):
                    yield f'{value.__module__}.{name}', function, True
            elif callable(value):
                yield f'{value.__module__}.{export}', value, False


def test_every_public_callable_is_annotated():
    checked = list(_public_callables())
    assert len(checked) > 100  # the walk found the package's API, not nothing
    missing = [problem for name, function, method in checked for problem in unannotated(name, function, method=method)]
    assert not missing, '\n'.join(missing)


def test_the_annotation_check_finds_what_is_missing():
    def half_typed(count: int, scale, *args, name: Optional[str] = None, **kwargs: Any):
        return count

    class Made:
        def method(self, value: int) -> int:
            return value

        def untyped(self, value):
            return value

    assert unannotated('half_typed', half_typed) == [
        "half_typed: parameter 'scale'", "half_typed: parameter 'args'", 'half_typed: return']
    assert unannotated('Made.method', Made.method, method=True) == []
    assert unannotated('Made.untyped', Made.untyped, method=True) == [
        "Made.untyped: parameter 'value'", 'Made.untyped: return']
