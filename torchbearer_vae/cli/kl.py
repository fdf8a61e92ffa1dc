"""The KL term of a ``torchbearer-vae train`` run: ``--beta``, a schedule (``--kl-warmup``, ``--kl-cycles``,
``--kl-capacity``) and ``--free-bits``, built from the library's :mod:`~torchbearer_vae.schedules` and
:func:`~torchbearer_vae.kld_loss`; a VQ-VAE's terms instead (:func:`latent_terms`).

The schedules' lengths are given in epochs (fractions allowed) and run in training steps: ``EPOCHS`` epochs are
``round(EPOCHS * steps per epoch)`` steps, so beta rises smoothly within an epoch. The position is the KL
callback's, saved in the checkpoint: a resumed run continues the schedule exactly.

``--kl-cycles N`` spreads ``N`` cycles over the run's ``--epochs``; the run stores it as ``N:EPOCHS`` (what
``--kl-cycles`` also takes), so that a resumed run, given more ``--epochs``, keeps the cycles' length, and a
repeated run (``--config runs/x/config.toml``) has the same.

Internal to the command line (:mod:`torchbearer_vae.cli`); every refusal is a :class:`CommandError`.
"""
import argparse
import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from torchbearer.callbacks import Callback

from ..checks import check_number
from ..divergences import codebook_loss, commitment_loss, kld_loss
from ..errors import CommandError
from ..models.quantizer import VectorQuantizer
from ..schedules import Schedule, capacity, cyclical, linear_warmup
from .model import flag

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

#: The weight of ``|KL - C|`` under ``--kl-capacity`` (Burgess et al. 2018 use 1000).
CAPACITY_GAMMA = 1000.0
#: The options that choose a schedule: at most one of them.
SCHEDULES = ('kl_warmup', 'kl_cycles', 'kl_capacity')


def _pair(text: str, first: str) -> Tuple[float, Optional[float]]:
    """``A`` or ``A:B`` as two finite numbers (B None when absent); ValueError naming what is wrong."""
    head, colon, tail = str(text).partition(':')
    try:
        values = (float(head), float(tail) if colon else None)
    except ValueError:
        raise ValueError(f'{first} must be a number') from None
    if not all(value is None or math.isfinite(value) for value in values):
        raise ValueError('the numbers must be finite')
    return values


def _epochs_text(value: float) -> str:
    return f'{value:g}' if float(f'{value:g}') == value else repr(value)


def capacity_target(text: str) -> str:
    """``--kl-capacity NATS:EPOCHS``: the target C rises from 0 to NATS nats per image over EPOCHS epochs."""
    try:
        nats, epochs = _pair(text, 'NATS')
        if epochs is None or nats < 0 or epochs <= 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be NATS:EPOCHS, a capacity >= 0 nats and epochs > 0, e.g. 25:10, '
                                         f'got {text!r}') from None
    return f'{_epochs_text(nats)}:{_epochs_text(epochs)}'


def cycles(text: str) -> str:
    """``--kl-cycles N`` (over the run's ``--epochs``) or ``N:EPOCHS`` (N cycles over EPOCHS epochs)."""
    try:
        count, epochs = _pair(text, 'N')
        if count != int(count) or count < 1 or (epochs is not None and epochs <= 0):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be N, a whole number of cycles >= 1 (over --epochs), or N:EPOCHS, '
                                         f'got {text!r}') from None
    return f'{int(count)}' + ('' if epochs is None else f':{_epochs_text(epochs)}')


def check_stored(parse: Callable[[str], str]) -> Callable[[str, Any], None]:
    """The check of a stored value of the option that ``parse`` reads: None or the text it gives back unchanged."""
    def check(name: str, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, str):
            raise TypeError(f'{name} must be a string or None, got a {type(value).__name__}')
        try:
            parsed = parse(value)
        except argparse.ArgumentTypeError as error:
            raise ValueError(f'{name} {error}') from None
        if parsed != value or (parse is cycles and ':' not in value):
            raise ValueError(f'{name} must be written as the run stores it, got {value!r}')
    return check


def settle_cycles(options: Dict[str, Any], epochs: int) -> None:
    """A new run's ``--kl-cycles N``, stored as ``N:EPOCHS`` with the run's ``--epochs``."""
    if options.get('kl_cycles') is not None and ':' not in options['kl_cycles']:
        options['kl_cycles'] = f'{options["kl_cycles"]}:{epochs}'


