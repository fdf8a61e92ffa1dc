"""The Gaussian mixture prior: EM recovers a known mixture, its density is torch's, its draws and files reproduce."""
import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, MultivariateNormal, Normal

from torchbearer_vae import CheckpointError, GaussianMixture

WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
MEANS = torch.tensor([[-5.0, 0.0], [5.0, 0.0], [0.0, 6.0]], dtype=torch.float64)
COVARIANCES = torch.tensor([[[1.0, 0.6], [0.6, 1.0]], [[0.5, -0.2], [-0.2, 1.5]], [[2.0, 0.0], [0.0, 0.3]]],
                           dtype=torch.float64)


def _draw(covariances, n=3000, seed=0):
    """``n`` points of the known mixture, with ``covariances`` (K, D, D) or (K, D)."""
    torch.manual_seed(seed)
    if covariances.dim() == 2:
        components = Independent(Normal(MEANS, covariances.sqrt()), 1)
    else:
        components = MultivariateNormal(MEANS, covariance_matrix=covariances)
    return MixtureSameFamily(Categorical(WEIGHTS), components).sample((n,)).float()


def _matched(fitted):
    """The fitted components' order that puts each next to the true one nearest to it."""
    order = torch.cdist(MEANS, fitted.means).argmin(1)
    assert sorted(order.tolist()) == [0, 1, 2]
    return order


def _torch_mixture(prior):
    if prior.covariance == 'full':
        components = MultivariateNormal(prior.means, covariance_matrix=prior.covariances)
    else:
        components = Independent(Normal(prior.means, prior.covariances.sqrt()), 1)
    return MixtureSameFamily(Categorical(prior.weights), components)


def test_the_fit_recovers_a_known_mixture():
    prior = GaussianMixture.fit(_draw(COVARIANCES), components=3, generator=torch.Generator().manual_seed(0))
    order = _matched(prior)
    assert prior.converged and prior.covariance == 'full' and (prior.components, prior.dim) == (3, 2)
    assert torch.allclose(prior.means[order], MEANS, atol=0.15)
    assert torch.allclose(prior.weights[order], WEIGHTS, atol=0.03)
    assert torch.allclose(prior.covariances[order], COVARIANCES, atol=0.2)


def test_the_diagonal_fit_recovers_the_variances():
    variances = torch.tensor([[1.0, 0.5], [0.3, 2.0], [1.5, 1.0]], dtype=torch.float64)
    prior = GaussianMixture.fit(_draw(variances, seed=1), components=3, covariance='diag',
                                generator=torch.Generator().manual_seed(1))
    order = _matched(prior)
    assert prior.covariance == 'diag' and prior.covariances.shape == (3, 2)
    assert torch.allclose(prior.means[order], MEANS, atol=0.15)
    assert torch.allclose(prior.weights[order], WEIGHTS, atol=0.03)
    assert torch.allclose(prior.covariances[order], variances, atol=0.2)


@pytest.mark.parametrize('covariance', ['full', 'diag'])
def test_log_prob_is_that_of_torch_distributions(covariance):
    data = _draw(COVARIANCES, n=600, seed=2)
    prior = GaussianMixture.fit(data, components=3, covariance=covariance, generator=torch.Generator().manual_seed(2))
    points = torch.randn(50, 2) * 4
    ours = prior.log_prob(points)
    assert ours.shape == (50,) and ours.dtype == torch.float32
    assert torch.allclose(ours.double(), _torch_mixture(prior).log_prob(points.double()), atol=1e-5)
    assert prior.log_likelihood == pytest.approx(_torch_mixture(prior).log_prob(data.double()).mean().item())


def test_the_fit_and_the_draws_reproduce_with_a_seeded_generator():
    data = _draw(COVARIANCES, n=600, seed=3)
    first = GaussianMixture.fit(data, components=3, generator=torch.Generator().manual_seed(4))
    second = GaussianMixture.fit(data, components=3, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first.means, second.means) and torch.equal(first.covariances, second.covariances)
    draws = first.sample(7, generator=torch.Generator().manual_seed(5))
    assert draws.shape == (7, 2) and draws.dtype == torch.float32
    assert torch.equal(draws, first.sample(7, generator=torch.Generator().manual_seed(5)))
    assert not torch.equal(draws, first.sample(7, generator=torch.Generator().manual_seed(6)))


@pytest.mark.parametrize('covariance', ['full', 'diag'])
def test_the_draws_follow_the_mixture(covariance):
    covariances = COVARIANCES if covariance == 'full' else COVARIANCES.diagonal(dim1=1, dim2=2)
    prior = GaussianMixture(WEIGHTS, MEANS, covariances)
    draws = prior.sample(20000, generator=torch.Generator().manual_seed(7)).double()
    assert torch.allclose(draws.mean(0), WEIGHTS @ MEANS, atol=0.1)
    nearest = torch.cdist(draws, MEANS).argmin(1)
    assert torch.allclose(torch.bincount(nearest, minlength=3).double() / 20000, WEIGHTS, atol=0.02)
    assert torch.allclose(torch.cov(draws[nearest == 0].T), covariances[0] if covariance == 'full'
                          else torch.diag(covariances[0]), atol=0.1)


@pytest.mark.parametrize('covariance', ['full', 'diag'])
def test_the_moments_are_those_of_torchs_mixture(covariance):
    covariances = COVARIANCES if covariance == 'full' else COVARIANCES.diagonal(dim1=1, dim2=2)
    prior = GaussianMixture(WEIGHTS, MEANS, covariances)
    mean, covariance_matrix = prior.moments()
    reference = _torch_mixture(prior)
    assert torch.allclose(mean, reference.mean)
    assert torch.allclose(covariance_matrix.diagonal(), reference.variance)  # torch gives the variances only
    draws = prior.sample(200000, generator=torch.Generator().manual_seed(3)).double()
    assert torch.allclose(covariance_matrix, torch.cov(draws.T), rtol=0.03, atol=0.05)


