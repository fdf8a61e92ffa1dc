"""A checkpoint is untrusted input (issue 23, part 1): every command refuses a crafted one in one line, before work.

Each checkpoint here is what ``train`` writes, then changed as an attacker or a careless edit would; the commands
run in this process (``main``), and each refusal is exit status 2 with one line on stderr and nothing written.
"""
import json
import math
import os

import pytest
import torch
from stand_ins import edit_checkpoint

from torchbearer_vae import VAE, TensorLoader, kld_loss, load_checkpoint, save_checkpoint
from torchbearer_vae.cli import main

COMMANDS = {'sample': [], 'reconstruct': ['--num-images', '4'], 'evaluate': ['--split', 'all', '--limit', '50']}


def run_options():
    """The options a digits run of train stores."""
    return {'dataset': 'digits', 'data_dir': None, 'limit': None, 'image_size': None, 'channels': None,
            'model': 'mlp', 'conditional': False, 'likelihood': 'bernoulli', 'sigma': 0.1, 'batch_size': 64,
            'lr': 1e-3, 'latent_dim': 2, 'hidden_dim': 8, 'beta': 1.0, 'val_fraction': 0.1, 'seed': 1}


def write_run(folder, *, stepped=True, side=8, **changes):
    """``folder/checkpoint.pt`` as train writes it after one epoch of digits (images side x side), changed as given
    (None deletes)."""
    folder.mkdir(exist_ok=True)
    torch.manual_seed(0)
    model = VAE((1, side, side), hidden_dim=8, latent_dim=2)
    optimizer = torch.optim.Adam(model.parameters())
    if stepped:  # Adam's moments exist
        model(torch.rand(2, 1, side, side))[0].sum().backward()
        optimizer.step()
    loader = TensorLoader(torch.zeros(10, 1, 8, 8), 4, shuffle=True, seed=1)
    save_checkpoint(folder / 'checkpoint.pt', model, optimizer, epoch=1, history=[{'loss': 1.0}],
                    options=run_options(), kl_term=kld_loss(reduction='batchmean').state_dict(),
                    rng_state=torch.get_rng_state(), train_loader=loader.state_dict())
    edit_checkpoint(folder / 'checkpoint.pt', changes)
    return folder / 'checkpoint.pt'


def refused(capsys, argv, *expected, read=None):
    """``main(argv)`` exits 2 with one error line on stderr holding each of ``expected``; returns the line.

    With ``read``, the line before it says the command reads the data there.
    """
    assert main([str(arg) for arg in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 + (read is not None) and 'Traceback' not in lines[-1], lines
    assert read is None or lines[0].startswith(f'reading --dataset {read}'), lines
    err = lines[-1]
    for text in expected:
        assert text in err, (text, err)
    return err


def test_a_checkpoint_that_is_not_crafted_works_for_every_command(tmp_path, capsys):
    checkpoint = write_run(tmp_path / 'run')
    for command, args in COMMANDS.items():
        assert main([command, '--checkpoint', str(checkpoint), *args]) == 0, capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / 'run')) == ['checkpoint.pt', 'evaluation.json', 'recon.png', 'samples.png']


# -- (a) tensors the file does not back --
@pytest.mark.parametrize('command', sorted(COMMANDS))
def test_every_command_refuses_zero_stride_weights_before_building_the_model(tmp_path, capsys, command):
    checkpoint = write_run(tmp_path / 'run')
    crafted = load_checkpoint(checkpoint)
    crafted['model']['config']['hidden_dim'] = 400_000  # 3 GB of weights, claimed by a file of kilobytes
    with torch.device('meta'):
        shapes = {name: value.shape for name, value in VAE(**crafted['model']['config']).state_dict().items()}
    crafted['model_state'] = {name: torch.zeros(1).expand(*shape) for name, shape in shapes.items()}
    torch.save(crafted, checkpoint)
    refused(capsys, [command, '--checkpoint', checkpoint, *COMMANDS[command]], 'a zero-stride view')
    assert os.listdir(tmp_path / 'run') == ['checkpoint.pt']


