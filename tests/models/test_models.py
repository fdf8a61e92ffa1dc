import math

import pytest
import torch
from stand_ins import classifier
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset
from torchbearer import Trial

from torchbearer_vae import (
    LABEL,
    LOGVAR,
    MU,
    VAE,
    AutoEncoderDataset,
    BaseVAE,
    ConditionalVAE,
    ConvVAE,
    MissingStateError,
    SpatialVAE,
    TensorLoader,
    kld,
    kld_loss,
    load_batch_with_labels,
    load_checkpoint,
    model_from_checkpoint,
    negative_elbo,
    reconstruction_psnr,
    save_checkpoint,
    train_val_split,
    vae_loss,
)


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


@pytest.mark.parametrize('kwargs, error, message', [
    ({'input_shape': (1, 0, 28)}, ValueError, 'input_shape'),
    ({'input_shape': 'mnist'}, TypeError, 'input_shape'),
    ({'latent_dim': 0}, ValueError, 'latent_dim must be an int >= 1'),
    ({'latent_dim': 2.5}, TypeError, 'latent_dim must be an int >= 1, got 2.5'),  # a wrong type: TypeError
    ({'hidden_dim': 2.5}, TypeError, 'hidden_dim must be an int >= 1'),
    ({'likelihood': 'poisson'}, ValueError, "likelihood must be one of 'bernoulli', 'gaussian', got 'poisson'"),
    ({'sigma': 0}, ValueError, 'sigma must be a finite number > 0, got 0'),
    ({'sigma': float('inf')}, ValueError, 'sigma must be a finite number > 0'),
])
def test_bad_construction(kwargs, error, message):
    with pytest.raises(error, match=message):
        VAE(**kwargs)


def test_wrong_input_shape_is_explained():
    with pytest.raises(ValueError, match=r'input_shape=\(1, 28, 28\).*\(2, 3, 32, 32\)'):
        VAE()(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match='num_images must be an int >= 1'):
        VAE().sample(0)


# -- the shared base: likelihoods and criteria --

def test_bernoulli_log_likelihood_and_criterion_are_the_bce_of_the_decoder():
    model = VAE(input_shape=(1, 4, 4), hidden_dim=8, latent_dim=2)
    x, z = torch.bernoulli(torch.rand(5, 1, 4, 4)), torch.randn(5, 2)
    probs = model.decode(z)
    expected = torch.distributions.Bernoulli(probs=probs).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(model.log_likelihood(x, z), expected)
    torch.testing.assert_close(model.log_likelihood(x.flatten(1), z), expected)  # flat images too
    torch.testing.assert_close(model.reconstruction_loss(probs, x),
                               torch.nn.BCELoss(reduction='sum')(probs, x))


def test_gaussian_log_likelihood_has_the_fixed_sigma_and_its_constant():
    model = VAE(input_shape=(3, 2, 2), hidden_dim=8, latent_dim=2, likelihood='gaussian', sigma=0.3)
    x, z = torch.randn(4, 3, 2, 2), torch.randn(4, 2)
    mean = model.decode(z)
    expected = torch.distributions.Normal(mean, 0.3).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(model.log_likelihood(x, z), expected)
    constant = 4 * 12 * 0.5 * math.log(2 * math.pi * 0.3 ** 2)
    torch.testing.assert_close(model.reconstruction_loss(mean, x),
                               torch.nn.MSELoss(reduction='sum')(mean, x) / (2 * 0.3 ** 2) + constant)


def test_gaussian_decoder_means_are_not_squashed():
    model = VAE(input_shape=4, hidden_dim=8, latent_dim=2, likelihood='gaussian')
    with torch.no_grad():
        model.fc4.bias.fill_(5.0)
    assert model.decode(torch.zeros(3, 2)).min() > 1  # no sigmoid: means may leave [0, 1]
    assert VAE(input_shape=4, hidden_dim=8, latent_dim=2).decode(torch.zeros(3, 2)).max() < 1


