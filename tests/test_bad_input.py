"""Property-based tests (hypothesis): odd and bad inputs either work correctly or fail with a clear error.

For ``kld``, ``AutoEncoderDataset``, ``ReconstructionSaver`` (in real Trials and through its
``write`` API) and the ``{epoch}`` file name templates, every generated case must either give the
right answer, checked against an independent computation, or raise a ``ValueError``/``TypeError``
whose message names the problem. Anything else (an ``IndexError``, a ``RuntimeError`` from deep
inside torch, an ``AttributeError``...) fails the test.
"""
import math
import os
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from stand_ins import PAD, Scale, as_pixels, zero_loss
from torch.utils.data import DataLoader, TensorDataset
from torchbearer import Trial

from torchbearer_vae import AutoEncoderDataset, ReconstructionSaver, kld
from torchbearer_vae.callbacks.imaging import file_name

# Bounded and reproducible: the same cases on every run, nothing written to .hypothesis/.
BOUNDED = dict(deadline=None, database=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def raises_clearly(call, *words):
    """Run ``call``; if it raises, it must be a ValueError/TypeError naming one of ``words``. Returns the error."""
    try:
        call()
    except (ValueError, TypeError) as error:
        message = str(error)
        assert any(word in message for word in words), f'unclear message: {message!r}'
        return error
    return None


# -- kld --

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
OTHER_DTYPES = (torch.int32, torch.int64, torch.uint8, torch.bool, torch.complex64)
EXTREMES = st.one_of(st.floats(-100, 100), st.sampled_from([0.0, -80.0, 80.0, 88.0, 89.0, 1e4, -1e4, 1e-7,
                                                            math.inf, -math.inf, math.nan]))
SHAPES = st.lists(st.integers(0, 4), min_size=1, max_size=3).map(tuple)  # sizes of 0 included


def tensor(shape, dtype, values):
    data = torch.tensor(values, dtype=torch.float64).reshape(shape) if values else torch.zeros(shape,
                                                                                                dtype=torch.float64)
    if dtype in OTHER_DTYPES and dtype is not torch.complex64:
        data = torch.nan_to_num(data, nan=0.0, posinf=100.0, neginf=-100.0).clamp(-100, 100)
        if dtype in (torch.uint8, torch.bool):
            data = data.abs()
    return data.to(dtype)


@st.composite
def kld_cases(draw):
    shape = () if draw(st.integers(0, 9)) == 0 else draw(SHAPES)
    other = shape if draw(st.integers(0, 3)) else draw(SHAPES)  # mostly the same shape, sometimes not
    dtypes = [draw(st.sampled_from(FLOAT_DTYPES + OTHER_DTYPES if draw(st.integers(0, 4)) == 0 else FLOAT_DTYPES))
              for _ in range(2)]
    size, other_size = math.prod(shape), math.prod(other)
    mu = tensor(shape, dtypes[0], draw(st.lists(EXTREMES, min_size=size, max_size=size)))
    logvar = tensor(other, dtypes[1], draw(st.lists(EXTREMES, min_size=other_size, max_size=other_size)))
    reduction = draw(st.sampled_from(['sum', 'batchmean', 'none', 'sum', 'batchmean', 'none', 'mean', None]))
    return mu, logvar, reduction


@settings(max_examples=200, **BOUNDED)
@given(kld_cases())
def test_kld_is_right_or_says_what_is_wrong(case):
    mu, logvar, reduction = case
    valid = (mu.shape == logvar.shape and mu.dim() >= 1 and mu.dtype in FLOAT_DTYPES and logvar.dtype in FLOAT_DTYPES
             and reduction in ('sum', 'batchmean', 'none'))
    if not valid:
        error = raises_clearly(lambda: kld(mu, logvar, reduction=reduction), 'same shape', 'batch dimension',
                               'floating point', 'reduction must be')
        assert error is not None, 'an invalid case was accepted'
        event(f'kld refused: {type(error).__name__}')
        return
    result = kld(mu, logvar, reduction=reduction)
    event('kld computed' + (' a non-finite value' if not torch.isfinite(result).all() else ''))
    dtype = torch.promote_types(torch.promote_types(mu.dtype, logvar.dtype), torch.float32)
    assert result.dtype == dtype
    # The definition, in float64 from the same (already rounded) inputs, then rounded to the result's type; an
    # element is inf where mu ** 2, exp(logvar) or their sum exceeds that type (exp(88.8) in float32), as in kld.
    m, v = mu.double(), logvar.double()
    twice = m ** 2 + torch.expm1(v) - v
    largest = torch.finfo(dtype).max
    per_element = 0.5 * twice
    overflow = (m ** 2 > largest) | (torch.expm1(v) > largest) | (twice > largest)
    per_element[overflow & torch.isfinite(per_element)] = math.inf
    per_sample = per_element.reshape(mu.shape[0], -1).sum(1) if mu.numel() else torch.zeros(mu.shape[0],
                                                                                            dtype=torch.float64)
    expected = {'sum': per_element.sum(), 'none': per_sample,
                'batchmean': per_element.sum() / max(mu.shape[0], 1)}[reduction]
    assert result.shape == expected.shape
    tolerance = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(result.double(), expected.to(dtype).double(), rtol=tolerance, atol=tolerance,
                               equal_nan=True)
    # Finite float32 inputs in [-80, 80] always give a finite KL (the promise).
    if dtype == torch.float32 and (m.abs() <= 80).all() and (v.abs() <= 80).all() and mu.numel() <= 64:
        assert torch.isfinite(result).all()


# -- AutoEncoderDataset --

def pil_images():
    return st.builds(lambda mode, w, h: Image.new(mode, (w, h)), st.sampled_from(['L', 'RGB', 'RGBA']),
                     st.integers(1, 5), st.integers(1, 5))


def torch_tensors():
    return st.builds(lambda shape, dtype, seed: (torch.rand(shape, generator=torch.Generator().manual_seed(seed))
                                                 * 10).to(dtype),
                     st.lists(st.integers(0, 4), max_size=4).map(tuple),
                     st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8,
                                      torch.bool]),
                     st.integers(0, 1000))


