r"""KL weight schedules: ``beta`` as a function of how far training has gone.

A schedule is a callable ``schedule(state) -> float`` to pass as ``kld_loss(beta=...)`` (or
``divergence(..., beta=...)``). It reads the training position from torchbearer's state:
:data:`~torchbearer_vae.GLOBAL_STEP` (training batches completed, across epochs) or, with
``unit='epoch'``, :data:`~torchbearer_vae.GLOBAL_EPOCH`. The divergence callback counts both, puts
them in state before it calls the schedule, and saves them in its ``state_dict()``, so a resumed
run continues the schedule where it stopped. Validation steps do not advance the position, and
validation uses the beta of the last training step.

Computing a beta is Python arithmetic on integers: no tensor, no host-device synchronisation.

- :func:`constant`: a fixed beta (the beta-VAE of Higgins et al. 2017).
- :func:`linear_warmup`: beta rises linearly from 0 to ``max_beta`` (KL annealing, Bowman et al. 2016).
- :func:`cyclical`: the warm-up repeated every ``period`` (Fu et al. 2019).
- :func:`capacity`: the term becomes :math:`\gamma\,|\mathrm{KL} - C|` with a target ``C`` rising
  linearly (Burgess et al. 2018).
"""
from typing import Callable, Optional

import torch

from .checks import check_callable, check_choice, check_int, check_number, describe
from .errors import MissingStateError
from .state import GLOBAL_EPOCH, GLOBAL_STEP

__all__ = ['Schedule', 'constant', 'linear_warmup', 'cyclical', 'capacity']

_UNITS = {'step': GLOBAL_STEP, 'epoch': GLOBAL_EPOCH}


class Schedule:
    """A KL weight that depends on the training position: ``schedule(state) -> float``.

    ``schedule(state)`` is ``function(position)``, where ``position`` is ``state[GLOBAL_STEP]``
    (``unit='step'``) or ``state[GLOBAL_EPOCH]`` (``unit='epoch'``), both put in state by the
    :func:`~torchbearer_vae.divergence` callback that uses the schedule as its ``beta``. The
    divergence callback adds :meth:`loss_term` to the loss: ``beta * divergence`` here; a subclass
    can change the term itself (as :func:`capacity` does).

    The factories :func:`constant`, :func:`linear_warmup`, :func:`cyclical` and :func:`capacity`
    build the usual schedules; build your own from any function of the position.

    Args:
        function (callable): ``function(position: int) -> float``, the beta (>= 0) at a position.
        unit (str): ``'step'`` (training batches) or ``'epoch'`` (training epochs).
        description (str, optional): What ``repr`` shows.

    Example: ::

        >>> from torchbearer_vae import GLOBAL_STEP, Schedule, kld_loss
        >>> squared = Schedule(lambda step: min(step / 1000, 1.0) ** 2)
        >>> squared({GLOBAL_STEP: 500})
        0.25
        >>> callback = kld_loss(beta=squared)
    """

    def __init__(self, function: Callable[[int], float], *, unit: str = 'step', description: Optional[str] = None):
        check_callable('function', function, how='as function(position: int) -> beta')
        check_choice('unit', unit, tuple(_UNITS))
        if description is not None and not isinstance(description, str):
            raise TypeError(f'description must be a str or None, got {describe(description)}')
        self.function, self.unit = function, unit
        self._description = description

    def position(self, state: dict) -> int:
        """The training position this schedule reads from ``state`` (in steps or epochs).

        Raises:
            MissingStateError: when ``state`` has no position, i.e. the schedule is not used as the
                ``beta`` of a :func:`~torchbearer_vae.divergence` / :func:`~torchbearer_vae.kld_loss`
                callback, which is what puts it there.
        """
        key = _UNITS[self.unit]
        try:
            position: int = state[key]
            return position
        except KeyError:
            raise MissingStateError(
                f'{self!r} reads state[torchbearer_vae.{key.key.upper()}], which is not in state. '
                f'Use the schedule as the beta of kld_loss or divergence: their callback counts the '
                f'training position and puts it in state.') from None

    def value(self, position: int) -> float:
        """The beta at ``position`` (a training step, or an epoch with ``unit='epoch'``)."""
        return self.function(position)

    def __call__(self, state: dict) -> float:
        return self.value(self.position(state))

    def loss_term(self, divergence: torch.Tensor, state: dict) -> torch.Tensor:
        """The term added to the loss for the (unweighted) ``divergence``: ``self(state) * divergence``."""
        return self(state) * divergence

    def __repr__(self) -> str:
        return self._description or f'Schedule({self.function!r}, unit={self.unit!r})'


