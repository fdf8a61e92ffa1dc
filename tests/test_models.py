import pytest
import torch

from torchbearer_vae import LOGVAR, MU, VAE


def test_reference_architecture_matches_the_pytorch_example():
    model = VAE()
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(400, 784), (400,), (20, 400), (20,), (20, 400), (20,), (400, 20), (400,), (784, 400), (784,)]


def test_forward_without_state_is_the_pytorch_way_and_keeps_the_input_shape():
    model = VAE()
    recon, mu, logvar = model(torch.rand(3, 1, 28, 28))
    assert recon.shape == (3, 1, 28, 28) and mu.shape == logvar.shape == (3, 20)
    assert recon.min() >= 0 and recon.max() <= 1
    flat, _, _ = model(torch.rand(3, 784))
    assert flat.shape == (3, 784)


def test_forward_with_state_stores_the_posterior():
    model = VAE(input_shape=(3, 8, 8), hidden_dim=16, latent_dim=4)
    state = {}
    recon = model(torch.rand(2, 3, 8, 8), state=state)
    assert recon.shape == (2, 3, 8, 8)
    assert state[MU].shape == state[LOGVAR].shape == (2, 4)
    assert isinstance(VAE(use_state=False)(torch.rand(2, 784), state={}), tuple)


def test_reparameterize_samples_in_training_and_uses_the_mean_in_eval():
    model = VAE()
    mu, logvar = torch.zeros(1000, 20), torch.full((1000, 20), 2 * torch.log(torch.tensor(3.0)).item())
    z = model.reparameterize(mu, logvar)
    assert z.std().item() == pytest.approx(3.0, rel=0.05)
    model.eval()
    assert torch.equal(model.reparameterize(mu, logvar), mu)


def test_sample_decodes_prior_draws_reproducibly():
    model = VAE(latent_dim=5)
    first = model.sample(6, generator=torch.Generator().manual_seed(3))
    second = model.sample(6, generator=torch.Generator().manual_seed(3))
    assert first.shape == (6, 1, 28, 28) and torch.equal(first, second) and not first.requires_grad


@pytest.mark.parametrize('kwargs, message', [
    ({'input_shape': (1, 0, 28)}, 'input_shape'),
    ({'input_shape': 'mnist'}, 'input_shape'),
    ({'latent_dim': 0}, 'latent_dim must be an int >= 1'),
    ({'hidden_dim': 2.5}, 'hidden_dim must be an int >= 1'),
])
def test_bad_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VAE(**kwargs)


def test_wrong_input_shape_is_explained():
    with pytest.raises(ValueError, match=r'input_shape=\(1, 28, 28\).*\(2, 3, 32, 32\)'):
        VAE()(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match='n must be an int >= 1'):
        VAE().sample(0)
