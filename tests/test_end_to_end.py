"""Real torchbearer Trials of the reference VAE on the real MNIST, both ways the tutorial shows."""
import numpy as np
import pytest
import torch
import torchbearer
from PIL import Image
from torch.utils.data import DataLoader, Subset
from torchbearer import Trial

import torchbearer_vae
from torchbearer_vae import VAE, AutoEncoderDataset, ReconstructionSaver, kld_loss, train_val_split, vae_loss


@pytest.fixture(scope='module')
def loaders(mnist):
    data = AutoEncoderDataset(Subset(mnist, range(2000)))
    train, val = train_val_split(data, val_fraction=0.1, seed=1)
    return DataLoader(train, batch_size=128, shuffle=True), DataLoader(val, batch_size=128)


def check_grid(path, val_loader):
    image = Image.open(path)
    assert image.mode == 'L'  # grey digits, one grey channel
    grid = np.asarray(image)[..., None]
    assert grid.shape == (2 + 2 * 30, 2 + 8 * 30, 1)
    inputs = next(iter(val_loader))[0][:8]
    for column in range(8):
        tile = grid[2:30, 2 + 30 * column:30 + 30 * column, 0]
        assert np.array_equal(tile, (inputs[column, 0] * 255 + 0.5).to(torch.uint8).numpy())
    assert grid[32:60].std() > 5  # the reconstructions are pictures, not a blank row


def test_state_way_trains_and_saves_reconstructions(loaders, tmp_path):
    train_loader, val_loader = loaders
    model = VAE()
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3), torch.nn.BCELoss(reduction='sum'),
                  metrics=['loss'], callbacks=[kld_loss(), ReconstructionSaver(folder=tmp_path)], verbose=0)
    trial.with_generators(train_generator=train_loader, val_generator=val_loader)
    before = trial.evaluate(data_key=torchbearer.VALIDATION_DATA, verbose=0)['val_loss']
    history = trial.run(epochs=1, verbose=0)
    after = history[-1]['val_loss']
    assert after < 0.6 * before, (before, after)
    check_grid(tmp_path / 'reconstruction_0.png', val_loader)


def test_pytorch_way_trains_with_vae_loss(loaders, tmp_path):
    train_loader, val_loader = loaders
    model = VAE(use_state=False)
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3), vae_loss, metrics=['loss'],
                  callbacks=[ReconstructionSaver(folder=tmp_path)], verbose=0)
    trial.with_generators(train_generator=train_loader, val_generator=val_loader)
    before = trial.evaluate(data_key=torchbearer.VALIDATION_DATA, verbose=0)['val_loss']
    after = trial.run(epochs=1, verbose=0)[-1]['val_loss']
    assert after < 0.6 * before, (before, after)
    check_grid(tmp_path / 'reconstruction_0.png', val_loader)


def test_both_ways_compute_the_same_loss(loaders):
    x, target = next(iter(loaders[1]))
    model = VAE().eval()
    state = {}
    recon = model(x, state=state)
    state_way = torch.nn.functional.binary_cross_entropy(recon, target, reduction='sum') + kld(state)
    torch.testing.assert_close(state_way, vae_loss(*model(x), target))


def kld(state):
    return torchbearer_vae.kld(state[torchbearer_vae.MU], state[torchbearer_vae.LOGVAR])


def test_the_plugin_is_usable_through_torchbearer_names(loaders, tmp_path):
    model = VAE()
    trial = Trial(model, torch.optim.Adam(model.parameters()), torch.nn.BCELoss(reduction='sum'),
                  metrics=['loss', torchbearer.KL],
                  callbacks=[torchbearer.callbacks.kld_loss(), torchbearer.callbacks.ReconstructionSaver(
                      folder=tmp_path).on_train()], verbose=0)
    trial.with_train_generator(loaders[0], steps=3)
    history = trial.run(1, verbose=0)
    assert history[0]['kl'] > 0
    assert (tmp_path / 'reconstruction_0.png').exists()


@pytest.mark.slow
def test_readme_example_runs(mnist_dir, tmp_path, monkeypatch):
    import pathlib
    import re
    readme = (pathlib.Path(__file__).parents[1] / 'README.md').read_text()
    code = re.search(r'```python\n(.*?)```', readme, re.S).group(1)
    assert len(code.strip().splitlines()) <= 16
    # The same code on the local MNIST split, for one epoch: the README stays runnable.
    assert "IDXDataset.from_folder('../shared/data/mnist')" in code and 'epochs=10' in code
    code = code.replace("'../shared/data/mnist'", repr(mnist_dir))  # test_docs runs it exactly as written (slow)
    code = code.replace('epochs=10', 'epochs=1')
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, 'README.md', 'exec'), namespace)
    assert (tmp_path / 'results' / 'reconstruction_0.png').exists()
    assert namespace['trial'].state[torchbearer.HISTORY][0]['val_loss'] < 200 * 128
