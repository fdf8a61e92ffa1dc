"""Grids and image files: a working :class:`MakeGrid`, and the helpers the picture callbacks share.

torchbearer's :class:`~torchbearer.callbacks.imaging.imaging.ImagingCallback` is the picture API
the package builds on: a callback returns an image, and ``to_file``/``to_state``/
``to_tensorboard``/``with_handler``, ``on_train``/``on_val``/``on_test`` come with it. Its
``MakeGrid`` passes ``range=`` to :func:`torchvision.utils.make_grid`, an argument current
torchvision no longer has; :class:`MakeGrid` here is the same callback with that one call
fixed. The rest of this module (private) checks ``{epoch}`` file names, shapes batches as
images, tiles them and converts grids to the pixels a PNG holds.
"""
import math
import os
import re
import string
from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np
import torch
import torchbearer
from torchbearer.callbacks.imaging import imaging as torchbearer_imaging

from ..checks import check_path, describe, plural
from ..files import BackgroundWriter, PathLike

__all__ = ['MakeGrid']

#: What the pictures the package writes say of their maker (a PNG's ``Software`` text, a JPEG's comment): how the
#: command line knows a picture it may replace.
SOFTWARE = 'torchbearer-vae'


class MakeGrid(torchbearer_imaging.MakeGrid):
    """torchbearer's ``MakeGrid``, working on current torchvision: the same arguments and builders.

    It caches the first ``num_images`` images of ``state[key]`` each epoch and tiles them with
    :func:`torchvision.utils.make_grid`. torchbearer's own ``MakeGrid.on_cache`` passes
    ``range=norm_range``, which torchvision renamed ``value_range`` (0.12) and then removed, so it
    fails with a ``TypeError`` on the first grid; this subclass overrides that one method. It
    does not replace torchbearer's class (``torchbearer.callbacks.imaging.MakeGrid`` stays
    torchbearer's): import it from here.

    Args:
        key (StateKey): Where the images ``(B, C, H, W)`` are in state.
        transform (callable or None): Applied to the grid before the handlers.
        num_images (int): Images to cache each epoch.
        nrow, padding, normalize, norm_range, scale_each, pad_value: As for
            :func:`torchvision.utils.make_grid` (``norm_range`` is its ``value_range``).

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import MakeGrid
        >>> callback = MakeGrid(num_images=16, nrow=4).on_val().to_file('inputs_{epoch}.png')  # in a Trial
        >>> MakeGrid(nrow=2).on_cache(torch.rand(4, 1, 8, 8), {}).shape  # 2 x 2 tiles of 8 + 2 padding
        torch.Size([3, 22, 22])
    """

    def on_cache(self, cache: torch.Tensor, state: dict) -> torch.Tensor:
        """Tile the cached images ``(num_images, C, H, W)`` into one ``(C', H', W')`` grid."""
        from torchvision.utils import make_grid

        # torchbearer passes range=, which torchvision no longer accepts: value_range= is its name now.
        grid: torch.Tensor = make_grid(cache, nrow=self.nrow, padding=self.padding, normalize=self.normalize,
                                       value_range=self.norm_range, scale_each=self.scale_each,
                                       pad_value=self.pad_value)
        return grid


# -- {epoch} file names --
# What an {epoch} field may format with: zero padding, width, grouping and an integer type. Nothing
# else: a fill character ('{epoch:/>3}') or '{epoch:c}' (the character whose code is the epoch: 46 is
# '.', 47 '/') would let the epoch number write a path outside the folder.
_EPOCH_SPEC = re.compile(r'0?[0-9]*[,_]?[dxXob]?')


def file_name(filename: str, epoch: int) -> str:
    """``filename`` with ``{epoch}`` filled in, refused unless it names a file inside the folder."""
    name = filename.format(epoch=epoch)
    normal = name.replace('\\', '/')
    if os.path.isabs(name) or normal.startswith('/') or os.path.splitdrive(name)[0] or '..' in normal.split('/'):
        raise ValueError(f'filename {filename!r} must stay inside the folder: no absolute paths or "..", '
                         f'got {name!r} for epoch {epoch}')
    return name


def check_output_path(folder: PathLike, filename: str) -> None:
    """Validate a folder and an ``{epoch}`` filename template before any training happens."""
    from PIL import Image  # torchvision's own image dependency; only needed to list extensions

    check_path('folder', folder)
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
        if conversion is not None or not _EPOCH_SPEC.fullmatch(spec or ''):
            raise ValueError(f'filename {filename!r}: {{epoch}} may only be padded, as in {{epoch:03d}}; got '
                             f'{{epoch{"!" + conversion if conversion else ""}{":" + spec if spec else ""}}}')
    extension = os.path.splitext(file_name(filename, 0))[1].lower()
    if extension not in Image.registered_extensions():
        raise ValueError(f'filename {filename!r} must end in an image extension such as .png, '
                         f'got {extension or "none"!r}')
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f'folder {os.fspath(folder)!r} exists and is not a directory; choose another folder')


