"""The picture callbacks as torchbearer ImagingCallbacks: builders, phases read from ``state[torchbearer.DATA]``,
a picture of one's own through the one public hook ``draw``, ``torchbearer_vae.MakeGrid``, whole-shape checks
and the docs' custom-picture example, in real Trials."""
import os

import numpy as np
import pytest
import torch
import torchbearer
from PIL import Image
from stand_ins import PAD, ConstantPosterior, ProbeVAE, Scale, as_pixels, load_example, read_png, tile, zero_loss
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchbearer import Trial
from torchbearer.callbacks.imaging.imaging import ImagingCallback

import torchbearer_vae
from torchbearer_vae import (
    VAE,
    AutoEncoderDataset,
    ConditionalVAE,
    Interpolation,
    LatentTraversal,
    PictureSaver,
    ReconstructionSaver,
    SampleSaver,
    TensorLoader,
    kld_loss,
)
from torchbearer_vae.callbacks.imaging import MakeGrid
from torchbearer_vae.errors import MissingStateError


def close(a, b):
    """Equal to within one grey level (torchbearer's to_file truncates x * 255 where save_image rounds)."""
    return a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 1


def loader(images, batch_size=4):
    return DataLoader(TensorDataset(images, images), batch_size=batch_size)


def trial_of(callbacks, model=None, lr=0.0):
    model = model or Scale()
    return Trial(model, torch.optim.SGD(model.parameters(), lr=lr), zero_loss, callbacks=callbacks, verbose=0)


def digits(mnist, start, count):
    return torch.stack([mnist[i][0] for i in range(start, start + count)])


# -- torchbearer's imaging API --

def test_every_picture_callback_is_an_imaging_callback_whose_builders_return_it(tmp_path):
    key = torchbearer.state_key('a_picture')
    builders = [lambda saver: saver.to_file(str(tmp_path / 'x_{epoch}.png')), lambda saver: saver.to_state(key),
                lambda saver: saver.to_pyplot(show=False), lambda saver: saver.to_visdom(),
                lambda saver: saver.with_handler(lambda image, index, state: None, index=0),
                lambda saver: saver.on_train(), lambda saver: saver.on_val(), lambda saver: saver.on_test()]
    for saver in (ReconstructionSaver(folder=tmp_path), SampleSaver(folder=tmp_path), LatentTraversal(folder=tmp_path),
                  Interpolation(folder=tmp_path)):
        assert isinstance(saver, ImagingCallback) and isinstance(saver, PictureSaver)
        for build in builders:
            assert build(saver) is saver
    assert os.listdir(tmp_path) == []  # building writes nothing


def test_users_epoch_templates_work_and_pictures_can_count_epochs_from_1(tmp_path):
    images = torch.rand(6, 1, 8, 8)
    savers = [ReconstructionSaver(folder=tmp_path, filename='x_{epoch}.png', num_images=2),  # torchbearer's 0, 1
              ReconstructionSaver(folder=tmp_path, filename='padded_{epoch:03d}.png', num_images=2),
              SampleSaver(folder=tmp_path, filename='s_{epoch:03d}.png', num_images=2).number_epochs_from(1)]
    assert savers[2].first_epoch == 1 and savers[0].first_epoch == 0
    trial_of(savers, model=ProbeVAE()).with_generators(train_generator=loader(images[:, :, :3, :3]),
                                                      val_generator=loader(images[:, :, :3, :3])).run(2)
    assert sorted(os.listdir(tmp_path)) == ['padded_000.png', 'padded_001.png', 's_001.png', 's_002.png',
                                            'x_0.png', 'x_1.png']
    with pytest.raises(ValueError, match='first must be an int >= 0'):
        SampleSaver(folder=tmp_path).number_epochs_from(-1)


def test_to_file_and_to_state_receive_the_picture_the_default_file_holds(tmp_path):
    images = torch.rand(6, 1, 8, 8)
    key = torchbearer.state_key('reconstruction_grid')
    saver = ReconstructionSaver(folder=tmp_path / 'ours', num_images=3).to_file(str(tmp_path / 'theirs_{epoch}.png'))
    seen = []
    trial = trial_of([saver.to_state(key), torchbearer.callbacks.on_end_epoch(lambda state: seen.append(state[key]))])
    trial.with_generators(train_generator=loader(images), val_generator=loader(images)).run(1)
    ours, theirs = Image.open(tmp_path / 'ours' / 'reconstruction_0.png'), Image.open(tmp_path / 'theirs_0.png')
    assert ours.mode == 'L' and theirs.mode == 'RGB'  # torchbearer's to_file writes make_grid's three channels
    assert close(np.asarray(ours.convert('RGB')), np.asarray(theirs))
    assert np.array_equal(as_pixels(seen[0].unsqueeze(0))[0], np.asarray(ours.convert('RGB')))
    assert np.array_equal(tile(read_png(tmp_path / 'ours' / 'reconstruction_0.png'), 1, 2, 8, 8),
                          as_pixels(images[2:3] * 0.5)[0])


