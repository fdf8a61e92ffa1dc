"""What a training run leaves besides checkpoints and pictures: the metrics CSV, the loss plot, JSON."""
import csv
import io
import json
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torchbearer
from torchbearer.callbacks import Callback

from .checks import check_bool, check_path, describe
from .distributed import is_main_process
from .files import BackgroundWriter, PathLike, atomic_write, bytes_writer

__all__ = ['MetricsCSV', 'plot_history', 'write_json']


_SKIPPED = ('train_steps', 'validation_steps')


def _columns(history: Sequence[Dict[str, Any]]) -> List[str]:
    """Every epoch metric once, in first-seen order, training before validation: a stable header.

    The progress bar's ``running_*`` averages (of the last batches only) and step counts are left out.
    """
    names = []
    for epoch in history:
        names += [name for name in epoch if name not in names and name not in _SKIPPED
                  and not name.startswith('running_')]
    return ['epoch'] + [n for n in names if not n.startswith('val_')] + [n for n in names if n.startswith('val_')]


class MetricsCSV(Callback):
    """Write torchbearer's history as a CSV, one row per epoch, rewritten atomically each epoch.

    torchbearer's :class:`~torchbearer.callbacks.csv_logger.CSVLogger` appends to a file it
    keeps open: a kill can leave half a row, and a run resumed from a checkpoint taken before
    the last row was written would repeat it. This writes the whole (small) file from the
    Trial's history at the ``on_checkpoint`` hook, so the CSV always matches the history a
    checkpoint saved at the same hook holds. Its ``epoch`` column counts from 1, as the
    checkpoint's ``epoch`` (the epochs done) does: the first row is epoch 1. Like
    :class:`~torchbearer_vae.Checkpointer` it writes in a background thread by default, in order
    (a checkpoint handed over before the CSV is on the disk first), and the file is complete when
    ``Trial.run`` returns. Under :mod:`torch.distributed` only rank 0 writes: the rows are rank
    0's history, that is rank 0's own metrics unless a :class:`~torchbearer_vae.ReduceMetrics`
    callback made them the means over the ranks.

    Args:
        path (str or PathLike): The CSV file.
        background (bool): Write the file in a background thread (default) or at the hook.

    Example: ::

        >>> from torchbearer_vae import MetricsCSV
        >>> csv_writer = MetricsCSV('runs/vae/metrics.csv')
        >>> # Trial(..., callbacks=[csv_writer])
    """

    def __init__(self, path: PathLike, *, background: bool = True):
        super().__init__()
        if os.path.isdir(check_path('path', path)):
            raise ValueError(f'path {os.fspath(path)!r} is a directory; give the CSV file name')
        self.path, self.background = path, check_bool('background', background)

    def on_checkpoint(self, state: dict) -> None:
        if not is_main_process():
            return
        history = state[torchbearer.HISTORY]
        columns = _columns(history)
        text = io.StringIO(newline='')  # the rows as they are now: training goes on appending to the history
        writer = csv.DictWriter(text, columns, restval='')
        writer.writeheader()
        for epoch, row in enumerate(history, start=1):
            writer.writerow({'epoch': epoch, **{k: v for k, v in row.items() if k in columns}})
        data = text.getvalue().encode('utf-8')
        BackgroundWriter.of_run(state).write(self.path, bytes_writer(data), owner=self, background=self.background)

    def on_end(self, state: dict) -> None:
        BackgroundWriter.of_run(state).wait(owner=self)


