"""NaNGuard in real Trials on the real MNIST: where it stops, what it blames, what it keeps, and under DDP."""
import gc
import inspect
import math
import multiprocessing
import os
import socket
import warnings

import pytest
import torch
import torchbearer
from torch.utils.data import DataLoader, TensorDataset
from torchbearer import Trial
from torchbearer.callbacks import TerminateOnNaN

from torchbearer_vae import (
    GLOBAL_STEP,
    LOGVAR,
    MU,
    VAE,
    Checkpointer,
    MetricsCSV,
    NaNGuard,
    ReconstructionSaver,
    divergence,
    kld,
    kld_loss,
    load_checkpoint,
    vae_loss,
)


@pytest.fixture(scope='module')
def images(mnist):
    """256 real MNIST digits, (256, 1, 28, 28) in [0, 1]."""
    return mnist.data[:256].unsqueeze(1).float() / 255


def loader(images, batch_size=32):
    return DataLoader(TensorDataset(images, images), batch_size=batch_size)


def small_vae(**kwargs):
    return VAE(hidden_dim=32, latent_dim=4, **kwargs)


def weights(model):
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def at(state, epoch, batch):
    return state[torchbearer.EPOCH] == epoch and state[torchbearer.BATCH] == batch


class Hook(torchbearer.Callback):
    """Run ``action(state)`` at one hook of one batch: how a fault is injected into a real Trial."""

    def __init__(self, hook, epoch, batch, action):
        super().__init__()
        self.fired = 0

        def call(state):
            if at(state, epoch, batch):
                self.fired += 1
                action(state)
        setattr(self, hook, call)


