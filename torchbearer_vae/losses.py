"""The VAE objective: the analytic KL term, the PyTorch-way loss and the state-way callbacks."""
import math
import numbers
from typing import Callable, Union

import torch
import torch.nn.functional as F
from torchbearer.callbacks import add_to_loss
from torchbearer.state import StateKey

from .state import KL, LOGVAR, MU

__all__ = ['kld', 'vae_loss', 'divergence', 'kld_loss', 'MissingStateError']

#: A KL weight: a number, or a function of torchbearer's state returning one (for annealing).
Beta = Union[float, Callable[[dict], float]]

_REDUCTIONS = ('sum', 'batchmean', 'none')
_LOW_PRECISION = (torch.float16, torch.bfloat16)
# How the error message names a key the user must set: the import path beats the bare name.
_KEY_NAMES = {MU: 'torchbearer_vae.MU', LOGVAR: 'torchbearer_vae.LOGVAR', KL: 'torchbearer_vae.KL'}


class MissingStateError(KeyError):
    """Raised when a callback needs a state key that the model did not store.

    A subclass of :class:`KeyError` (so ``except KeyError`` still catches it) whose message says
    which key is missing and how the model should provide it.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


def _check_reduction(reduction: str, allowed=_REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, allowed))}, got {reduction!r}")


def kld(mu: torch.Tensor, logvar: torch.Tensor, reduction: str = 'sum') -> torch.Tensor:
    r"""The KL divergence from the diagonal Gaussian posterior to the standard normal prior.

    .. math::
        \mathrm{KL}\big(\mathcal{N}(\mu, e^{\log\sigma^2}) \,\|\, \mathcal{N}(0, I)\big)
        = \frac{1}{2} \sum_j \big(\mu_j^2 + e^{\log\sigma_j^2} - 1 - \log\sigma_j^2\big)

    in nats. It is computed as ``0.5 * (mu**2 + expm1(logvar) - logvar)``, which is exact near
    ``logvar = 0`` and stays finite for float32 ``logvar`` up to about 88 (where the true value
    itself leaves float32's range). float16/bfloat16 inputs (e.g. under autocast) are computed
    and returned in float32, where they cannot overflow.

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
    if not isinstance(mu, torch.Tensor) or not isinstance(logvar, torch.Tensor):
        raise TypeError(f'kld expects tensors, got mu={type(mu).__name__}, logvar={type(logvar).__name__}')
    if mu.shape != logvar.shape:
        raise ValueError(f'mu and logvar must have the same shape, got {tuple(mu.shape)} and '
                         f'{tuple(logvar.shape)}')
    if mu.dim() < 1:
        raise ValueError('mu and logvar need a batch dimension, got 0-d tensors')
    if not mu.is_floating_point() or not logvar.is_floating_point():
        raise TypeError(f'mu and logvar must be floating point, got {mu.dtype} and {logvar.dtype}')
    _check_reduction(reduction)
    if mu.dtype in _LOW_PRECISION or logvar.dtype in _LOW_PRECISION:
        mu, logvar = mu.float(), logvar.float()

    per_element = 0.5 * (mu.pow(2) + torch.expm1(logvar) - logvar)
    if reduction == 'sum':
        return per_element.sum()
    if reduction == 'batchmean':
        return per_element.sum() / max(mu.shape[0], 1)
    return per_element.reshape(mu.shape[0], -1).sum(1)


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
    if target.shape != recon.shape:
        if target.numel() != recon.numel():
            raise ValueError(f'the reconstruction has shape {tuple(recon.shape)} but the target has shape '
                             f'{tuple(target.shape)}; they must hold the same number of values')
        target = target.reshape(recon.shape)
    loss = F.binary_cross_entropy(recon, target, reduction='sum') + beta * kld(mu, logvar, 'sum')
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


def divergence(*keys: StateKey, beta: Beta = 1.0, store_as: StateKey = KL):
    """Decorator: turn a function of state values into a callback adding it to the loss.

    The decorated function receives ``state[key]`` for each of ``keys``, in order, and returns a
    scalar tensor ``d``. The resulting callback adds ``beta * d`` to ``torchbearer.LOSS`` after
    the criterion, in training and in validation (it is built on torchbearer's
    :func:`~torchbearer.callbacks.decorators.add_to_loss`), and stores the unweighted, detached
    ``d`` in ``state[store_as]`` so that a metric or printer can show it.

    Args:
        *keys (StateKey): The state keys whose values are passed to the function.
        beta (float or callable): The weight: a number >= 0, or a function ``beta(state)``
            returning one at every step (for KL warm-up or annealing).
        store_as (StateKey or None): Where to store the unweighted value; ``None`` stores nothing.

    Returns:
        A decorator that turns ``f(*values) -> Tensor`` into a torchbearer
        :class:`~torchbearer.callbacks.Callback`.

    Raises:
        MissingStateError: at a step where one of ``keys`` is not in state.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import MU, LOGVAR, divergence, kld
        >>> @divergence(MU, LOGVAR, beta=4.0)
        ... def beta_kl(mu, logvar):
        ...     return kld(mu, logvar, reduction='batchmean')
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
    weight = beta if callable(beta) else (lambda state: beta)
    constant_one = not callable(beta) and beta == 1

    def decorator(func):
        if not callable(func):
            raise TypeError(f'@divergence must decorate a function, got {type(func).__name__}')
        name = getattr(func, '__name__', type(func).__name__)

        def loss_term(state):
            try:
                values = [state[key] for key in keys]
            except KeyError as error:
                missing = error.args[0]
                raise MissingStateError(
                    f'{name} needs state[{_key_name(missing)}], but it is not in state. The model must '
                    f'accept a `state` argument in forward and store it there on every call, e.g. '
                    f'`state[{_key_name(missing)}] = ...` (with torchbearer_vae.VAE, keep '
                    f'use_state=True).') from None
            value = func(*values)
            if not isinstance(value, torch.Tensor) or value.dim() != 0:
                raise ValueError(f'{name} must return a scalar tensor to add to the loss, got '
                                 f'{_describe(value)}; reduce it with sum() or mean()')
            if store_as is not None:
                state[store_as] = value.detach()
            return value if constant_one else weight(state) * value

        callback = add_to_loss(loss_term)
        callback.keys, callback.beta, callback.function = keys, beta, func
        return callback

    return decorator


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f'a tensor of shape {tuple(value.shape)}'
    return f'a {type(value).__name__}'


def kld_loss(beta: Beta = 1.0, reduction: str = 'sum', mu: StateKey = MU, logvar: StateKey = LOGVAR):
    """The KL-divergence callback of *the torchbearer state way*: :func:`kld` via :func:`divergence`.

    Reads ``state[mu]`` and ``state[logvar]`` (stored by the model's forward), adds
    ``beta * kld(mu, logvar, reduction)`` to the loss in training and validation, and stores the
    unweighted KL in ``state[torchbearer_vae.KL]``.

    Args:
        beta (float or callable): KL weight, a number >= 0 or a function ``beta(state)``.
        reduction (str): ``'sum'`` (pairs with a summed reconstruction criterion such as
            ``BCELoss(reduction='sum')``) or ``'batchmean'`` (pairs with a per-image one).
        mu (StateKey): Where the model stores the posterior means.
        logvar (StateKey): Where the model stores the posterior log-variances.

    Returns:
        Callback: A torchbearer callback to pass in ``Trial(..., callbacks=[...])``.

    Example: ::

        >>> import torch
        >>> import torchbearer
        >>> from torchbearer_vae import VAE, kld_loss
        >>> model = VAE()
        >>> trial = torchbearer.Trial(model, torch.optim.Adam(model.parameters()),
        ...                           torch.nn.BCELoss(reduction='sum'), callbacks=[kld_loss()])
    """
    _check_reduction(reduction, ('sum', 'batchmean'))

    def kld_loss(mu_value, logvar_value):  # named so that errors say 'kld_loss needs ...'
        return kld(mu_value, logvar_value, reduction)

    return divergence(mu, logvar, beta=beta)(kld_loss)
