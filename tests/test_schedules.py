"""KL schedules: their values, the beta real Trials apply (read back from the loss), and resuming."""
import inspect
import io
import math

import pytest
import torch
import torchbearer
from stand_ins import FixedPosterior
from torchbearer import Trial
from torchbearer.callbacks import on_criterion, on_criterion_validation

from torchbearer_vae import (
    GLOBAL_EPOCH,
    GLOBAL_STEP,
    KL,
    MissingStateError,
    Schedule,
    capacity,
    constant,
    cyclical,
    kld,
    kld_loss,
    linear_warmup,
)

BATCH = 4



def zero_criterion(y_pred, y_true):
    return (y_pred * 0).sum()


def applied_beta_recorder(kind='weight', gamma=1.0, count=1):
    """A callback placed after kld_loss: the criterion is 0, so state[LOSS] is exactly the KL term.

    kind='weight' records LOSS / KL (the beta); kind='loss' records the raw term.
    """
    records = {'train': [], 'val': []}

    def record(name):
        def callback(state):
            term, divergence = state[torchbearer.LOSS].item(), state[KL].item()
            records[name].append(term / divergence if kind == 'weight' else term)
        return callback

    return records, [on_criterion(record('train')), on_criterion_validation(record('val'))]


def run(schedule_callback, epochs, train_steps=3, val_steps=2, mu=None, logvar=None, trial_state=None):
    """Train a FixedPosterior for `epochs` with `train_steps` batches (and `val_steps` validation batches)."""
    mu = torch.full((BATCH, 2), 1.5) if mu is None else mu
    logvar = torch.zeros(BATCH, 2) if logvar is None else logvar
    records, recorders = applied_beta_recorder()
    model = FixedPosterior(mu, logvar)
    trial = Trial(model, torch.optim.SGD(model.parameters(), lr=0.0), zero_criterion,
                  callbacks=[schedule_callback, *recorders], verbose=0)
    train = torch.utils.data.TensorDataset(torch.rand(BATCH * train_steps, 2), torch.rand(BATCH * train_steps, 2))
    val = torch.utils.data.TensorDataset(torch.rand(BATCH * val_steps, 2), torch.rand(BATCH * val_steps, 2))
    trial.with_generators(torch.utils.data.DataLoader(train, batch_size=BATCH),
                          val_generator=torch.utils.data.DataLoader(val, batch_size=BATCH) if val_steps else None)
    if trial_state is not None:
        trial.load_state_dict(trial_state)
    trial.run(epochs)
    return records, trial


# -- the values --

def test_linear_warmup_values():
    warmup = linear_warmup(4, max_beta=2.0)
    assert [warmup.value(t) for t in range(7)] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert warmup({GLOBAL_STEP: 3}) == 1.5
    assert linear_warmup(2, unit='epoch')({GLOBAL_STEP: 0, GLOBAL_EPOCH: 1}) == 0.5


@pytest.mark.parametrize('period, ratio', [(4, 0.5), (10, 0.25), (5, 1.0), (1, 0.5)])
def test_cyclical_follows_fu_et_al(period, ratio):
    schedule = cyclical(period=period, ratio=ratio, max_beta=3.0)
    for t in range(4 * period + 1):
        tau = (t % period) / period  # Fu et al.: tau = mod(t - 1, T/M) / (T/M), t counted from 1
        expected = 3.0 * (tau / ratio if tau <= ratio else 1.0)
        assert schedule.value(t) == pytest.approx(expected, abs=1e-12), t
    assert schedule.value(period) == 0.0  # every cycle starts again from zero
    if period > 1:
        assert schedule.value(period - 1) == 3.0 or ratio == 1.0


def test_capacity_value_is_the_line_from_zero_to_max():
    target = capacity(5.0, 10, gamma=2.0)
    assert [target.value(t) for t in range(12)] == [5.0 * min(t, 10) / 10 for t in range(12)]
    # torchbearer-variational's with_linear_capacity would add steps / max_c = 2 nats after one step
    assert target.value(1) == 0.5
    divergence = torch.tensor(3.0)
    assert target.loss_term(divergence, {GLOBAL_STEP: 2}).item() == pytest.approx(2.0 * abs(3.0 - 1.0))
    assert target.loss_term(divergence, {GLOBAL_STEP: 10}).item() == pytest.approx(2.0 * abs(3.0 - 5.0))


