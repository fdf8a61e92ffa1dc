"""A fast in-memory batch loader: whole batches gathered from tensors, no per-item ``__getitem__``."""
import math
import sys
from typing import Iterator, List, Optional, Union

import numpy as np
import torch
from torch.utils.data import Subset, TensorDataset, default_collate
from torchbearer.cv_utils import SubsetDataset

from .datasets import AutoEncoderDataset
from .distributed import _rank_and_world_size

__all__ = ['TensorLoader']

_TO_DATALOADER = ('use torch.utils.data.DataLoader for per-item transforms (random augmentation, noise), or apply '
                  'a deterministic transform to the images once and give TensorLoader the resulting tensor')


# -- columns: one per field of an item; each turns a batch of row indices into a batch --
class _Images:
    """uint8 images, converted per batch exactly as ``transforms.ToTensor`` converts one image."""

    def __init__(self, data: torch.Tensor, dtype: torch.dtype):
        self.data, self.dtype = data, dtype

    def batch(self, rows, done):
        return self.data.index_select(0, rows).to(dtype=self.dtype).div_(255)


class _Stored:
    """Values returned as they are stored (float images, labels, any TensorDataset column)."""

    def __init__(self, data: torch.Tensor):
        self.data = data

    def batch(self, rows, done):
        return self.data.index_select(0, rows)


class _CopyOf:
    """The autoencoder target: a copy of an earlier field of the same batch, flattened if asked.

    A copy rather than the same tensor, as DataLoader's collation gives, so that a callback which
    changes the input in place (noise, cut-out) cannot change the target.
    """

    def __init__(self, field: int, flatten: bool):
        self.field, self.flatten = field, flatten

    def batch(self, rows, done):
        value = done[self.field]
        return (value.reshape(value.shape[0], -1) if self.flatten else value).clone()


class _Unusable:
    """A field the fast path cannot compute (a label with a target_transform): an error if it is kept."""

    def __init__(self, message: str):
        self.message = message


class _Source:
    """What a dataset is made of: its columns, the rows it uses (None: all) and whether items are tuples."""

    def __init__(self, columns, rows: Optional[torch.Tensor] = None, single: bool = False):
        self.columns, self.rows, self.single = columns, rows, single

    def batch(self, rows: torch.Tensor):
        done = []
        for column in self.columns:
            done.append(column.batch(rows, done))
        return done[0] if self.single else tuple(done)


# -- recognising the datasets people have --
def _is_to_tensor(transform) -> bool:
    """``transforms.ToTensor()`` (or a Compose of only that): the conversion _Images reproduces."""
    transforms = sys.modules.get('torchvision.transforms')  # a torchvision transform means torchvision is loaded
    if transforms is None:
        return False
    if isinstance(transform, transforms.Compose) and len(transform.transforms) == 1:
        transform = transform.transforms[0]
    return isinstance(transform, transforms.ToTensor)


def _one_line(value) -> str:
    return ' '.join(repr(value).split())  # a Compose's repr spans lines


def _refuse_transform(dataset, name: str, transform) -> None:
    raise ValueError(f'TensorLoader cannot use {type(dataset).__name__} with {name}={_one_line(transform)}: it builds '
                     f'whole batches from the stored tensors and cannot apply a per-item transform exactly; '
                     f'{_TO_DATALOADER}')


def _image_column(data: torch.Tensor, channels_last: bool, dtype: torch.dtype) -> _Images:
    """uint8 ``(N, H, W)`` -> ``(N, 1, H, W)``; ``(N, H, W, C)`` arrays -> ``(N, C, H, W)``, as ToTensor."""
    if data.dim() == 3:
        data = data.unsqueeze(1)  # a view: no copy
    elif data.dim() == 4 and channels_last:
        data = data.permute(0, 3, 1, 2).contiguous()  # once, so that gathering a batch reads contiguous rows
    return _Images(data, dtype)


def _same(expected, got) -> bool:
    if isinstance(expected, (tuple, list)):
        return (isinstance(got, tuple) and len(got) == len(expected)
                and all(_same(e, g) for e, g in zip(expected, got)))
    return (isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor) and expected.dtype == got.dtype
            and expected.shape == got.shape and torch.equal(expected, got))