def test_folder_none_writes_no_file_and_the_handlers_still_get_the_picture(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    received = []
    saver = SampleSaver(folder=None, num_images=4, nrow=2).with_handler(lambda image, i, state: received.append(image))
    model = ProbeVAE()
    trial_of([saver], model=model).with_train_generator(loader(torch.rand(4, 1, 3, 3))).run(2)
    assert os.listdir(tmp_path) == [] and len(received) == 2
    assert received[0].shape == (3, PAD + 2 * 5, PAD + 2 * 5)
    assert saver.save(model) is None and len(received) == 3


# -- phases: state[torchbearer.DATA] decides --

def vae_trial(callbacks, mnist):
    """A small VAE that learns (lr > 0) with train, validation and test data: three different slices of MNIST."""
    model = VAE(hidden_dim=16, latent_dim=2)
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=1e-2), nn.BCELoss(reduction='sum'),
                  callbacks=[kld_loss()] + callbacks, verbose=0)
    data = digits(mnist, 0, 16), digits(mnist, 100, 8), digits(mnist, 200, 8)
    trial.with_generators(loader(data[0]), val_generator=loader(data[1]), test_generator=loader(data[2]))
    return trial, data


def test_decode_images_is_the_hook_a_picture_of_ones_own_decodes_with():
    model = VAE((1, 8, 8), hidden_dim=16, latent_dim=2).eval()
    z = torch.randn(5, 2)
    saver = PictureSaver(folder=None, output_transform=lambda images: 1 - images)
    images = saver.decode_images(model, z)
    assert images.shape == (5, 1, 8, 8) and images.device.type == 'cpu'
    with torch.no_grad():
        assert torch.equal(images, 1 - model.decode(z))  # output_transform applied
    flat = PictureSaver(folder=None, image_shape=(1, 4, 16)).decode_images(model, z)
    assert flat.shape == (5, 1, 4, 16)  # image_shape decides the shape
    conditional = ConditionalVAE((1, 8, 8), num_classes=3, hidden_dim=16, latent_dim=2).eval()
    labels = torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        expected = conditional.decode(z, labels)
    assert torch.equal(PictureSaver(folder=None).decode_images(conditional, z, labels), expected)
    with pytest.raises(ValueError, match='cannot be shown as images of shape'):
        PictureSaver(folder=None, image_shape=(1, 3, 3)).decode_images(model, z)


def test_evaluate_on_test_data_leaves_the_validation_pictures_alone(tmp_path, mnist):
    trial, (_, val, _) = vae_trial([ReconstructionSaver(folder=tmp_path, num_images=4),
                                    SampleSaver(folder=tmp_path, num_images=4, nrow=2)], mnist)
    trial.run(2)
    files = sorted(os.listdir(tmp_path))
    assert files == ['reconstruction_0.png', 'reconstruction_1.png', 'samples_0.png', 'samples_1.png']
    before = {name: (tmp_path / name).read_bytes() for name in files}
    assert before['samples_0.png'] != before['samples_1.png']  # the model changed: a redraw would show

    trial.evaluate(data_key=torchbearer.TEST_DATA)  # runs as epoch 0, with the test data in the validation hooks
    assert sorted(os.listdir(tmp_path)) == files
    assert all((tmp_path / name).read_bytes() == content for name, content in before.items())
    grid = read_png(tmp_path / 'reconstruction_0.png')
    for column in range(4):  # still the validation digits on top
        assert np.array_equal(tile(grid, 0, column, 28, 28), as_pixels(val[column:column + 1])[0])


