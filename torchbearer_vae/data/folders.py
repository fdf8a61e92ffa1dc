"""A folder of image files as an :class:`~torchbearer_vae.ImageDataset` of decoded images: :func:`load_image_folder`.

The files are decoded once, with Pillow, into one ``uint8`` tensor ``(N, C, H, W)``, so that
:class:`~torchbearer_vae.TensorLoader` serves batches with no per-item work. In memory, a folder
too large for it is refused before anything is decoded, with the figure and the options that make
it fit (``limit``, ``image_size``). With a cache folder (``cache_dir``, :mod:`.cache`) the images
are decoded into a file there instead, and read back memory-mapped by every later load of the same
folder, decoded the same way, with no file decoded again: a folder larger than the memory then
trains at the disk's speed.
"""
import math
import os
import stat
import sys
import warnings
import zlib
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Set, Tuple, Union

import numpy as np
import torch

from ..checks import check_int, check_path, describe
from ..files import PathLike, file_kind
from ..memory import available_memory
from .cache import FolderCache
from .images import ImageDataset

if TYPE_CHECKING:  # Pillow is imported where images are decoded: `import torchbearer_vae` stays light
    import PIL.Image

__all__ = ['IMAGE_EXTENSIONS', 'find_images', 'load_image_folder']

#: The file extensions read as images (case-insensitive), those of torchvision's ``ImageFolder`` and GIF.
IMAGE_EXTENSIONS = ('.bmp', '.gif', '.jpeg', '.jpg', '.pgm', '.png', '.ppm', '.tif', '.tiff', '.webp')

# What Pillow raises for a corrupt, truncated or hostile file, besides OSError (UnidentifiedImageError, "image
# file is truncated"): SyntaxError for a broken PNG chunk, zlib.error for a broken stream, and the others.
_UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, IndexError, zlib.error)
_CHUNK = 64  # files decoded between progress updates
# A file's header: its index among the paths, and (width, height, bytes to decode it, grey).
_Header = Tuple[int, Tuple[int, int, int, bool]]


def _walk(root: str) -> List[Tuple[str, ...]]:
    """Every image file under ``root`` (symbolic links followed, each folder once), as tuples of path parts."""
    found: List[Tuple[str, ...]] = []
    seen: Set[str] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree: walk each folder once, not forever
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = [name for name in subfolders if not name.startswith('.')]  # .git, .ipynb_checkpoints
        relative = os.path.relpath(folder, root)
        parts = () if relative == os.curdir else tuple(relative.split(os.sep))
        found.extend(parts + (name,) for name in files
                     if not name.startswith('.') and name.lower().endswith(IMAGE_EXTENSIONS))
    return sorted(found)


def find_images(root: PathLike) -> Tuple[List[str], Optional[List[int]], Optional[List[str]]]:
    """The image files under a folder, in a reproducible order, and their labels if the folder has classes.

    Files are found recursively by their extension (:data:`IMAGE_EXTENSIONS`; names starting
    with a dot are skipped) and sorted by their path below ``root``, compared folder name by
    folder name. If every file is inside a first-level subfolder (as torchvision's
    ``ImageFolder`` expects), the subfolders are the classes: sorted names, and each file's label
    is the index of its subfolder. Otherwise there are no labels.

    Args:
        root (str or PathLike): The folder.

    Returns:
        tuple: ``(paths, labels, classes)``: the file paths, and the labels (one int per path)
        and class names, or ``None`` and ``None`` for a folder without classes.

    Raises:
        FileNotFoundError: if ``root`` does not exist or holds no image file.
        ValueError: if ``root`` is a file.

    Example: ::

        >>> import os, tempfile
        >>> from PIL import Image
        >>> from torchbearer_vae import find_images
        >>> with tempfile.TemporaryDirectory() as root:
        ...     for name in ('cat/b.png', 'cat/a.png', 'dog/c.png'):
        ...         os.makedirs(os.path.join(root, os.path.dirname(name)), exist_ok=True)
        ...         Image.new('L', (4, 4)).save(os.path.join(root, name))
        ...     paths, labels, classes = find_images(root)
        ...     [os.path.relpath(path, root) for path in paths], labels, classes
        (['cat/a.png', 'cat/b.png', 'dog/c.png'], [0, 0, 1], ['cat', 'dog'])
    """
    root = os.fspath(check_path('root', root))
    if not os.path.exists(root):
        raise FileNotFoundError(f'no folder {root!r}; give the folder that holds the images')
    if not os.path.isdir(root):
        raise ValueError(f'{root!r} is a file, not a folder; give the folder that holds the images')
    found = _walk(root)
    if not found:
        raise FileNotFoundError(f'no image files ({", ".join(IMAGE_EXTENSIONS)}) in {root!r} or its subfolders')
    paths = [os.path.join(root, *parts) for parts in found]
    if any(len(parts) == 1 for parts in found):
        return paths, None, None
    classes = sorted({parts[0] for parts in found})
    index = {name: label for label, name in enumerate(classes)}
    return paths, [index[parts[0]] for parts in found], classes


