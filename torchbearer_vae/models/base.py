"""BaseVAE: what every VAE here shares, and what a user's own VAE subclasses.

A subclass supplies two networks through the public hooks :meth:`BaseVAE.forward_encoder` and
:meth:`BaseVAE.forward_decoder`; everything else (both ways of calling ``forward``, the
reparameterisation, sampling, the decoder's likelihood and the configuration a checkpoint
needs to rebuild it) comes from the base.
"""
import math
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..checks import check_bool, check_choice, check_int, check_number, check_range, check_shape, describe
from ..losses import LIKELIHOODS, bernoulli_mean, reconstruction_loss
from ..model_utils import model_device
from ..state import LOGVAR, MU
from .recorded import record_config

__all__ = ['BaseVAE']


class BaseVAE(nn.Module):
    r"""The parts every VAE here shares; a subclass supplies only the two networks.

    A subclass implements two public hooks:

    * :meth:`forward_encoder` ``(x)``: ``x`` shaped ``(B, *input_shape)``; returns
      ``(mu, logvar)``, each ``(B, latent_dim)``;
    * :meth:`forward_decoder` ``(z)``: returns ``(B, ...)`` pre-activations with
      ``prod(input_shape)`` values per image (logits for Bernoulli, means for Gaussian).

    It then gets:

    * ``forward(x, state=None)`` both ways: with a torchbearer ``state`` and ``use_state=True``
      it stores ``state[MU]``/``state[LOGVAR]`` and returns the reconstruction (the state way);
      otherwise it returns ``(recon, mu, logvar)`` (the PyTorch way);
    * :meth:`encode` (which checks the input's shape), :meth:`reparameterize`, :meth:`decode`
      (the decoder's mean), :meth:`sample`;
    * the decoder's likelihood: :meth:`log_likelihood` ``log p(x|z)`` per image, and
      :meth:`reconstruction_loss`, its negative summed over a batch, the criterion that pairs with
      :func:`~torchbearer_vae.kld_loss`; both are :func:`~torchbearer_vae.reconstruction_loss`;
    * :attr:`config`: the keyword arguments the model was built with, recorded without the
      subclass writing anything, which :func:`~torchbearer_vae.save_checkpoint` stores so that
      :func:`~torchbearer_vae.model_from_checkpoint` can rebuild the model.

    The likelihood is ``'bernoulli'`` (``decode`` returns probabilities,
    :func:`~torchbearer_vae.bernoulli_mean` of the decoder's logits; ``reconstruction_loss``
    equals ``BCELoss(reduction='sum')``, computed from the logits) or ``'gaussian'`` with the
    standard deviation ``sigma`` (``decode`` returns the mean, unbounded;
    ``reconstruction_loss`` is ``MSELoss(reduction='sum') / (2 sigma^2)`` plus the constant
    ``D/2 log(2 pi sigma^2)`` per image, so that it is a true negative log-density in nats).
    ``sigma=None`` makes the decoder *calibrated*: ``sigma`` is the batch's optimal one, its root
    mean squared error, at least ``torchbearer_vae.losses.MIN_SIGMA`` (see
    :func:`~torchbearer_vae.reconstruction_loss`; the command line's ``--sigma calibrated``). There
    is no per-pixel learned variance on purpose: on data with many exact values (MNIST's black
    background) it shrinks towards zero and the density grows without bound.

    Args:
        input_shape (int or sequence of int): Shape of one input, e.g. ``(1, 28, 28)`` or ``784``.
        latent_dim (int): Dimension of the latent code ``z``.
        use_state (bool): Inside a Trial, store ``mu``/``logvar`` in state and return the
            reconstruction (``True``), or return ``(recon, mu, logvar)`` (``False``).
        likelihood (str): ``'bernoulli'`` or ``'gaussian'``.
        sigma (float or None): Standard deviation of the Gaussian likelihood, or None for the
            calibrated one (ignored for Bernoulli).
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
    the unclamped one. The default is ``None``, so :class:`~torchbearer_vae.VAE` stays the
    PyTorch example's model; a run that hits inf/NaN (see :class:`~torchbearer_vae.NaNGuard`)
    or trains in float16 should turn it on.

    Example: ::

        >>> import torch
        >>> from torch import nn
        >>> from torchbearer_vae import BaseVAE
        >>> class TinyVAE(BaseVAE):
        ...     def __init__(self, input_shape=(1, 4, 4), latent_dim=2, *, hidden_dim=8):
        ...         super().__init__(input_shape, latent_dim)
        ...         self.enc = nn.Sequential(nn.Flatten(), nn.Linear(16, hidden_dim), nn.ReLU(),
        ...                                  nn.Linear(hidden_dim, 2 * latent_dim))
        ...         self.dec = nn.Linear(latent_dim, 16)
        ...     def forward_encoder(self, x):
        ...         return self.enc(x).chunk(2, dim=1)
        ...     def forward_decoder(self, z):
        ...         return self.dec(z)
        >>> model = TinyVAE(hidden_dim=6)
        >>> model.sample(num_images=3).shape
        torch.Size([3, 1, 4, 4])
        >>> model.config
        {'input_shape': (1, 4, 4), 'latent_dim': 2, 'hidden_dim': 6}
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if '__init__' in cls.__dict__:
            # type.__setattr__: replacing a method is what this hook is for, which mypy refuses as an assignment
            type.__setattr__(cls, '__init__', record_config(cls.__dict__['__init__']))

    def __init__(self, input_shape: Union[int, Sequence[int]], latent_dim: int, *, use_state: bool = True,
                 likelihood: str = 'bernoulli', sigma: Optional[float] = 0.1,
                 logvar_clamp: Optional[Tuple[float, float]] = None):
        super().__init__()
        self.input_shape = check_shape('input_shape', input_shape)
        self.latent_dim = check_int('latent_dim', latent_dim, minimum=1)
        self.use_state = check_bool('use_state', use_state)
        self.likelihood = check_choice('likelihood', likelihood, LIKELIHOODS)
        self.sigma = check_number('sigma', sigma, above=0, allow_none=True)
        self.logvar_clamp = None if logvar_clamp is None else check_range('logvar_clamp', logvar_clamp)
        self.input_dim = math.prod(self.input_shape)

    @property
    def config(self) -> Optional[Dict[str, Any]]:
        """The keyword arguments this model was built with, so ``type(model)(**model.config)`` builds the same network.

        Recorded by the base when the model is built, defaults included, for every subclass
        without it writing anything. :func:`~torchbearer_vae.save_checkpoint` stores it (it must
        then hold plain values: numbers, strings, bools, ``None`` and lists/tuples/dicts of
        them). A subclass built from other things (a network passed in, say) may override this
        property to return the plain values that rebuild it, or ``None`` (not rebuildable).
        """
        config = self.__dict__.get('_init_config')
        return dict(config) if config is not None else None

    # -- what a subclass provides --
    def forward_encoder(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The encoder network: the posterior parameters of a batch. A subclass implements it.

        Args:
            x (torch.Tensor): Inputs, ``(B, *input_shape)`` (:meth:`encode` has checked and
                reshaped them).

        Returns:
            tuple: ``(mu, logvar)``, each ``(B, latent_dim)``.
        """
        raise NotImplementedError(f'{type(self).__name__} must implement forward_encoder(x) -> (mu, logvar)')

    def forward_decoder(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder network: pre-activations for latent codes. A subclass implements it.

        Args:
            z (torch.Tensor): ``(B, latent_dim)`` codes.

        Returns:
            torch.Tensor: ``(B, ...)`` with ``prod(input_shape)`` values per image: logits
            (Bernoulli; :meth:`decode` applies the sigmoid, :func:`~torchbearer_vae.bernoulli_mean`)
            or means (Gaussian).
        """
        raise NotImplementedError(f'{type(self).__name__} must implement forward_decoder(z) -> pre-activations')

    # -- the shared interface --
    def _check_images(self, x: torch.Tensor) -> None:
        """Refuse a batch whose images are not ``input_shape`` (or flat, or without its size-1 axes).

        Counting values is not enough: a channels-last ``(B, 32, 32, 3)`` batch has the values of
        ``(B, 3, 32, 32)``, and reshaping it would scramble every image.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f'{type(self).__name__} needs a torch tensor of images, got {describe(x)}; convert it '
                            f'with torch.as_tensor(x)')
        if not x.is_floating_point():
            raise TypeError(f'{type(self).__name__} needs floating point images, got {x.dtype}; convert uint8 '
                            f'images with x.float() / 255 (TensorLoader does it for you)')
        shape = tuple(x.shape[1:]) if x.dim() >= 2 else None
        squeezed = tuple(d for d in self.input_shape if d != 1)
        if shape is not None and (shape in (self.input_shape, (self.input_dim,))
                                  or tuple(d for d in shape if d != 1) == squeezed):
            return
        got = tuple(x.shape)
        hint = ''
        if shape is not None and len(shape) == 3 and (shape[2],) + shape[:2] == self.input_shape:
            hint = '; the images look channels-last: permute them with x.permute(0, 3, 1, 2)'
        raise ValueError(f'{type(self).__name__}(input_shape={self.input_shape}) got inputs of shape {got}; expected '
                         f'(batch, {", ".join(map(str, self.input_shape))}) or (batch, {self.input_dim}){hint}')

    def encode(self, x: torch.Tensor, *inputs: Any) -> Tuple[torch.Tensor, torch.Tensor]:
        """The posterior parameters of a batch.

        Args:
            x (torch.Tensor): Inputs, ``(B, *input_shape)`` or flat ``(B, prod(input_shape))``.
            *inputs: More inputs of the encoder, passed to :meth:`forward_encoder` after ``x``
                (none for an unconditional VAE; the one-hot labels for a conditional one).

        Returns:
            tuple: ``(mu, logvar)``, each ``(B, latent_dim)``; ``logvar`` clamped to ``logvar_clamp`` if set.

        Raises:
            ValueError: for inputs of another shape (naming both), e.g. channels-last images.
            TypeError: for inputs that are not a floating point tensor (uint8 images, numpy arrays).
        """
        self._check_images(x)
        mu, logvar = self.forward_encoder(x.reshape((x.shape[0],) + self.input_shape), *inputs)
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

    def decode(self, z: torch.Tensor, *inputs: Any) -> torch.Tensor:
        """The decoder's mean for latent codes: probabilities (Bernoulli) or Gaussian means.

        Bernoulli probabilities are :func:`~torchbearer_vae.bernoulli_mean` of the logits, which
        :meth:`reconstruction_loss` scores from the logits (exact and faster).

        Args:
            z (torch.Tensor): ``(B, latent_dim)`` codes.
            *inputs: More inputs of the decoder, passed to :meth:`forward_decoder` after ``z``.

        Returns:
            torch.Tensor: ``(B, *input_shape)`` images.
        """
        out = self.forward_decoder(z, *inputs).reshape((z.shape[0],) + self.input_shape)
        return bernoulli_mean(out) if self.likelihood == 'bernoulli' else out

    @torch.no_grad()
    def sample(self, num_images: int, *inputs: Any, device: Optional[torch.device] = None,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Decode ``num_images`` draws from the prior ``N(0, I)`` (the decoder's mean, no pixel noise).

        Args:
            num_images (int): How many images.
            *inputs: More inputs of the decoder, as for :meth:`decode`.
            device (torch.device or None): Where to decode; default, the model's device.
            generator (torch.Generator or None): For reproducible draws (on its own device).

        Returns:
            torch.Tensor: ``(num_images, *input_shape)`` images.
        """
        return self.decode(self._prior_draws(num_images, device, generator), *inputs)

    def _prior_draws(self, num_images: int, device: Optional[torch.device],
                     generator: Optional[torch.Generator]) -> torch.Tensor:
        """``(num_images, latent_dim)`` draws of ``N(0, I)``, made on the generator's device, on ``device``."""
        check_int('num_images', num_images, minimum=1)
        on = device if device is not None else model_device(self)
        noise_device = generator.device if generator is not None else on
        return torch.randn(num_images, self.latent_dim, device=noise_device, generator=generator).to(on)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, *inputs: Any) -> torch.Tensor:
        """``log p(x|z)`` per image, in nats, under the decoder's likelihood.

        Args:
            x (torch.Tensor): ``(B, *input_shape)`` or flat ``(B, prod(input_shape))`` images.
            z (torch.Tensor): ``(B, latent_dim)`` codes, one per image.
            *inputs: More inputs of the decoder, as for :meth:`decode`.

        Returns:
            torch.Tensor: ``(B,)`` log-likelihoods.
        """
        return -reconstruction_loss(self.decode(z, *inputs), x, self.likelihood, sigma=self.sigma, reduction='none')

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
        return reconstruction_loss(recon, target, self.likelihood, sigma=self.sigma, reduction='sum')

    def forward(self, x: torch.Tensor, *inputs: Any, state: Optional[dict] = None) -> Any:
        """Encode, draw ``z`` and decode.

        Args:
            x (torch.Tensor): Inputs.
            *inputs: More inputs of both networks, given to :meth:`encode` and :meth:`decode`.
            state (dict or None): torchbearer's state, passed by the Trial.

        Returns:
            The reconstruction, shaped like ``x``, when ``state`` is given and ``use_state`` is
            true (``mu`` and ``logvar`` go to ``state[MU]``/``state[LOGVAR]``); otherwise
            ``(recon, mu, logvar)``.
        """
        mu, logvar = self.encode(x, *inputs)
        recon = self.decode(self.reparameterize(mu, logvar), *inputs).reshape(x.shape)
        if state is not None and self.use_state:
            state[MU], state[LOGVAR] = mu, logvar
            return recon
        return recon, mu, logvar

    def extra_repr(self) -> str:
        sigma = f', sigma={self.sigma}' if self.likelihood == 'gaussian' else ''
        clamp = f', logvar_clamp={self.logvar_clamp}' if self.logvar_clamp is not None else ''
        return (f'input_shape={self.input_shape}, latent_dim={self.latent_dim}, '
                f'likelihood={self.likelihood!r}{sigma}{clamp}, use_state={self.use_state}')
