"""The peers of benchmarks/bench_training.py --peers: skipped with one line when not installed, and really training."""
import json
import os
import subprocess
import sys

import pytest
import torch

from torchbearer_vae import AutoEncoderDataset, IDXDataset, train_val_split

BENCHMARKS = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', 'benchmarks'))
PEERS = os.path.join(BENCHMARKS, 'peers.py')


@pytest.fixture
def peers(monkeypatch):
    """benchmarks/peers.py as a module (benchmarks/ is a folder of scripts, not a package)."""
    monkeypatch.syspath_prepend(BENCHMARKS)
    import peers

    return peers


@pytest.mark.parametrize('name, module', [('pythae', 'pythae'), ('Lightning', 'lightning')])
def test_a_peer_that_cannot_be_imported_is_skipped_with_the_install_command(peers, monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)  # what Python does for a module it must not import
    line = peers.missing_peer(name)
    assert line == f'{name}: skipped, `{module}` is not installed (pip install -e ".[bench]" installs the peers)'
    assert peers.missing_peer(name, 'not_a_module_anywhere').startswith(f'{name}: skipped, `not_a_module_anywhere`')


def test_an_importable_peer_is_not_skipped(peers):
    assert peers.missing_peer('pythae', 'torch') is None


@pytest.mark.slow
def test_the_benchmark_leaves_out_a_missing_peer_and_says_so(peers, monkeypatch, mnist_dir):
    import argparse

    import bench_training

    monkeypatch.setitem(sys.modules, 'lightning', None)
    args = argparse.Namespace(data=mnist_dir, seed=0, adam='fused', batch_size=128, threads=0)
    methods, left_out = bench_training.peer_methods(args, split='split.pt')
    assert 'Lightning' not in methods and {'floor', 'ours'} <= set(methods)
    assert peers.missing_peer('Lightning') in left_out
    assert ('pythae' in methods) == (peers.missing_peer('pythae') is None)


