"""The processes ``torchbearer-vae train`` runs on: this one alone, or the ones torchrun started."""
import gc
import os
from typing import Any, Callable, List, TypeVar

import torch

from ..errors import CheckpointError, CommandError

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

_Result = TypeVar('_Result')


def pick_device(name: str) -> torch.device:
    """The device of ``--device`` (``auto``: cuda when available); CommandError for cuda without a GPU."""
    if name == 'cuda' and not torch.cuda.is_available():
        raise CommandError('--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto')
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    return torch.device(name)


class Processes:
    """The processes training together: this one alone, or the ``WORLD_SIZE`` ones torchrun started.

    Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) every process runs ``train``: it
    joins the default process group (``env://``: ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
    ``MASTER_PORT``), with NCCL on its own GPU (``cuda:LOCAL_RANK``) or gloo on the CPU.
    """

    def __init__(self, device_name: str):
        self.rank, self.world_size, self.local_rank, self.joined = 0, 1, 0, False
        try:
            world_size = int(os.environ.get('WORLD_SIZE', '1'))
            local_rank = int(os.environ.get('LOCAL_RANK', '0'))
        except ValueError:
            raise CommandError(f"WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets them), got "
                               f"WORLD_SIZE={os.environ.get('WORLD_SIZE')!r}, "
                               f"LOCAL_RANK={os.environ.get('LOCAL_RANK')!r}") from None
        self.device = pick_device(device_name)
        if world_size <= 1:
            return
        self.local_rank = local_rank
        dist = torch.distributed
        if not dist.is_available():
            raise CommandError(f'WORLD_SIZE={world_size} asks for distributed training, but this PyTorch has no '
                               f'torch.distributed')
        if self.device.type == 'cuda':
            if local_rank >= torch.cuda.device_count():
                raise CommandError(f'process {local_rank} of this machine has no GPU of its own (there are '
                                   f'{torch.cuda.device_count()}): start at most one process per GPU '
                                   f'(torchrun --nproc_per_node) or use --device cpu')
            self.device = torch.device('cuda', local_rank)
            torch.cuda.set_device(self.device)
        if not dist.is_initialized():  # else a program calling this joined already, and leaves itself
            try:
                dist.init_process_group('nccl' if self.device.type == 'cuda' else 'gloo')
            except (RuntimeError, ValueError) as error:
                raise CommandError(f"could not join the {world_size} processes (MASTER_ADDR="
                                   f"{os.environ.get('MASTER_ADDR')}, MASTER_PORT={os.environ.get('MASTER_PORT')}): "
                                   f"{error}") from None
            self.joined = True
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    def from_rank_0(self, work: Callable[[], _Result]) -> _Result:
        """``work()`` done by rank 0 alone, its result (or its one-line error) given to every rank.

        What touches ``--out`` happens on rank 0 only: on several machines, only rank 0's has the run.
        """
        if self.world_size == 1:
            return work()
        box: List[Any] = [None]  # rank 0's (result, None) or (None, error), broadcast as a pickle
        if self.rank == 0:
            try:
                box = [(work(), None)]
            except (CommandError, CheckpointError) as error:
                box = [(None, error)]
        torch.distributed.broadcast_object_list(box, src=0)
        received: _Result
        received, failure = box[0]
        if failure is not None:
            raise failure  # on every rank, so that none waits for the others (each prints the same line)
        return received

    def gather(self, value: Any) -> List[Any]:
        """``value`` of every rank, in rank order."""
        if self.world_size == 1:
            return [value]
        values: List[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        """Wait until every rank is here."""
        if self.world_size > 1:
            torch.distributed.barrier()

    def leave(self, together: bool) -> None:
        """Leave the process group; ``together``: the ranks all finished, and wait for each other first."""
        if not self.joined:
            return
        # DistributedDataParallel holds the group, and torchbearer's Trial (which refers to itself) holds the
        # DDP model until a garbage collection: a group destroyed while held can abort the process at exit
        # ("terminate called without an active exception"), failing a run that succeeded.
        gc.collect()
        if together:  # not after an error: the other ranks may be waiting elsewhere, and torchrun stops them
            self.barrier()
        torch.distributed.destroy_process_group()
        self.joined = False

