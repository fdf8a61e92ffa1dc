"""How good is a trained VAE: the single-sample negative ELBO and the importance-weighted NLL, in nats per image.

Both take any model with ``encode(x) -> (mu, logvar)`` (a diagonal Gaussian posterior) and a way
to compute ``log p(x|z)``, looked up in this order:

1. ``model.log_likelihood(x, z)`` returning ``(B,)`` log-likelihoods in nats (what
   :class:`~torchbearer_vae.BaseVAE`, hence :class:`~torchbearer_vae.VAE` and
   :class:`~torchbearer_vae.ConvVAE`, provide);
2. otherwise ``model.decode(z)`` read according to ``model.likelihood``: ``'bernoulli'`` (the
   default when the model has no such attribute, as the PyTorch example's VAE) for
   probabilities, with each log clamped at -100 like :class:`torch.nn.BCELoss`, or
   ``'gaussian'`` for means with the standard deviation ``model.sigma`` (default 1; None: calibrated, the
   optimal one of the images decoded together, as in training).

Either way the term is :func:`~torchbearer_vae.reconstruction_loss`, the formula training uses
(:class:`~torchbearer_vae.BaseVAE`'s ``log_likelihood`` calls it too).

A conditional model (one with an int ``num_classes``, as :class:`~torchbearer_vae.ConditionalVAE`)
is given each image's label: ``encode(x, labels)`` and ``log_likelihood(x, z, labels)`` (or
``decode(z, labels)``). Its data must then carry the labels: batches ``(x, target, label)``, as
``AutoEncoderDataset(dataset, keep_labels=True)`` gives, or ``(x, label)``, as a labelled dataset gives.

``data`` is a tensor of images, a :class:`~torch.utils.data.Dataset` of ``(x, ...)`` items or of
``x`` (batched here with ``batch_size``), or a DataLoader or any iterable of batches ``(x, ...)``
or ``x`` (used as it is). The model is put in eval mode (and back) and nothing is differentiated;
``z`` is always sampled from ``q(z|x)`` here, whatever the mode (``reparameterize`` is not used).

How to report a trained model's likelihood on held-out data::

    from torchbearer_vae import importance_weighted_nll, negative_elbo

    elbo = negative_elbo(model, test_set)                            # the training loss per image, z sampled
    nll = importance_weighted_nll(model, test_set, num_samples=100)  # tighter: nll <= elbo in expectation
    print(f'-ELBO {elbo:.1f} nats, IWAE(k=100) NLL {nll:.1f} nats per image')

:func:`reconstruction_psnr` says how close the reconstructions are in the units of image work (dB), whatever
the likelihood.
"""
import math
from typing import Any, Callable, Optional, Sequence, Union

import torch

from .checks import check_choice, check_int, check_number
from .losses import LIKELIHOODS, kld, reconstruction_loss
from .model_utils import (
    Data,
    data_batches,
    decoded,
    evaluating,
    is_conditional,
    latent_code,
    model_device,
    posterior,
    require_methods,
)

__all__ = ['importance_weighted_nll', 'negative_elbo', 'reconstruction_psnr', 'reconstruction_term']

_LOG_2PI = math.log(2 * math.pi)
#: Decoded images per forward pass that ``importance_weighted_nll`` aims for by default.
_DEFAULT_PASS_SIZE = 1024

def _likelihood_of(model: Any) -> Callable[..., torch.Tensor]:
    """``log p(x|z)`` per image for ``model``, as ``(x, z, labels)`` (see the module docstring for the protocol)."""
    if not callable(getattr(model, 'encode', None)):
        raise TypeError(f'the model needs encode(x) -> (mu, logvar); {type(model).__name__} has no encode')
    conditional = is_conditional(model)
    if callable(getattr(model, 'log_likelihood', None)):
        return (lambda x, z, labels: model.log_likelihood(x, z, labels)) if conditional else \
            (lambda x, z, labels: model.log_likelihood(x, z))
    if not callable(getattr(model, 'decode', None)):
        raise TypeError(f'the model needs log_likelihood(x, z) or decode(z); {type(model).__name__} has neither')
    likelihood = check_choice('model.likelihood', getattr(model, 'likelihood', 'bernoulli'), LIKELIHOODS)
    sigma = check_number('model.sigma', getattr(model, 'sigma', 1.0), above=0, allow_none=True) \
        if likelihood == 'gaussian' else 1.0

    def log_likelihood(x: torch.Tensor, z: torch.Tensor, labels: Optional[torch.Tensor]) -> torch.Tensor:
        return -reconstruction_loss(decoded(model, z, labels), x, likelihood, sigma=sigma, reduction='none')

    return log_likelihood