def _from_data_attribute(dataset, dtype) -> Optional[_Source]:
    """MNIST-style datasets (``.data`` and ``.targets``): IDXDataset, torchvision's MNIST, CIFAR, ...

    What ``__getitem__`` does is guessed from the attributes, then checked on the first and last
    item: when the guess is not exactly right, None (the caller preloads instead).
    """
    data = dataset.data
    channels_last = isinstance(data, np.ndarray)  # numpy images (CIFAR's .data) are (H, W, C), as ToTensor reads them
    if channels_last:
        data = torch.from_numpy(data)
    if not isinstance(data, torch.Tensor) or data.dim() == 0 or len(data) != len(dataset):
        return None
    columns: List = [_image_column(data, channels_last, dtype) if data.dtype == torch.uint8 else _Stored(data)]
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
    return _Source(columns, single=single) if _matches(dataset, columns, single) else None


def _matches(dataset, columns, single: bool) -> bool:
    """Whether the first and last items of ``dataset`` are exactly what ``columns`` give for them."""
    for index in {0, len(dataset) - 1}:
        item = dataset[index]
        fields = (item,) if single else item
        if not isinstance(fields, (tuple, list)) or len(fields) != len(columns):
            return False
        rows, done = torch.tensor([index]), []
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


def _compact(column: torch.Tensor, dtype: torch.dtype):
    """Store a preloaded float column as uint8 when that is exact (images that came from uint8 data)."""
    if column.dtype != dtype or column.numel() == 0:
        return _Stored(column)
    if column.min() < 0 or column.max() > 1:
        return _Stored(column)
    as_bytes = column.mul(255).round_().to(torch.uint8)
    if not torch.equal(as_bytes.to(dtype=dtype).div_(255), column):
        return _Stored(column)
    return _Images(as_bytes, dtype)


def _preload(dataset, dtype) -> _Source:
    """Any map-style dataset: every item read once and stacked (the DataLoader collation, done once)."""
    items = [dataset[index] for index in range(len(dataset))]
    try:
        stacked = default_collate(items)
    except (TypeError, RuntimeError) as error:
        raise TypeError(f'TensorLoader could not stack the items of {type(dataset).__name__} into tensors '
                        f'({error}); items must be tensors, numbers or tuples of them of one shape (a '
                        f'torchvision dataset needs transform=transforms.ToTensor())') from None
    if isinstance(stacked, torch.Tensor):
        return _Source([_compact(stacked, dtype)], single=True)
    if isinstance(stacked, (tuple, list)) and all(isinstance(value, torch.Tensor) for value in stacked):
        return _Source([_compact(value, dtype) for value in stacked])
    raise TypeError(f'TensorLoader needs items that are a tensor or a tuple of tensors/numbers, but '
                    f'{type(dataset).__name__} gives {type(items[0]).__name__} items')


def _subset_ids(dataset):
    return dataset.indices if isinstance(dataset, Subset) else dataset.ids


def _analyse(dataset, dtype) -> Optional[_Source]:
    """The source of a dataset made of tensors, or None for an opaque dataset (to be preloaded)."""
    if isinstance(dataset, torch.Tensor):
        if dataset.dim() == 0:
            raise ValueError('TensorLoader needs a tensor with a first (batch) dimension, got a 0-d tensor')
        column = _image_column(dataset, False, dtype) if dataset.dtype == torch.uint8 else _Stored(dataset)
        return _Source([column], single=True)
    if isinstance(dataset, TensorDataset):
        return _Source([_Stored(tensor) for tensor in dataset.tensors])
    if isinstance(dataset, AutoEncoderDataset):
        for name in ('transform', 'target_transform'):
            if getattr(dataset, name) is not None:
                _refuse_transform(dataset, name, getattr(dataset, name))
        inner = _analyse(dataset.dataset, dtype) or _preload(dataset.dataset, dtype)
        return _Source([inner.columns[0], _CopyOf(0, dataset.flatten_target)], inner.rows)  # the label is dropped
    if isinstance(dataset, (Subset, SubsetDataset)):
        inner = _analyse(dataset.dataset, dtype)
        if inner is None:
            return None  # preload only the subset's items, not the whole wrapped dataset
        rows = torch.as_tensor(list(_subset_ids(dataset)), dtype=torch.long)
        size = len(dataset.dataset)
        if len(rows) and (rows.min() < -size or rows.max() >= size):
            raise ValueError(f'{type(dataset).__name__} holds indices outside its dataset of {size} items')
        rows = rows.remainder(size)  # negative indices count from the end, as in dataset[index]
        if inner.rows is not None:
            rows = inner.rows[rows]
        return _Source(inner.columns, rows, inner.single)
    transform = getattr(dataset, 'transform', None)
    if transform is not None and not _is_to_tensor(transform):
        _refuse_transform(dataset, 'transform', transform)
    if hasattr(dataset, 'data') and hasattr(dataset, '__len__'):
        return _from_data_attribute(dataset, dtype)
    return None