def test_a_subclass_of_the_base_supplies_only_the_networks():
    class Linear(BaseVAE):
        def __init__(self):
            super().__init__(input_shape=(1, 2, 2), latent_dim=3)
            self.enc, self.dec = torch.nn.Linear(4, 6), torch.nn.Linear(3, 4)

        def forward_encoder(self, x):
            return self.enc(x.flatten(1)).chunk(2, dim=1)

        def forward_decoder(self, z):
            return self.dec(z)

    model = Linear()
    state = {}
    assert model(torch.rand(2, 4), state=state).shape == (2, 4) and state[MU].shape == (2, 3)
    assert model.sample(5).shape == (5, 1, 2, 2)
    with pytest.raises(NotImplementedError, match='must implement forward_encoder'):
        BaseVAE(input_shape=4, latent_dim=2).encode(torch.rand(1, 4))


# -- ConvVAE --

@pytest.mark.parametrize('shape', [(1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 8, 12)])
def test_conv_vae_keeps_the_shape_both_ways(shape):
    model = ConvVAE(input_shape=shape, latent_dim=4, channels=(4, 8), hidden_dim=16)
    x = torch.rand((2,) + shape)
    recon, mu, logvar = model(x)
    assert recon.shape == x.shape and mu.shape == logvar.shape == (2, 4)
    assert 0 <= recon.min() and recon.max() <= 1
    state = {}
    assert model(x.flatten(1), state=state).shape == (2, math.prod(shape))  # flat inputs come back flat
    assert state[MU].shape == (2, 4)
    assert model.sample(3).shape == (3,) + shape


def train_one_epoch(model, loader, criterion=None):
    criterion = criterion or model.reconstruction_loss
    callbacks = [kld_loss()] if model.use_state else []
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3), criterion, metrics=['loss'],
                  callbacks=callbacks, verbose=0)
    return trial.with_train_generator(loader)


@pytest.mark.slow
@pytest.mark.parametrize('likelihood', ['bernoulli', 'gaussian'])
def test_conv_vae_learns_real_mnist_in_one_epoch(mnist, likelihood):
    loader = DataLoader(AutoEncoderDataset(Subset(mnist, range(2000))), batch_size=32, shuffle=True)
    held_out = torch.stack([mnist[i][0] for i in range(2000, 2200)])
    model = ConvVAE(input_shape=(1, 28, 28), latent_dim=16, channels=(16, 32), hidden_dim=128, likelihood=likelihood)
    before = negative_elbo(model, held_out, generator=torch.Generator().manual_seed(0))
    train_one_epoch(model, loader).run(1)
    after = negative_elbo(model, held_out, generator=torch.Generator().manual_seed(0))
    # Bernoulli starts near 784 log 2 = 543 nats per image and falls to about 210; Gaussian (sigma 0.1)
    # starts near +2500 (outputs near 0: 50 * sum(x^2) - 1085) and falls to about 1300, the mean image.
    assert 0 < after < 0.6 * before, (before, after)


def test_conv_vae_trains_on_random_colour_images_both_ways():
    data = torch.rand(32, 3, 32, 32)
    loader = DataLoader(TensorDataset(data, data), batch_size=16)
    model = ConvVAE(input_shape=(3, 32, 32), latent_dim=8, channels=(8, 16), hidden_dim=32, likelihood='gaussian')
    before = [p.detach().clone() for p in model.parameters()]
    history = train_one_epoch(model, loader).run(1)
    assert math.isfinite(history[0]['loss'])
    assert all(not torch.equal(old, new) for old, new in zip(before, model.parameters()))
    pytorch_way = ConvVAE(input_shape=(3, 32, 32), latent_dim=8, channels=(8, 16), hidden_dim=32, use_state=False)
    history = train_one_epoch(pytorch_way, loader, criterion=vae_loss).run(1)
    assert math.isfinite(history[0]['loss'])


@pytest.mark.parametrize('kwargs, error, message', [
    ({'input_shape': (1, 30, 28)}, ValueError, r'multiples of 4.*\(1, 30, 28\)'),
    ({'input_shape': (1, 28, 26)}, ValueError, 'multiples of 4'),
    ({'input_shape': (28, 28)}, ValueError, r'input_shape must be 3 ints >= 1, e.g. \(3, 32, 32\): channels, height, '
                                            r'width, got \(28, 28\)'),
    ({'input_shape': (0, 28, 28)}, ValueError, 'input_shape must be 3 ints >= 1'),
    ({'input_shape': 784}, TypeError, 'input_shape must be 3 ints'),  # one number is not a shape of three
    ({'channels': (32,)}, ValueError, 'channels must be 2 ints'),
    ({'channels': (32, 0)}, ValueError, r'channels must be 2 ints >= 1.*got \(32, 0\)'),
    ({'latent_dim': 0}, ValueError, 'latent_dim must be an int >= 1, got 0'),
    ({'hidden_dim': -1}, ValueError, 'hidden_dim must be an int >= 1'),
    ({'likelihood': 'laplace'}, ValueError, 'likelihood must be'),
])
def test_conv_vae_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        ConvVAE(**kwargs)