def _device_of(model: Any, device: Optional[Union[str, torch.device]]) -> torch.device:
    return torch.device(device) if device is not None else model_device(model)


def _normal(shape: Sequence[int], device: torch.device, generator: Optional[torch.Generator]) -> torch.Tensor:
    noise_device = generator.device if generator is not None else device
    return torch.randn(shape, device=noise_device, generator=generator).to(device)


def _mean_over(model: Any, data: Data, batch_size: int, device: torch.device,
               per_batch: Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]) -> float:
    """Sum ``per_batch(x, labels) -> (B,)`` over ``data`` with the model in eval mode; return the mean per image."""
    check_int('batch_size', batch_size, minimum=1)
    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    with evaluating(model):
        for x, labels in data_batches(data, batch_size, model):
            if x.shape[0] == 0:
                continue
            total += per_batch(x.to(device), None if labels is None else labels.to(device)).double().sum()
            count += x.shape[0]
    if count == 0:
        raise ValueError('data holds no images')
    return total.item() / count


def negative_elbo(model: torch.nn.Module, data: Data, *, batch_size: int = 100,
                  device: Optional[Union[str, torch.device]] = None,
                  generator: Optional[torch.Generator] = None) -> float:
    r"""The single-sample negative ELBO, in nats per image, with ``z`` sampled as in training.

    .. math::
        -\mathrm{ELBO}(x) = -\log p(x \mid z) + \mathrm{KL}\big(q(z \mid x) \,\|\, \mathcal{N}(0, I)\big),
        \qquad z = \mu(x) + \sigma(x) \odot \epsilon,\ \epsilon \sim \mathcal{N}(0, I),

    with the reconstruction term :func:`~torchbearer_vae.reconstruction_loss` (through
    ``model.log_likelihood`` when the model has one) and the KL term analytic
    (:func:`~torchbearer_vae.kld`), averaged over the images of ``data``. This is the training
    loss (e.g. ``BCELoss(reduction='sum')`` plus :func:`~torchbearer_vae.kld_loss`) per image,
    except that the network is in eval mode: a Trial's own validation loss decodes ``z = mu``
    instead (``VAE.reparameterize`` in eval mode), a different number (usually lower once the model
    is trained, not always early in training). It is an unbiased estimate
    of the negative ELBO, an upper bound of ``-log p(x)``.

    Args:
        model: A model with ``encode`` and ``log_likelihood`` or ``decode`` (module docstring).
        data: A tensor of images, a Dataset of ``(x, ...)`` or ``x``, or an iterable of batches
            (with the labels for a conditional model: module docstring).
        batch_size (int): Images per batch when ``data`` is a tensor or a Dataset.
        device (str or torch.device or None): Where to compute; default, the model's device.
        generator (torch.Generator or None): For reproducible draws of ``epsilon``.

    Returns:
        float: The mean negative ELBO per image, in nats.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import VAE, negative_elbo
        >>> value = negative_elbo(VAE(), torch.rand(10, 1, 28, 28))  # about 784 * log(2) + KL untrained
        >>> value > 500
        True
    """
    log_likelihood = _likelihood_of(model)
    on = _device_of(model, device)

    def per_batch(x: torch.Tensor, labels: Optional[torch.Tensor]) -> torch.Tensor:
        mu, logvar = posterior(model, x, labels)
        z = mu + torch.exp(0.5 * logvar) * _normal(mu.shape, mu.device, generator)
        return kld(mu, logvar, reduction='none') - log_likelihood(x, z, labels)

    return _mean_over(model, data, batch_size, on, per_batch)