LEAVES = st.one_of(
    torch_tensors(),
    arrays(st.sampled_from([np.float32, np.uint8, np.int64, np.float64]),
           st.lists(st.integers(0, 4), max_size=3).map(tuple)),
    st.integers(-10, 10), st.floats(allow_nan=True), st.booleans(), st.text(max_size=5), st.none(), pil_images(),
    st.builds(np.float32, st.floats(-5, 5)),
)

ITEMS = st.one_of(LEAVES, st.lists(LEAVES, max_size=4).map(tuple), st.lists(LEAVES, max_size=3))


def same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b, equal_nan=a.dtype.kind == 'f')
    return a is b


@settings(max_examples=150, **BOUNDED)
@given(st.lists(ITEMS, min_size=1, max_size=3), st.booleans(), st.booleans())
def test_autoencoder_dataset_returns_the_input_as_target_or_says_which_item_is_wrong(items, flatten, transform):
    def double(x):
        return ('transformed', x)

    kwargs = {'flatten_target': flatten, 'transform': double if transform else None}
    dataset = []
    error = raises_clearly(lambda: dataset.append(AutoEncoderDataset(items, **kwargs)), 'item 0')
    if error is not None:
        event('dataset refused at construction')
        return
    data = dataset[0]
    assert len(data) == len(items)
    for index, item in enumerate(items):
        outcome = []
        error = raises_clearly(lambda index=index, outcome=outcome: outcome.append(data[index]), f'item {index}')
        expected_x = item[0] if isinstance(item, (tuple, list)) and item else item
        if error is not None:
            # Refused only for a reason it names: an empty item, None, a PIL image or an unflattenable target.
            assert (isinstance(item, (tuple, list)) and not item) or expected_x is None \
                or type(expected_x).__module__.startswith('PIL.') or flatten
            event('dataset item refused')
            continue
        event('dataset item returned')
        x, target = outcome[0]
        if transform:
            assert x[0] == 'transformed' and same(x[1], expected_x)
        else:
            assert same(x, expected_x)
        if flatten:
            assert isinstance(target, torch.Tensor) and target.dim() == 1
            torch.testing.assert_close(target, torch.as_tensor(np.asarray(expected_x)).reshape(-1), rtol=0, atol=0,
                                       equal_nan=True)
        else:
            assert same(target, expected_x)


# -- ReconstructionSaver in real Trials --