def test_on_test_draws_the_test_images_in_evaluate_only(tmp_path, mnist):
    saver = ReconstructionSaver(folder=tmp_path, filename='test_{epoch}.png', num_images=4).on_test()
    trial, (_, _, test) = vae_trial([saver], mnist)
    trial.run(1)
    assert os.listdir(tmp_path) == []  # neither training nor validation data
    trial.evaluate(data_key=torchbearer.TEST_DATA)
    grid = read_png(tmp_path / 'test_0.png')
    for column in range(4):
        assert np.array_equal(tile(grid, 0, column, 28, 28), as_pixels(test[column:column + 1])[0])


def test_on_train_and_on_val_draw_at_the_end_of_each_of_their_phases(tmp_path):
    train, val = torch.rand(6, 1, 4, 4), torch.rand(6, 1, 4, 4)
    received = []
    saver = ReconstructionSaver(folder=tmp_path, num_images=2).on_train().on_val().with_handler(
        lambda image, index, state: received.append((state[torchbearer.DATA], image)))
    trial_of([saver]).with_generators(train_generator=loader(train), val_generator=loader(val)).run(1)
    assert [data for data, _ in received] == [torchbearer.TRAIN_DATA, torchbearer.VALIDATION_DATA]
    for (_, image), images in zip(received, (train, val)):  # the second image of each phase, grey as RGB
        second = tile(as_pixels(image.unsqueeze(0))[0], 0, 1, 4, 4)
        assert np.array_equal(second, as_pixels(images[1:2]).repeat(3, -1)[0])


def test_a_saver_that_collects_nothing_draws_once_per_epoch_from_training_by_default(tmp_path):
    fixed = torch.rand(1, 1, 3, 3)
    trial = trial_of([LatentTraversal(folder=tmp_path, num_steps=2, inputs=fixed),
                      SampleSaver(folder=tmp_path, num_images=2).on_val()], model=ProbeVAE())
    trial.with_generators(train_generator=loader(torch.rand(4, 1, 3, 3))).run(2)  # no validation data
    assert sorted(os.listdir(tmp_path)) == ['traversal_0.png', 'traversal_1.png']  # on_val: nothing to draw at


def test_an_epoch_stopped_during_training_draws_nothing(tmp_path):
    @torchbearer.callbacks.on_step_training
    def stop_in_epoch_1(state):  # as NaNGuard does on a non-finite loss
        state[torchbearer.STOP_TRAINING] = state[torchbearer.STOP_TRAINING] or state[torchbearer.EPOCH] == 1

    savers = [SampleSaver(folder=tmp_path, num_images=2), ReconstructionSaver(folder=tmp_path, num_images=2).on_train()]
    trial_of([stop_in_epoch_1] + savers, model=ProbeVAE()).with_train_generator(loader(torch.rand(4, 1, 3, 3))).run(3)
    assert sorted(os.listdir(tmp_path)) == ['reconstruction_0.png', 'samples_0.png']  # the last complete epoch's


# -- a picture of one's own: one draw method --

class MeanImage(PictureSaver):
    """The mean of the collected inputs, and what draw was called with."""

    def __init__(self, folder, **kwargs):
        super().__init__(folder, 'mean_{epoch}.png', **kwargs)
        self.calls = []

    def draw(self, model, state):
        self.calls.append((tuple(state[self.key].shape), model.training, torch.is_grad_enabled(),
                           state[torchbearer.EPOCH]))
        return state[self.key].mean(0)


def test_a_picture_of_ones_own_is_one_draw_method(tmp_path):
    images = torch.rand(10, 3, 5, 5)
    saver, model = MeanImage(tmp_path, num_images=6), Scale()
    trial_of([saver], model=model).with_generators(loader(images), val_generator=loader(images)).run(2)
    assert saver.calls == [((6, 3, 5, 5), False, False, 0), ((6, 3, 5, 5), False, False, 1)]  # eval, no_grad
    assert model.training  # restored after drawing
    assert np.array_equal(read_png(tmp_path / 'mean_1.png'), as_pixels(images[:6].mean(0, keepdim=True))[0])


def test_draw_may_return_a_batch_to_tile_or_none(tmp_path):
    class Inputs(PictureSaver):
        def draw(self, model, state):
            return state[self.key] if state[torchbearer.EPOCH] == 0 else None

    images = torch.rand(5, 1, 4, 4)
    trial_of([Inputs(tmp_path, 'in_{epoch}.png', num_images=5, nrow=3)]).with_generators(
        loader(images), val_generator=loader(images)).run(2)
    assert os.listdir(tmp_path) == ['in_0.png']  # None: no picture for epoch 1
    grid = read_png(tmp_path / 'in_0.png')
    assert grid.shape == (PAD + 2 * 6, PAD + 3 * 6, 1)
    assert np.array_equal(tile(grid, 1, 1, 4, 4), as_pixels(images[4:5])[0])


