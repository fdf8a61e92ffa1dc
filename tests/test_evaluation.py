"""importance_weighted_nll and negative_elbo, checked against a VAE whose likelihood is known in closed form."""
import inspect
import math
import os

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from torchbearer import Trial

from torchbearer_vae import (
    VAE,
    AutoEncoderDataset,
    BaseVAE,
    ConvVAE,
    importance_weighted_nll,
    kld,
    kld_loss,
    model_from_checkpoint,
    negative_elbo,
    reconstruction_loss,
    reconstruction_psnr,
    save_checkpoint,
)

D, LATENT, SIGMA = 6, 3, 0.5


class LinearGaussianVAE(BaseVAE):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I), so p(x) = N(b, W W^T + s^2 I) exactly.

    The encoder is the exact posterior N(A (x - b), Sigma), A = Sigma W^T / s^2,
    Sigma = (I + W^T W / s^2)^-1 (diagonal: W's columns are orthogonal), with its mean scaled by
    ``mean_scale`` and its log-variance shifted by ``logvar_shift``: an imperfect q makes the ELBO
    gap and the IWAE convergence visible.
    """

    def __init__(self, mean_scale=1.0, logvar_shift=0.0, seed=0):
        super().__init__(input_shape=D, latent_dim=LATENT, likelihood='gaussian', sigma=SIGMA)
        generator = torch.Generator().manual_seed(seed)
        # Orthogonal columns make the exact posterior's covariance diagonal, so a diagonal q can equal it.
        columns, _ = torch.linalg.qr(torch.randn(D, LATENT, generator=generator))
        self.W = nn.Parameter(columns * torch.tensor([3.0, 1.5, 0.8]))
        self.b = nn.Parameter(torch.randn(D, generator=generator))
        posterior = torch.linalg.inv(torch.eye(LATENT) + self.W.detach().T @ self.W.detach() / SIGMA ** 2)
        self.register_buffer('A', mean_scale * posterior @ self.W.detach().T / SIGMA ** 2)
        self.register_buffer('log_variance', torch.log(torch.diagonal(posterior)) + logvar_shift)

    def forward_encoder(self, x):
        return (x - self.b) @ self.A.T, self.log_variance.expand(x.shape[0], -1)

    def forward_decoder(self, z):
        return z @ self.W.T + self.b

    def marginal(self):
        covariance = self.W @ self.W.T + SIGMA ** 2 * torch.eye(D)
        return torch.distributions.MultivariateNormal(self.b, covariance)

    def exact_nll(self, x):
        with torch.no_grad():
            return -self.marginal().log_prob(x).mean().item()

    def exact_negative_elbo(self, x):
        """E_q[-log p(x|z)] + KL(q || p), in closed form, mean over x."""
        with torch.no_grad():
            m, logvar = self.encode(x)
            v = logvar.exp()
            residual = (x - self.b - m @ self.W.T).pow(2).sum(1) + (v * (self.W ** 2).sum(0)).sum(1)
            expected_nll = D / 2 * math.log(2 * math.pi * SIGMA ** 2) + residual / (2 * SIGMA ** 2)
            kl = 0.5 * (m.pow(2) + v - 1 - logvar).sum(1)
            return (expected_nll + kl).mean().item()


def seeded(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope='module')
def imperfect():
    model = LinearGaussianVAE(mean_scale=0.6, logvar_shift=1.5)
    with torch.no_grad():
        x = model.marginal().sample((1000,))
    return model, x


def test_iwae_converges_to_the_exact_negative_log_likelihood(imperfect):
    model, x = imperfect
    exact = model.exact_nll(x)
    ks = [1, 4, 16, 64, 256, 1024]
    errors = [importance_weighted_nll(model, x, num_samples=k, batch_size=500, generator=seeded(k)) - exact for k in ks]
    assert errors[0] > 3, errors  # the imperfect posterior leaves a real gap at k = 1 ...
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors  # ... that shrinks
    assert errors[-1] < 0.05, errors  # ... to almost nothing at k = 1024
    assert min(errors) > -0.02, errors  # an upper bound of the NLL, up to sampling noise


def test_k_1_is_the_negative_elbo_in_expectation(imperfect):
    model, x = imperfect
    expected = model.exact_negative_elbo(x)
    assert expected - model.exact_nll(x) > 3  # the closed form is far from the NLL: the test can tell them apart
    iwae_1 = sum(importance_weighted_nll(model, x, num_samples=1, generator=seeded(s)) for s in range(4)) / 4
    elbo = sum(negative_elbo(model, x, generator=seeded(s)) for s in range(4)) / 4
    assert iwae_1 == pytest.approx(expected, abs=0.3)
    assert elbo == pytest.approx(expected, abs=0.3)


def test_with_the_exact_posterior_every_k_and_chunk_gives_the_exact_value():
    # q(z|x) = p(z|x) makes every importance weight equal p(x): any error in the log-sum-exp shows.
    model = LinearGaussianVAE()
    x = model.marginal().sample((50,)).detach()
    exact = model.exact_nll(x)
    for k, chunk_size in [(1, None), (7, 3), (100, 1), (100, None), (1000, 64)]:
        estimate = importance_weighted_nll(model, x, num_samples=k, batch_size=16, chunk_size=chunk_size)
        assert estimate == pytest.approx(exact, abs=2e-4), (k, chunk_size)


def test_memory_is_bounded_by_the_chunk_not_by_k():
    model = LinearGaussianVAE()
    x = model.marginal().sample((30,)).detach()
    sizes = []
    original = model.log_likelihood
    model.log_likelihood = lambda data, z: sizes.append(z.shape[0]) or original(data, z)
    importance_weighted_nll(model, x, num_samples=500, batch_size=10, chunk_size=7)
    assert max(sizes) == 70 and len(sizes) == 3 * math.ceil(500 / 7)
    sizes.clear()
    importance_weighted_nll(model, x, num_samples=5000, batch_size=10)
    assert max(sizes) <= 1024  # the default chunk: about 1024 decoded images per pass, whatever k


class OnlyImages(Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index]


def test_every_form_of_data_gives_the_same_estimate(imperfect):
    model, x = imperfect
    x = x[:40]
    for function in (importance_weighted_nll, negative_elbo):
        forms = {
            'tensor': x,
            'dataset of (x, y)': TensorDataset(x, torch.zeros(40)),
            'dataset of x': OnlyImages(x),
            'dataloader': DataLoader(TensorDataset(x, x), batch_size=16),
            'list of batches': list(x.split(16)),
            'generator of tuples': ((batch, None) for batch in x.split(16)),
        }
        values = {name: function(model, data, batch_size=16, generator=seeded(3)) for name, data in forms.items()}
        assert len(set(values.values())) == 1, values


class ExampleVAE(nn.Module):
    """The PyTorch example's interface: encode -> (mu, logvar), decode -> probabilities, nothing else."""

    def __init__(self, reference):
        super().__init__()
        self.reference = reference

    def encode(self, x):
        return self.reference.encode(x)

    def decode(self, z):
        return self.reference.decode(z)


def test_a_model_with_only_encode_and_decode_is_read_as_bernoulli_or_by_its_likelihood(mnist, imperfect):
    x = torch.stack([mnist[i][0] for i in range(20)])
    reference = VAE()
    plain = ExampleVAE(reference)
    for function in (importance_weighted_nll, negative_elbo):
        assert function(plain, x, generator=seeded(1)) == function(reference, x, generator=seeded(1))
    linear, data = imperfect
    gaussian = ExampleVAE(linear)
    gaussian.likelihood, gaussian.sigma = 'gaussian', SIGMA
    assert importance_weighted_nll(gaussian, data[:20], num_samples=5, generator=seeded(2)) == pytest.approx(
        importance_weighted_nll(linear, data[:20], num_samples=5, generator=seeded(2)))


def test_negative_elbo_is_the_training_loss_with_sampled_z(mnist):
    x = torch.stack([mnist[i][0] for i in range(64)])
    model = VAE()
    torch.manual_seed(5)
    value = negative_elbo(model, x, batch_size=64)  # global random state, as in training
    torch.manual_seed(5)
    recon, mu, logvar = model.train()(x)  # reparameterize samples in training mode
    bce = nn.functional.binary_cross_entropy(recon, x, reduction='sum')
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())  # the PyTorch example's formula
    assert value == pytest.approx(((bce + kl) / 64).item(), rel=1e-5)
    assert model.training  # the mode is restored


