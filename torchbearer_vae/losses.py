"""The VAE objective: the analytic KL term, the PyTorch-way loss and the state-way callbacks."""
import math
import numbers
from typing import Callable, Optional, Tuple, Union

import torch
import torch.nn.functional as F
import torchbearer
from torchbearer.callbacks import Callback
from torchbearer.state import StateKey

from ._checks import check_choice, check_number
from .errors import MissingStateError
from .schedules import Schedule
from .state import GLOBAL_EPOCH, GLOBAL_STEP, KL, LOGVAR, MU, RECON

__all__ = ['kld', 'reconstruction_loss', 'vae_loss', 'divergence', 'kld_loss', 'MissingStateError']

#: A KL weight: a number, or a function of torchbearer's state returning one (a
#: :class:`~torchbearer_vae.Schedule`, for annealing).
Beta = Union[float, Callable[[dict], float]]

_REDUCTIONS = ('sum', 'batchmean', 'none')
#: The decoder likelihoods :func:`reconstruction_loss` knows.
LIKELIHOODS = ('bernoulli', 'gaussian')
_LOG_2PI = math.log(2 * math.pi)
# How the error message names a key the user must set: the import path beats the bare name.
_KEY_NAMES = {key: f'torchbearer_vae.{name}' for key, name in (
    (MU, 'MU'), (LOGVAR, 'LOGVAR'), (KL, 'KL'), (RECON, 'RECON'))}
# The loss as the last divergence callback left it. A divergence callback that finds this very
# tensor in state[LOSS] is not the first of its step, so the loss already holds a divergence and
# is not the reconstruction term. Private: only the divergence callbacks read it.
_LOSS_WITH_DIVERGENCE = torchbearer.state_key('torchbearer_vae_loss_with_divergence')


def _check_reduction(reduction: str, allowed=_REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, allowed))}, got {reduction!r}")


def kld(mu: torch.Tensor, logvar: torch.Tensor, reduction: str = 'sum') -> torch.Tensor:
    r"""The KL divergence from the diagonal Gaussian posterior to the standard normal prior.

    .. math::
        \mathrm{KL}\big(\mathcal{N}(\mu, e^{\log\sigma^2}) \,\|\, \mathcal{N}(0, I)\big)
        = \frac{1}{2} \sum_j \big(\mu_j^2 + e^{\log\sigma_j^2} - 1 - \log\sigma_j^2\big)

    in nats. It is computed as ``0.5 * (mu**2 + expm1(logvar) - logvar)``, which is exact near
    ``logvar = 0`` and stays finite for float32 ``logvar`` up to 88.7, where ``exp(logvar)``
    leaves float32's range (the true value follows at 89.4). float16/bfloat16 inputs (e.g. under
    autocast) are computed and returned in float32, where they cannot overflow; float64 stays
    float64. A NaN in the inputs gives a NaN (see :class:`~torchbearer_vae.NaNGuard` to stop
    training on one).

    Args:
        mu (torch.Tensor): Posterior means, shape ``(batch, *latent)``.
        logvar (torch.Tensor): Posterior log-variances, same shape as ``mu``.
        reduction (str): ``'sum'`` over batch and latent dimensions (the PyTorch VAE example's
            convention, pairs with ``binary_cross_entropy(..., reduction='sum')``);
            ``'batchmean'``, summed over latent dimensions and averaged over the batch (pairs with
            a per-image reconstruction loss); ``'none'``, one value per sample, shape ``(batch,)``.

    Returns:
        torch.Tensor: The divergence, a scalar or a ``(batch,)`` tensor.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import kld
        >>> mu, logvar = torch.zeros(4, 2), torch.zeros(4, 2)
        >>> kld(mu, logvar).item()  # the posterior is the prior
        0.0
        >>> kld(torch.ones(4, 2), logvar, reduction='none')
        tensor([1., 1., 1., 1.])
    """
    _check_reduction(reduction)
    per_element = _kld_elements(mu, logvar)
    if reduction == 'sum':
        return per_element.sum()
    if reduction == 'batchmean':
        return per_element.sum() / max(mu.shape[0], 1)
    return per_element.reshape(mu.shape[0], math.prod(mu.shape[1:])).sum(1)  # not -1: a batch may be empty


