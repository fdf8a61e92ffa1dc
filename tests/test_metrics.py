"""The 'kl', 'recon' and 'active_units' metrics in real Trials, on the real MNIST and on known answers."""
import csv
import importlib
import warnings

import pytest
import torch
import torchbearer
from stand_ins import FixedPosterior
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchbearer import Trial
from torchbearer.callbacks import CSVLogger, add_to_loss, on_end_epoch

from torchbearer_vae import (
    LOGVAR,
    MU,
    VAE,
    ActiveUnits,
    KLMetric,
    MissingStateError,
    ReconstructionMetric,
    divergence,
    kld,
    kld_loss,
    registry,
    vae_loss,
)


@pytest.fixture(scope='module')
def mnist_tensors(mnist):
    images = mnist.data[:384].float().div(255).unsqueeze(1)
    return images[:256], images[256:]


def loaders(train, val, batch_size=64):
    return (DataLoader(TensorDataset(train, train), batch_size=batch_size),
            DataLoader(TensorDataset(val, val), batch_size=batch_size))


def test_loss_recon_kl_and_active_units_in_history_and_csv_on_mnist(mnist_tensors, tmp_path):
    train, val = mnist_tensors
    model = VAE(hidden_dim=64, latent_dim=6)
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3), nn.BCELoss(reduction='sum'),
                  metrics=['loss', 'recon', 'kl', 'active_units'],
                  callbacks=[kld_loss(beta=3.0), CSVLogger(str(tmp_path / 'log.csv'))], verbose=0)
    trial.with_generators(*loaders(train, val))
    history = trial.run(2)
    row = history[-1]

    names = {'loss', 'recon', 'kl', 'running_loss', 'running_recon', 'running_kl',
             'val_loss', 'val_recon', 'val_kl', 'val_active_units'}
    assert names <= row.keys() and 'active_units' not in row  # active units: validation data by default
    for prefix in ('', 'val_'):
        assert row[prefix + 'loss'] == pytest.approx(row[prefix + 'recon'] + 3.0 * row[prefix + 'kl'], rel=1e-5)
    assert row['kl'] > 0 and row['recon'] > 100

    # The validation values are the epoch means of the per-batch terms: recompute them by hand
    # (eval mode: z is the posterior mean, so the pass is deterministic).
    model.eval()
    recons, kls, means = [], [], []
    with torch.no_grad():
        for x, _ in loaders(train, val)[1]:
            mu, logvar = model.encode(x)
            recons.append(nn.functional.binary_cross_entropy(model.decode(mu).reshape(x.shape), x, reduction='sum'))
            kls.append(kld(mu, logvar))
            means.append(mu)
    assert row['val_recon'] == pytest.approx(torch.stack(recons).mean().item(), rel=1e-5)
    assert row['val_kl'] == pytest.approx(torch.stack(kls).mean().item(), rel=1e-5)
    expected_active = int((torch.cat(means).var(0, unbiased=False) > 0.01).sum())
    assert row['val_active_units'] == expected_active

    with open(tmp_path / 'log.csv', newline='') as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2
    for name in ('recon', 'kl', 'val_recon', 'val_kl', 'val_active_units'):
        assert float(rows[-1][name]) == pytest.approx(row[name], rel=1e-6), name



def criterion(y_pred, y_true):
    return (y_pred * 0).sum() + 5.0


PENALTY = torchbearer.state_key('test_metrics_penalty')


def test_recon_is_the_criterion_output_with_several_loss_callbacks():
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)

    @divergence(MU, beta=2.0, store_as=PENALTY)
    def mean_square(mu_value):
        return mu_value.pow(2).sum()

    @add_to_loss
    def before(state):  # listed before the divergences: part of 'recon', as documented
        return torch.tensor(0.25)

    model = FixedPosterior(mu, logvar)
    data = DataLoader(TensorDataset(torch.rand(4, 3), torch.rand(4, 3)), batch_size=4)
    trial = Trial(model, torch.optim.SGD(model.parameters(), lr=0.0), criterion,
                  metrics=['loss', 'recon', 'kl', KLMetric(key=PENALTY, name='penalty')],
                  callbacks=[before, kld_loss(), mean_square], verbose=0)
    trial.with_generators(data, val_generator=data)
    row = trial.run(1)[0]
    kl, penalty = kld(mu, logvar).item(), mu.pow(2).sum().item()
    for prefix in ('', 'val_'):
        assert row[prefix + 'recon'] == pytest.approx(5.25)
        assert row[prefix + 'kl'] == pytest.approx(kl, rel=1e-5)
        assert row[prefix + 'penalty'] == pytest.approx(penalty, rel=1e-5)
        assert row[prefix + 'loss'] == pytest.approx(5.25 + kl + 2 * penalty, rel=1e-5)