@pytest.mark.slow
def test_reference_vae_on_real_mnist_iwae_is_below_the_negative_elbo(mnist):
    data = AutoEncoderDataset(Subset(mnist, range(2000)))
    model = VAE()
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3), nn.BCELoss(reduction='sum'),
                  callbacks=[kld_loss()], verbose=0)
    trial.with_train_generator(DataLoader(data, batch_size=128, shuffle=True))
    trial.run(1)
    images = Subset(mnist, range(2000, 2200))  # (image, label) items not seen in training
    elbo = negative_elbo(model, images, generator=seeded(0))
    nll = importance_weighted_nll(model, images, num_samples=100, generator=seeded(0))
    assert 100 < nll < elbo - 2 < 300, (nll, elbo)
    assert model.training  # left as the Trial left it


@pytest.mark.parametrize('kwargs, error, message', [
    ({'num_samples': 0}, ValueError, 'num_samples must be an int >= 1, got 0'),
    ({'num_samples': 2.5}, TypeError, 'num_samples must be an int >= 1, got 2.5'),
    ({'batch_size': 0}, ValueError, 'batch_size must be an int >= 1, got 0'),
    ({'batch_size': '8'}, TypeError, "batch_size must be an int >= 1, got '8'"),
    ({'chunk_size': 0}, ValueError, 'chunk_size must be an int >= 1, got 0'),
    ({'data': torch.zeros(0, D)}, ValueError, 'data holds no images'),
    ({'data': torch.zeros(D)}, ValueError, 'needs a batch dimension'),
    ({'data': 3}, TypeError, 'data must be a tensor, a Dataset or an iterable'),
    ({'data': [[1, 2]]}, TypeError, 'data must yield tensors'),
])
def test_bad_arguments_are_named(kwargs, error, message):
    arguments = {'data': torch.zeros(4, D), **kwargs}
    with pytest.raises(error, match=message):
        importance_weighted_nll(LinearGaussianVAE(), **arguments)


