"""How :class:`~torchbearer_vae.TensorLoader` sees a dataset: the tensors it is made of, and a batch gathered from them.

A dataset is analysed once into a :class:`Source`: one *column* per field of an item (images
stored as ``uint8`` and converted per batch, values stored as they are, the autoencoder target
as a copy of the input) and the rows it uses. What is recognised is checked against the
dataset's own items; what is not is read item by item once and stacked.
"""
import sys
from typing import Any, List, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Subset, TensorDataset, default_collate
from torchbearer.cv_utils import SubsetDataset

from .datasets import AutoEncoderDataset
from .images import as_tensor, channels_first, infer_layout

__all__ = []  # internal

_TO_DATALOADER = ('use torch.utils.data.DataLoader for per-item transforms (random augmentation, noise), or apply '
                  'a deterministic transform to the images once and give TensorLoader the resulting tensor')


# -- columns: one per field of an item; each turns a batch of row indices into a batch --
class _Images:
    """uint8 images, converted per batch exactly as ``transforms.ToTensor`` converts one image."""

    def __init__(self, data: torch.Tensor, dtype: torch.dtype):
        self.data, self.dtype = data, dtype

    def batch(self, rows: torch.Tensor, done: List[Any]) -> torch.Tensor:
        return self.data.index_select(0, rows).to(dtype=self.dtype).div_(255)


class _Stored:
    """Values returned as they are stored (float images, labels, any TensorDataset column)."""

    def __init__(self, data: torch.Tensor):
        self.data = data

    def batch(self, rows: torch.Tensor, done: List[Any]) -> torch.Tensor:
        return self.data.index_select(0, rows)


class _CopyOf:
    """The autoencoder target: a copy of an earlier field of the same batch, flattened if asked.

    A copy rather than the same tensor, as DataLoader's collation gives, so that a callback which
    changes the input in place (noise, cut-out) cannot change the target.
    """

    def __init__(self, field: int, flatten: bool):
        self.field, self.flatten = field, flatten

    def batch(self, rows: torch.Tensor, done: List[Any]) -> torch.Tensor:
        value: torch.Tensor = done[self.field]
        return (value.reshape(value.shape[0], -1) if self.flatten else value).clone()


class _Unusable:
    """A field the fast path cannot compute (a label with a target_transform): an error if it is kept."""

    def __init__(self, message: str):
        self.message = message

    def batch(self, rows: torch.Tensor, done: List[Any]) -> torch.Tensor:
        raise ValueError(self.message)


_Column = Union[_Images, _Stored, _CopyOf, _Unusable]


class Source:
    """What a dataset is made of: its columns, the rows it uses (None: all) and whether items are tuples."""

    def __init__(self, columns: Sequence[_Column], rows: Optional[torch.Tensor] = None, single: bool = False):
        self.columns, self.rows, self.single = columns, rows, single

    def batch(self, rows: torch.Tensor) -> Any:
        """The batch of ``rows``: a tensor, or a tuple of them."""
        done: List[Any] = []
        for column in self.columns:
            done.append(column.batch(rows, done))
        return done[0] if self.single else tuple(done)


def _image_column(data: Union[torch.Tensor, np.ndarray], dtype: torch.dtype, channels_last: Optional[bool],
                  name: str) -> _Images:
    """uint8 images, as ToTensor converts them: ``(N, H, W)`` -> ``(N, 1, H, W)``, channels-last -> first."""
    images = channels_first(data, channels_last, name) if data.ndim in (3, 4) else as_tensor(data)
    return _Images(images.unsqueeze(1) if images.dim() == 3 else images, dtype)  # unsqueeze: a view, no copy


def _is_uint8(data: Any) -> bool:
    """A uint8 tensor or numpy array: images, read as ToTensor reads them."""
    return isinstance(data, (torch.Tensor, np.ndarray)) and data.dtype == (
        torch.uint8 if isinstance(data, torch.Tensor) else np.uint8)


def _is_images(data: Any) -> bool:
    """A uint8 tensor or array of images (N, H, W) or 4-D: what ``channels_last`` can be stated for."""
    return _is_uint8(data) and data.ndim in (3, 4)


# -- recognising the datasets people have --
def _is_to_tensor(transform: Any) -> bool:
    """``transforms.ToTensor()`` (or a Compose of only that): the conversion _Images reproduces."""
    transforms = sys.modules.get('torchvision.transforms')  # a torchvision transform means torchvision is loaded
    if transforms is None:
        return False
    if isinstance(transform, transforms.Compose) and len(transform.transforms) == 1:
        transform = transform.transforms[0]
    return isinstance(transform, transforms.ToTensor)