class WeightsBefore(torchbearer.Callback):
    """The weights as they were when batch ``batch`` of ``epoch`` was sampled, before its update."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.weights = epoch, batch, None

    def on_sample(self, state):
        if at(state, self.epoch, self.batch):
            self.weights = weights(state[torchbearer.MODEL])


def run(model, images, callbacks, epochs=3, criterion=None):
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3), criterion or torch.nn.BCELoss(reduction='sum'),
                  metrics=['loss'], callbacks=callbacks, verbose=0)
    trial.with_generators(loader(images), loader(images[:64]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        history = trial.run(epochs)
    guard_warnings = [w for w in caught if issubclass(w.category, RuntimeWarning) and 'NaNGuard' in str(w.message)]
    return history, guard_warnings


def assert_one_line(message, *parts):
    assert message.startswith('NaNGuard stopped training at ') and '\n' not in message
    for part in parts:
        assert part in message, (part, message)


def test_an_infinite_kl_stops_before_its_update_and_the_last_epoch_stays_on_disk(images, tmp_path):
    model, guard = small_vae(), NaNGuard()
    snapshot = {}

    def on_checkpoint(state):
        snapshot['bytes'] = (tmp_path / 'checkpoint.pt').read_bytes()
        snapshot['csv'] = (tmp_path / 'metrics.csv').read_text()

    def blow_up(state):  # an encoder whose logvar ran away: exp(1000) overflows float32
        state[LOGVAR] = state[LOGVAR] + 1000

    before = WeightsBefore(1, 3)
    history, warned = run(model, images, [
        kld_loss(), Hook('on_forward', 1, 3, blow_up), guard, before,
        # written at the hook (not in the background), so that on_checkpoint below can read them
        Checkpointer(tmp_path / 'checkpoint.pt', background=False),
        MetricsCSV(tmp_path / 'metrics.csv', background=False),
        ReconstructionSaver(folder=tmp_path), torchbearer.callbacks.on_checkpoint(on_checkpoint)])

    assert guard.stopped_at == {'phase': 'training', 'epoch': 1, 'batch': 3, 'term': 'kl'}
    assert_one_line(guard.message, 'epoch 1, batch 3 (training', 'the loss is inf', 'the KL term is inf',
                    'the reconstruction term is ', 'logvar reached 99', "update was skipped", 'logvar_clamp')
    assert [str(w.message) for w in warned] == [guard.message]
    assert len(history) == 1  # epoch 1 never recorded
    # The files of epoch 0 are exactly as epoch 0 left them; nothing of epoch 1 was written.
    assert (tmp_path / 'checkpoint.pt').read_bytes() == snapshot['bytes']
    assert (tmp_path / 'metrics.csv').read_text() == snapshot['csv'] and len(snapshot['csv'].splitlines()) == 2
    assert sorted(os.listdir(tmp_path)) == ['checkpoint.pt', 'metrics.csv', 'reconstruction_0.png']
    assert load_checkpoint(tmp_path / 'checkpoint.pt')['epoch'] == 1
    # The bad step's update was skipped: the weights are those the bad batch started from.
    after = weights(model)
    assert all(torch.equal(after[name], before.weights[name]) for name in after)
    assert all(torch.isfinite(value).all() for value in after.values())


def test_a_healthy_run_is_not_changed_by_the_guard(images):
    histories, models = [], []
    for callbacks in ([kld_loss()], [kld_loss(), NaNGuard()]):
        torch.manual_seed(3)
        model = small_vae()
        history, warned = run(model, images, callbacks, epochs=2)
        histories.append(history)
        models.append(weights(model))
        assert warned == []
    assert histories[0] == histories[1]
    assert all(torch.equal(models[0][name], models[1][name]) for name in models[0])


def test_a_nan_reconstruction_term_is_named(images):
    guard = NaNGuard(warn=False)
    calls = []

    def criterion(recon, target):
        calls.append(1)
        loss = torch.nn.functional.binary_cross_entropy(recon, target, reduction='sum')
        return loss * math.nan if len(calls) == 3 else loss

    history, warned = run(small_vae(), images, [kld_loss(), guard], criterion=criterion)
    assert guard.stopped_at == {'phase': 'training', 'epoch': 0, 'batch': 2, 'term': 'recon'}
    assert_one_line(guard.message, 'the loss is nan', 'the reconstruction term is nan', 'the KL term is ')
    assert 'the KL term is nan' not in guard.message and 'logvar reached' not in guard.message
    assert history == [] and warned == []


def test_a_nan_output_is_caught_before_bce_raises(images):
    def runaway_logvar(state):  # exp(400 / 2) overflows: the draw z is infinite and the images NaN
        state[torchbearer.MODEL].fc22.bias.data.fill_(400.0)

    with pytest.raises(RuntimeError, match='between 0 and 1'):  # what happens without the guard
        run(small_vae(), images, [kld_loss(), Hook('on_sample', 0, 2, runaway_logvar)])

    guard = NaNGuard()
    history, warned = run(small_vae(), images, [kld_loss(), Hook('on_sample', 0, 2, runaway_logvar), guard])
    assert guard.stopped_at == {'phase': 'training', 'epoch': 0, 'batch': 2, 'term': 'output'}
    assert_one_line(guard.message, "the model's output is not finite", 'holds nan', 'logvar reached 400')
    assert history == [] and len(warned) == 1


def test_without_the_output_check_a_nan_output_is_caught_at_its_loss_before_the_update(images):
    # The command line's setting: the package's VAE scores its Bernoulli loss from the logits, so a NaN output gives
    # a NaN loss (no BCELoss to raise), which the loss check of the same step catches before the optimizer step.
    def runaway_logvar(state):
        state[torchbearer.MODEL].fc22.bias.data.fill_(400.0)

    model = small_vae()
    before = WeightsBefore(0, 2)
    guard = NaNGuard(output=False, warn=False)
    history, _ = run(model, images, [kld_loss(), Hook('on_sample', 0, 2, runaway_logvar), before, guard],
                     criterion=model.reconstruction_loss)
    assert guard.stopped_at is not None and guard.stopped_at['phase'] == 'training'
    assert (guard.stopped_at['epoch'], guard.stopped_at['batch']) == (0, 2)
    assert guard.stopped_at['term'] in ('recon', 'kl', 'recon and kl')  # the loss's terms, not the output
    assert_one_line(guard.message, 'the loss is', 'logvar reached 400')
    after = weights(model)
    changed = [name for name in after if not torch.equal(after[name], before.weights[name])]
    assert changed == [], changed  # the weights as that step found them (the fault included): no update
    assert history == []


def test_non_finite_inputs_are_blamed_on_the_data(images):
    bad = images.clone()
    bad[70, 0, 5, 5] = math.nan  # in the third batch of 32
    guard = NaNGuard(warn=False)
    run(small_vae(), bad, [kld_loss(), guard])
    assert guard.stopped_at == {'phase': 'training', 'epoch': 0, 'batch': 2, 'term': 'output'}
    assert_one_line(guard.message, 'the inputs of this batch are not finite', 'fix the data')
    assert 'learning rate' not in guard.message  # no advice that cannot help with bad data


def test_without_a_divergence_callback_the_loss_is_named(images):
    guard = NaNGuard(warn=False)
    calls = []

    def criterion(recon, mu, logvar, target):  # the PyTorch way: (recon, mu, logvar) from the model
        calls.append(1)
        return vae_loss(recon, mu, logvar, target) * (math.inf if len(calls) == 5 else 1)

    run(small_vae(use_state=False), images, [guard], criterion=criterion)
    assert guard.stopped_at == {'phase': 'training', 'epoch': 0, 'batch': 4, 'term': 'loss'}
    assert_one_line(guard.message, 'the loss is inf', 'no divergence callback stored its terms')


def test_finite_terms_with_an_infinite_weight_blame_the_weighting(images):
    guard = NaNGuard(warn=False)
    beta = kld_loss(beta=lambda state: math.inf if state[GLOBAL_STEP] >= 9 else 1.0)  # 8 batches per epoch
    run(small_vae(), images, [beta, guard])
    assert guard.stopped_at == {'phase': 'training', 'epoch': 1, 'batch': 1, 'term': 'loss'}
    assert_one_line(guard.message, 'terms are finite, so the weighting (beta)')


def test_an_infinite_weight_of_a_divergence_storing_no_kl_blames_the_weighting(images):
    guard = NaNGuard(warn=False)

    @divergence(MU, LOGVAR, beta=lambda state: math.inf if state[GLOBAL_STEP] >= 9 else 1.0, store_as=None)
    def kl(mu, logvar):
        return kld(mu, logvar, reduction='sum')

    run(small_vae(), images, [kl, guard])  # state[RECON] is stored, state[KL] is not
    assert guard.stopped_at == {'phase': 'training', 'epoch': 1, 'batch': 1, 'term': 'loss'}
    assert_one_line(guard.message, 'the reconstruction (', ') term is finite, so the weighting (beta)')


def test_an_infinite_gradient_of_a_finite_loss_is_caught_and_its_update_skipped(images):
    def infinite_gradient(state):
        state[torchbearer.MODEL].fc1.weight.grad[0, 0] = math.inf

    guard, before = NaNGuard(warn=False), WeightsBefore(0, 3)
    model = small_vae()
    run(model, images, [kld_loss(), Hook('on_backward', 0, 3, infinite_gradient), guard, before])
    assert guard.stopped_at == {'phase': 'training', 'epoch': 0, 'batch': 3, 'term': 'gradients'}
    assert_one_line(guard.message, 'the loss is finite', 'a gradient is not (first: fc1.weight)')
    after = weights(model)
    assert all(torch.equal(after[name], before.weights[name]) for name in after)


def test_with_gradients_unchecked_the_weights_check_keeps_the_epoch_out_of_the_checkpoint(images, tmp_path):
    def infinite_gradient(state):  # on the last batch of epoch 1: Adam writes NaN into the weights
        state[torchbearer.MODEL].fc1.weight.grad[0, 0] = math.inf

    guard = NaNGuard(gradients=False, warn=False)
    model = small_vae()
    history, _ = run(model, images, [kld_loss(), Hook('on_backward', 1, 7, infinite_gradient), guard,
                                     Checkpointer(tmp_path / 'checkpoint.pt')])
    assert guard.stopped_at == {'phase': 'training', 'epoch': 1, 'batch': None, 'term': 'weights'}
    assert_one_line(guard.message, 'the weights are not finite after training epoch 1 (fc1.weight)')
    assert not torch.isfinite(model.fc1.weight).all()  # in memory: the update went through
    checkpoint = load_checkpoint(tmp_path / 'checkpoint.pt')
    assert len(history) == 1 and checkpoint['epoch'] == 1
    assert all(torch.isfinite(value).all() for value in checkpoint['model_state'].values())


def test_a_nan_validation_loss_stops_after_the_epoch_is_recorded(images, tmp_path):
    def blow_up(state):
        state[LOGVAR] = state[LOGVAR] + 1000

    guard = NaNGuard(warn=False)
    history, _ = run(small_vae(), images, [kld_loss(), Hook('on_forward_validation', 0, 1, blow_up), guard,
                                           Checkpointer(tmp_path / 'checkpoint.pt')])
    assert guard.stopped_at == {'phase': 'validation', 'epoch': 0, 'batch': 1, 'term': 'kl'}
    assert_one_line(guard.message, '(validation', 'the epoch is recorded')
    assert "update was skipped" not in guard.message
    assert len(history) == 1 and load_checkpoint(tmp_path / 'checkpoint.pt')['epoch'] == 1
    unchecked = NaNGuard(validation=False, warn=False)
    history, _ = run(small_vae(), images, [kld_loss(), Hook('on_forward_validation', 0, 1, blow_up), unchecked],
                     epochs=2)
    assert unchecked.message is None and len(history) == 2 and math.isinf(history[0]['val_loss'])


def blow_up_logvar(state):
    state[LOGVAR] = state[LOGVAR] + 1000


@pytest.mark.parametrize('advice, present, absent', [
    (None, ['try a lower learning rate', 'torchbearer.callbacks.GradientNormClipping',
            'VAE(logvar_clamp=(-30, 20))'], []),
    ('start a new run with a lower --lr', ['; start a new run with a lower --lr'], ['GradientNormClipping']),
    ('', [], ['GradientNormClipping', 'learning rate']),
])
def test_the_advice_is_the_library_s_by_default_and_a_program_can_give_its_own(images, advice, present, absent):
    guard = NaNGuard(warn=False, advice=advice)
    run(small_vae(), images[:64], [kld_loss(), Hook('on_forward', 0, 1, blow_up_logvar), guard], epochs=1)
    assert guard.stopped_at == {'phase': 'training', 'epoch': 0, 'batch': 1, 'term': 'kl'}
    assert_one_line(guard.message, 'the KL term is inf', 'the epoch is not recorded', *present)
    assert not any(text in guard.message for text in absent), guard.message
    if advice is not None:
        assert guard.message.endswith('checkpoints keep the last complete epoch' + (f'; {advice}' if advice else ''))


def test_options_are_keyword_only_and_checked():
    parameters = list(inspect.signature(NaNGuard.__init__).parameters.values())[1:]
    assert parameters and all(p.kind is p.KEYWORD_ONLY for p in parameters)
    guard = NaNGuard(gradients=False, validation=False, warn=False, output=False)
    assert (guard.gradients, guard.validation, guard.warn, guard.advice, guard.output) == (False, False, False, None,
                                                                                           False)
    assert repr(guard) == 'NaNGuard(gradients=False, validation=False, warn=False, output=False)'
    assert repr(NaNGuard(advice='lower --lr')) == "NaNGuard(gradients=True, validation=True, warn=True, " \
                                                  "advice='lower --lr')"
    for name in ('gradients', 'validation', 'warn', 'output'):
        with pytest.raises(TypeError, match=f'{name} must be True or False, got 1'):
            NaNGuard(**{name: 1})
    with pytest.raises(TypeError, match='advice must be a str'):
        NaNGuard(advice=['lower the learning rate'])


def test_it_is_a_terminate_on_nan_that_starts_each_run_afresh(images):
    guard = NaNGuard()
    assert isinstance(guard, TerminateOnNaN) and repr(guard) == 'NaNGuard(gradients=True, validation=True, warn=True)'

    faulty = [True]

    def blow_up(state):
        if faulty:
            state[LOGVAR] = state[LOGVAR] + 1000

    model = small_vae()
    trial = Trial(model, torch.optim.Adam(model.parameters()), torch.nn.BCELoss(reduction='sum'), verbose=0,
                  callbacks=[kld_loss(), Hook('on_forward', 0, 0, blow_up), guard]).with_generators(loader(images))
    with pytest.warns(RuntimeWarning, match='NaNGuard stopped training'):
        trial.run(1)
    assert guard.stopped_at['epoch'] == 0
    faulty.clear()  # the fault is fixed; the same guard watches the next run
    trial.run(1)
    assert guard.message is None and guard.stopped_at is None and len(trial.state[torchbearer.HISTORY]) == 1


def _ddp_rank(rank, port, images, results):
    """One of two gloo processes training a DistributedDataParallel VAE; rank 0's output gets a NaN at batch 2."""
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group('gloo', rank=rank, world_size=2)
    model = trial = None
    try:
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(small_vae())
        guard = NaNGuard(warn=False)

        def nan_pixel(state):  # on this rank only, and on no gradient's path: its own gradients stay finite
            state[torchbearer.Y_PRED] = state[torchbearer.Y_PRED] + torch.full((28,), math.nan).where(
                torch.arange(28) == 0, torch.tensor(0.0))

        callbacks = [kld_loss()] + ([Hook('on_forward', 0, 2, nan_pixel)] if rank == 0 else []) + [guard]
        trial = Trial(model, torch.optim.Adam(model.parameters()), torch.nn.BCELoss(reduction='sum'),
                      callbacks=callbacks, verbose=0).with_generators(loader(images[rank::2]))
        history = trial.run(2)
        results.put((rank, guard.stopped_at, guard.message, len(history)))
    finally:
        # DDP holds the process group, and the Trial (which refers to itself) holds DDP until a garbage
        # collection: destroying a group still held can abort the process at exit (as commands.py explains).
        model = trial = None
        gc.collect()
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_under_ddp_every_rank_stops_at_the_same_step_without_talking(images):
    with socket.socket() as free:
        free.bind(('127.0.0.1', 0))
        port = free.getsockname()[1]
    context = multiprocessing.get_context('spawn')
    results = context.Queue()
    ranks = [context.Process(target=_ddp_rank, args=(rank, port, images, results)) for rank in (0, 1)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=120)
    hung = [process for process in ranks if process.is_alive()]
    for process in hung:
        process.kill()
    assert not hung and [process.exitcode for process in ranks] == [0, 0]
    stopped = {rank: (at, message, epochs) for rank, at, message, epochs in (results.get(timeout=5) for _ in ranks)}
    assert stopped[0][0] == {'phase': 'training', 'epoch': 0, 'batch': 2, 'term': 'output'} and stopped[0][2] == 0
    assert "the model's output is not finite" in stopped[0][1]
    # Rank 1's own output and loss are fine: the NaN gradients of rank 0, all-reduced, stop it at the same step.
    assert stopped[1][0] == {'phase': 'training', 'epoch': 0, 'batch': 2, 'term': 'gradients'} and stopped[1][2] == 0