def test_models_that_do_not_fit_the_protocol_are_explained():
    with pytest.raises(TypeError, match='needs encode'):
        negative_elbo(nn.Linear(2, 2), torch.zeros(3, 2))
    no_decoder = nn.Module()
    no_decoder.encode = lambda x: (x, x)
    with pytest.raises(TypeError, match='log_likelihood\\(x, z\\) or decode\\(z\\)'):
        negative_elbo(no_decoder, torch.zeros(3, 2))
    poisson = ExampleVAE(VAE())
    poisson.likelihood = 'poisson'
    with pytest.raises(ValueError, match="model.likelihood must be one of 'bernoulli', 'gaussian', got 'poisson'"):
        importance_weighted_nll(poisson, torch.rand(3, 784))
    gaussian = ExampleVAE(VAE())
    gaussian.likelihood, gaussian.sigma = 'gaussian', -1.0
    with pytest.raises(ValueError, match='model.sigma must be a finite number > 0, got -1.0'):
        negative_elbo(gaussian, torch.rand(3, 784))


# -- the reconstruction term is reconstruction_loss, the KL term kld --

@pytest.mark.parametrize('likelihood', ['bernoulli', 'gaussian'])
def test_negative_elbo_is_reconstruction_loss_plus_kld_computed_by_hand(mnist, likelihood):
    x = torch.stack([mnist[i][0] for i in range(12)])
    model = VAE(hidden_dim=16, latent_dim=3, likelihood=likelihood, sigma=0.3)
    value = negative_elbo(model, x, batch_size=12, generator=seeded(7))
    with torch.no_grad():
        mu, logvar = model.eval().encode(x)
        std = torch.exp(0.5 * logvar)
        z = mu + std * torch.randn(mu.shape, generator=seeded(7))  # the draw negative_elbo makes
        recon = model.decode(z)
        by_hand = reconstruction_loss(recon, x, likelihood, sigma=0.3, reduction='none') + kld(mu, logvar,
                                                                                                reduction='none')
        # ... and independently, from torch.distributions
        flat_recon, flat_x = recon.reshape(12, -1).double(), x.reshape(12, -1).double()
        decoder = (Bernoulli(probs=flat_recon, validate_args=False) if likelihood == 'bernoulli'
                   else Normal(flat_recon, 0.3))
        kl = kl_divergence(Normal(mu.double(), std.double()), Normal(0.0, 1.0)).sum(1)
        reference = (-decoder.log_prob(flat_x).sum(1) + kl).mean().item()
    assert value == pytest.approx(by_hand.mean().item(), rel=1e-6)
    assert value == pytest.approx(reference, rel=1e-5)


def test_a_model_without_log_likelihood_is_scored_with_reconstruction_loss():
    model = LinearGaussianVAE()
    x = model.marginal().sample((8,)).detach()
    plain = ExampleVAE(model)
    plain.likelihood, plain.sigma = 'gaussian', SIGMA
    with torch.no_grad():
        z = torch.randn(8, LATENT)
        expected = -reconstruction_loss(model.decode(z), x, 'gaussian', sigma=SIGMA, reduction='none')
        torch.testing.assert_close(model.log_likelihood(x, z), expected)  # BaseVAE's own, the same formula
    assert negative_elbo(plain, x, generator=seeded(4)) == negative_elbo(model, x, generator=seeded(4))


