"""Training on several processes with :mod:`torch.distributed`: which rank writes, and global epoch metrics.

Under ``torchrun`` each process trains a
:class:`~torch.nn.parallel.DistributedDataParallel` copy of the model on its own shard of the
data (:class:`~torchbearer_vae.TensorLoader` shards by itself once the process group exists).
The package's writers already know about ranks: the picture callbacks,
:class:`~torchbearer_vae.Checkpointer` and :class:`~torchbearer_vae.MetricsCSV` write on rank 0
only, and a checkpoint of a DDP-wrapped model holds the inner model's weights (no ``module.``
prefix). What stays per rank are torchbearer's metrics: each process averages ``loss``, ``kl``
and ``recon`` over its own batches. :class:`ReduceMetrics` makes them global. See the
:doc:`distributed guide </distributed>`.
"""
import numbers
from typing import Any

import torch
import torchbearer
from torch import nn
from torchbearer.callbacks import Callback

__all__ = ['get_rank', 'get_world_size', 'is_main_process', 'unwrap_model', 'ReduceMetrics']


def get_rank() -> int:
    """This process's rank in the default process group; 0 when there is none (one process).

    Returns:
        int: The rank.

    Example: ::

        >>> from torchbearer_vae.distributed import get_rank
        >>> get_rank()  # no process group here
        0
    """
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """How many processes train together: the default process group's size, or 1 when there is none.

    Returns:
        int: The world size.

    Example: ::

        >>> from torchbearer_vae.distributed import get_world_size
        >>> get_world_size()
        1
    """
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this process writes the run's files (pictures, checkpoints, CSV): rank 0, or the only process.

    Returns:
        bool: ``get_rank() == 0``.

    Example: ::

        >>> from torchbearer_vae.distributed import is_main_process
        >>> is_main_process()
        True
    """
    return get_rank() == 0


def unwrap_model(model: Any) -> Any:
    """The user's model inside ``DistributedDataParallel``/``DataParallel`` wrappers, whose weights say ``module.``.

    The one way the package reaches the model a wrapper holds (for its ``encode``/``decode``,
    its configuration or its weights without the ``module.`` prefix).

    Args:
        model: A model, wrapped or not.

    Returns:
        The innermost wrapped module (``model`` itself when it is not wrapped).

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import VAE
        >>> from torchbearer_vae.distributed import unwrap_model
        >>> model = VAE()
        >>> unwrap_model(torch.nn.DataParallel(model)) is model
        True
    """
    while isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


def _averageable(value: Any) -> bool:
    """Floats and float tensors of one value are averaged; counts (ints) and anything else are not."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and value.is_floating_point()
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)


class ReduceMetrics(Callback):
    """Average the epoch's metrics over the processes, so that every rank records the global values.

    Under :mod:`torch.distributed` each process computes torchbearer's metrics over its own
    batches: ``loss``, ``kl`` and ``recon`` in the history are that rank's means, and rank 0's
    would be written to the CSV and the checkpoint. At the end of each epoch, before torchbearer
    adds the epoch to the history, this callback replaces every floating-point metric of
    ``state[torchbearer.METRICS]`` (training and validation ones, running averages included) by
    its mean over the ranks, with one ``all_reduce`` per epoch. When every rank runs the same
    number of batches (as with a sharded :class:`~torchbearer_vae.TensorLoader`), the mean of
    the ranks' epoch means is the epoch mean over all batches: what one process training on all
    the data would record. Validation metrics of data every rank sees whole (an unsharded
    validation loader) are the same on every rank, and stay so.

    Integer metrics, such as ``active_units``, are counts that cannot be averaged: they are left
    as each rank computed them (compute them on validation data every rank sees whole, and they
    agree). Without a process group (one process) the callback does nothing.

    It must be on every rank (it is a collective) and before the callbacks that read the epoch's
    metrics at ``on_end_epoch`` (early stopping, learning-rate schedules on a metric); writers at
    ``on_checkpoint`` (:class:`~torchbearer_vae.Checkpointer`, :class:`~torchbearer_vae.MetricsCSV`)
    come after it anyway. torchbearer's progress bar runs before every callback: on rank 0 it
    shows rank 0's own values.

    Example: ::

        >>> import torch, torchbearer
        >>> from torchbearer_vae import VAE, ReduceMetrics, kld_loss
        >>> model = VAE()  # under torchrun: torch.nn.parallel.DistributedDataParallel(VAE())
        >>> trial = torchbearer.Trial(model, torch.optim.Adam(model.parameters()), torch.nn.BCELoss(reduction='sum'),
        ...                           metrics=['loss', 'recon', 'kl'], callbacks=[ReduceMetrics(), kld_loss()])
    """

    def on_end_epoch(self, state: dict) -> None:
        world_size = get_world_size()
        if world_size == 1:
            return
        metrics = state[torchbearer.METRICS]
        names = sorted(name for name, value in metrics.items() if _averageable(value))  # the same order on every rank
        dist = torch.distributed
        # NCCL reduces CUDA tensors only; every other backend takes CPU tensors.
        device = torch.device('cuda', torch.cuda.current_device()) if dist.get_backend() == 'nccl' else 'cpu'
        values = torch.tensor([float(metrics[name]) for name in names], dtype=torch.float64, device=device)
        dist.all_reduce(values)
        metrics.update(zip(names, (values / world_size).tolist()))
