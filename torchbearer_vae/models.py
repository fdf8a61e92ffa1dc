"""The reference VAE: the multilayer perceptron of the PyTorch VAE example."""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .state import LOGVAR, MU

__all__ = ['VAE']


class VAE(nn.Module):
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
    ``(B, C*H*W)``), so the target can be the input itself.

    Args:
        input_shape (int or sequence of int): Shape of one input, e.g. ``(1, 28, 28)`` or ``784``.
        hidden_dim (int): Width of the hidden layer of encoder and decoder.
        latent_dim (int): Dimension of the latent code ``z``.
        use_state (bool): Inside a Trial, store ``mu``/``logvar`` in state and return the
            reconstruction (``True``), or return ``(recon, mu, logvar)`` (``False``).

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import VAE
        >>> model = VAE()
        >>> recon, mu, logvar = model(torch.rand(5, 1, 28, 28))
        >>> recon.shape, mu.shape
        (torch.Size([5, 1, 28, 28]), torch.Size([5, 20]))
    """

    def __init__(self, input_shape: Union[int, Sequence[int]] = (1, 28, 28), hidden_dim: int = 400,
                 latent_dim: int = 20, use_state: bool = True):
        super().__init__()
        shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
        if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
            raise ValueError(f'input_shape must be a positive int or a sequence of them, got {input_shape!r}')
        for name, value in (('hidden_dim', hidden_dim), ('latent_dim', latent_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f'{name} must be an int >= 1, got {value!r}')
        self.input_shape, self.hidden_dim, self.latent_dim = shape, hidden_dim, latent_dim
        self.use_state = use_state
        self.input_dim = math.prod(shape)
        self.fc1 = nn.Linear(self.input_dim, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, latent_dim)
        self.fc22 = nn.Linear(hidden_dim, latent_dim)
        self.fc3 = nn.Linear(latent_dim, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, self.input_dim)

    def encode(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The posterior parameters of a batch.

        Args:
            x (torch.Tensor): Inputs, ``(B, *input_shape)`` or ``(B, input_dim)``.

        Returns:
            tuple: ``(mu, logvar)``, each ``(B, latent_dim)``.
        """
        if x.dim() < 2 or x[0].numel() != self.input_dim:
            raise ValueError(f'VAE(input_shape={self.input_shape}) got inputs of shape {tuple(x.shape)}; '
                             f'expected (batch, {", ".join(map(str, self.input_shape))}) or (batch, {self.input_dim})')
        hidden = torch.relu(self.fc1(x.reshape(x.shape[0], -1)))
        return self.fc21(hidden), self.fc22(hidden)

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
        """Bernoulli means (pixel intensities in ``[0, 1]``) for latent codes.

        Args:
            z (torch.Tensor): ``(B, latent_dim)`` codes.

        Returns:
            torch.Tensor: ``(B, *input_shape)`` images.
        """
        hidden = torch.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(hidden)).view((z.shape[0],) + self.input_shape)

    @torch.no_grad()
    def sample(self, n: int, device: Optional[torch.device] = None,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Decode ``n`` draws from the prior ``N(0, I)``.

        Args:
            n (int): How many images.
            device (torch.device or None): Where to draw; default, the model's device.
            generator (torch.Generator or None): For reproducible draws.

        Returns:
            torch.Tensor: ``(n, *input_shape)`` images in ``[0, 1]``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f'n must be an int >= 1, got {n!r}')
        device = device if device is not None else self.fc1.weight.device
        z = torch.randn(n, self.latent_dim, device=device, generator=generator)
        return self.decode(z)

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
        recon = self.decode(self.reparameterize(mu, logvar)).view(x.shape)
        if state is not None and self.use_state:
            state[MU], state[LOGVAR] = mu, logvar
            return recon
        return recon, mu, logvar

    def extra_repr(self) -> str:
        return f'input_shape={self.input_shape}, latent_dim={self.latent_dim}, use_state={self.use_state}'
