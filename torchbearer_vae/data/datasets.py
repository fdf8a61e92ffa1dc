"""Data for autoencoders: the ``(x, x)`` wrapper, a train/validation split, in-memory images, local IDX/MNIST files."""
import glob
import os
import random
import shutil
import urllib.error
from typing import Any, Callable, List, Optional, Protocol, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset
from torchbearer.cv_utils import DatasetValidationSplitter

from ..checks import (
    check_bool,
    check_callable,
    check_choice,
    check_int,
    check_number,
    check_path,
    describe,
    plural,
)
from ..files import PathLike
from . import idx as idx_files
from .images import ImageDataset

__all__ = ['AutoEncoderDataset', 'train_val_split', 'read_idx', 'ImageDataset', 'IDXDataset', 'load_mnist',
           'load_digits', 'load_cifar10']


class SizedDataset(Protocol):
    """The type of a map-style dataset: items by index and a length (a ``Dataset``, a ``TensorDataset``, a tensor)."""

    def __getitem__(self, index: int) -> Any: ...

    def __len__(self) -> int: ...


def _first(item: Any, index: int) -> Any:
    """The input of a dataset item: the item itself, or the first element of a tuple/list."""
    if isinstance(item, (tuple, list)):
        if len(item) == 0:
            raise ValueError(f'dataset item {index} is an empty {type(item).__name__}; items must be x or (x, ...)')
        item = item[0]
    if item is None:  # e.g. a loader that returns None for an unreadable file: say so here, not in collate
        raise ValueError(f'dataset item {index} has None as its input; items must be x or (x, ...) with x an image')
    return item


def _label(item: Any, index: int) -> Any:
    """The label of a dataset item ``(x, label, ...)`` (for ``keep_labels``)."""
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        got = f'a {type(item).__name__} of {len(item)}' if isinstance(item, (tuple, list)) else describe(item)
        raise ValueError(f'keep_labels=True needs items (x, label, ...), but item {index} is {got}; wrap a labelled '
                         f'dataset (e.g. TensorDataset(images, labels)) or leave keep_labels out')
    return item[1]


def _flatten(value: Any, index: int) -> torch.Tensor:
    if isinstance(value, (np.ndarray, np.generic)):
        value = torch.from_numpy(np.asarray(value))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f'flatten_target needs tensor items, but item {index} is a {type(value).__name__}; '
                        f'give the wrapped dataset a transform such as torchvision.transforms.ToTensor()')
    return value.reshape(-1)


def _refuse_pil_image(value: Any, role: str, index: int) -> None:
    """Refuse a PIL image, which torch's default collate cannot batch, where it is made rather than in collate."""
    if type(value).__module__.startswith('PIL.'):  # no PIL import: `import torchbearer_vae` stays light
        raise TypeError(f'item {index} has a PIL image as its {role}, which a DataLoader cannot batch; give the '
                        f'wrapped dataset transform=torchvision.transforms.ToTensor() (or pass it here as '
                        f'both transform and target_transform)')


