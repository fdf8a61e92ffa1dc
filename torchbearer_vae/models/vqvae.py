"""VQVAE: a convolutional autoencoder whose latent map is quantized to a learned codebook (van den Oord et al. 2017).

It is not a :class:`~torchbearer_vae.BaseVAE`: its encoder gives no ``(mu, logvar)`` and it has
no ``N(0, I)`` prior to sample from, so it cannot keep that contract. It keeps the package's other
conventions: the decoder's likelihood and criterion (:func:`~torchbearer_vae.reconstruction_loss`),
``forward(x, state=None)`` both ways, and a recorded ``config`` that
:func:`~torchbearer_vae.model_from_checkpoint` rebuilds it from.
"""
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..checks import check_bool, check_choice, check_number, check_shape, describe
from ..losses import LIKELIHOODS, bernoulli_mean, reconstruction_loss
from ..state import CODEBOOK, COMMITMENT, PERPLEXITY, USED_CODES
from .quantizer import QuantizerOutput, VectorQuantizer
from .recorded import record_config

__all__ = ['VQVAE']


class VQVAE(nn.Module):
    """A VQ-VAE for ``(C, H, W)`` images: a convolutional encoder, a vector quantizer and a decoder.

    Encoder: a stride-2 4x4 convolution per entry of ``channels`` (ReLU; by default those of
    :class:`~torchbearer_vae.ConvVAE`), a 3x3 convolution and ReLU, then a 1x1 convolution to
    ``code_dim`` values per position: a map of ``latent_shape = (code_dim, H / 2**k, W / 2**k)``
    for ``k = len(channels)``. Each of its vectors is replaced by the nearest of ``num_codes``
    codes (straight-through gradients), and the decoder (a 3x3 convolution, then transposed
    convolutions, mirroring the encoder as :class:`~torchbearer_vae.SpatialVAE`'s does) decodes
    the quantized map. The codebook learns by moving averages (``update='ema'``, default) or by
    its loss term (``update='loss'``); see :class:`~torchbearer_vae.VectorQuantizer` for the
    updates, the initialisation and the restarts of unused codes.

    The loss is the reconstruction term plus the quantizer's (``commitment_weight`` times the
    commitment term, plus the codebook term for ``update='loss'``), both summed over the batch:

    * **the state way** (inside a Trial, ``use_state=True``): ``forward`` returns the
      reconstruction and stores the quantizer's unweighted per-image terms in
      ``state[COMMITMENT]`` (and ``state[CODEBOOK]`` for ``update='loss'``), its batch's
      ``state[PERPLEXITY]`` and ``state[USED_CODES]``; the criterion is ``model.reconstruction_loss``,
      the callback :func:`~torchbearer_vae.commitment_loss` adds the commitment term with its weight
      (``beta``, which may be a schedule; the model's ``commitment_weight`` is the PyTorch way's), and
      :func:`~torchbearer_vae.codebook_loss` the codebook term for ``update='loss'``. The metrics
      ``'commitment'``, ``'perplexity'`` and ``'used_codes'`` show them.
    * **the PyTorch way**: ``forward`` returns ``(recon, output)``, ``output`` the
      :class:`~torchbearer_vae.QuantizerOutput`; :meth:`loss` ``(recon, output, target)`` is the criterion.

    Args:
        input_shape (sequence of int): ``(C, H, W)``, ``H`` and ``W`` multiples of ``2 ** len(channels)``.
        num_codes (int): Codes in the codebook.
        code_dim (int): Values of a code, and of the latent map at each position.
        channels (sequence of int): Channels of the stride-2 convolutions, one per halving.
        update (str): ``'ema'`` or ``'loss'``, how the codebook learns.
        decay (float): Of the quantizer's moving averages, in ``(0, 1)``.
        commitment_weight (float): The paper's ``beta``, >= 0.
        restart_below (float): Restart codes used less than this fraction of an even share; 0 never.
        likelihood (str): ``'bernoulli'`` or ``'gaussian'``, as for :class:`~torchbearer_vae.BaseVAE`.
        sigma (float or None): The Gaussian likelihood's standard deviation; None: calibrated.
        use_state (bool): Inside a Trial, store the quantizer's term in state and return the
            reconstruction (``True``), or return ``(recon, output)`` (``False``).

    Attributes:
        latent_shape (tuple of int): ``(code_dim, H / 2**k, W / 2**k)``, the shape of a latent map.
        latent_dim (int): Its number of values, the length of a flattened latent map.
        quantizer (VectorQuantizer): The quantizer, with the codebook.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import VQVAE
        >>> model = VQVAE(input_shape=(1, 28, 28), num_codes=32, code_dim=8)
        >>> x = torch.rand(4, 1, 28, 28)
        >>> recon, output = model(x)
        >>> recon.shape, output.indices.shape, model.latent_shape
        (torch.Size([4, 1, 28, 28]), torch.Size([4, 7, 7]), (8, 7, 7))
        >>> model.loss(recon, output, x).backward()
        >>> model.decode_indices(output.indices).shape
        torch.Size([4, 1, 28, 28])
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if '__init__' in cls.__dict__:  # a subclass's arguments are recorded as BaseVAE's are
            type.__setattr__(cls, '__init__', record_config(cls.__dict__['__init__']))

    @record_config
    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), *, num_codes: int = 512, code_dim: int = 64,
                 channels: Sequence[int] = (32, 64), update: str = 'ema', decay: float = 0.99,
                 commitment_weight: float = 0.25, restart_below: float = 0.01, likelihood: str = 'bernoulli',
                 sigma: Optional[float] = 0.1, use_state: bool = True):
        super().__init__()
        self.input_shape = check_shape('input_shape', input_shape, ndim=3, example='(3, 32, 32): channels, height, '
                                                                                  'width')
        self.channels = check_shape('channels', channels, example='(32, 64): one per halving of height and width')
        self.likelihood = check_choice('likelihood', likelihood, LIKELIHOODS)
        self.sigma = check_number('sigma', sigma, above=0, allow_none=True)
        self.use_state = check_bool('use_state', use_state)
        in_channels, height, width = self.input_shape
        scale = 2 ** len(self.channels)
        if height % scale or width % scale:
            raise ValueError(f'VQVAE with {len(self.channels)} stride-2 convolutions (channels={self.channels}) '
                             f'needs height and width that are multiples of {scale}, got input_shape='
                             f'{self.input_shape}; crop or pad the images, or give fewer channels')
        self.quantizer = VectorQuantizer(num_codes, code_dim, update=update, decay=decay,
                                         commitment_weight=commitment_weight, restart_below=restart_below)
        self.latent_shape = (self.quantizer.code_dim, height // scale, width // scale)
        self.latent_dim = math.prod(self.latent_shape)
        self.input_dim = math.prod(self.input_shape)
        widths = (in_channels, *self.channels)
        down: List[nn.Module] = []
        for before, after in zip(widths, widths[1:]):
            down += [nn.Conv2d(before, after, 4, stride=2, padding=1), nn.ReLU()]
        self.encoder = nn.Sequential(*down, nn.Conv2d(widths[-1], widths[-1], 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(widths[-1], code_dim, 1))
        up: List[nn.Module] = [nn.Conv2d(code_dim, widths[-1], 3, padding=1), nn.ReLU()]
        for before, after in zip(widths[::-1], widths[-2::-1]):
            up += [nn.ConvTranspose2d(before, after, 4, stride=2, padding=1), nn.ReLU()]
        self.decoder = nn.Sequential(*up[:-1])  # no ReLU after the last: logits or means

    @property
    def config(self) -> Optional[Dict[str, Any]]:
        """The keyword arguments it was built with, recorded as :attr:`~torchbearer_vae.BaseVAE.config` is."""
        config = self.__dict__.get('_init_config')
        return dict(config) if config is not None else None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's continuous output, before quantization.

        Args:
            x (torch.Tensor): ``(B, *input_shape)`` or flat ``(B, prod(input_shape))`` images.

        Returns:
            torch.Tensor: ``(B, *latent_shape)``.

        Raises:
            TypeError: ``x`` is not a floating point tensor.
            ValueError: ``x`` does not hold images of ``input_shape``.
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f'VQVAE needs a floating point tensor of images, got {describe(x)}')
        if x.dim() < 2 or tuple(x.shape[1:]) not in (self.input_shape, (self.input_dim,)):
            raise ValueError(f'VQVAE(input_shape={self.input_shape}) got inputs of shape {tuple(x.shape)}; expected '
                             f'(batch, {", ".join(map(str, self.input_shape))}) or (batch, {self.input_dim})')
        encoded: torch.Tensor = self.encoder(x.reshape((x.shape[0],) + self.input_shape))
        return encoded

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean for latent maps, each vector first replaced by its nearest code (no update).

        Args:
            z (torch.Tensor): ``(B, *latent_shape)`` maps, or flat ``(B, latent_dim)`` (a draw of a
                prior fitted to flattened :meth:`encode` outputs, say).

        Returns:
            torch.Tensor: ``(B, *input_shape)`` images: probabilities (Bernoulli) or means (Gaussian).
        """
        return self.decode_indices(self.quantizer.nearest(z.reshape((z.shape[0],) + self.latent_shape)))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """The decoder's mean for maps of code indices, ``(B, H / 2**k, W / 2**k)``, as the quantizer gives them."""
        return self._decoded(self.quantizer.lookup(indices))

    def _decoded(self, codes: torch.Tensor) -> torch.Tensor:
        out = self.decoder(codes).reshape((codes.shape[0],) + self.input_shape)
        return bernoulli_mean(out) if self.likelihood == 'bernoulli' else out

    def reconstruction_loss(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``-log p(target|z)`` summed over the batch, in nats: :func:`~torchbearer_vae.reconstruction_loss`."""
        return reconstruction_loss(recon, target, self.likelihood, sigma=self.sigma, reduction='sum')

    def loss(self, recon: torch.Tensor, output: QuantizerOutput, target: torch.Tensor) -> torch.Tensor:
        """The criterion of the PyTorch way: the reconstruction term plus the quantizer's, summed over the batch."""
        return self.reconstruction_loss(recon, target) + output.loss.sum()

    def forward(self, x: torch.Tensor, state: Optional[dict] = None
                ) -> Union[torch.Tensor, Tuple[torch.Tensor, QuantizerOutput]]:
        """Encode, quantize (updating the codebook in training mode) and decode.

        Args:
            x (torch.Tensor): Images.
            state (dict or None): torchbearer's state, passed by the Trial.

        Returns:
            The reconstruction, shaped like ``x``, when ``state`` is given and ``use_state`` is
            true (the quantizer's terms go to state, see the class documentation); otherwise
            ``(recon, output)``, ``output`` the :class:`~torchbearer_vae.QuantizerOutput`.
        """
        output = self.quantizer(self.encode(x))
        recon = self._decoded(output.quantized).reshape(x.shape)
        if state is not None and self.use_state:
            state[COMMITMENT], state[PERPLEXITY], state[USED_CODES] = (output.commitment, output.perplexity,
                                                                       output.used_codes)
            if output.codebook is not None:
                state[CODEBOOK] = output.codebook
            return recon
        return recon, output

    def extra_repr(self) -> str:
        sigma = f', sigma={self.sigma}' if self.likelihood == 'gaussian' else ''
        return (f'input_shape={self.input_shape}, latent_shape={self.latent_shape}, '
                f'likelihood={self.likelihood!r}{sigma}, use_state={self.use_state}')
