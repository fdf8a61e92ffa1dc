"""A fast in-memory batch loader: whole batches gathered from tensors, no per-item ``__getitem__``."""
import math
from typing import Any, Iterator, Optional, Tuple, Union

import numpy as np
import torch
import torchbearer
from torchbearer import deep_to

from ..checks import check_bool, check_int, describe
from ..distributed import get_rank, get_world_size
from ..state import LABEL
from .batching import source_of

__all__ = ['TensorLoader', 'load_batch_with_labels']


def load_batch_with_labels(state: dict) -> None:
    """A torchbearer batch loader for ``(x, target, label)`` batches: ``state[X]``, ``state[Y_TRUE]``, ``state[LABEL]``.

    torchbearer's own loader (``load_batch_standard``) unpacks ``(x, target)``; give the Trial
    this one with ``trial.with_loader(load_batch_with_labels)`` when the batches also carry the
    class labels, as those of ``AutoEncoderDataset(dataset, keep_labels=True)`` do, through a
    :class:`TensorLoader` or a DataLoader. The model and the criterion see what they always see
    (``x``, and ``target`` for the criterion); the labels of every training, validation and test
    batch go to ``state[torchbearer_vae.LABEL]``, on the Trial's device, for a
    :class:`~torchbearer_vae.ConditionalVAE` or a picture coloured by class to read.

    Args:
        state (dict): The Trial's state; ``state[torchbearer.ITERATOR]`` yields the batches.

    Raises:
        ValueError: for a batch that is not ``(x, target, label)``, saying how to make one.

    Example: ::

        >>> import torch
        >>> import torchbearer
        >>> from torch.utils.data import TensorDataset
        >>> from torchbearer_vae import LABEL, AutoEncoderDataset, TensorLoader, load_batch_with_labels
        >>> data = AutoEncoderDataset(TensorDataset(torch.rand(6, 1, 4, 4), torch.arange(6)), keep_labels=True)
        >>> state = {torchbearer.ITERATOR: iter(TensorLoader(data, batch_size=4)),
        ...          torchbearer.DEVICE: 'cpu', torchbearer.DATA_TYPE: torch.float32}
        >>> load_batch_with_labels(state)
        >>> state[LABEL], state[torchbearer.X].shape
        (tensor([0, 1, 2, 3]), torch.Size([4, 1, 4, 4]))
        >>> # Trial(model, optimizer, criterion).with_generators(train, val).with_loader(load_batch_with_labels)
    """
    batch = next(state[torchbearer.ITERATOR])
    if not isinstance(batch, (tuple, list)) or len(batch) != 3:
        got = f'a {type(batch).__name__} of {len(batch)}' if isinstance(batch, (tuple, list)) else describe(batch)
        raise ValueError(f'load_batch_with_labels needs batches (x, target, label), got {got}; wrap the dataset in '
                         f'AutoEncoderDataset(dataset, keep_labels=True), or leave with_loader out for (x, target)')
    state[torchbearer.X], state[torchbearer.Y_TRUE], state[LABEL] = deep_to(
        tuple(batch), state[torchbearer.DEVICE], state[torchbearer.DATA_TYPE])


def _seed(name: str, seed: Any) -> int:
    """A seed for ``torch.Generator.manual_seed``: an int in ``[0, 2**63)``."""
    checked = check_int(name, seed, minimum=0)
    if checked >= 2 ** 63:
        raise ValueError(f'{name} must be an int in [0, 2**63), got {checked}')
    return checked


