"""The options of ``train``, defined once in cli/options.py: the parser, the defaults, the checkpoint and --resume."""
import argparse
import dataclasses
import os

import pytest
import torch

from torchbearer_vae import load_checkpoint
from torchbearer_vae.cli import main
from torchbearer_vae.cli.main import build_parser
from torchbearer_vae.cli.model import MODELS, build_model
from torchbearer_vae.cli.options import (
    DEFAULTS,
    IMPLIED,
    REQUIRED,
    REQUIRED_OPTIONS,
    RUN_OPTIONS,
    TrainOptions,
    add_option,
    check_saved_options,
    option,
    run_options,
    saved_options,
)
from torchbearer_vae.cli.run_folder import PICTURE_EXTENSIONS, output_file
from torchbearer_vae.errors import CommandError
from torchbearer_vae.losses import LIKELIHOODS

FIELDS = {field.name: field for field in dataclasses.fields(TrainOptions)}
# A value other than the default for every run option, as typed and as stored (one command line: they fit together).
GIVEN = {
    'dataset': ('folder:images', 'folder:' + os.path.abspath('images')),
    'data_dir': ('elsewhere', os.path.abspath('elsewhere')),
    'limit': ('5', 5),
    'image_size': ('16', 16),
    'channels': ('3', 3),
    'model': ('mlp', 'mlp'),
    'conditional': (None, True),
    'likelihood': ('gaussian', 'gaussian'),
    'sigma': ('0.2', 0.2),
    'batch_size': ('7', 7),
    'lr': ('0.01', 0.01),
    'latent_dim': ('3', 3),
    'hidden_dim': ('9', 9),
    'beta': ('0.5', 0.5),
    'val_fraction': ('0.2', 0.2),
    'seed': ('3', 3),
    'model_args': ('width=8', {'width': 8}),
    'kl_warmup': ('2.5', 2.5),
    'kl_cycles': ('2:6', '2:6'),
    'kl_cycle_ratio': ('0.25', 0.25),
    'kl_capacity': ('25:10', '25:10'),
    'free_bits': ('0.5', 0.5),
    'codebook_size': ('32', 32),
    'code_dim': ('8', 8),
}
# The options of GIVEN that cannot all go together in one new run (one schedule at most; a capacity replaces beta
# and free bits): a new run of every option leaves these out.
EXCLUSIVE = ('kl_warmup', 'kl_capacity')
# The options of GIVEN of a model with a codebook (--model vqvae), which has no --latent-dim and no KL term.
QUANTIZED = ('codebook_size', 'code_dim')


def flag(name):
    return FIELDS[name].metadata['flag'] or '--' + name.replace('_', '-')


def given_args(*names):
    """``train`` with the options ``names`` given as in GIVEN."""
    argv = ['train']
    for name in names:
        text, _ = GIVEN[name]
        argv += [flag(name)] if text is None else [flag(name), text]
    return argv


def parse(argv):
    return build_parser().parse_args(argv)


def test_every_option_is_in_the_train_parser_with_its_default(capsys):
    args = vars(parse(['train']))
    assert set(FIELDS) <= set(args)
    for name, field in FIELDS.items():  # a run option reads None when not given: --resume compares what was given
        assert args[name] == (None if name in RUN_OPTIONS else field.default), name
    with pytest.raises(SystemExit):
        main(['train', '--help'])
    text = ' '.join(capsys.readouterr().out.split())
    for name in FIELDS:
        assert f'{flag(name)} ' in text, name


def test_the_help_shows_each_default_from_the_one_definition():
    parser = argparse.ArgumentParser()
    for name, field in FIELDS.items():
        action = add_option(parser, name)
        if field.metadata['switch'] or field.default is None:
            continue
        shown = action.help.rsplit('default: ', 1)[1].rstrip(')')
        assert type(field.default)(shown) == field.default, (name, action.help)  # 1e-3 is 0.001
    # the other commands' options of the same name: their own default, the same type and help
    other = argparse.ArgumentParser()
    assert add_option(other, 'seed', default=0).help == 'default: 0' and other.parse_args([]).seed == 0
    assert add_option(other, 'dataset', shown="the run's").help.endswith("(default: the run's)")
    assert parse(['evaluate', '--checkpoint', 'c.pt']).batch_size == 500


def test_a_new_run_takes_the_defaults_and_every_option_given():
    assert set(GIVEN) == set(RUN_OPTIONS)  # a new run option needs an example here
    defaults = run_options(parse(['train']), None)
    assert list(defaults) == list(RUN_OPTIONS)
    assert defaults == {**DEFAULTS, 'data_dir': os.path.abspath(DEFAULTS['data_dir'])}
    together = [name for name in RUN_OPTIONS if name not in EXCLUSIVE + QUANTIZED]
    options = run_options(parse(given_args(*together)), None)
    assert options == {name: stored if name in together else DEFAULTS[name] for name, (_, stored) in GIVEN.items()}
    for name in EXCLUSIVE:  # each alone
        assert run_options(parse(given_args(name)), None)[name] == GIVEN[name][1]
    quantized = run_options(parse(given_args(*QUANTIZED) + ['--model', 'vqvae']), None)
    assert {name: quantized[name] for name in QUANTIZED} == {name: GIVEN[name][1] for name in QUANTIZED}


def test_the_stored_options_round_trip_through_the_checkpoint():
    together = [name for name in RUN_OPTIONS if name not in EXCLUSIVE + QUANTIZED]
    options = run_options(parse(given_args(*together)), None)
    checkpoint = {'options': options}
    assert saved_options(checkpoint) == options
    check_saved_options(saved_options(checkpoint), 'checkpoint.pt')
    assert run_options(parse(['train', '--resume']), checkpoint) == options  # nothing given: the run's
    assert run_options(parse(given_args(*together) + ['--resume']), checkpoint) == options  # the same given