class _CapacitySchedule(Schedule):
    """``gamma * |divergence - C|``, with ``C = self(state)`` (see :func:`capacity`)."""

    def __init__(self, function: Callable[[int], float], gamma: float, unit: str, description: str) -> None:
        super().__init__(function, unit=unit, description=description)
        self.gamma = gamma

    def loss_term(self, divergence: torch.Tensor, state: dict) -> torch.Tensor:
        return self.gamma * (divergence - self(state)).abs()


def _ramp(position: int, length: int) -> float:
    """The fraction of the way from 0 to 1 after ``position`` of ``length``: 0 at 0, 1 from ``length`` on."""
    return min(position, length) / length


def constant(beta: float) -> Schedule:
    """A schedule that is ``beta`` at every step: the fixed weight of a beta-VAE (Higgins et al. 2017).

    ``kld_loss(beta=constant(4.0))`` trains exactly like ``kld_loss(beta=4.0)``; the schedule form
    is for code that always passes a schedule (a command line, a config file).

    Args:
        beta (float): The weight, a finite number >= 0.

    Returns:
        Schedule: The schedule.

    Example: ::

        >>> from torchbearer_vae import GLOBAL_STEP, constant
        >>> constant(4.0)({GLOBAL_STEP: 123})
        4.0
    """
    beta = check_number('beta', beta, minimum=0)
    return Schedule(lambda position: beta, description=f'constant(beta={beta})')


def linear_warmup(num_steps: int, *, max_beta: float = 1.0, unit: str = 'step') -> Schedule:
    r"""KL warm-up: beta rises linearly from 0 to ``max_beta`` over ``num_steps``, then stays there.

    .. math::
        \beta_t = \beta_{\max} \cdot \min(t, T) / T

    where ``t`` is the number of training steps completed before the current one (0 at the first
    step) and ``T = num_steps``; with ``unit='epoch'``, ``t`` counts training epochs (beta is then
    constant within an epoch). Known as KL annealing (Bowman et al. 2016, "Generating sentences
    from a continuous space"); it keeps the decoder from ignoring the latent code early in training.

    Args:
        num_steps (int): Length of the warm-up, in training batches (or epochs with ``unit='epoch'``),
            >= 1.
        max_beta (float): The final beta, >= 0.
        unit (str): ``'step'`` or ``'epoch'``.

    Returns:
        Schedule: The warm-up.

    Example: ::

        >>> from torchbearer_vae import linear_warmup
        >>> warmup = linear_warmup(4, max_beta=2.0)
        >>> [warmup.value(t) for t in range(6)]
        [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
        >>> # Trial(..., callbacks=[kld_loss(beta=warmup)])
    """
    num_steps = check_int('num_steps', num_steps, minimum=1)
    max_beta = check_number('max_beta', max_beta, minimum=0)
    return Schedule(lambda position: max_beta * _ramp(position, num_steps), unit=unit,
                    description=f'linear_warmup(num_steps={num_steps}, max_beta={max_beta}, unit={unit!r})')


