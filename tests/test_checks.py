"""The argument checks every public function uses (torchbearer_vae/checks.py): what each accepts and returns, and the
exact message of what it refuses. A wrong type is a TypeError, a right type with a wrong value a ValueError; a bool
is never a number; each message names the argument, says what it must be and shows what it got."""
import math
import os
import pathlib

import numpy as np
import pytest
import torch

from torchbearer_vae.checks import (
    check_bool,
    check_callable,
    check_choice,
    check_int,
    check_number,
    check_path,
    check_range,
    check_shape,
    describe,
)


def refused(call, error, message):
    """``call()`` raises ``error`` with exactly ``message``."""
    with pytest.raises(error) as caught:
        call()
    assert type(caught.value) is error and str(caught.value) == message


LONG = list(range(30))  # its repr is longer than 60 characters: a message shows its type instead


# -- check_int --

@pytest.mark.parametrize('value, kwargs, expected', [
    (0, {}, 0),
    (-5, {}, -5),
    (1, {'minimum': 1}, 1),  # the minimum itself: inclusive
    (2 ** 70, {'minimum': 0}, 2 ** 70),
    (np.int64(7), {'minimum': 1}, 7),  # any integral number, returned as a Python int
    (None, {'allow_none': True}, None),
    (None, {'minimum': 1, 'allow_none': True}, None),
])
def test_check_int_accepts(value, kwargs, expected):
    result = check_int('count', value, **kwargs)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize('value, kwargs, error, message', [
    (0, {'minimum': 1}, ValueError, 'count must be an int >= 1, got 0'),
    (-1, {'minimum': 0}, ValueError, 'count must be an int >= 0, got -1'),
    (True, {'minimum': 0}, TypeError, 'count must be an int >= 0, got True'),  # a bool is not a count
    (False, {}, TypeError, 'count must be an int, got False'),
    (2.0, {'minimum': 1}, TypeError, 'count must be an int >= 1, got 2.0'),  # a whole float is still a float
    ('3', {}, TypeError, "count must be an int, got '3'"),
    (None, {'minimum': 1}, TypeError, 'count must be an int >= 1, got None'),
    (torch.tensor(3), {}, TypeError, 'count must be an int, got tensor(3)'),
    (LONG, {}, TypeError, 'count must be an int, got a list'),
])
def test_check_int_refuses(value, kwargs, error, message):
    refused(lambda: check_int('count', value, **kwargs), error, message)


# -- check_number --

@pytest.mark.parametrize('value, kwargs, expected', [
    (3, {}, 3.0),  # an int is a number, returned as a float
    (-2.5, {}, -2.5),
    (np.float32(0.5), {'above': 0}, 0.5),
    (0, {'minimum': 0}, 0.0),  # minimum and maximum are inclusive
    (1, {'maximum': 1}, 1.0),
    (1e-300, {'above': 0}, 1e-300),  # above and below are exclusive: just past them is in
    (0.999, {'above': 0, 'below': 1}, 0.999),
    (None, {'allow_none': True}, None),
])
def test_check_number_accepts(value, kwargs, expected):
    result = check_number('beta', value, **kwargs)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize('value, kwargs, error, message', [
    (True, {}, TypeError, 'beta must be a finite number, got True'),  # a bool is never a number
    ('1', {'minimum': 0}, TypeError, "beta must be a finite number >= 0, got '1'"),
    (None, {}, TypeError, 'beta must be a finite number, got None'),
    (1 + 2j, {}, TypeError, 'beta must be a finite number, got (1+2j)'),
    (torch.tensor(1.0), {}, TypeError, 'beta must be a finite number, got tensor(1.)'),
    (math.nan, {}, ValueError, 'beta must be a finite number, got nan'),
    (-math.inf, {'maximum': 0}, ValueError, 'beta must be a finite number <= 0, got -inf'),
    (-1, {'minimum': 0}, ValueError, 'beta must be a finite number >= 0, got -1.0'),  # the value as a float
    (0, {'above': 0}, ValueError, 'beta must be a finite number > 0, got 0.0'),  # exclusive
    (1.5, {'maximum': 1}, ValueError, 'beta must be a finite number <= 1, got 1.5'),
    (1, {'above': 0, 'below': 1}, ValueError, 'beta must be a finite number > 0 and < 1, got 1.0'),  # exclusive
    (2, {'minimum': 0.5, 'maximum': 1.5}, ValueError, 'beta must be a finite number >= 0.5 and <= 1.5, got 2.0'),
    (0.0, {'above': 1e-3}, ValueError, 'beta must be a finite number > 0.001, got 0.0'),
    (LONG, {}, TypeError, 'beta must be a finite number, got a list'),
])
def test_check_number_refuses(value, kwargs, error, message):
    refused(lambda: check_number('beta', value, **kwargs), error, message)


# -- check_bool --

def test_check_bool_accepts_true_and_false_only():
    assert check_bool('shuffle', True) is True and check_bool('shuffle', False) is False
    for value in (1, 0, 'yes', None, np.bool_(True)):  # numpy's bool is not a Python bool either
        refused(lambda value=value: check_bool('shuffle', value), TypeError,
                f'shuffle must be True or False, got {value!r}')


# -- check_choice --

def test_check_choice_accepts_one_of_the_strings():
    assert check_choice('reduction', 'sum', ('sum', 'none')) == 'sum'
    assert check_choice('unit', 'epoch', ['step', 'epoch']) == 'epoch'


@pytest.mark.parametrize('value, error, got', [
    ('mean', ValueError, "'mean'"),
    ('SUM', ValueError, "'SUM'"),  # exact: no case folding
    ('', ValueError, "''"),
    (None, TypeError, 'None'),
    (0, TypeError, '0'),
    (b'sum', TypeError, "b'sum'"),
])
def test_check_choice_refuses(value, error, got):
    refused(lambda: check_choice('reduction', value, ('sum', 'batchmean', 'none')), error,
            f"reduction must be one of 'sum', 'batchmean', 'none', got {got}")


