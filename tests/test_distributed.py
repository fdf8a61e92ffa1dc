"""Distributed training: the loader's shards, and real 2-process gloo runs on the CPU under torchrun.

The multi-process tests launch ``python -m torch.distributed.run --nproc_per_node=2`` on 127.0.0.1
(gloo bound to the loopback interface): with this file as the training script (see
``_train_on_every_rank`` at the end), with the guide's example script, and three times with
``torchbearer-vae train``.
"""
import collections
import csv
import gc
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchbearer
from PIL import Image

from torchbearer_vae import (
    VAE,
    AutoEncoderDataset,
    Checkpointer,
    IDXDataset,
    ImageDataset,
    MetricsCSV,
    ReconstructionSaver,
    ReduceMetrics,
    SampleSaver,
    TensorLoader,
    kld_loss,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
    train_val_split,
)
from torchbearer_vae.cli import main

TIMEOUT = 240  # seconds for one launch of 2 processes; a hang is killed, with the whole process group


# -- the loader's shards: no processes needed, rank and world_size given --

def epoch_shards(size, world_size, epochs=3, **kwargs):
    """``shards[epoch][rank]``: the items each rank serves, with the same seed on every rank."""
    loaders = [TensorLoader(torch.arange(size), batch_size=7, rank=rank, world_size=world_size, **kwargs)
               for rank in range(world_size)]
    return [[torch.cat(list(loader)).tolist() for loader in loaders] for _ in range(epochs)]


@pytest.mark.parametrize('size, world_size', [(1000, 2), (999, 2), (1000, 3), (5, 4), (3, 5)])
def test_padded_shards_are_equal_cover_every_item_and_reshuffle(size, world_size):
    shard = -(-size // world_size)
    shards = epoch_shards(size, world_size, shuffle=True, seed=11)
    for epoch in shards:
        assert [len(items) for items in epoch] == [shard] * world_size  # DDP needs the same steps on every rank
        served = collections.Counter(item for items in epoch for item in items)
        assert set(served) == set(range(size))  # every item at least once ...
        assert sum(served.values()) - size == shard * world_size - size  # ... and only the padding twice
        if size % world_size == 0:
            assert all(count == 1 for count in served.values())  # disjoint
    if size > world_size:
        assert shards[0][0] != shards[1][0] != shards[2][0]  # reshuffled every epoch
    unsharded = TensorLoader(torch.arange(size), batch_size=size, shuffle=True, seed=11)
    for epoch in shards:  # rank r takes items r, r + world_size, ... of the one permutation of the epoch
        order = next(iter(unsharded)).tolist()
        padded = (order * world_size)[:shard * world_size]
        assert epoch == [padded[rank::world_size] for rank in range(world_size)]


@pytest.mark.parametrize('size, world_size', [(1000, 3), (103, 4)])
def test_drop_last_shards_are_disjoint_and_leave_out_the_remainder(size, world_size):
    for epoch in epoch_shards(size, world_size, shuffle=True, seed=2, drop_last=True):
        assert len({len(items) for items in epoch}) == 1
        served = [item for items in epoch for item in items]
        assert len(served) == len(set(served))  # nothing twice
        per_rank = size // world_size // 7 * 7  # full batches of 7 only
        assert len(served) == per_rank * world_size


def test_unshuffled_shards_interleave_the_dataset_order():
    assert epoch_shards(10, 3, epochs=1)[0] == [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]


def test_mnist_training_split_is_shared_out_image_by_image(mnist_dir):
    mnist = IDXDataset.from_folder(mnist_dir, limit=1000)
    train, _ = train_val_split(AutoEncoderDataset(mnist), 0.1, seed=0)  # 900 images, a multiple of 2 and 3
    expected = collections.Counter(mnist.data[i].numpy().tobytes() for i in train.ids)
    for world_size in (2, 3):
        loaders = [TensorLoader(train, batch_size=100, shuffle=True, seed=4, rank=r, world_size=world_size)
                   for r in range(world_size)]
        assert len({len(loader) for loader in loaders}) == 1
        seen = collections.Counter()
        for loader in loaders:
            for x, target in loader:
                assert torch.equal(x, target)
                seen.update(image.numpy().tobytes() for image in x.mul(255).round().to(torch.uint8).squeeze(1))
        assert seen == expected  # each image exactly once, on exactly one rank


def test_sharded_loader_resumes_and_describes_itself():
    loader = TensorLoader(torch.arange(40), batch_size=40, shuffle=True, seed=3, rank=1, world_size=4)
    next(iter(loader))
    resumed = TensorLoader(torch.arange(40), batch_size=40, shuffle=True, seed=3, rank=1, world_size=4)
    resumed.load_state_dict(loader.state_dict())
    assert torch.equal(next(iter(resumed)), next(iter(loader)))
    assert 'rank=1, world_size=4' in repr(loader) and (loader.rank, loader.world_size) == (1, 4)
    alone = TensorLoader(torch.arange(40), batch_size=40)  # no process group: one process, all the data
    assert (alone.rank, alone.world_size, len(next(iter(alone)))) == (0, 1, 40) and 'rank' not in repr(alone)


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(shuffle=True, rank=0, world_size=2), ValueError, 'seed must be given .*world_size=2'),
    (dict(rank=1), ValueError, 'rank and world_size together'),
    (dict(world_size=2), ValueError, 'rank and world_size together'),
    (dict(rank=2, world_size=2), ValueError, r'rank must be in \[0, world_size\) = \[0, 2\), got 2'),
    (dict(rank=-1, world_size=2), ValueError, 'got -1'),
    (dict(rank=0, world_size=0), ValueError, 'world_size must be an int >= 1, got 0'),
    (dict(rank=True, world_size=2), TypeError, 'rank must be an int >= 0, got True'),
    (dict(rank=0, world_size=2.0), TypeError, 'world_size must be an int >= 1, got 2.0'),
    (dict(batch_size=6, drop_last=True, rank=0, world_size=2), ValueError, 'drops all 5 items of each of 2 shards'),
])
def test_bad_shard_arguments(kwargs, error, match):
    kwargs = {'batch_size': 2, **kwargs}
    with pytest.raises(error, match=match):
        TensorLoader(torch.arange(10), **kwargs)