def test_the_pytorch_way_cannot_split_the_terms_and_says_so(mnist_tensors):
    model = VAE(hidden_dim=32, latent_dim=2, use_state=False)
    trial = Trial(model, torch.optim.Adam(model.parameters()), vae_loss, metrics=['loss', 'kl'], verbose=0)
    trial.with_generators(loaders(*mnist_tensors)[0], train_steps=1)
    with pytest.raises(MissingStateError, match=r"'kl' metric reads state\[torchbearer_vae.KL\].*PyTorch way"):
        trial.run(1)


class LinearMeans(nn.Module):
    """Posterior means mu_j = scales_j * x_j + offsets_j: their variance over the data is known."""

    def __init__(self, scales, offsets):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.register_buffer('scales', torch.tensor(scales))
        self.register_buffer('offsets', torch.tensor(offsets))

    def forward(self, x, state=None):
        state[MU] = x * self.scales + self.offsets
        state[LOGVAR] = torch.zeros_like(x)
        return x * 0 + self.weight


# Each column of BALANCED is +1 on four rows and -1 on the other four: its (population) variance is
# exactly 1, so dimension j's posterior mean varies with variance scales_j ** 2.
BALANCED = torch.tensor([[1.0 if (row >> (col % 3)) & 1 else -1.0 for col in range(6)] for row in range(8)])
SCALES = [1.0, 0.5, 0.11, 0.09, 0.0, 0.0]  # variances 1, 0.25, 0.0121 | 0.0081, 0, 0
OFFSETS = [0.0, 0.0, 0.0, 0.0, 5.0, -3.0]  # a large constant mean is still inactive


def active_units_trial(metric, epochs=1, callbacks=(), scales=SCALES, offsets=OFFSETS):
    assert torch.equal(BALANCED.var(0, unbiased=False), torch.ones(6))
    model = LinearMeans(scales, offsets)
    train = torch.ones(6, 6)  # every image alike: no unit is active on the training data
    trial = Trial(model, torch.optim.SGD(model.parameters(), lr=0.0), lambda y_pred, y_true: (y_pred * 0).sum(),
                  metrics=[metric], callbacks=list(callbacks), verbose=0)
    trial.with_generators(DataLoader(TensorDataset(train, train), batch_size=4),
                          val_generator=DataLoader(TensorDataset(BALANCED, BALANCED), batch_size=3))
    return trial.run(epochs)


def test_active_units_counts_the_dimensions_whose_mean_varies_more_than_the_threshold():
    row = active_units_trial('active_units')[0]
    assert row['val_active_units'] == 3 and 'active_units' not in row
    assert active_units_trial(ActiveUnits(threshold=0.005))[0]['val_active_units'] == 4
    assert active_units_trial(ActiveUnits(threshold=0.3))[0]['val_active_units'] == 1


def test_active_units_of_means_far_from_zero_are_exact():
    # E[m^2] - E[m]^2 with m ~ 1000: float32 sums would be off by ~0.1, far more than the threshold
    row = active_units_trial('active_units', scales=[0.2, 0.05] * 3, offsets=[1000.0] * 6)[0]
    assert row['val_active_units'] == 3


def test_active_units_on_training_or_both():
    row = active_units_trial(ActiveUnits().on_train())[0]
    assert row['active_units'] == 0 and 'val_active_units' not in row
    row = active_units_trial(ActiveUnits().on_train().on_val())[0]
    assert row['active_units'] == 0 and row['val_active_units'] == 3


@pytest.mark.parametrize('choose, on_validation, on_test', [
    (lambda metric: metric, True, True),  # by default: validation and test data
    (lambda metric: metric.on_val(), True, False),
    (lambda metric: metric.on_test(), False, True),
])
def test_active_units_builders_choose_validation_or_test_data(choose, on_validation, on_test):
    model = LinearMeans(SCALES, OFFSETS)
    metric = ActiveUnits()
    assert choose(metric) is metric  # a builder returns the metric, as the pictures' do
    trial = Trial(model, torch.optim.SGD(model.parameters(), lr=0.0), lambda y_pred, y_true: (y_pred * 0).sum(),
                  metrics=[metric], verbose=0)
    data = DataLoader(TensorDataset(BALANCED, BALANCED), batch_size=3)
    trial.with_generators(val_generator=data, test_generator=data)
    validation = trial.evaluate(data_key=torchbearer.VALIDATION_DATA)
    test = trial.evaluate(data_key=torchbearer.TEST_DATA)
    assert (validation.get('val_active_units') == 3) is on_validation and len(validation) == on_validation
    assert (test.get('test_active_units') == 3) is on_test and len(test) == on_test


