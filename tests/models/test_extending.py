"""A user's own VAE: its configuration recorded by the base, trained, checkpointed, rebuilt and resumed."""
import math

import pytest
import torch
import torchbearer
from stand_ins import load_example
from torch import nn
from torchbearer import Trial

from torchbearer_vae import (
    VAE,
    AutoEncoderDataset,
    BaseVAE,
    Checkpointer,
    CheckpointError,
    ConditionalVAE,
    ConvVAE,
    TensorLoader,
    kld_loss,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
    train_val_split,
)


class TwoLayerVAE(BaseVAE):
    """A user's VAE with its own arguments: two hidden layers and dropout."""

    def __init__(self, input_shape=(1, 28, 28), latent_dim=8, *, hidden=(64, 32), dropout=0.1):
        super().__init__(input_shape, latent_dim)
        first, second = hidden
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(self.input_dim, first), nn.ReLU(), nn.Dropout(dropout),
                                     nn.Linear(first, second), nn.ReLU(), nn.Linear(second, 2 * latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, second), nn.ReLU(), nn.Linear(second, first), nn.ReLU(),
                                     nn.Dropout(dropout), nn.Linear(first, self.input_dim))

    def forward_encoder(self, x):
        return self.encoder(x).chunk(2, dim=1)

    def forward_decoder(self, z):
        return self.decoder(z)


class OtherVAE(TwoLayerVAE):
    pass


@pytest.fixture(scope='module')
def mnist_split(mnist):
    small = torch.utils.data.Subset(mnist, range(600))
    return train_val_split(AutoEncoderDataset(small), val_fraction=0.2, seed=1)


def _trial(model, train, val, callbacks, optimizer=None):
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=1e-3)
    trial = Trial(model, optimizer, model.reconstruction_loss, metrics=['loss'], callbacks=[kld_loss(), *callbacks],
                  verbose=0)
    return trial.with_generators(train, val), optimizer


def test_the_base_records_a_subclass_config_without_the_subclass_writing_anything():
    model = TwoLayerVAE(latent_dim=4, hidden=(32, 16))
    assert model.config == {'input_shape': (1, 28, 28), 'latent_dim': 4, 'hidden': (32, 16), 'dropout': 0.1}
    assert OtherVAE(dropout=0.0).config['dropout'] == 0.0  # a subclass without __init__ records its parent's
    rebuilt = type(model)(**model.config)
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in model.parameters()]
    config = model.config
    config['latent_dim'] = 99  # a copy: the model's own record is not changed through it
    assert model.config['latent_dim'] == 4


def test_a_user_vae_trains_checkpoints_and_is_rebuilt_with_identical_outputs(tmp_path, mnist_split):
    train, val = mnist_split
    model = TwoLayerVAE(latent_dim=6, hidden=(48, 24), dropout=0.2)
    trial, _ = _trial(model, TensorLoader(train, 64, shuffle=True, seed=1), TensorLoader(val, 100),
                      [Checkpointer(tmp_path / 'checkpoint.pt')])
    trial.run(2)
    rebuilt = model_from_checkpoint(tmp_path / 'checkpoint.pt', model_class=TwoLayerVAE)
    assert type(rebuilt) is TwoLayerVAE and rebuilt.config == model.config and not rebuilt.training
    x = torch.stack([val[i][0] for i in range(32)])
    model.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x)[0], model(x)[0])
        assert torch.equal(rebuilt.sample(8, generator=torch.Generator().manual_seed(0)),
                           model.sample(8, generator=torch.Generator().manual_seed(0)))