class AutoEncoderDataset(Dataset):
    """Wrap a dataset of ``x`` or ``(x, label, ...)`` items so that it yields ``(x, target)``.

    An autoencoder learns to reproduce its input, so the target is the input itself: the label
    of a classification dataset is dropped. The target can be flattened (for a model whose
    output is flat) or computed by ``target_transform``; ``transform`` changes only the input,
    which is what a denoising autoencoder needs (noisy input, clean target)::

        noisy = AutoEncoderDataset(mnist, transform=lambda x: (x + 0.3 * torch.randn_like(x)).clamp(0, 1))

    ``len()`` and indexing pass through to the wrapped dataset, which may be a torchvision
    dataset, a :class:`~torch.utils.data.TensorDataset`, a :class:`~torch.utils.data.Subset`, or
    a plain tensor. The wrapper is picklable (for ``DataLoader(num_workers > 0)``) when the
    dataset and the transforms are.

    With ``keep_labels=True`` the items are ``(x, target, label)`` instead, the label being the
    second element of the wrapped item, for a model or picture that needs it (a conditional VAE,
    a latent scatter coloured by class). The criterion still gets ``(x, target)``: give the Trial
    :func:`~torchbearer_vae.load_batch_with_labels` (``trial.with_loader(load_batch_with_labels)``),
    which puts the labels of each batch in ``state[torchbearer_vae.LABEL]``.

    Args:
        dataset: A map-style dataset (``__getitem__`` and ``__len__``).
        transform (callable or None): Applied to the input only.
        target_transform (callable or None): Computes the target from the (untransformed) input.
        flatten_target (bool): Return the target as a 1-D tensor (``x.view(-1)``).
        keep_labels (bool): Yield ``(x, target, label)``; the wrapped items must be ``(x, label, ...)``.

    Example: ::

        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> from torchbearer_vae import AutoEncoderDataset
        >>> images = torch.rand(10, 1, 28, 28)
        >>> data = AutoEncoderDataset(TensorDataset(images, torch.zeros(10)), flatten_target=True)
        >>> x, target = data[0]
        >>> x.shape, target.shape
        (torch.Size([1, 28, 28]), torch.Size([784]))
        >>> x, target, label = AutoEncoderDataset(TensorDataset(images, torch.arange(10)), keep_labels=True)[3]
        >>> label
        tensor(3)
    """

    def __init__(self, dataset: SizedDataset, *, transform: Optional[Callable[..., Any]] = None,
                 target_transform: Optional[Callable[..., Any]] = None, flatten_target: bool = False,
                 keep_labels: bool = False) -> None:
        if not (hasattr(dataset, '__getitem__') and hasattr(dataset, '__len__')):
            raise TypeError(f'AutoEncoderDataset needs a map-style dataset with __getitem__ and __len__, got '
                            f'{type(dataset).__name__}')
        self.dataset = dataset
        self.transform = check_callable('transform', transform, allow_none=True)
        self.target_transform = check_callable('target_transform', target_transform, allow_none=True)
        self.flatten_target = check_bool('flatten_target', flatten_target)
        self.keep_labels = check_bool('keep_labels', keep_labels)
        try:
            size = len(dataset)
        except TypeError as error:  # e.g. a 0-d tensor, which has __len__ but no length
            raise TypeError(f'AutoEncoderDataset needs a dataset with a length, got {describe(dataset)}: {error}') \
                from None
        if size > 0:  # fail now on a dataset whose items cannot work, not at the first batch
            self[0]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Tuple[Any, ...]:
        item = self.dataset[index]
        x = _first(item, index)
        target = x if self.target_transform is None else self.target_transform(x)
        if self.flatten_target:
            target = _flatten(target, index)
        if self.transform is not None:
            x = self.transform(x)
        _refuse_pil_image(x, 'input', index)
        _refuse_pil_image(target, 'target', index)
        return (x, target, _label(item, index)) if self.keep_labels else (x, target)

    def __repr__(self) -> str:
        options = ''.join(f', {name}={getattr(self, name)!r}' for name in
                          ('transform', 'target_transform', 'flatten_target', 'keep_labels') if getattr(self, name))
        return f'{type(self).__name__}({type(self.dataset).__name__} of {len(self)}{options})'


def train_val_split(dataset: SizedDataset, val_fraction: float = 0.1, *,
                    seed: Optional[int] = None) -> Tuple[Dataset, Dataset]:
    """Split a dataset at random into training and validation parts.

    A thin wrapper over torchbearer's :class:`~torchbearer.cv_utils.DatasetValidationSplitter`
    that checks its arguments and leaves Python's global random state as it found it (the
    splitter reseeds the global generator).

    Args:
        dataset: The map-style dataset to split.
        val_fraction (float): Fraction of the items for validation, in ``(0, 1)``; the number of
            validation items is rounded down.
        seed (int or None): Seed for a reproducible split.

    Returns:
        tuple: ``(train_dataset, val_dataset)``, disjoint, covering ``dataset``.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import train_val_split
        >>> train, val = train_val_split(torch.arange(100), val_fraction=0.1, seed=1)
        >>> len(train), len(val)
        (90, 10)
    """
    val_fraction = check_number('val_fraction', val_fraction, above=0, below=1)
    seed = check_int('seed', seed, allow_none=True)
    size = len(dataset)
    if size < 2:
        raise ValueError(f'{plural(size, "item")} cannot be split into a training and a validation set, whatever '
                         f'val_fraction: each needs an item; use more data')
    if int(size * val_fraction) < 1 or int(size * val_fraction) >= size:
        raise ValueError(f'val_fraction={val_fraction} of {plural(size, "item")} leaves an empty training or '
                         f'validation set; use more data or another fraction')
    saved = random.getstate()
    try:
        splitter = DatasetValidationSplitter(size, val_fraction, shuffle_seed=seed)
    finally:
        if seed is not None:
            random.setstate(saved)
    return splitter.get_train_dataset(dataset), splitter.get_val_dataset(dataset)