def _is_grey(image: 'PIL.Image.Image') -> bool:
    from PIL import Image

    if image.mode in ('P', 'PA'):  # a palette of greys (a grey GIF) is grey
        palette = np.asarray(image.getpalette('RGB') or [0, 0, 0]).reshape(-1, 3)
        return bool((palette == palette[:, :1]).all())
    return Image.getmodebase(image.mode) == 'L'  # L, LA, 1, I, I;16, F


def _resize_and_crop(image: 'PIL.Image.Image', size: int) -> 'PIL.Image.Image':
    """``image`` with its shorter side resized to ``size`` (bilinear, antialiased), cropped to its centre square.

    The same sizes and rounding as torchvision's ``resize(image, size)`` followed by
    ``center_crop(image, size)`` on a PIL image, so that both give the same pixels.
    """
    from PIL import Image

    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_long = int(size * long / short)
    new = (size, new_long) if width <= height else (new_long, size)
    if new != (width, height):
        image = image.resize(new, Image.Resampling.BILINEAR)  # Pillow's filters antialias when they reduce
    left, top = int(round((new[0] - size) / 2.0)), int(round((new[1] - size) / 2.0))
    return image.crop((left, top, left + size, top + size)) if new != (size, size) else image


class _Decoder:
    """Decodes one file to a ``uint8`` array ``(H, W)`` (grey) or ``(H, W, 3)``, or returns why it cannot."""

    def __init__(self, image_size: Optional[int], channels: Optional[int]):
        from PIL import Image

        self.image_size, self.channels = image_size, channels
        self.unreadable = _UNREADABLE + (Image.DecompressionBombError,)  # not an OSError

    def __call__(self, path: str) -> Union[np.ndarray, Exception]:
        try:
            return self.decode(path)
        except self.unreadable as error:
            return error

    def header(self, path: str) -> Union[Tuple[int, int, int, bool], Exception]:
        """``(width, height, bytes to decode it, grey)`` from the file's header (no pixel decoded), or why not.

        Only a regular file is opened: a FIFO or a device (which could block or never end) is unreadable.
        """
        from PIL import Image

        try:
            mode = os.stat(path).st_mode  # follows symbolic links; a loop of links is an OSError
            if not stat.S_ISREG(mode):
                raise OSError(f'{file_kind(mode)}, not a regular file')
            with Image.open(path) as image:  # lazy: reads the header only; a decompression bomb raises here
                width, height = image.size
                grey = self.channels == 1 or (self.channels is None and image.mode not in ('P', 'PA') and
                                              Image.getmodebase(image.mode) == 'L')
                return width, height, self.cost(image, grey), grey
        except self.unreadable as error:
            return error

    def cost(self, image: 'PIL.Image.Image', grey: bool) -> int:
        """Bytes that decoding ``image`` takes at its peak: Pillow's pixels, converted, resized (not kept after)."""
        width, height = image.size
        if self.image_size is not None and image.format == 'JPEG':  # decoded at a reduced scale, as decode does
            scale = 1
            while scale < 8 and 2 * scale * 2 * self.image_size <= min(width, height):
                scale *= 2
            width, height = -(-width // scale), -(-height // scale)
        source = 1 if image.mode in ('1', 'L', 'P') else 2 if image.mode.startswith('I;16') else 4
        converted = 1 if grey else 4  # Pillow holds RGB in 4 bytes a pixel
        total: int = width * height * (source + converted)
        if self.image_size is not None:  # the resized image, before its centre is cropped
            total += converted * self.image_size ** 2 * max(width, height) // max(1, min(width, height))
        return total

    def decode(self, path: str) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as image:
            grey = self.channels == 1 or (self.channels is None and _is_grey(image))
            mode = 'L' if grey else 'RGB'
            if self.image_size is not None and image.format == 'JPEG':
                # JPEG decodes at 1/2, 1/4 or 1/8 scale for far less work; keep at least twice the final size
                # so that the antialiased resize that follows still averages several pixels into each.
                width, height = image.size
                shrink = 2 * self.image_size / min(width, height)
                if shrink <= 0.5:
                    image.draft(image.mode, (max(1, int(width * shrink)), max(1, int(height * shrink))))
            if image.mode.startswith('I;16'):  # 16-bit grey (PNG, TIFF): its top 8 bits, where convert would clip
                image = Image.fromarray((np.asarray(image) >> 8).astype(np.uint8))
            if image.mode == mode:
                image.load()  # what convert would do, without its copy
            else:
                image = image.convert(mode)  # GIF: its first frame; alpha is dropped
            if self.image_size is not None:
                image = _resize_and_crop(image, self.image_size)
            return np.asarray(image)


def _bytes(size: int) -> str:
    for power, unit in ((3, 'GiB'), (2, 'MiB'), (1, 'KiB')):
        if size >= 1024 ** power:
            return f'{size / 1024 ** power:.3g} {unit}'
    return f'{size:,} bytes'


def _check_fits(count: int, shape: Tuple[int, ...], root: str) -> None:
    """Refuse ``count`` uint8 images of ``shape`` that would take more than half the available memory."""
    needed, available = count * math.prod(shape), available_memory()
    if available is not None and needed > available // 2:
        channels, height, width = shape
        raise ValueError(f'{count:,} images of {channels}x{height}x{width} from {root!r} need {_bytes(needed)} in '
                         f'memory, more than half the {_bytes(available)} available; pass limit=N or image_size=N '
                         f'(--limit/--image-size) to load fewer or smaller images')


def _check_headers(headers: List[_Header], paths: List[str], count: int, image_size: Optional[int],
                   channels: Optional[int], root: str, *, allocated: bool,
                   store: Optional[FolderCache] = None) -> Optional[Tuple[int, int, int]]:
    """Refuse, before any is decoded, images whose headers say they would not fit in memory or differ in size.

    Returns the ``(C, H, W)`` the images will have (None without headers).

    ``headers`` are ``(index, (width, height, bytes to decode, grey))``. Unless the ``count`` images are
    ``allocated`` already, their memory (uint8, at the size the headers give) is checked first; then the
    largest image's decoding, on top of it. With a ``store`` the images go to its file: its disk space is
    checked instead, and only the largest image's decoding against the memory.
    """
    if not headers:
        return None
    if image_size is None:
        first, (width, height) = headers[0][0], headers[0][1][:2]
        for index, (other_width, other_height, _, _) in headers:
            if (other_width, other_height) != (width, height):
                raise _different_sizes(root, (width, height), paths[first], (other_width, other_height), paths[index])
    size = (image_size, image_size) if image_size is not None else headers[0][1][1::-1]
    shape: Tuple[int, int, int] = (channels or (1 if all(grey for _, (_, _, _, grey) in headers) else 3),
                                   int(size[0]), int(size[1]))
    kept = 0
    if not allocated and store is not None:
        store.check_space(count * math.prod(shape))
    elif not allocated:
        _check_fits(count, shape, root)
        kept = count * math.prod(shape)
    index, (width, height, cost, _) = max(headers, key=lambda header: header[1][2])
    available = available_memory()
    if available is not None and kept + cost > available // 2:
        raise ValueError(f'{paths[index]!r} is {width}x{height} pixels: decoding it needs {_bytes(cost)} in memory'
                         f'{f" besides the {_bytes(kept)} the images take" if kept else ""}, more than half the '
                         f'{_bytes(available)} available; remove that file from {root!r} or save it smaller')
    return shape


def _different_sizes(root: str, first_size: Tuple[int, ...], first: str, size: Tuple[int, ...],
                     path: str) -> ValueError:
    """The error for images of two sizes (``(width, height)``) without ``image_size``."""
    return ValueError(f'images of different sizes in {root!r} (first {first_size[0]}x{first_size[1]} at {first!r}, '
                      f'then {size[0]}x{size[1]} at {path!r}); pass image_size=N (--image-size N) to resize and crop '
                      f'every image to N x N')


def _progress_bar(progress: Union[bool, Callable[[int, int], Any], None],
                  total: int) -> Tuple[Callable[[int, int], Any], Callable[[], Any]]:
    """A callable ``(done, total)`` and a closer, for ``progress`` (None: a tqdm bar only on a terminal)."""
    if callable(progress):
        return progress, lambda: None
    if progress is False or (progress is None and not sys.stderr.isatty()):
        return lambda done, total: None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit='image', desc='decoding', file=sys.stderr, leave=False)
    return lambda done, total: bar.update(done - bar.n), bar.close