def importance_weighted_nll(model: torch.nn.Module, data: Data, *, num_samples: int = 100, batch_size: int = 100,
                            device: Optional[Union[str, torch.device]] = None, chunk_size: Optional[int] = None,
                            generator: Optional[torch.Generator] = None) -> float:
    r"""The importance-weighted estimate of the negative log-likelihood ``-log p(x)``, in nats per image.

    With ``k = num_samples`` draws :math:`z_1, \dots, z_k \sim q(z \mid x)` from the posterior (Burda, Grosse and
    Salakhutdinov 2015, *Importance Weighted Autoencoders*):

    .. math::
        \log w_i = \log p(x \mid z_i) + \log \mathcal{N}(z_i; 0, I) - \log q(z_i \mid x), \qquad
        \mathrm{NLL}_k(x) = -\Big(\operatorname{logsumexp}_{i=1}^{k} \log w_i - \log k\Big).

    :math:`\mathbb{E}[\mathrm{NLL}_k] \ge \mathbb{E}[\mathrm{NLL}_{k+1}] \ge -\log p(x)`: an upper
    bound of the true negative log-likelihood that tightens as ``k`` grows and converges to it
    as ``k -> inf``; ``k = 1`` is the single-sample negative ELBO (with a sampled, not analytic,
    KL term), so its mean equals that of :func:`negative_elbo`. The ``k`` draws of a batch are
    taken ``chunk_size`` at a time and folded into a running log-sum-exp, so memory holds
    ``batch * chunk_size`` decoded images whatever ``k`` is, and the sum is stable (no
    exponent of a log-weight of -100s of nats is ever taken on its own). Logs are accumulated in
    float64.

    Args:
        model: A model with ``encode`` and ``log_likelihood`` or ``decode`` (module docstring).
        data: A tensor of images, a Dataset of ``(x, ...)`` or ``x``, or an iterable of batches.
        num_samples (int): ``k``, the importance samples per image (the IWAE paper reports
            ``k = 5000``; 100 is common for quick comparisons).
        batch_size (int): Images per batch when ``data`` is a tensor or a Dataset.
        device (str or torch.device or None): Where to compute; default, the model's device.
        chunk_size (int or None): Draws per image decoded together; default
            ``max(1, 1024 // batch)``, so a pass decodes about 1024 images.
        generator (torch.Generator or None): For reproducible draws.

    Returns:
        float: The mean NLL estimate per image, in nats.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import VAE, importance_weighted_nll
        >>> nll = importance_weighted_nll(VAE(), torch.rand(10, 1, 28, 28), num_samples=50, batch_size=5)
        >>> nll > 500  # an untrained model: about 784 * log(2) nats
        True
    """
    k = check_int('num_samples', num_samples, minimum=1)
    check_int('chunk_size', chunk_size, minimum=1, allow_none=True)
    log_likelihood = _likelihood_of(model)
    on = _device_of(model, device)

    def per_batch(x: torch.Tensor, labels: Optional[torch.Tensor]) -> torch.Tensor:
        mu, logvar = posterior(model, x, labels)
        count, latent_dim = mu.shape
        std = torch.exp(0.5 * logvar)
        chunk = chunk_size or max(1, _DEFAULT_PASS_SIZE // count)
        total = torch.full((count,), -math.inf, dtype=torch.float64, device=mu.device)
        for start in range(0, k, chunk):
            draws = min(chunk, k - start)
            eps = _normal((draws, count, latent_dim), mu.device, generator)
            z = mu + std * eps
            # log q(z|x) from eps, not (z - mu) / std: exact however small std is.
            log_q = -0.5 * (eps.pow(2) + logvar + _LOG_2PI).sum(-1)
            log_prior = -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)
            repeated = x.unsqueeze(0).expand((draws,) + tuple(x.shape)).reshape((draws * count,) + x.shape[1:])
            repeated_labels = None if labels is None else labels.repeat(draws, *[1] * (labels.dim() - 1))
            log_px = log_likelihood(repeated, z.reshape(draws * count, latent_dim), repeated_labels).reshape(draws,
                                                                                                        count)
            log_w = (log_px + log_prior - log_q).double()
            total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
        return -(total - math.log(k))  # Tensor - float: a Tensor to mypy with every supported torch

    return _mean_over(model, data, batch_size, on, per_batch)


