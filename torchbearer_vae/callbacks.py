"""Picture callbacks: the reconstruction grid, written once per epoch."""
import math
import os
import warnings
from typing import Callable, Optional, Sequence

import torch
import torchbearer
from torchbearer.callbacks import Callback
from torchbearer.state import StateKey

from ._io import PathLike, atomic_write
from .losses import MissingStateError

__all__ = ['ReconstructionSaver']

_PHASES = ('validation', 'training')


def _check_positive_int(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f'{name} must be an int, got {type(value).__name__}')
    if value < 1:
        raise ValueError(f'{name} must be >= 1, got {value}')


def _check_output_path(folder: PathLike, filename: str) -> None:
    """Validate a folder and an ``{epoch}`` filename template before any training happens."""
    from PIL import Image  # torchvision's own image dependency; only needed to list extensions

    if not isinstance(filename, str):
        raise TypeError(f'filename must be a str, got {type(filename).__name__}')
    try:
        example = filename.format(epoch=0)
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(f'filename {filename!r} must be a template whose only field is {{epoch}}: '
                         f'formatting it failed with {type(error).__name__}: {error}') from None
    if os.path.isabs(example) or '..' in example.replace('\\', '/').split('/'):
        raise ValueError(f'filename {filename!r} must stay inside the folder: no absolute paths or ".."')
    extension = os.path.splitext(example)[1].lower()
    if extension not in Image.registered_extensions():
        raise ValueError(f'filename {filename!r} must end in an image extension such as .png, '
                         f'got {extension or "none"!r}')
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f'folder {os.fspath(folder)!r} exists and is not a directory; choose another folder')


