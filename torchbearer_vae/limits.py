"""Sizes the command line refuses before allocating: a model, a batch or a picture larger than the memory there is.

A size such as ``--hidden-dim 1000000000`` would otherwise allocate terabytes (and be killed, or make the machine
swap) before any check. The model is built on PyTorch's ``meta`` device, which allocates nothing, to count its
bytes; the rest is estimated per image. The estimates are lower bounds: what they refuse cannot fit.
"""
import math
from typing import Sequence

import torch

from ._memory import available_memory
from .errors import CommandError
from .models import VAE

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

_FLOAT = 4  # bytes per float32 value


def _gib(size: float) -> str:
    return f'{size / 2 ** 30:.3g} GiB'


def _refuse_if_too_big(needed: int, device: torch.device, what: str, fix: str) -> None:
    available = available_memory(device)
    if available is not None and needed > available:
        raise CommandError(f'{what} needs at least {_gib(needed)}, more than the {_gib(available)} of memory '
                           f'available{" on " + str(device) if device.type != "cpu" else ""}; {fix}')


def vae_weights(image_shape: Sequence[int], hidden_dim: int, latent_dim: int) -> int:
    """How many weights the reference VAE of these sizes has, counted on the meta device (nothing allocated)."""
    try:
        with torch.device('meta'):
            model = VAE(tuple(image_shape), hidden_dim=hidden_dim, latent_dim=latent_dim)
    except (RuntimeError, OverflowError, TypeError, MemoryError) as error:  # too large for PyTorch to describe
        raise CommandError(f'--hidden-dim {hidden_dim} and --latent-dim {latent_dim} make a model too large to '
                           f'build ({type(error).__name__}); use smaller values') from None
    return sum(parameter.numel() for parameter in model.parameters())


def check_training_fits(image_shape: Sequence[int], hidden_dim: int, latent_dim: int, batch_size: int,
                        images: int, device: torch.device) -> None:
    """Refuse a training whose weights (with gradients and Adam's two moments) and one batch cannot fit."""
    weights = vae_weights(image_shape, hidden_dim, latent_dim)
    batch = min(batch_size, images)  # a batch never holds more than the dataset
    pixels = math.prod(image_shape)
    activations = batch * (2 * pixels + 2 * hidden_dim + 3 * latent_dim) * 2  # forward values and their gradients
    _refuse_if_too_big(
        (4 * weights + activations) * _FLOAT, device,
        f'training with --hidden-dim {hidden_dim}, --latent-dim {latent_dim} and --batch-size {batch_size} '
        f'({weights:,} weights, with their gradients and Adam\'s moments, and a batch of {batch} images)',
        'use smaller values')


def check_pictures_fit(count: int, image_shape: Sequence[int], hidden_dim: int, latent_dim: int,
                       device: torch.device, rows: int = 1) -> None:
    """Refuse decoding ``count`` images (``rows`` of them in the grid) that cannot fit, with their grid."""
    if len(image_shape) == 3:
        channels, height, width = image_shape
    else:  # a flat model: its images are drawn as one row of values
        channels, height, width = 1, 1, math.prod(image_shape)
    cell = 3 * (height + 2) * (width + 2)  # make_grid pads each image and gives grey ones three channels
    per_image = latent_dim + hidden_dim + channels * height * width + rows * cell
    _refuse_if_too_big(count * per_image * _FLOAT, device, f'a picture of {count:,} images',
                       'ask for fewer with --num-images')


def check_evaluation_fits(batch_size: int, images: int, importance_samples: int, image_shape: Sequence[int],
                          hidden_dim: int, latent_dim: int, device: torch.device) -> None:
    """Refuse an evaluation batch (with its importance draws, decoded about 1024 at a time) that cannot fit."""
    batch = min(batch_size, images)
    decoded = batch * max(1, min(importance_samples, 1024 // batch))
    pixels = math.prod(image_shape)
    _refuse_if_too_big((batch * pixels + decoded * (pixels + hidden_dim + 2 * latent_dim)) * _FLOAT, device,
                       f'an evaluation batch of {batch:,} images', 'use a smaller --batch-size')