@pytest.fixture(scope='module')
def split(mnist_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp('peers') / 'split.pt'
    subprocess.run([sys.executable, PEERS, 'split', '--data', mnist_dir, '--out', str(path)], check=True, timeout=300)
    return torch.load(path, weights_only=True), path


@pytest.mark.slow
def test_the_split_is_the_benchmarks_own(split, mnist_dir):
    data, _ = split
    mnist = IDXDataset.from_folder(mnist_dir)
    train, val = train_val_split(AutoEncoderDataset(mnist), val_fraction=0.1, seed=1)
    assert data['train'].shape == (9000, 1, 28, 28) and data['val'].shape == (1000, 1, 28, 28)
    assert data['train'].dtype == torch.float32 and 0 <= data['train'].min() and data['train'].max() <= 1
    assert torch.equal(data['val'], mnist.data[list(val.ids)].unsqueeze(1).float() / 255)
    assert torch.equal(data['train'], mnist.data[list(train.ids)].unsqueeze(1).float() / 255)


@pytest.mark.slow
@pytest.mark.parametrize('program, module', [('pythae', 'pythae'), ('lightning', 'lightning')])
def test_each_peer_trains_the_vae(split, tmp_path, program, module):
    """Two epochs take the validation loss from ~540 nats per image (the untrained model) to below 175
    (ours reaches ~157 after two): the peer trains the same model on the same task, not something cheaper."""
    pytest.importorskip(module)
    _, path = split
    done = subprocess.run([sys.executable, PEERS, program, '--split', str(path), '--epochs', '2', '--out',
                           str(tmp_path / program)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    val_loss = json.loads(done.stdout.strip().splitlines()[-1])['val_loss']
    assert 100 < val_loss < 175


@pytest.mark.slow
def test_the_bare_trial_child_trains_like_the_floor_child(mnist_dir):
    """(6)'s ``Trial`` row, the bare torchbearer Trial in a process of its own, trains the floor's model on the floor's
    split: after 2 epochs both are far below the untrained ~540 nats per image and within 5% of each other (their
    batches are shuffled by different generators)."""
    script = os.path.join(BENCHMARKS, 'bench_training.py')
    results = {}
    for child in ('--trial-child', '--floor-child'):
        done = subprocess.run([sys.executable, script, '--data', mnist_dir, child, '2'], capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        results[child] = json.loads(done.stdout.strip().splitlines()[-1])
        assert len(results[child]['seconds']) == 1 and results[child]['seconds'][0] > 0  # the first is a warm-up
    trial, floor = results['--trial-child']['val_loss'], results['--floor-child']['val_loss']
    assert trial < 175 and floor < 175
    assert abs(trial - floor) < 0.05 * floor


def test_a_ratio_without_a_target_says_so(monkeypatch):
    monkeypatch.syspath_prepend(BENCHMARKS)
    import bench_training

    assert bench_training.ratio_line('ours/Trial', 1.234, rounds=[1.1, 1.3]) == \
        'ratio ours/Trial = 1.23 (rounds 1.10-1.30)   (no target)'
    assert bench_training.ratio_line('ours/same job', 1.06).endswith('target <= 1.05   MISSED')
    assert bench_training.ratio_line('ours/floor', 1.05).endswith('(no target)')  # compared with the same job now


@pytest.mark.slow  # two epochs of the command's Trial and of the same-job floor: 5-10 s
def test_the_parts_measurement_times_every_callback_of_the_command_and_restores_torchbearer(mnist_dir, monkeypatch):
    """(7), ``--parts``: a line for each of the command's callbacks (the charts by what they draw), the metric pass and
    the state copy, each a time that fits in the epoch; torchbearer's ``State.data`` is its own again afterwards."""
    import argparse
    import re

    from torchbearer.state import State
    monkeypatch.syspath_prepend(BENCHMARKS)
    import bench_training

    copy = State.data
    lines = bench_training.parts(argparse.Namespace(data=mnist_dir, batch_size=128, seed=0), rounds=1)
    assert State.data is copy
    epoch = float(re.search(r'an epoch of (\d+) ms', lines[0]).group(1))
    times = {line[:74].strip(): float(line[74:]) for line in lines[1:-1]}
    for part in ('_DivergenceCallback', 'NaNGuard', 'ReconstructionSaver', 'SampleSaver', 'Checkpointer', 'MetricsCSV',
                 'OnSomeEpochs(KLPerDimension)', "torchbearer's metric pass",
                 'State.data (the state copy for the metrics)'):
        assert 0 <= times[part] < epoch, part
    rest = times.pop("the rest: the loaders, forward, loss, backward, Adam, torchbearer's loop")
    assert 0 < rest < epoch and sum(times.values()) < epoch
    assert lines[-1].startswith('  not in the epoch: the per-run hooks')


@pytest.mark.slow
def test_the_same_job_floor_writes_what_the_command_writes_and_trains_like_the_floor(mnist_dir, tmp_path,
                                                                                     monkeypatch):
    """(6)'s ``same job`` row: the floor loop that also writes, every epoch, a checkpoint (by a rename), the two grids
    and a CSV line, and checks the loss; its model learns as the floor's does (within 5% after 2 epochs)."""
    import csv

    from PIL import Image
    monkeypatch.syspath_prepend(BENCHMARKS)
    import bench_training

    losses, floor_losses = [], []
    data = bench_training.FloorData(mnist_dir, 128, 0)
    run, floor = bench_training.same_job_epochs(data, str(tmp_path), losses), bench_training.floor_epochs(data,
                                                                                                       floor_losses)
    for _ in range(2):
        assert next(run) > 0 and next(floor) > 0
    assert sorted(os.listdir(tmp_path)) == ['checkpoint.pt', 'metrics.csv', 'reconstruction_001.png',
                                            'reconstruction_002.png', 'samples_001.png', 'samples_002.png']
    saved = torch.load(tmp_path / 'checkpoint.pt', weights_only=True)
    assert saved['epoch'] == 2 and set(saved) == {'model', 'optimizer', 'epoch'}
    with open(tmp_path / 'metrics.csv') as file:
        rows = list(csv.DictReader(file))
    assert [row['epoch'] for row in rows] == ['1', '2'] and float(rows[1]['val_loss']) == pytest.approx(losses[1])
    assert Image.open(tmp_path / 'samples_002.png').size == (8 * 30 + 2, 8 * 30 + 2)  # 64 images of 28 + padding
    assert losses[1] < 175 and abs(losses[1] - floor_losses[1]) < 0.05 * floor_losses[1]


def test_the_colour_peers_build_the_commands_convvae_layer_for_layer(peers):
    """The colour workload's 'same model in each': the peers' ConvVAE layers, made in ConvVAE's order, start from
    the same weights for the same seed, and compute the same function."""
    from torchbearer_vae import ConvVAE

    torch.manual_seed(3)
    ours = ConvVAE((3, 32, 32), latent_dim=20, hidden_dim=256, likelihood='gaussian', sigma=None, use_state=False)
    torch.manual_seed(3)
    encoder, fc_mu, fc_logvar, decoder = peers.conv_layers()
    theirs = [p for module in (encoder, fc_mu, fc_logvar, decoder) for p in module.parameters()]
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in theirs]
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs))
    x = torch.rand(4, 3, 32, 32)
    mu, logvar = ours.eval().encode(x)
    hidden = encoder(x)
    assert torch.allclose(mu, fc_mu(hidden)) and torch.allclose(logvar, fc_logvar(hidden))
    assert torch.allclose(ours.decode(mu), decoder(mu))


def test_the_colour_patches_are_written_once_and_read_back_in_order(peers, tmp_path):
    peers.write_patches(tmp_path / 'images', count=12, size=8, seed=1)
    files = peers.patch_files(tmp_path / 'images')
    assert [os.path.basename(path) for path in files] == [f'{index:05d}.png' for index in range(12)]
    images = peers.decode_patches(tmp_path / 'images')
    assert images.shape == (12, 3, 8, 8) and images.dtype == torch.uint8 and images.float().std() > 0
    from sklearn.datasets import load_sample_images
    first = torch.from_numpy(load_sample_images().images[0].copy())  # patch 0 is cut from the first photograph
    assert any(torch.equal(images[0].permute(1, 2, 0), first[top:top + 8, left:left + 8])
               for top in range(first.shape[0] - 7) for left in range(first.shape[1] - 7))
    train, val = peers.patch_split(12)
    assert len(train) == 11 and len(val) == 1 and sorted(torch.cat([train, val]).tolist()) == list(range(12))


@pytest.mark.slow
def test_the_colour_same_job_floor_trains_the_convvae_from_the_decoded_patches(peers, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(BENCHMARKS)
    import bench_training

    peers.write_patches(tmp_path / 'images', count=300)
    data = bench_training.ColourData(str(tmp_path / 'images'), 64, 0)
    assert data.train_x.shape == (270, 3, 32, 32) and data.train_x.dtype == torch.uint8
    losses = []
    run = bench_training.same_job_epochs(data, str(tmp_path), losses)
    assert next(run) > 0 and next(run) > 0
    assert losses[1] < losses[0]  # it learns: the calibrated Gaussian's loss falls
    assert {'checkpoint.pt', 'metrics.csv', 'samples_002.png', 'reconstruction_002.png'} <= set(os.listdir(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize('program, module', [('pythae-conv', 'pythae'), ('lightning-conv', 'lightning')])
def test_each_colour_peer_trains_the_convvae(peers, tmp_path, program, module):
    """A colour peer reads the patch folder its documented way and trains: its validation loss (half the summed
    squared error + KL, per image) falls below what the untrained model gives."""
    pytest.importorskip(module)
    peers.write_patches(tmp_path / 'images', count=600)
    done = subprocess.run([sys.executable, PEERS, program, '--folder', str(tmp_path / 'images'), '--epochs', '2',
                           '--out', str(tmp_path / program)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    val_loss = json.loads(done.stdout.strip().splitlines()[-1])['val_loss']
    torch.manual_seed(0)
    encoder, fc_mu, fc_logvar, decoder = peers.conv_layers()
    x = peers.decode_patches(tmp_path / 'images').float().div(255)[:128]
    with torch.no_grad():
        hidden = encoder(x)
        mu, logvar = fc_mu(hidden), fc_logvar(hidden)
        untrained = float(peers.gaussian_loss(decoder(mu), mu, logvar, x=x)) / len(x)
    assert 0 < val_loss < 0.5 * untrained
