"""PictureSaver: the one base class of the picture callbacks in :mod:`torchbearer_vae.callbacks`.

It checks the folder and the ``{epoch}`` file name at construction, collects the first images of
a phase (and nothing on the other steps), draws with the model in eval mode under ``no_grad``,
tiles with :func:`torchvision.utils.make_grid` and writes atomically, from rank 0 only (in a
Trial, in a background thread while training goes on). A subclass only says what to draw.
"""
import contextlib
import math
import os
import re
import string
import warnings
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torchbearer
from torchbearer.callbacks import Callback
from torchbearer.state import StateKey

from ._io import BackgroundWriter, PathLike
from .distributed import _is_main_process  # only rank 0 writes pictures
from .losses import MissingStateError

__all__ = ['PictureSaver']

_PHASES = ('validation', 'training')
#: A torchbearer imaging handler: ``handler(image, index, state)``, ``image`` a ``(C, H, W)`` grid.
Handler = Callable[[torch.Tensor, int, dict], None]


def _check_positive_int(name: str, value, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f'{name} must be an int, got {type(value).__name__}')
    if value < 1:
        raise ValueError(f'{name} must be >= 1, got {value}')


# What an {epoch} field may format with: zero padding, width, grouping and an integer type. Nothing
# else: a fill character ('{epoch:/>3}') or '{epoch:c}' (the character whose code is the epoch: 46 is
# '.', 47 '/') would let the epoch number write a path outside the folder.
_EPOCH_SPEC = re.compile(r'0?[0-9]*[,_]?[dxXob]?')


def _file_name(filename: str, epoch: int) -> str:
    """``filename`` with ``{epoch}`` filled in, refused unless it names a file inside the folder."""
    name = filename.format(epoch=epoch)
    normal = name.replace('\\', '/')
    if os.path.isabs(name) or normal.startswith('/') or os.path.splitdrive(name)[0] or '..' in normal.split('/'):
        raise ValueError(f'filename {filename!r} must stay inside the folder: no absolute paths or "..", '
                         f'got {name!r} for epoch {epoch}')
    return name


def _check_output_path(folder: PathLike, filename: str) -> None:
    """Validate a folder and an ``{epoch}`` filename template before any training happens."""
    from PIL import Image  # torchvision's own image dependency; only needed to list extensions

    if not isinstance(filename, str):
        raise TypeError(f'filename must be a str, got {type(filename).__name__}')
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(filename)
                  if name is not None]
    except ValueError as error:
        raise ValueError(f'filename {filename!r} must be a template whose only field is {{epoch}}: '
                         f'formatting it failed with {type(error).__name__}: {error}') from None
    for name, spec, conversion in fields:
        if name != 'epoch':
            raise ValueError(f'filename {filename!r} must be a template whose only field is {{epoch}}, got '
                             f'{{{name}}}')
        if conversion is not None or not _EPOCH_SPEC.fullmatch(spec):
            raise ValueError(f'filename {filename!r}: {{epoch}} may only be padded, as in {{epoch:03d}}; got '
                             f'{{epoch{"!" + conversion if conversion else ""}{":" + spec if spec else ""}}}')
    example = _file_name(filename, 0)
    extension = os.path.splitext(example)[1].lower()
    if extension not in Image.registered_extensions():
        raise ValueError(f'filename {filename!r} must end in an image extension such as .png, '
                         f'got {extension or "none"!r}')
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f'folder {os.fspath(folder)!r} exists and is not a directory; choose another folder')


def _check_inputs(inputs, needed: int, name: str = 'inputs', allow_none: bool = False) -> Optional[torch.Tensor]:
    if inputs is None and allow_none:
        return None
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point() or inputs.dim() < 2:
        raise TypeError(f'{name} must be a floating point tensor holding a batch of images (N, ...), got '
                        f'{_describe(inputs)}')
    if inputs.shape[0] < needed:
        raise ValueError(f'{name} must hold at least {needed} images, got {inputs.shape[0]}')
    return inputs.detach().cpu().clone()


def _check_epoch(epoch) -> None:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f'epoch must be an int >= 0, got {epoch!r}')


def _image_batch(value, what: str) -> torch.Tensor:
    """The images in a model output or state value: the tensor, or the first element of a tuple/list."""
    if isinstance(value, (tuple, list)):  # (recon, mu, logvar) or several inputs: the first one
        if not value:
            raise ValueError(f'{what} is an empty {type(value).__name__}; expected a batch of images (N, ...) or a '
                             f'tuple whose first element is one')
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise TypeError(f'{what} must be a tensor holding a batch of images (N, ...), got {_describe(value)}')
    if value.dim() < 2:
        raise ValueError(f'{what} must be a batch of images (N, ...) with at least 2 dimensions, got '
                         f'{_describe(value)}')
    return value


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f'a {value.dtype} tensor of shape {tuple(value.shape)}'
    return f'a {type(value).__name__}'