# -- (b) every option read from a checkpoint is checked as the command line checks it --
@pytest.mark.parametrize('command', sorted(COMMANDS))
@pytest.mark.parametrize('change, message', [
    ({'limit': 'abc'}, "limit must be an int >= 1, got 'abc'"),
    ({'limit': 0}, 'limit must be an int >= 1'),
    ({'dataset': 'nowhere'}, "unknown dataset 'nowhere'"),
    ({'dataset': 7}, 'dataset must be a string or None, got a int'),
    ({'lr': 'fast'}, 'lr must be a finite number > 0'),
    ({'val_fraction': 1.5}, 'val_fraction must be a finite number > 0 and < 1'),
    ({'seed': 2 ** 80}, 'seed must be a whole number from 0 to 2**63 - 1, got 1208925819614629174706176'),
    ({'image_size': -3}, 'image_size must be an int >= 1'),
    ({'model': 'transformer'}, "model must be mlp, conv, spatial, vqvae or module:Class"),
])
def test_every_command_refuses_an_option_the_command_line_would_refuse(tmp_path, capsys, command, change, message):
    checkpoint = write_run(tmp_path / 'run', options={**run_options(), **change})
    refused(capsys, [command, '--checkpoint', checkpoint, *COMMANDS[command]], 'its options are not valid', message)
    assert os.listdir(tmp_path / 'run') == ['checkpoint.pt']


@pytest.mark.parametrize('command', sorted(COMMANDS))
def test_options_that_are_not_a_dict_are_refused(tmp_path, capsys, command):
    checkpoint = write_run(tmp_path / 'run', options='limit=abc')
    refused(capsys, [command, '--checkpoint', checkpoint, *COMMANDS[command]], 'options must be a dict')


@pytest.mark.parametrize('change, message', [
    ({'limit': 'abc'}, "limit must be an int >= 1, got 'abc'"),
    ({'seed': 2 ** 80}, 'seed must be a whole number from 0 to 2**63 - 1'),  # torch.manual_seed would overflow
])
def test_resume_refuses_the_same_options_with_its_own_advice(tmp_path, capsys, change, message):
    write_run(tmp_path / 'run', options={**run_options(), **change})
    refused(capsys, ['train', '--resume', '--epochs', 2, '--out', tmp_path / 'run'], 'cannot be resumed',
            message, 'start a new run in another --out')


def adam_state(change):
    """The optimizer state of write_run's checkpoint, changed by ``change(state)``."""
    def changed(folder):
        state = torch.load(write_run(folder), weights_only=True)['optimizer_state']
        change(state)
        return state
    return changed


@pytest.mark.parametrize('changes, message', [
    ({'rng_state': torch.zeros(3, dtype=torch.uint8)}, 'rng_state) is missing or not 5056 bytes'),
    ({'rng_state': torch.zeros(5056)}, 'rng_state) is missing or not 5056 bytes'),
    ({'optimizer_state': adam_state(lambda s: s['param_groups'][0].update(lr='0.01'))},
     "lr must be a finite number > 0, got '0.01'"),
    ({'optimizer_state': adam_state(lambda s: s['param_groups'][0].update(lr=-1.0))}, 'lr must be a finite number > 0'),
    ({'optimizer_state': adam_state(lambda s: s['param_groups'][0].update(betas=(0.9,)))}, 'betas must be two numbers'),
    ({'optimizer_state': adam_state(lambda s: s['param_groups'][0].update(eps=math.nan))}, 'eps must be a finite'),
    ({'optimizer_state': adam_state(lambda s: s['state'][0].pop('exp_avg'))}, 'state of parameter 0 lacks exp_avg'),
    ({'optimizer_state': adam_state(lambda s: s['state'][2].update(exp_avg_sq=torch.ones(3)))},
     'state of parameter 2 has exp_avg_sq of shape (3,), the parameter (2, 8)'),
    ({'optimizer_state': adam_state(lambda s: s['state'][1].update(exp_avg_sq=-torch.ones(8)))},
     'exp_avg_sq holding NaN, infinity or < 0'),
    ({'optimizer_state': adam_state(lambda s: s['state'][1].update(step=torch.tensor(0.)))},
     'the step of the state of parameter 1 must be a finite number >= 1'),
])
def test_resume_refuses_random_and_optimizer_states_torch_would_choke_on(tmp_path, capsys, changes, message):
    changes = {key: value(tmp_path / 'run') if callable(value) else value for key, value in changes.items()}
    checkpoint = write_run(tmp_path / 'run', **changes)
    before = checkpoint.read_bytes()
    refused(capsys, ['train', '--resume', '--epochs', 2, '--out', tmp_path / 'run', '--quiet'], 'cannot be resumed',
            message)
    assert checkpoint.read_bytes() == before and load_checkpoint(checkpoint)['epoch'] == 1


@pytest.mark.slow
def test_the_same_checkpoint_unchanged_resumes(tmp_path, capsys):
    write_run(tmp_path / 'run')
    assert main(['train', '--resume', '--epochs', '2', '--out', str(tmp_path / 'run'), '--quiet']) == 0, \
        capsys.readouterr().err
    assert load_checkpoint(tmp_path / 'run' / 'checkpoint.pt')['epoch'] == 2