def read_idx(path: PathLike, *, limit: Optional[int] = None) -> torch.Tensor:
    """Read an IDX file (the MNIST format), gzip-compressed or raw, into a tensor.

    torchvision's reader opens only uncompressed files and checks them with ``assert``; this one
    reads both (the compression is detected from the content, not the name) and treats the file
    as untrusted: only a regular file is read (not a FIFO or a device), the header's shape is
    checked against the size of the file before anything is allocated, and reading stops at the
    size the header announces, so a truncated, padded or decompression-bomb file is refused.

    Args:
        path (str or PathLike): The file, e.g. ``t10k-images-idx3-ubyte.gz``.
        limit (int or None): Read only the first ``limit`` items (images or labels); only their
            bytes are decompressed. None reads the whole file and checks that it holds exactly
            what its header announces.

    Returns:
        torch.Tensor: The array with its stored shape (its first dimension cut to ``limit``) and
        type (``uint8`` for MNIST).

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: naming the file, if it is not a regular, well-formed IDX file (a folder, a
            FIFO, an empty, truncated or corrupt file, or a corrupt gzip).
    """
    check_path('path', path)
    return idx_files.read(path, check_int('limit', limit, minimum=1, allow_none=True))[0]


# -- IDX files --
_SPLIT_PREFIXES = {'train': 'train', 'test': 't10k'}


def _find_idx_pair(root: str, split: Optional[str]) -> Tuple[str, str]:
    """Find the MNIST-style images and labels files of ``split`` in ``root``."""
    if not os.path.exists(root):  # said as load_image_folder says it: glob alone would find no files
        raise FileNotFoundError(f'no folder {root!r}; give the folder that holds the IDX files')
    splits = [split] if split is not None else ['train', 'test']

    # regular files first: a folder of that name is named in read_idx's error, not chosen
    def matches(pattern: str) -> List[str]:
        names = glob.glob(os.path.join(glob.escape(root), pattern))
        return sorted(names, key=lambda name: (not os.path.isfile(name), name))

    for name in splits:
        prefix = _SPLIT_PREFIXES[name]
        images, labels = matches(f'{prefix}-images-idx3-ubyte*'), matches(f'{prefix}-labels-idx1-ubyte*')
        if images and labels:
            return images[0], labels[0]
    wanted = ' or '.join(f'{_SPLIT_PREFIXES[name]}-images-idx3-ubyte[.gz] and '
                         f'{_SPLIT_PREFIXES[name]}-labels-idx1-ubyte[.gz]' for name in splits)
    raise FileNotFoundError(f'no IDX files in {root!r}: expected {wanted}')


