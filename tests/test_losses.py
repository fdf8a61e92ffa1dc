"""The pure objective functions: kld, reconstruction_loss and vae_loss, against torch.distributions."""
import copy
import inspect
import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.distributions import Bernoulli, Normal, kl_divergence

import torchbearer_vae
from torchbearer_vae import kld, reconstruction_loss, vae_loss
from torchbearer_vae.losses import MIN_SIGMA, REDUCTIONS

BOUNDED = dict(deadline=None, database=None, derandomize=True)
# A batch of images of a few shapes (flat, grey, colour), seeded: what the likelihood tests draw.
IMAGES = dict(batch=st.integers(1, 5), shape=st.sampled_from([(6,), (1, 3, 4), (3, 2, 2)]),
              seed=st.integers(0, 2 ** 16))


def reference_kl(mu, logvar):
    posterior = Normal(mu.double(), torch.exp(0.5 * logvar.double()))
    return kl_divergence(posterior, Normal(torch.zeros_like(posterior.loc), torch.ones_like(posterior.loc)))


@pytest.mark.parametrize('shape', [(16, 20), (3, 2, 5), (1, 1)])
def test_kld_matches_torch_distributions_for_every_reduction(shape):
    mu, logvar = torch.randn(shape) * 2, torch.randn(shape) * 3
    per_element = reference_kl(mu, logvar)
    per_sample = per_element.reshape(shape[0], -1).sum(1)
    torch.testing.assert_close(kld(mu, logvar, reduction='sum').double(), per_element.sum(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(kld(mu, logvar, reduction='batchmean').double(), per_sample.mean(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(kld(mu, logvar, reduction='none').double(), per_sample, rtol=1e-5, atol=1e-4)
    assert kld(mu, logvar).shape == () and kld(mu, logvar, reduction='none').shape == (shape[0],)


def test_kld_is_zero_for_the_prior_and_has_the_right_gradient():
    mu = torch.zeros(4, 3, requires_grad=True)
    logvar = torch.zeros(4, 3, requires_grad=True)
    value = kld(mu, logvar)
    value.backward()
    assert value.item() == 0.0
    assert torch.all(mu.grad == 0) and torch.all(logvar.grad == 0)


@pytest.mark.parametrize('logvar_value', [-80.0, -30.0, -1e-6, 1e-6, 20.0, 80.0, 88.0])
def test_kld_is_finite_and_accurate_for_extreme_logvar(logvar_value):
    mu = torch.full((2, 3), 1.5)
    logvar = torch.full((2, 3), logvar_value)
    value = kld(mu, logvar, reduction='none')
    assert torch.isfinite(value).all()
    exact = 3 * 0.5 * (1.5 ** 2 + math.expm1(logvar_value) - logvar_value)
    torch.testing.assert_close(value.double(), torch.full((2,), exact, dtype=torch.double), rtol=1e-5, atol=1e-6)


def test_kld_near_zero_logvar_is_precise():
    # exp(lv) - 1 - lv loses everything to cancellation in float32 here; expm1 does not.
    logvar = torch.full((1, 1), 1e-3)
    exact = 0.5 * (math.expm1(1e-3) - 1e-3)
    assert abs(kld(torch.zeros(1, 1), logvar).item() - exact) / exact < 1e-3


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_kld_low_precision_inputs_do_not_overflow(dtype):
    mu = torch.full((2, 4), 3.0, dtype=dtype)
    logvar = torch.full((2, 4), 15.0, dtype=dtype)  # exp(15) overflows float16
    value = kld(mu, logvar)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    torch.testing.assert_close(value, kld(mu.float(), logvar.float()))


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_a_real_vae_forward_under_cpu_autocast_gives_a_finite_float32_kl(dtype):
    from torchbearer_vae import VAE

    torch.manual_seed(0)
    model = VAE(hidden_dim=32, latent_dim=4)
    with torch.no_grad():  # posteriors far from the prior: exp(logvar) overflows float16, mu ** 2 is large
        model.fc22.bias.fill_(40.0)
        model.fc21.bias.fill_(200.0)
    x = torch.rand(8, 1, 28, 28)
    with torch.autocast('cpu', dtype=dtype):
        _, mu, logvar = model.eval()(x)
        value = kld(mu, logvar, reduction='batchmean')
    assert mu.dtype == logvar.dtype == dtype  # autocast ran the encoder in low precision
    assert value.dtype == torch.float32 and torch.isfinite(value)
    torch.testing.assert_close(value, kld(mu.float(), logvar.float(), reduction='batchmean'))
    assert value > 4 * 0.5 * math.expm1(39)  # the true size, not a clamped or wrapped one


@pytest.mark.parametrize('args, error, message', [
    ((torch.zeros(2, 3), torch.zeros(2, 4)), ValueError, 'same shape'),
    ((torch.zeros(()), torch.zeros(())), ValueError, 'batch dimension'),
    (([0.0], torch.zeros(1)), TypeError, r'kld: mu must be a tensor, got a list'),
    ((torch.zeros(2, 3), torch.zeros(2, 3, device='meta')), ValueError, 'same device'),
    ((torch.zeros(2, 3).to_sparse(), torch.zeros(2, 3).to_sparse()), TypeError, 'dense'),
    ((torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long)), TypeError, 'floating point'),
])
def test_kld_bad_input(args, error, message):
    with pytest.raises(error, match=message):
        kld(*args)


def test_vae_loss_is_bce_plus_kld_and_reshapes_a_flat_target():
    recon = torch.rand(5, 1, 4, 4) * 0.98 + 0.01
    target = torch.rand(5, 16)
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    bce = nn.functional.binary_cross_entropy(recon.view(5, 16), target, reduction='sum')
    expected = bce + kld(mu, logvar)
    torch.testing.assert_close(vae_loss(recon, mu, logvar, target), expected)
    torch.testing.assert_close(vae_loss(recon, mu, logvar, target, reduction='batchmean'), expected / 5)
    torch.testing.assert_close(vae_loss(recon, mu, logvar, target, beta=3.0), bce + 3 * kld(mu, logvar))
    with pytest.raises(ValueError, match=r'\(5, 1, 4, 4\).*\(5, 15\)'):
        vae_loss(recon, mu, logvar, torch.rand(5, 15))


# -- reconstruction_loss: the one formula, against torch.distributions --

def per_image(log_prob):
    return log_prob.reshape(log_prob.shape[0], -1).sum(1)


def reduce(per_image_nll, reduction):
    if reduction == 'sum':
        return per_image_nll.sum()
    return per_image_nll.mean() if reduction == 'batchmean' else per_image_nll


@settings(max_examples=60, **BOUNDED)
@given(**IMAGES, sigma=st.floats(0.05, 5.0), reduction=st.sampled_from(REDUCTIONS))
def test_reconstruction_loss_is_the_negative_log_likelihood_of_torch_distributions(batch, shape, seed, sigma,
                                                                                  reduction):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((batch,) + shape, generator=generator, dtype=torch.float64)  # grey levels in [0, 1]
    probabilities = torch.rand((batch,) + shape, generator=generator, dtype=torch.float64) * 0.98 + 0.01
    means = torch.randn((batch,) + shape, generator=generator, dtype=torch.float64)
    # Bernoulli: x log p + (1 - x) log(1 - p) per value, summed per image (validate_args off: x is not binary).
    bernoulli = -per_image(Bernoulli(probs=probabilities, validate_args=False).log_prob(x))
    gaussian = -per_image(Normal(means, sigma).log_prob(x))
    torch.testing.assert_close(reconstruction_loss(probabilities, x, 'bernoulli', reduction=reduction),
                               reduce(bernoulli, reduction))
    torch.testing.assert_close(reconstruction_loss(means, x, 'gaussian', sigma=sigma, reduction=reduction),
                               reduce(gaussian, reduction))
    # A flattened target is reshaped; the float32 result agrees with the float64 one.
    flat = reconstruction_loss(probabilities.float(), x.float().reshape(batch, -1), reduction=reduction)
    torch.testing.assert_close(flat.double(), reduce(bernoulli, reduction), rtol=1e-4, atol=1e-3)


@settings(max_examples=40, **BOUNDED)
@given(**IMAGES, scale=st.floats(0.01, 3.0), reduction=st.sampled_from(REDUCTIONS))
def test_the_calibrated_gaussian_is_torch_distributions_normal_with_the_batch_optimal_sigma(batch, shape, seed, scale,
                                                                                           reduction):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand((batch,) + shape, generator=generator, dtype=torch.float64)
    means = x + scale * torch.randn((batch,) + shape, generator=generator, dtype=torch.float64)
    optimal = (x - means).pow(2).mean().sqrt()  # sigma*: the root mean squared error of the whole batch
    expected = -per_image(Normal(means, optimal).log_prob(x))
    torch.testing.assert_close(reconstruction_loss(means, x, 'gaussian', sigma=None, reduction=reduction),
                               reduce(expected, reduction))
    # sigma* maximises the batch's likelihood: any other fixed sigma scores the batch worse.
    calibrated = reconstruction_loss(means, x, 'gaussian', sigma=None)
    for factor in (0.5, 0.9, 1.1, 2.0):
        assert reconstruction_loss(means, x, 'gaussian', sigma=float(optimal) * factor) > calibrated


def test_the_calibrated_gaussian_is_finite_for_an_exact_reconstruction_thanks_to_its_floor():
    x = torch.rand(3, 3, 4, 4, requires_grad=True)
    loss = reconstruction_loss(x, x.detach(), 'gaussian', sigma=None, reduction='none')
    floor = -Normal(x.detach(), MIN_SIGMA).log_prob(x.detach()).reshape(3, -1).sum(1)  # sigma at its floor
    torch.testing.assert_close(loss, floor)
    assert torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(x.grad).all()
    # Just above the floor and just below it, the value is continuous: the floor takes over smoothly.
    for error in (MIN_SIGMA * 0.999, MIN_SIGMA * 1.001):
        near = reconstruction_loss(torch.full((1, 8), error), torch.zeros(1, 8), 'gaussian', sigma=None)
        fixed = reconstruction_loss(torch.full((1, 8), error), torch.zeros(1, 8), 'gaussian', sigma=MIN_SIGMA)
        torch.testing.assert_close(near, fixed, rtol=1e-4, atol=1e-4)


def test_the_calibrated_gaussian_has_the_gradient_of_the_fixed_optimal_sigma():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(4, 12, generator=generator, dtype=torch.float64)
    means = (x + 0.1 * torch.randn(4, 12, generator=generator, dtype=torch.float64)).requires_grad_()
    reconstruction_loss(means, x, 'gaussian', sigma=None).backward()
    calibrated, means.grad = means.grad, None
    optimal = float((x - means.detach()).pow(2).mean().sqrt())
    reconstruction_loss(means, x, 'gaussian', sigma=optimal).backward()
    torch.testing.assert_close(calibrated, means.grad)
    # float16 inputs: sigma* computed in float32, a finite loss.
    half = reconstruction_loss(means.detach().half(), x.half(), 'gaussian', sigma=None)
    assert torch.isfinite(half)


def test_reconstruction_loss_bernoulli_sum_is_bce_loss_and_stays_finite_at_0_and_1():
    recon = torch.tensor([[0.0, 1.0, 0.5, 0.25]])
    target = torch.tensor([[1.0, 0.0, 0.5, 1.0]])
    value = reconstruction_loss(recon, target)
    torch.testing.assert_close(value, nn.BCELoss(reduction='sum')(recon, target))
    assert value.item() == pytest.approx(100 + 100 + math.log(2) + math.log(4), rel=1e-6)  # logs clamped at -100



# -- bernoulli_mean: probabilities scored from the logits they came from --

@settings(max_examples=40, **BOUNDED)
@given(batch=st.integers(1, 5), seed=st.integers(0, 2 ** 16), reduction=st.sampled_from(REDUCTIONS))
def test_bernoulli_mean_gives_the_loss_and_gradient_of_bce_on_its_probabilities(batch, seed, reduction):
    generator = torch.Generator().manual_seed(seed)
    logits = (torch.randn(batch, 3, 4, generator=generator, dtype=torch.float64) * 4).requires_grad_()
    x = torch.rand(batch, 3, 4, generator=generator, dtype=torch.float64)
    fast = reconstruction_loss(torchbearer_vae.bernoulli_mean(logits), x, reduction=reduction)
    (fast_grad,) = torch.autograd.grad(fast.sum(), logits)
    plain = reconstruction_loss(torch.sigmoid(logits), x, reduction=reduction)
    (plain_grad,) = torch.autograd.grad(plain.sum(), logits)
    torch.testing.assert_close(fast, plain)
    torch.testing.assert_close(fast_grad, plain_grad)
    torch.testing.assert_close(vae_loss(torchbearer_vae.bernoulli_mean(logits), logits[:, 0], logits[:, 1], x),
                               vae_loss(torch.sigmoid(logits), logits[:, 0], logits[:, 1], x))


def test_bernoulli_mean_is_exact_where_the_sigmoid_saturates_and_its_whole_views_keep_that():
    logits = torch.tensor([[-200.0, 0.0, 150.0]])
    x = torch.tensor([[1.0, 1.0, 0.25]])
    exact = 200 + math.log(2) + 0.75 * 150  # softplus(l) - x l, per value
    probabilities = torchbearer_vae.bernoulli_mean(logits)
    torch.testing.assert_close(probabilities, torch.sigmoid(logits), rtol=0, atol=0)
    assert reconstruction_loss(probabilities, x).item() == pytest.approx(exact, rel=1e-6)
    assert reconstruction_loss(torch.sigmoid(logits), x).item() == pytest.approx(100 + math.log(2) + 75, rel=1e-6)
    assert reconstruction_loss(probabilities.reshape(1, 3, 1), x).item() == pytest.approx(exact, rel=1e-6)
    per_image = reconstruction_loss(probabilities.view(1, 1, 3), x, reduction='none')
    assert per_image.shape == (1,) and per_image.item() == pytest.approx(exact, rel=1e-6)


def test_bernoulli_mean_returns_a_plain_tensor_that_saves_and_copies_as_the_probabilities_alone():
    logits = torch.randn(4, 784)
    probabilities = torchbearer_vae.bernoulli_mean(logits)
    ours, plain = io.BytesIO(), io.BytesIO()
    torch.save(probabilities, ours)
    torch.save(torch.sigmoid(logits), plain)
    assert len(ours.getvalue()) == len(plain.getvalue())  # no logits inside
    ours.seek(0)
    loaded = torch.load(ours, weights_only=True)
    torch.testing.assert_close(loaded, probabilities, rtol=0, atol=0)
    assert type(probabilities) is torch.Tensor and not vars(probabilities)
    assert not vars(copy.deepcopy(probabilities))


def test_bernoulli_mean_logits_are_not_used_for_part_of_the_tensor_or_after_an_in_place_change():
    logits = torch.tensor([[-200.0, 0.0], [150.0, 1.0]])
    x = torch.ones(2, 2)
    part = torchbearer_vae.bernoulli_mean(logits)[1:]  # a slice: its own probabilities, not the logits' tensor
    torch.testing.assert_close(reconstruction_loss(part, x[1:]), nn.BCELoss(reduction='sum')(part, x[1:]))
    column = torchbearer_vae.bernoulli_mean(logits).t()  # the whole storage in another order
    torch.testing.assert_close(reconstruction_loss(column, x), nn.BCELoss(reduction='sum')(column, x))
    changed = torchbearer_vae.bernoulli_mean(logits)
    changed.clamp_(0.1, 0.9)  # the logits no longer give these probabilities
    torch.testing.assert_close(reconstruction_loss(changed, x), nn.BCELoss(reduction='sum')(changed, x))
    moved = logits.clone()
    kept = torchbearer_vae.bernoulli_mean(moved)
    moved.add_(500.0)  # nor after the logits change
    torch.testing.assert_close(reconstruction_loss(kept, x), nn.BCELoss(reduction='sum')(kept, x))


def test_bernoulli_mean_logits_follow_the_probabilities_gradient_and_inference_mode():
    decoder = nn.Linear(2, 6)
    x = torch.rand(3, 6).round()
    detached = torchbearer_vae.bernoulli_mean(decoder(torch.randn(3, 2)))
    detached.detach_()  # no gradient may reach the decoder through the loss
    loss = reconstruction_loss(detached, x)
    assert loss.grad_fn is None
    torch.testing.assert_close(loss, nn.BCELoss(reduction='sum')(detached, x))
    leaf = torchbearer_vae.bernoulli_mean(decoder(torch.randn(3, 2))).detach().requires_grad_()
    reconstruction_loss(leaf, x).backward()  # the gradient is the probabilities' own
    torch.testing.assert_close(leaf.grad, (leaf - x) / (leaf * (1 - leaf)))
    model = torchbearer_vae.VAE(hidden_dim=8, latent_dim=2).eval()
    images = torch.rand(2, 1, 28, 28)
    with torch.inference_mode():
        recon = model.decode(model.encode(images)[0])
        torch.testing.assert_close(model.reconstruction_loss(recon, images),
                                   nn.BCELoss(reduction='sum')(recon, images))


@pytest.mark.parametrize('make', [torchbearer_vae.bernoulli_mean, torch.sigmoid])
def test_a_bernoulli_target_outside_0_1_is_refused_with_what_to_do(make):
    recon = make(torch.randn(2, 784))
    with pytest.raises(ValueError, match=r'targets in \[0, 1\], got values from 0 to 255; scale 8-bit images with '
                                         r'x.float\(\) / 255'):
        reconstruction_loss(recon, torch.arange(256.0).repeat(7)[:1568].reshape(2, 784))
    with pytest.raises(ValueError, match=r'got values from nan'):
        vae_loss(recon, torch.zeros(2, 3), torch.zeros(2, 3), torch.full((2, 784), math.nan))
    assert reconstruction_loss(recon, torch.ones(2, 784)).isfinite()  # 0 and 1 themselves are fine


def test_a_base_vae_decoder_is_scored_from_its_logits():
    model = torchbearer_vae.VAE(hidden_dim=8, latent_dim=2)
    with torch.no_grad():
        model.fc4.weight.zero_()
        model.fc4.bias.fill_(-120.0)  # every probability rounds to 0 in float32
    x = torch.ones(2, 784)
    recon, mu, logvar = model.eval()(x)
    assert torch.all(recon == 0)
    assert model.reconstruction_loss(recon, x).item() == pytest.approx(2 * 784 * 120, rel=1e-5)  # not 100 per value
    assert model.reconstruction_loss(model.decode(mu), x).item() == pytest.approx(2 * 784 * 120, rel=1e-5)

@pytest.mark.parametrize('call, error, message', [
    (lambda x: reconstruction_loss(x, x, 'poisson'), ValueError, "likelihood must be one of 'bernoulli', 'gaussian'"),
    (lambda x: reconstruction_loss(x, x, None), TypeError, 'likelihood must be one of'),
    (lambda x: reconstruction_loss(x, x, reduction='mean'), ValueError, "reduction must be one of 'sum'"),
    (lambda x: reconstruction_loss(x, x, 'gaussian', sigma=0.0), ValueError, 'sigma must be a finite number > 0'),
    (lambda x: reconstruction_loss(x, x, 'gaussian', sigma='1'), TypeError, 'sigma must be a finite number > 0'),
    (lambda x: reconstruction_loss(x.numpy(), x), TypeError, r'recon must be a tensor, got a float32 ndarray'),
    (lambda x: reconstruction_loss(x, (x * 255).long()), TypeError, 'target must be a floating point tensor'),
    (lambda x: reconstruction_loss(x[0, 0], x[0, 0]), ValueError, 'need a batch dimension'),
    (lambda x: reconstruction_loss(x, x[:, :3]), ValueError, r'\(2, 4\) but the target has shape \(2, 3\)'),
    (lambda x: torchbearer_vae.bernoulli_mean(x.long()), TypeError, r"logits as a floating point tensor, got .*int64"),
    (lambda x: torchbearer_vae.bernoulli_mean(x.numpy()), TypeError, r"floating point tensor, got .*ndarray"),
])
def test_reconstruction_loss_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call(torch.full((2, 4), 0.5))


# -- the TypeError / ValueError rule on the options: a wrong type is a TypeError, a wrong value a ValueError --

@pytest.mark.parametrize('call, error, message', [
    (lambda x, z: vae_loss(x, z, z, x, beta='1'), TypeError, "beta must be a finite number >= 0, got '1'"),
    (lambda x, z: vae_loss(x, z, z, x, beta=-1), ValueError, 'beta must be a finite number >= 0, got -1.0'),
    (lambda x, z: kld(z, z, reduction=None), TypeError,
     "reduction must be one of 'sum', 'batchmean', 'none', got None"),
    (lambda x, z: kld(z, z, reduction='mean'), ValueError,
     "reduction must be one of 'sum', 'batchmean', 'none', got 'mean'"),
    (lambda x, z: reconstruction_loss(x, x, 'gaussian', sigma=True), TypeError,
     'sigma must be a finite number > 0, got True'),
    (lambda x, z: reconstruction_loss(x, x, 'gaussian', sigma=math.nan), ValueError,
     'sigma must be a finite number > 0, got nan'),
])
def test_options_follow_the_type_and_value_rule(call, error, message):
    with pytest.raises(error) as caught:
        call(torch.full((2, 4), 0.5), torch.zeros(2, 3))
    assert str(caught.value) == message


# -- keyword-only arguments --

def test_options_after_the_tensors_are_keyword_only():
    for function, positional in ((kld, ['mu', 'logvar']), (vae_loss, ['recon', 'mu', 'logvar', 'target']),
                                 (reconstruction_loss, ['recon', 'target', 'likelihood'])):
        parameters = inspect.signature(function).parameters.values()
        assert [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD] == positional, function
        assert all(p.kind is p.KEYWORD_ONLY for p in parameters if p.name not in positional), function
