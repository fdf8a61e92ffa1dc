"""ConditionalVAE: the multilayer perceptron VAE conditioned on a class label (Sohn et al., 2015).

The label, one-hot, is appended to the encoder's input and to ``z`` before decoding, so the
decoder models ``p(x | z, y)`` and a digit of a chosen class is drawn by decoding prior noise
with that label. Inside a Trial the labels come from ``state[torchbearer_vae.LABEL]``, which
:func:`~torchbearer_vae.load_batch_with_labels` fills from ``AutoEncoderDataset(...,
keep_labels=True)`` batches.
"""
from typing import Any, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..checks import check_int, describe
from ..errors import MissingStateError
from ..model_utils import model_device
from ..state import LABEL
from .base import BaseVAE

__all__ = ['ConditionalVAE']

Labels = Union[int, Sequence[int], torch.Tensor]


class ConditionalVAE(BaseVAE):
    """The :class:`~torchbearer_vae.VAE` with a one-hot label appended to the encoder's input and to ``z``.

    Encoder ``[x, onehot(y)] -> hidden_dim -> (mu, logvar)``, decoder ``[z, onehot(y)] ->
    hidden_dim -> x``, ReLU, as in :class:`~torchbearer_vae.VAE`. Both ways of calling it work:

    * **the state way** (in a :class:`~torchbearer.Trial`, ``use_state=True``): ``forward(x,
      state=state)`` reads the labels from ``state[LABEL]``, stores ``state[MU]``/``state[LOGVAR]``
      and returns the reconstruction; the Trial needs ``with_loader(load_batch_with_labels)``
      and ``AutoEncoderDataset(..., keep_labels=True)`` data.
    * **the PyTorch way**: ``model(x, labels)`` returns ``(recon, mu, logvar)``, for
      :func:`~torchbearer_vae.vae_loss`.

    :meth:`encode`, :meth:`decode` and :meth:`sample` take the labels too. Labels are integer
    class indices ``(B,)`` in ``[0, num_classes)``, or a float ``(B, num_classes)`` of class
    weights (a one-hot, or a mixture of two classes to interpolate between them); one int
    labels every image. The pictures use them: :class:`~torchbearer_vae.SampleSaver` draws one row
    per class with the same noise in each column, and the pictures that encode inputs read the
    labels collected with them.

    **How strongly the label conditions.** With a small latent (``latent_dim=2`` on MNIST) the
    digit drawn is the digit asked for; with a roomy one (8 or 20 dimensions) the encoder can
    put the class into ``z`` as well and the decoder learns to read it from there, so prior
    samples follow the label less often. See the page "The latent space and conditional VAEs" of
    the documentation for the measurements and what helps.

    Args:
        input_shape (int or sequence of int): Shape of one input, e.g. ``(1, 28, 28)``.
        num_classes (int): Number of classes, >= 2 (10 for digits).
        latent_dim (int): Dimension of ``z``.
        hidden_dim (int): Width of the hidden layer of encoder and decoder.
        likelihood (str): ``'bernoulli'`` or ``'gaussian'``.
        sigma (float or None): Standard deviation of the Gaussian likelihood; None: calibrated
            (:class:`BaseVAE`).
        use_state (bool): Inside a Trial, the state way (True) or ``(recon, mu, logvar)`` (False).
        logvar_clamp (tuple of float or None): As for :class:`~torchbearer_vae.VAE`.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import ConditionalVAE
        >>> model = ConditionalVAE(num_classes=10, latent_dim=2)
        >>> recon, mu, logvar = model(torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]))
        >>> recon.shape, mu.shape
        (torch.Size([4, 1, 28, 28]), torch.Size([4, 2]))
        >>> model.sample(6, labels=7).shape  # six sevens
        torch.Size([6, 1, 28, 28])
    """

    def __init__(self, input_shape: Union[int, Sequence[int]] = (1, 28, 28), *, num_classes: int = 10,
                 latent_dim: int = 20, hidden_dim: int = 400, likelihood: str = 'bernoulli',
                 sigma: Optional[float] = 0.1, use_state: bool = True,
                 logvar_clamp: Optional[Tuple[float, float]] = None):
        super().__init__(input_shape, latent_dim, use_state=use_state, likelihood=likelihood, sigma=sigma,
                         logvar_clamp=logvar_clamp)
        self.num_classes = check_int('num_classes', num_classes, minimum=2)
        self.hidden_dim = check_int('hidden_dim', hidden_dim, minimum=1)
        self.fc1 = nn.Linear(self.input_dim + num_classes, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, latent_dim)
        self.fc22 = nn.Linear(hidden_dim, latent_dim)
        self.fc3 = nn.Linear(latent_dim + num_classes, hidden_dim)
        self.fc4 = nn.Linear(hidden_dim, self.input_dim)

    # -- the two networks, given the labels --
    def forward_encoder(self, x: torch.Tensor, labels: Optional[Labels] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """The encoder: ``(mu, logvar)`` of images ``x`` ``(B, *input_shape)`` and their labels (:meth:`one_hot`)."""
        onehot = self.one_hot(labels, x.shape[0])
        hidden = torch.relu(self.fc1(torch.cat([x.reshape(x.shape[0], -1), onehot], dim=1)))
        return self.fc21(hidden), self.fc22(hidden)

    def forward_decoder(self, z: torch.Tensor, labels: Optional[Labels] = None) -> torch.Tensor:
        """The decoder: pre-activations ``(B, prod(input_shape))`` for codes ``z`` and their labels."""
        decoded: torch.Tensor = self.fc4(torch.relu(self.fc3(torch.cat([z, self.one_hot(labels, z.shape[0])], dim=1))))
        return decoded

    def one_hot(self, labels: Optional[Labels], batch: int) -> torch.Tensor:
        """The labels of a batch of ``batch`` as the float ``(batch, num_classes)`` the networks take.

        Args:
            labels (int, sequence of int or torch.Tensor): Class indices ``(batch,)`` (or one int for
                all), or float class weights ``(batch, num_classes)``, used as they are.
            batch (int): The batch size the labels must match.

        Returns:
            torch.Tensor: On the model's device, in its dtype.

        Raises:
            MissingStateError: for ``labels=None``, saying how to give them.
            ValueError, TypeError: for labels of another batch size, shape or type, or out of range.
        """
        device, dtype = model_device(self), next(self.parameters()).dtype
        if labels is None:
            raise MissingStateError(f'{type(self).__name__} needs the class labels: pass labels= (PyTorch way: '
                                    f'model(x, labels)), or in a Trial use AutoEncoderDataset(..., keep_labels=True) '
                                    f'and trial.with_loader(load_batch_with_labels), which fill state[LABEL]')
        if isinstance(labels, bool) or not isinstance(labels, (int, list, tuple, torch.Tensor)):
            raise TypeError(f'labels must be class indices (an int, a sequence or a tensor of ints) or float class '
                            f'weights (batch, {self.num_classes}), got {describe(labels)}')
        labels = torch.as_tensor(labels, device=device)
        if labels.is_floating_point():
            if tuple(labels.shape) != (batch, self.num_classes):
                raise ValueError(f'float labels must be class weights of shape ({batch}, {self.num_classes}), got '
                                 f'{describe(labels)}')
            return labels.to(dtype)
        if labels.dim() == 0:
            labels = labels.expand(batch)
        if labels.dim() != 1 or labels.shape[0] != batch:
            raise ValueError(f'labels must hold one class index per image ({batch}), got {describe(labels)}')
        if batch and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f'labels must be class indices in [0, {self.num_classes}) (num_classes='
                             f'{self.num_classes}), got values from {int(labels.min())} to {int(labels.max())}')
        return nn.functional.one_hot(labels.long(), self.num_classes).to(dtype)

    # -- the interface of BaseVAE, with labels --
    def encode(self, x: torch.Tensor, labels: Optional[Labels] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """The posterior parameters ``(mu, logvar)`` of images with their labels (see :meth:`BaseVAE.encode`)."""
        return super().encode(x, labels)

    def decode(self, z: torch.Tensor, labels: Optional[Labels] = None) -> torch.Tensor:
        """The decoder's mean ``(B, *input_shape)`` for codes ``z`` ``(B, latent_dim)`` and their labels."""
        return super().decode(z, labels)

    # BaseVAE's *inputs are whatever extra inputs a subclass's networks take; here they are exactly the labels,
    # a narrower signature than the base's that mypy reports as an incompatible override.
    def sample(  # type: ignore[override]
            self, num_images: int, labels: Optional[Labels] = None, *, device: Optional[torch.device] = None,
            generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Decode ``num_images`` draws from the prior ``N(0, I)`` with the given labels.

        Args:
            num_images (int): How many images.
            labels (int, sequence of int, torch.Tensor or None): The class of each image, or one
                for all; None: the classes in turn (``0, 1, ..., num_classes - 1, 0, ...``).
            device (torch.device or None): Where to decode; default, the model's device.
            generator (torch.Generator or None): For reproducible draws (on its own device).

        Returns:
            torch.Tensor: ``(num_images, *input_shape)`` images.
        """
        if labels is None:
            labels = torch.arange(check_int('num_images', num_images, minimum=1)) % self.num_classes
        return super().sample(num_images, labels, device=device, generator=generator)

    def forward(  # type: ignore[override]  # labels are BaseVAE's *inputs, as for sample
            self, x: torch.Tensor, labels: Optional[Labels] = None, *, state: Optional[dict] = None) -> Any:
        """Encode with the labels, draw ``z`` and decode with them.

        Args:
            x (torch.Tensor): Inputs.
            labels: The class of each input; default, ``state[LABEL]`` when ``state`` is given.
            state (dict or None): torchbearer's state, passed by the Trial.

        Returns:
            The reconstruction when ``state`` is given and ``use_state`` is true (``mu`` and
            ``logvar`` go to ``state[MU]``/``state[LOGVAR]``); otherwise ``(recon, mu, logvar)``.
        """
        if labels is None and state is not None:
            labels = state.get(LABEL)
        return super().forward(x, labels, state=state)

    def extra_repr(self) -> str:
        return f'num_classes={self.num_classes}, {super().extra_repr()}'