@pytest.mark.parametrize('returned, error, message', [
    ([0.5], TypeError, 'Bad.draw must return a float tensor'),
    (torch.zeros(4, 4, dtype=torch.uint8), TypeError, 'Bad.draw must return a float tensor'),
    (torch.zeros(4, 4), ValueError, r'Bad.draw must return an image \(C, H, W\) or a batch'),
    (torch.zeros(2, 4, 4), ValueError, '1 \\(grey\\), 3 \\(RGB\\) or 4 \\(RGBA\\) channels'),
])
def test_what_draw_returns_is_checked_naming_draw(tmp_path, returned, error, message):
    class Bad(PictureSaver):
        def draw(self, model, state):
            return returned

    with pytest.raises(error, match=message):
        trial_of([Bad(tmp_path)]).with_train_generator(loader(torch.rand(2, 1, 4, 4))).run(1)
    with pytest.raises(NotImplementedError, match='must implement draw'):
        trial_of([PictureSaver(tmp_path)]).with_train_generator(loader(torch.rand(2, 1, 4, 4))).run(1)


# -- torchbearer_vae.MakeGrid: torchbearer's, with make_grid called as torchvision wants --

def test_make_grid_drop_in_works_in_a_real_trial_where_torchbearers_fails(tmp_path):
    from torchvision.utils import make_grid

    images = torch.rand(8, 3, 6, 6)
    ours = MakeGrid(num_images=6, nrow=3).on_val().to_file(str(tmp_path / 'grid_{epoch}.png'))
    trial_of([ours]).with_generators(loader(images), val_generator=loader(images)).run(1)
    expected = as_pixels(make_grid(images[:6], nrow=3).unsqueeze(0))[0]
    assert close(np.asarray(Image.open(tmp_path / 'grid_0.png')), expected)

    theirs = torchbearer.callbacks.imaging.MakeGrid(num_images=6, nrow=3).on_val().to_file(str(tmp_path / 'x.png'))
    with pytest.raises(TypeError, match='range'):  # why the drop-in exists
        trial_of([theirs]).with_generators(loader(images), val_generator=loader(images)).run(1)
    assert torchbearer.callbacks.imaging.MakeGrid is not MakeGrid  # torchbearer's own is left in place
    assert issubclass(MakeGrid, torchbearer.callbacks.imaging.MakeGrid)


def test_make_grid_is_exported_from_the_package():
    assert torchbearer_vae.MakeGrid is MakeGrid and 'MakeGrid' in torchbearer_vae.__all__


def test_cache_and_make_grid_builders_say_what_to_pass_instead(tmp_path):
    with pytest.raises(TypeError, match='pass num_images='):
        ReconstructionSaver(folder=tmp_path).cache(4)
    with pytest.raises(TypeError, match='pass nrow= and normalize='):
        SampleSaver(folder=tmp_path).make_grid(nrow=4)


# -- the whole image shape --

class ShapedScale(Scale):
    input_shape = (1, 8, 8)  # as a VAE declares its images


def test_channels_last_images_are_refused_naming_both_shapes(tmp_path):
    channels_last = torch.rand(4, 8, 8, 1)
    both = r'\(4, 8, 8, 1\) does not fit the model\'s input_shape \(1, 8, 8\).*channels first'
    with pytest.raises(ValueError, match=both):
        ReconstructionSaver(folder=tmp_path, filename='r.png').save(ShapedScale(), channels_last)
    with pytest.raises(ValueError, match=both):
        trial_of([ReconstructionSaver(folder=tmp_path)], model=ShapedScale()).with_generators(
            loader(channels_last), val_generator=loader(channels_last)).run(1)
    calls = []
    model = VAE()
    model.register_forward_hook(lambda *args: calls.append(1))
    with pytest.raises(ValueError, match=r'\(1, 28, 28, 1\) does not fit the model\'s input_shape \(1, 28, 28\)'):
        trial_of([LatentTraversal(folder=tmp_path, inputs=torch.rand(2, 28, 28, 1))], model=model).with_train_generator(
            loader(torch.rand(2, 1, 28, 28))).run(1)
    assert calls == [] and os.listdir(tmp_path) == []  # refused before the first step
    flat = ReconstructionSaver(folder=tmp_path, filename='flat.png').save(ShapedScale(), channels_last.reshape(4, 64))
    assert read_png(flat).shape == (PAD + 2 * 10, PAD + 4 * 10, 1)  # flat images of the right size are fine


