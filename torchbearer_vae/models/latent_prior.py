"""A prior fitted to a trained autoencoder's latent codes, to draw samples from where its decoder has learned to decode.

A VAE's decoder is trained on the codes its encoder gives, which need not fill ``N(0, I)``; a
plain autoencoder has no prior at all, and a VQ-VAE's codes are discrete. After training,
:func:`fit_latent_prior` fits a density to the codes of the training data (Ghosh et al. 2020,
"From Variational to Deterministic Autoencoders", *ex-post density estimation*): a
:class:`~torchbearer_vae.GaussianMixture` over the posterior means of a VAE or the codes of a
plain or denoising autoencoder, and a :class:`CategoricalPrior` over a VQ-VAE's code indices.
Either draws ``(n, latent_dim)`` codes that ``model.decode`` turns into images, as
:class:`~torchbearer_vae.SampleSaver` (``prior=``) does, and saves as a weights-only dict.
"""
import math
from typing import Any, Dict, Optional, Sequence, Union

import torch

from ..checks import check_int, check_number, check_shape, describe
from ..errors import CheckpointError
from ..model_utils import Data, data_batches, evaluating, is_conditional, latent_code, model_device, require_methods
from ..priors import GaussianMixture
from .quantizer import VectorQuantizer

__all__ = ['CategoricalPrior', 'fit_latent_prior', 'latent_prior_state_dict', 'latent_prior_from_state_dict']

#: A prior :func:`fit_latent_prior` returns.
_Prior = Union[GaussianMixture, 'CategoricalPrior']


