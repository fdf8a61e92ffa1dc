"""Divergence callbacks, *the torchbearer state way*: a term of state values added to torchbearer's loss.

:func:`divergence` turns a function of state values into a callback that adds it, weighted by a
``beta`` (a number or a :class:`~torchbearer_vae.Schedule`), to ``torchbearer.LOSS``;
:func:`kld_loss` is the VAE's KL term built that way. The pure functions they compute
(:func:`~torchbearer_vae.kld`, ...) are in :mod:`torchbearer_vae.losses`.
"""
from typing import Any, Callable, Optional, Tuple, Union

import torch
import torchbearer
from torchbearer.callbacks import Callback
from torchbearer.state import StateKey

from .checks import check_choice, check_int, check_number, describe
from .errors import MissingStateError
from .losses import REDUCTIONS, kld_elements
from .schedules import Schedule
from .state import CODEBOOK, COMMITMENT, GLOBAL_EPOCH, GLOBAL_STEP, KL, LOGVAR, MU, RECON, key_name

__all__ = ['divergence', 'kld_loss', 'commitment_loss', 'codebook_loss']

#: The type of a KL weight. A number, or a function of torchbearer's state returning one (a
#: :class:`~torchbearer_vae.Schedule`, for annealing).
Beta = Union[float, Callable[[dict], float]]

# How an error message names a key the user must set: the import path beats the bare name.
# The loss as the last divergence callback left it. A divergence callback that finds this very
# tensor in state[LOSS] is not the first of its step, so the loss already holds a divergence and
# is not the reconstruction term. Private: only the divergence callbacks read it.
_LOSS_WITH_DIVERGENCE = torchbearer.state_key('torchbearer_vae_loss_with_divergence')


def _state_key(name: str, value: Any, allow_none: bool = False) -> Any:
    """``value`` if it is a torchbearer state key (or a str, as torchbearer allows); else TypeError."""
    if not isinstance(value, (StateKey, str)) and not (allow_none and value is None):
        raise TypeError(f'{name} must be a torchbearer state key{" or None" if allow_none else ""} (such as '
                        f'torchbearer_vae.MU), got {value!r}')
    return value


def _weight(beta: Beta) -> Beta:
    """``beta`` checked: a function of state, or a finite number >= 0 (as a float)."""
    if callable(beta):
        return beta
    try:
        return check_number('beta', beta, minimum=0)
    except TypeError:
        raise TypeError(f'beta must be a number >= 0 or a function of state (such as a Schedule), got '
                        f'{describe(beta)}') from None


def _uses_own_term(beta: Beta) -> bool:
    """Whether ``beta`` replaces ``beta * divergence`` with a term of its own (as a capacity does)."""
    return isinstance(beta, Schedule) and type(beta).loss_term is not Schedule.loss_term


#: What a divergence callback computes from the state values, ``(objective, value, count)``. The
#: loss gets ``count * term(objective)``, where ``term`` is ``beta * objective`` or the schedule's
#: :meth:`~torchbearer_vae.Schedule.loss_term`; ``value`` (the divergence itself) goes to state.
_Compute = Callable[..., Tuple[torch.Tensor, torch.Tensor, int]]