def load_image_folder(root: PathLike, *, image_size: Optional[int] = None, channels: Optional[int] = None,
                      limit: Optional[int] = None, progress: Union[bool, Callable, None] = None,
                      check: Optional[Callable[[Tuple[int, int, int], int], None]] = None,
                      cache_dir: Optional[PathLike] = None) -> ImageDataset:
    """Decode every image file under a folder into an in-memory :class:`~torchbearer_vae.ImageDataset`.

    Files are found and labelled by :func:`find_images` (recursively, sorted; a folder of class
    subfolders gives labels, as torchvision's ``ImageFolder``) and decoded with Pillow (GIF: the
    first frame; palette, grey-with-alpha and RGBA images are converted, alpha dropped). A file
    Pillow cannot read (corrupt, truncated, a decompression bomb) or that is not a regular file
    (a FIFO, a socket, a device: never opened) is skipped, with one warning that counts them and
    names the first; if none can be read, it is an error.

    Without ``image_size`` every image must have the same size. With it, each image's shorter
    side is resized to ``image_size`` (Pillow's bilinear filter, antialiased, with torchvision's
    ``resize`` rounding) and its centre ``image_size`` x ``image_size`` square kept, the pixels of
    torchvision's ``center_crop(resize(image, image_size), image_size)``; a JPEG at least four
    times larger is first decoded at a reduced scale (Pillow's ``draft``) that keeps twice the
    final size.

    The images are held once, ``uint8``: every file's size is read from its header first, and a
    folder whose images would need more than half the available memory (held, plus the largest
    one while it is decoded at full size) is refused before any is decoded, saying how much they need.

    With ``cache_dir`` (e.g. :func:`~torchbearer_vae.default_cache_dir`), the images are decoded
    into a file in that folder rather than into memory (refused only if the disk has not the room),
    and the dataset's ``data`` maps that file: pages are read as batches need them, and the system
    keeps them in memory as far as it has room. The next load of the same folder, decoded the same
    way, reads that file instead of decoding: if the folder still lists the same files with the same
    sizes and modification times, and the file's bytes have the digest written with them; otherwise
    (an image edited, added or removed; the cache cut short, damaged or edited) the folder is decoded
    again and the cache replaced, never trusted, a damaged cache saying so in a warning.

    Args:
        root (str or PathLike): The folder.
        image_size (int or None): Resize and crop every image to this square size, in pixels.
        channels (int or None): 1 (grey) or 3 (RGB); None: 1 if every image read is grey, else 3.
        limit (int or None): Decode only the first ``limit`` readable images (in the sorted order);
            no further file is opened.
        progress (bool, callable or None): A callable ``progress(done, total)`` called as files
            are opened (``total``: the files to open); True or False for a progress bar on
            stderr or none; None for a bar only when stderr is a terminal.
        check (callable or None): Called as ``check(shape, count)`` with the ``(C, H, W)`` the images
            will have and how many will be decoded, known from their headers, before any is decoded:
            raise in it to stop early (the command line refuses a model that would not fit there).
            Called the same way when the images come from the cache.
        cache_dir (str, PathLike or None): A folder to keep the decoded images in, and to read them
            from next time (created if needed; if it cannot be written, a warning says so and the
            images are decoded into memory). None: decode into memory, keep nothing.

    Returns:
        ImageDataset: ``data`` ``uint8`` ``(N, C, H, W)``; ``targets`` the labels (class indices)
        or None; ``classes`` the class names or None; ``paths`` the files decoded, in order.

    Raises:
        FileNotFoundError: if ``root`` does not exist or has no image file.
        ValueError: naming the files, if none can be read, their sizes differ (without
            ``image_size``), or they would not fit in memory (both known from the headers, before decoding).

    Example: ::

        >>> import os, tempfile
        >>> from PIL import Image
        >>> from torchbearer_vae import load_image_folder
        >>> with tempfile.TemporaryDirectory() as root:
        ...     for name, colour in (('red/1.png', (255, 0, 0)), ('grey/1.png', (9, 9, 9))):
        ...         os.makedirs(os.path.join(root, os.path.dirname(name)))
        ...         Image.new('RGB', (40, 30), colour).save(os.path.join(root, name))
        ...     images = load_image_folder(root, image_size=16)
        >>> images.data.shape, images.targets.tolist(), images.classes
        (torch.Size([2, 3, 16, 16]), [0, 1], ['grey', 'red'])
    """
    if image_size is not None:
        check_int('image_size', image_size, minimum=1)
    if channels is not None and check_int('channels', channels) not in (1, 3):
        raise ValueError(f'channels must be 1 (grey), 3 (RGB) or None (1 if every image is grey), got {channels!r}')
    limit = check_int('limit', limit, minimum=1, allow_none=True)
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise TypeError(f'progress must be True, False, None or a callable progress(done, total), got '
                        f'{describe(progress)}')
    root = os.fspath(check_path('root', root))
    paths, labels, classes = find_images(root)
    decode = _Decoder(image_size, channels)
    wanted = len(paths) if limit is None else min(limit, len(paths))
    if image_size is not None:  # the first resize alone could be too large: check one image before decoding any
        _check_fits(1, (channels or 3, image_size, image_size), root)
    store = None if cache_dir is None else _cache(cache_dir, root, paths,
                                                  {'image_size': image_size, 'channels': channels, 'limit': limit})
    found = None if store is None else store.load()
    if found is not None:
        data, read, reasons = found
        if check is not None:
            check(tuple(data.shape[1:]), len(read))
    else:
        update, close = _progress_bar(progress, wanted)
        try:
            data, read, skipped = _decode_all(paths, decode, wanted, root, update, check, store)
            if store is not None:
                data = store.commit(data, read, skipped)
            elif len(read) < len(data):
                data = data[:len(read)].copy()
        finally:
            close()
            if store is not None:
                store.discard()
        reasons = [(path, f'{type(error).__name__}: {error}') for path, error in skipped]
    if reasons:
        first, reason = reasons[0]
        warnings.warn(f'skipped {len(reasons)} unreadable image file{"s" * (len(reasons) > 1)} of '
                      f'{len(read) + len(reasons)} in {root!r}, the first {first!r} ({reason})', stacklevel=2)
    targets = None if labels is None else [labels[index] for index in read]
    dataset = ImageDataset(torch.from_numpy(data), targets, channels_last=False)
    dataset.classes = classes
    dataset.paths = [paths[index] for index in read]
    return dataset