def _grid(images: torch.Tensor, nrow: int, normalize: bool) -> torch.Tensor:
    """Tile ``(N, C, H, W)`` images with torchvision's ``make_grid``: a ``(3 or 4, H', W')`` grid."""
    from torchvision.utils import make_grid  # importing torchvision costs ~1 s: only when drawing

    return make_grid(images.float(), nrow=nrow, normalize=normalize)


def _png_writer(grid: torch.Tensor, grey: bool) -> Callable[[str], None]:
    """A ``write(tmp_path)`` that saves ``grid`` with the pixels torchvision's ``save_image`` writes.

    ``save_image`` is not used because it always writes RGB: ``make_grid`` repeats a grey image's
    channel three times. A grey grid is written as one 8-bit grey channel here, the same picture
    in a third of the bytes and of the encoding time. The pixels are converted now, as
    ``save_image`` does (``round(x * 255)``), so the writer owns them and may run in another thread.
    """
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to('cpu', torch.uint8).numpy()
    pixels = np.ascontiguousarray(pixels[:, :, 0]) if grey else pixels

    def write(tmp_path: str) -> None:
        from PIL import Image  # torchvision's own dependency
        Image.fromarray(pixels).save(tmp_path)  # the format from the extension, which the temporary keeps
    return write


def _inner(model):
    """The user's model inside a (Distributed)DataParallel wrapper, which has no encode/decode."""
    while not hasattr(model, 'decode') and isinstance(getattr(model, 'module', None), torch.nn.Module):
        model = model.module
    return model


def _device(model) -> torch.device:
    parameter = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    return parameter.device if parameter is not None else torch.device('cpu')


@contextlib.contextmanager
def _drawing(model):
    """Eval mode (no dropout, batch-norm running statistics) and no autograd, then the mode as before."""
    training = getattr(model, 'training', False)
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(training)


def _posterior_mean(model, x: torch.Tensor) -> torch.Tensor:
    encoded = model.encode(x)
    mu = encoded[0] if isinstance(encoded, (tuple, list)) else encoded
    if not isinstance(mu, torch.Tensor) or mu.dim() != 2:
        raise ValueError(f'model.encode(x) must return (mu, logvar) with mu of shape (batch, latent_dim), got '
                         f'{_describe(mu)}')
    return mu


def _require(model, who: str, *methods: str) -> None:
    missing = [name for name in methods if not callable(getattr(model, name, None))]
    if missing:
        raise TypeError(f'{who} needs a model with {" and ".join(m + "()" for m in methods)}, but '
                        f'{type(model).__name__} has no {", ".join(missing)}')