def test_constant_and_custom_schedules():
    assert constant(4.0)({GLOBAL_STEP: 10 ** 9}) == 4.0
    squared = Schedule(lambda step: min(step / 10, 1.0) ** 2)
    assert squared({GLOBAL_STEP: 5}) == 0.25
    assert repr(linear_warmup(3)) == "linear_warmup(num_steps=3, max_beta=1.0, unit='step')"
    assert repr(capacity(2, 5)) == "capacity(max_capacity=2.0, num_steps=5, gamma=1000.0, unit='step')"


def test_a_schedule_outside_a_divergence_callback_says_where_the_position_comes_from():
    with pytest.raises(MissingStateError, match=r'GLOBAL_STEP.*beta of kld_loss or divergence'):
        linear_warmup(3)({})
    with pytest.raises(MissingStateError, match='GLOBAL_EPOCH'):
        linear_warmup(3, unit='epoch')({GLOBAL_STEP: 1})


@pytest.mark.parametrize('make, error, message', [
    (lambda: linear_warmup(0), ValueError, 'num_steps must be an int >= 1, got 0'),
    (lambda: linear_warmup(2.5), TypeError, 'num_steps must be an int >= 1, got 2.5'),
    (lambda: linear_warmup(True), TypeError, 'num_steps must be an int'),
    (lambda: linear_warmup(3, max_beta=-1.0), ValueError, 'max_beta must be a finite number >= 0, got -1.0'),
    (lambda: linear_warmup(3, max_beta=float('inf')), ValueError, 'max_beta must be a finite number'),
    (lambda: linear_warmup(3, unit='batch'), ValueError, "unit must be one of 'step', 'epoch', got 'batch'"),
    (lambda: linear_warmup(3, max_beta='1'), TypeError, "max_beta must be a finite number >= 0, got '1'"),
    (lambda: cyclical(0), ValueError, 'period must be an int >= 1, got 0'),
    (lambda: cyclical(2.5), TypeError, 'period must be an int >= 1, got 2.5'),
    (lambda: cyclical(4, ratio=0.0), ValueError, r'ratio must be a finite number > 0 and <= 1, got 0.0'),
    (lambda: cyclical(4, ratio=1.5), ValueError, r'ratio must be a finite number > 0 and <= 1, got 1.5'),
    (lambda: cyclical(4, ratio='half'), TypeError, "ratio must be a finite number > 0 and <= 1, got 'half'"),
    (lambda: capacity(-1.0, 10), ValueError, 'max_capacity must be a finite number >= 0'),
    (lambda: capacity(True, 10), TypeError, 'max_capacity must be a finite number >= 0, got True'),
    (lambda: capacity(5.0, 0), ValueError, 'num_steps must be an int >= 1'),
    (lambda: capacity(5.0, '3'), TypeError, "num_steps must be an int >= 1, got '3'"),
    (lambda: capacity(5.0, 10, gamma=0.0), ValueError, 'gamma must be a finite number > 0'),
    (lambda: capacity(5.0, 10, gamma=None), TypeError, 'gamma must be a finite number > 0, got None'),
    (lambda: constant(-0.5), ValueError, 'beta must be a finite number >= 0, got -0.5'),
    (lambda: constant(None), TypeError, 'beta must be a finite number >= 0, got None'),
    (lambda: Schedule(3.0), TypeError, r'function must be callable as function\(position: int\) -> beta'),
    (lambda: Schedule(abs, unit='epochs'), ValueError, "unit must be one of 'step', 'epoch'"),
    (lambda: Schedule(abs, unit=1), TypeError, "unit must be one of 'step', 'epoch'"),
    (lambda: Schedule(abs, description=1), TypeError, 'description must be a str or None'),
])
def test_bad_arguments_fail_at_construction(make, error, message):
    with pytest.raises(error, match=message):
        make()


# -- the beta real Trials apply --

def test_trial_applies_the_warmup_step_by_step_and_validation_uses_the_last_training_beta():
    warmup = linear_warmup(5, max_beta=2.0)
    records, _ = run(kld_loss(beta=warmup, reduction='batchmean'), epochs=3)
    expected_train = [2.0 * min(t, 5) / 5 for t in range(9)]
    assert records['train'] == pytest.approx(expected_train, rel=1e-6)
    # two validation batches after each epoch, at the beta of that epoch's last training step (2, 5, 8)
    assert records['val'] == pytest.approx([expected_train[t] for t in (2, 2, 5, 5, 8, 8)], rel=1e-6)


def test_trial_applies_the_cyclical_schedule_across_epochs():
    schedule = cyclical(period=4, ratio=0.5)
    records, _ = run(kld_loss(beta=schedule), epochs=3, val_steps=0)
    assert records['train'] == pytest.approx([0.0, 0.5, 1.0, 1.0] * 2 + [0.0], abs=1e-6)


