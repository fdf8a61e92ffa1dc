"""Reference VAEs: the multilayer perceptron of the PyTorch VAE example and a convolutional one.

Both share :class:`BaseVAE`, which holds everything that is not the network itself: the two
ways of calling ``forward`` (torchbearer state or PyTorch tuple), the reparameterisation, prior
sampling and the decoder's likelihood ``log p(x|z)`` (Bernoulli or Gaussian) that the training
criterion and :func:`~torchbearer_vae.importance_weighted_nll` both use.
"""
import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .state import LOGVAR, MU

__all__ = ['BaseVAE', 'VAE', 'ConvVAE']

_LIKELIHOODS = ('bernoulli', 'gaussian')
_LOG_2PI = math.log(2 * math.pi)


def _check_dim(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be an int >= 1, got {value!r}')


def _check_clamp(logvar_clamp) -> Optional[Tuple[float, float]]:
    if logvar_clamp is None:
        return None
    if isinstance(logvar_clamp, (str, bytes)):
        raise ValueError(f'logvar_clamp must be None or two numbers (low, high), got {logvar_clamp!r}')
    try:
        low, high = (float(bound) for bound in logvar_clamp)
    except (TypeError, ValueError):
        raise ValueError(f'logvar_clamp must be None or two numbers (low, high), got {logvar_clamp!r}') from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f'logvar_clamp must be finite with low < high, got {logvar_clamp!r}')
    return low, high


def _negative_log_likelihood(likelihood: str, mean: torch.Tensor, target: torch.Tensor,
                            sigma: float = 1.0) -> torch.Tensor:
    """``-log p(target | z)`` per image, in nats, for a decoder output ``mean``; shape ``(B,)``.

    Bernoulli: the summed binary cross-entropy of ``target`` under probabilities ``mean`` (torch
    clamps each log at -100, so a probability of exactly 0 or 1 stays finite). Gaussian:
    ``sum((target - mean)**2) / (2 sigma**2) + D/2 * log(2 pi sigma**2)`` over the ``D`` values
    of an image. Not part of the public API: :meth:`BaseVAE.log_likelihood` and the evaluation
    functions call it so that training and evaluation use one formula.
    """
    if likelihood == 'bernoulli':
        per_value = F.binary_cross_entropy(mean, target, reduction='none')
    else:
        per_value = 0.5 * ((target - mean) / sigma).pow(2) + 0.5 * (_LOG_2PI + 2 * math.log(sigma))
    return per_value.reshape(per_value.shape[0], -1).sum(1)