class IDXDataset(ImageDataset):
    """Images (and labels) from IDX files, such as a local copy of MNIST or Fashion-MNIST.

    An :class:`ImageDataset`: ``self.data`` is the ``uint8`` ``(N, H, W)`` array of the file
    (as in torchvision's MNIST) and items are ``(1, H, W)`` float tensors in ``[0, 1]``. The
    files are read with :func:`read_idx` (regular files only, sizes checked, decompression
    bomb-proof).

    Args:
        images (str or PathLike): The ``idx3`` images file.
        labels (str or PathLike or None): The ``idx1`` labels file; without it items are images only.
        limit (int or None): Read only the first ``limit`` images (and labels); only their bytes
            are decompressed.
        transform (callable or None): Applied to each image tensor.
        target_transform (callable or None): Applied to each label.

    Raises:
        FileNotFoundError: if a file does not exist.
        ValueError: naming the file, if it is not a well-formed IDX file of images (or labels),
            holds no images, or the two files disagree on the number of images.

    Example: ::

        >>> from torchbearer_vae import IDXDataset
        >>> mnist = IDXDataset.from_folder('../shared/data/mnist', limit=1000)  # doctest: +SKIP
        >>> image, label = mnist[0]  # doctest: +SKIP
    """

    def __init__(self, images: PathLike, labels: Optional[PathLike] = None, *, limit: Optional[int] = None,
                 transform: Optional[Callable] = None, target_transform: Optional[Callable] = None):
        check_path('images', images)
        if labels is not None:
            check_path('labels', labels)
        limit = check_int('limit', limit, minimum=1, allow_none=True)
        data, shape = idx_files.read(images, limit)
        if data.dim() != 3 or data.dtype != torch.uint8:
            raise ValueError(f'{os.fspath(images)!r} holds {describe(data)}, not uint8 images (N, H, W); give an '
                             f'idx3-ubyte images file')
        if len(data) == 0:
            raise ValueError(f'{os.fspath(images)!r} holds no images (its header announces {shape}); download it '
                             f'again')
        targets = None
        if labels is not None:
            targets, count = idx_files.read(labels, limit)
            if count != shape[:1]:
                raise ValueError(f'{os.fspath(labels)!r} holds labels of shape {count} for the {shape[0]} images in '
                                 f'{os.fspath(images)!r}; give the labels file of the same split')
        super().__init__(data, targets, channels_last=False, transform=transform, target_transform=target_transform)

    @classmethod
    def from_folder(cls, root: PathLike, split: Optional[str] = None, *, limit: Optional[int] = None,
                    **kwargs: Any) -> 'IDXDataset':
        """Load the MNIST-named IDX files of a folder.

        Args:
            root (str or PathLike): Folder holding ``train-*`` and/or ``t10k-*`` IDX files (``.gz`` or raw).
            split (str or None): ``'train'``, ``'test'``, or ``None`` for whichever is there (train first).
            limit (int or None): Read only the first ``limit`` images (and labels).
            **kwargs: Passed to :class:`IDXDataset` (``transform``, ``target_transform``).

        Returns:
            IDXDataset: The dataset.

        Raises:
            FileNotFoundError: naming the files expected, when they are not there.
        """
        check_path('root', root)
        if split is not None:
            check_choice('split', split, ('train', 'test'))
        images, labels = _find_idx_pair(os.fspath(root), split)
        return cls(images, labels, limit=limit, **kwargs)


