import os
import pickle
import time

import pytest
import torch
import torchbearer
from torch.utils.data import DataLoader, TensorDataset
from torchbearer import Trial

from torchbearer_vae import (
    VAE,
    Checkpointer,
    CheckpointError,
    kld_loss,
    load_checkpoint,
    load_model_state,
    model_from_checkpoint,
    save_checkpoint,
)


def test_round_trip_loads_with_weights_only_and_rebuilds_the_model(tmp_path):
    model = VAE(input_shape=(1, 8, 8), hidden_dim=16, latent_dim=3)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(2, 1, 8, 8))[0].sum().backward()
    optimizer.step()
    path = tmp_path / 'checkpoint.pt'
    save_checkpoint(path, model, optimizer, epoch=2, history=[{'loss': torch.tensor(1.5)}], options={'a': (1, 2)})
    raw = torch.load(path, weights_only=True)  # the promise: no pickled objects inside
    assert raw['epoch'] == 2 and raw['history'] == [{'loss': 1.5}] and raw['options'] == {'a': [1, 2]}
    checkpoint = load_checkpoint(path)
    rebuilt = model_from_checkpoint(checkpoint)
    assert rebuilt.input_shape == (1, 8, 8) and rebuilt.latent_dim == 3 and not rebuilt.training
    x = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(rebuilt.eval()(x)[0], model.eval()(x)[0])
    fresh = torch.optim.Adam(rebuilt.parameters())
    fresh.load_state_dict(checkpoint['optimizer_state'])
    assert fresh.state_dict()['state'][0]['step'] == 1


class Exploit:
    def __reduce__(self):
        return (os.system, ('touch exploited',))


def test_a_malicious_pickle_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({'format': 'torchbearer_vae.checkpoint/1', 'payload': Exploit()}, tmp_path / 'evil.pt')
    with pytest.raises(CheckpointError, match='refused: it asks to load Python objects'):
        load_checkpoint(tmp_path / 'evil.pt')
    assert not (tmp_path / 'exploited').exists()


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
def test_a_refused_pickle_is_told_from_a_damaged_one_by_the_file_not_by_torchs_wording(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / 'legacy.pt', 'wb') as file:  # a plain pickle, the format before torch 1.6
        pickle.dump({'format': 'torchbearer_vae.checkpoint/1', 'payload': Exploit()}, file)
    torch.save({'payload': Exploit()}, tmp_path / 'zip.pt')
    for name in ('legacy.pt', 'zip.pt'):
        data = (tmp_path / name).read_bytes()
        (tmp_path / f'cut-{name}').write_bytes(data[:len(data) - 30])
        with pytest.raises(CheckpointError, match='refused: it asks to load Python objects'):
            load_checkpoint(tmp_path / name)
        with pytest.raises(CheckpointError, match='not a readable checkpoint'):
            load_checkpoint(tmp_path / f'cut-{name}')
    assert not (tmp_path / 'exploited').exists()


def test_missing_corrupt_and_foreign_files_are_explained(tmp_path):
    with pytest.raises(CheckpointError, match='no checkpoint at'):
        load_checkpoint(tmp_path / 'nothing.pt')
    save_checkpoint(tmp_path / 'good.pt', VAE(input_shape=(4,), hidden_dim=4, latent_dim=2))
    data = (tmp_path / 'good.pt').read_bytes()
    (tmp_path / 'truncated.pt').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='not a readable checkpoint'):
        load_checkpoint(tmp_path / 'truncated.pt')
    (tmp_path / 'text.pt').write_text('hello')  # not truncated: not a checkpoint at all
    with pytest.raises(CheckpointError, match='is not a checkpoint: torch.save did not write it'):
        load_checkpoint(tmp_path / 'text.pt')
    torch.save({'weights': torch.zeros(2)}, tmp_path / 'foreign.pt')
    with pytest.raises(CheckpointError, match='not a torchbearer_vae checkpoint'):
        load_checkpoint(tmp_path / 'foreign.pt')


def _crafted(path, model_state, config):
    """A checkpoint of the package's VAE with ``config`` and these weights, written as torch.save writes them."""
    torch.save({'format': 'torchbearer_vae.checkpoint/1', 'model': {'class': 'torchbearer_vae.models.vae:VAE',
                                                                     'config': config},
                'model_state': model_state, 'optimizer_state': None}, path)


@pytest.mark.parametrize('hidden_dim', [400_000, 10 ** 7])
def test_weights_not_backed_by_the_file_are_refused_before_any_model_is_built(tmp_path, hidden_dim):
    with torch.device('meta'):  # the shapes the configuration claims, at no cost
        shapes = {name: value.shape for name, value in VAE(hidden_dim=hidden_dim, latent_dim=2).state_dict().items()}
    config = VAE(hidden_dim=4, latent_dim=2).config | {'hidden_dim': hidden_dim}
    path = tmp_path / 'expanded.pt'
    _crafted(path, {name: torch.zeros(1).expand(*shape) for name, shape in shapes.items()}, config)
    assert os.path.getsize(path) < 20_000  # kilobytes claiming gigabytes
    started = time.perf_counter()
    for load in (load_checkpoint, model_from_checkpoint):
        with pytest.raises(CheckpointError, match=r"model_state\['.*'\] of shape .* needs [\d,]+ bytes but its "
                                                  r"storage holds 4 \(a zero-stride view"):
            load(path)
    assert time.perf_counter() - started < 2


