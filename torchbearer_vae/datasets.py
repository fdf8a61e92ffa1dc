"""Data for autoencoders: the ``(x, x)`` wrapper, a train/validation split, and local IDX/MNIST files."""
import glob
import gzip
import os
import random
import urllib.error
from typing import Callable, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset
from torchbearer.cv_utils import DatasetValidationSplitter

from ._io import PathLike

__all__ = ['AutoEncoderDataset', 'train_val_split', 'read_idx', 'ImageDataset', 'IDXDataset', 'load_mnist',
           'load_digits']


def _first(item, index):
    """The input of a dataset item: the item itself, or the first element of a tuple/list."""
    if isinstance(item, (tuple, list)):
        if len(item) == 0:
            raise ValueError(f'dataset item {index} is an empty {type(item).__name__}; items must be x or (x, ...)')
        item = item[0]
    if item is None:  # e.g. a loader that returns None for an unreadable file: say so here, not in collate
        raise ValueError(f'dataset item {index} has None as its input; items must be x or (x, ...) with x an image')
    return item


def _flatten(value, index):
    if isinstance(value, (np.ndarray, np.generic)):
        value = torch.from_numpy(np.asarray(value))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f'flatten_target needs tensor items, but item {index} is a {type(value).__name__}; '
                        f'give the wrapped dataset a transform such as torchvision.transforms.ToTensor()')
    return value.reshape(-1)


