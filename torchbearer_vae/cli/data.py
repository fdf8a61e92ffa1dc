"""The data of a ``torchbearer-vae`` run: what ``--dataset`` names, read into memory, and the run's split of it.

``--dataset`` is ``mnist``, ``fashion-mnist``, ``cifar10`` (downloaded into ``--data-dir`` if missing),
``digits`` (scikit-learn's, no download), ``idx:DIR`` (IDX files) or ``folder:DIR`` (a folder of image
files, decoded by :func:`~torchbearer_vae.load_image_folder` with ``--image-size`` and ``--channels``).
The run's options record folders as absolute paths, so every command finds the data from anywhere.

Internal to the command line (:mod:`torchbearer_vae.cli`); every problem is a :class:`CommandError`.
"""
import argparse
import hashlib
import math
import os
import sys
import warnings
import zlib
from typing import Any, Callable, Optional, Tuple

import torch
from torch.utils.data import Dataset

from ..checks import plural
from ..data.cache import default_cache_dir
from ..data.datasets import (
    IDXDataset,
    ImageDataset,
    SizedDataset,
    load_cifar10,
    load_digits,
    load_mnist,
    train_val_split,
)
from ..data.folders import load_image_folder
from ..errors import CommandError
from .limits import check_image_size_fits

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

IDX, FOLDER = 'idx:', 'folder:'
NAMES = ('mnist', 'fashion-mnist', 'cifar10', 'digits')  # and idx:DIR, folder:DIR
DEFAULT_DATASET, DEFAULT_DATA_DIR = 'mnist', 'data'
_DOWNLOADED = ('mnist', 'fashion-mnist', 'cifar10')


def unreadable(error: BaseException) -> str:
    """An exception as one phrase: its message, or its type and message when the type says something."""
    text = ' '.join(str(error).split()) or type(error).__name__
    return text if isinstance(error, (ValueError, RuntimeError, OSError)) else f'{type(error).__name__}: {text}'


def shown(name: Optional[str]) -> str:
    """The dataset's name as ``--dataset`` spells it (None: the default)."""
    return name or DEFAULT_DATASET


def is_folder(name: Optional[str]) -> bool:
    return isinstance(name, str) and name.startswith(FOLDER)


def run_name(name: Optional[str]) -> str:
    """runs/<this>: the dataset's name, or the last part of the IDX folder's or image folder's path."""
    for prefix in (IDX, FOLDER):
        if isinstance(name, str) and name.startswith(prefix):
            return os.path.basename(os.path.normpath(name[len(prefix):])) or prefix[:-1]
    return shown(name)


def check_preprocessing(name: Optional[str], image_size: Optional[int], channels: Optional[int]) -> None:
    """Refuse ``--image-size``/``--channels`` for data that is not a folder of image files (its size is fixed)."""
    given = [option for option, value in (('--image-size', image_size), ('--channels', channels)) if value is not None]
    if given and not is_folder(name):
        raise CommandError(f'{" and ".join(given)} apply to --dataset folder:DIR (they resize and convert image '
                           f'files); --dataset {shown(name)} has images of one fixed size: leave {" and ".join(given)} '
                           f'out')


