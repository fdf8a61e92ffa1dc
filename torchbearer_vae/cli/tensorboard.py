"""``train --tensorboard``: each epoch's metrics and the pictures written for TensorBoard into ``--out/tensorboard``.

The files are tensorboardX's (torchbearer's TensorBoard writer; ``pip install -e ".[tensorboard]"``): look at them
with ``tensorboard --logdir runs/x/tensorboard``.

Internal to the command line (:mod:`torchbearer_vae.cli`); every refusal is a :class:`CommandError`.
"""
import itertools
import os
from typing import Any, Callable

import torch
import torchbearer
from torchbearer.callbacks import TensorBoard

from ..errors import CommandError

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

#: The folder of ``--out`` the TensorBoard files go into.
FOLDER = 'tensorboard'

#: Counts the writers this process opened: the last part of their files' names.
_OPENED = itertools.count()


def check_tensorboard() -> None:
    """CommandError, before any work, if tensorboardX (which writes the files) is not installed."""
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        raise CommandError('--tensorboard needs the tensorboardX package, with which torchbearer writes TensorBoard '
                           'files: pip install -e ".[tensorboard]" (or pip install tensorboardX), or leave '
                           '--tensorboard out') from None


class RunBoard(TensorBoard):
    """torchbearer's :class:`~torchbearer.callbacks.TensorBoard` writing a run's epoch metrics, and its pictures.

    Two of torchbearer's choices do not suit a run folder, so the writer is opened here: torchbearer writes into
    ``log_dir/<model class>_<comment>``, and a picture's ``to_tensorboard()`` opens and closes a writer of its own
    for every image, while tensorboardX names a file by the second it was opened: two writers opened in the same
    second in one folder write the same file, the later over the earlier. Here one writer per run, in ``log_dir``
    itself, takes the metrics (``epoch/loss``, ``epoch/val_loss``, ...) and every picture (:meth:`picture`, a
    handler of the picture callbacks); its file's name ends with the process id and a count, as TensorFlow names
    its own, so a resumed run started in the same second as the last one adds a file instead of replacing it. The
    writer is flushed at the end of each epoch, so a stopped run keeps what it wrote.

    Args:
        log_dir (str): The folder of the event files.
    """

    def __init__(self, log_dir: str):
        super().__init__(log_dir, write_graph=False, write_batch_metrics=False, write_epoch_metrics=True)

    def on_start(self, state: Any) -> None:
        from tensorboardX import SummaryWriter
        self.writer = SummaryWriter(self.log_dir, filename_suffix=f'.{os.getpid()}.{next(_OPENED)}')

    def on_end(self, state: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def on_end_epoch(self, state: Any) -> None:
        super().on_end_epoch(state)
        self.writer.flush()

    def picture(self, tag: str) -> Callable[[torch.Tensor, int, Any], None]:
        """A picture callback's handler (``.with_handler(board.picture('samples'))``): its image under ``tag``."""
        def handler(image: torch.Tensor, index: int, state: Any) -> None:
            if self.writer is not None:
                self.writer.add_image(tag, image.clamp(0, 1), state[torchbearer.EPOCH])
        return handler


def run_board(out: str) -> RunBoard:
    """The :class:`RunBoard` of the run in ``out``, writing into ``out/tensorboard``."""
    return RunBoard(os.path.join(out, FOLDER))
