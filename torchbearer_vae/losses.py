"""The VAE objective as pure functions: the analytic KL term, the reconstruction term and the whole loss.

The callbacks that add a divergence to torchbearer's loss (:func:`~torchbearer_vae.divergence`,
:func:`~torchbearer_vae.kld_loss`) live in :mod:`torchbearer_vae.divergences`.
"""
import math
import weakref
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from .checks import check_choice, check_number, describe

__all__ = ['kld', 'reconstruction_loss', 'vae_loss', 'bernoulli_mean']

#: The reductions :func:`kld` and :func:`reconstruction_loss` know.
REDUCTIONS = ('sum', 'batchmean', 'none')
#: The decoder likelihoods :func:`reconstruction_loss` knows.
LIKELIHOODS = ('bernoulli', 'gaussian')
_LOG_2PI = math.log(2 * math.pi)
_MIN_LOG_SIGMA = -6.0
#: The smallest standard deviation of a calibrated Gaussian decoder (``sigma=None``), ``exp(-6)``, about 0.0025 in
#: the units of pixel values in ``[0, 1]`` (two thirds of an 8-bit step), the floor Rybkin et al. use for
#: stability: an exact reconstruction scores a finite value, and its gradients stay bounded.
MIN_SIGMA = math.exp(_MIN_LOG_SIGMA)


# -- a Bernoulli decoder's probabilities remember their logits --
# BCE on probabilities takes two logarithms per value and clamps each at -100 (so a probability rounded to 0 or 1
# gives a wrong, finite loss); from the logits it is softplus(l) - x*l: exact where the sigmoid saturates, and
# its gradient skips the sigmoid's. On a 2-core CPU the loss of a batch of 128 MNIST images, forward and backward,
# takes ~1.1 ms from the probabilities, ~0.75 ms from the logits; a whole step is 0.5-3.5% faster
# (benchmarks/README "A later session's split").
# The logits are kept beside the probabilities, not on them: an attribute would go into torch.save and deepcopy.
# id(probabilities) -> (logits, both version counters then), dropped when the probabilities are freed.
_LOGITS: Dict[int, Tuple[torch.Tensor, int, int]] = {}


def bernoulli_mean(logits: torch.Tensor) -> torch.Tensor:
    """A Bernoulli decoder's probabilities ``sigmoid(logits)``, scored from the logits by :func:`reconstruction_loss`.

    :meth:`BaseVAE.decode <torchbearer_vae.BaseVAE.decode>` returns it; a model of your own calls
    it on its decoder's last layer instead of ``torch.sigmoid``. The probabilities are an ordinary
    tensor (for pictures, metrics, any criterion, ``torch.save``); :func:`reconstruction_loss` and
    :func:`vae_loss` compute the binary cross-entropy from the logits kept beside them, which is
    exact where the sigmoid saturates (``BCELoss`` clamps each log at -100) and, for the loss
    itself, about a third faster than from the probabilities. A view of the whole tensor
    (``reshape``) keeps them; after an in-place change of the probabilities or the logits
    (``clamp_``) they are not used. Inside ``torch.compile`` and ``torch.inference_mode`` nothing
    is kept: the probabilities are scored as ``BCELoss`` does. A NaN logit gives a NaN loss, as
    ``BCEWithLogitsLoss`` does (:class:`~torchbearer_vae.NaNGuard` stops training at it).

    Args:
        logits (torch.Tensor): The decoder's output before the sigmoid.

    Returns:
        torch.Tensor: ``torch.sigmoid(logits)``.

    Raises:
        TypeError: ``logits`` is not a floating point tensor.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import bernoulli_mean, reconstruction_loss
        >>> logits, x = torch.tensor([[-200.0, 0.0]]), torch.tensor([[1.0, 1.0]])
        >>> reconstruction_loss(bernoulli_mean(logits), x)  # 200 + log 2: exact
        tensor(200.6931)
        >>> reconstruction_loss(torch.sigmoid(logits), x)  # the log of 0 clamped at -100
        tensor(100.6931)
    """
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f'bernoulli_mean needs logits as a floating point tensor, got {describe(logits)}')
    probabilities = torch.sigmoid(logits)
    # Not kept: inside a compiled graph (no side table there; the graph scores the probabilities, as BCELoss does),
    # nor for inference-mode tensors, which have no version counter to tell an in-place change.
    if not (torch.compiler.is_compiling() or probabilities.is_inference() or logits.is_inference()):
        _LOGITS[id(probabilities)] = (logits, logits._version, probabilities._version)
        weakref.finalize(probabilities, _LOGITS.pop, id(probabilities), None)
    return probabilities