def load_dataset(name: Optional[str], data_dir: Optional[str], limit: Optional[int] = None, *,
                 image_size: Optional[int] = None, channels: Optional[int] = None,
                 verbose: bool = True, download: bool = True,
                 check_shape: Optional[Callable[[Tuple[int, int, int], int], None]] = None,
                 cache_dir: Optional[str] = None) -> ImageDataset:
    """The images of ``--dataset`` (an :class:`ImageDataset`), the first ``limit`` of them if given.

    IDX files (mnist, fashion-mnist, idx:DIR) are read only as far as ``limit``, and a folder opens
    only the files it keeps: a large or hostile input costs no more than the images used. A folder is
    decoded with a progress bar on a terminal; ``verbose`` then prints one line of what was read
    (and one per file skipped as unreadable, instead of Python's two-line warning). ``download=False``:
    mnist, fashion-mnist and cifar10 are read only if ``data_dir`` has them (for data a checkpoint names).
    ``check_shape(shape, count)``: a folder's check before any image is decoded (``load_image_folder``'s ``check``).
    ``cache_dir``: where a folder's decoded images are kept and read from (:func:`cache_folder`); None: nowhere.

    Raises:
        CommandError: naming ``--dataset`` and what is wrong with its files (missing, truncated, not IDX,
            a folder where a file should be, no images, too large for the memory).
    """
    if not isinstance(name, (str, type(None))) or not isinstance(data_dir, (str, type(None))):  # an edited checkpoint
        raise CommandError(f'the dataset recorded in the checkpoint ({name!r} in {data_dir!r}) is not a name; give '
                           f'--dataset (and --data-dir)')
    data_dir = data_dir or DEFAULT_DATA_DIR
    check_preprocessing(name, image_size, channels)
    if image_size is not None:
        check_image_size_fits(image_size)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always', UserWarning)
            dataset = _read(name, data_dir, limit, image_size, channels, download, check_shape, cache_dir)
    except (RuntimeError, OSError, EOFError, zlib.error, ValueError) as error:  # EOFError, BadGzipFile: a cut gzip
        hint = _hint(name)
        if not download and hint:  # the library's "pass download=True" is not the command line's advice
            error = RuntimeError(str(error).replace(' (or pass download=True)', ''))
            hint = '; data a checkpoint names is never downloaded: give --dataset and --data-dir to download it'

        raise CommandError(f'--dataset {shown(name)}: {unreadable(error).rstrip(".") if hint else unreadable(error)}'
                           f'{hint}') from None
    for warning in caught:  # skipped files: one line each, whatever verbose says (they change the data)
        if issubclass(warning.category, UserWarning):
            print(f'torchbearer-vae: warning: --dataset {shown(name)}: {" ".join(str(warning.message).split())}',
                  file=sys.stderr)
    if limit is not None and limit < len(dataset):  # digits, cifar10: in memory already
        dataset = ImageDataset(dataset.data[:limit], dataset.targets[:limit] if dataset.targets is not None else None)
    if len(dataset) == 0:
        raise CommandError(f'--dataset {shown(name)} holds no images; give a dataset with images')
    if verbose and is_folder(name):
        data = dataset.data
        print(f'--dataset {name}: {plural(len(data), "image")} of {"x".join(map(str, data.shape[1:]))} '
              f'({math.prod(data.shape) / 2 ** 20:.3g} MiB '
              f'{"in memory" if cache_dir is None else "in the cache " + repr(cache_dir) + ", memory-mapped"})',
              file=sys.stderr)
    return dataset


def _read(name: Optional[str], data_dir: str, limit: Optional[int], image_size: Optional[int], channels: Optional[int],
          download: bool, check_shape: Optional[Callable[[Tuple[int, int, int], int], None]],
          cache_dir: Optional[str]) -> ImageDataset:
    if name is None or name in ('mnist', 'fashion-mnist'):
        return load_mnist(data_dir, train=True, fashion=name == 'fashion-mnist', limit=limit, download=download)
    if name == 'cifar10':
        return load_cifar10(data_dir, train=True, limit=limit, download=download)
    if name == 'digits':
        return load_digits()
    if name is not None and is_folder(name):
        return load_image_folder(name[len(FOLDER):], image_size=image_size, channels=channels, limit=limit,
                                 check=check_shape, cache_dir=cache_dir)
    return IDXDataset.from_folder(name[len(IDX):], limit=limit)


def cache_folder(args: argparse.Namespace) -> Optional[str]:
    """Where a command keeps a folder's decoded images: --cache-dir, else the default folder; None for --no-cache."""
    if getattr(args, 'no_cache', False):
        return None
    return getattr(args, 'cache_dir', None) or default_cache_dir()


def _hint(name: Optional[str]) -> str:
    if name is None or name in _DOWNLOADED:
        return ("; or try --dataset digits (scikit-learn's 8x8 digits, no download), --dataset folder:DIR (your own "
                "images) or --dataset idx:DIR")
    return ''