# -- the documentation's example of a picture of one's own --

def test_the_custom_picture_example_draws_one_bar_per_dimension_as_tall_as_its_kl(tmp_path):
    saver = load_example('custom_picture').KLBars(folder=tmp_path, num_images=6, height=16, width=4)
    model = ConstantPosterior([0.0, 1.0, 2.0, 4.0])  # KL per dimension 0, 1/2, 1 and 2
    trial_of([saver], model=model).with_generators(loader(torch.rand(8, 1, 4, 4)),
                                                   val_generator=loader(torch.rand(8, 1, 4, 4))).run(1)
    bars = read_png(tmp_path / 'kl_0.png')[..., 0]
    assert bars.shape == (16, 4 * 4)
    heights = (bars[:, ::4] == 255).sum(0)  # the first column of each bar
    assert heights.tolist() == [0, 4, 8, 16]  # KL 0, 1/2, 1, 2: the tallest fills the picture
    assert not bars[:, 3::4].any()  # the gaps
    assert (bars[:12, 4] == 0).all() and (bars[12:, 4] == 255).all()  # the bars stand on the bottom


@pytest.mark.slow
def test_the_custom_picture_example_runs_on_mnist(mnist_dir, tmp_path):
    history = load_example('custom_picture').main(
        ['--data-dir', mnist_dir, '--limit', '1000', '--epochs', '2', '--latent-dim', '8', '--results', str(tmp_path),
         '--verbose', '0'])
    assert history[1]['val_loss'] < history[0]['val_loss']
    assert sorted(os.listdir(tmp_path)) == ['kl_0.png', 'kl_1.png']
    bars = read_png(tmp_path / 'kl_1.png')[..., 0]
    assert bars.shape == (64, 8 * 8) and (bars[:, ::8] == 255).sum(0).max() == 64  # 8 bars, the tallest full


def test_a_picture_that_collects_nothing_is_not_handed_some_phases_last_batch(tmp_path):
    class ReadsInputs(PictureSaver):
        def draw(self, model, state):
            return state[self.key][:4]  # but no num_images: nothing was collected for it

    model = VAE(input_shape=(1, 4, 4), latent_dim=2, hidden_dim=8)
    data = TensorLoader(AutoEncoderDataset(torch.rand(32, 1, 4, 4)), 8)
    trial = Trial(model, torch.optim.Adam(model.parameters()), model.reconstruction_loss,
                  callbacks=[kld_loss(), ReadsInputs(folder=tmp_path)], verbose=0).with_generators(data, data)
    with pytest.raises(MissingStateError, match=r'ReadsInputs.draw read state\[x\], but it collects no inputs: pass '
                                                 r'num_images=N'):
        trial.run(1)
    assert not list(tmp_path.iterdir())


def test_sample_saver_refuses_a_grid_pillow_would_not_open_before_drawing_it(tmp_path):
    with pytest.raises(ValueError, match=r'SampleSaver: a grid of 1,000,000,000,000 images of 1x1 pixels would be '
                                         r'26x375,000,000,002 pixels, more than the 89,478,485 Pillow opens; pass a '
                                         r'smaller num_images'):
        SampleSaver(folder=tmp_path, num_images=10 ** 12)  # at construction: images of one pixel at least
    saver = SampleSaver(folder=tmp_path, filename='samples.png', num_images=200_000)  # 1x1 images would fit
    with pytest.raises(ValueError, match=r'a grid of 200,000 images of 28x28 pixels would be 242x750,002 pixels'):
        saver.save(VAE(hidden_dim=16, latent_dim=2))  # MNIST's 28x28: refused when the model is known, not drawn
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match=r'a grid of 50,000 images of 64x64 pixels'):
        SampleSaver(folder=tmp_path, num_images=50_000, nrow=250, image_shape=(3, 64, 64))  # its shape given
    grid = read_png(SampleSaver(folder=tmp_path, filename='many.png', num_images=10_000, nrow=100)
                    .save(VAE(hidden_dim=16, latent_dim=2)))
    assert grid.shape[:2] == (100 * (28 + PAD) + PAD,) * 2  # 9 million pixels: drawn
