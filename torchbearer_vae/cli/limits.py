"""Sizes the command line refuses before allocating: a model, a batch or a picture larger than the memory there is.

A size such as ``--hidden-dim 1000000000`` would otherwise allocate terabytes (and be killed, or make the machine
swap) before any check. The model is built on PyTorch's ``meta`` device, which allocates nothing, to count its
bytes; the rest is estimated per image from the model's sizes (its convolutions' too). The estimates are lower
bounds: what they refuse cannot fit.
"""
import math
from typing import Any, Tuple

import torch

from ..callbacks.imaging import check_grid_opens, model_shape
from ..errors import CommandError
from ..memory import available_memory
from ..models.quantizer import VectorQuantizer
from .model import CODEBOOK_ARGUMENTS, flag

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

_FLOAT = 4  # bytes per float32 value
#: The most importance samples ``evaluate`` draws per image: each costs about one more ELBO pass (the IWAE paper
#: estimates with 5,000), so more would take days, with no tighter estimate to show for it.
MAX_IMPORTANCE_SAMPLES = 100_000


def _gib(size: float) -> str:
    return f'{size / 2 ** 30:.3g} GiB'


def _refuse_if_too_big(needed: int, device: torch.device, what: str, fix: str) -> None:
    available = available_memory(device)
    if available is not None and needed > available:
        raise CommandError(f'{what} needs at least {_gib(needed)}, more than the {_gib(available)} of memory '
                           f'available{" on " + str(device) if device.type != "cpu" else ""}; {fix}')


def _shape(model: Any) -> Tuple[int, ...]:
    shape = tuple(getattr(model, 'input_shape', ()))
    return shape if len(shape) == 3 else (1, 1, math.prod(shape))  # a flat model: one row of values


def values_per_image(model: Any) -> int:
    """The values one image makes through ``model`` (input, layers, code, output), from its sizes.

    Counted from the attributes the package's models have (``input_shape``, ``hidden_dim``,
    ``latent_dim``, and :class:`~torchbearer_vae.ConvVAE`'s ``channels``); a model without one adds nothing for it.
    """
    channels, height, width = _shape(model)
    convolutions = getattr(model, 'channels', None) or ()
    feature_maps: int = sum(c * (height // 2 ** (i + 1)) * (width // 2 ** (i + 1)) for i, c in enumerate(convolutions))
    hidden_dim: int = getattr(model, 'hidden_dim', 0)
    latent_dim: int = getattr(model, 'latent_dim', 0)
    return 2 * channels * height * width + 2 * feature_maps + 2 * hidden_dim + 3 * latent_dim


def check_training_fits(model: Any, batch_size: int, images: int, device: torch.device) -> None:
    """Refuse a training of ``model`` (built on the meta device) whose weights, Adam's state and a batch cannot fit."""
    weights = sum(parameter.numel() for parameter in model.parameters())
    batch = min(batch_size, images)  # a batch never holds more than the dataset
    activations = batch * values_per_image(model) * 2  # forward values and their gradients
    _refuse_if_too_big(
        (4 * weights + activations) * _FLOAT, device,
        f'training {_sizes(model)} and --batch-size {batch_size} ({weights:,} weights, with their gradients and '
        f'Adam\'s moments, and a batch of {batch} images of {"x".join(map(str, _shape(model)))})',
        'use smaller values')


def _sizes(model: torch.nn.Module) -> str:
    """``--hidden-dim H, --latent-dim L`` of ``model``, each one it has (the user's model may have no width); a fully
    convolutional model's ``--latent-dim`` is its ``latent_channels``; a model with a codebook's sizes are
    ``--codebook-size K, --code-dim D``."""
    quantizer = VectorQuantizer.of(model)
    sizes = {'--hidden-dim': getattr(model, 'hidden_dim', None),
             '--latent-dim': getattr(model, 'latent_channels', getattr(model, 'latent_dim', None))
             } if quantizer is None else {flag(option): getattr(quantizer, argument)
                                          for option, argument in CODEBOOK_ARGUMENTS.items()}
    return 'with ' + ', '.join(f'{flag} {value}' for flag, value in sizes.items() if value is not None)


def check_pictures_fit(count: int, model: Any, device: torch.device, rows: int = 1) -> None:
    """Refuse decoding ``count`` images (``rows`` of them in the grid) that cannot fit, with their grid."""
    channels, height, width = _shape(model)
    cell = 3 * (height + 2) * (width + 2)  # make_grid pads each image and gives grey ones three channels
    _refuse_if_too_big(count * (values_per_image(model) + rows * cell) * _FLOAT, device,
                       f'a picture of {count:,} images', 'ask for fewer with --num-images')


def check_picture_opens(count: int, nrow: int, model: Any) -> None:
    """Refuse a picture of ``count`` images of ``model``, ``nrow`` a row, larger than Pillow would open."""
    try:
        check_grid_opens(count, nrow, model_shape(model) or (1, 1, 1), f'--num-images {count}',
                         'ask for fewer with --num-images')
    except ValueError as error:
        raise CommandError(str(error)) from None


def check_evaluation_fits(batch_size: int, images: int, importance_samples: int, model: Any,
                          device: torch.device) -> None:
    """Refuse an evaluation batch (with its importance draws, decoded about 1024 at a time) that cannot fit.

    ``importance_samples`` above :data:`MAX_IMPORTANCE_SAMPLES` is refused too, before any pass.
    """
    if importance_samples > MAX_IMPORTANCE_SAMPLES:
        raise CommandError(f'--importance-samples {importance_samples:,} is more than {MAX_IMPORTANCE_SAMPLES:,}: '
                           f'each sample costs about one more pass over the images (the IWAE paper estimates with '
                           f'5,000); use at most {MAX_IMPORTANCE_SAMPLES:,}')
    batch = min(batch_size, images)
    decoded = batch * max(1, min(importance_samples, 1024 // batch))
    pixels = math.prod(_shape(model))
    _refuse_if_too_big((batch * pixels + decoded * values_per_image(model)) * _FLOAT, device,
                       f'an evaluation batch of {batch:,} images', 'use a smaller --batch-size')


def check_image_size_fits(image_size: int) -> None:
    """Refuse an ``--image-size`` whose one decoded colour image (and the copy a resize makes) cannot fit.

    Checked before the first file is decoded: the folder's own memory check needs one image's size first.
    """
    _refuse_if_too_big(2 * 3 * image_size ** 2, torch.device('cpu'), f'--image-size {image_size}: one image of '
                       f'3x{image_size}x{image_size}', 'use a smaller --image-size')
