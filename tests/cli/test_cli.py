"""The torchbearer-vae command line, end to end on the real MNIST, and every bad input it must refuse."""
import csv
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torchbearer
from PIL import Image
from stand_ins import COMMAND, run_cli

import torchbearer_vae
from torchbearer_vae import VAE, IDXDataset, load_checkpoint, model_from_checkpoint, save_checkpoint
from torchbearer_vae.cli import main


@pytest.fixture(scope='module')
def trained(mnist_dir, tmp_path_factory):
    """One real `torchbearer-vae train` run: 2,000 MNIST images, one epoch."""
    out = tmp_path_factory.mktemp('cli') / 'run'
    result = run_cli('train', '--dataset', f'idx:{mnist_dir}', '--epochs', 1, '--limit', 2000, '--out', out)
    assert result.returncode == 0, result.stderr
    return out, result


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exit:
        main(['--version'])
    lines = capsys.readouterr().out.splitlines()  # what a bug report needs, each from the installed metadata
    assert exit.value.code == 0 and lines[0] == f'torchbearer-vae {torchbearer_vae.__version__}'
    assert lines[1] == (f"torch {importlib.metadata.version('torch')}, torchvision "
                        f"{importlib.metadata.version('torchvision')}, torchbearer {torchbearer.__version__}")
    assert lines[2].startswith(f'Python {platform.python_version()} on ') and len(lines) == 3
    assert main([]) == 0
    help_text = capsys.readouterr().out
    assert all(command in help_text for command in ('train', 'sample', 'reconstruct', 'evaluate'))


