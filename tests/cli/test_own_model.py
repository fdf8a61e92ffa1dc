"""``--model module:Class``: the user's own BaseVAE subclass through every command, imported only when named."""
import os
import sys
import textwrap

import pytest
import torch
from stand_ins import run_cli

from torchbearer_vae.cli.model import build_model, import_model_class
from torchbearer_vae.errors import CommandError

MODULE = textwrap.dedent('''
    from torch import nn
    from torchbearer_vae import BaseVAE


    class TinyVAE(BaseVAE):
        def __init__(self, input_shape, latent_dim=2, *, width=8, likelihood='bernoulli', sigma=0.1):
            super().__init__(input_shape, latent_dim, likelihood=likelihood, sigma=sigma)
            self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(self.input_dim, width), nn.ReLU(),
                                         nn.Linear(width, 2 * latent_dim))
            self.decoder = nn.Linear(latent_dim, self.input_dim)

        def forward_encoder(self, x):
            return self.encoder(x).chunk(2, dim=1)

        def forward_decoder(self, z):
            return self.decoder(z)


    class Plain(nn.Module):
        pass


    NOT_A_CLASS = 3
''')


@pytest.fixture
def module(tmp_path, monkeypatch):
    """A module of the user's, in its own folder, importable as ``name`` (a new name for each test)."""
    folder = tmp_path / 'code'
    folder.mkdir()
    name = f'users_models_{abs(hash(str(tmp_path)))}'
    (folder / f'{name}.py').write_text(MODULE)
    monkeypatch.syspath_prepend(str(folder))
    yield name
    sys.modules.pop(name, None)


def test_the_class_is_imported_and_checked_in_one_line(module, tmp_path):
    assert import_model_class(f'{module}:TinyVAE').__name__ == 'TinyVAE'
    for path, expected in ((f'{module}:Plain', 'the class Plain, not a BaseVAE subclass'),
                           (f'{module}:NOT_A_CLASS', 'holds a int under'), (f'{module}:Missing', 'holds nothing'),
                           ('no_such_module_here:VAE', "no module named 'no_such_module_here' (Python looks in the "
                                                       "current folder, PYTHONPATH")):
        with pytest.raises(CommandError, match='^--model ') as refused:
            import_model_class(path)
        assert expected in str(refused.value) and '\n' not in str(refused.value)
    broken = tmp_path / 'code' / 'broken_models_module.py'
    broken.write_text('raise RuntimeError("half-written")\n')
    with pytest.raises(CommandError, match='importing broken_models_module failed: RuntimeError: half-written'):
        import_model_class('broken_models_module:X')


def test_the_constructor_gets_the_runs_arguments_and_its_refusal_is_one_line(module):
    options = {'model': f'{module}:TinyVAE', 'latent_dim': 3, 'hidden_dim': None, 'likelihood': 'bernoulli',
               'sigma': 0.1, 'model_args': {'width': 5}}
    model = build_model(options, (1, 8, 8))
    assert model.config == {'input_shape': (1, 8, 8), 'latent_dim': 3, 'width': 5, 'likelihood': 'bernoulli',
                            'sigma': 0.1}
    with pytest.raises(CommandError, match=r"TinyVAE\(\(1, 8, 8\), latent_dim=3, .*depth=2\) was refused: "
                                           r"TypeError: .*unexpected keyword argument 'depth'"):
        build_model({**options, 'model_args': {'depth': 2}}, (1, 8, 8))
    with pytest.raises(CommandError, match='was refused: TypeError: .*hidden_dim'):
        build_model({**options, 'hidden_dim': 16}, (1, 8, 8))


def cli(*args, folder):
    """The command in a child process whose PYTHONPATH holds the user's code, from a folder without it."""
    env = dict(os.environ, PYTHONPATH=str(folder))
    return run_cli(*args, env=env, cwd=str(folder.parent))


@pytest.mark.slow
def test_the_users_class_goes_through_every_command(module, tmp_path, mnist_dir):
    folder, out = tmp_path / 'code', tmp_path / 'run'
    own = f'{module}:TinyVAE'
    checkpoint = out / 'checkpoint.pt'
    data = ['--dataset', f'idx:{mnist_dir}', '--limit', '300', '--quiet']
    result = cli('train', *data, '--model', own, '--model-arg', 'width=12', '--epochs', '1', '--out', out,
                 folder=folder)
    assert result.returncode == 0, result.stderr
    saved = torch.load(checkpoint, weights_only=True)
    assert saved['model']['class'] == own and saved['model']['config']['width'] == 12
    assert saved['options']['model'] == own and saved['options']['model_args'] == {'width': 12}
    assert '[model]\nclass = "' + own + '"\nwidth = 12\n' in (out / 'config.toml').read_text()
    for command in (['sample'], ['reconstruct'], ['evaluate'], ['train', '--resume', '--epochs', '2']):
        where = ['--out', out] if command[0] == 'train' else ['--checkpoint', checkpoint]
        refused = cli(*command, *where, folder=folder)  # the class named in the file is not imported by itself
        assert refused.returncode == 2 and f'add --model {own}' in refused.stderr.strip().splitlines()[-1]
        done = cli(*command, *where, '--model', own, folder=folder)
        assert done.returncode == 0, done.stderr
    assert (out / 'samples.png').exists() and (out / 'recon.png').exists() and (out / 'evaluation.json').exists()
    assert torch.load(checkpoint, weights_only=True)['epoch'] == 2
    for args, expected in ((['--model', f'{module}:Plain'], 'not a BaseVAE subclass'),
                           (['--model', 'nowhere_module:X'], "no module named 'nowhere_module'"),
                           (['--model', own, '--model-arg', 'depth=3'], "unexpected keyword argument 'depth'"),
                           (['--model', own, '--model-arg', 'latent_dim=3'], 'use --latent-dim'),
                           (['--model', own, '--conditional'], 'there is no conditional --model')):
        refused = cli('train', *data, *args, '--out', tmp_path / 'other', folder=folder)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 2 and len(lines) == 1 and expected in lines[0], refused.stderr