def _logits_of(recon: torch.Tensor) -> Optional[torch.Tensor]:
    """The logits ``recon`` was computed from by :func:`bernoulli_mean`, shaped like ``recon``, or None.

    None when the logits would not give ``recon``'s values or its gradient: part of the tensor or
    another order of it, an in-place change of either, ``recon`` made a leaf that requires a
    gradient (``requires_grad_``). The logits without their graph when ``recon`` has none
    (``detach_``, ``torch.no_grad``).
    """
    if torch.compiler.is_compiling():
        return None
    owner = recon if id(recon) in _LOGITS else recon._base
    if owner is None or id(owner) not in _LOGITS:
        return None
    logits, logits_version, version = _LOGITS[id(owner)]
    whole = (owner is recon or (recon.numel() == owner.numel() and recon.storage_offset() == owner.storage_offset()
                                and recon.is_contiguous() and owner.is_contiguous()))
    if not whole or owner._version != version or logits._version != logits_version:
        return None
    if not recon.requires_grad:
        return logits.detach().reshape(recon.shape)
    if recon.is_leaf or not logits.requires_grad:
        return None
    return logits.reshape(recon.shape)


def _check_probability_targets(target: torch.Tensor) -> None:
    """ValueError unless every target value is in ``[0, 1]`` (BCELoss refuses others; BCE from logits would not)."""
    low, high = torch.aminmax(target.detach())  # one pass and one read-back (NaN fails the test too)
    if not bool((low >= 0) & (high <= 1)):
        raise ValueError(f'the Bernoulli likelihood needs targets in [0, 1], got values from {float(low):g} to '
                         f'{float(high):g}; scale 8-bit images with x.float() / 255 (TensorLoader does it), or use '
                         f"likelihood='gaussian' for other values")


def _expect_tensors(function: str, *named: Tuple[str, Any]) -> None:
    """Each ``(name, value)`` a dense floating point tensor with a batch dimension, all on one device."""
    for name, value in named:
        if not isinstance(value, torch.Tensor):
            raise TypeError(f'{function}: {name} must be a tensor, got {describe(value)}')
        if value.layout != torch.strided:
            raise TypeError(f'{function}: {name} must be a dense tensor, got layout {value.layout}')
        if not value.is_floating_point():
            raise TypeError(f'{function}: {name} must be a floating point tensor, got {value.dtype}')
    (first, a), (second, b) = named
    if a.device != b.device:
        raise ValueError(f'{function}: {first} and {second} must be on the same device, got {a.device} and '
                         f'{b.device}')
    if a.dim() < 1 or b.dim() < 1:
        raise ValueError(f'{function}: {first} and {second} need a batch dimension, got shapes {tuple(a.shape)} and '
                         f'{tuple(b.shape)}')