def check_kl_options(options: Dict[str, Any], given: Dict[str, Any]) -> None:
    """Refuse (CommandError) the KL options of a new run that cannot go together; ``given``: what was typed."""
    chosen = [name for name in SCHEDULES if options.get(name) is not None]
    if len(chosen) > 1:
        raise CommandError(f'{" and ".join(flag(name) for name in chosen)} are each a schedule of the KL term: '
                           f'give one of them')
    if given.get('kl_cycle_ratio') is not None and options.get('kl_cycles') is None:
        raise CommandError('--kl-cycle-ratio is the rising part of each cycle of --kl-cycles: add --kl-cycles N, '
                           'or leave --kl-cycle-ratio out')
    if options.get('kl_capacity') is not None:
        if given.get('beta') is not None:
            raise CommandError(f'--kl-capacity replaces beta * KL with {CAPACITY_GAMMA:g} * |KL - C|: leave --beta '
                               f'out, or use --kl-warmup or --kl-cycles, which rise to --beta')
        if options.get('free_bits'):
            raise CommandError('--free-bits and --kl-capacity both replace the KL term: give one of them')


def unused(options: Mapping[str, Any]) -> Tuple[str, ...]:
    """The KL options a run does not use (its config.toml leaves them out, so that reading it back is not refused)."""
    names = [] if options.get('kl_cycles') is not None else ['kl_cycle_ratio']
    return tuple(names + (['beta'] if options.get('kl_capacity') is not None else []))


def _steps(epochs: float, steps_per_epoch: int) -> int:
    return max(1, round(epochs * steps_per_epoch))


def _span(text: str, first: str) -> Tuple[float, float]:
    """``A:B`` as two numbers (a stored ``--kl-cycles`` or ``--kl-capacity``)."""
    head, tail = _pair(text, first)
    if tail is None:
        raise ValueError(f'{text!r} is not {first}:EPOCHS')
    return head, tail


def schedule(options: Dict[str, Any], steps_per_epoch: int) -> Optional[Schedule]:
    """The run's KL schedule over training steps (``steps_per_epoch`` batches an epoch), or None for a fixed beta."""
    check_number('beta', options['beta'], minimum=0)
    beta = float(options['beta'])
    if options.get('kl_warmup') is not None:
        return linear_warmup(_steps(options['kl_warmup'], steps_per_epoch), max_beta=beta)
    if options.get('kl_cycles') is not None:
        count, epochs = _span(options['kl_cycles'], 'N')
        period = _steps(epochs / count, steps_per_epoch)
        return cyclical(period, ratio=options.get('kl_cycle_ratio', 0.5), max_beta=beta)
    if options.get('kl_capacity') is not None:
        nats, epochs = _span(options['kl_capacity'], 'NATS')
        return capacity(nats, _steps(epochs, steps_per_epoch), gamma=CAPACITY_GAMMA)
    return None


def kl_term(options: Dict[str, Any], steps_per_epoch: int) -> Callback:
    """The run's KL callback: :func:`~torchbearer_vae.kld_loss` with its schedule (or ``--beta``) and free bits."""
    chosen = schedule(options, steps_per_epoch)
    return kld_loss(beta=options['beta'] if chosen is None else chosen, reduction='batchmean',
                    free_bits=options.get('free_bits') or 0.0)


def latent_terms(options: Dict[str, Any], model: Any, steps_per_epoch: int) -> List[Callback]:
    """The callbacks adding the latent space's terms to the loss, the first the one whose state the checkpoint keeps.

    A Gaussian VAE's: :func:`kl_term`. A model with a vector quantizer (``--model vqvae``): its commitment term,
    weighted by the quantizer's ``commitment_weight`` (``--model-arg commitment_weight=...``), and its codebook term
    when the codebook learns by its loss (``--model-arg update=loss``); in nats per image, as the criterion.
    """
    quantizer = VectorQuantizer.of(model)
    if quantizer is None:
        return [kl_term(options, steps_per_epoch)]
    terms = [commitment_loss(beta=quantizer.commitment_weight, reduction='batchmean')]
    return terms + ([codebook_loss(reduction='batchmean')] if quantizer.update == 'loss' else [])