# -- keyword-only options, the TypeError / ValueError rule --

def test_options_after_model_and_data_are_keyword_only():
    for function in (importance_weighted_nll, negative_elbo):
        parameters = inspect.signature(function).parameters.values()
        assert [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD] == ['model', 'data']


@pytest.mark.parametrize('function, kwargs, error, message', [
    (importance_weighted_nll, {'chunk_size': 2.5}, TypeError, 'chunk_size must be an int >= 1, got 2.5'),
    (importance_weighted_nll, {'num_samples': True}, TypeError, 'num_samples must be an int >= 1, got True'),
    (negative_elbo, {'batch_size': 0}, ValueError, 'batch_size must be an int >= 1, got 0'),
    (negative_elbo, {'batch_size': 8.0}, TypeError, 'batch_size must be an int >= 1, got 8.0'),
])
def test_counts_follow_the_type_and_value_rule(function, kwargs, error, message):
    with pytest.raises(error) as caught:
        function(LinearGaussianVAE(), torch.zeros(4, D), **kwargs)
    assert str(caught.value) == message


# -- a conditional model: the labels of the data reach encode and the likelihood --
def conditional_setup():
    from torchbearer_vae import ConditionalVAE

    torch.manual_seed(0)
    model = ConditionalVAE((1, 4, 4), num_classes=3, latent_dim=2, hidden_dim=8).eval()
    x = torch.rand(12, 1, 4, 4)
    labels = torch.arange(12) % 3
    return model, x, labels


def elbo_by_hand(model, x, labels, seed):
    with torch.no_grad():
        mu, logvar = model.encode(x, labels)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed))
        recon = reconstruction_loss(model.decode(z, labels), x, 'bernoulli', reduction='none')
        return (kld(mu, logvar, reduction='none') + recon).mean().item()


def iwae_by_hand(model, x, labels, k, seed):
    with torch.no_grad():
        mu, logvar = model.encode(x, labels)
        eps = torch.randn((k,) + tuple(mu.shape), generator=torch.Generator().manual_seed(seed))
        z = mu + torch.exp(0.5 * logvar) * eps
        log_q = Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
        log_prior = Normal(0.0, 1.0).log_prob(z).sum(-1)
        log_px = torch.stack([-reconstruction_loss(model.decode(z[i], labels), x, 'bernoulli', reduction='none')
                              for i in range(k)])
        return (math.log(k) - torch.logsumexp((log_px + log_prior - log_q).double(), 0)).mean().item()


@pytest.mark.parametrize('form', ['triples', 'pairs', 'loader'])
def test_a_conditional_model_is_scored_with_the_labels_of_its_data(form):
    model, x, labels = conditional_setup()
    data = {'triples': AutoEncoderDataset(TensorDataset(x, labels), keep_labels=True),
            'pairs': TensorDataset(x, labels),
            'loader': DataLoader(AutoEncoderDataset(TensorDataset(x, labels), keep_labels=True), batch_size=12)}[form]
    elbo = negative_elbo(model, data, batch_size=12, generator=torch.Generator().manual_seed(3))
    assert elbo == pytest.approx(elbo_by_hand(model, x, labels, 3), rel=1e-5)
    other = negative_elbo(model, TensorDataset(x, (labels + 1) % 3), batch_size=12,
                          generator=torch.Generator().manual_seed(3))
    assert other == pytest.approx(elbo_by_hand(model, x, (labels + 1) % 3, 3), rel=1e-5) and other != elbo
    nll = importance_weighted_nll(model, data, num_samples=5, batch_size=12, chunk_size=5,
                                  generator=torch.Generator().manual_seed(4))
    assert nll == pytest.approx(iwae_by_hand(model, x, labels, 5, 4), rel=1e-5)


def test_a_conditional_model_without_labels_in_the_data_is_explained():
    model, x, _ = conditional_setup()
    for data in (x, AutoEncoderDataset(x)):  # images alone; (x, target) pairs, the target an image
        with pytest.raises(ValueError, match=r'ConditionalVAE is conditional \(num_classes=3\): the data must carry '
                                             r'the labels'):
            negative_elbo(model, data)
        with pytest.raises(ValueError, match='keep_labels=True'):
            importance_weighted_nll(model, data, num_samples=2)


