"""Priors over latent codes fitted to data: a Gaussian mixture in torch, by EM, saved in weights-only checkpoints.

A VAE's decoder is trained on the codes its encoder gives, which need not look like the
``N(0, I)`` prior (and a VQ-VAE has no continuous prior at all): drawing from a mixture fitted to
the training data's codes (Ghosh et al. 2020, "From Variational to Deterministic Autoencoders",
ex-post density estimation) gives samples from where the decoder has learned to decode.
"""
import math
from typing import Any, Dict, Optional, Tuple

import torch

from .checks import check_choice, check_int, check_number, describe, plural
from .errors import CheckpointError

__all__ = ['GaussianMixture']

#: The covariance structures :meth:`GaussianMixture.fit` knows: one full matrix per component, or its diagonal.
COVARIANCES = ('full', 'diag')
_LOG_2PI = math.log(2 * math.pi)
_STATE_KEYS = ('weights', 'means', 'covariances')
_Parameters = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # weights, means, covariances


class GaussianMixture:
    r"""A mixture of ``K`` Gaussians in ``D`` dimensions: :meth:`fit` it to data, :meth:`sample` and :meth:`log_prob`.

    .. math::
        p(x) = \sum_k \pi_k \, \mathcal{N}(x; \mu_k, \Sigma_k)

    Build one from its parameters, or fit it with :meth:`fit` (EM from a k-means++ start, as
    scikit-learn's ``GaussianMixture(init_params='k-means++')`` does, in torch). The parameters
    are kept in float64 on the device they were given on, where :meth:`sample` draws (float32
    values) and :meth:`log_prob` computes. :meth:`state_dict` returns them as a dict of tensors,
    which ``torch.load(weights_only=True)`` loads, and :meth:`from_state_dict` rebuilds the
    mixture from it, checking every value as the constructor does.

    Args:
        weights (torch.Tensor): ``(K,)`` mixing weights ``pi``, >= 0, summing to 1 (within
            ``1e-4``; they are renormalised).
        means (torch.Tensor): ``(K, D)`` means.
        covariances (torch.Tensor): ``(K, D, D)`` symmetric positive definite covariance matrices
            (``covariance='full'``), or ``(K, D)`` positive variances (``covariance='diag'``).

    Attributes:
        covariance (str): ``'full'`` or ``'diag'``, from the shape of ``covariances``.
        converged (bool or None): Whether :meth:`fit` stopped by its tolerance (None unless fitted).
        iterations (int or None): The EM iterations of the fit that was kept (None unless fitted).
        log_likelihood (float or None): The fitted mixture's mean log-density of the data, in nats
            per point (None unless fitted).

    Raises:
        TypeError: a parameter is not a floating point tensor.
        ValueError: the shapes disagree, a value is not finite, the weights are not a
            distribution, or a covariance is not symmetric positive definite.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import GaussianMixture
        >>> _ = torch.manual_seed(0)
        >>> generator = torch.Generator().manual_seed(0)
        >>> data = torch.cat([torch.randn(200, 2) - 4, torch.randn(100, 2) + 4])
        >>> prior = GaussianMixture.fit(data, components=2, generator=generator)
        >>> prior.weights.sort().values
        tensor([0.3333, 0.6667], dtype=torch.float64)
        >>> prior.sample(5, generator=generator).shape
        torch.Size([5, 2])
        >>> GaussianMixture.from_state_dict(prior.state_dict()).log_prob(torch.zeros(1, 2)).shape
        torch.Size([1])
    """

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor):
        for name, value in (('weights', weights), ('means', means), ('covariances', covariances)):
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise TypeError(f'GaussianMixture: {name} must be a floating point tensor, got {describe(value)}')
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f'GaussianMixture: {name} must be finite, got NaN or infinite values')
        weights, means, covariances = (value.detach().to(torch.float64) for value in (weights, means, covariances))
        if means.dim() != 2 or weights.shape != means.shape[:1] or covariances.shape not in (
                means.shape, means.shape + means.shape[1:]):
            raise ValueError(f'GaussianMixture needs weights (K,), means (K, D) and covariances (K, D, D) or (K, D), '
                             f'got shapes {tuple(weights.shape)}, {tuple(means.shape)} and {tuple(covariances.shape)}')
        if len(weights) == 0 or bool((weights < 0).any()) or abs(float(weights.sum()) - 1) > 1e-4:
            raise ValueError(f'GaussianMixture: weights must be >= 0 and sum to 1, got {len(weights)} summing to '
                             f'{float(weights.sum()):g}')
        self.covariance = 'full' if covariances.dim() == 3 else 'diag'
        self.weights, self.means, self.covariances = weights / weights.sum(), means, covariances
        self._factors = _scales(covariances, self.covariance, 'GaussianMixture: covariances')
        self.converged: Optional[bool] = None
        self.iterations: Optional[int] = None
        self.log_likelihood: Optional[float] = None

    @property
    def components(self) -> int:
        """``K``, the number of Gaussians."""
        return int(self.means.shape[0])

    @property
    def dim(self) -> int:
        """``D``, the dimension of a point."""
        return int(self.means.shape[1])

    def moments(self) -> Tuple[torch.Tensor, torch.Tensor]:
        r"""The mixture's mean ``(D,)`` and covariance matrix ``(D, D)``, in float64.

        .. math::
            m = \sum_k \pi_k \mu_k, \qquad
            C = \sum_k \pi_k \big(\Sigma_k + (\mu_k - m)(\mu_k - m)^\top\big)

        Example: ::

            >>> import torch
            >>> from torchbearer_vae import GaussianMixture
            >>> prior = GaussianMixture(torch.tensor([0.5, 0.5]), torch.tensor([[-1.0], [1.0]]), torch.ones(2, 1))
            >>> prior.moments()
            (tensor([0.], dtype=torch.float64), tensor([[2.]], dtype=torch.float64))
        """
        mean = self.weights @ self.means
        within = self.covariances if self.covariance == 'full' else torch.diag_embed(self.covariances)
        spread = self.means - mean
        covariance = (self.weights[:, None, None] * (within + spread[:, :, None] * spread[:, None, :])).sum(0)
        return mean, covariance

    @classmethod
    def fit(cls, data: torch.Tensor, components: int = 10, *, covariance: str = 'full', reg_covar: float = 1e-6,
            tol: float = 1e-3, max_iter: int = 100, n_init: int = 1,
            generator: Optional[torch.Generator] = None) -> 'GaussianMixture':
        """Fit a mixture to ``(N, D)`` points by expectation-maximisation, from a k-means++ start.

        Each of the ``n_init`` fits picks ``components`` centres by k-means++ (the first a random
        point, each next one a point drawn with probability proportional to its squared distance
        from the nearest centre so far), assigns every point to its nearest centre, estimates the
        parameters from that, then alternates the E and M steps until the mean log-likelihood
        per point gains less than ``tol`` nats, or ``max_iter`` iterations. The fit with the
        highest mean log-likelihood is kept. ``reg_covar`` is added to the diagonal of every
        covariance at every M step (scikit-learn's ``reg_covar``), so that a component on a
        few points, or on data in a lower-dimensional subspace, stays positive definite. The
        computation is in float64, on the data's device.

        Args:
            data (torch.Tensor): ``(N, D)`` floating point points, ``N >= components``.
            components (int): ``K``, the number of Gaussians.
            covariance (str): ``'full'`` (a matrix per component) or ``'diag'`` (variances only).
            reg_covar (float): Added to the covariances' diagonal, >= 0.
            tol (float): Convergence threshold on the mean log-likelihood's gain, in nats, > 0.
            max_iter (int): The most EM iterations per fit.
            n_init (int): How many fits from different starts.
            generator (torch.Generator or None): For a reproducible start, on the data's device;
                None: torch's global generator.

        Returns:
            GaussianMixture: The fitted mixture, with ``converged``, ``iterations`` and ``log_likelihood`` set.

        Raises:
            TypeError: ``data`` is not a floating point tensor, or an option has the wrong type.
            ValueError: ``data`` is not ``(N, D)``, holds NaN or infinite values or fewer points
                than ``components``, an option has a wrong value, or a covariance stopped being
                positive definite (pass a larger ``reg_covar``).
        """
        components = check_int('components', components, minimum=1)
        check_choice('covariance', covariance, COVARIANCES)
        reg_covar = check_number('reg_covar', reg_covar, minimum=0)
        tol = check_number('tol', tol, above=0)
        max_iter = check_int('max_iter', max_iter, minimum=1)
        n_init = check_int('n_init', n_init, minimum=1)
        _check_generator(generator)
        points = _checked_data(data, components)
        best: Optional[Tuple[_Parameters, float, bool, int]] = None
        for _ in range(n_init):
            fitted = _expectation_maximisation(points, components, covariance, reg_covar, tol, max_iter, generator)
            if best is None or fitted[1] > best[1]:
                best = fitted
        assert best is not None
        (weights, means, covariances), _, converged, iterations = best
        mixture = cls(weights, means, covariances)
        mixture.converged, mixture.iterations = converged, iterations
        mixture.log_likelihood = float(mixture.log_prob(points).mean())
        return mixture

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x)`` of each point, in nats.

        Args:
            x (torch.Tensor): ``(N, D)`` points, on the mixture's device.

        Returns:
            torch.Tensor: ``(N,)``, in ``x``'s dtype (float32 at least).

        Raises:
            TypeError: ``x`` is not a floating point tensor.
            ValueError: ``x`` is not ``(N, D)``.
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f'log_prob needs a floating point tensor of points, got {describe(x)}')
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f'log_prob needs points of shape (N, {self.dim}), got {tuple(x.shape)}')
        joint = _log_gaussians(x.to(torch.float64), self.means, self._factors, self.covariance) + self.weights.log()
        return torch.logsumexp(joint, dim=1).to(torch.promote_types(x.dtype, torch.float32))

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` independent draws from the mixture.

        Args:
            n (int): How many points, >= 1.
            generator (torch.Generator or None): For reproducible draws, on the mixture's device.

        Returns:
            torch.Tensor: ``(n, D)`` float32 points, on the mixture's device.
        """
        n = check_int('n', n, minimum=1)
        _check_generator(generator)
        chosen = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64, device=self.means.device)
        if self.covariance == 'diag':
            points = self.means[chosen] + noise * self._factors[chosen]
        else:
            points = torch.empty_like(noise)
            for k in range(self.components):
                mask = chosen == k
                points[mask] = self.means[k] + noise[mask] @ self._factors[k].T
        return points.to(torch.float32)

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """The parameters, ``{'weights', 'means', 'covariances'}``: float64 tensors that a weights-only load reads."""
        return {'weights': self.weights.clone(), 'means': self.means.clone(), 'covariances': self.covariances.clone()}

    @classmethod
    def from_state_dict(cls, state: Dict[str, Any]) -> 'GaussianMixture':
        """The mixture of a :meth:`state_dict`, its values checked (it may come from a file).

        Args:
            state (dict): ``{'weights', 'means', 'covariances'}``, as :meth:`state_dict` returns.

        Returns:
            GaussianMixture: The mixture, on the tensors' device.

        Raises:
            CheckpointError: the dict lacks or adds a key, or its values are not a valid mixture.
        """
        if not isinstance(state, dict) or sorted(state) != sorted(_STATE_KEYS):
            keys = sorted(map(str, state)) if isinstance(state, dict) else describe(state)
            raise CheckpointError(f'a saved GaussianMixture is a dict of {", ".join(_STATE_KEYS)}, got {keys}')
        try:
            return cls(state['weights'], state['means'], state['covariances'])
        except (TypeError, ValueError) as error:
            raise CheckpointError(f'the saved Gaussian mixture is not valid: {error}') from None

    def to(self, device: Any) -> 'GaussianMixture':
        """The same mixture on ``device`` (a new object; this one is unchanged)."""
        moved = type(self)(self.weights.to(device), self.means.to(device), self.covariances.to(device))
        moved.converged, moved.iterations, moved.log_likelihood = self.converged, self.iterations, self.log_likelihood
        return moved

    def __repr__(self) -> str:
        return f'GaussianMixture(components={self.components}, dim={self.dim}, covariance={self.covariance!r})'



def _check_generator(generator: Any) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f'generator must be a torch.Generator or None, got {type(generator).__name__}')


def _checked_data(data: Any, components: int) -> torch.Tensor:
    """``data`` as float64 ``(N, D)`` finite points, at least ``components`` of them; else one clear line."""
    if not isinstance(data, torch.Tensor) or not data.is_floating_point():
        raise TypeError(f'GaussianMixture.fit needs data as a (points, dim) floating point tensor, got '
                        f'{describe(data)}')
    if data.dim() != 2 or data.shape[1] == 0:
        raise ValueError(f'GaussianMixture.fit needs data of shape (points, dim), got {tuple(data.shape)}; '
                         f'flatten each point with data.flatten(1)')
    bad = ~torch.isfinite(data).all(1)
    if bool(bad.any()):
        raise ValueError(f'GaussianMixture.fit: data holds {plural(int(bad.sum()), "point")} with NaN or infinite '
                         f'values (the first is row {int(bad.nonzero()[0])}); remove them first')
    if len(data) < components:
        raise ValueError(f'GaussianMixture.fit needs at least as many points as components, got '
                         f'{plural(len(data), "point")} for components={components}; pass fewer components')
    return data.detach().to(torch.float64)


def _expectation_maximisation(data: torch.Tensor, components: int, covariance: str, reg_covar: float, tol: float,
                              max_iter: int, generator: Optional[torch.Generator]
                              ) -> Tuple[_Parameters, float, bool, int]:
    """One fit: ``(parameters, mean log-likelihood, converged, iterations)``."""
    centres = _kmeans_plus_plus(data, components, generator)
    nearest = torch.cdist(data, centres).argmin(1)
    parameters = _m_step(data, torch.nn.functional.one_hot(nearest, components).to(data.dtype), covariance, reg_covar)
    previous, converged, iteration = -math.inf, False, 0
    for iteration in range(1, max_iter + 1):
        weights, means, covariances = parameters
        scales = _fitted_scales(covariances, covariance, reg_covar, iteration)
        joint = _log_gaussians(data, means, scales, covariance) + weights.log()
        log_norm = torch.logsumexp(joint, dim=1)
        current = float(log_norm.mean())
        parameters = _m_step(data, torch.exp(joint - log_norm.unsqueeze(1)), covariance, reg_covar)
        if abs(current - previous) < tol:
            converged = True
            break
        previous = current
    weights, means, covariances = parameters
    scales = _fitted_scales(covariances, covariance, reg_covar, iteration)
    likelihood = float(torch.logsumexp(_log_gaussians(data, means, scales, covariance) + weights.log(), 1).mean())
    return parameters, likelihood, converged, iteration


def _fitted_scales(covariances: torch.Tensor, covariance: str, reg_covar: float, iteration: int) -> torch.Tensor:
    """:func:`_scales` of the covariances EM estimated; a ValueError that gives the fix when one is singular."""
    try:
        return _scales(covariances, covariance, 'covariances')
    except ValueError:
        raise ValueError(f'GaussianMixture.fit: a covariance stopped being positive definite at iteration '
                         f'{iteration} (points on a line, or repeated); pass a larger reg_covar than {reg_covar:g}, '
                         f'or fewer components') from None


def _kmeans_plus_plus(data: torch.Tensor, components: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """``components`` centres: a random point, then points drawn in proportion to their squared distance."""
    picks = [int(torch.randint(len(data), (1,), generator=generator, device=data.device))]
    closest = (data - data[picks[0]]).pow(2).sum(1)
    for _ in range(1, components):
        total = closest.sum()
        if float(total) > 0:
            pick = int(torch.multinomial(closest / total, 1, generator=generator))
        else:  # every point is a centre already (repeated points): any point
            pick = int(torch.randint(len(data), (1,), generator=generator, device=data.device))
        picks.append(pick)
        closest = torch.minimum(closest, (data - data[pick]).pow(2).sum(1))
    return data[picks]


def _m_step(data: torch.Tensor, responsibilities: torch.Tensor, covariance: str, reg_covar: float) -> _Parameters:
    """The parameters that maximise the expected log-likelihood under ``(N, K)`` responsibilities."""
    counts = responsibilities.sum(0) + 10 * torch.finfo(data.dtype).eps  # an empty component: no division by 0
    means = responsibilities.T @ data / counts.unsqueeze(1)
    if covariance == 'diag':
        second = responsibilities.T @ data.pow(2) / counts.unsqueeze(1)
        covariances = (second - means.pow(2)).clamp(min=0) + reg_covar
    else:
        ridge = reg_covar * torch.eye(data.shape[1], dtype=data.dtype, device=data.device)
        covariances = torch.stack([
            ((responsibilities[:, k:k + 1] * (data - means[k])).T @ (data - means[k])) / counts[k] + ridge
            for k in range(len(means))])
        covariances = (covariances + covariances.transpose(1, 2)) / 2  # exactly symmetric
    return counts / len(data), means, covariances


def _scales(covariances: torch.Tensor, covariance: str, what: str) -> torch.Tensor:
    """The Cholesky factors (``'full'``) or standard deviations (``'diag'``); ValueError naming ``what``."""
    if covariance == 'diag':
        if bool((covariances <= 0).any()):
            raise ValueError(f'{what} must be positive variances, got {float(covariances.min()):g}')
        return covariances.sqrt()
    asymmetry = float((covariances - covariances.transpose(1, 2)).abs().max()) if covariances.numel() else 0.0
    if asymmetry > 1e-6 * max(float(covariances.abs().max()), 1.0):
        raise ValueError(f'{what} must be symmetric, got a difference of {asymmetry:g} from the transpose')
    factors: torch.Tensor
    factors, info = torch.linalg.cholesky_ex(covariances)
    if bool((info != 0).any()):
        raise ValueError(f'{what} must be positive definite, but component {int(info.nonzero()[0])} is not')
    return factors


def _log_gaussians(data: torch.Tensor, means: torch.Tensor, scales: torch.Tensor, covariance: str) -> torch.Tensor:
    """``log N(x_n; mu_k, Sigma_k)``, ``(N, K)``, from the Cholesky factors or standard deviations ``scales``.

    The squared Mahalanobis distances are computed without an ``(N, K, D)`` tensor: expanded for
    diagonal covariances, one triangular solve per component for full ones.
    """
    dim = data.shape[1]
    if covariance == 'diag':
        precisions = scales.pow(-2)
        squared = (data.pow(2) @ precisions.T - 2 * data @ (means * precisions).T
                   + (means.pow(2) * precisions).sum(1)).clamp(min=0)
        log_det = 2 * scales.log().sum(1)
    else:
        squared = torch.stack([
            torch.linalg.solve_triangular(scales[k], (data - means[k]).T, upper=False).pow(2).sum(0)
            for k in range(len(means))], dim=1)
        log_det = 2 * scales.diagonal(dim1=1, dim2=2).log().sum(1)
    return -0.5 * (dim * _LOG_2PI + log_det + squared)