def test_active_units_start_afresh_every_epoch():
    @on_end_epoch
    def collapse(state):  # from the second epoch on, every mean is a constant 10 away from before
        state[torchbearer.MODEL].scales.zero_()
        state[torchbearer.MODEL].offsets.add_(10.0)

    history = active_units_trial('active_units', epochs=2, callbacks=[collapse])
    assert [row['val_active_units'] for row in history] == [3, 0]


def test_active_units_needs_the_posterior_means_in_state(mnist_tensors):
    model = VAE(hidden_dim=32, latent_dim=2, use_state=False)
    trial = Trial(model, torch.optim.Adam(model.parameters()), vae_loss, metrics=[ActiveUnits().on_train()],
                  verbose=0)
    trial.with_generators(loaders(*mnist_tensors)[0], train_steps=1)
    with pytest.raises(MissingStateError, match=r"'active_units' metric reads state\[torchbearer_vae.MU\]"):
        trial.run(1)


@pytest.mark.parametrize('make, error, message', [
    (lambda: ActiveUnits(threshold=-0.01), ValueError, 'threshold must be a finite number >= 0, got -0.01'),
    (lambda: ActiveUnits(threshold='0.01'), TypeError, "threshold must be a finite number >= 0, got '0.01'"),
    (lambda: ActiveUnits(threshold=True), TypeError, 'threshold must be a finite number >= 0, got True'),
])
def test_active_units_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


# -- registration --

@pytest.mark.parametrize('name, cls', [
    ('kl', KLMetric), ('recon', ReconstructionMetric), ('active_units', ActiveUnits),
])
def test_metric_names_are_registered_with_torchbearer(name, cls):
    assert isinstance(torchbearer.metrics.get_default(name), cls)
    assert cls.__module__ == 'torchbearer_vae.metrics'


def test_a_metric_name_torchbearer_already_uses_is_kept(monkeypatch):
    defaults = importlib.import_module('torchbearer.metrics.metrics').__defaults__
    theirs = (torchbearer.metrics.Loss, (), {})
    monkeypatch.setitem(defaults, 'recon', theirs)
    with pytest.warns(UserWarning, match="metric named 'recon'"):
        registry.register()
    assert defaults['recon'] is theirs
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        registry.register()
    assert isinstance(torchbearer.metrics.get_default('recon'), ReconstructionMetric)


# -- ActiveUnits(key=...), keyword-only options --

OTHER_MEANS = torchbearer.state_key('test_metrics_other_means')


class MeansElsewhere(LinearMeans):
    """Stores the posterior means under OTHER_MEANS (and garbage under MU) to tell which key a metric reads."""

    def forward(self, x, state=None):
        output = super().forward(x, state)
        state[OTHER_MEANS], state[MU] = state[MU], torch.zeros_like(state[MU])
        return output


def test_active_units_reads_the_state_key_given_as_key():
    def run(metric):
        model = MeansElsewhere(SCALES, OFFSETS)
        trial = Trial(model, torch.optim.SGD(model.parameters(), lr=0.0), lambda y_pred, y_true: (y_pred * 0).sum(),
                      metrics=[metric], verbose=0)
        trial.with_generators(DataLoader(TensorDataset(BALANCED, BALANCED), batch_size=3),
                              val_generator=DataLoader(TensorDataset(BALANCED, BALANCED), batch_size=3))
        return trial.run(1)[0]

    assert run(ActiveUnits())['val_active_units'] == 0  # MU holds zeros here
    new = run(ActiveUnits(key=OTHER_MEANS).on_train().on_val())
    assert new['val_active_units'] == new['active_units'] == 3


def test_active_units_options_are_keyword_only():
    import inspect
    parameters = inspect.signature(ActiveUnits.__init__).parameters
    assert list(parameters) == ['self', 'threshold', 'key']
    assert parameters['key'].kind is inspect.Parameter.KEYWORD_ONLY


def test_a_missing_custom_key_is_named_in_the_error():
    metric = ActiveUnits(key=OTHER_MEANS).on_train()
    with pytest.raises(MissingStateError, match=r"'active_units' metric reads state\['test_metrics_other_means'\]"):
        active_units_trial(metric)
