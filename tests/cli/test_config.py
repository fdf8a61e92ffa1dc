"""``train --config FILE``, ``--print-config`` and the config.toml every run writes (cli/config.py)."""
import pathlib
import sys

import pytest
import torch

from torchbearer_vae.cli import main
from torchbearer_vae.cli.config import CONFIG, config_text, read_config, toml_value
from torchbearer_vae.errors import CommandError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / 'docs' / 'examples' / 'config.toml'


def printed(capsys, *argv):
    """``train --print-config ARGV``: the TOML printed, read back."""
    assert main(['train', '--print-config', *map(str, argv)]) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    return text, tomllib.loads(text)


def error_line(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize('value', [
    'plain', '', 'with "quotes" and \\backslashes\\', 'line\nbreak\ttab\rreturn\bback\fform', '\x00\x01\x1f\x7f',
    'é ü 数据 🙂', "it's", '# not a comment', '[model]', 'C:\\Users\\x\\runs', 0, -3, 10 ** 18, 0.1, 1e-3, 1e-5,
    1e16, -2.5, 1.0, True, False, [1, 2], ['a"b', 'c\\d'], [0.5, 1e-7], [],
])
def test_toml_values_round_trip_through_tomllib(value):
    assert tomllib.loads(f'key = {toml_value(value)}')['key'] == value


def test_a_file_name_that_is_not_text_is_refused_not_written_broken():
    with pytest.raises(CommandError, match='not text'):
        toml_value('runs/\udcff')


def test_print_config_prints_the_resolved_options_which_read_back_the_same(capsys, tmp_path):
    text, config = printed(capsys, '--dataset', 'digits', '--epochs', '3', '--lr', '0.01', '--kl-warmup', '2',
                           '--model', 'conv', '--model-arg', 'channels=[8, 16]', '--out', tmp_path / 'run')
    assert config['epochs'] == 3 and config['lr'] == 0.01 and config['kl_warmup'] == 2.0
    assert config['dataset'] == 'digits' and config['out'] == str(tmp_path / 'run') and config['seed'] == 1
    assert config['model'] == {'class': 'conv', 'channels': [8, 16]}
    assert 'sigma' not in config and 'kl_cycle_ratio' not in config and 'resume' not in config  # unused, or actions
    assert 'likelihood' not in config  # settled from the images, and said so:
    assert '# channels, likelihood, sigma, latent_dim, hidden_dim: settled from the images' in text
    assert printed(capsys, '--dataset', 'digits', '--sigma', 'calibrated')[1]['sigma'] == 'calibrated'  # kept
    path = tmp_path / 'run.toml'
    path.write_text(text)
    assert printed(capsys, '--config', path)[0] == text  # read back: the same configuration


def test_flags_override_the_file_and_the_file_overrides_the_defaults(capsys, tmp_path):
    path = tmp_path / 'run.toml'
    path.write_text('epochs = 7\nbatch_size = 32\nlatent_dim = 4\n\n[model]\nclass = "conv"\nchannels = [8, 16]\n')
    _, config = printed(capsys, '--config', path, '--epochs', '2', '--model-arg', 'channels=[4, 4]')
    assert config['epochs'] == 2 and config['batch_size'] == 32 and config['latent_dim'] == 4  # flag, file
    assert config['lr'] == 0.001  # default
    assert config['model'] == {'class': 'conv', 'channels': [4, 4]}  # a --model-arg replaces the file's
    assert read_config(str(path))['model_args'] == [('channels', [8, 16])]


def test_an_unknown_key_is_one_line_naming_the_closest(capsys, tmp_path):
    path = tmp_path / 'run.toml'
    for text, expected in (('epoch = 3\n', "unknown option 'epoch' (did you mean epochs?)"),
                           ('batch-size = 3\n', "unknown option 'batch-size' (did you mean batch_size?)"),
                           ('resume = true\n', "unknown option 'resume'"),
                           ('[model]\nclass = "conv"\nlatent_dim = 3\n', '[model] latent_dim is an option of train'),
                           ('[training]\nepochs = 3\n', "unknown option 'training'")):
        path.write_text(text)
        assert main(['train', '--config', str(path)]) == 2
        line = error_line(capsys)
        assert line.startswith(f'torchbearer-vae train: error: --config {path}: ') and expected in line, line


@pytest.mark.parametrize('key, value, flag, text', [
    ('epochs', '"ten"', '--epochs', 'ten'),
    ('epochs', '2.5', '--epochs', '2.5'),
    ('epochs', 'true', '--epochs', 'true'),
    ('lr', '-1', '--lr', '-1'),
    ('lr', '"fast"', '--lr', 'fast'),
    ('seed', '-1', '--seed', '-1'),
    ('device', '"gpu"', '--device', 'gpu'),
    ('dataset', '"imagenet"', '--dataset', 'imagenet'),
    ('kl_capacity', '25', '--kl-capacity', '25'),
    ('kl_cycles', '0', '--kl-cycles', '0'),
])
def test_a_wrong_value_in_the_file_reads_as_the_flags_message(capsys, tmp_path, key, value, flag, text):
    path = tmp_path / 'run.toml'
    path.write_text(f'{key} = {value}\n')
    assert main(['train', '--config', str(path)]) == 2
    from_file = error_line(capsys).split(f'--config {path}: {key}: ', 1)[1]
    with pytest.raises(SystemExit):
        main(['train', flag, text])
    from_flag = capsys.readouterr().err.strip().splitlines()[-1].split(f'argument {flag}: ', 1)[1]
    assert from_file == from_flag


def test_a_switch_or_a_path_of_the_wrong_type_and_a_file_that_is_not_toml_are_one_line(capsys, tmp_path):
    path = tmp_path / 'run.toml'
    for text, expected in (('quiet = "yes"\n', 'quiet: must be true or false, got "yes"'),
                           ('data_dir = 5\n', 'data_dir: must be a string, got 5'),
                           ('epochs = \n', 'is not valid TOML'),
                           ('[model]\nwidth = {a = 1}\n', "[model]['width'] must be a number")):
        path.write_text(text)
        assert main(['train', '--config', str(path)]) == 2
        assert expected in error_line(capsys)
    assert main(['train', '--config', str(tmp_path)]) == 2 and 'is a folder; give a TOML file' in error_line(capsys)
    assert main(['train', '--config', str(tmp_path / 'none.toml')]) == 2
    assert 'No such file' in error_line(capsys)


def test_print_config_with_resume_says_where_a_runs_configuration_is(capsys):
    assert main(['train', '--print-config', '--resume']) == 2
    assert f'a run\'s own is the {CONFIG} in its --out' in error_line(capsys)


def test_the_written_text_leaves_out_what_is_none_or_unused_and_tables_the_model():
    options = {'dataset': 'digits', 'model': 'mod:My"VAE', 'model_args': {'width': 3, 'names': ['a']},
               'likelihood': 'bernoulli', 'sigma': 0.1, 'beta': 2.0, 'kl_capacity': '5:1', 'kl_cycles': None,
               'kl_cycle_ratio': 0.5, 'limit': None}
    config = tomllib.loads(config_text(options, {'epochs': 3, 'out': '/x'}))
    assert config == {'dataset': 'digits', 'likelihood': 'bernoulli', 'kl_capacity': '5:1', 'epochs': 3, 'out': '/x',
                      'model': {'class': 'mod:My"VAE', 'width': 3, 'names': ['a']}}


def assert_same_run(first, second):
    """Two run folders whose checkpoints hold the same weights, history (running averages aside) and options."""
    a, b = (torch.load(folder / 'checkpoint.pt', weights_only=True) for folder in (first, second))
    assert a['model_state'].keys() == b['model_state'].keys()
    assert all(torch.equal(a['model_state'][key], b['model_state'][key]) for key in a['model_state'])
    assert a['options'] == b['options'] and a['kl_term'] == b['kl_term']
    assert len(a['history']) == len(b['history'])
    for one, two in zip(a['history'], b['history']):  # torchbearer's running_* averages restart with a session
        assert {k: v for k, v in one.items() if not k.startswith('running_')} == \
               {k: v for k, v in two.items() if not k.startswith('running_')}


TINY = ['--dataset', 'digits', '--limit', '400', '--latent-dim', '2', '--hidden-dim', '16', '--batch-size', '64',
        '--quiet']


@pytest.mark.slow
def test_a_run_writes_its_config_and_the_config_repeats_the_run_exactly(tmp_path, capsys):
    first, second = tmp_path / 'x', tmp_path / 'y'
    assert main(['train', *TINY, '--epochs', '2', '--kl-cycles', '2', '--free-bits', '0.1', '--seed', '7',
                 '--out', str(first)]) == 0
    config = tomllib.loads((first / CONFIG).read_text())
    assert config['seed'] == 7 and config['kl_cycles'] == '2:2' and config['out'] == str(first)
    assert config['model'] == {'class': 'mlp'} and config['hidden_dim'] == 16  # settled from the images
    assert config['likelihood'] == 'bernoulli' and 'sigma' not in config  # grey digits: bernoulli, no sigma
    assert main(['train', '--config', str(first / CONFIG), '--out', str(second)]) == 0
    assert_same_run(first, second)
    assert (second / CONFIG).read_text() == (first / CONFIG).read_text().replace(str(first), str(second))
    # --out in the file: the run-folder rules apply (x holds a run)
    capsys.readouterr()  # the runs' own lines (a run this short is told so at its end)
    assert main(['train', '--config', str(first / CONFIG)]) == 2
    assert 'already holds a run (checkpoint.pt); pass --resume' in error_line(capsys)


@pytest.mark.slow
def test_resume_with_a_config_compares_its_options_as_flags(tmp_path, capsys):
    out = tmp_path / 'x'
    assert main(['train', *TINY, '--epochs', '1', '--out', str(out)]) == 0
    copy = tmp_path / 'copy.toml'
    copy.write_text((out / CONFIG).read_text().replace('epochs = 1', 'epochs = 2'))
    assert main(['train', '--config', str(copy), '--resume']) == 0  # its out, its options: continued
    assert torch.load(out / 'checkpoint.pt', weights_only=True)['epoch'] == 2
    copy.write_text((out / CONFIG).read_text().replace('latent_dim = 2', 'latent_dim = 3'))
    capsys.readouterr()
    assert main(['train', '--config', str(copy), '--resume', '--epochs', '3']) == 2
    assert '--latent-dim 3 (the run used 2)' in error_line(capsys)


@pytest.mark.slow
def test_the_worked_example_config_runs(tmp_path, monkeypatch, capsys):
    """docs/examples/config.toml, as the README and the docs show it, run from the repository's folder."""
    config = tomllib.loads(EXAMPLE.read_text())
    assert config['dataset'] == 'idx:../shared/data/mnist' and config['model']['class'] == 'conv'
    monkeypatch.chdir(ROOT)
    assert main(['train', '--config', str(EXAMPLE), '--limit', '300', '--epochs', '1', '--out',
                 str(tmp_path / 'run')]) == 0, capsys.readouterr().err
    written = tomllib.loads((tmp_path / 'run' / CONFIG).read_text())
    assert {key: written[key] for key in ('latent_dim', 'beta', 'kl_warmup', 'free_bits')} == \
           {key: config[key] for key in ('latent_dim', 'beta', 'kl_warmup', 'free_bits')}
    assert written['model'] == config['model'] and written['epochs'] == 1 and written['limit'] == 300