def test_a_user_vae_resumes_through_trials_exactly_as_if_never_stopped(tmp_path, mnist_split):
    train, val = mnist_split

    def resumable(loader):
        return lambda state: {'rng_state': torch.get_rng_state(), 'train_loader': loader.state_dict()}

    torch.manual_seed(3)
    straight = TwoLayerVAE(latent_dim=4, dropout=0.3)
    loader = TensorLoader(train, 64, shuffle=True, seed=2)
    _trial(straight, loader, TensorLoader(val, 100), [])[0].run(2)

    torch.manual_seed(3)
    first = TwoLayerVAE(latent_dim=4, dropout=0.3)
    loader = TensorLoader(train, 64, shuffle=True, seed=2)
    _trial(first, loader, TensorLoader(val, 100), [Checkpointer(tmp_path / 'c.pt', extra=resumable(loader))])[0].run(1)

    torch.manual_seed(12345)  # another process: nothing but the checkpoint carries over
    checkpoint = load_checkpoint(tmp_path / 'c.pt')
    resumed = model_from_checkpoint(checkpoint, model_class=TwoLayerVAE).train()
    loader = TensorLoader(train, 64, shuffle=True, seed=2)
    loader.load_state_dict(checkpoint['train_loader'])
    optimizer = torch.optim.Adam(resumed.parameters(), lr=1e-3)
    optimizer.load_state_dict(checkpoint['optimizer_state'])
    trial, _ = _trial(resumed, loader, TensorLoader(val, 100), [], optimizer=optimizer)
    trial.state[torchbearer.HISTORY] = checkpoint['history']  # torchbearer continues at epoch 1
    torch.set_rng_state(checkpoint['rng_state'])  # last: the draws of z and the dropout masks go on from here
    trial.run(2)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_user_class_needs_to_be_named_and_must_be_the_one_saved(tmp_path):
    save_checkpoint(tmp_path / 'c.pt', TwoLayerVAE(latent_dim=3))
    with pytest.raises(CheckpointError, match=r'holds a .*:TwoLayerVAE, which is not one of torchbearer_vae.s '
                                              r'models; pass model_class='):
        model_from_checkpoint(tmp_path / 'c.pt')
    with pytest.raises(CheckpointError, match=r'holds a .*:TwoLayerVAE, but model_class is .*:OtherVAE'):
        model_from_checkpoint(tmp_path / 'c.pt', model_class=OtherVAE)
    with pytest.raises(TypeError, match='model_class must be a torch.nn.Module subclass'):
        model_from_checkpoint(tmp_path / 'c.pt', model_class='TwoLayerVAE')


def test_a_class_saved_from_a_script_matches_by_its_name(tmp_path):
    model = TwoLayerVAE(latent_dim=3)
    save_checkpoint(tmp_path / 'c.pt', model)
    checkpoint = load_checkpoint(tmp_path / 'c.pt')
    checkpoint['model']['class'] = '__main__:TwoLayerVAE'  # what `python train.py` stores
    assert model_from_checkpoint(checkpoint, model_class=TwoLayerVAE).config == model.config


def test_the_package_models_are_rebuilt_by_themselves_from_their_stored_config(tmp_path):
    for model in (VAE(input_shape=(1, 8, 8), latent_dim=3, hidden_dim=16, likelihood='gaussian', sigma=0.3),
                  ConvVAE(input_shape=(3, 16, 16), latent_dim=5, hidden_dim=32, channels=(4, 8),
                          logvar_clamp=(-10.0, 5.0))):
        save_checkpoint(tmp_path / 'c.pt', model)
        stored = load_checkpoint(tmp_path / 'c.pt')['model']['class']
        assert stored == f'torchbearer_vae.models.vae:{type(model).__name__}'
        rebuilt = model_from_checkpoint(tmp_path / 'c.pt')
        assert type(rebuilt) is type(model) and rebuilt.config == model.config
        x = torch.rand((2,) + model.input_shape)
        assert torch.equal(rebuilt(x)[0], model.eval()(x)[0])


@pytest.mark.parametrize('model, stored', [
    (VAE(input_shape=(1, 8, 8), hidden_dim=16, latent_dim=3), 'torchbearer_vae.models:VAE'),
    (ConvVAE(input_shape=(1, 8, 8), hidden_dim=16, latent_dim=3), 'torchbearer_vae.models:ConvVAE'),
    (ConditionalVAE((1, 8, 8), num_classes=3, hidden_dim=16, latent_dim=3),
     'torchbearer_vae.conditional:ConditionalVAE'),
])
def test_a_checkpoint_written_by_version_0_2_still_rebuilds(tmp_path, model, stored):
    save_checkpoint(tmp_path / 'c.pt', model)
    checkpoint = load_checkpoint(tmp_path / 'c.pt')
    assert checkpoint['model']['class'] != stored  # today's module path
    checkpoint['model']['class'] = stored  # where 0.2 kept the class
    for rebuilt in (model_from_checkpoint(checkpoint), model_from_checkpoint(checkpoint, model_class=type(model))):
        assert type(rebuilt) is type(model) and rebuilt.config == model.config
        for name, value in model.state_dict().items():
            assert torch.equal(rebuilt.state_dict()[name], value)
    checkpoint['model']['class'] = stored.replace(':', '.old:')  # any other path is not the package's
    with pytest.raises(CheckpointError, match="not one of torchbearer_vae's models"):
        model_from_checkpoint(checkpoint)