def test_epoch_unit_is_constant_within_an_epoch():
    records, _ = run(kld_loss(beta=linear_warmup(2, unit='epoch')), epochs=4, val_steps=1)
    assert records['train'] == pytest.approx([0.0] * 3 + [0.5] * 3 + [1.0] * 6, abs=1e-6)
    assert records['val'] == pytest.approx([0.0, 0.5, 1.0, 1.0], abs=1e-6)


def test_a_plain_function_of_state_reads_the_same_position():
    records, _ = run(kld_loss(beta=lambda state: 0.1 * state[GLOBAL_STEP]), epochs=2, val_steps=1)
    assert records['train'] == pytest.approx([0.1 * t for t in range(6)], rel=1e-6, abs=1e-7)
    assert records['val'] == pytest.approx([0.2, 0.5], rel=1e-6)


def test_validation_does_not_advance_the_schedule():
    with_validation, without = kld_loss(beta=linear_warmup(10)), kld_loss(beta=linear_warmup(10))
    records_with, _ = run(with_validation, epochs=2, val_steps=3)
    records_without, _ = run(without, epochs=2, val_steps=0)
    assert records_with['train'] == records_without['train']
    assert with_validation.state_dict() == without.state_dict() == {'step': 6, 'epoch': 2}


def test_evaluating_before_training_uses_the_first_beta():
    callback = kld_loss(beta=cyclical(4, ratio=0.5))
    records, trial = run(callback, epochs=0)
    trial.evaluate(data_key=torchbearer.VALIDATION_DATA, verbose=0)
    assert records['val'] == [0.0, 0.0] and callback.state_dict() == {'step': 0, 'epoch': 0}


@pytest.mark.parametrize('reduction', ['batchmean', 'sum'])
def test_capacity_term_follows_the_line_exactly_in_a_trial(reduction):
    # KL is 9 nats per image; C rises 0 -> 6 over 8 steps, then stays: the term is gamma * |KL - C|
    # per image (times the batch size for 'sum'), and C can be read back from it exactly.
    gamma, kl_per_image = 2.0, 9.0
    mu = torch.full((BATCH, 2), 3.0)  # KL = 0.5 * 9 per dimension
    records, recorders = applied_beta_recorder(kind='loss')
    callback = kld_loss(beta=capacity(6.0, 8, gamma=gamma), reduction=reduction)
    records, _ = run_with_recorders(callback, recorders, records, mu)
    count = BATCH if reduction == 'sum' else 1
    applied_c = [kl_per_image - term / (gamma * count) for term in records['train']]
    assert applied_c == pytest.approx([6.0 * min(t, 8) / 8 for t in range(12)], abs=1e-5)
    assert applied_c[1] == pytest.approx(0.75, abs=1e-5)  # max_c / steps, not steps / max_c


def test_capacity_above_the_kl_penalises_the_shortfall():
    mu = torch.full((BATCH, 2), 1.0)  # KL = 1 nat per image
    records, recorders = applied_beta_recorder(kind='loss')
    callback = kld_loss(beta=capacity(3.0, 3, gamma=10.0), reduction='batchmean')
    records, _ = run_with_recorders(callback, recorders, records, mu, epochs=2)
    assert records['train'] == pytest.approx([10.0 * abs(1.0 - 3.0 * min(t, 3) / 3) for t in range(6)], abs=1e-4)


def run_with_recorders(callback, recorders, records, mu, epochs=4):
    model = FixedPosterior(mu, torch.zeros_like(mu))
    trial = Trial(model, torch.optim.SGD(model.parameters(), lr=0.0), zero_criterion,
                  callbacks=[callback, *recorders], verbose=0)
    data = torch.utils.data.TensorDataset(torch.rand(BATCH * 3, 2), torch.rand(BATCH * 3, 2))
    trial.with_generators(torch.utils.data.DataLoader(data, batch_size=BATCH))
    trial.run(epochs)
    return records, trial


def test_constant_schedule_trains_like_the_number():
    mu, logvar = torch.randn(BATCH, 2), torch.randn(BATCH, 2)
    records_schedule, _ = run(kld_loss(beta=constant(3.0)), epochs=1, mu=mu, logvar=logvar)
    records_number, _ = run(kld_loss(beta=3.0), epochs=1, mu=mu, logvar=logvar)
    assert records_schedule == records_number
    assert records_number['train'] == pytest.approx([3.0] * 3, rel=1e-6)
    assert kld(mu, logvar).item() > 0