def expected_shape(layout, shape, image_shape):
    """The (C, H, W) the saver should show the images as, or the word its error must contain."""
    channels, height, width = shape
    if image_shape:
        shown = shape
    elif layout == 'flat':
        side = math.isqrt(channels * height * width)
        if side * side != channels * height * width:
            return 'image_shape'
        shown = (1, side, side)
    else:
        shown = shape
    return shown if shown[0] in (1, 3, 4) else 'channels'


def check_grid(path, inputs, outputs, nrow):
    """The file shows ``inputs`` in whole rows of ``nrow``, then ``outputs`` below, pixel for pixel."""
    count, channels, height, width = inputs.shape
    rows = math.ceil(count / nrow)
    image = Image.open(path)
    assert image.mode == {1: 'L', 3: 'RGB', 4: 'RGBA'}[channels]  # grey images as one grey channel
    grid = np.asarray(image)
    grid = grid[..., None] if channels == 1 else grid
    assert grid.shape == (PAD + 2 * rows * (height + PAD), PAD + nrow * (width + PAD), channels)
    for block, images in ((0, inputs), (rows, outputs)):
        pixels = as_pixels(images)
        for i in range(count):
            top, left = PAD + (block + i // nrow) * (height + PAD), PAD + (i % nrow) * (width + PAD)
            tile = grid[top:top + height, left:left + width]
            assert np.array_equal(tile, pixels[i]), (block, i)


@settings(max_examples=80, **BOUNDED)
@given(count=st.integers(1, 9), batch_size=st.integers(1, 5), channels=st.sampled_from([1, 2, 3, 4, 5]),
       height=st.integers(1, 6), width=st.integers(1, 6), layout=st.sampled_from(['4d', '3d', 'flat']),
       output=st.sampled_from(['same', 'flat', 'tuple', 'wrong']), num_images=st.integers(1, 10),
       nrow=st.one_of(st.none(), st.integers(1, 5)), give_shape=st.booleans(), seed=st.integers(0, 100))
def test_reconstruction_saver_in_a_real_trial_draws_the_right_grid_or_says_why_not(
        count, batch_size, channels, height, width, layout, output, num_images, nrow, give_shape, seed):
    if layout == '3d':
        channels = 1
    images = torch.rand(count, channels, height, width, generator=torch.Generator().manual_seed(seed))
    data = {'4d': images, '3d': images[:, 0], 'flat': images.reshape(count, -1)}[layout]
    with tempfile.TemporaryDirectory() as folder:  # hypothesis runs many cases per test: one folder each
        kwargs = {'image_shape': (channels, height, width)} if give_shape else {}
        saver = ReconstructionSaver(folder=folder, num_images=num_images, nrow=nrow, **kwargs)
        loader = DataLoader(TensorDataset(data, data), batch_size=batch_size)
        model = Scale(output)
        trial = Trial(model, torch.optim.SGD(model.parameters(), lr=0.0), zero_loss, callbacks=[saver], verbose=0)
        trial.with_generators(train_generator=loader, val_generator=loader)

        shape = expected_shape(layout, (channels, height, width), give_shape)
        error = raises_clearly(lambda: trial.run(1), 'image_shape', 'channels', 'does not fit')
        if isinstance(shape, str) or output == 'wrong':
            assert error is not None and (shape in str(error) if isinstance(shape, str) else True)
            assert os.listdir(folder) == []
            event(f'Trial refused: {shape if isinstance(shape, str) else "wrong output"}')
            return
        assert error is None
        event('Trial drew the grid')
        shown = min(num_images, count)
        inputs = data[:shown].reshape((shown,) + shape)
        check_grid(os.path.join(folder, 'reconstruction_0.png'), inputs, inputs * 0.5, min(nrow or num_images, shown))


def random_tensor(shape, dtype, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


ANY_TENSORS = st.builds(random_tensor, st.lists(st.integers(0, 5), min_size=1, max_size=5).map(tuple),
                        st.sampled_from([torch.float32, torch.float16, torch.float64, torch.int64, torch.uint8]),
                        st.integers(0, 100))
# Mostly batches of images, (N, C, H, W), (N, H, W) or flat (N, D), with a few channel counts that do not work.
IMAGE_BATCHES = st.builds(
    lambda count, channels, height, width, layout, dtype, seed: random_tensor(
        {'4d': (count, channels, height, width), '3d': (count, height, width),
         'flat': (count, channels * height * width)}[layout], dtype, seed),
    st.sampled_from([1, 2, 3, 4, 0]), st.sampled_from([1, 3, 4, 1, 3, 4, 2, 5]), st.sampled_from([1, 2, 3, 5, 0]),
    st.sampled_from([1, 2, 4, 5, 0]),
    st.sampled_from(['4d', '3d', 'flat']), st.sampled_from([torch.float32, torch.float16, torch.float64]),
    st.integers(0, 100))


@settings(max_examples=150, **BOUNDED)
@given(inputs=st.integers(0, 9).flatmap(lambda i: IMAGE_BATCHES if i < 7 else [
           ANY_TENSORS, st.none(), st.lists(st.floats(0, 1), max_size=3)][i - 7]),
       outputs_kind=st.sampled_from(['same', 'half', 'flat', 'same', 'half', 'flat', 'other']), other=ANY_TENSORS,
       epoch=st.sampled_from([0, 1, 2, 7, 10, 123, -1, True]))
def test_reconstruction_saver_write_draws_what_it_is_given_or_says_why_not(inputs, outputs_kind, other, epoch):
    if isinstance(inputs, torch.Tensor) and outputs_kind != 'other':
        outputs = {'same': inputs, 'half': inputs * 0.5 if inputs.is_floating_point() else inputs,
                   'flat': inputs.flatten(1) if inputs.dim() >= 2 else inputs}[outputs_kind]
    else:
        outputs = other
    with tempfile.TemporaryDirectory() as folder:  # hypothesis runs many cases per test: one folder each
        saver = ReconstructionSaver(folder=folder, filename='r_{epoch}.png')
        result = []
        error = raises_clearly(lambda: result.append(saver.write(inputs, outputs, epoch=epoch)), 'epoch', 'inputs',
                               'outputs', 'image_shape', 'channels', 'does not fit', 'without pixels')
        if error is not None:
            assert os.listdir(folder) == []
            event('write refused')
            return
        event('write drew the grid')
        assert isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0
        assert inputs.is_floating_point() and outputs.is_floating_point() and inputs.shape[0] >= 1
        assert result == [os.path.join(folder, f'r_{epoch}.png')]
        count = inputs.shape[0]
        if inputs.dim() == 4:
            shape = tuple(inputs.shape[1:])
        elif inputs.dim() == 3:
            shape = (1,) + tuple(inputs.shape[1:])
        else:
            side = math.isqrt(inputs[0].numel())
            shape = (1, side, side)
        check_grid(result[0], inputs.float().reshape((count,) + shape), outputs.float().reshape((count,) + shape),
                   min(8, count))  # num_images' default 8 is the default nrow


# -- {epoch} file name templates: nothing outside the folder, for any epoch --

TEMPLATE = st.lists(st.sampled_from(['{epoch}', '{epoch:03d}', '{epoch:c}', '{epoch:/>3}', '{epoch:.>4}',
                                     '{epoch!r}', '{epoch.real}', '{epoch[0]}', '{}', '{step}', '{{', '}}', '{', '}',
                                     '/', '..', '.', 'a', 'recon_', '\\', ':', 'C:', '~']),
                    max_size=6).map(''.join).map(lambda name: name + '.png')


@settings(max_examples=200, **BOUNDED)
@given(TEMPLATE, st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=5))
def test_a_file_name_template_cannot_leave_the_folder_for_any_epoch(template, epochs):
    with tempfile.TemporaryDirectory() as folder:  # hypothesis runs many cases per test: one folder each
        error = raises_clearly(lambda: ReconstructionSaver(folder=folder, filename=template), 'filename')
        if error is not None:
            event('template refused')
            return
        event('template accepted')
        root = os.path.realpath(folder)
        for epoch in epochs + [46, 47, 92]:  # the code points of '.', '/' and '\\'
            path = os.path.realpath(os.path.join(folder, file_name(template, epoch)))
            assert os.path.commonpath([root, path]) == root and path != root, (template, epoch, path)


def test_the_template_fields_that_could_escape_are_refused(tmp_path):
    for template in ('.{epoch:c}/x.png', '{epoch:c}{epoch:c}.png', 'x{epoch:/>3}.png', 'r_{epoch.__class__}.png'):
        with pytest.raises(ValueError, match='filename'):
            ReconstructionSaver(folder=tmp_path, filename=template)