def _one_line(value: Any) -> str:
    return ' '.join(repr(value).split())  # a Compose's repr spans lines


def _refuse_transform(dataset: Any, name: str, transform: Any) -> None:
    raise ValueError(f'TensorLoader cannot use {type(dataset).__name__} with {name}={_one_line(transform)}: it builds '
                     f'whole batches from the stored tensors and cannot apply a per-item transform exactly; '
                     f'{_TO_DATALOADER}')


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, (tuple, list)):
        return (isinstance(got, tuple) and len(got) == len(expected)
                and all(_same(e, g) for e, g in zip(expected, got)))
    return (isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor) and expected.dtype == got.dtype
            and expected.shape == got.shape and torch.equal(expected, got))


def _from_data_attribute(dataset: Any, dtype: torch.dtype) -> Optional[Source]:
    """MNIST-style datasets (``.data`` and ``.targets``): ImageDataset, IDXDataset, torchvision's MNIST, CIFAR, ...

    What ``__getitem__`` does is guessed from the attributes, then checked on the first and last
    item: when the guess is not exactly right, None (the caller preloads instead).
    """
    data = dataset.data
    if not isinstance(data, (torch.Tensor, np.ndarray)) or data.ndim == 0 or len(data) != len(dataset):
        return None
    if _is_uint8(data):
        channels_last = infer_layout(data.shape) if data.ndim == 4 else False
        if channels_last is None:  # torchvision's numpy .data is (N, H, W, C) (CIFAR), a tensor's (N, C, H, W)
            channels_last = isinstance(data, np.ndarray)
        columns: List[_Column] = [_image_column(data, dtype, channels_last, f'{type(dataset).__name__}.data')]
    else:
        columns = [_Stored(as_tensor(data))]
    targets = getattr(dataset, 'targets', None)
    if targets is not None:
        targets = torch.as_tensor(targets)
        if targets.dim() == 0 or len(targets) != len(data):
            return None
        target_transform = getattr(dataset, 'target_transform', None)
        if target_transform is None:
            columns.append(_Stored(targets))
        else:
            columns.append(_Unusable(f'TensorLoader cannot apply the target_transform={_one_line(target_transform)} of '
                                     f'{type(dataset).__name__} to its labels; {_TO_DATALOADER}'))
    single = targets is None
    return Source(columns, single=single) if _matches(dataset, columns, single) else None


def _matches(dataset: Any, columns: Sequence[_Column], single: bool) -> bool:
    """Whether the first and last items of ``dataset`` are exactly what ``columns`` give for them."""
    for index in {0, len(dataset) - 1}:
        item = dataset[index]
        fields = (item,) if single else item
        if not isinstance(fields, (tuple, list)) or len(fields) != len(columns):
            return False
        rows = torch.tensor([index])
        done: List[Any] = []
        for field, column in zip(fields, columns):
            if isinstance(column, _Unusable):  # a label that is refused anyway, if it is kept
                done.append(None)
                continue
            done.append(column.batch(rows, done))
            try:
                expected = default_collate([field])
            except TypeError:  # e.g. a PIL image: no batch can hold it; preloading will say so
                return False
            if not _same(expected, done[-1]):
                return False
    return True


def _compact(column: torch.Tensor, dtype: torch.dtype) -> _Column:
    """Store a preloaded float column as uint8 when that is exact (images that came from uint8 data)."""
    if column.dtype != dtype or column.numel() == 0:
        return _Stored(column)
    if column.min() < 0 or column.max() > 1:
        return _Stored(column)
    as_bytes = column.mul(255).round_().to(torch.uint8)
    if not torch.equal(as_bytes.to(dtype=dtype).div_(255), column):
        return _Stored(column)
    return _Images(as_bytes, dtype)


def _preload(dataset: Any, dtype: torch.dtype) -> Source:
    """Any map-style dataset: every item read once and stacked (the DataLoader collation, done once)."""
    items = [dataset[index] for index in range(len(dataset))]
    try:
        stacked = default_collate(items)
    except (TypeError, RuntimeError) as error:
        raise TypeError(f'TensorLoader could not stack the items of {type(dataset).__name__} into tensors '
                        f'({error}); items must be tensors, numbers or tuples of them of one shape (a '
                        f'torchvision dataset needs transform=transforms.ToTensor())') from None
    if isinstance(stacked, torch.Tensor):
        return Source([_compact(stacked, dtype)], single=True)
    if isinstance(stacked, (tuple, list)) and all(isinstance(value, torch.Tensor) for value in stacked):
        return Source([_compact(value, dtype) for value in stacked])
    raise TypeError(f'TensorLoader needs items that are a tensor or a tuple of tensors/numbers, but '
                    f'{type(dataset).__name__} gives {type(items[0]).__name__} items')