def test_a_crafted_config_is_refused_before_anything_is_allocated(tmp_path):
    save_checkpoint(tmp_path / 'c.pt', VAE(input_shape=(1, 8, 8), hidden_dim=16, latent_dim=3))
    checkpoint = load_checkpoint(tmp_path / 'c.pt')
    checkpoint['model']['config']['hidden_dim'] = 10 ** 9  # 784 * 1e9 floats if it were built: refused first
    with pytest.raises(CheckpointError, match=r'configuration and weights disagree \(fc1.weight: configuration '
                                              r'\(1000000000, 64\) vs stored \(16, 64\)'):
        model_from_checkpoint(checkpoint)
    checkpoint['model']['config'] = {'input_shape': [1, 8, 8], 'latent_dim': 3, 'hidden_dim': 16, 'depth': 3}
    with pytest.raises(CheckpointError, match=r"configuration does not build a VAE: .*'depth'"):
        model_from_checkpoint(checkpoint)


def test_a_config_of_other_than_plain_values_keeps_the_weights_and_says_how_to_rebuild(tmp_path):
    class Wrapped(BaseVAE):
        def __init__(self, network, latent_dim=2):
            super().__init__(4, latent_dim)
            self.network = network

        def forward_encoder(self, x):
            return self.network(x).chunk(2, dim=1)

        def forward_decoder(self, z):
            return z.repeat(1, 2)

    model = Wrapped(nn.Linear(4, 4))
    with pytest.warns(UserWarning, match=r"config\['network'\] is a torch.nn.modules.linear.Linear.*override "
                                         r'Wrapped.config'):
        save_checkpoint(tmp_path / 'c.pt', model)
    checkpoint = load_checkpoint(tmp_path / 'c.pt')
    assert torch.equal(checkpoint['model_state']['network.weight'], model.network.weight)
    with pytest.raises(CheckpointError, match='holds no configuration .*load_model_state'):
        model_from_checkpoint(checkpoint, model_class=Wrapped)


def test_extra_values_are_checked_when_saved_not_when_loaded(tmp_path):
    import numpy as np

    model = VAE(input_shape=4, hidden_dim=4, latent_dim=2)
    with pytest.raises(TypeError, match=r"save_checkpoint: rng\[1\] is a numpy.ndarray, not a plain value.*"
                                        r'weights_only=True'):
        save_checkpoint(tmp_path / 'c.pt', model, rng=[1, np.zeros(3)])
    with pytest.raises(ValueError, match="'model_state' is written by save_checkpoint itself"):
        save_checkpoint(tmp_path / 'c.pt', model, model_state={})
    assert not (tmp_path / 'c.pt').exists()  # nothing written
    save_checkpoint(tmp_path / 'c.pt', model, rng=[1, torch.zeros(3)], table={'a': (1.5, None, 'x', True)})
    assert load_checkpoint(tmp_path / 'c.pt')['table'] == {'a': [1.5, None, 'x', True]}


@pytest.mark.parametrize('damage, message', [
    (lambda c: c.pop('model'), "'model' entry is missing"),
    (lambda c: c.update(model={'config': {}}), "'model' entry is missing or holds no class name"),
    (lambda c: c.update(model_state={'fc1.weight': [1.0]}), "'model_state' is missing or does not map"),
    (lambda c: c.update(optimizer_state=[1, 2]), "'optimizer_state' is neither a dict nor None"),
])
def test_a_checkpoint_with_missing_or_wrong_typed_entries_is_named_not_crashed(tmp_path, damage, message):
    save_checkpoint(tmp_path / 'c.pt', VAE(input_shape=4, hidden_dim=4, latent_dim=2))
    checkpoint = torch.load(tmp_path / 'c.pt', weights_only=True)
    damage(checkpoint)
    torch.save(checkpoint, tmp_path / 'c.pt')
    with pytest.raises(CheckpointError, match=f'damaged torchbearer_vae checkpoint: its {message}'):
        load_checkpoint(tmp_path / 'c.pt')