def _check_flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f'{name} must be True or False, got {value!r}')


def _check_seed(name: str, seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f'{name} must be None or an int, got {type(seed).__name__}')
    if not 0 <= seed < 2 ** 63:
        raise ValueError(f'{name} must be in [0, 2**63), got {seed}')


def _rank_and_shards(rank, world_size):
    """The validated ``(rank, world_size)``: both given, or both from the process group (or one process)."""
    if (rank is None) != (world_size is None):
        raise ValueError(f'give rank and world_size together, or neither (to use the process group\'s); got '
                         f'rank={rank!r}, world_size={world_size!r}')
    if rank is None:
        return _rank_and_world_size()
    for name, value in (('rank', rank), ('world_size', world_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f'{name} must be an int, got {type(value).__name__}')
    if world_size < 1:
        raise ValueError(f'world_size must be >= 1, got {world_size}')
    if not 0 <= rank < world_size:
        raise ValueError(f'rank must be in [0, world_size) = [0, {world_size}), got {rank}')
    return rank, world_size


def _shard(order: torch.Tensor, rank: int, world_size: int, per_rank: int) -> torch.Tensor:
    """Rank ``rank``'s ``per_rank`` items of the epoch ``order``: every ``world_size``-th, padded by repeating it."""
    total = per_rank * world_size
    if total > len(order):  # more than once only when there are fewer items than ranks
        order = order.repeat(math.ceil(total / len(order)))
    return order[rank:total:world_size]


class TensorLoader:
    """Batches of an in-memory dataset, gathered whole from its tensors: a fast DataLoader for small data.

    A :class:`~torch.utils.data.DataLoader` reads a dataset one item at a time (for MNIST: a PIL
    image per item, ``ToTensor``, then collation), which costs more than the model on CPU. A
    TensorLoader looks through the dataset once, at construction, for the tensors it is made of
    and then builds every batch by indexing them with a batch of row numbers: no per-item
    ``__getitem__``, no collation. It plugs into :meth:`~torchbearer.Trial.with_generators` like a
    DataLoader: it has ``len()`` (the number of batches), can be iterated again and again, and
    reshuffles at each iteration.

    The batches hold the values a DataLoader would give for the same dataset, bit for bit
    (``(x, target)`` tuples for datasets of pairs; a bare uint8 tensor is read as images). What it
    understands, looking through wrappers:

    * :class:`~torchbearer_vae.IDXDataset`, :class:`~torchbearer_vae.ImageDataset`, torchvision's
      ``MNIST``/``FashionMNIST`` (with ``transform=transforms.ToTensor()``) and any dataset with
      ``.data``/``.targets`` whose items are the ``ToTensor`` conversion of them (checked on the
      first and last item): the uint8 ``.data`` is used as it is (shared, not copied: 4x smaller
      than float32) and each batch is converted at once, ``/255`` exactly as ``ToTensor`` does;
      the labels come from ``.targets``.
    * a uint8 tensor of images, ``(N, H, W)`` or ``(N, C, H, W)``: kept as uint8, batches are float
      ``(B, C, H, W)`` in ``[0, 1]``, as ``ToTensor`` makes them; any other tensor is served as it is.
    * a :class:`~torch.utils.data.TensorDataset`: its tensors, as they are.
    * an :class:`~torchbearer_vae.AutoEncoderDataset` of any of these: the target is a copy of the
      input (flattened if ``flatten_target``), not the label.
    * a :class:`~torch.utils.data.Subset` or torchbearer's ``SubsetDataset`` (what
      :func:`~torchbearer_vae.train_val_split` returns): the wrapped dataset's tensors, shared, and
      the subset's indices.
    * any other map-style dataset: every item is read once, at construction, and the items are
      stacked (stored as uint8 where the values are exactly ``k/255``).

    A per-item transform cannot be applied to a whole batch exactly, and may be random (noise for
    a denoising autoencoder, augmentation), which stored batches would freeze. So a dataset or an
    :class:`~torchbearer_vae.AutoEncoderDataset` with a ``transform``/``target_transform`` other
    than ``ToTensor`` is refused with a ``ValueError``: use a DataLoader for those, or apply a
    deterministic transform to the tensor once. The last fallback (reading items one by one)
    cannot see inside a dataset: it is for small datasets whose items are the same every time.
    A dataset too large for memory also stays with a DataLoader (with ``num_workers``).

    The order of an epoch is a ``torch.randperm`` drawn from a generator seeded with
    ``seed + epoch`` (the convention of :class:`~torch.utils.data.distributed.DistributedSampler`):
    each iteration is a new epoch with a new order, and a run is reproducible from the seed.

    **Distributed training.** With ``world_size`` processes, each serves its own shard of every
    epoch, as :class:`~torch.utils.data.distributed.DistributedSampler` does: all ranks draw the
    same permutation (same ``seed``, same epoch) and rank ``r`` takes its items ``r``,
    ``r + world_size``, ... So the shards of an epoch are disjoint, together they hold every
    item, and they change every epoch. Every rank gets the same number of items (and batches),
    as :class:`~torch.nn.parallel.DistributedDataParallel` needs (a rank with one batch more
    would wait forever for the others' gradients). When ``len(dataset)`` is not a multiple of
    ``world_size``, ``drop_last`` decides, for the shards as for the last batch:
    ``drop_last=False`` pads the epoch with its first ``world_size - len % world_size`` items
    again, so every item is used at least once and a few twice; ``drop_last=True`` leaves out
    its last ``len % world_size`` items, so none is used twice and a few not at all (others
    every epoch, when shuffling). ``rank`` and ``world_size`` default to those of the default
    :mod:`torch.distributed` process group when one is initialised (as with
    ``DistributedSampler``), otherwise to one process; pass ``rank=0, world_size=1`` for a
    loader that every process reads whole (e.g. validation data every rank evaluates). When
    shuffling on several ranks, ``seed`` must be given: each process would draw its own.

    Args:
        dataset: A tensor or a map-style dataset that fits in memory (see the table).
        batch_size (int): Items per batch, >= 1.
        shuffle (bool): A new random order at every epoch; otherwise the dataset's order.
        drop_last (bool): Drop the last batch when it is shorter than ``batch_size``.
        seed (int or None): Seed of the shuffling; None draws one from torch's global generator,
            so that ``torch.manual_seed`` makes the run reproducible, as with a DataLoader
            (one process only: sharded shuffling needs the same seed on every rank).
        device (str or torch.device or None): Keep the stored tensors on this device (e.g. the
            GPU that trains) so that no copy to the device happens per step; None leaves them
            where they are.
        rank (int or None): This process's shard, ``0 <= rank < world_size``; give both or neither.
        world_size (int or None): How many shards (processes); None: the process group's, or 1.

    Raises:
        ValueError, TypeError: at construction, for a bad argument or a dataset it cannot serve.

    Example: ::

        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> from torchbearer_vae import AutoEncoderDataset, TensorLoader
        >>> images = torch.randint(0, 256, (300, 28, 28), dtype=torch.uint8)
        >>> loader = TensorLoader(AutoEncoderDataset(images), batch_size=128, shuffle=True, seed=0)
        >>> len(loader)
        3
        >>> x, target = next(iter(loader))
        >>> x.shape, x.dtype, torch.equal(x, target)
        (torch.Size([128, 1, 28, 28]), torch.float32, True)
        >>> # Trial(model, optimizer, criterion).with_generators(loader, TensorLoader(val, 128))
        >>> shards = [TensorLoader(images, 100, shuffle=True, seed=0, rank=r, world_size=3) for r in range(3)]
        >>> [len(shard) for shard in shards]  # 100 of the 300 images each, one batch
        [1, 1, 1]
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: Optional[int] = None, device: Optional[Union[str, torch.device]] = None,
                 rank: Optional[int] = None, world_size: Optional[int] = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise TypeError(f'batch_size must be an int, got {type(batch_size).__name__}')
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        _check_flag('shuffle', shuffle)
        _check_flag('drop_last', drop_last)
        if seed is not None:
            _check_seed('seed', seed)
        if device is not None and not isinstance(device, (str, torch.device)):
            raise TypeError(f'device must be None, a str or a torch.device, got {type(device).__name__}')
        if device is not None:
            try:
                device = torch.device(device)
            except RuntimeError as error:
                raise ValueError(f'device {device!r} is not a torch device: {error}') from None
        if not (isinstance(dataset, torch.Tensor) or (hasattr(dataset, '__getitem__') and hasattr(dataset, '__len__'))):
            raise TypeError(f'TensorLoader needs a tensor or a map-style dataset (__getitem__ and __len__), got '
                            f'{type(dataset).__name__}')
        size = len(dataset)
        if size == 0:
            raise ValueError('TensorLoader got an empty dataset')
        rank, world_size = _rank_and_shards(rank, world_size)
        if world_size > 1 and shuffle and seed is None:
            raise ValueError(f'seed must be given when shuffling shards for {world_size} processes (world_size='
                             f'{world_size}): each process would draw its own, the ranks would shuffle differently '
                             f'and their shards would overlap; pass the same seed on every rank')
        per_rank = size // world_size if drop_last else math.ceil(size / world_size)  # equal shards
        if drop_last and per_rank < batch_size:
            held = f'all {size} items' if world_size == 1 else f'all {per_rank} items of each of {world_size} shards'
            raise ValueError(f'drop_last=True with batch_size={batch_size} drops {held}: no batch is left')

        dtype = torch.get_default_dtype()  # what ToTensor converts to
        source = _analyse(dataset, dtype) or _preload(dataset, dtype)
        for column in source.columns:
            if isinstance(column, _Unusable):
                raise ValueError(column.message)
        if device is not None:
            for column in source.columns:
                if hasattr(column, 'data'):
                    column.data = column.data.to(device)
            source.rows = None if source.rows is None else source.rows.to(device)
        self._source, self._size, self._per_rank = source, size, per_rank
        self.rank, self.world_size = rank, world_size
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, shuffle, drop_last
        self.device = device
        # Drawn once, from the global generator, so that torch.manual_seed(...) fixes every epoch's order.
        self.seed = int(torch.empty((), dtype=torch.int64).random_()) if seed is None else seed
        self.epoch = 0

    def __len__(self) -> int:
        """The number of batches per epoch (of this rank's shard)."""
        return self._per_rank // self.batch_size if self.drop_last else math.ceil(self._per_rank / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its order is the one drawn from ``seed + epoch``).

        Args:
            epoch (int): The epoch number, >= 0. Iterating advances it by one.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f'epoch must be an int >= 0, got {epoch!r}')
        self.epoch = epoch

    def state_dict(self) -> dict:
        """The seed and the next epoch: all that decides the orders still to come."""
        return {'seed': self.seed, 'epoch': self.epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        """Continue from :meth:`state_dict` (e.g. when resuming a run).

        Args:
            state_dict (dict): As returned by :meth:`state_dict`.
        """
        seed = state_dict['seed']
        _check_seed("state_dict['seed']", seed)
        self.set_epoch(state_dict['epoch'])
        self.seed = seed

    def _order(self) -> torch.Tensor:
        """The rows of this epoch, in the order they are served, on the storage's device."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self._size, generator=generator)
            if self.device is not None:
                order = order.to(self.device)
            self.epoch += 1
        else:
            order = torch.arange(self._size, device=self.device)
        if self.world_size > 1:
            order = _shard(order, self.rank, self.world_size, self._per_rank)
        return order if self._source.rows is None else self._source.rows[order]

    def __iter__(self) -> Iterator:
        return self._batches(self._order())  # the order is drawn now, not at the first next()

    def _batches(self, order: torch.Tensor) -> Iterator:
        size, source = self.batch_size, self._source
        for start in range(0, len(self) * size, size):
            yield source.batch(order[start:start + size])

    @property
    def nbytes(self) -> int:
        """Bytes of the tensors the loader reads from (shared with the dataset where it could be)."""
        tensors = [column.data for column in self._source.columns if hasattr(column, 'data')]
        if self._source.rows is not None:
            tensors.append(self._source.rows)
        return sum(tensor.numel() * tensor.element_size() for tensor in tensors)

    def __repr__(self) -> str:
        options = ''.join(f', {name}={getattr(self, name)!r}' for name in ('shuffle', 'drop_last', 'device')
                          if getattr(self, name))
        if self.world_size > 1:
            options += f', rank={self.rank}, world_size={self.world_size}'
        return (f'{type(self).__name__}({type(self.dataset).__name__} of {self._size}, '
                f'batch_size={self.batch_size}{options})')