def test_help_shows_what_dataset_a_run_uses_by_default(capsys):
    with pytest.raises(SystemExit):
        main(['train', '--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert 'folder:DIR' in text and 'cifar10' in text and '(default: mnist)' in text
    with pytest.raises(SystemExit):
        main(['evaluate', '--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert "(default: the run's)" in text and '(default: val' in text


@pytest.mark.slow
def test_python_dash_m_runs_the_same_command():
    result = subprocess.run([sys.executable, '-m', 'torchbearer_vae', 'train', '--help'], capture_output=True,
                            text=True)
    assert result.returncode == 0 and '--importance-samples' not in result.stdout and '--resume' in result.stdout


@pytest.mark.slow
def test_train_writes_every_output_file(trained):
    out, result = trained
    assert sorted(os.listdir(out)) == ['checkpoint.pt', 'config.toml', 'kl_dims_001.png', 'latent_001.png', 'loss.png',
                                       'metrics.csv', 'reconstruction_001.png', 'samples_001.png', 'summary.json']
    recon = np.asarray(Image.open(out / 'reconstruction_001.png'))
    assert recon.shape == (2 + 2 * 30, 2 + 8 * 30)  # grey: one channel
    samples = np.asarray(Image.open(out / 'samples_001.png'))
    assert samples.shape == (2 + 8 * 30, 2 + 8 * 30) and samples.std() > 5
    with open(out / 'metrics.csv') as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 1
    for column in ('loss', 'recon', 'kl', 'val_loss', 'val_recon', 'val_kl'):
        assert np.isfinite(float(rows[0][column])), column
    assert float(rows[0]['loss']) == pytest.approx(float(rows[0]['recon']) + float(rows[0]['kl']), rel=1e-3)
    checkpoint = torch.load(out / 'checkpoint.pt', weights_only=True)
    assert checkpoint['epoch'] == 1 and model_from_checkpoint(checkpoint).latent_dim == 20
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['train_images'] == 1800 and summary['val_images'] == 200 and summary['epochs'] == 1
    assert 80 < summary['val_elbo_per_image'] < 250
    assert 80 < summary['val_loss_z_mean_per_image'] < 400
    assert summary['versions']['torchbearer'] == '0.5.5' and summary['device'] == 'cpu'
    assert 'validation negative ELBO' in result.stdout


@pytest.mark.slow
def test_resume_continues_at_the_next_epoch_with_the_optimizer_state(trained, tmp_path):
    out = tmp_path / 'run'
    shutil.copytree(trained[0], out)
    first = load_checkpoint(out / 'checkpoint.pt')
    result = run_cli('train', '--resume', '--epochs', 2, '--out', out)
    assert result.returncode == 0, result.stderr
    second = load_checkpoint(out / 'checkpoint.pt')
    assert second['epoch'] == 2 and second['history'][0] == first['history'][0]
    steps = first['optimizer_state']['state'][0]['step']
    assert second['optimizer_state']['state'][0]['step'] == 2 * steps  # Adam's moments and steps carried on
    with open(out / 'metrics.csv') as file:
        assert [row['epoch'] for row in csv.DictReader(file)] == ['1', '2']
    assert (out / 'reconstruction_002.png').exists() and (out / 'samples_002.png').exists()
    again = run_cli('train', '--resume', '--epochs', 2, '--out', out)
    assert again.returncode == 0 and 'nothing to do' in again.stdout


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_with_intact_files(mnist_dir, tmp_path):
    out = tmp_path / 'run'
    process = subprocess.Popen(COMMAND + ['train', '--dataset', f'idx:{mnist_dir}', '--epochs', '3', '--out',
                                          str(out), '--quiet', '--batch-size', '32'],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / 'reconstruction_002.png').exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    for name in os.listdir(out):  # every file is whole (a hidden temporary may be left mid-write)
        if name.endswith('.png') and not name.startswith('.'):
            Image.open(out / name).load()
    epochs_done = load_checkpoint(out / 'checkpoint.pt')['epoch']
    assert epochs_done in (1, 2)
    result = run_cli('train', '--resume', '--epochs', 3, '--out', out, '--quiet')
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(out / 'checkpoint.pt')['epoch'] == 3
    with open(out / 'metrics.csv') as file:
        assert [row['epoch'] for row in csv.DictReader(file)] == ['1', '2', '3']
    assert json.loads((out / 'summary.json').read_text())['epochs'] == 3
    assert not [name for name in os.listdir(out) if name.startswith('.')]  # temporaries cleaned up


@pytest.mark.slow
def test_sample_reconstruct_and_evaluate(trained, mnist_dir, tmp_path):
    checkpoint = trained[0] / 'checkpoint.pt'
    result = run_cli('sample', '--checkpoint', checkpoint, '--n', 16, '--out', tmp_path / 'samples.png')
    assert result.returncode == 0, result.stderr
    assert np.asarray(Image.open(tmp_path / 'samples.png')).shape == (2 + 4 * 30, 2 + 4 * 30)
    result = run_cli('reconstruct', '--checkpoint', checkpoint, '--dataset', f'idx:{mnist_dir}', '--num-images', 5,
                     '--out', tmp_path / 'recon.png')
    assert result.returncode == 0, result.stderr
    assert np.asarray(Image.open(tmp_path / 'recon.png')).shape == (2 + 2 * 30, 2 + 5 * 30)
    result = run_cli('evaluate', '--checkpoint', checkpoint, '--split', 'all', '--limit', 300, '--importance-samples',
                     50, '--out', tmp_path / 'evaluation.json')
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((tmp_path / 'evaluation.json').read_text())
    assert evaluation['images'] == 300 and evaluation['split'] == 'all'
    assert evaluation['iwae_nll_per_image'] < evaluation['negative_elbo_per_image']  # a tighter bound
    # PSNR: the first 300 images decoded from their posterior means, against a direct computation
    model = model_from_checkpoint(checkpoint).eval()
    x = torch.as_tensor(IDXDataset.from_folder(mnist_dir).data[:300]).float().div(255).reshape(300, 1, 28, 28)
    with torch.no_grad():
        recon = model.decode(model.encode(x)[0]).clamp(0, 1)
    direct = 10 * math.log10(1 / (recon - x).pow(2).mean().item())
    assert evaluation['reconstruction_psnr_db'] == pytest.approx(direct, abs=1e-3)
    assert f'PSNR {direct:.2f} dB' in result.stderr
    result = run_cli('evaluate', '--checkpoint', checkpoint, '--out', tmp_path / 'val.json')
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((tmp_path / 'val.json').read_text())
    assert (evaluation['split'], evaluation['images']) == ('val', 200)  # by default not the training images
    assert "--split val: the run's validation images" in result.stderr


@pytest.mark.slow
def test_digits_dataset_trains_with_no_files_at_all(tmp_path):
    out = tmp_path / 'digits'
    assert main(['train', '--dataset', 'digits', '--epochs', '1', '--out', str(out), '--quiet']) == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['image_shape'] == [1, 8, 8] and summary['train_images'] + summary['val_images'] == 1797


@pytest.mark.slow
def test_the_command_ends_with_its_files_and_does_not_wait_for_other_threads(tmp_path):
    # torch.compile's worker pool is a concurrent.futures pool: non-daemon threads that live until the interpreter
    # exits. The command joined every non-daemon thread at its end, so a --compile run of a ConvVAE waited 2 x 120 s.
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1)
    pool.submit(lambda: None).result()  # its worker stays alive
    out = tmp_path / 'digits'
    try:
        started = time.monotonic()
        assert main(['train', '--dataset', 'digits', '--epochs', '1', '--out', str(out), '--quiet']) == 0
        took = time.monotonic() - started
    finally:
        pool.shutdown()
    assert took < 60, f'the command took {took:.0f} s: it waited for a thread that is not its own'
    assert (out / 'checkpoint.pt').is_file() and len(list(out.glob('samples_*.png'))) == 1


EPOCH_LINE = re.compile(r'^epoch (\d+)/(\d+): train loss (\S+) recon (\S+) kl (\S+) \| val loss (\S+) recon (\S+) '
                        r'kl (\S+) active_units (\d+) \(\d+\.\d s\)$')


@pytest.mark.slow
def test_progress_in_a_log_is_one_plain_line_per_epoch_counting_on_after_resume(tmp_path):
    out, log = tmp_path / 'run', tmp_path / 'train.log'
    for args in (['--epochs', '2'], ['--resume', '--epochs', '3']):
        with open(log, 'a') as file:  # stderr to a file, as `2>> train.log`
            result = subprocess.run(COMMAND + ['train', '--dataset', 'digits', '--out', str(out), *args], stderr=file,
                                    stdout=subprocess.PIPE, text=True, timeout=300)
        assert result.returncode == 0, log.read_text()
    text = log.read_text()
    assert '\r' not in text and '\x1b' not in text  # no bar, no terminal codes
    lines = [line for line in text.splitlines() if not line.startswith('advice: ')]  # short runs: told at the end
    assert len(lines) == 3, text  # one line per epoch and nothing else
    matches = [EPOCH_LINE.match(line) for line in lines]
    assert all(matches), text
    assert [(m[1], m[2]) for m in matches] == [('1', '2'), ('2', '2'), ('3', '3')]  # counted on after --resume
    with open(out / 'metrics.csv') as file:
        rows = list(csv.DictReader(file))
    for match, row in zip(matches, rows):  # the figures of metrics.csv
        assert float(match[3]) == pytest.approx(float(row['loss']), rel=1e-4)
        assert float(match[6]) == pytest.approx(float(row['val_loss']), rel=1e-4)
        assert float(match[9]) == float(row['val_active_units'])


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, 'openpty'), reason='needs a pseudo-terminal')
def test_on_a_terminal_a_live_bar_runs_and_the_epoch_lines_stay(tmp_path):
    import fcntl
    import struct
    import termios

    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 120, 0, 0))  # a terminal 120 wide
    process = subprocess.Popen(COMMAND + ['train', '--dataset', 'digits', '--epochs', '2', '--out',
                                          str(tmp_path / 'run')], stderr=secondary, stdout=subprocess.DEVNULL)
    os.close(secondary)
    received = b''
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        received += chunk
    assert process.wait(timeout=300) == 0
    os.close(primary)
    text = received.decode(errors='replace')
    assert 'epoch 1/2 train' in text and 'epoch 2/2 validation' in text  # the live bars, labelled as the lines
    # what stays on the screen: each line's text after its last carriage return
    kept = [line.split('\r')[-1] for line in text.replace('\r\n', '\n').split('\n') if line.split('\r')[-1]]
    kept = [line for line in kept if not line.startswith('advice: ')]  # a run this short is told so at the end
    assert [EPOCH_LINE.match(line)[1] for line in kept] == ['1', '2'], kept