def test_channels_last_images_are_refused_naming_both_shapes_not_scrambled():
    model = ConvVAE(input_shape=(3, 32, 32))
    with pytest.raises(ValueError, match=r'ConvVAE\(input_shape=\(3, 32, 32\)\) got inputs of shape \(2, 32, 32, 3\)'
                                         r'.*channels-last.*permute\(0, 3, 1, 2\)'):
        model.encode(torch.rand(2, 32, 32, 3))
    x = torch.rand(2, 3, 32, 32)
    assert model.encode(x)[0].shape == (2, 20) and model.encode(x.flatten(1))[0].shape == (2, 20)
    grey = VAE()
    assert torch.equal(grey.eval().encode(torch.ones(2, 28, 28))[0], grey.encode(torch.ones(2, 1, 28, 28))[0])
    with pytest.raises(ValueError, match=r'got inputs of shape \(2, 14, 56\)'):
        grey.encode(torch.rand(2, 14, 56))  # 784 values per image, but not a 28x28 image
    assert math.prod(model.input_shape) == model.input_dim


@pytest.mark.slow
def test_the_documented_custom_vae_trains_is_rebuilt_from_its_checkpoint_and_samples(mnist_dir, tmp_path):
    import numpy as np
    from PIL import Image

    example = load_example('custom_vae')
    history, rebuilt = example.main(['--data-dir', mnist_dir, '--limit', '1000', '--epochs', '2', '--results',
                                     str(tmp_path), '--verbose', '0'])
    assert history[1]['val_loss'] < history[0]['val_loss']  # it learns
    checkpoint = load_checkpoint(tmp_path / 'checkpoint.pt')
    assert checkpoint['model']['class'].endswith(':DeepVAE') and rebuilt.config == checkpoint['model']['config']
    assert rebuilt.config['hidden'] == (256, 128) and not rebuilt.training
    for name, value in rebuilt.state_dict().items():
        assert torch.equal(value, checkpoint['model_state'][name]), name
    samples = np.asarray(Image.open(tmp_path / 'rebuilt_samples.png').convert('L'), dtype=float)
    assert samples.shape == (2 + 8 * 30, 2 + 8 * 30)  # 64 digits, 28x28 with 2-pixel padding
    assert samples.std() > 20  # strokes on a dark background, not a flat grey


def test_the_documented_mmd_is_zero_for_prior_draws_and_grows_with_a_shift():
    example = load_example('custom_divergence')
    generator = torch.Generator().manual_seed(0)
    prior, other = torch.randn(400, 8, generator=generator), torch.randn(400, 8, generator=generator)
    same = example.mmd(prior, other).item()
    shifted = example.mmd(prior + 1.0, other).item()
    assert abs(same) < 0.01 and shifted > 10 * abs(same) and shifted > 0.05


@pytest.mark.slow
def test_the_documented_mmd_divergence_is_added_with_its_schedule_and_shown_as_a_metric(mnist_dir):
    example = load_example('custom_divergence')
    history, callback = example.main(['--data-dir', mnist_dir, '--limit', '1000', '--epochs', '2', '--verbose', '0',
                                      '--weight', '50', '--warmup-steps', '10'])
    steps = math.ceil(900 / 128)
    assert callback.state_dict() == {'step': 2 * steps, 'epoch': 2}  # the schedule's position, resumable
    last = history[-1]
    assert last['val_mmd'] > 0
    # validation used the fully warmed-up weight: loss = recon + KL + 50 x MMD, batch by batch and so on average
    assert last['val_loss'] == pytest.approx(last['val_recon'] + last['val_kl'] + 50 * last['val_mmd'], rel=1e-4)
    first = history[0]  # during the first epoch the warm-up was still ramping: less than the full weight
    assert first['loss'] < first['recon'] + first['kl'] + 50 * first['mmd']


def test_inputs_of_the_wrong_kind_say_how_to_convert_them():
    import numpy as np

    model = VAE()
    with pytest.raises(TypeError, match=r'floating point images, got torch.uint8; convert uint8 images with '
                                        r'x.float\(\) / 255'):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r'needs a torch tensor of images, got a .*ndarray.*torch.as_tensor'):
        model(np.zeros((2, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r'looks channels-last: pass \(3, 32, 32\)'):
        ConvVAE(input_shape=(32, 32, 3))
