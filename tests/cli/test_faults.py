"""Kill `torchbearer-vae train` with SIGKILL at random moments: every file left is readable and the run resumes.

Each kill is either *timed* (a seeded random delay after the process's first write, so anywhere
in the following epochs: training, validation or a write) or *aimed* (as soon as the n-th
temporary file of an atomic write appears in the run folder, i.e. in the middle of writing a
picture, the checkpoint or the CSV). After
each kill every file in the folder is opened as what it claims to be; then the next process
continues the run (``--resume`` once a checkpoint exists), and the last one must finish it.
"""
import csv
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from torchbearer_vae import load_checkpoint, model_from_checkpoint
from torchbearer_vae.cli.run_folder import LOCK, RUN
from torchbearer_vae.files import _TEMPORARY

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytestmark = pytest.mark.skipif(not hasattr(signal, 'SIGKILL'), reason='needs POSIX signals')

EXECUTABLE = shutil.which('torchbearer-vae', path=os.path.dirname(sys.executable))
COMMAND = [EXECUTABLE] if EXECUTABLE else [sys.executable, '-m', 'torchbearer_vae']
EPOCHS = 6
SEED = 7
# Timed kills come a random 0-1 s after the first write, aimed ones at the n-th temporary file (n random, 1-4).
KILLS = ('timed', 'aimed', 'timed', 'aimed', 'timed', 'aimed')


def read_csv(path):
    with open(path, newline='') as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    for row in rows:  # a torn row would have missing (None) or extra (key None) fields
        assert None not in row and None not in row.values(), row
    return reader.fieldnames, rows


def check_folder(out):
    """Open every file; return (real files, temporaries, checkpoint epoch or None, CSV rows or None)."""
    names = sorted(os.listdir(out)) if os.path.isdir(out) else []
    temporaries = [name for name in names if _TEMPORARY.match(name)]
    # A killed run leaves its lock file, and its record (RUN) until a run that ends removes it.
    real = [name for name in names if name not in temporaries and name not in (LOCK, RUN)]
    epoch = rows = None
    for name in real:
        path = os.path.join(out, name)
        if name.endswith('.png'):
            with Image.open(path) as image:
                image.load()  # decodes every row: a truncated PNG raises here
                assert image.size[0] > 0
        elif name == 'metrics.csv':
            header, rows = read_csv(path)
            assert header[0] == 'epoch' and [int(row['epoch']) for row in rows] == list(range(1, len(rows) + 1))
            assert all(math.isfinite(float(value)) for row in rows for key, value in row.items() if key != 'epoch')
        elif name == 'summary.json':
            with open(path) as file:
                assert json.load(file)['epochs'] >= 1
        elif name == 'config.toml':  # written whole (atomically) when each session starts
            with open(path, 'rb') as file:
                assert tomllib.load(file)['epochs'] >= 1
        elif name == 'checkpoint.pt':
            checkpoint = load_checkpoint(path)  # weights_only
            model_from_checkpoint(checkpoint)
            epoch = checkpoint['epoch']
            assert epoch == len(checkpoint['history']) >= 1
        else:
            raise AssertionError(f'unexpected file {name} in the run folder')
    if rows is not None:
        # The checkpoint is written just before the CSV, at the same hook: at most one epoch ahead.
        assert epoch is not None and len(rows) <= epoch <= len(rows) + 1, (epoch, len(rows))
    return real, temporaries, epoch, rows


def start(out, mnist_dir, log):
    resume = os.path.exists(os.path.join(out, 'checkpoint.pt'))
    args = ['train', '--resume'] if resume else ['train', '--dataset', f'idx:{mnist_dir}', '--limit', '3000',
                                                 '--batch-size', '100']
    return subprocess.Popen(COMMAND + args + ['--epochs', str(EPOCHS), '--out', str(out), '--quiet'],
                            stdout=subprocess.DEVNULL, stderr=log), resume


def temporaries_in(out):
    return {name for name in os.listdir(out) if _TEMPORARY.match(name)} if os.path.isdir(out) else set()


def kill_when(process, out, kind, parameter, left_over, deadline=60):
    """SIGKILL the process ``parameter`` seconds after its first write (timed) or at its parameter-th (aimed)."""
    started, seen, writing = time.monotonic(), set(), None
    while process.poll() is None and time.monotonic() - started < deadline:
        seen |= temporaries_in(out) - left_over  # not those an earlier kill left, which the process removes
        if seen and writing is None:
            writing = time.monotonic()  # training has begun: the first picture of an epoch is being written
        if kind == 'timed' and writing is not None and time.monotonic() - writing >= parameter:
            break
        if kind == 'aimed' and len(seen) >= parameter:
            break
        time.sleep(0.001)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


def run_with_kills(out, mnist_dir, log, errors):
    """Start, kill and check as KILLS says, then let one last process finish the run; returns the journal."""
    rng, journal = random.Random(SEED), []
    for kind in KILLS:
        parameter = rng.uniform(0.0, 1.0) if kind == 'timed' else rng.randint(1, 4)
        left_over = temporaries_in(out)
        process, resumed = start(out, mnist_dir, log)
        killed = kill_when(process, out, kind, parameter, left_over)
        assert killed or process.returncode == 0, open(errors).read()
        real, temporaries, epoch, rows = check_folder(out)
        when = f'{parameter:.2f} s after the first write' if kind == 'timed' else f'at temporary file #{parameter}'
        half_written = [name.split('.')[1] + name.rsplit('.tmp', 1)[1] for name in temporaries]
        journal.append(f'{kind} kill {when}: {"killed" if killed else "finished"}'
                       f'{" a resumed run" if resumed else ""}; checkpoint epoch {epoch}, '
                       f'{len(rows) if rows is not None else 0} CSV rows, {len(real)} readable files, '
                       f'half-written (left as temporaries): {half_written or "none"}')
    process, _ = start(out, mnist_dir, log)  # the last one runs to the end
    assert process.wait(timeout=120) == 0, open(errors).read()
    return journal


@pytest.mark.slow
def test_sigkill_at_random_moments_leaves_readable_files_and_the_run_resumes(mnist_dir, tmp_path):
    out = tmp_path / 'run'
    with open(tmp_path / 'stderr.txt', 'w') as log:
        journal = run_with_kills(out, mnist_dir, log, tmp_path / 'stderr.txt')
    print('\n'.join(journal))  # shown with pytest -s: what each kill hit and what survived
    assert sum(': killed' in line for line in journal) >= 4

    real, temporaries, epoch, rows = check_folder(out)
    assert not os.path.exists(out / LOCK) and not os.path.exists(out / RUN)  # the last run released them
    assert temporaries == [] and epoch == EPOCHS and len(rows) == EPOCHS
    assert set(real) == {'checkpoint.pt', 'config.toml', 'metrics.csv', 'loss.png', 'summary.json'} | {
        f'{picture}_{e:03d}.png' for picture in ('reconstruction', 'samples') for e in range(1, EPOCHS + 1)} | {
        f'{picture}_{EPOCHS:03d}.png' for picture in ('kl_dims', 'latent')}  # the latent charts: at the last epoch
    history = load_checkpoint(out / 'checkpoint.pt')['history']
    for row, saved in zip(rows, history):  # the CSV is the checkpoint's history, epoch for epoch
        for key, value in row.items():
            if key != 'epoch':
                assert float(value) == pytest.approx(saved[key], rel=1e-6), key
    assert float(rows[-1]['val_loss']) < float(rows[0]['val_loss'])  # the pieces still make one converging run
    with open(out / 'summary.json') as file:
        assert json.load(file)['epochs'] == EPOCHS