@pytest.mark.parametrize('name', sorted(GIVEN))
def test_resume_refuses_each_run_option_changed(name):
    checkpoint = {'options': run_options(parse(['train']), None)}
    with pytest.raises(CommandError, match=f'--resume continues the run .*; got {flag(name)} .* \\(the run used '):
        run_options(parse(given_args(name) + ['--resume']), checkpoint)


def test_a_checkpoint_without_the_later_options_reads_their_implied_values():
    assert set(REQUIRED_OPTIONS) | set(IMPLIED) == set(RUN_OPTIONS) and not set(REQUIRED_OPTIONS) & set(IMPLIED)
    assert IMPLIED == {'model': 'mlp', 'likelihood': 'bernoulli', 'sigma': 0.1, 'image_size': None,
                       'channels': None, 'conditional': False, 'model_args': None, 'kl_warmup': None,
                       'kl_cycles': None, 'kl_cycle_ratio': 0.5, 'kl_capacity': None,
                       'free_bits': 0.0, 'codebook_size': None, 'code_dim': None}  # what runs before each
    # option used
    old = {name: value for name, value in run_options(parse(['train']), None).items() if name in REQUIRED_OPTIONS}
    old['hidden_dim'] = 400  # settled before it was stored
    options = saved_options({'options': old})
    assert options == {**old, **IMPLIED}
    check_saved_options(options, 'checkpoint.pt')  # a resumed run takes them
    assert saved_options({}) == IMPLIED  # a checkpoint without options (save_checkpoint's): sample and evaluate


def test_a_run_option_must_say_what_an_older_checkpoint_means():
    with pytest.raises(TypeError, match='implied='):
        option(1, help='', check=lambda name, value: None)
    assert option(1, help='', check=lambda name, value: None, implied=REQUIRED).metadata['implied'] is REQUIRED
    assert option(1, help='', run=False).metadata['run'] is False


def test_the_model_and_likelihood_choices_come_from_their_one_definitions():
    parser = argparse.ArgumentParser()
    model, likelihood, latent_dim, hidden_dim = (add_option(parser, name)
                                                 for name in ('model', 'likelihood', 'latent_dim', 'hidden_dim'))
    assert model.metavar == '{' + ','.join(MODELS) + ',module:Class}' and tuple(likelihood.choices) == LIKELIHOODS
    for name, choice in MODELS.items():
        assert f'{name}: {choice.about}' in model.help
        assert f'{choice.latent_dim} ({name})' in latent_dim.help or choice.latent_dim is None
        assert (f'{choice.hidden_dim} ({name})' in hidden_dim.help) == (choice.hidden_dim is not None), name
        assert parse(['train', '--model', name]).model == name
        options = {'model': name, 'latent_dim': 2, 'hidden_dim': choice.hidden_dim, 'likelihood': 'bernoulli',
                   'sigma': 0.1, 'codebook_size': 5, 'code_dim': 3}
        built = build_model(options, (1, 8, 8), 'meta')
        assert type(built) is choice.model_class and getattr(built, 'hidden_dim', None) == choice.hidden_dim
        if choice.latent_argument is None:  # a codebook: --codebook-size codes of --code-dim values
            assert (built.quantizer.num_codes, built.quantizer.code_dim) == (5, 3)
        else:  # --latent-dim: latent_dim, or the values per position
            assert getattr(built, choice.latent_argument) == 2


def test_picture_names_are_the_image_files_a_folder_reads_but_pgm(tmp_path):
    for extension in PICTURE_EXTENSIONS + tuple(extension.upper() for extension in PICTURE_EXTENSIONS):
        path = str(tmp_path / f'out{extension}')
        assert output_file(path, default_name='s.png', beside='c.pt', kind='image') == path
    for name in ('out.pgm', 'out.txt', 'out'):  # .pgm: the colour grid would be a PPM under a PGM name
        with pytest.raises(CommandError, match='is not an image file name'):
            output_file(str(tmp_path / name), default_name='s.png', beside='c.pt', kind='image')


@pytest.mark.slow
def test_a_checkpoint_from_before_the_later_options_resumes_and_evaluates(tmp_path, capsys):
    """A real run whose checkpoint is made to lack every option added later: it resumes and evaluates with them."""
    out = tmp_path / 'run'
    assert main(['train', '--dataset', 'digits', '--epochs', '1', '--latent-dim', '2', '--hidden-dim', '8',
                 '--out', str(out), '--quiet']) == 0
    written = load_checkpoint(out / 'checkpoint.pt')['options']
    assert list(written) == list(RUN_OPTIONS)
    checkpoint = torch.load(out / 'checkpoint.pt', weights_only=True)
    checkpoint['options'] = {name: value for name, value in checkpoint['options'].items() if name in REQUIRED_OPTIONS}
    torch.save(checkpoint, out / 'checkpoint.pt')
    assert main(['train', '--resume', '--epochs', '2', '--out', str(out), '--quiet']) == 0, capsys.readouterr().err
    resumed = load_checkpoint(out / 'checkpoint.pt')
    assert resumed['epoch'] == 2 and resumed['options'] == {**written, **IMPLIED}
    assert main(['evaluate', '--checkpoint', str(out / 'checkpoint.pt'), '--out', str(tmp_path / 'e.json')]) == 0
    assert (tmp_path / 'e.json').exists()
