"""register(): make the plugin's public objects reachable from torchbearer's own namespace."""
import importlib
import warnings
from typing import Any

import torchbearer
import torchbearer.callbacks
import torchbearer.cv_utils
import torchbearer.metrics

from . import callbacks, data, divergences, metrics, state

__all__ = ['register']

_PACKAGE = __name__.partition('.')[0]
# (torchbearer module, attribute, our module that defines it): the whole of what the plugin adds to torchbearer.
_EXPORTS = (
    (torchbearer, 'MU', state),
    (torchbearer, 'LOGVAR', state),
    (torchbearer, 'KL', state),
    (torchbearer, 'RECON', state),
    (torchbearer, 'GLOBAL_STEP', state),
    (torchbearer, 'GLOBAL_EPOCH', state),
    (torchbearer, 'LABEL', state),
    (torchbearer, 'COMMITMENT', state),
    (torchbearer, 'CODEBOOK', state),
    (torchbearer, 'PERPLEXITY', state),
    (torchbearer, 'USED_CODES', state),
    (torchbearer.callbacks, 'ReconstructionSaver', callbacks),
    (torchbearer.callbacks, 'SampleSaver', callbacks),
    (torchbearer.callbacks, 'LatentTraversal', callbacks),
    (torchbearer.callbacks, 'Interpolation', callbacks),
    (torchbearer.callbacks, 'NaNGuard', callbacks),
    (torchbearer.callbacks, 'kld_loss', divergences),
    (torchbearer.callbacks, 'commitment_loss', divergences),
    (torchbearer.callbacks, 'codebook_loss', divergences),
    (torchbearer.callbacks, 'divergence', divergences),
    (torchbearer.cv_utils, 'AutoEncoderDataset', data),
)
# (metric name, our class in .metrics, its arguments): names for Trial(metrics=[...]), as torchbearer's
# default_for_key gives.
_METRICS = (
    ('kl', 'KLMetric', ()),
    ('recon', 'ReconstructionMetric', ()),
    ('active_units', 'ActiveUnits', ()),
    ('commitment', 'QuantizerMetric', ('commitment',)),
    ('perplexity', 'QuantizerMetric', ('perplexity',)),
    ('used_codes', 'QuantizerMetric', ('used_codes',)),
)
_MISSING = object()


def _is_ours(value: Any) -> bool:
    """An object an earlier import of this package put there (e.g. before a reload)."""
    return getattr(value, '__module__', '').split('.')[0] == _PACKAGE


def register() -> None:
    """Put the plugin's keys, callbacks and dataset into torchbearer's namespace.

    After it, ``torchbearer.MU is torchbearer_vae.MU`` and likewise for ``LOGVAR``, ``KL``,
    ``torchbearer.callbacks.ReconstructionSaver`` (and ``SampleSaver``, ``LatentTraversal``,
    ``Interpolation``, ``NaNGuard``), ``kld_loss``, ``commitment_loss``, ``codebook_loss``,
    ``divergence`` and ``torchbearer.cv_utils.AutoEncoderDataset``; and the metric names ``'kl'``,
    ``'recon'``, ``'active_units'``, ``'commitment'``, ``'perplexity'`` and ``'used_codes'`` work in
    ``Trial(metrics=[...])``. ``import torchbearer_vae`` calls it.

    It is idempotent, and it never replaces something torchbearer itself defines: if a name is
    already taken by another object (a future torchbearer release, say), it warns and leaves
    torchbearer's object in place; the plugin's stays available from ``torchbearer_vae``.
    Objects left by an earlier import of this package (before a reload) are updated.
    """
    for module, name, ours in _EXPORTS:
        value = getattr(ours, name)  # looked up now, so a reloaded module's classes are the ones registered
        current = getattr(module, name, _MISSING)
        if current is value:
            continue
        if current is _MISSING or _is_ours(current):
            setattr(module, name, value)
        else:
            warnings.warn(f"{module.__name__}.{name} already exists and is not torchbearer_vae's; keeping it. "
                          f"Use torchbearer_vae.{name} for the plugin's version.", stacklevel=2)
    # torchbearer keeps its metric names in a private dict; default_for_key adds to it and would
    # silently replace a name torchbearer (or another plugin) already uses, so look first.
    defaults = importlib.import_module('torchbearer.metrics.metrics').__defaults__
    for key, name, arguments in _METRICS:
        value = getattr(metrics, name)
        current = defaults.get(key, (_MISSING,))[0]
        if current is value:
            continue
        if current is _MISSING or _is_ours(current):
            torchbearer.metrics.default_for_key(key, *arguments)(value)
        else:
            warnings.warn(f"torchbearer already has a metric named {key!r} that is not torchbearer_vae's; keeping it. "
                          f"Use metrics=[torchbearer_vae.{name}()] for the plugin's.", stacklevel=2)