class CategoricalPrior:
    """Independent categorical distributions over the codes at each position of a VQ-VAE's latent map.

    At each of the ``P = H * W`` positions of the map, the probability of each of the ``K`` codes
    is its frequency there in the training data, smoothed by adding ``smoothing`` to every count
    (Laplace), so that every code keeps a little probability. A draw picks a code per position
    independently and returns the codes' vectors laid out as the map, flattened: what
    :meth:`VQVAE.decode <torchbearer_vae.VQVAE.decode>` takes. The positions are independent, so
    the samples have the right local pieces in roughly the right places but not their
    arrangement; an autoregressive prior over the indices (a PixelCNN, as van den Oord et al. use)
    models that, and can replace this one.

    Args:
        probabilities (torch.Tensor): ``(P, K)``, each row summing to 1.
        codebook (torch.Tensor): ``(K, D)``, the quantizer's codes.
        latent_shape (sequence of int): ``(D, H, W)`` with ``H * W = P``.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import CategoricalPrior
        >>> indices = torch.tensor([[0, 1], [0, 2], [0, 1]])  # 3 maps of 2 positions (1 x 2)
        >>> prior = CategoricalPrior.fit(indices, torch.eye(3), (3, 1, 2), smoothing=0.0)
        >>> prior.probabilities
        tensor([[1.0000, 0.0000, 0.0000],
                [0.0000, 0.6667, 0.3333]], dtype=torch.float64)
        >>> prior.sample(4).shape
        torch.Size([4, 6])
    """

    def __init__(self, probabilities: torch.Tensor, codebook: torch.Tensor, latent_shape: Sequence[int]):
        self.latent_shape = check_shape('latent_shape', latent_shape, ndim=3, example='(code_dim, height, width)')
        code_dim, height, width = self.latent_shape
        if not (isinstance(probabilities, torch.Tensor) and probabilities.dim() == 2
                and probabilities.is_floating_point()):
            raise ValueError(f'probabilities must be a float tensor (positions, codes), got {describe(probabilities)}')
        if not isinstance(codebook, torch.Tensor) or codebook.dim() != 2 or not codebook.is_floating_point():
            raise ValueError(f'codebook must be a float tensor (codes, code_dim), got {describe(codebook)}')
        if probabilities.shape != (height * width, codebook.shape[0]) or codebook.shape[1] != code_dim:
            raise ValueError(f'probabilities {tuple(probabilities.shape)} and codebook {tuple(codebook.shape)} do '
                             f'not fit latent_shape {self.latent_shape}: expected ({height * width}, K) and '
                             f'(K, {code_dim})')
        totals = probabilities.sum(1)
        if not bool(torch.isfinite(probabilities).all()) or bool((probabilities < 0).any()) or not torch.allclose(
                totals, torch.ones_like(totals), atol=1e-6):
            raise ValueError('probabilities must be finite, >= 0, and each row must sum to 1')
        if not bool(torch.isfinite(codebook).all()):
            raise ValueError('codebook must be finite')
        self.probabilities, self.codebook = probabilities.to(torch.float64), codebook.to(torch.float32)

    @property
    def dim(self) -> int:
        """The length of a drawn code, ``D * H * W``, the model's ``latent_dim``."""
        return math.prod(self.latent_shape)

    @classmethod
    def fit(cls, indices: torch.Tensor, codebook: torch.Tensor, latent_shape: Sequence[int], *,
            smoothing: float = 1.0) -> 'CategoricalPrior':
        """The prior of the code indices of ``N`` latent maps.

        Args:
            indices (torch.Tensor): ``(N, H, W)`` or ``(N, P)`` integer code indices.
            codebook (torch.Tensor): ``(K, D)``, the quantizer's codes.
            latent_shape (sequence of int): ``(D, H, W)``.
            smoothing (float): Added to every count before normalising, >= 0.

        Returns:
            CategoricalPrior: The fitted prior.
        """
        smoothing = check_number('smoothing', smoothing, minimum=0)
        if not isinstance(indices, torch.Tensor) or indices.is_floating_point() or indices.dim() < 2:
            raise ValueError(f'indices must be an integer tensor (N, H, W) or (N, P), got {describe(indices)}')
        flat = indices.reshape(indices.shape[0], -1).long().cpu()
        codes = codebook.shape[0]
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= codes):
            raise ValueError(f'indices must lie in [0, {codes}) for a codebook of {codes} codes')
        counts = torch.zeros(flat.shape[1], codes, dtype=torch.float64)
        counts.scatter_add_(1, flat.T.contiguous(), torch.ones(flat.T.shape, dtype=torch.float64))
        counts += smoothing
        if bool((counts.sum(1) == 0).any()):
            raise ValueError('no map to fit: give at least one map of indices, or smoothing > 0')
        return cls(counts / counts.sum(1, keepdim=True), codebook.detach().cpu(), latent_shape)

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` maps: a code drawn per position, laid out as ``(D, H, W)`` and flattened.

        Args:
            n (int): How many, >= 1.
            generator (torch.Generator or None): For reproducible draws (a CPU generator).

        Returns:
            torch.Tensor: ``(n, D * H * W)`` float32.
        """
        n = check_int('n', n, minimum=1)
        chosen = torch.multinomial(self.probabilities, n, replacement=True, generator=generator)  # (P, n)
        maps = self.codebook[chosen.T]  # (n, P, D)
        return maps.permute(0, 2, 1).reshape(n, self.dim).contiguous()

    def state_dict(self) -> Dict[str, Any]:
        """``{'probabilities', 'codebook', 'latent_shape'}``: tensors and a list of ints (weights-only loadable)."""
        return {'probabilities': self.probabilities.clone(), 'codebook': self.codebook.clone(),
                'latent_shape': list(self.latent_shape)}

    @classmethod
    def from_state_dict(cls, state: Dict[str, Any]) -> 'CategoricalPrior':
        """The prior of a :meth:`state_dict`, checked (it may come from a file); CheckpointError if it is not valid."""
        if not isinstance(state, dict) or sorted(state) != ['codebook', 'latent_shape', 'probabilities']:
            keys = sorted(map(str, state)) if isinstance(state, dict) else describe(state)
            raise CheckpointError(f'a saved CategoricalPrior is a dict of probabilities, codebook, latent_shape; got '
                                  f'{keys}')
        try:
            return cls(state['probabilities'], state['codebook'], state['latent_shape'])
        except (TypeError, ValueError) as error:
            raise CheckpointError(f'the saved categorical prior is not valid: {error}') from None

    def __repr__(self) -> str:
        return f'CategoricalPrior(latent_shape={self.latent_shape}, codes={self.codebook.shape[0]})'


def _codes(model: Any, x: torch.Tensor) -> torch.Tensor:
    """The deterministic code of each image, flat: the posterior mean of a VAE, the code of another autoencoder;
    the code indices of a VQ-VAE."""
    code = latent_code(model, x)
    quantizer = VectorQuantizer.of(model)
    return quantizer.nearest(code) if quantizer is not None else code.reshape(code.shape[0], -1)


def fit_latent_prior(model: Any, data: Data, *, components: int = 10, covariance: str = 'full',
                     batch_size: int = 100, generator: Optional[torch.Generator] = None,
                     **options: Any) -> _Prior:
    """Fit a prior to the latent codes of ``data``, for sampling a trained autoencoder.

    The codes are computed with the model in eval mode, without gradients, on its device:

    * a VAE (``encode(x)`` returns ``(mu, logvar)``): the posterior means, fitted with a
      :class:`~torchbearer_vae.GaussianMixture` of ``components`` Gaussians;
    * a plain or denoising autoencoder (``encode(x)`` returns the codes): the codes, flattened,
      fitted likewise;
    * a VQ-VAE (a :class:`~torchbearer_vae.VectorQuantizer` as ``model.quantizer``): the code
      indices of each position, fitted with a :class:`CategoricalPrior` (``components`` and
      ``covariance`` do not apply).

    Draw from it with ``prior.sample(n)``, decode with ``model.decode``, or pass it to
    :class:`~torchbearer_vae.SampleSaver` (``prior=``); save :func:`latent_prior_state_dict` and
    read it back with :func:`latent_prior_from_state_dict`.

    Args:
        model: A trained autoencoder with ``encode(x)``.
        data: Its training images: a tensor, a Dataset of ``(x, ...)`` or ``x``, or an iterable
            of batches (a DataLoader, a :class:`~torchbearer_vae.TensorLoader`).
        components (int): Gaussians of the mixture.
        covariance (str): ``'full'`` or ``'diag'``.
        batch_size (int): Images encoded at a time, for a tensor or a Dataset.
        generator (torch.Generator or None): For a reproducible fit.
        **options: More options of :meth:`GaussianMixture.fit <torchbearer_vae.priors.GaussianMixture.fit>`
            (``reg_covar``, ``tol``, ``max_iter``, ``n_init``) or, for a VQ-VAE, of
            :meth:`CategoricalPrior.fit` (``smoothing``).

    Returns:
        GaussianMixture or CategoricalPrior: The fitted prior, on the CPU.

    Raises:
        TypeError: the model has no ``encode``, or it returns no codes.
        ValueError: a conditional model (fit a prior per class instead), no data, or a bad option.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import VAE, fit_latent_prior
        >>> model = VAE(latent_dim=4)
        >>> prior = fit_latent_prior(model, torch.rand(200, 1, 28, 28), components=3,
        ...                          generator=torch.Generator().manual_seed(0))
        >>> model.decode(prior.sample(8)).shape
        torch.Size([8, 1, 28, 28])
    """
    require_methods(model, 'fit_latent_prior', 'encode')
    if is_conditional(model):
        raise ValueError(f'fit_latent_prior fits one prior for all images, but {type(model).__name__} is conditional '
                         f'(num_classes={model.num_classes}): fit one per class, on that class\'s images')
    check_int('batch_size', batch_size, minimum=1)
    device, pieces = model_device(model), []
    with evaluating(model):
        for x, _ in data_batches(data, batch_size, model):
            pieces.append(_codes(model, x.to(device)).cpu())
    if not pieces:
        raise ValueError('fit_latent_prior got no images: data is empty')
    codes = torch.cat(pieces)
    quantizer = VectorQuantizer.of(model)
    if quantizer is not None:
        latent_shape = getattr(model, 'latent_shape', (quantizer.code_dim,) + tuple(codes.shape[1:]))
        return CategoricalPrior.fit(codes, quantizer.codebook.detach(), latent_shape, **options)
    return GaussianMixture.fit(codes.double(), components, covariance=covariance, generator=generator, **options)


def latent_prior_from_state_dict(state: Dict[str, Any]) -> _Prior:
    """The prior saved as ``{'kind': ..., **prior.state_dict()}`` (what a checkpoint holds), checked.

    Args:
        state (dict): ``'kind'`` is ``'gaussian_mixture'`` or ``'categorical'``; the rest is that
            prior's ``state_dict()``.

    Returns:
        GaussianMixture or CategoricalPrior.

    Raises:
        CheckpointError: an unknown kind, or values that are not a valid prior.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import GaussianMixture, latent_prior_from_state_dict, latent_prior_state_dict
        >>> prior = GaussianMixture(torch.ones(1), torch.zeros(1, 2), torch.eye(2)[None])
        >>> latent_prior_from_state_dict(latent_prior_state_dict(prior))
        GaussianMixture(components=1, dim=2, covariance='full')
    """
    if not isinstance(state, dict) or state.get('kind') not in _KINDS:
        got = repr(state.get('kind')) if isinstance(state, dict) else describe(state)
        raise CheckpointError(f"a saved latent prior has a 'kind' of {', '.join(map(repr, _KINDS))}, got {got}")
    rest = {key: value for key, value in state.items() if key != 'kind'}
    if state['kind'] == 'categorical':
        return CategoricalPrior.from_state_dict(rest)
    return GaussianMixture.from_state_dict(rest)


def latent_prior_state_dict(prior: _Prior) -> Dict[str, Any]:
    """``{'kind': ..., **prior.state_dict()}``, what a checkpoint holds (weights-only loadable).

    Args:
        prior (GaussianMixture or CategoricalPrior): A fitted prior.

    Returns:
        dict: What :func:`latent_prior_from_state_dict` reads back.

    Raises:
        TypeError: ``prior`` is neither.
    """
    for kind, cls in _KINDS.items():
        if isinstance(prior, cls):
            return {'kind': kind, **prior.state_dict()}
    raise TypeError(f'a latent prior is a GaussianMixture or a CategoricalPrior, got {describe(prior)}')


_KINDS = {'gaussian_mixture': GaussianMixture, 'categorical': CategoricalPrior}
