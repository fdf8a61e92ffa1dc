"""Reference VAEs: the PyTorch example's multilayer perceptron, a convolutional one, a fully convolutional one.

Each is a :class:`~torchbearer_vae.BaseVAE` subclass that supplies only its two networks
(:meth:`~torchbearer_vae.BaseVAE.forward_encoder`, :meth:`~torchbearer_vae.BaseVAE.forward_decoder`);
a user's own VAE is written the same way (see the "Extending" page of the documentation).
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..checks import check_int, check_shape
from .base import BaseVAE

__all__ = ['VAE', 'ConvVAE', 'SpatialVAE']


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
        latent_dim (int): Dimension of the latent code ``z``.
        hidden_dim (int): Width of the hidden layer of encoder and decoder.
        use_state (bool): Inside a Trial, store ``mu``/``logvar`` in state and return the
            reconstruction (``True``), or return ``(recon, mu, logvar)`` (``False``).
        likelihood (str): ``'bernoulli'`` (the example's sigmoid output) or ``'gaussian'``.
        sigma (float or None): Standard deviation of the Gaussian likelihood; None: calibrated
            (:class:`BaseVAE`).
        logvar_clamp (tuple of float or None): Clamp ``logvar`` to ``(low, high)``, e.g.
            ``(-30, 20)``; ``None`` (default, as in the PyTorch example) does not. See :class:`BaseVAE`
            for the trade-off.

    Every argument after ``input_shape`` is keyword-only (``VAE((1, 28, 28), latent_dim=2)``).

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import VAE
        >>> model = VAE()
        >>> recon, mu, logvar = model(torch.rand(5, 1, 28, 28))
        >>> recon.shape, mu.shape
        (torch.Size([5, 1, 28, 28]), torch.Size([5, 20]))
    """

    def __init__(self, input_shape: Union[int, Sequence[int]] = (1, 28, 28), *, latent_dim: int = 20,
                 hidden_dim: int = 400, likelihood: str = 'bernoulli', sigma: Optional[float] = 0.1,
                 use_state: bool = True, logvar_clamp: Optional[Tuple[float, float]] = None):
        super().__init__(input_shape, latent_dim, use_state=use_state, likelihood=likelihood, sigma=sigma,
                         logvar_clamp=logvar_clamp)
        self.hidden_dim = check_int('hidden_dim', hidden_dim, minimum=1)
        self.fc1 = nn.Linear(self.input_dim, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, latent_dim)
        self.fc22 = nn.Linear(hidden_dim, latent_dim)
        self.fc3 = nn.Linear(latent_dim, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, self.input_dim)

    def forward_encoder(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        hidden = torch.relu(self.fc1(x.reshape(x.shape[0], -1)))
        return self.fc21(hidden), self.fc22(hidden)

    def forward_decoder(self, z: torch.Tensor) -> torch.Tensor:
        decoded: torch.Tensor = self.fc4(torch.relu(self.fc3(z)))
        return decoded


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
      ``sigma`` (None: the batch's optimal one, calibrated); criterion
      ``model.reconstruction_loss`` (summed Gaussian negative log-density in nats:
      ``MSELoss(reduction='sum') / (2 sigma^2)`` plus a constant). PyTorch way:
      ``lambda recon, mu, logvar, x: model.reconstruction_loss(recon, x) + kld(mu, logvar)``.

    Args:
        input_shape (sequence of int): ``(C, H, W)``, e.g. ``(1, 28, 28)``, ``(3, 32, 32)``,
            ``(3, 64, 64)``.
        latent_dim (int): Dimension of ``z``.
        hidden_dim (int): Width of the fully connected layer between convolutions and ``z``.
        channels (sequence of int): Channels of the two convolutions.
        likelihood (str): ``'bernoulli'`` or ``'gaussian'``.
        sigma (float or None): Standard deviation of the Gaussian likelihood; None: calibrated
            (:class:`BaseVAE`).
        use_state (bool): As for :class:`VAE`.
        logvar_clamp (tuple of float or None): As for :class:`VAE`; default ``None``.

    As for :class:`VAE`, the arguments after ``input_shape`` are keyword-only.

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

    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), *, latent_dim: int = 20, hidden_dim: int = 256,
                 channels: Sequence[int] = (32, 64), likelihood: str = 'bernoulli', sigma: Optional[float] = 0.1,
                 use_state: bool = True, logvar_clamp: Optional[Tuple[float, float]] = None):
        check_shape('input_shape', input_shape, ndim=3, example='(3, 32, 32): channels, height, width')
        super().__init__(input_shape, latent_dim, use_state=use_state, likelihood=likelihood, sigma=sigma,
                         logvar_clamp=logvar_clamp)
        in_channels, height, width = self.input_shape
        if width in (1, 3, 4) and in_channels not in (1, 3, 4):
            raise ValueError(f'ConvVAE needs input_shape=(channels, height, width), got {self.input_shape}, which '
                             f'looks channels-last: pass ({width}, {in_channels}, {height})')
        if height % 4 or width % 4:
            raise ValueError(f'ConvVAE needs height and width that are multiples of 4 (two stride-2 layers), '
                             f'got input_shape={self.input_shape}; crop or pad the images, e.g. 28 or 32')
        channels = check_shape('channels', channels, ndim=2, example='(32, 64): one per convolution')
        self.channels, self.hidden_dim = channels, check_int('hidden_dim', hidden_dim, minimum=1)
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

    def forward_encoder(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(x)
        return self.fc_mu(hidden), self.fc_logvar(hidden)

    def forward_decoder(self, z: torch.Tensor) -> torch.Tensor:
        decoded: torch.Tensor = self.decoder(z)
        return decoded


class SpatialVAE(BaseVAE):
    """A fully convolutional VAE whose latent code is a map: ``latent_channels`` values at each position.

    Where :class:`ConvVAE` squeezes an image through fully connected layers into one vector,
    this model keeps where things are: ``z`` is a ``(latent_channels, H / 2**k, W / 2**k)`` map
    for ``k = len(channels)`` stride-2 convolutions (as the latent diffusion autoencoder's is),
    handed to the rest of the package flattened, so ``latent_dim`` is its number of values and
    :func:`~torchbearer_vae.kld_loss`, the samplers and the charts work unchanged. Each
    position encodes its own neighbourhood, so reconstructions are far sharper than a vector
    code's, even from a few hundred images; samples from the ``N(0, I)`` prior are textures with
    the images' colours rather than whole pictures (nothing ties distant positions together).

    Encoder: a stride-2 4x4 convolution per entry of ``channels`` (ReLU; by default those of
    :class:`ConvVAE`), a 3x3 convolution, then a 1x1 convolution to ``mu`` and ``logvar``. The
    decoder mirrors it with a 3x3 convolution and transposed convolutions. No batch
    normalisation, as in :class:`ConvVAE`.

    Same interface as :class:`VAE` (see :class:`BaseVAE` for the likelihoods and criteria).

    Args:
        input_shape (sequence of int): ``(C, H, W)``, ``H`` and ``W`` multiples of
            ``2 ** len(channels)``, e.g. ``(3, 32, 32)``.
        latent_channels (int): Values of ``z`` at each position of the latent map.
        channels (sequence of int): Channels of the stride-2 convolutions, one per halving of
            height and width: ``(32, 64)`` (default) gives a map of a quarter of the images'
            height and width, ``(64,)`` a half (four times the values: sharper reconstructions,
            noisier samples).
        likelihood (str): ``'bernoulli'`` or ``'gaussian'``.
        sigma (float or None): Standard deviation of the Gaussian likelihood; None: calibrated
            (:class:`BaseVAE`).
        use_state (bool): As for :class:`VAE`.
        logvar_clamp (tuple of float or None): As for :class:`VAE`; default ``None``.

    The arguments after ``input_shape`` are keyword-only.

    Attributes:
        latent_shape (tuple of int): ``(latent_channels, H / 2**k, W / 2**k)``, the shape of
            ``z`` before it is flattened into ``latent_dim`` values.

    Raises:
        ValueError: for a shape that is not ``(C, H, W)`` with ``H``, ``W`` multiples of
            ``2 ** len(channels)``, or another bad argument.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import SpatialVAE
        >>> model = SpatialVAE(input_shape=(3, 32, 32), latent_channels=4, likelihood='gaussian')
        >>> model.latent_shape, model.latent_dim
        ((4, 8, 8), 256)
        >>> recon, mu, logvar = model(torch.rand(2, 3, 32, 32))
        >>> recon.shape, mu.shape
        (torch.Size([2, 3, 32, 32]), torch.Size([2, 256]))
    """

    def __init__(self, input_shape: Sequence[int] = (3, 32, 32), *, latent_channels: int = 4,
                 channels: Sequence[int] = (32, 64), likelihood: str = 'bernoulli', sigma: Optional[float] = 0.1,
                 use_state: bool = True, logvar_clamp: Optional[Tuple[float, float]] = None):
        input_shape = check_shape('input_shape', input_shape, ndim=3, example='(3, 32, 32): channels, height, width')
        latent_channels = check_int('latent_channels', latent_channels, minimum=1)
        channels = check_shape('channels', channels, example='(32, 64): one per halving of height and width')
        in_channels, height, width = input_shape
        scale = 2 ** len(channels)
        if width in (1, 3, 4) and in_channels not in (1, 3, 4):
            raise ValueError(f'SpatialVAE needs input_shape=(channels, height, width), got {input_shape}, which '
                             f'looks channels-last: pass ({width}, {in_channels}, {height})')
        if height % scale or width % scale:
            raise ValueError(f'SpatialVAE with {len(channels)} stride-2 convolutions (channels={channels}) needs '
                             f'height and width that are multiples of {scale}, got input_shape={input_shape}; '
                             f'crop or pad the images, or give fewer channels')
        latent_shape = (latent_channels, height // scale, width // scale)
        super().__init__(input_shape, math.prod(latent_shape), use_state=use_state, likelihood=likelihood,
                         sigma=sigma, logvar_clamp=logvar_clamp)
        self.latent_shape, self.latent_channels, self.channels = latent_shape, latent_channels, channels
        widths = (in_channels, *channels)
        down: List[nn.Module] = []
        for before, after in zip(widths, widths[1:]):
            down += [nn.Conv2d(before, after, 4, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(*down, nn.Conv2d(channels[-1], channels[-1], 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(channels[-1], 2 * latent_channels, 1))
        up: List[nn.Module] = [nn.Conv2d(latent_channels, channels[-1], 3, padding=1), nn.ReLU()]
        for before, after in zip(widths[::-1], widths[-2::-1]):
            up += [nn.ConvTranspose2d(before, after, 4, stride=2, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(*up[:-1])  # no ReLU after the last: logits or means

    def forward_encoder(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu.flatten(1), logvar.flatten(1)

    def forward_decoder(self, z: torch.Tensor) -> torch.Tensor:
        decoded: torch.Tensor = self.decoder(z.unflatten(1, self.latent_shape))
        return decoded