def _subset_ids(dataset: Any) -> Sequence[int]:
    return dataset.indices if isinstance(dataset, Subset) else dataset.ids


def _analyse(dataset: Any, dtype: torch.dtype, channels_last: Optional[bool]) -> Optional[Source]:
    """The source of a dataset made of tensors, or None for an opaque dataset (to be preloaded)."""
    if isinstance(dataset, (torch.Tensor, np.ndarray)):
        if _is_uint8(dataset):
            return Source([_image_column(dataset, dtype, channels_last, 'the images given to TensorLoader')],
                          single=True)
        return Source([_Stored(as_tensor(dataset))], single=True)
    if isinstance(dataset, TensorDataset):
        return Source([_Stored(tensor) for tensor in dataset.tensors])
    if isinstance(dataset, AutoEncoderDataset):
        for name in ('transform', 'target_transform'):
            if getattr(dataset, name) is not None:
                _refuse_transform(dataset, name, getattr(dataset, name))
        inner = _analyse(dataset.dataset, dtype, channels_last) or _preload(dataset.dataset, dtype)
        columns: List[_Column] = [inner.columns[0], _CopyOf(0, dataset.flatten_target)]
        if getattr(dataset, 'keep_labels', False):  # (x, target, label): the wrapped dataset's second column
            if inner.single or len(inner.columns) < 2:
                raise ValueError(f'TensorLoader found no labels in {type(dataset.dataset).__name__} for '
                                 f'AutoEncoderDataset(keep_labels=True); its items must be (x, label, ...)')
            columns.append(inner.columns[1])
        return Source(columns, inner.rows)  # without keep_labels the label is dropped
    if isinstance(dataset, (Subset, SubsetDataset)):
        whole: Any = dataset.dataset  # torch types it as a Dataset, which has no __len__
        subset_of = _analyse(whole, dtype, channels_last)
        if subset_of is None:
            return None  # preload only the subset's items, not the whole wrapped dataset
        rows = torch.as_tensor(list(_subset_ids(dataset)), dtype=torch.long)
        size = len(whole)
        if len(rows) and (rows.min() < -size or rows.max() >= size):
            raise ValueError(f'{type(dataset).__name__} holds indices outside its dataset of {size} items')
        rows = rows.remainder(size)  # negative indices count from the end, as in dataset[index]
        if subset_of.rows is not None:
            rows = subset_of.rows[rows]
        return Source(subset_of.columns, rows, subset_of.single)
    transform = getattr(dataset, 'transform', None)
    if transform is not None and not _is_to_tensor(transform):
        _refuse_transform(dataset, 'transform', transform)
    if hasattr(dataset, 'data') and hasattr(dataset, '__len__'):
        return _from_data_attribute(dataset, dtype)
    return None


def _innermost(dataset: Any) -> Any:
    """The dataset inside the wrappers TensorLoader looks through (AutoEncoderDataset, Subset, SubsetDataset)."""
    while isinstance(dataset, (AutoEncoderDataset, Subset, SubsetDataset)):
        dataset = dataset.dataset
    return dataset


def source_of(dataset: Any, dtype: torch.dtype, channels_last: Optional[bool] = None) -> Source:
    """The :class:`Source` of ``dataset``; ValueError/TypeError for a dataset TensorLoader cannot serve exactly.

    ``channels_last`` states the layout of a uint8 array of images given directly (alone or
    wrapped); datasets with items of their own (``ImageDataset``, CIFAR10, ...) are checked
    against their items, so stating a layout for them is an error rather than silently ignored.
    """
    if channels_last is not None and not _is_images(_innermost(dataset)):
        raise ValueError(f'channels_last applies to a uint8 tensor or array of images given to TensorLoader (alone, '
                         f'or in an AutoEncoderDataset or Subset), not to {type(_innermost(dataset)).__name__}, whose '
                         f'items already have their layout; leave channels_last out (for ImageDataset, pass it '
                         f'there)')
    source = _analyse(dataset, dtype, channels_last) or _preload(dataset, dtype)
    for column in source.columns:
        if isinstance(column, _Unusable):
            raise ValueError(column.message)
    return source