def test_checkpoint_of_a_wrapped_model_has_the_plain_models_keys(tmp_path):
    model = VAE(hidden_dim=16, latent_dim=2)
    save_checkpoint(tmp_path / 'wrapped.pt', torch.nn.DataParallel(model))  # the same unwrapping as for DDP
    checkpoint = load_checkpoint(tmp_path / 'wrapped.pt')
    assert list(checkpoint['model_state']) == list(model.state_dict())
    assert checkpoint['model']['class'] == 'torchbearer_vae.models.vae:VAE'  # the inner model, not the wrapper
    rebuilt = model_from_checkpoint(checkpoint)
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(), model.state_dict().values()))


def test_reduce_metrics_leaves_one_process_metrics_alone():
    metrics = {'loss': 1.5, 'val_active_units': 3}
    ReduceMetrics().on_end_epoch({torchbearer.METRICS: metrics})  # no process group: nothing to average
    assert metrics == {'loss': 1.5, 'val_active_units': 3}


# -- launching 2 processes on this machine only --

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def torchrun(*args, timeout=TIMEOUT):
    """``python -m torch.distributed.run --nproc_per_node=2 ARGS`` on 127.0.0.1; the whole group killed on timeout."""
    command = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_addr=127.0.0.1',
               f'--master_port={free_port()}'] + [str(arg) for arg in args]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    if os.path.exists('/sys/class/net/lo'):
        env['GLOO_SOCKET_IFNAME'] = 'lo'  # gloo would otherwise listen on the address the host name resolves to
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)  # its own process group: the workers die with it
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f'{" ".join(command)} did not finish in {timeout} s')
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def flat(model):
    return torch.cat([parameter.detach().reshape(-1) for parameter in model.parameters()])


# -- 2 processes training through a Trial with the package's callbacks --

PICTURES = ['reconstruction_0.png', 'reconstruction_1.png', 'samples_0.png', 'samples_1.png']