def check_recorded_data(name: Any, data_dir: Any, *, source: str, typed_dataset: bool, typed_data_dir: bool,
                        remedy: str) -> bool:
    """Whether missing data may be downloaded; CommandError for data a checkpoint names that is not there.

    A checkpoint decides nothing a user did not type: the data it names (``folder:DIR``, ``idx:DIR``, mnist's
    ``data_dir``) is read only if it is a folder here, never a filesystem's root; it is named on stderr before it
    is read, and never downloaded (only ``--dataset`` with ``--data-dir`` typed may download). ``source`` names
    the checkpoint in the messages (``--checkpoint PATH``), ``remedy`` says what to do instead.
    """
    if not isinstance(name, (str, type(None))) or not isinstance(data_dir, (str, type(None))):
        return False  # load_dataset refuses it
    if is_downloaded(name):
        if typed_dataset and typed_data_dir:
            return True
        folder = data_dir or DEFAULT_DATA_DIR
    elif not typed_dataset and name is not None and name != 'digits':  # folder:DIR or idx:DIR, from the checkpoint
        folder = name.split(':', 1)[1]
    else:
        return False
    folder = os.path.abspath(folder)
    if not os.path.isdir(folder) or os.path.dirname(folder) == folder:
        what = 'a filesystem\'s root' if os.path.isdir(folder) else 'not a folder here'
        raise CommandError(f'{source} reads --dataset {shown(name)} from {folder}, which is {what}: nothing was read '
                           f'or downloaded; {remedy}')
    print(f'reading --dataset {shown(name)} from {folder} (named by {source})', file=sys.stderr)
    return False


def is_downloaded(name: Optional[str]) -> bool:
    """Whether ``--dataset`` names data torchvision downloads into ``--data-dir`` (mnist, fashion-mnist, cifar10)."""
    return name is None or name in _DOWNLOADED


def files_digest(name: Optional[str], dataset: Any) -> Optional[str]:
    """A digest of the files a ``folder:`` dataset was read from (their sorted paths below the folder), else None."""
    paths = getattr(dataset, 'paths', None)
    if name is None or not is_folder(name) or paths is None:
        return None
    root = name[len(FOLDER):]
    listing = '\n'.join(os.path.relpath(path, root).replace(os.sep, '/') for path in sorted(paths))
    return hashlib.sha256(listing.encode('utf-8', 'surrogateescape')).hexdigest()


def images_digest(dataset: Any) -> Optional[str]:
    """A digest of the decoded images (a ``folder:`` or IDX dataset's tensor), else None.

    With :func:`files_digest` it lets ``--resume`` notice an image whose content changed under its old name,
    at the cost of hashing what is already in memory (no file is read again; about 0.1 s per 50 MB).
    """
    data = getattr(dataset, 'data', None)
    if not isinstance(data, torch.Tensor):
        return None
    flat = data.detach().cpu().contiguous().reshape(-1).numpy()
    digest = hashlib.sha256()
    for start in range(0, flat.size, 1 << 24):  # a chunk at a time: a memory-mapped cache stays on disk
        digest.update(flat[start:start + (1 << 24)].data)
    return digest.hexdigest()


def image(item: Any) -> Any:
    """The image of a dataset's item: ``(image, label)``, or the image alone (a folder without class subfolders)."""
    return item[0] if isinstance(item, (tuple, list)) else item


def split(dataset: SizedDataset, options: dict) -> Tuple[Dataset, Dataset]:
    """``train_val_split`` of the run's options; CommandError if the images are too few to split."""
    limit = f' --limit {options["limit"]}' if options.get('limit') else ''
    if len(dataset) < 2:  # no --val-fraction helps: say so, rather than suggest another one
        raise CommandError(f'--dataset {shown(options["dataset"])}{limit}: {plural(len(dataset), "image")} cannot be '
                           f'split into training and validation images, whatever --val-fraction: give at least 2 '
                           f'images')
    try:
        return train_val_split(dataset, options['val_fraction'], seed=options['seed'])
    except ValueError as error:
        raise CommandError(f'--dataset {shown(options["dataset"])}{limit}: {plural(len(dataset), "image")} are too '
                           f'few to split with --val-fraction {options["val_fraction"]:g}: {error}') from None


def absolute(options: dict) -> dict:
    """``options`` with the dataset's folder and ``data_dir`` absolute, so the run's data is found from anywhere."""
    options = dict(options)
    for prefix in (IDX, FOLDER):
        if isinstance(options.get('dataset'), str) and options['dataset'].startswith(prefix):
            options['dataset'] = prefix + os.path.abspath(options['dataset'][len(prefix):])
    if isinstance(options.get('data_dir'), str):
        options['data_dir'] = os.path.abspath(options['data_dir'])
    return options