def kld(mu: torch.Tensor, logvar: torch.Tensor, *, reduction: str = 'sum') -> torch.Tensor:
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

    Raises:
        TypeError: ``mu`` or ``logvar`` is not a dense floating point tensor, or ``reduction`` not a str.
        ValueError: their shapes or devices differ, they have no batch dimension, or ``reduction``
            is not one of the three.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import kld
        >>> mu, logvar = torch.zeros(4, 2), torch.zeros(4, 2)
        >>> kld(mu, logvar).item()  # the posterior is the prior
        0.0
        >>> kld(torch.ones(4, 2), logvar, reduction='none')
        tensor([1., 1., 1., 1.])
    """
    check_choice('reduction', reduction, REDUCTIONS)
    per_element = kld_elements(mu, logvar)
    if reduction == 'sum':
        return per_element.sum()
    if reduction == 'batchmean':
        return per_element.sum() / max(mu.shape[0], 1)
    return per_element.reshape(mu.shape[0], math.prod(mu.shape[1:])).sum(1)  # not -1: a batch may be empty


def kld_elements(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The KL of every latent element, shape of ``mu`` (float32 for low-precision inputs).

    It runs at every training step: four elementwise kernels, two of them in place on a fresh
    tensor that autograd does not need. The 0.5 is applied per element, not after the sum, so
    that a sum of large but finite terms does not overflow first.
    """
    _expect_tensors('kld', ('mu', mu), ('logvar', logvar))
    if mu.shape != logvar.shape:
        raise ValueError(f'kld: mu and logvar must have the same shape, got {tuple(mu.shape)} and '
                         f'{tuple(logvar.shape)}')
    # At least float32, so that float16/bfloat16 cannot overflow; a float64 input keeps float64.
    dtype = torch.promote_types(torch.promote_types(mu.dtype, logvar.dtype), torch.float32)
    mu, logvar = mu.to(dtype), logvar.to(dtype)
    return (torch.expm1(logvar) - logvar).addcmul_(mu, mu).mul_(0.5)


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, likelihood: str = 'bernoulli', *,
                        sigma: Optional[float] = 1.0, reduction: str = 'sum') -> torch.Tensor:
    r"""The reconstruction term ``-log p(target | z)`` in nats: the one formula the whole package uses.

    :func:`vae_loss`, :meth:`BaseVAE.reconstruction_loss <torchbearer_vae.BaseVAE.reconstruction_loss>`,
    :func:`~torchbearer_vae.negative_elbo`, :func:`~torchbearer_vae.importance_weighted_nll` and
    the command line all call it, so training and evaluation measure the same thing.

    * ``'bernoulli'``: ``recon`` holds probabilities; the binary cross-entropy summed over the
      values of an image. Equals ``BCELoss(reduction='sum')`` for ``reduction='sum'``, which
      clamps each log at -100 so that a probability of exactly 0 or 1 stays finite. When
      ``recon`` comes from a :class:`~torchbearer_vae.BaseVAE`'s ``decode`` (or ``forward``),
      it is computed from the decoder's logits instead (``BCEWithLogitsLoss``): the same value
      where the sigmoid does not saturate, the exact one where it does, and faster.
    * ``'gaussian'``: ``recon`` holds means, every value has the standard deviation ``sigma``:
      :math:`\sum_i \frac{(x_i - \hat x_i)^2}{2\sigma^2} + \frac{D}{2}\log(2\pi\sigma^2)`
      over the ``D`` values of an image. ``sigma=None`` is the *calibrated* decoder of Rybkin,
      Daniilidis and Levine (2021, "Simple and Effective VAE Training with Calibrated Decoders"):
      ``sigma`` is the one that maximises the likelihood of the batch, the root mean squared
      error :math:`\sigma^* = \sqrt{\mathrm{MSE}}` over every value of every image of
      ``recon``, but at least ``MIN_SIGMA`` (``exp(-6)``, module constant), so that an exact
      reconstruction scores a finite value. The batch's term is then
      :math:`\frac{N}{2}(1 + \log(2\pi\sigma^{*2}))` for its
      ``N`` values: the reconstruction weighs against the KL term as much as the decoder's error
      warrants, where a fixed ``sigma`` sets that balance arbitrarily. ``sigma*`` is not
      differentiated (at its optimum the loss does not change with it: the gradients are those
      of the fixed ``sigma*``). With ``reduction='none'`` each image's value uses the batch's
      ``sigma*``, so it depends on the images scored with it.

    Args:
        recon (torch.Tensor): The decoder's mean, ``(B, ...)``.
        target (torch.Tensor): The images, with as many values as ``recon`` (reshaped if needed).
        likelihood (str): ``'bernoulli'`` or ``'gaussian'``.
        sigma (float or None): The Gaussian's standard deviation, > 0, in the units of the
            values; None: calibrated, the batch's optimal one (ignored for Bernoulli).
        reduction (str): ``'sum'`` over the batch, ``'batchmean'`` (per image) or ``'none'``
            (one value per image, shape ``(B,)``).

    Returns:
        torch.Tensor: A scalar, or ``(B,)`` for ``reduction='none'``.

    Raises:
        TypeError: ``recon`` or ``target`` is not a dense floating point tensor, or an option has
            the wrong type.
        ValueError: they hold different numbers of values or have no batch dimension, a
            Bernoulli target holds values outside ``[0, 1]`` (8-bit images not divided by 255),
            or an option has a wrong value.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import reconstruction_loss
        >>> x = torch.full((2, 4), 0.5)
        >>> reconstruction_loss(x, x, reduction='none')  # 4 values of log(2) nats per image
        tensor([2.7726, 2.7726])
        >>> recon = torch.tensor([[0.4, 0.6, 0.6, 0.4], [0.6, 0.6, 0.4, 0.4]])  # MSE 0.01: sigma* 0.1
        >>> reconstruction_loss(recon, x, 'gaussian', sigma=None, reduction='none')
        tensor([-3.5346, -3.5346])
        >>> reconstruction_loss(recon, x, 'gaussian', sigma=0.1, reduction='none')  # the same sigma, fixed
        tensor([-3.5346, -3.5346])
    """
    check_choice('likelihood', likelihood, LIKELIHOODS)
    check_choice('reduction', reduction, REDUCTIONS)
    _expect_tensors('reconstruction_loss', ('recon', recon), ('target', target))
    if target.shape != recon.shape:
        if target.numel() != recon.numel():
            raise ValueError(f'the reconstruction has shape {tuple(recon.shape)} but the target has shape '
                             f'{tuple(target.shape)}; they must hold the same number of values')
        target = target.reshape(recon.shape)
    if likelihood == 'bernoulli':
        if target.numel():
            _check_probability_targets(target)
        logits = _logits_of(recon)
        if logits is not None:  # softplus(l) - x l, in one temporary (BCEWithLogitsLoss makes four)
            per_value = F.softplus(logits).addcmul_(target, logits, value=-1)
        elif reduction != 'none':  # one reduction, as BCELoss(reduction='sum')
            total = F.binary_cross_entropy(recon, target, reduction='sum')
            return total / recon.shape[0] if reduction == 'batchmean' else total
        else:
            per_value = F.binary_cross_entropy(recon, target, reduction='none')
        per_image = per_value.reshape(per_value.shape[0], -1).sum(1)
    else:
        per_image = _gaussian(recon, target, None if sigma is None else check_number('sigma', sigma, above=0))
    if reduction == 'none':
        return per_image
    return per_image.sum() / (recon.shape[0] if reduction == 'batchmean' else 1)