def plot_history(history: Sequence[Dict[str, Any]], path: PathLike, *, metrics: Sequence[str] = ('loss',)) -> bool:
    """Plot training and validation curves of ``metrics`` per epoch into an image file, epochs counted from 1.

    When the first epoch's values dwarf the others' (its loss is often many times the rest's), the
    chart shows the later epochs' range, and says that epoch 1 is cut and what its values were.

    Args:
        history (sequence of dict): torchbearer's history (one dict of metrics per epoch).
        path (str or PathLike): The image to write (atomically); format from the extension.
        metrics (list or tuple of str): Which metrics; each is drawn with its ``val_`` twin if present.

    Under :mod:`torch.distributed`, call it on one rank (rank 0): every call writes the file.

    Returns:
        bool: ``False`` (and nothing written) when matplotlib is not installed, ``True`` otherwise.
    """
    check_path('path', path)
    names = tuple(metrics) if isinstance(metrics, (list, tuple)) else None
    if names is None or not all(isinstance(name, str) for name in names):
        raise TypeError(f"metrics must be a list or tuple of metric names such as ('loss', 'kl'), got {metrics!r}")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    figure = Figure(figsize=(6, 4))
    FigureCanvasAgg(figure)  # draws without pyplot, so no GUI backend or global state is touched
    axes = figure.add_subplot()
    epochs = range(1, len(history) + 1)
    curves = {}
    for name in names:
        for key, style in ((name, '-o'), ('val_' + name, '--s')):
            values = [epoch.get(key) for epoch in history]
            if any(value is not None for value in values):
                curves[key] = [float('nan') if v is None else float(v) for v in values]
                axes.plot(epochs, curves[key], style, label=key)
    cut = _first_epoch_cut(curves)
    if cut is not None:
        axes.set_ylim(*cut)
        shown = ', '.join(f'{key} {values[0]:.4g}' for key, values in curves.items()
                          if not cut[0] <= values[0] <= cut[1])
        axes.set_title(f'epoch 1 is off the scale ({shown})', fontsize='small')
    axes.set_xlabel('epoch')
    axes.set_ylabel('nats per image')
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    atomic_write(path, lambda tmp_path: figure.savefig(tmp_path))
    return True


def _first_epoch_cut(curves: Dict[str, List[float]]) -> Optional[Tuple[float, float]]:
    """The y limits of the epochs after the first, when the first's values would squeeze them; else None.

    Cut when there are at least 3 epochs and the later ones would fill less than a third of the
    height a chart of every epoch needs (a margin of a twentieth of their range on either side).
    """
    later = [value for values in curves.values() for value in values[1:] if math.isfinite(value)]
    first = [values[0] for values in curves.values() if len(values) > 2 and math.isfinite(values[0])]
    if not later or not first:
        return None
    low, high = min(later), max(later)
    full = max(high, *first) - min(low, *first)
    if full == 0 or high - low >= full / 3:
        return None
    margin = (high - low) / 20 or abs(high) / 20 or 1.0
    return low - margin, high + margin


def write_json(path: PathLike, data: Dict[str, Any]) -> str:
    """Write ``data`` as indented JSON, atomically; NaN and infinities are written as ``null``.

    JSON has no NaN or infinity: Python's ``json`` writes bare ``NaN``/``Infinity``, which strict readers
    (JavaScript's ``JSON.parse``, ``jq``) refuse. A number that is not finite becomes ``null``, as
    JavaScript's ``JSON.stringify`` writes it, so the file stays readable everywhere and keeps its
    other values (a run's summary is worth more than the one number that is missing).

    Args:
        path (str or PathLike): The file.
        data (dict): JSON-serialisable values.

    Returns:
        str: The text written.

    Under :mod:`torch.distributed`, call it on one rank (rank 0): every call writes the file.
    """
    check_path('path', path)
    if not isinstance(data, dict):
        raise TypeError(f'data must be a dict of JSON-serialisable values, got {describe(data)}')
    text = json.dumps(_finite(data), indent=2, sort_keys=False, allow_nan=False) + '\n'

    def write(tmp_path: str) -> None:
        with open(tmp_path, 'w') as file:
            file.write(text)

    atomic_write(path, write)
    return text


def _finite(value: Any) -> Any:
    """``value`` with every float that is not finite replaced by None (in dicts, lists and tuples)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