def _cache(cache_dir: PathLike, root: str, paths: List[str], settings: dict) -> Optional[FolderCache]:
    """The folder's cache entry in ``cache_dir``, or None (with a warning) if that folder cannot be written."""
    folder = os.fspath(check_path('cache_dir', cache_dir))
    try:
        os.makedirs(folder, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError('not writable')
    except OSError as error:
        warnings.warn(f'cannot keep the decoded images of {root!r} in the cache folder {folder!r} '
                      f'({type(error).__name__}: {error}): decoding them into memory', stacklevel=3)
        return None
    return FolderCache(folder, root, paths, settings)


def _headers(paths: List[str], start: int, wanted: int, decode: _Decoder,
             skipped: List[Tuple[str, Exception]]) -> Tuple[List[_Header], int]:
    """The headers of the next ``wanted`` readable files from ``paths[start]``, and the index after the last read."""
    headers: List[_Header] = []
    index = start
    while index < len(paths) and len(headers) < wanted:  # limit: no further file is opened
        header = decode.header(paths[index])
        if isinstance(header, Exception):
            skipped.append((paths[index], header))
        else:
            headers.append((index, header))
        index += 1
    return headers, index


def _decode_all(paths: List[str], decode: _Decoder, wanted: int, root: str, update: Callable[[int, int], Any],
                check: Optional[Callable[[Tuple[int, int, int], int], None]] = None,
                store: Optional[FolderCache] = None) -> Tuple[np.ndarray, List[int], List[Tuple[str, Exception]]]:
    """Decode files in order until ``wanted`` are read: ``(data (N, C, H, W), indices read, [(path, error)])``.

    Every file's header is read, and the memory they need checked, before the first is decoded; a
    file that then fails to decode is replaced (with ``limit``) by the next ones, checked the same way.
    ``data`` has ``wanted`` rows, the first ``len(read)`` of them decoded; with a ``store`` it is a memory map
    of the store's file (its disk space checked instead of the memory).
    """
    data: Optional[np.ndarray] = None
    read: List[int] = []
    skipped: List[Tuple[str, Exception]] = []
    start, shown = 0, None
    while len(read) < wanted and start < len(paths):
        headers, start = _headers(paths, start, wanted - len(read), decode, skipped)
        shape = _check_headers(headers, paths, wanted, decode.image_size, decode.channels, root,
                               allocated=data is not None, store=store)
        if check is not None and data is None and shape is not None:
            check(shape, wanted)
        for index, _ in headers:
            path = paths[index]
            array = decode(path)
            if isinstance(array, Exception):
                skipped.append((path, array))
            else:
                if data is None:  # the first readable image gives the size: check the memory needed, once
                    data = _allocate(array, wanted, root, store)
                data = _place(data, len(read), array, paths[read[0]] if read else path, path, root, store)
                read.append(index)
            if (index + 1) % _CHUNK == 0 or len(read) == wanted or index + 1 == len(paths):
                shown = (index + 1, min(len(paths), wanted + len(skipped)))  # one more file per file skipped
                update(*shown)
    if shown != (start, min(len(paths), wanted + len(skipped))):
        update(start, min(len(paths), wanted + len(skipped)))
    if skipped:  # those skipped by their header come first: put them back in the order of the files
        order = {path: index for index, path in enumerate(paths)}
        skipped.sort(key=lambda item: order[item[0]])
    if data is None:
        first, error = skipped[0]
        raise ValueError(f'none of the {len(skipped)} image files in {root!r} could be read; the first, {first!r}: '
                         f'{type(error).__name__}: {error}')
    return data, read, skipped


def _allocate(first: np.ndarray, count: int, root: str, store: Optional[FolderCache] = None) -> np.ndarray:
    shape = (1,) + first.shape if first.ndim == 2 else (first.shape[2],) + first.shape[:2]
    if store is not None:
        store.check_space(count * math.prod(shape))
        return store.allocate((count,) + shape)
    _check_fits(count, shape, root)
    return np.empty((count,) + shape, dtype=np.uint8)


def _place(data: np.ndarray, row: int, array: np.ndarray, first: str, path: str, root: str,
           store: Optional[FolderCache] = None) -> np.ndarray:
    """Write ``array`` (of ``path``) into ``data[row]``; a first colour image among grey ones makes every image RGB."""
    if array.shape[:2] != data.shape[2:]:
        raise _different_sizes(root, data.shape[:1:-1], first, array.shape[1::-1], path)
    if array.ndim == 3 and data.shape[1] == 1:  # channels=None and the first colour image: grey ones become RGB
        if store is not None:
            store.check_space(len(data) * 3 * math.prod(data.shape[2:]))
            colour = store.allocate((len(data), 3) + data.shape[2:])
            colour[:] = data  # the grey channel into each of the three
            data = colour
        else:
            _check_fits(len(data), (3,) + data.shape[2:], root)
            data = np.repeat(data, 3, axis=1)
    if array.ndim == 2:
        data[row] = array  # broadcast: grey into every channel, for grey images among colour ones
    else:
        data[row] = array.transpose(2, 0, 1)
    return data
