"""The divergence callbacks (divergence, kld_loss, free bits) in real Trials, and their arguments."""
import inspect

import pytest
import torch
import torchbearer
from stand_ins import FixedPosterior
from torch import nn
from torch.distributions import Normal, kl_divergence
from torchbearer import Trial
from torchbearer.callbacks import on_criterion, on_criterion_validation
from torchbearer.state import State

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
)


def reference_kl(mu, logvar):
    posterior = Normal(mu.double(), torch.exp(0.5 * logvar.double()))
    return kl_divergence(posterior, Normal(torch.zeros_like(posterior.loc), torch.ones_like(posterior.loc)))


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
    assert history['loss'] == pytest.approx(0.5 * kld(mu, logvar, reduction='batchmean').item(), rel=1e-5)
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
        return kld(mu, logvar, reduction='none')

    with pytest.raises(ValueError, match=r'per_sample must return a scalar tensor.*shape \(4,\)'):
        run_trial(FixedPosterior(torch.zeros(4, 2), torch.zeros(4, 2)), [per_sample])


@pytest.mark.parametrize('make, error, message', [
    (lambda: kld_loss(beta=-1), ValueError, 'beta must be a finite number >= 0, got -1.0'),
    (lambda: kld_loss(beta=float('nan')), ValueError, 'beta must be a finite number >= 0, got nan'),
    (lambda: kld_loss(beta='1'), TypeError, 'beta must be a number >= 0 or a function of state'),
    (lambda: kld_loss(beta=True), TypeError, r'beta must be a number >= 0 or a function of state .*got a bool'),
    (lambda: kld_loss(reduction='none'), ValueError, "reduction must be one of 'sum', 'batchmean', got 'none'"),
    (lambda: kld_loss(reduction=None), TypeError, "reduction must be one of 'sum', 'batchmean', got None"),
    (lambda: kld_loss(free_bits=-0.1), ValueError, 'free_bits must be a finite number >= 0, got -0.1'),
    (lambda: kld_loss(free_bits=float('nan')), ValueError, 'free_bits must be a finite number >= 0, got nan'),
    (lambda: kld_loss(free_bits='0.5'), TypeError, "free_bits must be a finite number >= 0, got '0.5'"),
    (lambda: kld_loss(free_bits=True), TypeError, 'free_bits must be a finite number >= 0, got True'),
    (lambda: kld_loss(free_bits=0.5, beta=capacity(5.0, 100)), ValueError, 'free_bits and beta=capacity'),
    (lambda: divergence(), ValueError, 'at least one state key'),
    (lambda: divergence(42), TypeError, 'must be a torchbearer state key'),
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
    assert seen[0].item() == pytest.approx(kld(mu, logvar, reduction=reduction).item(), rel=1e-5)
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


def test_the_callback_keeps_its_keys_and_beta_and_stores_the_summed_kl():
    warmup = linear_warmup(10)
    callback = kld_loss(beta=warmup)
    assert callback.keys == (MU, LOGVAR) and callback.beta is warmup
    state = State()
    state.update({MU: torch.ones(2, 1), LOGVAR: torch.zeros(2, 1), torchbearer.LOSS: torch.tensor(0.0)})
    callback.on_criterion(state)
    assert state[KL].item() == 1.0  # kld(..., 'sum')
    assert callback.state_dict() == {'step': 0, 'epoch': 0}


# -- state_dict, state keys, keyword-only options --

@pytest.mark.parametrize('bad, error, message', [
    ({'step': 3}, ValueError, "expects a dict with 'step' and 'epoch'"),
    ({'step': -1, 'epoch': 0}, ValueError, r"kld_loss state_dict\['step'\] must be an int >= 0, got -1"),
    ({'step': 1.5, 'epoch': 0}, TypeError, r"kld_loss state_dict\['step'\] must be an int >= 0, got 1.5"),
    ({'step': 1, 'epoch': True}, TypeError, r"state_dict\['epoch'\] must be an int"),
    ([3, 1], TypeError, 'kld_loss.load_state_dict expects the dict state_dict'),
    (None, TypeError, 'got a NoneType'),
])
def test_load_state_dict_rejects_what_state_dict_cannot_have_made(bad, error, message):
    callback = kld_loss(beta=linear_warmup(10))
    with pytest.raises(error, match=message):
        callback.load_state_dict(bad)
    assert callback.state_dict() == {'step': 0, 'epoch': 0}  # unchanged


def test_state_keys_are_checked():
    with pytest.raises(TypeError, match='mu must be a torchbearer state key'):
        kld_loss(mu=3)
    with pytest.raises(TypeError, match='store_as must be a torchbearer state key or None'):
        divergence(MU, store_as=1.0)


def test_kld_loss_options_are_keyword_only():
    parameters = inspect.signature(kld_loss).parameters.values()
    assert [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD] == ['beta']
    mu, logvar = torch.randn(4, 2), torch.randn(4, 2)
    new = kld_loss(2.0, reduction='batchmean', mu=MU, logvar=LOGVAR, free_bits=0.3)
    new_history = run_trial(FixedPosterior(mu, logvar), [new], validation=True)
    assert new_history['loss'] == pytest.approx(2 * free_bits_reference(mu, logvar, 0.3), rel=1e-5)