def test_conv_vae_wrong_input_is_explained():
    with pytest.raises(ValueError, match=r'ConvVAE\(input_shape=\(3, 32, 32\)\).*\(2, 1, 28, 28\)'):
        ConvVAE(input_shape=(3, 32, 32))(torch.rand(2, 1, 28, 28))


# -- SpatialVAE --

@pytest.mark.parametrize('shape, channels, latent_shape', [
    ((3, 32, 32), (32, 64), (4, 8, 8)), ((1, 28, 28), (8,), (4, 14, 14)), ((3, 16, 24), (4, 4, 4), (4, 2, 3)),
])
def test_spatial_vae_codes_a_map_flattened_for_the_rest_of_the_package(shape, channels, latent_shape):
    model = SpatialVAE(input_shape=shape, channels=channels, latent_channels=4)
    assert model.latent_shape == latent_shape and model.latent_dim == math.prod(latent_shape)
    x = torch.rand((2,) + shape)
    recon, mu, logvar = model(x)
    assert recon.shape == x.shape and mu.shape == logvar.shape == (2, model.latent_dim)
    state = {}
    assert model(x, state=state).shape == x.shape and state[MU].shape == (2, model.latent_dim)
    assert model.sample(3).shape == (3,) + shape


def test_spatial_vae_keeps_where_things_are():
    """Each position of the map codes its own neighbourhood: changing one corner of the image changes only the codes
    near that corner (a fully connected layer would change every one)."""
    model = SpatialVAE(input_shape=(3, 32, 32), channels=(8, 8), latent_channels=2).eval()
    x = torch.rand(1, 3, 32, 32)
    changed = x.clone()
    changed[..., :4, :4] = 1 - changed[..., :4, :4]
    with torch.no_grad():
        before, after = (model.encode(image)[0].reshape(model.latent_shape) for image in (x, changed))
    moved = (before - after).abs().amax(dim=0) > 0
    assert moved[:2, :2].all() and not moved[3:, :].any() and not moved[:, 3:].any()


@pytest.mark.parametrize('kwargs, error, message', [
    ({'input_shape': (3, 30, 32)}, ValueError, r'2 stride-2 convolutions .* multiples of 4, got input_shape=\(3, 30'),
    ({'input_shape': (3, 20, 20), 'channels': (4, 4, 4)}, ValueError, 'multiples of 8'),
    ({'input_shape': (32, 32, 3)}, ValueError, r'looks channels-last: pass \(3, 32, 32\)'),
    ({'input_shape': 784}, TypeError, 'input_shape must be 3 ints'),
    ({'channels': ()}, TypeError, 'channels must be'),
    ({'channels': (32, 0)}, ValueError, 'channels must be'),
    ({'latent_channels': 0}, ValueError, 'latent_channels must be an int >= 1, got 0'),
    ({'likelihood': 'laplace'}, ValueError, 'likelihood must be'),
])
def test_spatial_vae_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        SpatialVAE(**kwargs)


def test_spatial_vae_round_trips_through_a_checkpoint(tmp_path):
    model = SpatialVAE(input_shape=(3, 16, 16), channels=(8,), latent_channels=3, likelihood='gaussian', sigma=None)
    save_checkpoint(tmp_path / 'model.pt', model)
    rebuilt = model_from_checkpoint(load_checkpoint(tmp_path / 'model.pt'))
    assert type(rebuilt) is SpatialVAE and rebuilt.config == model.config and rebuilt.latent_shape == (3, 8, 8)
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(rebuilt.decode(rebuilt.encode(x)[0]), model.eval().decode(model.encode(x)[0]))


