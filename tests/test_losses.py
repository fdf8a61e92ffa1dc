import math

import pytest
import torch
import torchbearer
from stand_ins import FixedPosterior
from torch import nn
from torch.distributions import Normal, kl_divergence
from torchbearer import Trial
from torchbearer.callbacks import on_criterion, on_criterion_validation

from torchbearer_vae import (
    KL,
    LOGVAR,
    MU,
    MissingStateError,
    capacity,
    divergence,
    kld,
    kld_loss,
    linear_warmup,
    vae_loss,
)


def reference_kl(mu, logvar):
    posterior = Normal(mu.double(), torch.exp(0.5 * logvar.double()))
    return kl_divergence(posterior, Normal(torch.zeros_like(posterior.loc), torch.ones_like(posterior.loc)))


@pytest.mark.parametrize('shape', [(16, 20), (3, 2, 5), (1, 1)])
def test_kld_matches_torch_distributions_for_every_reduction(shape):
    mu, logvar = torch.randn(shape) * 2, torch.randn(shape) * 3
    per_element = reference_kl(mu, logvar)
    per_sample = per_element.reshape(shape[0], -1).sum(1)
    torch.testing.assert_close(kld(mu, logvar, 'sum').double(), per_element.sum(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(kld(mu, logvar, 'batchmean').double(), per_sample.mean(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(kld(mu, logvar, 'none').double(), per_sample, rtol=1e-5, atol=1e-4)
    assert kld(mu, logvar).shape == () and kld(mu, logvar, 'none').shape == (shape[0],)


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
    value = kld(mu, logvar, 'none')
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
        value = kld(mu, logvar, 'batchmean')
    assert mu.dtype == logvar.dtype == dtype  # autocast ran the encoder in low precision
    assert value.dtype == torch.float32 and torch.isfinite(value)
    torch.testing.assert_close(value, kld(mu.float(), logvar.float(), 'batchmean'))
    assert value > 4 * 0.5 * math.expm1(39)  # the true size, not a clamped or wrapped one


@pytest.mark.parametrize('args, error, message', [
    ((torch.zeros(2, 3), torch.zeros(2, 4)), ValueError, 'same shape'),
    ((torch.zeros(()), torch.zeros(())), ValueError, 'batch dimension'),
    ((torch.zeros(2, 3), torch.zeros(2, 3), 'mean'), ValueError, "reduction must be one of 'sum'"),
    (([0.0], torch.zeros(1)), TypeError, 'tensors'),
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



def zero_criterion(y_pred, y_true):
    return (y_pred * 0).sum()


def run_trial(model, callbacks, validation=False):
    data = torch.utils.data.TensorDataset(torch.rand(4, 3), torch.rand(4, 3))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    trial = Trial(model, torch.optim.SGD(model.parameters(), lr=0.0), zero_criterion, metrics=['loss'],
                  callbacks=callbacks, verbose=0)
    trial.with_generators(train_generator=loader, val_generator=loader if validation else None)
    return trial.run(1)[0]


def test_kld_loss_adds_the_kl_in_training_and_validation_and_stores_it():
    mu, logvar = torch.randn(4, 2), torch.randn(4, 2)
    seen = []

    @on_criterion
    @on_criterion_validation
    def record(state):
        seen.append(state[KL])

    history = run_trial(FixedPosterior(mu, logvar), [kld_loss(beta=2.0), record], validation=True)
    expected = kld(mu, logvar).item()
    assert history['loss'] == pytest.approx(2 * expected, rel=1e-5)
    assert history['val_loss'] == pytest.approx(2 * expected, rel=1e-5)
    assert len(seen) == 2 and all(value.item() == pytest.approx(expected, rel=1e-5) for value in seen)
    assert not seen[0].requires_grad  # stored detached: no graph kept alive by a printer


def test_kld_loss_batchmean_and_callable_beta_reading_state():
    mu, logvar = torch.randn(4, 2), torch.randn(4, 2)
    betas = []

    def beta(state):
        betas.append(state[torchbearer.EPOCH])
        return 0.5

    history = run_trial(FixedPosterior(mu, logvar), [kld_loss(beta=beta, reduction='batchmean')])
    assert history['loss'] == pytest.approx(0.5 * kld(mu, logvar, 'batchmean').item(), rel=1e-5)
    assert betas == [0]


def test_divergence_decorator_builds_a_loss_callback():
    mu, logvar = torch.randn(4, 2), torch.randn(4, 2)

    @divergence(MU, beta=3.0)
    def mean_square(mu_value):
        return mu_value.pow(2).sum()

    history = run_trial(FixedPosterior(mu, logvar), [mean_square])
    assert history['loss'] == pytest.approx(3 * mu.pow(2).sum().item(), rel=1e-5)


def test_missing_state_key_says_what_the_model_must_do():
    with pytest.raises(MissingStateError, match=r'kld_loss needs state\[torchbearer_vae.MU\].*forward'):
        run_trial(FixedPosterior(torch.zeros(4, 2), torch.zeros(4, 2), store=False), [kld_loss()])


def test_divergence_must_return_a_scalar():
    @divergence(MU, LOGVAR)
    def per_sample(mu, logvar):
        return kld(mu, logvar, 'none')

    with pytest.raises(ValueError, match=r'per_sample must return a scalar tensor.*shape \(4,\)'):
        run_trial(FixedPosterior(torch.zeros(4, 2), torch.zeros(4, 2)), [per_sample])


@pytest.mark.parametrize('make, error, message', [
    (lambda: kld_loss(beta=-1), ValueError, 'beta must be a finite number >= 0'),
    (lambda: kld_loss(beta=float('nan')), ValueError, 'beta must be a finite number'),
    (lambda: kld_loss(beta='1'), TypeError, 'beta must be a number or a function'),
    (lambda: kld_loss(reduction='none'), ValueError, 'reduction must be one of'),
    (lambda: divergence(), ValueError, 'at least one state key'),
    (lambda: divergence(42), TypeError, 'state keys'),
    (lambda: divergence(MU)(3), TypeError, 'must decorate a function'),
])
def test_bad_arguments_fail_at_construction(make, error, message):
    with pytest.raises(error, match=message):
        make()


# -- free bits --

def free_bits_reference(mu, logvar, free_bits):
    """sum_j max(lambda, mean_i KL(q(z_ij | x_i) || N(0, 1))), from torch.distributions, per image."""
    return reference_kl(mu, logvar).mean(0).clamp(min=free_bits).sum().item()


@pytest.mark.parametrize('reduction, scale', [('batchmean', 1), ('sum', 4)])
def test_free_bits_clamps_the_batch_mean_kl_of_every_dimension(reduction, scale):
    # dimension 0 uses ~2 nats, dimension 1 ~0.05 nats, dimension 2 none: with 0.5 free nats,
    # only dimension 0 counts at its value; the others count as 0.5 each.
    mu = torch.stack([2 + 0.1 * torch.randn(4), 0.3 * torch.ones(4), torch.zeros(4)], dim=1)
    logvar = torch.stack([0.1 * torch.randn(4), torch.zeros(4), torch.zeros(4)], dim=1)
    seen = []

    @on_criterion
    def record(state):
        seen.append(state[KL])

    history = run_trial(FixedPosterior(mu, logvar), [kld_loss(reduction=reduction, free_bits=0.5), record])
    expected = free_bits_reference(mu, logvar, 0.5)
    assert expected == pytest.approx(reference_kl(mu, logvar)[:, 0].mean().item() + 0.5 + 0.5)
    assert history['loss'] == pytest.approx(scale * expected, rel=1e-5)
    # state[KL] (and so the 'kl' metric) keeps the true, unclamped KL
    assert seen[0].item() == pytest.approx(kld(mu, logvar, reduction).item(), rel=1e-5)
    assert seen[0].item() < history['loss']


def test_free_bits_stop_the_gradient_of_dimensions_under_the_threshold():
    class Posterior(nn.Module):
        def __init__(self):
            super().__init__()
            self.mu = nn.Parameter(torch.tensor([[2.0, 0.3], [1.0, -0.3]]))

        def forward(self, x, state=None):
            state[MU], state[LOGVAR] = self.mu, torch.zeros_like(self.mu)
            return x * 0

    model = Posterior()
    before = model.mu.detach().clone()
    data = torch.utils.data.TensorDataset(torch.rand(2, 3), torch.rand(2, 3))
    trial = Trial(model, torch.optim.SGD(model.parameters(), lr=0.1), zero_criterion,
                  callbacks=[kld_loss(reduction='batchmean', free_bits=0.1)], verbose=0)
    trial.with_generators(torch.utils.data.DataLoader(data, batch_size=2)).run(1)
    # dimension 0: mean KL 1.25 > 0.1, gradient of (1/B) sum_i mu_i0^2 / 2 is mu_i0 / B;
    # dimension 1: mean KL 0.045 < 0.1, clamped, no gradient at all.
    torch.testing.assert_close(model.mu.detach()[:, 0], before[:, 0] - 0.1 * before[:, 0] / 2)
    torch.testing.assert_close(model.mu.detach()[:, 1], before[:, 1], rtol=0, atol=0)


def test_free_bits_combine_with_a_weight():
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    history = run_trial(FixedPosterior(mu, logvar), [kld_loss(beta=2.0, reduction='batchmean', free_bits=0.2)])
    assert history['loss'] == pytest.approx(2 * free_bits_reference(mu, logvar, 0.2), rel=1e-5)


@pytest.mark.parametrize('make, error, message', [
    (lambda: kld_loss(free_bits=-0.1), ValueError, 'free_bits must be a finite number >= 0, got -0.1'),
    (lambda: kld_loss(free_bits=float('nan')), ValueError, 'free_bits must be a finite number'),
    (lambda: kld_loss(free_bits='0.5'), TypeError, 'free_bits must be a number of nats, got str'),
    (lambda: kld_loss(free_bits=0.5, beta=capacity(5.0, 100)), ValueError, 'free_bits and beta=capacity'),
])
def test_bad_free_bits_fail_at_construction(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_the_callback_keeps_its_function_keys_and_beta():
    warmup = linear_warmup(10)
    callback = kld_loss(beta=warmup)
    assert callback.keys == (MU, LOGVAR) and callback.beta is warmup
    assert callback.function(torch.ones(2, 1), torch.zeros(2, 1)).item() == 1.0  # kld(..., 'sum')
    assert callback.state_dict() == {'step': 0, 'epoch': 0}