class BaseVAE(nn.Module):
    r"""The parts every VAE here shares; a subclass supplies only the two networks.

    A subclass implements ``_encoder(x)`` (``x`` shaped ``(B, *input_shape)``; returns
    ``(mu, logvar)``, each ``(B, latent_dim)``) and ``_decoder(z)`` (returns ``(B, ...)``
    pre-activations with ``prod(input_shape)`` values per image). It then gets:

    * ``forward(x, state=None)`` both ways: with a torchbearer ``state`` and ``use_state=True``
      it stores ``state[MU]``/``state[LOGVAR]`` and returns the reconstruction (the state way);
      otherwise it returns ``(recon, mu, logvar)`` (the PyTorch way);
    * :meth:`encode`, :meth:`reparameterize`, :meth:`decode` (the decoder's mean), :meth:`sample`;
    * the decoder's likelihood: :meth:`log_likelihood` ``log p(x|z)`` per image, and
      :meth:`reconstruction_loss`, its negative summed over a batch, the criterion that pairs with
      :func:`~torchbearer_vae.kld_loss`.

    The likelihood is ``'bernoulli'`` (``decode`` returns probabilities, through a sigmoid;
    ``reconstruction_loss`` equals ``BCELoss(reduction='sum')``) or ``'gaussian'`` with a
    *fixed* standard deviation ``sigma`` (``decode`` returns the mean, unbounded;
    ``reconstruction_loss`` is ``MSELoss(reduction='sum') / (2 sigma^2)`` plus the constant
    ``D/2 log(2 pi sigma^2)`` per image, so that it is a true negative log-density in nats). The
    variance is fixed rather than learned on purpose: a learned variance on data with many exact
    values (MNIST's black background) shrinks towards zero and the density grows without bound.

    Args:
        input_shape (int or sequence of int): Shape of one input, e.g. ``(1, 28, 28)`` or ``784``.
        latent_dim (int): Dimension of the latent code ``z``.
        use_state (bool): Inside a Trial, store ``mu``/``logvar`` in state and return the
            reconstruction (``True``), or return ``(recon, mu, logvar)`` (``False``).
        likelihood (str): ``'bernoulli'`` or ``'gaussian'``.
        sigma (float): Standard deviation of the Gaussian likelihood (ignored for Bernoulli).
        logvar_clamp (tuple of float or None): ``(low, high)``: :meth:`encode` clamps ``logvar``
            to this range (see the trade-off below); ``None`` (default) leaves it as the
            encoder computes it.

    **The logvar clamp.** An encoder whose ``logvar`` output runs away makes ``exp(logvar)``
    overflow: in float32 the KL (:func:`~torchbearer_vae.kld`) stays finite up to ``logvar``
    about 88 and the draw ``mu + exp(logvar / 2) * eps`` up to about 177, but under float16
    autocast ``exp(logvar / 2)`` overflows from ``logvar`` about 22, and the loss becomes inf,
    then NaN. ``logvar_clamp=(-30, 20)`` (what several VAE codebases, e.g. the latent diffusion
    autoencoder, do) keeps the posterior standard deviation in ``[3e-7, 2.2e4]``, finite in
    float16. The price: the clamp is hard, so a ``logvar`` outside the range gets no gradient
    (an encoder pinned at a bound stops learning that output) and the model is no longer exactly
    the unclamped one. The default is ``None``, so :class:`VAE` stays the PyTorch example's
    model; a run that hits inf/NaN (see :class:`~torchbearer_vae.NaNGuard`) or trains in float16
    should turn it on.

    Example: ::

        >>> import torch
        >>> from torch import nn
        >>> from torchbearer_vae import BaseVAE
        >>> class TinyVAE(BaseVAE):
        ...     def __init__(self):
        ...         super().__init__(input_shape=(1, 4, 4), latent_dim=2)
        ...         self.enc, self.dec = nn.Linear(16, 4), nn.Linear(2, 16)
        ...     def _encoder(self, x):
        ...         return self.enc(x.flatten(1)).chunk(2, dim=1)
        ...     def _decoder(self, z):
        ...         return self.dec(z)
        >>> TinyVAE().sample(3).shape
        torch.Size([3, 1, 4, 4])
    """

    def __init__(self, input_shape: Union[int, Sequence[int]], latent_dim: int, use_state: bool = True,
                 likelihood: str = 'bernoulli', sigma: float = 0.1,
                 logvar_clamp: Optional[Tuple[float, float]] = None):
        super().__init__()
        shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
        if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
            raise ValueError(f'input_shape must be a positive int or a sequence of them, got {input_shape!r}')
        _check_dim('latent_dim', latent_dim)
        if likelihood not in _LIKELIHOODS:
            raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 < sigma < math.inf:
            raise ValueError(f'sigma must be a finite number > 0, got {sigma!r}')
        self.input_shape, self.latent_dim, self.use_state = shape, latent_dim, use_state
        self.input_dim = math.prod(shape)
        self.likelihood, self.sigma = likelihood, float(sigma)
        self.logvar_clamp = _check_clamp(logvar_clamp)

    # -- what a subclass provides --
    def _encoder(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f'{type(self).__name__} must implement _encoder(x) -> (mu, logvar)')

    def _decoder(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f'{type(self).__name__} must implement _decoder(z) -> pre-activations')

    # -- the shared interface --
    def _device(self) -> torch.device:
        parameter = next(self.parameters(), None)
        return parameter.device if parameter is not None else torch.device('cpu')

    def encode(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The posterior parameters of a batch.

        Args:
            x (torch.Tensor): Inputs, ``(B, *input_shape)`` or flat ``(B, prod(input_shape))``.

        Returns:
            tuple: ``(mu, logvar)``, each ``(B, latent_dim)``; ``logvar`` clamped to ``logvar_clamp`` if set.
        """
        if x.dim() < 2 or x[0].numel() != self.input_dim:
            raise ValueError(f'{type(self).__name__}(input_shape={self.input_shape}) got inputs of shape '
                             f'{tuple(x.shape)}; expected (batch, {", ".join(map(str, self.input_shape))}) or '
                             f'(batch, {self.input_dim})')
        mu, logvar = self._encoder(x.reshape((x.shape[0],) + self.input_shape))
        if self.logvar_clamp is not None:
            logvar = logvar.clamp(*self.logvar_clamp)
        return mu, logvar

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """A draw ``z = mu + sigma * eps`` in training mode; the mean ``mu`` in eval mode.

        Args:
            mu (torch.Tensor): Posterior means.
            logvar (torch.Tensor): Posterior log-variances.

        Returns:
            torch.Tensor: The latent codes.
        """
        if not self.training:
            return mu
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean for latent codes: probabilities (Bernoulli) or Gaussian means.

        Args:
            z (torch.Tensor): ``(B, latent_dim)`` codes.

        Returns:
            torch.Tensor: ``(B, *input_shape)`` images.
        """
        out = self._decoder(z)
        if self.likelihood == 'bernoulli':
            out = torch.sigmoid(out)
        return out.reshape((z.shape[0],) + self.input_shape)

    @torch.no_grad()
    def sample(self, n: int, device: Optional[torch.device] = None,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Decode ``n`` draws from the prior ``N(0, I)`` (the decoder's mean, no pixel noise).

        Args:
            n (int): How many images.
            device (torch.device or None): Where to decode; default, the model's device.
            generator (torch.Generator or None): For reproducible draws (on its own device).

        Returns:
            torch.Tensor: ``(n, *input_shape)`` images.
        """
        _check_dim('n', n)
        device = device if device is not None else self._device()
        noise_device = generator.device if generator is not None else device
        z = torch.randn(n, self.latent_dim, device=noise_device, generator=generator).to(device)
        return self.decode(z)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``log p(x|z)`` per image, in nats, under the decoder's likelihood.

        Args:
            x (torch.Tensor): ``(B, *input_shape)`` or flat ``(B, prod(input_shape))`` images.
            z (torch.Tensor): ``(B, latent_dim)`` codes, one per image.

        Returns:
            torch.Tensor: ``(B,)`` log-likelihoods.
        """
        mean = self.decode(z)
        return -_negative_log_likelihood(self.likelihood, mean, x.reshape(mean.shape), self.sigma)

    def reconstruction_loss(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``-log p(target|z)`` summed over the batch, in nats: the criterion for this model.

        Pass it to a Trial as the criterion with :func:`~torchbearer_vae.kld_loss` (state way);
        the loss is then the single-sample negative ELBO of the batch. For a Bernoulli decoder it
        equals ``BCELoss(reduction='sum')``.

        Args:
            recon (torch.Tensor): The decoder's mean, as returned by ``forward``.
            target (torch.Tensor): The images, with as many values as ``recon``.

        Returns:
            torch.Tensor: A scalar.
        """
        if target.numel() != recon.numel():
            raise ValueError(f'the reconstruction has shape {tuple(recon.shape)} but the target has shape '
                             f'{tuple(target.shape)}; they must hold the same number of values')
        return _negative_log_likelihood(self.likelihood, recon, target.reshape(recon.shape), self.sigma).sum()

    def forward(self, x: torch.Tensor, state: Optional[dict] = None):
        """Encode, draw ``z`` and decode.

        Args:
            x (torch.Tensor): Inputs.
            state (dict or None): torchbearer's state, passed by the Trial.

        Returns:
            The reconstruction, shaped like ``x``, when ``state`` is given and ``use_state`` is
            true (``mu`` and ``logvar`` go to ``state[MU]``/``state[LOGVAR]``); otherwise
            ``(recon, mu, logvar)``.
        """
        mu, logvar = self.encode(x)
        recon = self.decode(self.reparameterize(mu, logvar)).reshape(x.shape)
        if state is not None and self.use_state:
            state[MU], state[LOGVAR] = mu, logvar
            return recon
        return recon, mu, logvar

    def extra_repr(self) -> str:
        sigma = f', sigma={self.sigma}' if self.likelihood == 'gaussian' else ''
        clamp = f', logvar_clamp={self.logvar_clamp}' if self.logvar_clamp is not None else ''
        return (f'input_shape={self.input_shape}, latent_dim={self.latent_dim}, '
                f'likelihood={self.likelihood!r}{sigma}{clamp}, use_state={self.use_state}')


class VAE(BaseVAE):
    """The VAE of the PyTorch example (784-400-20-400-784, ReLU, sigmoid output), configurable.

    It works both ways the tutorial shows:

    * **the torchbearer state way** (default inside a :class:`~torchbearer.Trial`): torchbearer
      passes ``state`` to ``forward``, which stores ``state[MU]`` and ``state[LOGVAR]`` and returns
      only the reconstruction; use a reconstruction criterion such as
      ``BCELoss(reduction='sum')`` plus the :func:`~torchbearer_vae.kld_loss` callback.
    * **the PyTorch way**: ``forward`` returns ``(recon, mu, logvar)``; use the
      :func:`~torchbearer_vae.vae_loss` criterion. This is what a call without ``state`` does,
      and what ``use_state=False`` makes it do inside a Trial too.

    The reconstruction has the same shape as the input (images ``(B, C, H, W)`` or flat
    ``(B, C*H*W)``), so the target can be the input itself. See :class:`BaseVAE` for the
    methods and the two likelihoods.

    Args:
        input_shape (int or sequence of int): Shape of one input, e.g. ``(1, 28, 28)`` or ``784``.
        hidden_dim (int): Width of the hidden layer of encoder and decoder.
        latent_dim (int): Dimension of the latent code ``z``.
        use_state (bool): Inside a Trial, store ``mu``/``logvar`` in state and return the
            reconstruction (``True``), or return ``(recon, mu, logvar)`` (``False``).
        likelihood (str): ``'bernoulli'`` (the example's sigmoid output) or ``'gaussian'``.
        sigma (float): Fixed standard deviation of the Gaussian likelihood.
        logvar_clamp (tuple of float or None): Clamp ``logvar`` to ``(low, high)``, e.g.
            ``(-30, 20)``; ``None`` (default, as in the PyTorch example) does not. See :class:`BaseVAE`
            for the trade-off.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import VAE
        >>> model = VAE()
        >>> recon, mu, logvar = model(torch.rand(5, 1, 28, 28))
        >>> recon.shape, mu.shape
        (torch.Size([5, 1, 28, 28]), torch.Size([5, 20]))
    """

    def __init__(self, input_shape: Union[int, Sequence[int]] = (1, 28, 28), hidden_dim: int = 400,
                 latent_dim: int = 20, use_state: bool = True, likelihood: str = 'bernoulli', sigma: float = 0.1,
                 logvar_clamp: Optional[Tuple[float, float]] = None):
        super().__init__(input_shape, latent_dim, use_state=use_state, likelihood=likelihood, sigma=sigma,
                         logvar_clamp=logvar_clamp)
        _check_dim('hidden_dim', hidden_dim)
        self.hidden_dim = hidden_dim
        self.fc1 = nn.Linear(self.input_dim, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, latent_dim)
        self.fc22 = nn.Linear(hidden_dim, latent_dim)
        self.fc3 = nn.Linear(latent_dim, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, self.input_dim)

    def _encoder(self, x):
        hidden = torch.relu(self.fc1(x.reshape(x.shape[0], -1)))
        return self.fc21(hidden), self.fc22(hidden)

    def _decoder(self, z):
        return self.fc4(torch.relu(self.fc3(z)))


class ConvVAE(BaseVAE):
    """A convolutional reference VAE for ``(C, H, W)`` images with ``H`` and ``W`` multiples of 4.

    Encoder: two stride-2 4x4 convolutions (``C -> channels[0] -> channels[1]``, ReLU), which
    divide height and width by 4, a ``hidden_dim`` fully connected layer, then ``mu`` and
    ``logvar``. The decoder mirrors it with transposed convolutions. No batch normalisation, so
    training and evaluation compute the same function (what the likelihood estimates need).

    Same interface as :class:`VAE` (``encode``, ``decode``, ``sample``, ``forward(x, state=None)``,
    ``use_state``; see :class:`BaseVAE`). Which criterion pairs with which output:

    * ``likelihood='bernoulli'`` (default; images in ``[0, 1]``): ``decode`` returns
      probabilities; criterion ``torch.nn.BCELoss(reduction='sum')`` or, identically,
      ``model.reconstruction_loss``; PyTorch way: :func:`~torchbearer_vae.vae_loss`.
    * ``likelihood='gaussian'``: ``decode`` returns unbounded means, the standard deviation is
      the fixed ``sigma``; criterion ``model.reconstruction_loss`` (summed Gaussian negative
      log-density in nats: ``MSELoss(reduction='sum') / (2 sigma^2)`` plus a constant). PyTorch
      way: ``lambda recon, mu, logvar, x: model.reconstruction_loss(recon, x) + kld(mu, logvar)``.

    Args:
        input_shape (sequence of int): ``(C, H, W)``, e.g. ``(1, 28, 28)``, ``(3, 32, 32)``,
            ``(3, 64, 64)``.
        latent_dim (int): Dimension of ``z``.
        channels (sequence of int): Channels of the two convolutions.
        hidden_dim (int): Width of the fully connected layer between convolutions and ``z``.
        likelihood (str): ``'bernoulli'`` or ``'gaussian'``.
        sigma (float): Fixed standard deviation of the Gaussian likelihood.
        use_state (bool): As for :class:`VAE`.
        logvar_clamp (tuple of float or None): As for :class:`VAE`; default ``None``.

    Raises:
        ValueError: for a shape that is not ``(C, H, W)`` with ``H``, ``W`` multiples of 4, or
            another bad argument.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import ConvVAE
        >>> model = ConvVAE(input_shape=(3, 32, 32), latent_dim=16, likelihood='gaussian')
        >>> recon, mu, logvar = model(torch.rand(2, 3, 32, 32))
        >>> recon.shape, mu.shape
        (torch.Size([2, 3, 32, 32]), torch.Size([2, 16]))
    """

    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), latent_dim: int = 20,
                 channels: Sequence[int] = (32, 64), hidden_dim: int = 256, likelihood: str = 'bernoulli',
                 sigma: float = 0.1, use_state: bool = True, logvar_clamp: Optional[Tuple[float, float]] = None):
        if isinstance(input_shape, int) or len(tuple(input_shape)) != 3:
            raise ValueError(f'ConvVAE needs input_shape=(channels, height, width), got {input_shape!r}')
        super().__init__(input_shape, latent_dim, use_state=use_state, likelihood=likelihood, sigma=sigma,
                         logvar_clamp=logvar_clamp)
        in_channels, height, width = self.input_shape
        if height % 4 or width % 4:
            raise ValueError(f'ConvVAE needs height and width that are multiples of 4 (two stride-2 layers), '
                             f'got input_shape={self.input_shape}; crop or pad the images, e.g. 28 or 32')
        channels = tuple(channels) if not isinstance(channels, (int, str)) else ()
        if len(channels) != 2:
            raise ValueError(f'channels must be two ints (one per convolution), got {channels!r}')
        for value in channels:
            _check_dim('channels', value)
        _check_dim('hidden_dim', hidden_dim)
        self.channels, self.hidden_dim = channels, hidden_dim
        small = (channels[1], height // 4, width // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, channels[0], 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels[0], channels[1], 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(math.prod(small), hidden_dim), nn.ReLU())
        self.fc_mu = nn.Linear(hidden_dim, latent_dim)
        self.fc_logvar = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, math.prod(small)), nn.ReLU(),
            nn.Unflatten(1, small),
            nn.ConvTranspose2d(channels[1], channels[0], 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(channels[0], in_channels, 4, stride=2, padding=1))

    def _encoder(self, x):
        hidden = self.encoder(x)
        return self.fc_mu(hidden), self.fc_logvar(hidden)

    def _decoder(self, z):
        return self.decoder(z)