class _DivergenceCallback(Callback):
    """The callback built by :func:`divergence` and :func:`kld_loss` (see there).

    It adds the weighted divergence to ``torchbearer.LOSS`` after the criterion, in training and
    validation (what :func:`~torchbearer.callbacks.decorators.add_to_loss` does), and counts the
    training position for schedules: ``step`` (training batches completed) and ``epoch`` (training
    epochs completed). ``state_dict()`` returns them as plain ints; ``load_state_dict`` restores
    them, so a resumed run continues its KL schedule.

    Why not torchbearer's ``add_to_loss`` itself: it returns a ``LambdaCallback`` with no
    ``state_dict`` and one function for training and validation, while a resumable schedule needs
    its position saved and validation must not advance it.
    """

    def __init__(self, name: str, keys: Tuple[StateKey, ...], compute: _Compute, beta: Beta,
                 store_as: Optional[StateKey]) -> None:
        self.name, self.keys, self.beta, self.store_as = name, keys, beta, store_as
        self._compute = compute
        self.missing_hint: Optional[str] = None  # what the error says when a key is missing, if not the default
        self.step = 0
        self.epoch = 0

    def on_criterion(self, state: dict) -> None:
        self._add_term(state, self.step, self.epoch)

    def on_criterion_validation(self, state: dict) -> None:
        # Validation neither advances the schedule nor reads ahead: it uses the last training position.
        self._add_term(state, max(self.step - 1, 0), max(self.epoch - 1, 0))

    def on_step_training(self, state: dict) -> None:
        self.step += 1  # once per optimizer step, however many times a closure (LBFGS) runs the criterion

    def on_end_training(self, state: dict) -> None:
        self.epoch += 1

    def state_dict(self) -> dict:
        """The training position, ``{'step': int, 'epoch': int}`` (``torch.save(weights_only=True)``-safe)."""
        return {'step': self.step, 'epoch': self.epoch}

    def load_state_dict(self, state_dict: dict) -> '_DivergenceCallback':
        """Restore the position saved by :meth:`state_dict`; returns ``self``."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"{self.name}.load_state_dict expects the dict state_dict() made, {{'step': int, "
                            f"'epoch': int}}, got {describe(state_dict)}")
        if not {'step', 'epoch'} <= state_dict.keys():
            raise ValueError(f"{self.name}.load_state_dict expects a dict with 'step' and 'epoch', got "
                             f"{sorted(map(str, state_dict))}")
        step, epoch = (check_int(f"{self.name} state_dict['{key}']", state_dict[key], minimum=0)
                       for key in ('step', 'epoch'))
        self.step, self.epoch = step, epoch
        return self

    def _add_term(self, state: dict, step: int, epoch: int) -> None:
        loss = state[torchbearer.LOSS]
        if state.get(_LOSS_WITH_DIVERGENCE) is not loss:  # the first divergence of this step
            state[RECON] = loss.detach() if isinstance(loss, torch.Tensor) else loss
        try:
            values = [state[key] for key in self.keys]
        except KeyError as error:
            missing = key_name(error.args[0])
            raise MissingStateError(self.missing_hint or (
                f'{self.name} needs state[{missing}], but it is not in state. The model must accept a `state` '
                f'argument in forward and store it there on every call, e.g. `state[{missing}] = ...` (with '
                f'torchbearer_vae.VAE, keep use_state=True).')) from None
        objective, value, count = self._compute(*values)
        if self.store_as is not None:
            state[self.store_as] = value.detach()
        beta = self.beta
        if callable(beta):  # a schedule, or any function of state: it reads the position from state
            state[GLOBAL_STEP], state[GLOBAL_EPOCH] = step, epoch
            term = beta.loss_term(objective, state) if isinstance(beta, Schedule) else beta(state) * objective
        else:
            term = objective if beta == 1 else beta * objective
        if count != 1:
            term = count * term
        state[torchbearer.LOSS] = state[_LOSS_WITH_DIVERGENCE] = loss + term

    def __repr__(self) -> str:
        return f'{self.name}(beta={self.beta!r}, step={self.step}, epoch={self.epoch})'


def divergence(*keys: StateKey, beta: Beta = 1.0,
               store_as: Optional[StateKey] = KL) -> Callable[[Callable[..., torch.Tensor]], Callback]:
    """Decorator: turn a function of state values into a callback adding it to the loss.

    The decorated function receives ``state[key]`` for each of ``keys``, in order, and returns a
    scalar tensor ``d``. The resulting callback adds ``beta * d`` to ``torchbearer.LOSS`` after
    the criterion, in training and in validation (as torchbearer's
    :func:`~torchbearer.callbacks.decorators.add_to_loss` does), and stores the unweighted,
    detached ``d`` in ``state[store_as]`` so that a metric (``'kl'``) or printer can show it.

    Before adding its term, the first divergence callback of a step stores ``state[LOSS]`` — the
    criterion's output — in ``state[torchbearer_vae.RECON]``, for the ``'recon'`` metric.

    ``beta`` may be a :class:`~torchbearer_vae.Schedule` (:func:`~torchbearer_vae.linear_warmup`,
    :func:`~torchbearer_vae.cyclical`, :func:`~torchbearer_vae.capacity`, ...) or any function of
    state. The callback counts the training position (``callback.step``: training batches
    completed; ``callback.epoch``: training epochs completed) and puts it in
    ``state[GLOBAL_STEP]`` / ``state[GLOBAL_EPOCH]`` before calling ``beta``. Validation steps do
    not advance it and use the position of the last training step, so validation sees the beta
    that training last used. ``callback.state_dict()`` (``{'step': int, 'epoch': int}``, plain ints)
    and ``callback.load_state_dict(d)`` save and restore the position; torchbearer's
    ``Trial.state_dict()`` / ``Trial.load_state_dict()`` call them.

    Args:
        *keys (StateKey): The state keys whose values are passed to the function.
        beta (float or callable): The weight: a number >= 0, a :class:`~torchbearer_vae.Schedule`,
            or a function ``beta(state)`` returning a number at every step.
        store_as (StateKey or None): Where to store the unweighted value; ``None`` stores nothing.

    Returns:
        A decorator that turns ``f(*values) -> Tensor`` into a torchbearer
        :class:`~torchbearer.callbacks.Callback`.

    Raises:
        MissingStateError: at a step where one of ``keys`` is not in state.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import MU, LOGVAR, divergence, kld, linear_warmup
        >>> @divergence(MU, LOGVAR, beta=linear_warmup(1000, max_beta=4.0))
        ... def beta_kl(mu, logvar):
        ...     return kld(mu, logvar, reduction='batchmean')
        >>> beta_kl.state_dict()
        {'step': 0, 'epoch': 0}
        >>> # Trial(model, optimizer, criterion, callbacks=[beta_kl])
    """
    if not keys:
        raise ValueError('divergence needs at least one state key, e.g. @divergence(MU, LOGVAR)')
    for key in keys:
        _state_key('each key of divergence(*keys)', key)
    _state_key('store_as', store_as, allow_none=True)
    beta = _weight(beta)

    def decorator(func: Callable[..., torch.Tensor]) -> Callback:
        if not callable(func):
            raise TypeError(f'@divergence must decorate a function, got {describe(func)}')
        name = getattr(func, '__name__', type(func).__name__)

        def compute(*values: Any) -> Tuple[torch.Tensor, torch.Tensor, int]:
            value = func(*values)
            if not isinstance(value, torch.Tensor) or value.dim() != 0:
                raise ValueError(f'{name} must return a scalar tensor to add to the loss, got '
                                 f'{describe(value)}; reduce it with sum() or mean()')
            return value, value, 1

        return _DivergenceCallback(name, keys, compute, beta, store_as)

    return decorator


def kld_loss(beta: Beta = 1.0, *, reduction: str = 'sum', mu: StateKey = MU, logvar: StateKey = LOGVAR,
             free_bits: float = 0.0) -> Callback:
    r"""The KL-divergence callback of *the torchbearer state way*: :func:`~torchbearer_vae.kld` via :func:`divergence`.

    Reads ``state[mu]`` and ``state[logvar]`` (stored by the model's forward), adds
    ``beta * kld(mu, logvar, reduction=reduction)`` to the loss in training and validation, and
    stores the unweighted KL in ``state[torchbearer_vae.KL]`` (and the criterion's output in
    ``state[torchbearer_vae.RECON]``), which the ``'kl'`` and ``'recon'`` metrics show.

    ``beta`` can be a schedule (:func:`~torchbearer_vae.linear_warmup`,
    :func:`~torchbearer_vae.cyclical`, ...); with :func:`~torchbearer_vae.capacity` the term is
    ``gamma * |KL - C|``, ``C`` in nats per image. The callback's ``state_dict()`` holds the
    schedule's position (see :func:`divergence`).

    **Free bits** (Kingma et al. 2016, "Improved variational inference with inverse
    autoregressive flow"): with ``free_bits = λ > 0`` the KL term of a batch of ``B``
    images with ``J`` latent dimensions becomes

    .. math::
        \sum_{j=1}^{J} \max\Big(\lambda,\; \frac{1}{B} \sum_{i=1}^{B}
        \mathrm{KL}\big(q(z_j \mid x_i) \,\|\, p(z_j)\big)\Big)

    per image (``reduction='batchmean'``; ``B`` times it for ``'sum'``): each latent dimension's
    KL, averaged over the batch, is clamped below at ``λ`` nats, so a dimension using fewer than
    ``λ`` nats gets no gradient pushing it towards the prior — the encoder has those nats for free,
    which prevents posterior collapse. (Kingma et al. clamp groups of dimensions; here every
    dimension is its own group.) The term then overstates the KL; ``state[KL]`` and the ``'kl'``
    metric keep the true, unclamped KL.

    Args:
        beta (float or callable): KL weight, a number >= 0, a :class:`~torchbearer_vae.Schedule`
            or a function ``beta(state)``.
        reduction (str): ``'sum'`` (pairs with a summed reconstruction criterion such as
            ``BCELoss(reduction='sum')``) or ``'batchmean'`` (pairs with a per-image one).
        mu (StateKey): Where the model stores the posterior means.
        logvar (StateKey): Where the model stores the posterior log-variances.
        free_bits (float): ``λ``, nats per latent dimension, >= 0; 0 turns free bits off.

    Returns:
        Callback: A torchbearer callback to pass in ``Trial(..., callbacks=[...])``.

    Example: ::

        >>> import torch
        >>> import torchbearer
        >>> from torchbearer_vae import VAE, kld_loss, linear_warmup
        >>> model = VAE()
        >>> callback = kld_loss(beta=linear_warmup(5000), free_bits=0.1)
        >>> trial = torchbearer.Trial(model, torch.optim.Adam(model.parameters()),
        ...                           torch.nn.BCELoss(reduction='sum'), metrics=['loss', 'recon', 'kl'],
        ...                           callbacks=[callback])
    """
    beta = _weight(beta)
    check_choice('reduction', reduction, REDUCTIONS[:2])
    mu, logvar = _state_key('mu', mu), _state_key('logvar', logvar)
    free_bits = check_number('free_bits', free_bits, minimum=0)
    if free_bits > 0 and _uses_own_term(beta):
        raise ValueError(f'free_bits and beta={beta!r} both replace the KL term; use one of them')

    # A capacity (or free bits) works on nats per image, and a summed loss then gets B times its term;
    # any other weight is linear, so a summed loss can add beta * total directly (fewer kernels per step).
    per_image_term = bool(free_bits) or _uses_own_term(beta)

    def compute(mu_value: torch.Tensor, logvar_value: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, int]:
        per_element = kld_elements(mu_value, logvar_value)
        batch = per_element.shape[0]
        total = per_element.sum()
        if reduction == 'sum' and not per_image_term:
            return total, total, 1
        per_image = total / batch
        if free_bits:
            objective = per_element.reshape(batch, -1).mean(0).clamp(min=free_bits).sum()
        else:
            objective = per_image
        if reduction == 'sum':
            return objective, total, batch
        return objective, per_image, 1

    # named 'kld_loss' so that errors say 'kld_loss needs ...'; the same callback class as @divergence
    return _DivergenceCallback('kld_loss', (mu, logvar), compute, beta, KL)


def _quantizer_term(name: str, key: StateKey, beta: Beta, reduction: str, missing: str,
                    store: bool = False) -> Callback:
    """A vector quantizer's per-image term ``state[key]`` (``(batch,)``), reduced, added to the loss by
    :func:`divergence`; ``missing``: the error's words when the model stored no such term. ``store``: the reduced,
    unweighted term replaces the per-image one in ``state[key]``, for its metric (as ``kld_loss`` stores the KL)."""
    check_choice('reduction', reduction, ('sum', 'batchmean'))

    _state_key('key', key)

    def compute(per_image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, int]:
        value = per_image.sum() if reduction == 'sum' else per_image.mean()
        return value, value, 1

    callback = _DivergenceCallback(name, (key,), compute, _weight(beta), key if store else None)
    callback.missing_hint = f'{name} needs state[{key_name(key)}], but it is not in state: {missing}'
    return callback


def commitment_loss(beta: Beta = 0.25, *, reduction: str = 'sum', key: StateKey = COMMITMENT) -> Callback:
    r"""A VQ-VAE's commitment term, *the torchbearer state way*: ``beta * ||z - sg(q)||^2``, via :func:`divergence`.

    Reads ``state[COMMITMENT]``, the per-image commitment term that
    :class:`~torchbearer_vae.VQVAE` (or any model with a :class:`~torchbearer_vae.VectorQuantizer`)
    stores in its forward, and adds ``beta`` times its sum (or mean) to the loss in training and
    validation. Its gradient pulls the encoder's outputs towards their codes (van den Oord et al.
    2017 use ``beta = 0.25``). Like :func:`kld_loss`, ``beta`` may be a schedule, the callback's
    ``state_dict()`` holds its position, and the first divergence callback of a step records the
    criterion's output for the ``'recon'`` metric; the reduced, unweighted term replaces the
    per-image one in ``state[COMMITMENT]``, which the ``'commitment'`` metric shows. The codebook
    itself learns by moving averages (the default), or, for a quantizer with ``update='loss'``,
    through :func:`codebook_loss`, which must then be added too.

    Args:
        beta (float or callable): The commitment weight: a number >= 0, a
            :class:`~torchbearer_vae.Schedule` or a function ``beta(state)``.
        reduction (str): ``'sum'`` (pairs with a summed reconstruction criterion such as
            ``model.reconstruction_loss``) or ``'batchmean'`` (per image).
        key (StateKey): Where the model stores the per-image commitment term.

    Returns:
        Callback: A torchbearer callback to pass in ``Trial(..., callbacks=[...])``.

    Example: ::

        >>> import torch
        >>> import torchbearer
        >>> from torchbearer_vae import VQVAE, commitment_loss
        >>> model = VQVAE(num_codes=64, code_dim=16)
        >>> trial = torchbearer.Trial(model, torch.optim.Adam(model.parameters()), model.reconstruction_loss,
        ...                           metrics=['loss', 'recon', 'commitment', 'perplexity'],
        ...                           callbacks=[commitment_loss(0.25)])
    """
    return _quantizer_term('commitment_loss', key, beta, reduction,
                           "the model must store its quantizer's commitment term there in forward "
                           '(torchbearer_vae.VQVAE does with use_state=True; a model of your own: '
                           'state[COMMITMENT] = output.commitment)', store=True)


def codebook_loss(beta: Beta = 1.0, *, reduction: str = 'sum', key: StateKey = CODEBOOK) -> Callback:
    r"""A VQ-VAE's codebook term, for codes learning by gradients: ``beta * ||sg(z) - q||^2``, via :func:`divergence`.

    For a :class:`~torchbearer_vae.VectorQuantizer` with ``update='loss'``, whose forward stores the
    per-image term in ``state[CODEBOOK]``: its gradient moves each chosen code towards the
    encoder's outputs. With the default ``update='ema'`` the codes learn by moving averages and
    there is no codebook term: this callback then raises a
    :class:`~torchbearer_vae.MissingStateError` at the first step, saying so.

    Args:
        beta (float or callable): The weight (the paper's is 1), a number >= 0 or a schedule.
        reduction (str): ``'sum'`` or ``'batchmean'``, as for :func:`commitment_loss`.
        key (StateKey): Where the model stores the per-image codebook term.

    Returns:
        Callback: A torchbearer callback.

    Example: ::

        >>> from torchbearer_vae import VQVAE, codebook_loss, commitment_loss
        >>> model = VQVAE(num_codes=64, code_dim=16, update='loss')
        >>> callbacks = [commitment_loss(0.25), codebook_loss()]
    """
    return _quantizer_term('codebook_loss', key, beta, reduction,
                           'only a quantizer with update=\'loss\' has a codebook term. With the default update=\'ema\' '
                           'the codes learn by moving averages: leave codebook_loss out')