def _gaussian(recon: torch.Tensor, target: torch.Tensor, sigma: Optional[float]) -> torch.Tensor:
    """Each image's Gaussian ``-log p``, standard deviation ``sigma`` (None: the batch's optimal one, at least
    MIN_SIGMA), from its summed squared error: ``sum e^2 / (2 sigma^2) + D (log sigma + log(2 pi) / 2)``.

    One fused squared error and one sum per image, in float32 at least (an image of many half-precision values does
    not overflow); the per-value form costs several passes over the images, forward and backward.
    """
    dtype = torch.promote_types(recon.dtype, torch.float32)
    squared = F.mse_loss(recon, target, reduction='none').reshape(recon.shape[0], -1).sum(1, dtype=dtype)
    values = recon[0].numel() if recon.shape[0] else 0
    if sigma is None:
        with torch.no_grad():  # log(0) = -inf for an exact reconstruction: the floor makes it finite
            log_sigma = (squared.sum() / recon.numel()).log().mul(0.5).clamp(min=_MIN_LOG_SIGMA)
        per_image = 0.5 * squared * torch.exp(-2 * log_sigma) + values * (log_sigma + 0.5 * _LOG_2PI)
    else:
        per_image = 0.5 * squared / sigma ** 2 + values * (math.log(sigma) + 0.5 * _LOG_2PI)
    return per_image.to(recon.dtype)


def vae_loss(recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, target: torch.Tensor, *,
             beta: float = 1.0, reduction: str = 'sum') -> torch.Tensor:
    """The negative ELBO of a Bernoulli-decoder VAE: binary cross-entropy plus ``beta`` times KL.

    This is the criterion for *the PyTorch way*, where the model returns ``(recon, mu, logvar)``.
    torchbearer unpacks a tuple prediction into the criterion's positional arguments, followed
    by the target, so the signature is ``(recon, mu, logvar, target)`` and it can be passed to a
    :class:`~torchbearer.Trial` as it is. The reconstruction term is :func:`reconstruction_loss`
    (Bernoulli), the KL term :func:`kld`.

    Args:
        recon (torch.Tensor): Decoder output in ``[0, 1]``.
        mu (torch.Tensor): Posterior means.
        logvar (torch.Tensor): Posterior log-variances.
        target (torch.Tensor): The images to reconstruct, in ``[0, 1]``. A target with the same
            number of elements as ``recon`` but another shape (flattened, say) is reshaped.
        beta (float): Weight of the KL term, >= 0 (``beta > 1`` gives a beta-VAE).
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
    check_choice('reduction', reduction, REDUCTIONS[:2])
    beta = check_number('beta', beta, minimum=0)
    loss = reconstruction_loss(recon, target, reduction='sum') + beta * kld(mu, logvar, reduction='sum')
    if reduction == 'batchmean':
        loss = loss / recon.shape[0]
    return loss