@pytest.fixture(scope='module')
def ranks(mnist_dir, tmp_path_factory):
    """What each of 2 ranks saw and held, after 2 epochs of DDP training of a small VAE (rank 0 saves it)."""
    folder = tmp_path_factory.mktemp('ranks')
    out, result_path = folder / 'run', folder / 'ranks.pt'
    result = torchrun(__file__, out, mnist_dir, result_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, torch.load(result_path, weights_only=True)


@pytest.mark.slow
def test_both_ranks_end_with_rank_0s_saved_weights(ranks):
    out, ranks = ranks
    assert not torch.equal(ranks[0]['initial'], ranks[1]['initial'])  # each rank built its own weights ...
    assert torch.equal(ranks[0]['final'], ranks[1]['final'])  # ... DDP made and kept them one model
    assert not torch.equal(ranks[0]['final'], ranks[0]['initial'])
    checkpoint = load_checkpoint(out / 'checkpoint.pt')
    assert list(checkpoint['model_state']) == list(VAE(hidden_dim=32, latent_dim=4).state_dict())  # no 'module.'
    assert torch.equal(flat(model_from_checkpoint(checkpoint)), ranks[0]['final'])
    assert checkpoint['epoch'] == 2


@pytest.mark.slow
def test_each_rank_trained_on_its_own_half_of_every_epoch(ranks):
    _, ranks = ranks
    assert ranks[0]['batches'] == ranks[1]['batches'] == 8  # 512 images, 256 per rank, batches of 32
    for epoch in range(2):
        zero, one = ranks[0]['shards'][epoch], ranks[1]['shards'][epoch]
        assert not set(zero) & set(one) and sorted(zero + one) == list(range(100))
        # the process group gave the loader its rank and world size: the shards of explicit arguments
        assert [zero, one] == epoch_shards(100, 2, epochs=2, shuffle=True, seed=7)[epoch]
    assert ranks[0]['shards'][0] != ranks[0]['shards'][1]


@pytest.mark.slow
def test_history_holds_the_mean_over_the_ranks_on_both(ranks):
    out, ranks = ranks
    assert ranks[0]['history'] == ranks[1]['history']
    for epoch, metrics in enumerate(ranks[0]['history']):
        own = [rank['own_loss'][epoch] for rank in ranks]
        assert own[0] != own[1]  # different data, different means ...
        assert metrics['loss'] == pytest.approx((own[0] + own[1]) / 2, rel=1e-12)  # ... averaged
        assert metrics['val_loss'] == pytest.approx(ranks[0]['own_val_loss'][epoch], rel=1e-12)
    assert ranks[0]['own_val_loss'] == ranks[1]['own_val_loss']  # the whole validation set on both ranks
    with open(out / 'metrics.csv') as file:
        assert [float(row['loss']) for row in csv.DictReader(file)] == [m['loss'] for m in ranks[0]['history']]


@pytest.mark.slow
def test_one_set_of_files_each_written_once_per_epoch_by_rank_0(ranks):
    out, ranks = ranks
    assert sorted(os.listdir(out)) == sorted(['checkpoint.pt', 'metrics.csv'] + PICTURES)  # no temporaries
    assert ranks[1]['written'] == []
    assert sorted(ranks[0]['written']) == sorted(['checkpoint.pt', 'metrics.csv'] * 2 + PICTURES)
    for name in PICTURES:
        picture = np.asarray(Image.open(out / name))  # 8 digits above 8 reconstructions; 16 samples, 8 a row
        assert picture.shape[:2] == (2 + 2 * 30, 2 + 8 * 30) and picture.std() > 5


@pytest.mark.slow
def test_the_guides_example_script_runs_under_torchrun(mnist_dir, tmp_path):
    script = os.path.join(os.path.dirname(__file__), '..', 'docs', 'examples', 'vae_distributed.py')
    result = torchrun(script, '--data-dir', mnist_dir, '--limit', 600, '--epochs', 1, '--batch-size', 64,
                      '--results', tmp_path, '--verbose', 0)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(tmp_path)) == ['checkpoint.pt', 'metrics.csv', 'reconstruction_0.png', 'samples_0.png']
    checkpoint = load_checkpoint(tmp_path / 'checkpoint.pt')
    assert checkpoint['epoch'] == 1 and np.isfinite(checkpoint['history'][0]['val_loss'])
    model_from_checkpoint(checkpoint)


# -- the command line under torchrun --