# -- batches of images --
def check_inputs(inputs: Any, needed: int, name: str = 'inputs') -> torch.Tensor:
    """A CPU copy of ``inputs`` if it is a float batch ``(N, ...)`` of at least ``needed`` images."""
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point() or inputs.dim() < 2:
        raise TypeError(f'{name} must be a floating point tensor holding a batch of images (N, ...), got '
                        f'{describe(inputs)}')
    if inputs.shape[0] < needed:
        raise ValueError(f'{name} must hold at least {plural(needed, "image")}, got {inputs.shape[0]}')
    return inputs.detach().cpu().clone()


def image_batch(value: Any, what: str) -> torch.Tensor:
    """The images in a model output or state value: the tensor, or the first element of a tuple/list."""
    if isinstance(value, (tuple, list)):  # (recon, mu, logvar) or several inputs: the first one
        if not value:
            raise ValueError(f'{what} is an empty {type(value).__name__}; expected a batch of images (N, ...) or a '
                             f'tuple whose first element is one')
        value = value[0]
    if not isinstance(value, torch.Tensor):
        raise TypeError(f'{what} must be a tensor holding a batch of images (N, ...), got {describe(value)}')
    if value.dim() < 2:
        raise ValueError(f'{what} must be a batch of images (N, ...) with at least 2 dimensions, got '
                         f'{describe(value)}')
    return value


def model_shape(model: Any) -> Tuple[int, ...]:
    """The model's ``input_shape`` if it is an image's ``(C, H, W)``, else ``()``."""
    shape = getattr(model, 'input_shape', None)
    shape = tuple(shape) if isinstance(shape, (tuple, list, torch.Size)) else ()
    return shape if len(shape) == 3 else ()


def check_fits(tensor: torch.Tensor, what: str, shape: Tuple[int, ...], of: str) -> None:
    """An image-shaped batch (3 or more dimensions) must be images of ``shape``, a flat one as many values."""
    rest = tuple(tensor.shape[1:])
    if (tensor.dim() >= 3 and rest != shape and (1,) + rest != shape) or tensor[0].numel() != math.prod(shape):
        raise ValueError(f'{what} of shape {tuple(tensor.shape)} does not fit {of}: give images (N, C, H, W) of '
                         f'(C, H, W) = {shape}, channels first, or flat (N, C*H*W) (for channels-last images, '
                         f'x.permute(0, 3, 1, 2))')


def as_images(tensor: torch.Tensor, what: str, who: str, image_shape: Optional[Sequence[int]] = None,
              model: Any = None) -> torch.Tensor:
    """``tensor`` as ``(N, C, H, W)`` images, or a ValueError saying why it cannot be shown as images."""
    shape_of_model = model_shape(model)
    if image_shape is None and shape_of_model:  # the model's images: the whole shape must fit, not only its size
        check_fits(tensor, what, shape_of_model, f"the model's input_shape {shape_of_model}")
    if image_shape is not None:
        shape = tuple(image_shape)
    elif shape_of_model:
        shape = shape_of_model
    elif tensor.dim() == 4:
        shape = tuple(tensor.shape[1:])
    elif tensor.dim() == 3:
        shape = (1,) + tuple(tensor.shape[1:])
    elif tensor.dim() == 2 and math.isqrt(tensor.shape[1]) ** 2 == tensor.shape[1]:
        side = math.isqrt(tensor.shape[1])
        shape = (1, side, side)
    else:
        raise ValueError(f'{who} cannot tell the image shape of {what} of shape {tuple(tensor.shape)}; pass '
                         f'image_shape=(channels, height, width)')
    if shape[0] not in (1, 3, 4):
        raise ValueError(f'{who} can write 1 (grey), 3 (RGB) or 4 (RGBA) channels, but the images have shape '
                         f'{shape}; pass image_shape if the channels are elsewhere')
    if math.prod(shape) == 0:
        raise ValueError(f'{who} got {what} of shape {tuple(tensor.shape)}, images without pixels')
    if tensor[0].numel() != math.prod(shape):
        raise ValueError(f'{what} of shape {tuple(tensor.shape)} cannot be shown as images of shape {shape}')
    return tensor.reshape((tensor.shape[0],) + shape)


