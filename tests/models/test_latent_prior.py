"""Priors fitted to a trained autoencoder's codes: what is fitted for each kind of model, drawing, saving, pictures."""
import pytest
import torch
import torchbearer
from torch import nn

from torchbearer_vae import (
    VAE,
    VQVAE,
    CategoricalPrior,
    CheckpointError,
    ConditionalVAE,
    GaussianMixture,
    SampleSaver,
    fit_latent_prior,
    latent_prior_from_state_dict,
    latent_prior_state_dict,
)


class PlainAutoEncoder(nn.Module):
    """A plain autoencoder with encode and decode: a 3-number code."""

    def __init__(self):
        super().__init__()
        self.latent_dim = 3
        self.encoder, self.decoder = nn.Linear(16, 3), nn.Linear(3, 16)

    def encode(self, x):
        return self.encoder(x.reshape(len(x), -1))

    def decode(self, z):
        return torch.sigmoid(self.decoder(z)).reshape(len(z), 1, 4, 4)


def test_a_vaes_prior_is_a_mixture_fitted_to_the_posterior_means():
    torch.manual_seed(0)
    model = VAE(latent_dim=2, hidden_dim=8)
    images = torch.rand(300, 1, 28, 28)
    prior = fit_latent_prior(model, images, components=1, generator=torch.Generator().manual_seed(0))
    assert isinstance(prior, GaussianMixture) and prior.dim == 2
    with torch.no_grad():
        means = model.eval().encode(images)[0].double()
    # one Gaussian: the maximum-likelihood fit is the codes' mean and (biased) covariance
    assert torch.allclose(prior.means[0], means.mean(0), atol=1e-6)
    assert torch.allclose(prior.covariances[0], torch.cov(means.T, correction=0), atol=1e-5)
    model.train()  # the model's mode is restored after the fit
    fit_latent_prior(model, images, components=1)
    assert model.training


def test_a_plain_autoencoders_codes_are_fitted_and_decoded():
    torch.manual_seed(0)
    model = PlainAutoEncoder()
    images = torch.rand(120, 1, 4, 4)
    prior = fit_latent_prior(model, torch.utils.data.TensorDataset(images, images), components=2,
                             covariance='diag', batch_size=32, generator=torch.Generator().manual_seed(1))
    assert isinstance(prior, GaussianMixture) and prior.covariance == 'diag' and prior.dim == 3
    assert model.decode(prior.sample(5)).shape == (5, 1, 4, 4)


def test_a_vq_vaes_prior_is_the_frequency_of_each_code_at_each_position():
    torch.manual_seed(0)
    model = VQVAE((1, 8, 8), num_codes=6, code_dim=3, channels=(4, 8))
    model(torch.rand(32, 1, 8, 8))  # a training call initialises the codebook
    images = torch.rand(40, 1, 8, 8)
    prior = fit_latent_prior(model, images, smoothing=0.0)
    assert isinstance(prior, CategoricalPrior) and prior.latent_shape == (3, 2, 2) and prior.dim == model.latent_dim
    with torch.no_grad():
        indices = model.quantizer.nearest(model.eval().encode(images)).reshape(40, 4)
    for position in range(4):
        counts = torch.bincount(indices[:, position], minlength=6).double()
        assert torch.allclose(prior.probabilities[position], counts / 40)
    draws = prior.sample(7, generator=torch.Generator().manual_seed(0))
    # every drawn vector is a code of the codebook, at a position where the data used it
    maps = draws.reshape(7, 3, 4).permute(0, 2, 1)
    for n in range(7):
        for position in range(4):
            matches = (model.quantizer.codebook == maps[n, position]).all(1).nonzero()
            assert len(matches) >= 1 and prior.probabilities[position, matches[0, 0]] > 0
    assert model.decode(draws).shape == (7, 1, 8, 8)


def test_categorical_smoothing_keeps_every_code_possible():
    prior = CategoricalPrior.fit(torch.zeros(10, 2, dtype=torch.long), torch.eye(4), (4, 1, 2), smoothing=1.0)
    assert torch.allclose(prior.probabilities[0], torch.tensor([11, 1, 1, 1], dtype=torch.float64) / 14)


@pytest.mark.parametrize('kind', ['mixture', 'categorical'])
def test_a_prior_round_trips_through_a_weights_only_checkpoint(tmp_path, kind):
    torch.manual_seed(0)
    if kind == 'mixture':
        prior = fit_latent_prior(VAE(latent_dim=3, hidden_dim=8), torch.rand(100, 1, 28, 28), components=2)
    else:
        prior = CategoricalPrior.fit(torch.randint(0, 5, (30, 2, 2)), torch.randn(5, 3), (3, 2, 2))
    torch.save({'prior': latent_prior_state_dict(prior)}, tmp_path / 'c.pt')
    loaded = latent_prior_from_state_dict(torch.load(tmp_path / 'c.pt', weights_only=True)['prior'])
    assert type(loaded) is type(prior)
    first, second = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(loaded.sample(6, generator=first), prior.sample(6, generator=second))


@pytest.mark.parametrize('state, message', [
    ({'kind': 'flow'}, "a saved latent prior has a 'kind' of 'gaussian_mixture', 'categorical', got 'flow'"),
    ([1, 2], "a saved latent prior has a 'kind'"),
    ({'kind': 'categorical', 'probabilities': torch.ones(2, 3), 'codebook': torch.eye(3), 'latent_shape': [3, 1, 2]},
     'the saved categorical prior is not valid: probabilities must be finite, >= 0, and each row must sum to 1'),
    ({'kind': 'gaussian_mixture', 'weights': torch.ones(1)}, 'a saved GaussianMixture is a dict of'),
])
def test_a_damaged_saved_prior_is_refused_in_one_line(state, message):
    with pytest.raises(CheckpointError, match=message):
        latent_prior_from_state_dict(state)


def test_models_it_cannot_fit_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r'ConditionalVAE is conditional \(num_classes=3\): fit one per class'):
        fit_latent_prior(ConditionalVAE(num_classes=3), torch.rand(10, 1, 28, 28))
    with pytest.raises(TypeError, match=r'fit_latent_prior needs a model with encode\(\)'):
        fit_latent_prior(nn.Linear(2, 2), torch.rand(10, 2))
    with pytest.raises(ValueError, match='fit_latent_prior got no images'):
        fit_latent_prior(VAE(), [])


def test_sample_saver_draws_from_the_fitted_prior(tmp_path):
    torch.manual_seed(0)
    model = PlainAutoEncoder()
    prior = fit_latent_prior(model, torch.rand(60, 1, 4, 4), components=2)
    saver = SampleSaver(folder=tmp_path, filename='s.png', num_images=4, nrow=2, seed=5, prior=prior)
    expected = prior.sample(4, generator=torch.Generator().manual_seed(5)).float()
    assert torch.equal(saver.noise(3), expected)
    picture = saver.draw(model, {})
    with torch.no_grad():
        decoded = model.decode(expected)
    assert torch.equal(picture, decoded)  # the batch the base tiles and writes
    with pytest.raises(ValueError, match=r'draws codes of 3 values, but VAE has latent_dim=20: fit the prior'):
        SampleSaver(folder=None, prior=prior).on_start({torchbearer.MODEL: VAE()})
    with pytest.raises(TypeError, match='prior must be a GaussianMixture or a CategoricalPrior'):
        SampleSaver(prior='gmm')
