import importlib
import warnings

import pytest
import torchbearer
import torchbearer.callbacks
import torchbearer.cv_utils
from torchbearer.state import StateKey

import torchbearer_vae
from torchbearer_vae import registry

REGISTERED = [
    (torchbearer, 'MU', 'MU'),
    (torchbearer, 'LOGVAR', 'LOGVAR'),
    (torchbearer, 'KL', 'KL'),
    (torchbearer, 'RECON', 'RECON'),
    (torchbearer, 'GLOBAL_STEP', 'GLOBAL_STEP'),
    (torchbearer, 'GLOBAL_EPOCH', 'GLOBAL_EPOCH'),
    (torchbearer, 'LABEL', 'LABEL'),
    (torchbearer.callbacks, 'ReconstructionSaver', 'ReconstructionSaver'),
    (torchbearer.callbacks, 'SampleSaver', 'SampleSaver'),
    (torchbearer.callbacks, 'LatentTraversal', 'LatentTraversal'),
    (torchbearer.callbacks, 'Interpolation', 'Interpolation'),
    (torchbearer.callbacks, 'NaNGuard', 'NaNGuard'),
    (torchbearer.callbacks, 'kld_loss', 'kld_loss'),
    (torchbearer.callbacks, 'divergence', 'divergence'),
    (torchbearer.cv_utils, 'AutoEncoderDataset', 'AutoEncoderDataset'),
]


@pytest.mark.parametrize('name, key', [('MU', 'mu'), ('LOGVAR', 'logvar'), ('KL', 'kl'), ('RECON', 'recon'),
                                       ('GLOBAL_STEP', 'global_step')])
def test_keys_are_torchbearer_state_keys_with_plain_names(name, key):
    assert isinstance(getattr(torchbearer_vae, name), StateKey) and getattr(torchbearer_vae, name).key == key


@pytest.mark.parametrize('module, name, ours', REGISTERED)
def test_registered_into_torchbearer_namespace(module, name, ours):
    assert getattr(module, name) is getattr(torchbearer_vae, ours)


def test_registration_is_idempotent_and_reload_creates_no_new_key():
    keys_before = list(torchbearer.state.__keys__)
    mu = torchbearer_vae.MU
    torchbearer_vae.register()
    importlib.reload(torchbearer_vae.state)
    importlib.reload(torchbearer_vae)
    assert torchbearer_vae.MU is mu and torchbearer.MU is mu
    assert torchbearer.state.__keys__ == keys_before
    assert 'mu_1' not in torchbearer.state.__keys__


@pytest.mark.slow
def test_reloaded_classes_replace_our_older_ones():
    # In a subprocess: reloading creates new classes, which would leak into the other tests.
    import subprocess
    import sys
    code = (
        'import importlib, torchbearer, torchbearer_vae\n'
        'old = torchbearer.callbacks.ReconstructionSaver\n'
        'importlib.reload(torchbearer_vae.callbacks.pictures)\n'
        'importlib.reload(torchbearer_vae.callbacks)\n'
        'importlib.reload(torchbearer_vae)\n'
        'assert torchbearer.callbacks.ReconstructionSaver is torchbearer_vae.ReconstructionSaver is not old\n'
    )
    result = subprocess.run([sys.executable, '-W', 'error', '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_never_overwrites_what_torchbearer_already_has(monkeypatch):
    theirs = object()
    monkeypatch.setattr(torchbearer.callbacks, 'kld_loss', theirs)
    with pytest.warns(UserWarning, match='torchbearer.callbacks.kld_loss already exists'):
        registry.register()
    assert torchbearer.callbacks.kld_loss is theirs


def test_registration_of_a_clean_namespace_is_silent():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        registry.register()


def test_every_public_name_is_documented_and_exported():
    for name in torchbearer_vae.__all__:
        assert hasattr(torchbearer_vae, name), name
        if name != '__version__' and not isinstance(getattr(torchbearer_vae, name), StateKey):
            assert getattr(torchbearer_vae, name).__doc__, f'{name} has no docstring'


@pytest.mark.slow
def test_import_is_side_effect_light(tmp_path):
    import subprocess
    import sys
    code = ('import sys, time; t = time.time(); import torchbearer_vae; '
            'assert "torchvision" not in sys.modules, "torchvision imported eagerly"; print(time.time() - t)')
    result = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []  # no file written


def test_install_requires_covers_what_torchbearer_imports_undeclared_and_what_draws_loss_png():
    # torchbearer 0.5.5 imports `packaging` without declaring it; a base `pip install -e .` must still import.
    # README's main job writes loss.png: what draws it (matplotlib) is installed with the command. numpy,
    # Pillow and tqdm are imported by the package itself.
    import configparser
    import pathlib
    import re
    config = configparser.ConfigParser()
    config.read(pathlib.Path(__file__).parents[1] / 'setup.cfg')
    requires = {re.split(r'[<>=!~; ]', line.strip())[0] for line in config['options']['install_requires'].splitlines()}
    assert {'torch', 'torchvision', 'torchbearer', 'packaging', 'matplotlib', 'numpy', 'Pillow', 'tqdm'} <= requires