def load_digits() -> ImageDataset:
    """The 1,797 8x8 handwritten digits that ship with scikit-learn: real data with no download.

    scikit-learn stores intensities 0..16; they are scaled to 0..255 and rounded to ``uint8``
    (an error below 0.2% of the range) so that the dataset has the same form as MNIST.

    Returns:
        ImageDataset: Items ``(1, 8, 8)`` images in ``[0, 1]`` with their labels.

    Raises:
        RuntimeError: when scikit-learn is not installed, saying how to install it.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise RuntimeError('the digits dataset needs scikit-learn: pip install "torchbearer-vae[digits]" '
                           '(or pip install scikit-learn)') from None
    digits = sklearn_digits()
    data = torch.from_numpy(np.rint(digits.images * (255 / 16))).to(torch.uint8)
    return ImageDataset(data, torch.from_numpy(digits.target))


def load_mnist(root: PathLike = 'data', train: bool = True, *, download: bool = True, fashion: bool = False,
               limit: Optional[int] = None) -> IDXDataset:
    """MNIST (or Fashion-MNIST) as an :class:`IDXDataset`, downloaded by torchvision if missing.

    IDX files already in ``root`` (for instance the four files of an MNIST mirror, ``.gz`` or
    not) are used as they are; otherwise torchvision downloads the dataset into ``root``.

    Args:
        root (str or PathLike): Folder with the IDX files, or where to download them.
        train (bool): The 60,000-image training split, or the 10,000-image test split.
        download (bool): Download with torchvision when the files are not found.
        fashion (bool): Fashion-MNIST instead of the handwritten digits.
        limit (int or None): Read only the first ``limit`` images (and labels).

    Returns:
        IDXDataset: Images ``(1, 28, 28)`` in ``[0, 1]`` with their labels.

    Raises:
        RuntimeError: when the files are missing and cannot be downloaded (e.g. offline); the
            message says which files to put where.
    """
    import torchvision

    root = os.fspath(check_path('root', root))
    for name, value in (('train', train), ('download', download), ('fashion', fashion)):
        check_bool(name, value)
    limit = check_int('limit', limit, minimum=1, allow_none=True)
    split = 'train' if train else 'test'
    name = 'FashionMNIST' if fashion else 'MNIST'
    for folder in (root, os.path.join(root, name, 'raw')):  # ours, then torchvision's layout
        try:
            return IDXDataset.from_folder(folder, split, limit=limit)
        except FileNotFoundError:
            pass
    prefix = _SPLIT_PREFIXES[split]
    where = (f'put {prefix}-images-idx3-ubyte.gz and {prefix}-labels-idx1-ubyte.gz in {root!r}, '
             f'or point to a folder that has them')
    if not download:
        raise RuntimeError(f'{name} {split} files not found in {root!r}; {where} (or pass download=True)')
    raw = os.path.join(root, name, 'raw')
    created = [folder for folder in (raw, os.path.dirname(raw), root) if not os.path.exists(folder)]
    try:
        getattr(torchvision.datasets, name)(root, train=train, download=True)
    except (RuntimeError, OSError, urllib.error.URLError) as error:
        for folder in created:  # leave no empty folders behind a failed download
            try:
                os.rmdir(folder)
            except OSError:
                pass
        raise RuntimeError(f'{name} is not in {root!r} and could not be downloaded ({error}). '
                           f'Without internet, {where}.') from None
    return IDXDataset.from_folder(raw, split, limit=limit)


def load_cifar10(root: PathLike = 'data', *, train: bool = True, download: bool = True,
                 limit: Optional[int] = None) -> ImageDataset:
    """CIFAR-10 as an :class:`ImageDataset` of ``(3, 32, 32)`` images, downloaded by torchvision if missing.

    torchvision's :class:`~torchvision.datasets.CIFAR10` reads (or downloads into ``root``) the
    ``cifar-10-batches-py`` folder; its ``(N, 32, 32, 3)`` channels-last array is held once as
    ``uint8`` ``(N, 3, 32, 32)``.

    Args:
        root (str or PathLike): Folder with ``cifar-10-batches-py``, or where to download it.
        train (bool): The 50,000-image training split, or the 10,000-image test split.
        download (bool): Download with torchvision when the files are not found.
        limit (int or None): Keep only the first ``limit`` images (and labels).

    Returns:
        ImageDataset: Items ``(3, 32, 32)`` images in ``[0, 1]`` with their labels; ``classes``
        holds the ten class names.

    Raises:
        RuntimeError: when the files are missing and cannot be downloaded (e.g. offline); the
            message says what to put where.
    """
    root = os.fspath(check_path('root', root))
    for name, value in (('train', train), ('download', download)):
        check_bool(name, value)
    limit = check_int('limit', limit, minimum=1, allow_none=True)
    split = 'train' if train else 'test'
    where = (f'put the cifar-10-batches-py folder (from cifar-10-python.tar.gz) in {root!r}, or point to a folder '
             f'that has it')
    from torchvision.datasets import CIFAR10

    try:
        cifar = CIFAR10(root, train=train, download=False)
    except RuntimeError:  # "Dataset not found or corrupted": missing, or failing torchvision's checksums
        if not download:
            raise RuntimeError(f'CIFAR-10 {split} files not found in {root!r}; {where} (or pass download=True)') \
                from None
        created = not os.path.exists(root)
        try:
            cifar = CIFAR10(root, train=train, download=True)
        except (RuntimeError, OSError, urllib.error.URLError) as error:
            if created:  # leave no empty folder behind a failed download
                shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f'CIFAR-10 is not in {root!r} and could not be downloaded ({error}). '
                               f'Without internet, {where}.') from None
    end = len(cifar.data) if limit is None else limit
    dataset = ImageDataset(cifar.data[:end], cifar.targets[:end], channels_last=True)
    dataset.classes = list(cifar.classes)
    return dataset
