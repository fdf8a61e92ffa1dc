"""How long ``train`` trains a small dataset, and what it says at the end of a run that did not learn what it could.

An epoch of a small training set goes over it several times (:func:`epoch_passes`), so that a run of the default
epochs is long enough. At the end, :func:`run_advice` reads the run's history for a run too short or whose KL term
collapsed: one line per problem, saying what was seen and what to try, and nothing for a healthy run. ``train``
prints the lines and keeps them in ``summary.json``.

Internal to the command line (:mod:`torchbearer_vae.cli`).
"""
import math
from typing import Any, List, Optional, Sequence

from ..checks import plural
from .kl import SCHEDULES
from .model import is_quantized

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

#: Optimizer steps below which a run is too short: a VAE trained for fewer has learnt little more than the mean
#: colours of its images (docs/own_images.rst measures it). The default 10 epochs are at least this many.
MIN_STEPS = 500


#: The optimizer steps an epoch of a small training set aims at: one of fewer batches is gone over as many whole times
#: as fit in this many (each time in a new order), so that the default 10 epochs of a small folder are about 1,000
#: steps, and never fewer than MIN_STEPS. A training set of more than half as many batches (MNIST's 10,000 test
#: images) is gone over once.
EPOCH_STEPS = 2 * MIN_STEPS // 10


def epoch_passes(batches: int) -> int:
    """How many times an epoch goes over a training set of ``batches`` batches: as many as fit in EPOCH_STEPS."""
    return max(1, EPOCH_STEPS // max(batches, 1))


def run_advice(history: Sequence[dict], *, steps: int, batches: int, options: dict) -> List[str]:
    """The lines to print after a run of ``steps`` optimizer steps in all (``batches`` per epoch): none if healthy.

    Args:
        history: torchbearer's history, one dict of metrics per epoch (``val_active_units`` read from the last).
        steps: Optimizer steps the whole run took (all its sessions).
        batches: Optimizer steps per epoch.
        options: The run's options (``model``, ``beta``, ``likelihood``, ``sigma``, ``batch_size`` are read).
    """
    lines = []
    if steps < MIN_STEPS:
        epochs = math.ceil(MIN_STEPS / max(batches, 1))
        model, symptoms = (('a VQ-VAE', 'a few codes used') if is_quantized(options) else
                           ('a VAE', 'every sample alike'))
        lines.append(f'this run took only {plural(steps, "optimizer step")} ({plural(len(history), "epoch")} of '
                     f'{plural(batches, "batch", "batches")}): too few for {model} to learn more than the mean colours '
                     f'of the images (blurred, grey reconstructions, {symptoms}). Train for at least '
                     f'{MIN_STEPS:,} steps: --epochs {epochs}, or a smaller --batch-size (this run: '
                     f'{options.get("batch_size")}) for more steps per epoch')
    active = _last(history, 'val_active_units')
    if active is not None and active < 1:
        lines.append(f'no latent unit is active (val_active_units {active:g}): the KL term pulled every posterior '
                     f'onto the prior, so the decoder ignores z and reconstructs and samples one average picture. '
                     f'Try {_collapse_fix(options)}')
    return lines


def _last(history: Sequence[dict], key: str) -> Optional[float]:
    """The last epoch's ``key``, or None if it has none (or it is not a finite number)."""
    value: Any = history[-1].get(key) if history else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _collapse_fix(options: dict) -> str:
    """What to change for a run whose KL term collapsed, given its options."""
    fixes = []
    beta = options.get('beta', 1.0)
    if beta:
        fixes.append(f'a smaller --beta (this run: {beta:g}; try {beta / 4:g})')
    if options.get('likelihood') == 'gaussian' and isinstance(options.get('sigma'), (int, float)):
        fixes.append(f'--sigma calibrated or a smaller --sigma (this run: {options["sigma"]:g}; calibrated, the '
                     f'reconstruction term is weighed as the decoder\'s errors warrant)')
    elif options.get('likelihood') == 'bernoulli':
        fixes.append('--likelihood gaussian for photographs (a calibrated decoder)')
    if not any(options.get(name) for name in SCHEDULES + ('free_bits',)):
        fixes.append('a KL warm-up (--kl-warmup 5) or free bits (--free-bits 0.5)')
    fixes.append('more --epochs')
    return ', '.join(fixes[:-1]) + f' or {fixes[-1]}' if len(fixes) > 1 else fixes[0]