def test_a_long_evaluation_shows_its_progress(tmp_path, capsys, monkeypatch):
    from torchbearer_vae.cli import progress

    out = tmp_path / 'run'
    assert main(['train', '--dataset', 'digits', '--epochs', '1', '--hidden-dim', '16', '--out', str(out),
                 '--quiet']) == 0
    monkeypatch.setattr(progress, '_PLAIN_EVERY', 0.0)  # a line after every batch, as for a long one
    capsys.readouterr()
    assert main(['evaluate', '--checkpoint', str(out / 'checkpoint.pt'), '--split', 'all', '--batch-size', '500',
                 '--importance-samples', '2']) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "--split all: all the images of --dataset digits (1,797)"
    assert err[1:5] == ['negative ELBO: 500/1,797 images', 'negative ELBO: 1,000/1,797 images',
                        'negative ELBO: 1,500/1,797 images', 'negative ELBO: 1,797/1,797 images']
    assert 'IWAE bound, K=2: 1,797/1,797 images' in err
    assert re.fullmatch(r"IWAE bound, K=2: up to about [0-9.]+ s \(2 times the ELBO pass's [0-9.e-]+ s\)", err[5])


def test_evaluate_refuses_more_importance_samples_than_it_can_draw_in_days(mnist_dir, tmp_path, capsys):
    checkpoint = tmp_path / 'checkpoint.pt'
    save_checkpoint(checkpoint, VAE(hidden_dim=16, latent_dim=2))
    capsys.readouterr()
    started = time.monotonic()
    assert main(['evaluate', '--checkpoint', str(checkpoint), '--dataset', f'idx:{mnist_dir}',
                 '--importance-samples', '100001']) == 2
    assert error_line(capsys).endswith('--importance-samples 100,001 is more than 100,000: each sample costs about '
                                       'one more pass over the images (the IWAE paper estimates with 5,000); use at '
                                       'most 100,000')
    assert time.monotonic() - started < 30 and sorted(os.listdir(tmp_path)) == ['checkpoint.pt']  # no pass made