def test_the_prior_round_trips_through_a_weights_only_file(tmp_path):
    prior = GaussianMixture.fit(_draw(COVARIANCES, n=600), components=3, generator=torch.Generator().manual_seed(8))
    torch.save({'prior': prior.state_dict()}, tmp_path / 'checkpoint.pt')
    loaded = GaussianMixture.from_state_dict(torch.load(tmp_path / 'checkpoint.pt', weights_only=True)['prior'])
    points = torch.randn(20, 2)
    assert torch.equal(loaded.log_prob(points), prior.log_prob(points))
    generator = torch.Generator()
    assert torch.equal(loaded.sample(5, generator=generator.manual_seed(9)),
                       prior.sample(5, generator=generator.manual_seed(9)))


def test_the_fit_is_as_good_as_scikit_learns():
    mixture = pytest.importorskip('sklearn.mixture')
    data = _draw(COVARIANCES, n=1000, seed=10)
    for covariance in ('full', 'diag'):
        ours = GaussianMixture.fit(data, components=3, covariance=covariance,
                                   generator=torch.Generator().manual_seed(10))
        theirs = mixture.GaussianMixture(3, covariance_type=covariance, random_state=0).fit(data.double().numpy())
        assert ours.log_likelihood >= theirs.score(data.double().numpy()) - 1e-3


def test_repeated_points_and_empty_components_still_fit():
    data = torch.tensor([[0.0, 0.0]] * 5 + [[1.0, 1.0]] * 5)
    prior = GaussianMixture.fit(data, components=3, generator=torch.Generator().manual_seed(11))
    assert torch.isfinite(prior.log_prob(data)).all()


@pytest.mark.parametrize('data, kwargs, error, message', [
    (torch.randn(4, 2), {'components': 5}, ValueError,
     'needs at least as many points as components, got 4 points for components=5; pass fewer components'),
    (torch.tensor([[0.0, 1.0], [float('nan'), 0.0], [1.0, 1.0]]), {'components': 2}, ValueError,
     r'data holds 1 point with NaN or infinite values \(the first is row 1\); remove them first'),
    (torch.randn(10), {}, ValueError, r'needs data of shape \(points, dim\), got \(10,\)'),
    (torch.ones(10, 2, dtype=torch.int64), {}, TypeError, 'floating point tensor, got a torch.int64 Tensor'),
    (torch.randn(10, 2), {'components': 0}, ValueError, 'components must be an int >= 1, got 0'),
    (torch.randn(10, 2), {'covariance': 'spherical'}, ValueError, "covariance must be one of 'full', 'diag'"),
    (torch.randn(10, 2), {'reg_covar': -1.0}, ValueError, 'reg_covar must be a finite number >= 0'),
    (torch.randn(10, 2), {'tol': 0}, ValueError, 'tol must be a finite number > 0'),
    (torch.randn(10, 2), {'generator': 3}, TypeError, 'generator must be a torch.Generator or None, got int'),
    (torch.arange(20.).reshape(10, 2), {'components': 2, 'reg_covar': 0.0}, ValueError,
     'a covariance stopped being positive definite at iteration 1 .*; pass a larger reg_covar than 0'),
])
def test_bad_data_and_options_raise_one_clear_line(data, kwargs, error, message):
    with pytest.raises(error, match=message) as raised:
        GaussianMixture.fit(data, **{'components': 3, **kwargs})
    assert '\n' not in str(raised.value)


def test_bad_parameters_and_saved_states_are_refused():
    with pytest.raises(ValueError, match='weights must be >= 0 and sum to 1, got 3 summing to 1.1'):
        GaussianMixture(WEIGHTS + torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64), MEANS, COVARIANCES)
    with pytest.raises(ValueError, match=r'covariances \(K, D, D\) or \(K, D\), got shapes \(3,\), \(3, 2\) and '
                                         r'\(3, 3\)'):
        GaussianMixture(WEIGHTS, MEANS, torch.ones(3, 3))
    with pytest.raises(ValueError, match='must be positive definite, but component 1 is not'):
        GaussianMixture(WEIGHTS, MEANS, torch.stack([torch.eye(2), -torch.eye(2), torch.eye(2)]))
    with pytest.raises(ValueError, match='covariances must be symmetric'):
        GaussianMixture(WEIGHTS, MEANS, torch.tensor([[1.0, 0.5], [0.0, 1.0]]).expand(3, 2, 2))
    with pytest.raises(ValueError, match='means must be finite'):
        GaussianMixture(WEIGHTS, MEANS * float('inf'), COVARIANCES)
    state = GaussianMixture(WEIGHTS, MEANS, COVARIANCES).state_dict()
    with pytest.raises(CheckpointError, match="a saved GaussianMixture is a dict of weights, means, covariances, got "
                                              r"\['means', 'weights'\]"):
        GaussianMixture.from_state_dict({'weights': state['weights'], 'means': state['means']})
    with pytest.raises(CheckpointError, match='the saved Gaussian mixture is not valid: GaussianMixture: covariances '
                                              'must be positive variances'):
        GaussianMixture.from_state_dict({**state, 'covariances': -torch.ones(3, 2)})
    prior = GaussianMixture(WEIGHTS, MEANS, COVARIANCES)
    with pytest.raises(ValueError, match=r'log_prob needs points of shape \(N, 2\), got \(4, 3\)'):
        prior.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match='n must be an int >= 1, got 0'):
        prior.sample(0)