def check_grid_opens(count: int, nrow: int, shape: Tuple[int, ...], who: str, fix: str) -> None:
    """Refuse a grid (``tile``'s) of ``count`` images of ``(C, H, W)`` ``shape`` larger than Pillow opens.

    Pillow refuses to open an image of more than twice ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (a
    decompression bomb) and warns above it: a picture past that could not be looked at, and would
    cost gigabytes to draw. ``fix`` ends the message (what to pass instead).
    """
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    columns = max(1, min(nrow, count))
    rows = -(-count // columns)
    height, width = rows * (shape[-2] + 2) + 2, columns * (shape[-1] + 2) + 2  # make_grid's padding of 2
    if limit is not None and height * width > limit:
        raise ValueError(f'{who}: a grid of {count:,} images of {shape[-2]}x{shape[-1]} pixels would be '
                         f'{width:,}x{height:,} pixels, more than the {limit:,} Pillow opens; {fix}')


def tile(images: torch.Tensor, nrow: int, normalize: bool = False) -> torch.Tensor:
    """Tile ``(N, C, H, W)`` images with torchvision's ``make_grid``: a ``(3 or 4, H', W')`` grid."""
    from torchvision.utils import make_grid  # importing torchvision takes a while: only when drawing

    grid: torch.Tensor = make_grid(images.detach().float().cpu(), nrow=nrow, normalize=normalize)
    return grid


def as_grid(image: Any, nrow: int, normalize: bool, who: str) -> torch.Tensor:
    """What ``draw`` returned as the ``(3 or 4, H, W)`` CPU image handlers receive: a batch tiled, grey as RGB."""
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        raise TypeError(f'{who}.draw must return a float tensor, an image (C, H, W) or a batch (N, C, H, W), or '
                        f'None; got {describe(image)}')
    if image.dim() not in (3, 4) or image.shape[-3] not in (1, 3, 4) or image.numel() == 0:
        raise ValueError(f'{who}.draw must return an image (C, H, W) or a batch (N, C, H, W) with 1 (grey), 3 '
                         f'(RGB) or 4 (RGBA) channels and some pixels, got {describe(image)}')
    if image.dim() == 4:
        return tile(image, nrow, normalize)
    single = image.detach().float().cpu()
    return single.repeat(3, 1, 1) if single.shape[0] == 1 else single  # as make_grid shows grey images


# -- files --
class ImageFiles:
    """A torchbearer imaging handler that writes each image atomically to ``folder/filename``, ``{epoch}`` filled in.

    ``{epoch}`` is torchbearer's ``state[EPOCH]`` plus ``first_epoch``: 0 (torchbearer's numbering, as its own
    ``to_file`` names files) unless the picture counts from 1 (:meth:`PictureSaver.number_epochs_from`).

    The files go through the run's :class:`~torchbearer_vae._io.BackgroundWriter` (kept in the
    Trial's state), in order with the run's other files; :meth:`wait` waits for them and raises
    a failed write of this handler's.
    """

    def __init__(self, folder: PathLike, filename: str):
        check_output_path(folder, filename)
        self.folder, self.filename = folder, filename
        self.first_epoch = 0

    def path(self, epoch: int) -> str:
        """The file of torchbearer's ``epoch`` (0-based), numbered from ``first_epoch``."""
        return os.path.join(os.fspath(self.folder), file_name(self.filename, epoch + self.first_epoch))

    def __call__(self, image: torch.Tensor, index: int, state: dict) -> None:
        BackgroundWriter.of_run(state).write(self.path(state[torchbearer.EPOCH]), _png_writer(image), owner=self)

    def wait(self, state: dict) -> None:
        BackgroundWriter.of_run(state).wait(owner=self)


def _png_writer(grid: torch.Tensor) -> Callable[[str], None]:
    """A ``write(tmp_path)`` that saves a ``(3 or 4, H, W)`` grid with the pixels ``save_image`` writes.

    ``save_image`` is not used because it always writes RGB, and ``make_grid`` repeats a grey
    image's channel three times: a grid whose three channels are equal is written as one 8-bit
    grey channel here, the same picture in a third of the bytes and of the encoding time. The
    pixels are converted now, as ``save_image`` does (``round(x * 255)``), so the writer owns them
    and may run in another thread.
    """
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to('cpu', torch.uint8).numpy()
    grey = pixels.shape[2] == 3 and (pixels[:, :, :1] == pixels[:, :, 1:]).all()
    pixels = np.ascontiguousarray(pixels[:, :, 0]) if grey else pixels

    def write(tmp_path: str) -> None:
        from PIL import Image, PngImagePlugin  # torchvision's own dependency
        picture = Image.fromarray(pixels)
        extension = os.path.splitext(tmp_path)[1].lower()  # the format from the extension, which the temporary keeps
        if extension == '.png':
            maker = PngImagePlugin.PngInfo()
            maker.add_text('Software', SOFTWARE)
            picture.save(tmp_path, pnginfo=maker)
        elif extension in ('.jpg', '.jpeg'):
            picture.save(tmp_path, comment=SOFTWARE)
        else:
            picture.save(tmp_path)
    return write


def written_by_package(path: PathLike) -> bool:
    """Whether ``path`` is a picture the package wrote, marked :data:`SOFTWARE`.

    The mark is a PNG's ``Software`` text or a JPEG's comment; the other formats carry none.
    """
    from PIL import Image
    if not os.path.isfile(path):  # a FIFO or a device is never opened (a FIFO would block), nor is it ours
        return False
    try:
        with Image.open(path) as picture:
            maker = picture.info.get('Software', picture.info.get('comment'))
    except Exception:  # PIL raises many types for a file that is not an image
        return False
    return maker in (SOFTWARE, SOFTWARE.encode())