def test_overlapping_views_claiming_more_than_the_file_stores_are_refused(tmp_path):
    storage = torch.arange(1000.)
    path = tmp_path / 'overlapping.pt'
    _crafted(path, {f'w{i}': storage[i:] for i in range(500)}, {})  # each backed, together far more than the file
    with pytest.raises(CheckpointError, match=f"need 1,501,000 bytes but the file has {os.path.getsize(path):,} "):
        load_checkpoint(path)


def test_tied_and_sliced_weights_are_backed_and_load(tmp_path):
    model = VAE(input_shape=(4,), hidden_dim=4, latent_dim=2)
    whole = torch.arange(8.)
    save_checkpoint(tmp_path / 'c.pt', model, tied=[whole, whole], halves=[whole[:4], whole[4:]])
    checkpoint = load_checkpoint(tmp_path / 'c.pt')
    assert checkpoint['halves'][1].tolist() == [4., 5., 6., 7.] and checkpoint['tied'][0].equal(whole)


def test_a_checkpoint_of_another_shape_is_named_not_crashed(tmp_path):
    save_checkpoint(tmp_path / 'c.pt', VAE(latent_dim=20))
    state = load_checkpoint(tmp_path / 'c.pt')['model_state']
    with pytest.raises(CheckpointError, match=r'fc21.weight: checkpoint \(20, 400\) vs model \(10, 400\)'):
        load_model_state(VAE(latent_dim=10), state)
    with pytest.raises(CheckpointError, match='missing from the checkpoint'):
        load_model_state(VAE(), {})


def test_checkpointer_saves_whole_epochs_in_a_real_trial(tmp_path):
    data = DataLoader(TensorDataset(torch.rand(16, 4), torch.rand(16, 4)), batch_size=8)
    model = VAE(input_shape=(4,), hidden_dim=8, latent_dim=2)
    seen = []

    class Spy(torchbearer.Callback):
        def on_checkpoint(self, state):
            seen.append(load_checkpoint(tmp_path / 'checkpoint.pt')['epoch'])

    trial = Trial(model, torch.optim.Adam(model.parameters()), torch.nn.BCELoss(reduction='sum'), metrics=['loss'],
                  callbacks=[kld_loss(), Checkpointer(tmp_path / 'checkpoint.pt', extra=lambda state: {'x': 1},
                                                      background=False), Spy()],
                  verbose=0)
    trial.with_generators(data, data).run(3)
    checkpoint = load_checkpoint(tmp_path / 'checkpoint.pt')
    assert seen == [1, 2, 3] and checkpoint['x'] == 1
    assert [set(row) >= {'loss', 'val_loss'} for row in checkpoint['history']] == [True] * 3
    assert checkpoint['history'][-1]['val_loss'] == pytest.approx(trial.state[torchbearer.HISTORY][-1]['val_loss'])
    assert os.listdir(tmp_path) == ['checkpoint.pt']


def test_a_background_checkpoint_holds_the_weights_of_its_epoch_not_later_ones(tmp_path):
    data = DataLoader(TensorDataset(torch.rand(16, 4), torch.rand(16, 4)), batch_size=8)
    model = VAE(input_shape=(4,), hidden_dim=8, latent_dim=2)
    at_checkpoint = []

    class ChangeTheWeightsAtOnce(torchbearer.Callback):  # runs right after the Checkpointer hands its file over
        def on_checkpoint(self, state):
            at_checkpoint.append({name: value.clone() for name, value in model.state_dict().items()})
            with torch.no_grad():
                for parameter in model.parameters():
                    parameter.add_(0.01)

    trial = Trial(model, torch.optim.SGD(model.parameters(), lr=0.0), torch.nn.BCELoss(reduction='sum'),
                  callbacks=[kld_loss(), Checkpointer(tmp_path / 'checkpoint.pt'), ChangeTheWeightsAtOnce()],
                  verbose=0)
    trial.with_generators(data, data).run(2)
    checkpoint = load_checkpoint(tmp_path / 'checkpoint.pt')  # complete when run() returns
    assert checkpoint['epoch'] == 2
    for name, value in at_checkpoint[-1].items():
        assert torch.equal(checkpoint['model_state'][name], value), name
    assert not torch.equal(checkpoint['model_state']['fc1.weight'], model.fc1.weight)  # moved on since


def test_a_failed_background_write_is_raised_not_lost(tmp_path):
    data = DataLoader(TensorDataset(torch.rand(16, 4), torch.rand(16, 4)), batch_size=8)
    model = VAE(input_shape=(4,), hidden_dim=8, latent_dim=2)
    folder = tmp_path / 'run'
    folder.mkdir()

    class TakeTheFolderAway(torchbearer.Callback):
        def on_end_epoch(self, state):  # torchbearer's on_checkpoint comes next
            os.rmdir(folder)
            folder.write_text('a file where the folder was')

    trial = Trial(model, torch.optim.Adam(model.parameters()), torch.nn.BCELoss(reduction='sum'),
                  callbacks=[kld_loss(), TakeTheFolderAway(), Checkpointer(folder / 'checkpoint.pt')], verbose=0)
    with pytest.raises(OSError, match='could not write .*checkpoint.pt'):
        trial.with_generators(data, data).run(1)
    assert folder.read_text() == 'a file where the folder was'


def test_checkpointer_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='is a directory'):
        Checkpointer(tmp_path)
    with pytest.raises(TypeError, match='extra must be a function'):
        Checkpointer(tmp_path / 'c.pt', extra={'a': 1})
    with pytest.raises(TypeError, match='background must be True or False'):
        Checkpointer(tmp_path / 'c.pt', background='yes')
