"""The command line used as a hostile or careless user would (issue 12): nothing lost, nothing hangs, every
failure one line on stderr with exit status 2 (130/143 when interrupted), nothing half-written.

Each case runs ``torchbearer-vae`` as a subprocess, as a user does; the numbers are the issue's.
"""
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from stand_ins import COMMAND, edit_checkpoint, run_cli

from torchbearer_vae import VAE, TensorLoader, kld_loss, load_checkpoint, save_checkpoint

LOCK = '.torchbearer-vae.lock'
SMALL = ['--limit', '600', '--epochs', '1', '--hidden-dim', '32', '--latent-dim', '4', '--quiet']

posix = pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs POSIX signals')



def in_a_terminal():
    """A child's Ctrl-C as in a terminal: a suite started in the background passes its children Ctrl-C ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(*args, **kwargs):
    return subprocess.Popen(COMMAND + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=in_a_terminal if os.name == 'posix' else None, **kwargs)


def one_error_line(result, *expected, status=2):
    """The command failed with ``status`` and said so in one line holding each of ``expected``, no traceback."""
    err = result.stderr.strip()
    assert result.returncode == status, (result.returncode, err)
    assert 'Traceback' not in err and len(err.splitlines()) == 1, err
    for text in expected:
        assert text in err, (text, err)
    return err


def wait_for(condition, process=None, deadline=120):
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < deadline, 'timed out'
        assert process is None or process.poll() is None, process.communicate()
        time.sleep(0.02)


@pytest.fixture(scope='module')
def run(mnist_dir, tmp_path_factory):
    """A small finished run: its folder, with checkpoint.pt."""
    out = tmp_path_factory.mktemp('hardening') / 'run'
    result = run_cli('train', '--dataset', f'idx:{mnist_dir}', *SMALL, '--out', out)
    assert result.returncode == 0, result.stderr
    return out


def snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


# -- 1. two trainings into one --out --
@pytest.mark.slow
@posix
def test_1_a_second_train_into_a_running_folder_exits_2_naming_the_holder(mnist_dir, tmp_path):
    out = tmp_path / 'run'
    first = start_cli('train', '--dataset', f'idx:{mnist_dir}', '--epochs', '2', '--batch-size', '32', '--hidden-dim',
                      '64', '--quiet', '--out', out)
    wait_for(lambda: (out / LOCK).exists() and (out / LOCK).read_text().strip(), first)
    second = run_cli('train', '--dataset', 'digits', '--epochs', '1', '--quiet', '--out', out)
    one_error_line(second, repr(str(out)), f'PID {first.pid}', 'in use by another torchbearer-vae train')
    resumed = run_cli('train', '--resume', '--epochs', '3', '--quiet', '--out', out)
    one_error_line(resumed, f'PID {first.pid}')
    assert first.wait(timeout=300) == 0, first.communicate()
    assert load_checkpoint(out / 'checkpoint.pt')['epoch'] == 2  # the first run's files, whole, not replaced
    assert json.loads((out / 'summary.json').read_text())['train_images'] == 9000
    assert not (out / LOCK).exists()  # released with the run


@pytest.mark.slow
@posix
def test_1_a_lock_left_by_a_killed_run_does_not_block_resume(mnist_dir, tmp_path):
    out = tmp_path / 'run'
    process = start_cli('train', '--dataset', f'idx:{mnist_dir}', '--limit', '3000', '--epochs', '3', '--quiet',
                        '--batch-size', '32', '--hidden-dim', '64', '--out', out)
    wait_for(lambda: (out / 'checkpoint.pt').exists(), process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (out / LOCK).read_text().strip() == str(process.pid)  # the file stays; the lock died with its process
    result = run_cli('train', '--resume', '--epochs', '3', '--quiet', '--out', out)
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(out / 'checkpoint.pt')['epoch'] == 3 and not (out / LOCK).exists()


# -- 2. no command writes over its inputs, or a file of another kind --
@pytest.mark.slow
def test_2_no_command_writes_over_its_inputs_or_another_kind_of_file(run, tmp_path, mnist_dir):
    checkpoint = run / 'checkpoint.pt'
    before = checkpoint.read_bytes()
    one_error_line(run_cli('evaluate', '--checkpoint', checkpoint, '--limit', 10, '--out', checkpoint),
                   'is the checkpoint this command reads')
    one_error_line(run_cli('sample', '--checkpoint', checkpoint, '--out', checkpoint), 'not an image file name')
    notes = tmp_path / 'notes.json.txt'
    notes.write_text('my notes')
    one_error_line(run_cli('evaluate', '--checkpoint', checkpoint, '--limit', 10, '--out', notes),
                   'exists and is not a JSON file')
    picture = tmp_path / 'picture.png'
    picture.write_text('not a picture')
    one_error_line(run_cli('sample', '--checkpoint', checkpoint, '--out', picture), 'exists and is not a PNG image')
    assert checkpoint.read_bytes() == before and notes.read_text() == 'my notes'
    assert picture.read_text() == 'not a picture'

    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    for command, name in (('sample', 'samples.png'), ('reconstruct', 'recon.png')):
        result = run_cli(command, '--checkpoint', checkpoint, '--num-images', 4, cwd=elsewhere)
        assert result.returncode == 0, result.stderr
        assert (run / name).exists() and str(run / name) in result.stdout
    result = run_cli('sample', '--checkpoint', checkpoint, '--n', 4, '--out', tmp_path, cwd=elsewhere)  # a folder
    assert result.returncode == 0 and (tmp_path / 'samples.png').exists(), result.stderr
    result = run_cli('evaluate', '--checkpoint', checkpoint, '--limit', 10, cwd=elsewhere)
    assert result.returncode == 0 and f'wrote {run / "evaluation.json"}' in result.stderr
    assert json.loads(result.stdout)['images'] == 10  # stdout is the JSON alone
    assert os.listdir(elsewhere) == []


# -- 3. a folder holding another run's files --
@pytest.mark.slow
def test_3_a_folder_with_another_runs_files_but_no_checkpoint_is_refused(tmp_path):
    out = tmp_path / 'run'
    out.mkdir()
    (out / 'metrics.csv').write_text('epoch,loss\n0,100\n')
    (out / 'summary.json').write_text('{"epochs": 1}')
    before = snapshot(out)
    one_error_line(run_cli('train', '--dataset', 'digits', '--epochs', 1, '--out', out),
                   'holds files this run did not write (metrics.csv, summary.json)')
    one_error_line(run_cli('train', '--dataset', 'digits', '--epochs', 1, '--out', out, '--resume'),
                   'no checkpoint at')
    assert snapshot(out) == before  # the lock file is gone too


# -- 5. sizes that cannot fit --
@pytest.mark.slow
@pytest.mark.parametrize('args, named', [
    (['train', '--dataset', 'digits', '--hidden-dim', 10 ** 9], '--hidden-dim 1000000000'),
    (['train', '--dataset', 'digits', '--latent-dim', 10 ** 10], '--latent-dim 10000000000'),
    (['train', '--dataset', 'digits', '--hidden-dim', 10 ** 30], 'too large'),
])
def test_5_training_sizes_that_cannot_fit_are_refused_before_allocating(args, named, tmp_path):
    started = time.monotonic()
    one_error_line(run_cli(*args, '--out', tmp_path / 'run', timeout=120), named)
    assert time.monotonic() - started < 60 and not (tmp_path / 'run').exists()


@pytest.mark.slow
@pytest.mark.parametrize('args, named', [
    (['--model', 'conv', '--hidden-dim', 10 ** 9], '--hidden-dim 1000000000'),
    (['--model', 'conv', '--latent-dim', 10 ** 10], '--latent-dim 10000000000'),
    (['--model', 'spatial', '--latent-dim', 10 ** 9], '--latent-dim 1000000000'),  # values at each position
])
def test_5_convolutional_sizes_that_cannot_fit_are_refused_before_allocating(args, named, tmp_path):
    started = time.monotonic()
    one_error_line(run_cli('train', '--dataset', 'digits', *args, '--out', tmp_path / 'run', timeout=120), named)
    assert time.monotonic() - started < 60 and not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_5_an_image_size_that_cannot_fit_is_refused_before_decoding(tmp_path):
    from PIL import Image

    (tmp_path / 'images').mkdir()
    Image.new('RGB', (8, 8)).save(tmp_path / 'images' / 'a.png')
    started = time.monotonic()
    one_error_line(run_cli('train', '--dataset', f'folder:{tmp_path / "images"}', '--image-size', 10 ** 7, '--out',
                           tmp_path / 'run', timeout=120), '--image-size 10000000', 'use a smaller --image-size')
    assert time.monotonic() - started < 60 and not (tmp_path / 'run').exists()


@pytest.mark.slow
def test_5_sample_num_images_that_cannot_fit_is_refused(tmp_path):
    checkpoint = tmp_path / 'checkpoint.pt'
    save_checkpoint(checkpoint, VAE(hidden_dim=16, latent_dim=2))
    one_error_line(run_cli('sample', '--checkpoint', checkpoint, '--num-images', 10 ** 9), '--num-images',
                   'of memory available')
    assert sorted(os.listdir(tmp_path)) == ['checkpoint.pt']


# -- 6. every failure: one line, exit 2 --
def idx_images(path, count, size=4, compress=True, cut=0):
    data = bytes([0, 0, 8, 3]) + b''.join(n.to_bytes(4, 'big') for n in (count, size, size)) + bytes(count * size ** 2)
    data = gzip.compress(data) if compress else data
    path.write_bytes(data[:len(data) - cut] if cut else data)


def idx_folder(tmp_path, name, **kwargs):
    folder = tmp_path / name
    folder.mkdir()
    idx_images(folder / 'train-images-idx3-ubyte.gz', kwargs.pop('count', 50), **kwargs)
    labels = bytes([0, 0, 8, 1]) + (50).to_bytes(4, 'big') + bytes(50)
    (folder / 'train-labels-idx1-ubyte.gz').write_bytes(gzip.compress(labels))
    return folder


@pytest.mark.slow
def test_6_bad_data_files_are_one_line_naming_the_dataset(tmp_path):
    truncated = idx_folder(tmp_path, 'truncated', cut=20)
    corrupt = idx_folder(tmp_path, 'corrupt')
    data = bytearray((corrupt / 'train-images-idx3-ubyte.gz').read_bytes())
    data[3] = 0xFF  # gzip flags no reader understands
    (corrupt / 'train-images-idx3-ubyte.gz').write_bytes(bytes(data))
    empty = idx_folder(tmp_path, 'empty', count=0)
    directory = tmp_path / 'directory'
    (directory / 'train-images-idx3-ubyte').mkdir(parents=True)
    (directory / 'train-labels-idx1-ubyte').mkdir()
    for folder in (truncated, corrupt, empty, directory):
        one_error_line(run_cli('train', '--dataset', f'idx:{folder}', '--out', tmp_path / 'run'),
                       f'--dataset idx:{folder}')
    one_error_line(run_cli('train', '--dataset', 'digits', '--limit', 1, '--out', tmp_path / 'run'),
                   '1 image cannot be split into training and validation images, whatever --val-fraction')
    assert not (tmp_path / 'run').exists()


@pytest.mark.slow
@pytest.mark.parametrize('args, message', [
    (['train', '--dataset', 'digits', '--seed', '-1'], "--seed: must be a whole number from 0 to 2**63 - 1, got '-1'"),
    (['train', '--dataset', 'digits', '--seed', str(2 ** 64)], 'from 0 to 2**63 - 1'),
    (['evaluate', '--checkpoint', 'c.pt', '--seed', 'x'], "got 'x'"),
])
def test_6_bad_seeds_are_usage_errors(args, message):
    result = run_cli(*args)
    assert result.returncode == 2 and message in result.stderr and 'Traceback' not in result.stderr


def resumable_checkpoint(folder, **changes):
    """A checkpoint as train writes it (with options), changed as given (None deletes a key)."""
    folder.mkdir()
    options = {'dataset': 'digits', 'data_dir': None, 'batch_size': 64, 'lr': 1e-3, 'latent_dim': 2,
               'hidden_dim': 8, 'beta': 1.0, 'val_fraction': 0.1, 'seed': 1, 'limit': None}
    model = VAE((1, 8, 8), hidden_dim=8, latent_dim=2)
    save_checkpoint(folder / 'checkpoint.pt', model, torch.optim.Adam(model.parameters()), epoch=0, history=[],
                    options=options, kl_term=kld_loss(reduction='batchmean').state_dict(),
                    rng_state=torch.get_rng_state(),
                    train_loader=TensorLoader(torch.zeros(10, 1, 8, 8), 4, shuffle=True, seed=1).state_dict())
    edit_checkpoint(folder / 'checkpoint.pt', changes)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize('changes, message', [
    ({'options': None}, "its 'options' should be a dict but it holds nothing"),
    ({'options': {'dataset': 'digits'}}, 'its options lack data_dir'),
    ({'epoch': 'one'}, "its 'epoch' should be a int but it holds a str"),
    ({'rng_state': None}, 'random generator state'),
    ({'history': [{}], 'epoch': 1, 'train_loader': {'epoch': 'x'}}, "its 'train_loader' does not fit this run"),
])
def test_6_a_checkpoint_that_cannot_be_resumed_is_one_line(changes, message, tmp_path):
    out = resumable_checkpoint(tmp_path / 'run', **changes)
    before = snapshot(out)
    one_error_line(run_cli('train', '--resume', '--epochs', 2, '--out', out), 'cannot be resumed', message)
    assert snapshot(out) == before


@pytest.mark.slow
def test_6_a_checkpoint_of_the_previous_version_resumes_and_evaluates_with_the_old_defaults(tmp_path):
    out = resumable_checkpoint(tmp_path / 'run')  # its options have no model, likelihood, sigma, image_size, channels
    assert 'model' not in load_checkpoint(out / 'checkpoint.pt')['options']
    result = run_cli('train', '--resume', '--epochs', 1, '--out', out, '--quiet')
    assert result.returncode == 0, result.stderr
    checkpoint = load_checkpoint(out / 'checkpoint.pt')
    assert checkpoint['epoch'] == 1 and checkpoint['options']['model'] == 'mlp'
    assert (checkpoint['options']['likelihood'], checkpoint['options']['hidden_dim']) == ('bernoulli', 8)
    old = load_checkpoint(out / 'checkpoint.pt')
    old['options'] = {name: value for name, value in old['options'].items()
                      if name not in ('model', 'likelihood', 'sigma', 'image_size', 'channels')}
    torch.save(old, out / 'checkpoint.pt')
    result = run_cli('evaluate', '--checkpoint', out / 'checkpoint.pt')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)['split'] == 'val'
    for args, message in ((['--model', 'conv'], '--model conv (the run used mlp)'),
                          (['--likelihood', 'gaussian'], '--likelihood gaussian (the run used bernoulli)')):
        one_error_line(run_cli('train', '--resume', '--epochs', 3, '--out', out, *args), message)
    assert load_checkpoint(out / 'checkpoint.pt')['epoch'] == 1


@pytest.mark.slow
def test_6_resume_refuses_options_of_the_wrong_type(tmp_path):
    options = {'dataset': 'digits', 'data_dir': None, 'batch_size': 'many', 'lr': 1e-3, 'latent_dim': 2,
               'hidden_dim': 8, 'beta': 1.0, 'val_fraction': 0.1, 'seed': 1, 'limit': None}
    out = resumable_checkpoint(tmp_path / 'run', options=options)
    one_error_line(run_cli('train', '--resume', '--epochs', 2, '--out', out), 'its options are not valid',
                   'batch_size must be an int')


@pytest.mark.slow
def test_6_models_and_data_that_do_not_match_are_one_line(run, tmp_path, mnist_dir):
    checkpoint = run / 'checkpoint.pt'
    one_error_line(run_cli('reconstruct', '--checkpoint', checkpoint, '--dataset', 'digits', '--out',
                           tmp_path / 'r.png'), 'has images of shape (1, 8, 8)', 'takes (1, 28, 28)')
    one_error_line(run_cli('evaluate', '--checkpoint', checkpoint, '--dataset', f'idx:{idx_folder(tmp_path, "e")}'),
                   'has images of shape (1, 4, 4)')
    (tmp_path / 'file').write_text('x')
    one_error_line(run_cli('evaluate', '--checkpoint', checkpoint, '--limit', 5, '--out', tmp_path / 'file' / 'e.json'),
                   'is a file, not a folder')
    assert not list(tmp_path.glob('*.png'))


# -- 7. an --out that cannot be written fails before any training --
@pytest.mark.slow
@pytest.mark.parametrize('under', ['a file', '/proc'])
def test_7_an_unwritable_out_fails_before_training(under, tmp_path, mnist_dir):
    if under == 'a file':
        (tmp_path / 'file').write_text('x')
        out = tmp_path / 'file' / 'run'
    else:
        out = '/proc/torchbearer-vae-run'
    started = time.monotonic()
    one_error_line(run_cli('train', '--dataset', f'idx:{mnist_dir}', '--epochs', 1, '--out', out), str(out))
    assert time.monotonic() - started < 30  # not after an epoch of training


# -- 8. disk full --
@pytest.mark.slow
def test_8_disk_full_is_one_line_and_the_last_checkpoint_stays_intact(mnist_dir, tmp_path):
    if os.geteuid() != 0 or not shutil.which('mount'):
        pytest.skip('needs root and mount to make a small tmpfs')
    disk = tmp_path / 'disk'
    disk.mkdir()
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', str(disk)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f'mount is not permitted here: {mounted.stderr.decode().strip()}')
    try:
        out = disk / 'run'
        # a checkpoint of ~1.3 MB: the first fits, the second's temporary (beside the first) does not
        result = run_cli('train', '--dataset', f'idx:{mnist_dir}', '--limit', 600, '--epochs', 3, '--hidden-dim',
                         64, '--latent-dim', 4, '--quiet', '--out', out)
        one_error_line(result, f'no space left on device writing {out}', 'the last checkpoint (epoch 1) is intact',
                       'free space and run again with --resume')
        assert load_checkpoint(out / 'checkpoint.pt')['epoch'] == 1
    finally:
        subprocess.run(['umount', str(disk)], check=True)


# -- 9. Ctrl-C and SIGTERM --
@pytest.mark.slow
@posix
def test_9_ctrl_c_before_the_first_checkpoint_does_not_suggest_resume(mnist_dir, tmp_path):
    out = tmp_path / 'run'
    code = ('import os, signal, sys, threading\n'
            'from torchbearer_vae.cli import main\n'
            'threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()\n'  # during start-up
            f'sys.exit(main(["train", "--dataset", "idx:{mnist_dir}", "--epochs", "1", "--quiet", "--out", "{out}"]))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                            preexec_fn=in_a_terminal)
    err = one_error_line(result, 'interrupted', status=130)
    assert '--resume' not in err and not out.exists()

    # Batches of 2: an epoch of several seconds, so that the signal comes before its end on a busy machine too.
    process = start_cli('train', '--dataset', f'idx:{mnist_dir}', '--epochs', 1, '--batch-size', 2, '--quiet',
                        '--out', out)
    wait_for(lambda: (out / LOCK).exists(), process)
    time.sleep(0.5)  # training, before the end of the first epoch
    process.send_signal(signal.SIGINT)
    err = one_error_line(subprocess.CompletedProcess([], process.wait(timeout=60), '', process.stderr.read()),
                         'interrupted', status=130)
    assert '--resume' not in err and 'run the same command again' in err
    assert not (out / 'checkpoint.pt').exists() and not (out / LOCK).exists()


@pytest.mark.parametrize('where', ['optimizer', 'batch'])
def test_9_a_ctrl_c_that_a_library_swallows_still_stops_the_run(where, tmp_path, capsys, monkeypatch):
    """torch imports torch._dynamo when the first optimizer is made, under a bare except that catches a Ctrl-C."""
    def swallow_a_ctrl_c():
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass  # what the library does
    if where == 'optimizer':
        made = torch.optim.Adam.__init__

        def adam(self, *args, **kwargs):
            swallow_a_ctrl_c()
            made(self, *args, **kwargs)
        monkeypatch.setattr(torch.optim.Adam, '__init__', adam)
    else:
        forward = VAE.forward

        def first_batch(self, *args, **kwargs):
            monkeypatch.setattr(VAE, 'forward', forward)  # once
            swallow_a_ctrl_c()
            return forward(self, *args, **kwargs)
        monkeypatch.setattr(VAE, 'forward', first_batch)
    from torchbearer_vae.cli import main
    out, before = tmp_path / 'run', signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        assert main(['train', '--dataset', 'digits', '--limit', '300', '--out', str(out), *SMALL[2:]]) == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers restored
    finally:
        signal.signal(signal.SIGINT, before)
    err = capsys.readouterr().err.strip()
    assert err.startswith('torchbearer-vae train: interrupted; files written so far are complete') and '\n' not in err
    assert not (out / 'checkpoint.pt').exists()  # stopped before the first epoch's end, not trained on


@pytest.mark.slow  # a whole train process: 5-10 s
@posix
def test_9_a_ctrl_c_ignored_when_the_command_starts_stays_ignored(tmp_path):
    """A job a shell starts in the background ignores Ctrl-C (SIG_IGN): the command keeps it so."""
    out = tmp_path / 'run'
    code = ('import signal, sys\n'
            'from torchbearer_vae.cli import main\n'
            'signal.signal(signal.SIGINT, signal.SIG_IGN)\n'
            'import torch\n'
            'made = torch.optim.Adam.__init__\n'
            'def adam(self, *args, **kwargs):\n'
            '    signal.raise_signal(signal.SIGINT)\n'  # ignored: nothing happens
            '    made(self, *args, **kwargs)\n'
            'torch.optim.Adam.__init__ = adam\n'
            f'sys.exit(main(["train", "--dataset", "digits", "--limit", "300", "--out", "{out}", *{SMALL[2:]!r}]))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (out / 'checkpoint.pt').exists()


@pytest.mark.slow
@posix
def test_9_sigterm_exits_143_with_the_checkpoint_intact_and_resumable(mnist_dir, tmp_path):
    out = tmp_path / 'run'
    process = start_cli('train', '--dataset', f'idx:{mnist_dir}', '--limit', 3000, '--epochs', 4, '--quiet',
                        '--batch-size', 32, '--hidden-dim', 64, '--out', out)
    wait_for(lambda: (out / 'checkpoint.pt').exists(), process)
    process.send_signal(signal.SIGTERM)
    err = one_error_line(subprocess.CompletedProcess([], process.wait(timeout=60), '', process.stderr.read()),
                         'terminated', 'continue with --resume', status=143)
    assert 'the last checkpoint (epoch' in err
    epochs = load_checkpoint(out / 'checkpoint.pt')['epoch']
    assert 1 <= epochs < 4 and not (out / LOCK).exists()
    result = run_cli('train', '--resume', '--epochs', 4, '--quiet', '--out', out)
    assert result.returncode == 0, result.stderr


# -- 11. the run's data found from any working directory --
@pytest.mark.slow
def test_11_split_val_works_from_another_directory(mnist_dir, tmp_path):
    here, there = tmp_path / 'here', tmp_path / 'there'
    here.mkdir()
    there.mkdir()
    os.symlink(mnist_dir, here / 'mnist')
    result = run_cli('train', '--dataset', 'idx:mnist', *SMALL, '--out', 'run', cwd=here)
    assert result.returncode == 0, result.stderr
    options = load_checkpoint(here / 'run' / 'checkpoint.pt')['options']
    assert options['dataset'] == f'idx:{here / "mnist"}'
    for command in (['evaluate', '--out', there / 'e.json'], ['reconstruct', '--out', there / 'r.png']):
        result = run_cli(*command, '--checkpoint', here / 'run' / 'checkpoint.pt', '--split', 'val', cwd=there)
        assert result.returncode == 0, result.stderr
    assert json.loads((there / 'e.json').read_text())['images'] == 60
    moved = run_cli('evaluate', '--checkpoint', here / 'run' / 'checkpoint.pt', '--split', 'val', '--dataset',
                    f'idx:{mnist_dir}', '--out', there / 'moved.json', cwd=there)  # the data named again: the same
    assert moved.returncode == 0, moved.stderr
    assert json.loads((there / 'moved.json').read_text()) == {**json.loads((there / 'e.json').read_text())}
    one_error_line(run_cli('evaluate', '--checkpoint', here / 'run' / 'checkpoint.pt', '--split', 'val', '--dataset',
                           'digits', cwd=there), 'has images of shape (1, 8, 8)')


# -- 12. messages --
@pytest.mark.slow
def test_12_a_refused_checkpoint_never_advises_weights_only_false(tmp_path):
    crafted = tmp_path / 'crafted.pt'
    torch.save({'format': 'torchbearer_vae.checkpoint/1', 'model': VAE}, crafted)  # names a class: refused
    err = one_error_line(run_cli('sample', '--checkpoint', crafted, '--out', tmp_path / 's.png'), 'refused')
    assert 'weights_only' not in err.replace('weights_only=True', '') and not (tmp_path / 's.png').exists()


def test_12_quoted_library_advice_to_load_unsafely_is_dropped():
    from torchbearer_vae.cli.main import _one_line
    message = ('Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` will likely '
               'succeed, but it can result in arbitrary code execution.\nUnsupported global: GLOBAL x.Y')
    assert _one_line(message) == 'Weights only load failed. Unsupported global: GLOBAL x.Y'
    assert _one_line('pass weights_only=False to torch.load') == 'the file was refused'


@pytest.mark.slow
def test_12_a_nan_stop_advises_only_what_the_command_line_can_do(mnist_dir, tmp_path):
    result = run_cli('train', '--dataset', f'idx:{mnist_dir}', '--limit', 600, '--epochs', 3, '--lr', '1e12',
                     '--hidden-dim', 32, '--quiet', '--out', tmp_path / 'run')
    err = one_error_line(result, 'NaNGuard stopped training', 'with a lower --lr', '--lr 1e+11')
    assert 'GradientNormClipping' not in err and 'logvar_clamp' not in err