def error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err
    return err


@pytest.mark.parametrize('args, message', [
    (['train', '--dataset', 'cifar'], "unknown dataset 'cifar'"),
    (['train', '--epochs', '0'], 'must be >= 1, got 0'),
    (['train', '--batch-size', '-5'], 'must be >= 1, got -5'),
    (['train', '--batch-size', 'many'], "must be a whole number >= 1, got 'many'"),
    (['train', '--lr', '0'], "must be a finite number > 0, got '0'"),
    (['train', '--val-fraction', '1'], 'must be a finite number > 0 and < 1'),
    (['train', '--beta', 'nan'], 'must be a finite number >= 0'),
    (['sample'], 'the following arguments are required: --checkpoint'),
])
def test_argument_errors_are_one_line_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main(args)
    assert exit.value.code == 2
    assert message in error_line(capsys)


def test_input_errors_are_one_line_and_write_nothing(tmp_path, mnist_dir, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    file = tmp_path / 'a_file'
    file.write_text('x')
    cases = [
        (['train', '--dataset', f'idx:{tmp_path}', '--out', 'runs/a'], 'no IDX files in'),
        (['train', '--dataset', f'idx:{mnist_dir}', '--out', str(file)], 'is a file; give a folder'),
        (['train', '--dataset', 'mnist', '--data-dir', 'nowhere', '--out', 'runs/b'], '--dataset digits'),
        (['train', '--dataset', f'idx:{mnist_dir}', '--out', 'runs/c', '--resume'], 'no checkpoint at'),
        (['sample', '--checkpoint', 'missing.pt'], "no checkpoint at 'missing.pt'"),
        (['sample', '--checkpoint', str(file)], 'is not a checkpoint'),
    ]
    if not torch.cuda.is_available():
        cases.append((['train', '--dataset', 'digits', '--device', 'cuda', '--out', 'runs/d'], 'no CUDA GPU'))
    for args, message in cases:
        assert main(args) == 2, args
        err = error_line(capsys)
        assert message in err and len(err.splitlines()) == 1, (args, err)
    assert not (tmp_path / 'runs').exists() and sorted(os.listdir(tmp_path)) == ['a_file']


def test_incompatible_checkpoint_and_existing_run(tmp_path, mnist_dir, capsys):
    bad = tmp_path / 'bad.pt'
    state = VAE(latent_dim=5).state_dict()
    save_checkpoint(bad, VAE(latent_dim=20))
    checkpoint = torch.load(bad, weights_only=True)
    checkpoint['model_state'] = state
    torch.save(checkpoint, bad)
    assert main(['sample', '--checkpoint', str(bad)]) == 2
    assert 'fc21.weight: configuration (20, 400) vs stored (5, 400)' in error_line(capsys)  # refused before building
    run = tmp_path / 'run'
    run.mkdir()
    save_checkpoint(run / 'checkpoint.pt', VAE(), options={})
    assert main(['train', '--dataset', 'digits', '--out', str(run)]) == 2
    assert 'already holds a run' in error_line(capsys)


@pytest.mark.slow
def test_the_cli_stops_on_a_nan_with_one_line_and_keeps_the_checkpoint(mnist_dir, tmp_path):
    out = tmp_path / 'run'
    common = ['--out', str(out), '--quiet']
    first = subprocess.run(COMMAND + ['train', '--dataset', f'idx:{mnist_dir}', '--limit', '500', '--epochs', '1',
                                      '--batch-size', '50'] + common, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    # A learning rate a million times too large, as a bad hyper-parameter search would give.
    checkpoint = torch.load(out / 'checkpoint.pt', weights_only=True)
    for group in checkpoint['optimizer_state']['param_groups']:
        group['lr'] = 1e3
    torch.save(checkpoint, out / 'checkpoint.pt')
    saved, csv_text = (out / 'checkpoint.pt').read_bytes(), (out / 'metrics.csv').read_text()

    second = subprocess.run(COMMAND + ['train', '--resume', '--epochs', '3'] + common, capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 2
    notice, error = second.stderr.strip().splitlines()  # the data the checkpoint names, then the one error line
    assert notice == f'reading --dataset idx:{mnist_dir} from {mnist_dir} (named by --resume of {out})'
    assert error.startswith('torchbearer-vae train: error: NaNGuard stopped training at epoch 1, batch ')
    assert 'Traceback' not in second.stderr and 'checkpoint.pt holds the first epoch, all finite' in error
    assert (out / 'checkpoint.pt').read_bytes() == saved and (out / 'metrics.csv').read_text() == csv_text
    assert not (out / 'reconstruction_002.png').exists()


@pytest.mark.slow
def test_main_job_reaches_the_issue_figures(mnist_dir, tmp_path):
    """README's main job on the real split (9,000 train / 1,000 validation, seed 1), as a user runs it."""
    out = tmp_path / 'mnist'
    result = run_cli('train', '--dataset', f'idx:{mnist_dir}', '--epochs', 10, '--out', out, '--quiet')
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert (summary['train_images'], summary['val_images'], summary['epochs']) == (9000, 1000, 10)
    assert summary['val_elbo_per_image'] <= 122  # the PyTorch example's loop reaches about 120
    result = run_cli('evaluate', '--checkpoint', out / 'checkpoint.pt', '--split', 'val', '--importance-samples',
                     100, '--out', tmp_path / 'evaluation.json')
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((tmp_path / 'evaluation.json').read_text())
    assert evaluation['images'] == 1000
    assert evaluation['negative_elbo_per_image'] == pytest.approx(summary['val_elbo_per_image'], abs=1.5)
    assert evaluation['iwae_nll_per_image'] < evaluation['negative_elbo_per_image']


@pytest.mark.slow
def test_resume_refuses_changed_options_and_split_needs_the_run(trained, tmp_path, capsys):
    out = tmp_path / 'run'
    shutil.copytree(trained[0], out)
    assert main(['train', '--resume', '--out', str(out), '--epochs', '2', '--latent-dim', '5']) == 2
    assert '--latent-dim 5 (the run used 20)' in error_line(capsys)
    assert load_checkpoint(out / 'checkpoint.pt')['epoch'] == 1  # untouched
    assert main(['evaluate', '--checkpoint', str(out / 'checkpoint.pt'), '--split', 'val',
                 '--dataset', 'digits']) == 2  # --dataset says where the run's data is now: this is not it
    assert "--split val is a split of the run's 2000 images, but --dataset digits has 1797" in error_line(capsys)


def test_sample_refuses_a_picture_pillow_would_not_open(tmp_path, capsys, monkeypatch):
    from torchbearer_vae.cli import limits

    monkeypatch.setattr(limits, 'available_memory', lambda device=None: 10 ** 12)  # memory is not what refuses
    checkpoint = tmp_path / 'checkpoint.pt'
    save_checkpoint(checkpoint, VAE(hidden_dim=16, latent_dim=2))
    capsys.readouterr()
    assert main(['sample', '--checkpoint', str(checkpoint), '--num-images', '200000']) == 2
    assert error_line(capsys) == ('torchbearer-vae sample: error: --num-images 200000: a grid of 200,000 images of '
                                  '28x28 pixels would be 13,412x13,442 pixels, more than the 89,478,485 Pillow opens; '
                                  'ask for fewer with --num-images')
    assert sorted(os.listdir(tmp_path)) == ['checkpoint.pt']
    assert main(['sample', '--checkpoint', str(checkpoint), '--num-images', '900']) == 0  # 30x30 images: drawn