# -- checkpoint / resume --

def weights_only_round_trip(value):
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def make_callback():
    return kld_loss(beta=cyclical(period=5, ratio=0.6, max_beta=2.0))


def test_resuming_from_the_callback_state_continues_the_schedule():
    uninterrupted, _ = run(make_callback(), epochs=4)

    first = make_callback()
    first_half, _ = run(first, epochs=2)
    saved = weights_only_round_trip(first.state_dict())
    assert saved == {'step': 6, 'epoch': 2}
    second = make_callback()
    assert second.load_state_dict(saved) is second
    second_half, _ = run(second, epochs=2)  # a fresh Trial: only the callback knows where training was

    assert first_half['train'] + second_half['train'] == uninterrupted['train']
    assert first_half['val'] + second_half['val'] == uninterrupted['val']
    assert len(set(uninterrupted['train'])) > 3  # the schedule did vary, so the comparison means something


def test_resuming_through_torchbearer_trial_state_dict_continues_the_schedule():
    uninterrupted, _ = run(make_callback(), epochs=4)
    first_half, first_trial = run(make_callback(), epochs=2)
    second_half, _ = run(make_callback(), epochs=4, trial_state=first_trial.state_dict())  # continues at epoch 2
    assert first_half['train'] + second_half['train'] == uninterrupted['train']
    assert first_half['val'] + second_half['val'] == uninterrupted['val']


def test_epoch_unit_resumes_from_the_callback_state():
    def make():
        return kld_loss(beta=linear_warmup(3, unit='epoch'))
    uninterrupted, _ = run(make(), epochs=4, val_steps=1)
    first = make()
    first_half, _ = run(first, epochs=2, val_steps=1)
    second = make().load_state_dict(weights_only_round_trip(first.state_dict()))
    second_half, _ = run(second, epochs=2, val_steps=1)
    assert first_half['train'] + second_half['train'] == uninterrupted['train']
    assert first_half['val'] + second_half['val'] == uninterrupted['val']


# -- cost per step --

SYNCS = ('item', 'tolist', '__bool__', '__float__', '__int__', 'cpu')


def count_host_syncs(monkeypatch, callbacks, metrics):
    calls = []
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counted)
    model = FixedPosterior(torch.randn(BATCH, 3), torch.randn(BATCH, 3))
    trial = Trial(model, torch.optim.SGD(model.parameters(), lr=0.01), zero_criterion, metrics=metrics,
                  callbacks=callbacks, verbose=0)
    data = torch.utils.data.TensorDataset(torch.rand(BATCH * 20, 3), torch.rand(BATCH * 20, 3))
    trial.with_generators(torch.utils.data.DataLoader(data, batch_size=BATCH))
    trial.run(1)
    monkeypatch.undo()
    return len(calls)


def test_schedules_and_free_bits_add_no_host_device_synchronisation(monkeypatch):
    baseline = count_host_syncs(monkeypatch, [], metrics=[])
    ours = count_host_syncs(monkeypatch, [kld_loss(beta=cyclical(7), free_bits=0.5),
                                          kld_loss(beta=capacity(5.0, 10), reduction='batchmean')], metrics=[])
    assert ours == baseline


def test_kl_and_recon_metrics_synchronise_exactly_as_often_as_torchbearers_loss(monkeypatch):
    callbacks = [kld_loss(beta=linear_warmup(5))]
    nothing = count_host_syncs(monkeypatch, callbacks, metrics=[])
    loss = count_host_syncs(monkeypatch, callbacks, metrics=['loss'])
    all_three = count_host_syncs(monkeypatch, callbacks, metrics=['loss', 'kl', 'recon'])
    assert loss > nothing  # the counter does see torchbearer's own running mean and epoch mean
    assert all_three - nothing == 3 * (loss - nothing)


def test_schedule_math_is_plain_python():
    value = linear_warmup(7, max_beta=3.0)({GLOBAL_STEP: 2})
    assert type(value) is float and math.isclose(value, 3.0 * 2 / 7)


# -- keyword-only options --

def test_the_factories_take_their_length_by_position_and_the_rest_by_keyword():
    for function, positional in ((linear_warmup, ['num_steps']), (cyclical, ['period']),
                                 (capacity, ['max_capacity', 'num_steps']), (constant, ['beta'])):
        parameters = list(inspect.signature(function).parameters.values())
        assert [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD] == positional, function
        assert all(p.kind is p.KEYWORD_ONLY for p in parameters[len(positional):]), function