def photo_patches(count, size=16, seed=0):
    """``count`` random ``size`` x ``size`` patches of scikit-learn's two photographs, in [0, 1]."""
    from sklearn.datasets import load_sample_images
    photos = [torch.from_numpy(photo.copy()).permute(2, 0, 1).float() / 255 for photo in load_sample_images().images]
    generator = torch.Generator().manual_seed(seed)
    patches = []
    for index in range(count):
        photo = photos[index % 2]
        top, left = (int(torch.randint(0, extent - size + 1, (1,), generator=generator)) for extent in photo.shape[1:])
        patches.append(photo[:, top:top + size, left:left + size])
    return torch.stack(patches)


@pytest.mark.slow
def test_spatial_vae_reconstructs_photographs_far_closer_than_a_vector_code():
    """Real photographs, the same Trial, steps and Gaussian decoder: the map beats the ConvVAE's vector code."""
    patches = photo_patches(1100)
    train, held_out = patches[:1000], patches[1000:]
    loader = DataLoader(TensorDataset(train, train), batch_size=32, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    psnr = {}
    for name, model in (('conv', ConvVAE((3, 16, 16), latent_dim=16, likelihood='gaussian', sigma=None)),
                        ('spatial', SpatialVAE((3, 16, 16), likelihood='gaussian', sigma=None))):
        torch.manual_seed(0)
        train_one_epoch(model, loader).run(10)
        psnr[name] = reconstruction_psnr(model, held_out)
    assert psnr['spatial'] > psnr['conv'] + 2, psnr


# -- the logvar clamp: float16 autocast stays finite --

@pytest.mark.parametrize('make', [lambda clamp: VAE(hidden_dim=32, latent_dim=4, logvar_clamp=clamp),
                                  lambda clamp: ConvVAE(channels=(4, 8), hidden_dim=16, latent_dim=4,
                                                        logvar_clamp=clamp)])
def test_the_logvar_clamp_bounds_logvar_and_keeps_float16_autocast_finite(make, mnist):
    plain, clamped = make(None), make((-30, 20))
    clamped.load_state_dict(plain.state_dict())
    for model in (plain, clamped):
        with torch.no_grad():  # a runaway encoder: logvar about 60, and exp(60 / 2) > float16's 65504
            (model.fc22 if hasattr(model, 'fc22') else model.fc_logvar).bias.fill_(60.0)
    x = mnist.data[:8].unsqueeze(1).float() / 255  # real digits
    assert plain.encode(x)[1].min() > 50
    mu, logvar = clamped.encode(x)
    assert logvar.max() == 20 and logvar.min() >= -30
    torch.testing.assert_close(mu, plain.encode(x)[0])
    with torch.autocast('cpu', dtype=torch.float16):
        recon, mu, logvar = clamped.train()(x)
    assert logvar.dtype == torch.float16 and torch.isfinite(recon).all()
    value = kld(mu, logvar)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    # Without the clamp, float16's exp(logvar / 2) overflows and the images are NaN.
    with torch.autocast('cpu', dtype=torch.float16):
        recon, _, _ = plain.train()(x)
    assert not torch.isfinite(recon).all()


def test_the_clamp_is_kept_by_checkpoints_and_shown(tmp_path):
    model = VAE(latent_dim=3, logvar_clamp=(-30, 20), likelihood='gaussian', sigma=0.2)
    save_checkpoint(tmp_path / 'c.pt', model)
    rebuilt = model_from_checkpoint(load_checkpoint(tmp_path / 'c.pt'))
    assert rebuilt.logvar_clamp == (-30.0, 20.0) and rebuilt.likelihood == 'gaussian' and rebuilt.sigma == 0.2
    assert 'logvar_clamp=(-30.0, 20.0)' in repr(rebuilt) and VAE().logvar_clamp is None


@pytest.mark.parametrize('clamp, error, message', [
    ((20, -30), ValueError, 'low < high'), ((0, math.inf), ValueError, 'finite'),
    ((1,), TypeError, 'two numbers'), ('12', TypeError, 'two numbers'), (5, TypeError, 'two numbers'),
])
def test_bad_clamps_are_refused(clamp, error, message):
    with pytest.raises(error, match=message):
        VAE(logvar_clamp=clamp)


# -- ConditionalVAE --

def test_conditional_vae_both_ways_and_the_label_changes_the_images(mnist):
    model = ConditionalVAE(num_classes=10, latent_dim=2)
    x, labels = torch.stack([mnist[i][0] for i in range(6)]), mnist.targets[:6]
    recon, mu, logvar = model.eval()(x, labels)
    state = {LABEL: labels}
    assert torch.equal(model(x, state=state), recon)  # the state way reads state[LABEL]
    assert torch.equal(state[MU], mu)
    z = torch.zeros(2, 2)
    assert not torch.allclose(model.decode(z, torch.tensor([0, 0])), model.decode(z, torch.tensor([1, 1])))
    assert torch.equal(model.decode(z, 3), model.decode(z, torch.tensor([3, 3])))
    soft = torch.full((2, 10), 0.1)  # class weights are taken as they are
    assert model.decode(z, soft).shape == (2, 1, 28, 28)
    with pytest.raises(MissingStateError, match='keep_labels=True'):
        model(x)
    with pytest.raises(ValueError, match=r'class indices in \[0, 10\)'):
        model(x, torch.full((6,), 10))
    with pytest.raises(ValueError, match='one class index per image'):
        model(x, labels[:5])


@pytest.mark.parametrize('num_classes, error, message', [
    (1, ValueError, 'num_classes must be an int >= 2, got 1'),
    (2.0, TypeError, 'num_classes must be an int >= 2, got 2.0'),
])
def test_conditional_vae_needs_two_classes_or_more(num_classes, error, message):
    with pytest.raises(error, match=message):
        ConditionalVAE(num_classes=num_classes)


def labelled(mnist, indices):
    return AutoEncoderDataset(Subset(mnist, list(indices)), keep_labels=True)


def train_with_labels(model, train, val, epochs):
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3), nn.BCELoss(reduction='sum'), metrics=['loss'],
                  callbacks=[kld_loss()], verbose=0)
    trial.with_generators(TensorLoader(train, 100, shuffle=True, seed=0), TensorLoader(val, 100))
    return trial.with_loader(load_batch_with_labels).run(epochs)