def _is_main_process() -> bool:
    """Only one process writes pictures when training is distributed."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _write_grid(images: torch.Tensor, path: str, nrow: int, normalize: bool) -> None:
    """Tile ``(N, C, H, W)`` images with torchvision and write them atomically."""
    from torchvision.utils import make_grid, save_image  # importing torchvision costs ~1 s: only when drawing

    grid = make_grid(images.float(), nrow=nrow, normalize=normalize)
    atomic_write(path, lambda tmp_path: save_image(grid, tmp_path))


class ReconstructionSaver(Callback):
    """Save, once per epoch, the first inputs above their reconstructions as one image.

    Works for any autoencoder: grey or colour images of any size, models that return the
    reconstruction flattened (``(B, C*H*W)``) or as the first element of a tuple (as in *the
    PyTorch way*, ``(recon, mu, logvar)``). The images are taken from the first batches of the
    chosen phase until ``num_images`` are collected (a short last batch is fine); nothing is
    copied on the other steps. The grid is made with :func:`torchvision.utils.make_grid` and
    written atomically, so a crash never leaves half a PNG.

    Args:
        folder (str or PathLike): Folder to write into; created when the first image is written.
        filename (str): File name template; ``{epoch}`` is replaced by torchbearer's
            (0-based) epoch number. The extension picks the format (``.png``, ``.jpg``, ...).
        num_images (int): How many inputs (and reconstructions) to show.
        on (str): ``'validation'`` (the default; needs validation data) or ``'training'``.
        input_key (StateKey): Where the inputs are in state.
        output_key (StateKey): Where the model's output is in state.
        nrow (int or None): Images per row; default ``num_images``, so the inputs form the top row
            and the reconstructions the row below.
        normalize (bool): Rescale the grid to ``[0, 1]`` by its min and max (for outputs that
            are not already in ``[0, 1]``).
        image_shape (sequence of int or None): ``(C, H, W)`` of one image, needed only when the
            inputs are flattened and not square grey images (e.g. ``(3, 32, 32)``).
        output_transform (callable or None): Applied to the reconstructions before tiling, e.g.
            ``torch.sigmoid`` for a decoder that outputs logits.

    Raises:
        ValueError: for a bad argument, at construction.

    Example: ::

        >>> import torchbearer
        >>> from torchbearer_vae import ReconstructionSaver
        >>> saver = ReconstructionSaver(folder='results', num_images=8)
        >>> # Trial(model, optimizer, criterion, callbacks=[saver]).with_generators(train, val)
    """

    def __init__(self, folder: PathLike = 'results', filename: str = 'reconstruction_{epoch}.png',
                 num_images: int = 8, on: str = 'validation', input_key: StateKey = torchbearer.X,
                 output_key: StateKey = torchbearer.Y_PRED, nrow: Optional[int] = None,
                 normalize: bool = False, image_shape: Optional[Sequence[int]] = None,
                 output_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        super().__init__()
        _check_positive_int('num_images', num_images)
        _check_positive_int('nrow', nrow, allow_none=True)
        if on not in _PHASES:
            raise ValueError(f"on must be 'validation' or 'training', got {on!r}")
        if not isinstance(folder, (str, os.PathLike)):
            raise TypeError(f'folder must be a path, got {type(folder).__name__}')
        _check_output_path(folder, filename)
        if image_shape is not None:
            image_shape = tuple(image_shape)
            if len(image_shape) != 3 or not all(isinstance(d, int) and d >= 1 for d in image_shape):
                raise ValueError(f'image_shape must be (channels, height, width), got {image_shape}')
        if output_transform is not None and not callable(output_transform):
            raise TypeError('output_transform must be callable')
        self.folder, self.filename, self.num_images, self.on = folder, filename, num_images, on
        self.input_key, self.output_key = input_key, output_key
        self.nrow, self.normalize, self.image_shape = nrow or num_images, normalize, image_shape
        self.output_transform = output_transform
        self._inputs, self._outputs, self._count, self._done = [], [], 0, True
        self._warned = False

    # -- torchbearer hooks: each one forwards to the phase the saver was asked to watch --
    def on_start_training(self, state):
        if self.on == 'training':
            self._reset()

    def on_step_training(self, state):
        if self.on == 'training' and not self._done:
            self._collect(state)

    def on_end_training(self, state):
        if self.on == 'training':
            self._flush(state)

    def on_start_validation(self, state):
        if self.on == 'validation':
            self._reset()

    def on_step_validation(self, state):
        if self.on == 'validation' and not self._done:
            self._collect(state)

    def on_end_validation(self, state):
        if self.on == 'validation':
            self._flush(state)

    def on_end_epoch(self, state):
        if self.on == 'validation' and self._count == 0 and not self._warned and _is_main_process():
            self._warned = True
            warnings.warn("ReconstructionSaver(on='validation') saw no validation batch this epoch, so it "
                          "saved nothing: give the Trial validation data (with_generators(val_generator=...))"
                          " or use on='training'", stacklevel=2)

    # -- the work: only on the steps that still need images --
    def _reset(self):
        self._inputs, self._outputs, self._count = [], [], 0
        self._done = not _is_main_process()

    def _collect(self, state):
        inputs = self._from_state(state, self.input_key, 'input_key')
        outputs = self._from_state(state, self.output_key, 'output_key')
        take = self.num_images - self._count
        inputs, outputs = self._as_images(inputs[:take].detach(), outputs[:take].detach())
        self._inputs.append(inputs.cpu())
        self._outputs.append(outputs.cpu())
        self._count += inputs.shape[0]
        if self._count >= self.num_images:
            self._flush(state)

    def _flush(self, state):
        if self._done or self._count == 0:
            return
        self._done = True
        inputs, outputs = torch.cat(self._inputs), torch.cat(self._outputs)
        self._inputs, self._outputs = [], []
        if self.output_transform is not None:
            outputs = self.output_transform(outputs)
        self.write(inputs, outputs, state[torchbearer.EPOCH])

    def write(self, inputs: torch.Tensor, outputs: torch.Tensor, epoch: int) -> str:
        """Write ``inputs`` above ``outputs`` (both ``(N, C, H, W)``) as the file for ``epoch``.

        Args:
            inputs (torch.Tensor): The input images.
            outputs (torch.Tensor): Their reconstructions, same shape.
            epoch (int): Fills ``{epoch}`` in the file name.

        Returns:
            str: The path written.
        """
        count = inputs.shape[0]
        nrow = min(self.nrow, count)
        # Pad each block to whole rows so the reconstructions always start on a new row.
        blank = (-count) % nrow
        if blank:
            padding = inputs.new_zeros((blank,) + tuple(inputs.shape[1:]))
            inputs, outputs = torch.cat([inputs, padding]), torch.cat([outputs, padding])
        path = os.path.join(os.fspath(self.folder), self.filename.format(epoch=epoch))
        _write_grid(torch.cat([inputs, outputs]), path, nrow, self.normalize)
        return path

    @staticmethod
    def _from_state(state, key, argument):
        try:
            value = state[key]
        except KeyError:
            raise MissingStateError(f'ReconstructionSaver needs state[{key!r}] ({argument}) but it is not in '
                                    f'state; pass the {argument} under which your data is stored') from None
        if isinstance(value, (tuple, list)):  # (recon, mu, logvar) or several inputs: the first one
            value = value[0]
        if not isinstance(value, torch.Tensor):
            raise TypeError(f'ReconstructionSaver needs a tensor in state[{key!r}], got {type(value).__name__}')
        return value

    def _as_images(self, inputs, outputs):
        """Reshape a batch of inputs and outputs to ``(N, C, H, W)``, or say why that is impossible."""
        count = inputs.shape[0]
        if self.image_shape is not None:
            shape = self.image_shape
        elif inputs.dim() == 4:
            shape = tuple(inputs.shape[1:])
        elif inputs.dim() == 3:
            shape = (1,) + tuple(inputs.shape[1:])
        elif inputs.dim() == 2 and math.isqrt(inputs.shape[1]) ** 2 == inputs.shape[1]:
            side = math.isqrt(inputs.shape[1])
            shape = (1, side, side)
        else:
            raise ValueError(f'ReconstructionSaver cannot tell the image shape of inputs of shape '
                             f'{tuple(inputs.shape)}; pass image_shape=(channels, height, width)')
        if shape[0] not in (1, 3, 4):
            raise ValueError(f'ReconstructionSaver can write 1 (grey), 3 (RGB) or 4 (RGBA) channels, but the '
                             f'images have shape {shape}; pass image_shape if the channels are elsewhere')
        size = math.prod(shape)
        if inputs[0].numel() != size:
            raise ValueError(f'inputs of shape {tuple(inputs.shape)} cannot be shown as images of shape {shape}')
        if outputs.shape[0] != count or outputs[0].numel() != size:
            raise ValueError(f'the model output of shape {tuple(outputs.shape)} cannot be reshaped to the input '
                             f'images of shape {(count,) + shape}; the reconstruction must have as many values '
                             f'per image as the input')
        return inputs.reshape((count,) + shape), outputs.reshape((count,) + shape)