class PictureSaver(Callback):
    """The base of the picture callbacks: one grid per epoch, checked, collected, drawn and written one way.

    :class:`ReconstructionSaver`, :class:`SampleSaver`, :class:`LatentTraversal` and
    :class:`Interpolation` are its subclasses; it is not used on its own. It holds what they
    share: the ``folder``/``filename`` checks at construction, collecting the first images of the
    ``on`` phase (and nothing on the other steps), drawing with the model in eval mode under
    ``no_grad``, writing atomically on rank 0 only, and the builders :meth:`with_handler` and
    :meth:`to_tensorboard`.

    Files are PNGs (or the format the file name's extension says) with the pixels torchvision's
    ``save_image`` writes; grey images are written as one grey channel, not repeated as RGB. In a
    Trial the file is written in a background thread while training goes on (the grid is drawn
    and converted first, so the picture is of that moment's model); ``on_end`` waits for it, so
    the last picture is on the disk when ``Trial.run`` returns. ``save``/``write`` called
    directly write before they return.

    To write another picture, subclass it: set ``_needed`` (images to collect from the batches of
    the ``on`` phase each epoch; 0 draws from the model alone, at the end of each epoch) and
    implement ``_picture(model, collected) -> (images, nrow)``, where ``collected`` holds one
    ``(N, ...)`` CPU tensor per key of ``_keys()``; ``_check_model(model)``, called when
    training starts, can reject an unsuitable model before the first step.

    Args:
        folder (str or PathLike): Folder to write into; created when the first image is written.
        filename (str): File name template; ``{epoch}`` is replaced by torchbearer's epoch.
        on (str): ``'validation'`` or ``'training'``: the phase whose batches are collected.
        input_key (StateKey): Where the inputs are in state.
        normalize (bool): Rescale the grid to ``[0, 1]`` by its min and max.
        image_shape (sequence of int or None): ``(C, H, W)`` of one image, when it cannot be inferred.
        output_transform (callable or None): Applied to the model's images before tiling.

    Example: ::

        >>> from torchbearer_vae import PictureSaver, SampleSaver
        >>> issubclass(SampleSaver, PictureSaver)
        True
    """

    _default_name = 'picture'

    def __init__(self, folder: PathLike, filename: str, on: str = 'validation',
                 input_key: StateKey = torchbearer.X, normalize: bool = False,
                 image_shape: Optional[Sequence[int]] = None,
                 output_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        super().__init__()
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
        self.folder, self.filename, self.on, self.input_key = folder, filename, on, input_key
        self.normalize, self.image_shape, self.output_transform = normalize, image_shape, output_transform
        self._needed = 0
        self._writer = BackgroundWriter()
        self._handlers: List[Handler] = []
        self._collected: List[List[torch.Tensor]] = []
        self._count, self._collecting, self._seen, self._warned = 0, False, False, False

    # -- builders --
    def with_handler(self, handler: Handler):
        """Also send each grid to ``handler(image, index, state)``, torchbearer's imaging-handler protocol.

        ``image`` is the ``(C, H, W)`` grid in ``[0, 1]`` as written to the file, ``index`` is 0
        and ``state`` the Trial's state (outside a Trial, ``{torchbearer.EPOCH: epoch}``).

        Args:
            handler (callable): The handler.

        Returns:
            self, for chaining.

        Example: ::

            >>> from torchbearer_vae import SampleSaver
            >>> grids = []
            >>> saver = SampleSaver(folder='results').with_handler(lambda image, index, state: grids.append(image))
        """
        if not callable(handler):
            raise TypeError(f'handler must be callable as handler(image, index, state), got {type(handler).__name__}')
        self._handlers.append(handler)
        return self

    def to_tensorboard(self, name: Optional[str] = None, log_dir: str = './logs', comment: str = 'torchbearer'):
        """Also write each grid to TensorBoard with torchbearer's imaging handler (needs ``tensorboardX``).

        The grid is made by this callback with :func:`torchvision.utils.make_grid`; torchbearer's
        ``MakeGrid``/``make_grid()`` builder is not used because it passes ``range=`` to
        ``make_grid``, which current torchvision rejects. Images are logged under ``name`` at
        step ``epoch`` in ``log_dir/comment``, where torchbearer's ``TensorBoard`` callback writes.

        Args:
            name (str or None): The image tag; default, e.g. ``'samples'``.
            log_dir (str): TensorBoard log folder.
            comment (str): Sub-folder of ``log_dir`` (torchbearer's convention).

        Returns:
            self, for chaining.

        Raises:
            ImportError: if ``tensorboardX`` is not installed (``pip install tensorboardX``).

        Example: ::

            >>> from torchbearer_vae import SampleSaver
            >>> saver = SampleSaver(folder='results').to_tensorboard(log_dir='logs')  # doctest: +SKIP
        """
        try:
            import tensorboardX  # noqa: F401  (torchbearer's TensorBoard writer)
        except ImportError:
            raise ImportError('to_tensorboard needs the tensorboardX package, which torchbearer uses to write '
                              'TensorBoard files: pip install tensorboardX') from None
        from torchbearer.callbacks.imaging.imaging import _to_tensorboard

        name = self._default_name if name is None else name
        if not isinstance(name, str):
            raise TypeError(f'name must be a str, got {type(name).__name__}')
        return self.with_handler(_to_tensorboard(name=name.replace('{', '{{').replace('}', '}}'),
                                                 log_dir=log_dir, comment=comment))

    # -- torchbearer hooks --
    def on_start(self, state):
        if torchbearer.MODEL in state:
            self._check_model(_inner(state[torchbearer.MODEL]))

    def on_start_epoch(self, state):
        self._seen = False

    def on_start_training(self, state):
        if self.on == 'training':
            self._reset()

    def on_step_training(self, state):
        if self.on == 'training':
            self._step(state)

    def on_end_training(self, state):
        if self.on == 'training':
            self._flush(state)

    def on_start_validation(self, state):
        if self.on == 'validation':
            self._reset()

    def on_step_validation(self, state):
        if self.on == 'validation':
            self._step(state)

    def on_end_validation(self, state):
        if self.on == 'validation':
            self._flush(state)

    def on_end_epoch(self, state):
        if not _is_main_process():
            return
        if self._needed == 0:
            self._draw(state, [], background=True)
        elif self.on == 'validation' and not self._seen and not self._warned:
            self._warned = True
            warnings.warn(f"{type(self).__name__}(on='validation') saw no validation batch this epoch, so it "
                          f"saved nothing: give the Trial validation data (with_generators(val_generator=...))"
                          f" or use on='training'", stacklevel=2)

    def on_end(self, state):
        self._writer.close()  # the pictures of the last epoch are on the disk when Trial.run returns

    # -- collecting: only on the steps that still need images --
    def _keys(self) -> Tuple[Tuple[StateKey, str], ...]:
        return ((self.input_key, 'input_key'),)

    def _check_model(self, model) -> None:
        pass

    def _reset(self):
        self._collected = [[] for _ in self._keys()]
        self._count = 0
        self._collecting = self._needed > 0 and _is_main_process()

    def _step(self, state):
        self._seen = True
        if self._collecting and self._count < self._needed:
            self._collect(state)

    def _collect(self, state):
        take = self._needed - self._count
        for store, (key, argument) in zip(self._collected, self._keys()):
            store.append(self._from_state(state, key, argument)[:take].detach().cpu())
        self._count += store[-1].shape[0]

    def _flush(self, state):
        if not self._collecting or self._count == 0:
            return
        self._collecting = False
        collected = [torch.cat(store) for store in self._collected]
        self._collected = [[] for _ in self._keys()]
        self._draw(state, collected, background=True)

    def _from_state(self, state, key, argument):
        try:
            value = state[key]
        except KeyError:
            raise MissingStateError(f'{type(self).__name__} needs state[{key!r}] ({argument}) but it is not in '
                                    f'state; pass the {argument} under which your data is stored') from None
        return _image_batch(value, f'{type(self).__name__}: state[{key!r}] ({argument})')

    # -- drawing and writing --
    def _picture(self, model, collected: List[torch.Tensor]) -> Tuple[torch.Tensor, int]:
        raise NotImplementedError

    def _draw(self, state, collected: List[torch.Tensor], background: bool = False) -> Optional[str]:
        model = _inner(state[torchbearer.MODEL]) if torchbearer.MODEL in state else None
        with _drawing(model):
            picture = self._picture(model, collected)
        if picture is None:
            return None
        return self._emit(*picture, state, background=background)

    def _emit(self, images: torch.Tensor, nrow: int, state, background: bool = False) -> str:
        """Write the grid (in a Trial: ``background``, while training goes on) and pass it to the handlers."""
        path = os.path.join(os.fspath(self.folder), _file_name(self.filename, state[torchbearer.EPOCH]))
        grid = _grid(images, nrow, self.normalize)
        write = _png_writer(grid, grey=images.shape[1] == 1)
        self._writer.write(path, write)
        if not background:
            self._writer.wait()
        for handler in self._handlers:
            handler(grid, 0, state)
        return path

    def _save(self, model, collected, epoch: int) -> str:
        _check_epoch(epoch)
        model = _inner(model)
        self._check_model(model)
        return self._draw({torchbearer.MODEL: model, torchbearer.EPOCH: epoch}, collected)

    def _transform(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs if self.output_transform is None else self.output_transform(outputs)

    def _as_images(self, tensor: torch.Tensor, what: str, model=None) -> torch.Tensor:
        """Reshape a batch to ``(N, C, H, W)``, or say why that is impossible."""
        count = tensor.shape[0]
        model_shape = tuple(getattr(model, 'input_shape', ()) or ())
        if self.image_shape is not None:
            shape = self.image_shape
        elif tensor.dim() == 4:
            shape = tuple(tensor.shape[1:])
        elif len(model_shape) == 3 and math.prod(model_shape) == tensor[0].numel():
            shape = model_shape
        elif tensor.dim() == 3:
            shape = (1,) + tuple(tensor.shape[1:])
        elif tensor.dim() == 2 and math.isqrt(tensor.shape[1]) ** 2 == tensor.shape[1]:
            side = math.isqrt(tensor.shape[1])
            shape = (1, side, side)
        else:
            raise ValueError(f'{type(self).__name__} cannot tell the image shape of {what} of shape '
                             f'{tuple(tensor.shape)}; pass image_shape=(channels, height, width)')
        if shape[0] not in (1, 3, 4):
            raise ValueError(f'{type(self).__name__} can write 1 (grey), 3 (RGB) or 4 (RGBA) channels, but the '
                             f'images have shape {shape}; pass image_shape if the channels are elsewhere')
        if math.prod(shape) == 0:
            raise ValueError(f'{type(self).__name__} got {what} of shape {tuple(tensor.shape)}, images without pixels')
        if tensor[0].numel() != math.prod(shape):
            raise ValueError(f'{what} of shape {tuple(tensor.shape)} cannot be shown as images of shape {shape}')
        return tensor.reshape((count,) + shape)

    def _decode(self, model, z: torch.Tensor) -> torch.Tensor:
        decoded = _image_batch(model.decode(z), 'model.decode(z)')
        return self._as_images(self._transform(decoded).float().cpu(), 'decoded images', model)