def _rank_and_shards(rank: Optional[int], world_size: Optional[int]) -> Tuple[int, int]:
    """The validated ``(rank, world_size)``: both given, or both from the process group (or one process)."""
    if (rank is None) != (world_size is None):
        raise ValueError(f'give rank and world_size together, or neither (to use the process group\'s); got '
                         f'rank={rank!r}, world_size={world_size!r}')
    if rank is None:
        return get_rank(), get_world_size()
    rank, world_size = check_int('rank', rank, minimum=0), check_int('world_size', world_size, minimum=1)
    if rank >= world_size:
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
      first and last item), such as torchvision's ``CIFAR10`` whose ``.data`` is a channels-last
      numpy array: the uint8 ``.data`` is used as it is (shared, not copied: 4x smaller than
      float32; channels-last data is made channels-first once) and each batch is converted at
      once, ``/255`` exactly as ``ToTensor`` does; the labels come from ``.targets``.
    * a uint8 tensor or numpy array of images, ``(N, H, W)``, ``(N, C, H, W)`` or ``(N, H, W, C)``:
      kept as uint8, batches are float ``(B, C, H, W)`` in ``[0, 1]``, as ``ToTensor`` makes them.
      The layout of 4-D images is inferred as :class:`~torchbearer_vae.ImageDataset` infers it
      (``(N, 32, 32, 3)`` is channels-last, ``(N, 3, 32, 32)`` channels-first); when the shape
      cannot tell, e.g. ``(N, 3, 32, 3)``, a ``ValueError`` asks for ``channels_last``. Any other
      tensor or array is served as it is.
    * a :class:`~torch.utils.data.TensorDataset`: its tensors, as they are.
    * an :class:`~torchbearer_vae.AutoEncoderDataset` of any of these: the target is a copy of the
      input (flattened if ``flatten_target``), not the label; with ``keep_labels=True`` the
      batches are ``(x, target, label)``, the labels gathered from the wrapped dataset's tensor
      like the images (see :func:`load_batch_with_labels`).
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
        dataset: A tensor, a numpy array or a map-style dataset that fits in memory (see the list).
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
        channels_last (bool or None): Whether a uint8 array of 4-D images given here (alone or in
            an ``AutoEncoderDataset``/``Subset``) is ``(N, H, W, C)`` (True) or ``(N, C, H, W)``
            (False); None infers it from the shape. An error for other datasets, whose items
            already have their layout.

    Raises:
        ValueError, TypeError: at construction, for a bad argument or a dataset it cannot serve.

    Example: ::

        >>> import numpy as np
        >>> import torch
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
        >>> photos = np.zeros((10, 32, 32, 3), dtype=np.uint8)  # channels-last, as numpy and PIL hold them
        >>> next(iter(TensorLoader(photos, batch_size=4))).shape
        torch.Size([4, 3, 32, 32])
    """

    def __init__(self, dataset: Any, batch_size: int = 1, *, shuffle: bool = False, drop_last: bool = False,
                 seed: Optional[int] = None, device: Optional[Union[str, torch.device]] = None,
                 rank: Optional[int] = None, world_size: Optional[int] = None, channels_last: Optional[bool] = None):
        batch_size = check_int('batch_size', batch_size, minimum=1)
        shuffle, drop_last = check_bool('shuffle', shuffle), check_bool('drop_last', drop_last)
        seed = None if seed is None else _seed('seed', seed)
        if channels_last is not None:
            check_bool('channels_last', channels_last)
        if device is not None and not isinstance(device, (str, torch.device)):
            raise TypeError(f'device must be None, a str or a torch.device, got {type(device).__name__}')
        if device is not None:
            try:
                device = torch.device(device)
            except RuntimeError as error:
                raise ValueError(f'device {device!r} is not a torch device: {error}') from None
        if not (isinstance(dataset, torch.Tensor) or (hasattr(dataset, '__getitem__') and hasattr(dataset, '__len__'))):
            raise TypeError(f'TensorLoader needs a tensor, an array or a map-style dataset (__getitem__ and __len__), '
                            f'got {type(dataset).__name__}')
        if isinstance(dataset, (torch.Tensor, np.ndarray)) and dataset.ndim == 0:
            raise ValueError(f'TensorLoader needs a tensor with a first (batch) dimension, got {describe(dataset)}')
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

        source = source_of(dataset, torch.get_default_dtype(), channels_last)  # the dtype ToTensor converts to
        if device is not None:
            for column in source.columns:
                if hasattr(column, 'data'):
                    column.data = column.data.to(device)
            source.rows = None if source.rows is None else source.rows.to(device)
        self._source, self._size, self._per_rank = source, size, per_rank
        self.rank, self.world_size = rank, world_size
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, shuffle, drop_last
        self.device = device
        # Drawn once, from the global generator, so that torch.manual_seed(...) fixes every epoch's order; only
        # when shuffling: a loader that never shuffles leaves the global random state (z draws, dropout) alone.
        if seed is None:
            seed = int(torch.empty((), dtype=torch.int64).random_()) if shuffle else 0
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        """The number of batches per epoch (of this rank's shard)."""
        return self._per_rank // self.batch_size if self.drop_last else math.ceil(self._per_rank / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its order is the one drawn from ``seed + epoch``).

        Args:
            epoch (int): The epoch number, >= 0. Iterating advances it by one.
        """
        self.epoch = check_int('epoch', epoch, minimum=0)

    def state_dict(self) -> dict:
        """The seed and the next epoch: all that decides the orders still to come."""
        return {'seed': self.seed, 'epoch': self.epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        """Continue from :meth:`state_dict` (e.g. when resuming a run).

        Args:
            state_dict (dict): As returned by :meth:`state_dict`.
        """
        seed = _seed("state_dict['seed']", state_dict['seed'])
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
