"""``torchbearer-vae train --compile``: torch.compile of the model and its loss, the same training, the same files."""
import csv
import os
import shutil

import pytest
from stand_ins import run_cli

from torchbearer_vae import VAE, load_checkpoint, model_from_checkpoint


def _val_losses(out):
    with open(os.path.join(out, 'metrics.csv'), newline='') as file:
        return [float(row['val_loss']) for row in csv.DictReader(file)]


@pytest.mark.slow
def test_a_compiled_run_trains_like_an_eager_one_and_its_checkpoint_is_a_plain_model(mnist_dir, tmp_path):
    common = ['train', '--dataset', f'idx:{mnist_dir}', '--limit', 1000, '--epochs', 2, '--quiet', '--seed', 3]
    eager, compiled = tmp_path / 'eager', tmp_path / 'compiled'
    assert run_cli(*common, '--out', eager).returncode == 0
    result = run_cli(*common, '--out', compiled, '--compile')
    assert result.returncode == 0, result.stderr
    # The same data, batches and initial weights; the draws of z differ (a compiled graph takes them from
    # inductor's own generator), so the curves agree to the noise of the draws (0.8% here), not bit for bit.
    losses = _val_losses(compiled)
    assert losses == pytest.approx(_val_losses(eager), rel=0.02) and losses[1] < losses[0]
    checkpoint = load_checkpoint(compiled / 'checkpoint.pt')
    assert set(checkpoint['model_state']) == set(VAE().state_dict())  # no '_orig_mod.' prefixes
    model = model_from_checkpoint(checkpoint)
    assert type(model) is VAE and not any(name.startswith('_orig_mod') for name in model.state_dict())
    # A compiled run resumes without --compile (it is not a run option) and goes on from its epoch.
    result = run_cli('train', '--epochs', 3, '--out', compiled, '--resume', '--quiet')
    assert result.returncode == 0, result.stderr
    assert len(_val_losses(compiled)) == 3


@pytest.mark.slow
def test_compile_without_a_cpp_compiler_is_one_line_before_any_data_is_read(mnist_dir, tmp_path):
    out = tmp_path / 'run'
    env = dict(os.environ, CXX='no-such-compiler-here')
    result = run_cli('train', '--dataset', f'idx:{tmp_path / "no-data"}', '--compile', '--device', 'cpu',
                     '--out', out, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'C++ compiler' in lines[0] and 'leave --compile out' in lines[0], result.stderr
    assert 'no-such-compiler-here' in lines[0]
    assert not out.exists()  # refused before the run folder or the (missing) data were touched
    assert shutil.which('no-such-compiler-here') is None
    # Without --compile the same command gets as far as the missing data: the refusal above was --compile's.
    result = run_cli('train', '--dataset', f'idx:{tmp_path / "no-data"}', '--device', 'cpu', '--out', out, env=env)
    assert result.returncode == 2 and 'C++ compiler' not in result.stderr


@pytest.mark.slow
def test_compile_is_not_stored_in_the_run_options(mnist_dir, tmp_path):
    out = tmp_path / 'run'
    result = run_cli('train', '--dataset', f'idx:{mnist_dir}', '--limit', 300, '--epochs', 1, '--quiet', '--out', out)
    assert result.returncode == 0, result.stderr
    assert 'compile' not in load_checkpoint(out / 'checkpoint.pt')['options']