def reconstruction_psnr(model: Any, data: Data, *, batch_size: int = 100,
                        device: Optional[Union[str, torch.device]] = None) -> float:
    r"""The peak signal-to-noise ratio of the reconstructions of ``data``, in dB, for pixel values in ``[0, 1]``.

    Each image is encoded, its posterior mean decoded (the decoder's mean: probabilities for a
    Bernoulli decoder, means for a Gaussian one, clamped to ``[0, 1]`` as a picture shows them),
    and

    .. math::
        \mathrm{PSNR} = 10 \log_{10} \frac{1}{\mathrm{MSE}}

    with the mean squared error over every value of every image (not a mean of per-image PSNRs,
    which a few flat images would dominate). Higher is closer; ``inf`` for exact reconstructions.
    It does not depend on the likelihood or on ``sigma``, so it compares any two runs on the same
    images.

    Args:
        model: A model with ``encode`` and ``decode`` (and the labels for a conditional one, as
            for :func:`negative_elbo`).
        data: A tensor of images in ``[0, 1]``, a Dataset of ``(x, ...)`` or ``x``, or an iterable
            of batches.
        batch_size (int): Images per batch when ``data`` is a tensor or a Dataset.
        device (str or torch.device or None): Where to compute; default, the model's device.

    Returns:
        float: The PSNR in dB.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import VAE, reconstruction_psnr
        >>> psnr = reconstruction_psnr(VAE(), torch.rand(10, 1, 28, 28))  # untrained: about 0.5 everywhere
        >>> 10 < psnr < 12  # MSE about 1/12
        True
    """
    require_methods(model, 'reconstruction_psnr', 'encode', 'decode')

    def per_batch(x: torch.Tensor, labels: Optional[torch.Tensor]) -> torch.Tensor:
        recon: torch.Tensor = decoded(model, latent_code(model, x, labels), labels)
        return (recon.reshape(x.shape[0], -1).clamp(0, 1) - x.reshape(x.shape[0], -1)).double().pow(2).mean(1)

    mse = _mean_over(model, data, batch_size, _device_of(model, device), per_batch)
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def reconstruction_term(model: Any, data: Data, *, batch_size: int = 100,
                        device: Optional[Union[str, torch.device]] = None) -> float:
    r"""The reconstruction term :math:`-\log p(x \mid z)` in nats per image, ``z`` each image's deterministic code.

    The code is the posterior mean of a VAE (``encode`` returns ``(mu, logvar)``), or what ``encode``
    returns for another autoencoder: a plain or denoising one's code, a
    :class:`~torchbearer_vae.VQVAE`'s map (quantized by its ``decode``). The term is
    :func:`~torchbearer_vae.reconstruction_loss` of the model's likelihood, as in training (through
    ``model.log_likelihood`` when the model has one), averaged over the images. For a VAE it is the
    reconstruction part of a Trial's ``val_loss`` (eval mode, ``z = mu``); for a VQ-VAE, whose other terms
    train the codebook and say nothing of the images, it is the number to compare models by.

    Args:
        model: A model with ``encode`` and ``log_likelihood`` or ``decode`` (module docstring).
        data: A tensor of images, a Dataset of ``(x, ...)`` or ``x``, or an iterable of batches.
        batch_size (int): Images per batch when ``data`` is a tensor or a Dataset.
        device (str or torch.device or None): Where to compute; default, the model's device.

    Returns:
        float: The mean of ``-log p(x|z)`` over the images, in nats.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import VQVAE, reconstruction_term
        >>> x = torch.rand(10, 1, 28, 28).round()
        >>> term = reconstruction_term(VQVAE(num_codes=16, code_dim=4), x)  # untrained: about log 2 per pixel
        >>> 500 < term < 600
        True
    """
    log_likelihood = _likelihood_of(model)

    def per_batch(x: torch.Tensor, labels: Optional[torch.Tensor]) -> torch.Tensor:
        return -log_likelihood(x, latent_code(model, x, labels), labels)

    return _mean_over(model, data, batch_size, _device_of(model, device), per_batch)