@pytest.fixture(scope='module')
def cli_run(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp('cli') / 'run'
    result = torchrun('-m', 'torchbearer_vae', 'train', '--dataset', f'idx:{mnist_dir}', '--limit', 1000,
                      '--epochs', 1, '--batch-size', 64, '--hidden-dim', 64, '--latent-dim', 8, '--device', 'cpu',
                      '--out', out, '--quiet')
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.mark.slow
def test_cli_trains_on_two_processes_and_rank_0_writes_one_run(cli_run, tmp_path):
    out, result = cli_run
    assert sorted(os.listdir(out)) == ['checkpoint.pt', 'config.toml', 'kl_dims_001.png', 'latent_001.png',
                                       'loss.png', 'metrics.csv', 'reconstruction_001.png', 'samples_001.png',
                                       'summary.json']  # config.toml written once, by rank 0
    assert result.stdout.count('validation negative ELBO') == 1 and '(2 processes)' in result.stdout
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['processes'] == 2 and summary['train_images'] == 900 and summary['epochs'] == 1
    checkpoint = load_checkpoint(out / 'checkpoint.pt')
    assert list(checkpoint['model_state']) == list(VAE(hidden_dim=64, latent_dim=8).state_dict())
    assert len(checkpoint['rng_states']) == 2 and not torch.equal(*checkpoint['rng_states'])  # each rank's own z
    with open(out / 'metrics.csv') as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 1 and np.isfinite(float(rows[0]['loss']))
    assert main(['sample', '--checkpoint', str(out / 'checkpoint.pt'), '--n', '4', '--device', 'cpu',
                 '--out', str(tmp_path / 'samples.png')]) == 0
    assert Image.open(tmp_path / 'samples.png').size == (2 + 2 * 30, 2 + 2 * 30)


@pytest.mark.slow
def test_cli_resumes_on_two_processes(cli_run, tmp_path):
    out = tmp_path / 'run'
    subprocess.run(['cp', '-r', str(cli_run[0]), str(out)], check=True)
    first = load_checkpoint(out / 'checkpoint.pt')
    result = torchrun('-m', 'torchbearer_vae', 'train', '--resume', '--epochs', 2, '--device', 'cpu', '--out', out,
                      '--quiet')
    assert result.returncode == 0, result.stderr[-3000:]
    second = load_checkpoint(out / 'checkpoint.pt')
    assert second['epoch'] == 2 and second['history'][0] == first['history'][0]
    passes = json.loads((out / 'summary.json').read_text())['passes_per_epoch']  # a small set: several an epoch
    assert passes > 1 and second['train_loader']['epoch'] == 2 * passes  # the loader's passes, resumed
    steps = first['optimizer_state']['state'][0]['step']
    assert second['optimizer_state']['state'][0]['step'] == 2 * steps  # Adam's state came to both ranks
    assert sorted(os.listdir(out)) == ['checkpoint.pt', 'config.toml', 'kl_dims_001.png', 'kl_dims_002.png',
                                       'latent_001.png', 'latent_002.png', 'loss.png', 'metrics.csv',
                                       'reconstruction_001.png', 'reconstruction_002.png', 'samples_001.png',
                                       'samples_002.png', 'summary.json']


@pytest.mark.slow
def test_cli_error_under_torchrun_is_one_line_and_nothing_hangs(cli_run):
    out = cli_run[0]
    result = torchrun('-m', 'torchbearer_vae', 'train', '--epochs', 1, '--device', 'cpu', '--out', out, '--quiet')
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if line.startswith('torchbearer-vae train: error:')]
    assert ours and all(line == ours[0] for line in ours), result.stderr  # the same line, from each process
    assert 'already holds a run' in ours[0] and 'torchbearer_vae/' not in result.stderr  # no traceback of ours


# -- the training script the `ranks` fixture launches on 2 processes --

def _train_on_every_rank(out, mnist_dir, result_path):
    torch.distributed.init_process_group('gloo')  # env://, as torchrun sets it
    rank = torch.distributed.get_rank()
    written = []
    replace = os.replace

    def recording_replace(source, destination):  # every file the package writes is renamed into place
        written.append(os.path.relpath(destination, out))
        replace(source, destination)

    os.replace = recording_replace
    mnist = IDXDataset.from_folder(mnist_dir)
    train = AutoEncoderDataset(ImageDataset(mnist.data[:512], mnist.targets[:512]))
    val = AutoEncoderDataset(ImageDataset(mnist.data[512:576], mnist.targets[512:576]))
    torch.manual_seed(rank)  # different weights on each rank
    model = VAE(hidden_dim=32, latent_dim=4)
    initial = flat(model)
    own_loss, own_val_loss = [], []

    @torchbearer.callbacks.on_end_epoch
    def record(state):  # before ReduceMetrics: this rank's own means
        own_loss.append(float(state[torchbearer.METRICS]['loss']))
        own_val_loss.append(float(state[torchbearer.METRICS]['val_loss']))

    train_loader = TensorLoader(train, batch_size=32, shuffle=True, seed=5)  # sharded by the process group
    trial = torchbearer.Trial(
        torch.nn.parallel.DistributedDataParallel(model), torch.optim.Adam(model.parameters(), lr=1e-3),
        torch.nn.BCELoss(reduction='sum'), metrics=['loss', 'recon', 'kl'], verbose=0,
        callbacks=[record, ReduceMetrics(), kld_loss(), ReconstructionSaver(out), SampleSaver(out, num_images=16),
                   Checkpointer(os.path.join(out, 'checkpoint.pt')), MetricsCSV(os.path.join(out, 'metrics.csv'))])
    trial.with_generators(train_loader, val_generator=TensorLoader(val, batch_size=32, rank=0, world_size=1))
    history = trial.run(epochs=2)

    indices = TensorLoader(torch.arange(100), batch_size=10, shuffle=True, seed=7)
    shards = [torch.cat(list(indices)).tolist() for _ in range(2)]
    mine = {'initial': initial, 'final': flat(model), 'own_loss': own_loss, 'own_val_loss': own_val_loss,
            'history': [{name: float(value) for name, value in epoch.items()} for epoch in history],
            'written': written, 'shards': shards, 'batches': len(train_loader)}
    everyone = [None, None]
    torch.distributed.all_gather_object(everyone, mine)
    if rank == 0:
        torch.save(everyone, result_path)
    del trial
    gc.collect()  # the Trial refers to itself: free it, and the DDP model holding the group, before destroying it
    torch.distributed.barrier()  # and leave together
    torch.distributed.destroy_process_group()


if __name__ == '__main__':
    _train_on_every_rank(*sys.argv[1:])