# -- (c) weights holding NaN or infinity; JSON --
@pytest.mark.parametrize('command', sorted(COMMANDS))
@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_every_command_refuses_weights_that_are_not_finite(tmp_path, capsys, command, bad):
    checkpoint = write_run(tmp_path / 'run')
    crafted = load_checkpoint(checkpoint)
    crafted['model_state']['fc3.bias'][5] = bad
    torch.save(crafted, checkpoint)
    refused(capsys, [command, '--checkpoint', checkpoint, *COMMANDS[command]],
            'its weights hold NaN or infinity (fc3.bias)')
    assert os.listdir(tmp_path / 'run') == ['checkpoint.pt']


# -- (d) data a checkpoint names is read only if it is there, never downloaded, and named first --
@pytest.mark.parametrize('command', ['reconstruct', 'evaluate'])
def test_data_a_checkpoint_names_is_read_only_if_it_is_a_folder_here(tmp_path, capsys, command):
    (tmp_path / 'a file').write_text('not a folder')
    missing = tmp_path / 'gone' / 'images'
    for recorded, what in ((f'folder:{missing}', 'not a folder here'), (f'idx:{tmp_path / "a file"}', 'not a folder'),
                           ('folder:/', "a filesystem's root"), (f'idx:{tmp_path}/../' + '../' * 40, 'root')):
        options = {**run_options(), 'dataset': recorded}
        checkpoint = write_run(tmp_path / 'run', side=28, options=options)
        refused(capsys, [command, '--checkpoint', checkpoint], f'reads --dataset {recorded.split(":")[0]}:', what,
                'nothing was read')
    assert sorted(os.listdir(tmp_path)) == ['a file', 'run'] and os.listdir(tmp_path / 'run') == ['checkpoint.pt']


@pytest.mark.parametrize('dataset', ['mnist', 'fashion-mnist', 'cifar10'])
def test_a_dataset_a_checkpoint_names_is_never_downloaded_nor_its_folder_created(tmp_path, capsys, dataset):
    empty = tmp_path / 'empty'
    empty.mkdir()
    for data_dir, message in ((str(tmp_path / 'new' / 'data'), 'not a folder here'),
                              (str(empty), 'is never downloaded: give --dataset and --data-dir to download it')):
        checkpoint = write_run(tmp_path / 'run', side=28, options={**run_options(), 'dataset': dataset,
                                                                   'data_dir': data_dir})
        read = None if message == 'not a folder here' else f'{dataset} from {data_dir}'
        refused(capsys, ['evaluate', '--checkpoint', checkpoint, '--split', 'all'], message, read=read)
        refused(capsys, ['evaluate', '--checkpoint', checkpoint, '--split', 'all', '--dataset', dataset], message,
                read=read)
    assert not (tmp_path / 'new').exists() and os.listdir(empty) == []


@pytest.mark.parametrize('dataset', ['mnist', 'fashion-mnist', 'cifar10'])
def test_resume_never_downloads_the_dataset_its_checkpoint_names_nor_creates_its_folder(tmp_path, capsys, dataset):
    empty = tmp_path / 'empty'
    empty.mkdir()
    resume = ['train', '--resume', '--epochs', '2', '--quiet', '--out', tmp_path / 'run']
    for data_dir, message in ((str(tmp_path / 'new' / 'data'), 'not a folder here'),
                              (str(empty), 'is never downloaded')):
        write_run(tmp_path / 'run', side=28, options={**run_options(), 'dataset': dataset, 'data_dir': data_dir})
        read = None if message == 'not a folder here' else f'{dataset} from {data_dir}'
        refused(capsys, resume, message, read=read)
    assert not (tmp_path / 'new').exists() and os.listdir(empty) == []
    assert load_checkpoint(tmp_path / 'run' / 'checkpoint.pt')['epoch'] == 1


def test_the_data_a_checkpoint_names_is_named_on_stderr_before_it_is_read(tmp_path, capsys, mnist_dir):
    checkpoint = write_run(tmp_path / 'run', side=28, options={**run_options(), 'dataset': f'idx:{mnist_dir}'})
    assert main(['evaluate', '--checkpoint', str(checkpoint), '--split', 'all', '--limit', '20']) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f'reading --dataset idx:{mnist_dir} from {mnist_dir} (named by --checkpoint {checkpoint})'
    assert err[1] == f'--split all: all the images of --dataset idx:{mnist_dir} (20)'
    assert json.loads((tmp_path / 'run' / 'evaluation.json').read_text())['images'] == 20
