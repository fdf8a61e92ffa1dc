"""What ``torchbearer-vae`` shows while it works, on stderr: one plain line per epoch, live bars only on a terminal.

A log file (``2> train.log``) gets one line per epoch with the training and validation figures and nothing
else; a terminal also gets a live bar while an epoch's batches run, which disappears when the line is printed.
Both are torchbearer callbacks reading the Trial's state, numbered from the state's epoch, so a resumed run
counts on from where it stopped.

Internal to the command line (:mod:`torchbearer_vae.cli`).
"""
import sys
import time
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional

import torchbearer
from torchbearer.callbacks import Callback

if TYPE_CHECKING:  # tqdm is imported when a bar is shown
    from tqdm import tqdm

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

_PLAIN_EVERY = 10.0  # seconds between the plain progress lines of a long evaluation in a log


def _figures(metrics: dict) -> str:
    return ' '.join(f'{name} {_number(value)}' for name, value in metrics.items())


def _number(value: Any) -> str:
    try:
        return f'{float(value):.5g}'
    except (TypeError, ValueError):
        return str(value)


def _stderr_is_terminal() -> bool:
    return sys.stderr is not None and sys.stderr.isatty()


class EpochPrinter(Callback):
    """Prints ``epoch N/M: train loss ... | val loss ... (T s)`` on stderr at the end of every epoch.

    ``N`` counts from 1 and from the state's epoch, so after ``--resume`` the first line is the
    epoch that follows the checkpoint's. Figures are the epoch's metrics (nats per image).
    """

    def __init__(self) -> None:
        self.started: Optional[float] = None

    def on_start_epoch(self, state: dict) -> None:
        self.started = time.monotonic()

    def on_end_epoch(self, state: dict) -> None:
        metrics = {name: value for name, value in state[torchbearer.METRICS].items()
                   if not name.startswith('running_')}  # the last batches' averages: the epoch's are shown
        train = {name: value for name, value in metrics.items() if not name.startswith('val_')}
        val = {name[len('val_'):]: value for name, value in metrics.items() if name.startswith('val_')}
        seconds = f' ({time.monotonic() - self.started:.1f} s)' if self.started is not None else ''
        line = f'epoch {state[torchbearer.EPOCH] + 1}/{state[torchbearer.MAX_EPOCHS]}: train {_figures(train)}'
        print(line + (f' | val {_figures(val)}' if val else '') + seconds, file=sys.stderr, flush=True)


class LiveBar(Callback):
    """A tqdm bar over the batches of each training and validation pass, removed when the pass ends.

    torchbearer's own ``Tqdm`` numbers epochs from 0 and leaves every bar on the screen (two per
    epoch, cut at the terminal's width); this one labels the epoch as :class:`EpochPrinter` does and
    leaves the screen to its line. For a terminal only: in a file a bar is one endless line.
    """

    def __init__(self) -> None:
        self.bar: Optional[tqdm[Any]] = None

    def _open(self, state: dict, what: str) -> None:
        from tqdm import tqdm

        epoch = f'epoch {state[torchbearer.EPOCH] + 1}/{state[torchbearer.MAX_EPOCHS]} {what}'
        self.bar = tqdm(total=state[torchbearer.STEPS], desc=epoch, unit='batch', leave=False, file=sys.stderr,
                        dynamic_ncols=True)

    def _update(self, state: dict) -> None:
        if self.bar is None:  # a step outside a pass: nothing to show
            return
        self.bar.update(1)
        loss = state[torchbearer.METRICS].get('running_loss')
        if loss is not None:
            self.bar.set_postfix_str(f'loss {_number(loss)}', refresh=False)

    def _close(self, state: dict) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_start_training(self, state: dict) -> None:
        self._open(state, 'train')

    def on_step_training(self, state: dict) -> None:
        self._update(state)

    def on_end_training(self, state: dict) -> None:
        self._close(state)

    def on_start_validation(self, state: dict) -> None:
        self._open(state, 'validation')

    def on_step_validation(self, state: dict) -> None:
        self._update(state)

    def on_end_validation(self, state: dict) -> None:
        self._close(state)

    def on_end(self, state: dict) -> None:  # a run stopped mid-pass (Ctrl-C, a NaN) leaves no half bar
        self._close(state)


def training_progress(quiet: bool, rank: int = 0) -> list:
    """The progress callbacks of ``train``: none when quiet or not rank 0, the live bar only on a terminal."""
    if quiet or rank:
        return []
    return [LiveBar(), EpochPrinter()] if _stderr_is_terminal() else [EpochPrinter()]


def counted(batches: Iterable, total: int, what: str, *, quiet: bool = False) -> Iterator:
    """Yield ``batches`` (tensors, or tuples whose first item is the images) while showing how many images are done.

    On a terminal a bar; otherwise a plain line every few seconds (none for a short pass); nothing when ``quiet``.
    """
    if quiet:
        yield from batches
        return
    bar: Optional[tqdm[Any]] = None
    if _stderr_is_terminal():
        from tqdm import tqdm as terminal_bar  # not `tqdm`: this function's annotation names the type
        bar = terminal_bar(total=total, desc=what, unit='image', leave=False, file=sys.stderr, dynamic_ncols=True)
    done, shown = 0, time.monotonic()
    try:
        for batch in batches:
            yield batch
            size = len(batch[0] if isinstance(batch, (tuple, list)) else batch)
            done += size
            if bar is not None:
                bar.update(size)
            elif time.monotonic() - shown >= _PLAIN_EVERY:
                shown = time.monotonic()
                print(f'{what}: {done:,}/{total:,} images', file=sys.stderr, flush=True)
    finally:
        if bar is not None:
            bar.close()