def test_conditional_vae_learns_in_a_trial_the_state_way(mnist):
    model = ConditionalVAE(latent_dim=2, hidden_dim=64)
    history = train_with_labels(model, labelled(mnist, range(1000)), labelled(mnist, range(9000, 9500)), epochs=2)
    assert history[1]['val_loss'] < history[0]['val_loss'] < 300 * 500


def test_conditional_vae_config_round_trips_through_a_checkpoint(tmp_path):
    model = ConditionalVAE((1, 8, 8), num_classes=4, latent_dim=3, hidden_dim=16, logvar_clamp=(-30.0, 20.0))
    save_checkpoint(tmp_path / 'model.pt', model)
    rebuilt = model_from_checkpoint(tmp_path / 'model.pt')
    assert type(rebuilt) is ConditionalVAE and rebuilt.config == model.config and rebuilt.num_classes == 4
    z, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 0])
    assert torch.equal(rebuilt.decode(z, labels), model.eval().decode(z, labels))


@pytest.mark.slow
def test_conditional_samples_are_the_digits_asked_for(mnist):
    train, val = train_val_split(AutoEncoderDataset(mnist, keep_labels=True), val_fraction=0.1, seed=1)
    model = ConditionalVAE(latent_dim=2)
    train_with_labels(model, train, val, epochs=10)
    images, _, labels = next(iter(TensorLoader(train, len(train))))
    held_out, _, truth = next(iter(TensorLoader(val, len(val))))
    net = classifier(images, labels)
    with torch.no_grad():
        assert (net(held_out).argmax(1) == truth).float().mean() > 0.93  # the judge is good
        asked = torch.arange(10).repeat_interleave(100)
        samples = model.eval().sample(1000, labels=asked, generator=torch.Generator().manual_seed(0))
        accuracy = (net(samples).argmax(1) == asked).float().mean().item()
    print(f"conditional samples labelled as asked: {accuracy:.1%}")
    assert accuracy >= 0.9, accuracy


def test_conditional_sample_takes_the_labels_as_basevae_takes_its_inputs():
    # BaseVAE.sample(num_images, *inputs) passes its extra inputs on positionally: the labels are ConditionalVAE's.
    model = ConditionalVAE(input_shape=(1, 4, 4), num_classes=3, latent_dim=2, hidden_dim=5)
    positional = model.sample(4, torch.tensor([0, 1, 2, 0]), generator=torch.Generator().manual_seed(0))
    keyword = model.sample(4, labels=torch.tensor([0, 1, 2, 0]), generator=torch.Generator().manual_seed(0))
    assert torch.equal(positional, keyword)