def _check_batchable(value, role, index) -> None:
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

    Args:
        dataset: A map-style dataset (``__getitem__`` and ``__len__``).
        transform (callable or None): Applied to the input only.
        target_transform (callable or None): Computes the target from the (untransformed) input.
        flatten_target (bool): Return the target as a 1-D tensor (``x.view(-1)``).

    Example: ::

        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> from torchbearer_vae import AutoEncoderDataset
        >>> images = torch.rand(10, 1, 28, 28)
        >>> data = AutoEncoderDataset(TensorDataset(images, torch.zeros(10)), flatten_target=True)
        >>> x, target = data[0]
        >>> x.shape, target.shape
        (torch.Size([1, 28, 28]), torch.Size([784]))
    """

    def __init__(self, dataset, transform: Optional[Callable] = None, target_transform: Optional[Callable] = None,
                 flatten_target: bool = False):
        if not (hasattr(dataset, '__getitem__') and hasattr(dataset, '__len__')):
            raise TypeError(f'AutoEncoderDataset needs a map-style dataset with __getitem__ and __len__, got '
                            f'{type(dataset).__name__}')
        for name, function in (('transform', transform), ('target_transform', target_transform)):
            if function is not None and not callable(function):
                raise TypeError(f'{name} must be callable or None, got {type(function).__name__}')
        self.dataset, self.transform, self.target_transform = dataset, transform, target_transform
        self.flatten_target = bool(flatten_target)
        try:
            size = len(dataset)
        except TypeError as error:  # e.g. a 0-d tensor, which has __len__ but no length
            raise TypeError(f'AutoEncoderDataset needs a dataset with a length, got {_describe(dataset)}: {error}') \
                from None
        if size > 0:  # fail now on a dataset whose items cannot work, not at the first batch
            self[0]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        x = _first(self.dataset[index], index)
        target = x if self.target_transform is None else self.target_transform(x)
        if self.flatten_target:
            target = _flatten(target, index)
        if self.transform is not None:
            x = self.transform(x)
        _check_batchable(x, 'input', index)
        _check_batchable(target, 'target', index)
        return x, target

    def __repr__(self) -> str:
        options = ''.join(f', {name}={getattr(self, name)!r}' for name in
                          ('transform', 'target_transform', 'flatten_target') if getattr(self, name))
        return f'{type(self).__name__}({type(self.dataset).__name__} of {len(self)}{options})'


def train_val_split(dataset, val_fraction: float = 0.1, seed: Optional[int] = None) -> Tuple[Dataset, Dataset]:
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
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise ValueError(f'val_fraction must be a number between 0 and 1 (exclusive), got {val_fraction!r}')
    size = len(dataset)
    if int(size * val_fraction) < 1 or int(size * val_fraction) >= size:
        raise ValueError(f'val_fraction={val_fraction} of {size} items leaves an empty training or validation '
                         f'set; use more data or another fraction')
    saved = random.getstate()
    try:
        splitter = DatasetValidationSplitter(size, val_fraction, shuffle_seed=seed)
    finally:
        if seed is not None:
            random.setstate(saved)
    return splitter.get_train_dataset(dataset), splitter.get_val_dataset(dataset)


# IDX element types (http://yann.lecun.com/exdb/mnist/): all multi-byte values are big-endian.
_IDX_TYPES = {0x08: '>u1', 0x09: '>i1', 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}


def read_idx(path: PathLike) -> torch.Tensor:
    """Read an IDX file (the MNIST format), gzip-compressed or raw, into a tensor.

    torchvision's reader opens only uncompressed files and checks them with ``assert``; this one
    reads both (the compression is detected from the content, not the name) and says what is
    wrong with a file that is not IDX.

    Args:
        path (str or PathLike): The file, e.g. ``t10k-images-idx3-ubyte.gz``.

    Returns:
        torch.Tensor: The array with its stored shape and type (``uint8`` for MNIST).

    Raises:
        ValueError: if the file is not a well-formed IDX file.
    """
    with open(path, 'rb') as file:
        data = file.read()
    if data[:2] == b'\x1f\x8b':
        data = gzip.decompress(data)
    if len(data) < 4 or data[:2] != b'\x00\x00' or data[2] not in _IDX_TYPES or data[3] == 0:
        raise ValueError(f'{os.fspath(path)!r} is not an IDX file: it does not start with a valid IDX magic number')
    dtype, ndim = np.dtype(_IDX_TYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    if len(data) != header + int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f'{os.fspath(path)!r} is truncated or corrupt: its header promises shape {shape} '
                         f'of {dtype.name} but it holds {len(data) - header} bytes of data')
    array = np.frombuffer(data, dtype=dtype, offset=header).astype(dtype.newbyteorder('='))
    return torch.from_numpy(array.reshape(shape))


_SPLIT_PREFIXES = {'train': 'train', 'test': 't10k'}


def _find_idx_pair(root: str, split: Optional[str]) -> Tuple[str, str]:
    """Find the MNIST-style images and labels files of ``split`` in ``root``."""
    splits = [split] if split is not None else ['train', 'test']
    for name in splits:
        prefix = _SPLIT_PREFIXES[name]
        images = sorted(glob.glob(os.path.join(glob.escape(root), f'{prefix}-images-idx3-ubyte*')))
        labels = sorted(glob.glob(os.path.join(glob.escape(root), f'{prefix}-labels-idx1-ubyte*')))
        if images and labels:
            return images[0], labels[0]
    wanted = ' or '.join(f'{_SPLIT_PREFIXES[name]}-images-idx3-ubyte[.gz] and '
                         f'{_SPLIT_PREFIXES[name]}-labels-idx1-ubyte[.gz]' for name in splits)
    raise FileNotFoundError(f'no IDX files in {root!r}: expected {wanted}')


class ImageDataset(Dataset):
    """Images held in memory as ``uint8``, with optional labels: the shape of MNIST-like data.

    ``self.data`` is the ``uint8`` tensor, ``(N, H, W)`` (grey, as torchvision's MNIST keeps it)
    or ``(N, C, H, W)``, and ``self.targets`` the labels. Items are float tensors ``(C, H, W)``
    in ``[0, 1]``, exactly what ``transforms.ToTensor()`` gives for the same image, so the whole
    dataset costs one byte per pixel and batches can be converted at once.

    Args:
        data (torch.Tensor): ``uint8`` images, ``(N, H, W)`` or ``(N, C, H, W)``.
        targets (torch.Tensor or None): ``(N,)`` labels; without them items are images only.
        transform (callable or None): Applied to each image tensor.
        target_transform (callable or None): Applied to each label.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import ImageDataset
        >>> images = ImageDataset(torch.full((3, 2, 2), 255, dtype=torch.uint8), torch.tensor([0, 1, 2]))
        >>> images[1]
        (tensor([[[1., 1.],
                 [1., 1.]]]), 1)
    """

    def __init__(self, data: torch.Tensor, targets: Optional[torch.Tensor] = None,
                 transform: Optional[Callable] = None, target_transform: Optional[Callable] = None):
        if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8 or data.dim() not in (3, 4):
            raise ValueError(f'data must be a uint8 tensor of images (N, H, W) or (N, C, H, W), got '
                             f'{_describe(data)}')
        if targets is not None and (not isinstance(targets, torch.Tensor) or targets.shape != (len(data),)):
            raise ValueError(f'targets must be a tensor of {len(data)} labels, got {_describe(targets)}')
        self.data, self.targets = data, None if targets is None else targets.long()
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index):
        image = self.data[index]
        image = (image.unsqueeze(0) if image.dim() == 2 else image).float().div_(255)
        if self.transform is not None:
            image = self.transform(image)
        if self.targets is None:
            return image
        target = int(self.targets[index])
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self) -> str:
        return f'{type(self).__name__}({len(self)} images of {tuple(self.data.shape[1:])})'


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f'a {value.dtype} tensor of shape {tuple(value.shape)}'
    return f'a {type(value).__name__}'


class IDXDataset(ImageDataset):
    """Images (and labels) from IDX files, such as a local copy of MNIST or Fashion-MNIST.

    An :class:`ImageDataset`: ``self.data`` is the ``uint8`` ``(N, H, W)`` array of the file
    (as in torchvision's MNIST) and items are ``(1, H, W)`` float tensors in ``[0, 1]``.

    Args:
        images (str or PathLike): The ``idx3`` images file.
        labels (str or PathLike or None): The ``idx1`` labels file; without it items are images only.
        transform (callable or None): Applied to each image tensor.
        target_transform (callable or None): Applied to each label.

    Example: ::

        >>> from torchbearer_vae import IDXDataset
        >>> mnist = IDXDataset.from_folder('../shared/data/mnist')  # doctest: +SKIP
        >>> image, label = mnist[0]  # doctest: +SKIP
    """

    def __init__(self, images: PathLike, labels: Optional[PathLike] = None, transform: Optional[Callable] = None,
                 target_transform: Optional[Callable] = None):
        data = read_idx(images)
        if data.dim() != 3 or data.dtype != torch.uint8:
            raise ValueError(f'{os.fspath(images)!r} holds {_describe(data)}, not uint8 images (N, H, W)')
        targets = None
        if labels is not None:
            targets = read_idx(labels)
            if targets.shape != (len(data),):
                raise ValueError(f'{os.fspath(labels)!r} holds {tuple(targets.shape)} labels for '
                                 f'{len(data)} images in {os.fspath(images)!r}')
        super().__init__(data, targets, transform, target_transform)

    @classmethod
    def from_folder(cls, root: PathLike, split: Optional[str] = None, **kwargs) -> 'IDXDataset':
        """Load the MNIST-named IDX files of a folder.

        Args:
            root (str or PathLike): Folder holding ``train-*`` and/or ``t10k-*`` IDX files (``.gz`` or raw).
            split (str or None): ``'train'``, ``'test'``, or ``None`` for whichever is there (train first).
            **kwargs: Passed to :class:`IDXDataset` (``transform``, ``target_transform``).

        Returns:
            IDXDataset: The dataset.

        Raises:
            FileNotFoundError: naming the files expected, when they are not there.
        """
        if split not in (None, 'train', 'test'):
            raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
        images, labels = _find_idx_pair(os.fspath(root), split)
        return cls(images, labels, **kwargs)


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


def load_mnist(root: PathLike = 'data', train: bool = True, download: bool = True,
               fashion: bool = False) -> IDXDataset:
    """MNIST (or Fashion-MNIST) as an :class:`IDXDataset`, downloaded by torchvision if missing.

    IDX files already in ``root`` (for instance the four files of an MNIST mirror, ``.gz`` or
    not) are used as they are; otherwise torchvision downloads the dataset into ``root``.

    Args:
        root (str or PathLike): Folder with the IDX files, or where to download them.
        train (bool): The 60,000-image training split, or the 10,000-image test split.
        download (bool): Download with torchvision when the files are not found.
        fashion (bool): Fashion-MNIST instead of the handwritten digits.

    Returns:
        IDXDataset: Images ``(1, 28, 28)`` in ``[0, 1]`` with their labels.

    Raises:
        RuntimeError: when the files are missing and cannot be downloaded (e.g. offline); the
            message says which files to put where.
    """
    import torchvision

    root = os.fspath(root)
    split = 'train' if train else 'test'
    name = 'FashionMNIST' if fashion else 'MNIST'
    for folder in (root, os.path.join(root, name, 'raw')):  # ours, then torchvision's layout
        try:
            return IDXDataset.from_folder(folder, split)
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
    return IDXDataset.from_folder(os.path.join(root, name, 'raw'), split)