def _kld_elements(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The KL of every latent element, shape of ``mu`` (float32 for low-precision inputs).

    It runs at every training step: four elementwise kernels, two of them in place on a fresh
    tensor that autograd does not need. The 0.5 is applied per element, not after the sum, so
    that a sum of large but finite terms does not overflow first.
    """
    if not isinstance(mu, torch.Tensor) or not isinstance(logvar, torch.Tensor):
        raise TypeError(f'kld expects tensors, got mu={type(mu).__name__}, logvar={type(logvar).__name__}')
    if mu.layout != torch.strided or logvar.layout != torch.strided:
        raise TypeError(f'kld expects dense tensors, got layouts {mu.layout} and {logvar.layout}')
    if mu.device != logvar.device:
        raise ValueError(f'mu and logvar must be on the same device, got {mu.device} and {logvar.device}')
    if mu.shape != logvar.shape:
        raise ValueError(f'mu and logvar must have the same shape, got {tuple(mu.shape)} and '
                         f'{tuple(logvar.shape)}')
    if mu.dim() < 1:
        raise ValueError('mu and logvar need a batch dimension, got 0-d tensors')
    if not mu.is_floating_point() or not logvar.is_floating_point():
        raise TypeError(f'mu and logvar must be floating point, got {mu.dtype} and {logvar.dtype}')
    # At least float32, so that float16/bfloat16 cannot overflow; a float64 input keeps float64.
    dtype = torch.promote_types(torch.promote_types(mu.dtype, logvar.dtype), torch.float32)
    mu, logvar = mu.to(dtype), logvar.to(dtype)
    return (torch.expm1(logvar) - logvar).addcmul_(mu, mu).mul_(0.5)


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, likelihood: str = 'bernoulli', *,
                        sigma: float = 1.0, reduction: str = 'sum') -> torch.Tensor:
    r"""The reconstruction term ``-log p(target | z)`` in nats: the one formula the whole package uses.

    ``vae_loss``, :meth:`BaseVAE.reconstruction_loss <torchbearer_vae.BaseVAE.reconstruction_loss>`,
    :func:`~torchbearer_vae.negative_elbo`, :func:`~torchbearer_vae.importance_weighted_nll` and
    the command line all call it, so training and evaluation measure the same thing.

    * ``'bernoulli'``: ``recon`` holds probabilities; the binary cross-entropy summed over the
      values of an image (torch clamps each log at -100, so a probability of exactly 0 or 1
      stays finite). Equals ``BCELoss(reduction='sum')`` for ``reduction='sum'``.
    * ``'gaussian'``: ``recon`` holds means, the standard deviation is the fixed ``sigma``:
      :math:`\sum_i \frac{(x_i - \hat x_i)^2}{2\sigma^2} + \frac{D}{2}\log(2\pi\sigma^2)`
      over the ``D`` values of an image.

    Args:
        recon (torch.Tensor): The decoder's mean, ``(B, ...)``.
        target (torch.Tensor): The images, with as many values as ``recon`` (reshaped if needed).
        likelihood (str): ``'bernoulli'`` or ``'gaussian'``.
        sigma (float): The Gaussian's standard deviation (ignored for Bernoulli).
        reduction (str): ``'sum'`` over the batch, ``'batchmean'`` (per image) or ``'none'``
            (one value per image, shape ``(B,)``).

    Returns:
        torch.Tensor: A scalar, or ``(B,)`` for ``reduction='none'``.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import reconstruction_loss
        >>> x = torch.full((2, 4), 0.5)
        >>> reconstruction_loss(x, x, reduction='none')  # 4 values of log(2) nats per image
        tensor([2.7726, 2.7726])
    """
    check_choice('likelihood', likelihood, LIKELIHOODS)
    check_choice('reduction', reduction, _REDUCTIONS)
    if target.shape != recon.shape:
        if target.numel() != recon.numel():
            raise ValueError(f'the reconstruction has shape {tuple(recon.shape)} but the target has shape '
                             f'{tuple(target.shape)}; they must hold the same number of values')
        target = target.reshape(recon.shape)
    if likelihood == 'bernoulli':
        if reduction != 'none':  # one kernel, as BCELoss(reduction='sum')
            total = F.binary_cross_entropy(recon, target, reduction='sum')
            return total / recon.shape[0] if reduction == 'batchmean' else total
        per_value = F.binary_cross_entropy(recon, target, reduction='none')
    else:
        sigma = check_number('sigma', sigma, above=0)
        per_value = 0.5 * ((target - recon) / sigma).pow(2) + 0.5 * (_LOG_2PI + 2 * math.log(sigma))
    per_image = per_value.reshape(per_value.shape[0], -1).sum(1)
    if reduction == 'none':
        return per_image
    return per_image.sum() / (recon.shape[0] if reduction == 'batchmean' else 1)


def vae_loss(recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor,
             beta: float = 1.0, reduction: str = 'sum') -> torch.Tensor:
    """The negative ELBO of a Bernoulli-decoder VAE: binary cross-entropy plus ``beta`` times KL.

    This is the criterion for *the PyTorch way*, where the model returns ``(recon, mu, logvar)``.
    torchbearer unpacks a tuple prediction into the criterion's positional arguments, followed
    by the target, so the signature is ``(recon, mu, logvar, target)`` and it can be passed to a
    :class:`~torchbearer.Trial` as it is.

    Args:
        recon (torch.Tensor): Decoder output in ``[0, 1]``.
        mu (torch.Tensor): Posterior means.
        logvar (torch.Tensor): Posterior log-variances.
        target (torch.Tensor): The images to reconstruct, in ``[0, 1]``. A target with the same
            number of elements as ``recon`` but another shape (flattened, say) is reshaped.
        beta (float): Weight of the KL term (``beta > 1`` gives a beta-VAE).
        reduction (str): ``'sum'`` over the batch (nats per batch, as in the PyTorch example)
            or ``'batchmean'`` (nats per image).

    Returns:
        torch.Tensor: The scalar loss.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import vae_loss
        >>> x = torch.full((2, 4), 0.5)
        >>> loss = vae_loss(x, torch.zeros(2, 3), torch.zeros(2, 3), x, reduction='batchmean')
        >>> round(loss.item(), 4)  # 4 pixels of log(2) nats, no KL
        2.7726
    """
    _check_reduction(reduction, ('sum', 'batchmean'))
    loss = reconstruction_loss(recon, target, reduction='sum') + beta * kld(mu, logvar, 'sum')
    if reduction == 'batchmean':
        loss = loss / recon.shape[0]
    return loss


def _check_beta(beta: Beta) -> None:
    if callable(beta):
        return
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise TypeError(f'beta must be a number or a function of state, got {type(beta).__name__}')
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f'beta must be a finite number >= 0, got {beta}')


def _key_name(key) -> str:
    return _KEY_NAMES.get(key, repr(str(key)))


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f'a tensor of shape {tuple(value.shape)}'
    return f'a {type(value).__name__}'


#: What a divergence callback computes from the state values: ``(objective, value, count)``. The
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
                 store_as: Optional[StateKey], function: Callable):
        self.name, self.keys, self.beta, self.store_as, self.function = name, keys, beta, store_as, function
        self._compute = compute
        self.step = 0
        self.epoch = 0

    def on_criterion(self, state) -> None:
        self._add_term(state, self.step, self.epoch)

    def on_criterion_validation(self, state) -> None:
        # Validation neither advances the schedule nor reads ahead: it uses the last training position.
        self._add_term(state, max(self.step - 1, 0), max(self.epoch - 1, 0))

    def on_step_training(self, state) -> None:
        self.step += 1  # once per optimizer step, however many times a closure (LBFGS) runs the criterion

    def on_end_training(self, state) -> None:
        self.epoch += 1

    def state_dict(self) -> dict:
        """The training position, ``{'step': int, 'epoch': int}`` (``torch.save(weights_only=True)``-safe)."""
        return {'step': self.step, 'epoch': self.epoch}

    def load_state_dict(self, state_dict: dict) -> '_DivergenceCallback':
        """Restore the position saved by :meth:`state_dict`; returns ``self``."""
        if not isinstance(state_dict, dict) or not {'step', 'epoch'} <= state_dict.keys():
            raise ValueError(f"{self.name} expects a state dict with 'step' and 'epoch', got {state_dict!r}")
        for key in ('step', 'epoch'):
            value = state_dict[key]
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{self.name} state dict: {key} must be an int >= 0, got {value!r}")
        self.step, self.epoch = int(state_dict['step']), int(state_dict['epoch'])
        return self

    def _add_term(self, state, step: int, epoch: int) -> None:
        loss = state[torchbearer.LOSS]
        if state.get(_LOSS_WITH_DIVERGENCE) is not loss:  # the first divergence of this step
            state[RECON] = loss.detach() if isinstance(loss, torch.Tensor) else loss
        try:
            values = [state[key] for key in self.keys]
        except KeyError as error:
            missing = error.args[0]
            raise MissingStateError(
                f'{self.name} needs state[{_key_name(missing)}], but it is not in state. The model must '
                f'accept a `state` argument in forward and store it there on every call, e.g. '
                f'`state[{_key_name(missing)}] = ...` (with torchbearer_vae.VAE, keep '
                f'use_state=True).') from None
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


def divergence(*keys: StateKey, beta: Beta = 1.0, store_as: Optional[StateKey] = KL):
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
        >>> @divergence(MU, LOGVAR, beta=linear_warmup(steps=1000, max_beta=4.0))
        ... def beta_kl(mu, logvar):
        ...     return kld(mu, logvar, reduction='batchmean')
        >>> beta_kl.state_dict()
        {'step': 0, 'epoch': 0}
        >>> # Trial(model, optimizer, criterion, callbacks=[beta_kl])
    """
    if not keys:
        raise ValueError('divergence needs at least one state key, e.g. @divergence(MU, LOGVAR)')
    for key in keys:
        if not isinstance(key, (StateKey, str)):
            raise TypeError(f'divergence keys must be torchbearer state keys, got {key!r}')
    if store_as is not None and not isinstance(store_as, (StateKey, str)):
        raise TypeError(f'store_as must be a torchbearer state key or None, got {store_as!r}')
    _check_beta(beta)

    def decorator(func):
        if not callable(func):
            raise TypeError(f'@divergence must decorate a function, got {type(func).__name__}')
        name = getattr(func, '__name__', type(func).__name__)

        def compute(*values):
            value = func(*values)
            if not isinstance(value, torch.Tensor) or value.dim() != 0:
                raise ValueError(f'{name} must return a scalar tensor to add to the loss, got '
                                 f'{_describe(value)}; reduce it with sum() or mean()')
            return value, value, 1

        return _DivergenceCallback(name, keys, compute, beta, store_as, func)

    return decorator


def kld_loss(beta: Beta = 1.0, reduction: str = 'sum', mu: StateKey = MU, logvar: StateKey = LOGVAR,
             free_bits: float = 0.0):
    r"""The KL-divergence callback of *the torchbearer state way*: :func:`kld` via :func:`divergence`.

    Reads ``state[mu]`` and ``state[logvar]`` (stored by the model's forward), adds
    ``beta * kld(mu, logvar, reduction)`` to the loss in training and validation, and stores the
    unweighted KL in ``state[torchbearer_vae.KL]`` (and the criterion's output in
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
        >>> callback = kld_loss(beta=linear_warmup(steps=5000), free_bits=0.1)
        >>> trial = torchbearer.Trial(model, torch.optim.Adam(model.parameters()),
        ...                           torch.nn.BCELoss(reduction='sum'), metrics=['loss', 'recon', 'kl'],
        ...                           callbacks=[callback])
    """
    _check_beta(beta)
    _check_reduction(reduction, ('sum', 'batchmean'))
    if isinstance(free_bits, bool) or not isinstance(free_bits, numbers.Real):
        raise TypeError(f'free_bits must be a number of nats, got {type(free_bits).__name__}')
    if not math.isfinite(free_bits) or free_bits < 0:
        raise ValueError(f'free_bits must be a finite number >= 0, got {free_bits}')
    if free_bits > 0 and isinstance(beta, Schedule) and type(beta).loss_term is not Schedule.loss_term:
        raise ValueError(f'free_bits and beta={beta!r} both replace the KL term; use one of them')
    free_bits = float(free_bits)

    # A capacity (or free bits) works on nats per image, and a summed loss then gets B times its term;
    # any other weight is linear, so a summed loss can add beta * total directly (fewer kernels per step).
    per_image_term = bool(free_bits) or (isinstance(beta, Schedule) and type(beta).loss_term is not Schedule.loss_term)

    def compute(mu_value, logvar_value):
        per_element = _kld_elements(mu_value, logvar_value)
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

    def kld_loss(mu_value, logvar_value):  # the callback's `function`, as for @divergence
        return kld(mu_value, logvar_value, reduction)

    # named 'kld_loss' so that errors say 'kld_loss needs ...'; the same callback class as @divergence
    return _DivergenceCallback('kld_loss', (mu, logvar), compute, beta, KL, kld_loss)