# -- check_callable --

def test_check_callable():
    assert check_callable('transform', abs) is abs
    assert check_callable('transform', None, allow_none=True) is None
    refused(lambda: check_callable('transform', None), TypeError, 'transform must be callable, got None')
    refused(lambda: check_callable('transform', 'sigmoid'), TypeError, "transform must be callable, got 'sigmoid'")
    refused(lambda: check_callable('beta', 3, how='as beta(state)'), TypeError,
            'beta must be callable as beta(state), got 3')


# -- check_range --

@pytest.mark.parametrize('value, expected', [
    ((-3, 3), (-3.0, 3.0)),
    ([0.5, 2], (0.5, 2.0)),
    (np.array([-1.0, 1.0]), (-1.0, 1.0)),
    (range(2), (0.0, 1.0)),
])
def test_check_range_accepts_two_increasing_numbers(value, expected):
    result = check_range('value_range', value)
    assert result == expected and all(type(bound) is float for bound in result)


@pytest.mark.parametrize('value, error, message', [
    (5, TypeError, 'value_range must be two numbers (low, high), got 5'),
    ('ab', TypeError, "value_range must be two numbers (low, high), got 'ab'"),  # a string is not two numbers
    ((1,), TypeError, 'value_range must be two numbers (low, high), got (1,)'),
    ((1, 2, 3), TypeError, 'value_range must be two numbers (low, high), got (1, 2, 3)'),
    ((0, 'x'), TypeError, "value_range must be two numbers (low, high), got (0, 'x')"),
    ((False, True), TypeError, 'value_range must be two numbers (low, high), got (False, True)'),
    ((3, -3), ValueError, 'value_range must be two finite numbers with low < high, got (3, -3)'),
    ((1, 1), ValueError, 'value_range must be two finite numbers with low < high, got (1, 1)'),
    ((0, math.inf), ValueError, 'value_range must be two finite numbers with low < high, got (0, inf)'),
    ((math.nan, 1), ValueError, 'value_range must be two finite numbers with low < high, got (nan, 1)'),
])
def test_check_range_refuses(value, error, message):
    refused(lambda: check_range('value_range', value), error, message)


# -- check_shape --

@pytest.mark.parametrize('value, kwargs, expected', [
    (784, {}, (784,)),  # one int is a shape of one dimension
    (784, {'ndim': 1}, (784,)),
    ([1, 28, 28], {}, (1, 28, 28)),
    (torch.Size([3, 32, 32]), {'ndim': 3}, (3, 32, 32)),
    ((np.int64(1), 8, 8), {'ndim': 3}, (1, 8, 8)),
])
def test_check_shape_accepts(value, kwargs, expected):
    result = check_shape('input_shape', value, **kwargs)
    assert result == expected and all(type(size) is int for size in result)


SHAPE = 'input_shape must be an int >= 1 or a sequence of them, e.g. (1, 28, 28), got'
THREE = 'input_shape must be 3 ints >= 1, e.g. (3, 32, 32), got'


@pytest.mark.parametrize('value, kwargs, error, message', [
    ('mnist', {}, TypeError, f"{SHAPE} 'mnist'"),
    (True, {}, TypeError, f'{SHAPE} True'),  # a bool is not a size
    (2.0, {}, TypeError, f'{SHAPE} 2.0'),
    ((), {}, TypeError, f'{SHAPE} ()'),
    ((1, 28.0), {}, TypeError, f'{SHAPE} (1, 28.0)'),
    ((1, True), {}, TypeError, f'{SHAPE} (1, True)'),
    (0, {}, ValueError, f'{SHAPE} (0,)'),  # one int, read as a shape of one
    ((1, 0, 28), {}, ValueError, f'{SHAPE} (1, 0, 28)'),
    (784, {'ndim': 3, 'example': '(3, 32, 32)'}, TypeError, f'{THREE} 784'),  # one int is not three
    ((28, 28), {'ndim': 3, 'example': '(3, 32, 32)'}, ValueError, f'{THREE} (28, 28)'),
    ((1, -28, 28), {'ndim': 3, 'example': '(3, 32, 32)'}, ValueError, f'{THREE} (1, -28, 28)'),
])
def test_check_shape_refuses(value, kwargs, error, message):
    refused(lambda: check_shape('input_shape', value, **kwargs), error, message)


# -- check_path --

def test_check_path_accepts_a_str_or_a_path_like_as_given():
    path = pathlib.Path('runs') / 'a'
    assert check_path('folder', path) is path and check_path('folder', 'runs/a') == 'runs/a'

    class Own(os.PathLike):
        def __fspath__(self):
            return 'somewhere'

    own = Own()
    assert check_path('folder', own) is own
    for value, shown in ((3, '3'), (None, 'None'), (b'runs', "b'runs'"), (LONG, 'a list')):
        refused(lambda value=value: check_path('folder', value), TypeError,
                f'folder must be a path (str or os.PathLike), got {shown}')


# -- describe: what an error message shows of a value that is not a short repr --

def test_describe_gives_a_tensors_dtype_and_shape_else_the_type():
    assert describe(torch.zeros(2, 3)) == 'a torch.float32 Tensor of shape (2, 3)'
    assert describe(torch.zeros((), dtype=torch.uint8)) == 'a torch.uint8 Tensor of shape ()'
    assert describe(np.zeros(4)) == 'a float64 ndarray of shape (4,)'
    assert describe([1, 2]) == 'a list' and describe(None) == 'a NoneType' and describe('x') == 'a str'