def test_labels_in_the_data_change_nothing_for_a_model_that_takes_none(imperfect):
    model, x = imperfect
    with_labels = negative_elbo(model, TensorDataset(x, torch.arange(len(x)) % 3),
                                generator=torch.Generator().manual_seed(0))
    assert with_labels == negative_elbo(model, x, generator=torch.Generator().manual_seed(0))


# -- benchmarks/bench_evaluate.py times importance_weighted_nll against a bare floor: they compute one number --

def test_the_benchmarks_floor_is_the_library_estimate_from_the_same_draws(mnist, monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(os.path.dirname(__file__), '..', 'benchmarks'))
    import bench_evaluate

    torch.manual_seed(0)
    model = VAE().eval()
    x = torch.stack([mnist[i][0] for i in range(40)])
    # the floor decodes 40 images (2 draws of a batch of 20) per pass, the library 2 draws per chunk: the same noise
    floor = bench_evaluate.floor(model, x, 7, 20, 40, seed=3)
    ours = importance_weighted_nll(model, x, num_samples=7, batch_size=20, chunk_size=2, generator=seeded(3))
    assert floor == pytest.approx(ours, rel=1e-6)
    assert bench_evaluate.floor(model, x, 7, 20, 40, seed=4) != pytest.approx(ours, rel=1e-6)  # other draws


def test_reconstruction_psnr_is_the_psnr_of_the_decoded_posterior_means_over_all_values():
    from stand_ins import ProbeVAE

    x = torch.rand(7, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    model = ProbeVAE()
    recon = x[:, :, 0, :].reshape(7, 1, 3, 1).expand(-1, 1, 3, 3)  # row r painted with the top row's value r
    mse = (recon - x).pow(2).mean().item()
    assert reconstruction_psnr(model, x, batch_size=3) == pytest.approx(10 * math.log10(1 / mse), rel=1e-6)
    assert model.modes and all(mode == (False, False) for mode in model.modes)  # eval mode, no gradients
    assert reconstruction_psnr(model, x[:, :, :1, :1].expand(-1, 1, 3, 3)) == math.inf  # flat images: exact


def test_reconstruction_psnr_clamps_a_gaussian_decoder_s_means_to_the_pixel_range():
    model = BaseVAE.__new__(ConvVAE)  # a ConvVAE whose decoder returns 2.0 everywhere: clamped to 1
    torch.nn.Module.__init__(model)
    model.encode = lambda x: (torch.zeros(x.shape[0], 2), torch.zeros(x.shape[0], 2))
    model.decode = lambda z: torch.full((z.shape[0], 3, 4, 4), 2.0)
    x = torch.full((5, 3, 4, 4), 0.9)
    assert reconstruction_psnr(model, x) == pytest.approx(20.0)  # MSE 0.01
    with pytest.raises(TypeError, match='needs a model with encode'):
        reconstruction_psnr(nn.Linear(2, 2), x)


def test_a_calibrated_decoder_is_what_the_elbo_and_iwae_score_and_a_fixed_sigma_checkpoint_stays_fixed(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(8, 3, 8, 8)
    calibrated = ConvVAE((3, 8, 8), latent_dim=2, hidden_dim=8, channels=(4, 4), likelihood='gaussian', sigma=None)
    z = torch.randn(8, 2)
    means = calibrated.decode(z).detach()
    expected = Normal(means, (x - means).pow(2).mean().sqrt()).log_prob(x).reshape(8, -1).sum(1)
    torch.testing.assert_close(calibrated.log_likelihood(x, z).detach(), expected)
    elbo = negative_elbo(calibrated, x, batch_size=8)
    assert math.isfinite(elbo) and math.isfinite(importance_weighted_nll(calibrated, x, num_samples=4))
    # A model saved with a fixed sigma (every run before the calibrated decoder) is rebuilt and scored with it.
    fixed = ConvVAE((3, 8, 8), latent_dim=2, hidden_dim=8, channels=(4, 4), likelihood='gaussian', sigma=0.1)
    save_checkpoint(tmp_path / 'fixed.pt', fixed)
    rebuilt = model_from_checkpoint(tmp_path / 'fixed.pt')
    assert rebuilt.sigma == 0.1
    means = rebuilt.decode(z).detach()
    torch.testing.assert_close(rebuilt.log_likelihood(x, z).detach(),
                               Normal(means, 0.1).log_prob(x).reshape(8, -1).sum(1))
    save_checkpoint(tmp_path / 'calibrated.pt', calibrated)
    assert model_from_checkpoint(tmp_path / 'calibrated.pt').sigma is None
