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