def cyclical(period: int, *, ratio: float = 0.5, max_beta: float = 1.0, unit: str = 'step') -> Schedule:
    r"""Cyclical annealing (Fu et al. 2019, "Cyclical Annealing Schedule: A Simple Approach to
    Mitigating KL Vanishing"): a linear warm-up over the first ``ratio`` of every ``period``, then
    ``max_beta`` for the rest of the period, repeated.

    .. math::
        \tau_t = \frac{t \bmod P}{P}, \qquad
        \beta_t = \beta_{\max} \cdot \min\!\left(1, \frac{\tau_t}{R}\right)

    with ``t`` the training steps completed before the current one, ``P = period`` and
    ``R = ratio``. Fu et al. write the period as ``T / M`` (``T`` iterations, ``M`` cycles) and use
    ``M = 4``, ``R = 0.5``. Each cycle starts again from beta = 0.

    Args:
        period (int): Length of a cycle, in training batches (or epochs with ``unit='epoch'``), >= 1.
        ratio (float): Fraction of each cycle spent increasing beta, in ``(0, 1]``.
        max_beta (float): The beta reached in each cycle, >= 0.
        unit (str): ``'step'`` or ``'epoch'``.

    Returns:
        Schedule: The cyclical schedule.

    Example: ::

        >>> from torchbearer_vae import cyclical
        >>> schedule = cyclical(period=4, ratio=0.5)
        >>> [schedule.value(t) for t in range(9)]
        [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0, 0.0]
    """
    period = check_int('period', period, minimum=1)
    ratio = check_number('ratio', ratio, above=0, maximum=1)
    max_beta = check_number('max_beta', max_beta, minimum=0)

    def beta(position: int) -> float:
        return max_beta * min(1.0, (position % period) / period / ratio)

    return Schedule(beta, unit=unit,
                    description=f'cyclical(period={period}, ratio={ratio}, max_beta={max_beta}, unit={unit!r})')


def capacity(max_capacity: float, num_steps: int, *, gamma: float = 1000.0, unit: str = 'step') -> Schedule:
    r"""A capacity target (Burgess et al. 2018, "Understanding disentangling in beta-VAE"): the
    divergence term becomes :math:`\gamma\,|\mathrm{KL} - C_t|` instead of :math:`\beta\,\mathrm{KL}`.

    .. math::
        C_t = C_{\max} \cdot \min(t, T) / T

    rises linearly from 0 nats to ``max_capacity`` over ``T = num_steps`` (``t`` counts the training
    steps completed before the current one), so the model is pushed to encode gradually more
    information. ``C`` grows by exactly ``max_capacity / num_steps`` per step (torchbearer-variational's
    ``with_linear_capacity`` adds ``steps / (max_c - min_c)`` instead, so it overshoots).

    ``schedule(state)`` returns ``C_t``; the divergence callback calls :meth:`Schedule.loss_term`,
    which gives the capacity term. With :func:`~torchbearer_vae.kld_loss`, ``C`` is in nats **per
    image** whatever the reduction: with ``reduction='sum'`` the term is
    :math:`\gamma\,|\mathrm{KL}_{\mathrm{sum}} - B\,C_t|` for a batch of ``B`` images (``B`` times
    the per-image term, as a summed loss is ``B`` times the mean one). With a custom
    :func:`~torchbearer_vae.divergence`, ``C`` is in the units of the value it returns.

    Args:
        max_capacity (float): The final ``C``, in nats (per image with ``kld_loss``), >= 0.
        num_steps (int): Training batches (or epochs with ``unit='epoch'``) over which ``C`` rises,
            >= 1.
        gamma (float): The weight of ``|KL - C|``, > 0 (Burgess et al. use 1000).
        unit (str): ``'step'`` or ``'epoch'``.

    Returns:
        Schedule: The schedule, whose value is ``C``.

    Example: ::

        >>> from torchbearer_vae import capacity, kld_loss
        >>> target = capacity(25.0, 100000, gamma=1000.0)
        >>> target.value(0), target.value(50000), target.value(200000)
        (0.0, 12.5, 25.0)
        >>> callback = kld_loss(beta=target, reduction='batchmean')
    """
    max_capacity = check_number('max_capacity', max_capacity, minimum=0)
    num_steps = check_int('num_steps', num_steps, minimum=1)
    gamma = check_number('gamma', gamma, above=0)
    return _CapacitySchedule(
        lambda position: max_capacity * _ramp(position, num_steps), gamma=gamma, unit=unit,
        description=f'capacity(max_capacity={max_capacity}, num_steps={num_steps}, gamma={gamma}, unit={unit!r})')
