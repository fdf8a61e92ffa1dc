import os

import numpy as np
import pytest
import torch
import torchbearer
from PIL import Image
from stand_ins import PAD, ProbeVAE, Scale, as_pixels, read_png, tile, zero_loss
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchbearer import Trial

from torchbearer_vae import (
    Interpolation,
    LatentTraversal,
    MissingStateError,
    PictureSaver,
    ReconstructionSaver,
    SampleSaver,
    kld_loss,
)


def run(saver, images, model=None, batch_size=4, on_validation=True, epochs=1):
    model = model or Scale()
    data = TensorDataset(images, images)
    loader = DataLoader(data, batch_size=batch_size)
    trial = Trial(model, torch.optim.SGD(model.parameters(), lr=0.0), zero_loss, callbacks=[saver], verbose=0)
    trial.with_generators(train_generator=loader, val_generator=loader if on_validation else None)
    trial.run(epochs)


def test_real_mnist_grid_has_inputs_on_top_and_reconstructions_below(tmp_path, mnist):
    images = torch.stack([mnist[i][0] for i in range(20)])
    run(ReconstructionSaver(folder=tmp_path / 'out', num_images=6), images, batch_size=4, epochs=2)
    assert sorted(os.listdir(tmp_path / 'out')) == ['reconstruction_0.png', 'reconstruction_1.png']
    grid = read_png(tmp_path / 'out' / 'reconstruction_1.png')
    assert grid.shape == (PAD + 2 * (28 + PAD), PAD + 6 * (28 + PAD), 1)
    expected_top, expected_bottom = as_pixels(images[:6]), as_pixels(images[:6] * 0.5)
    for column in range(6):  # six images gathered across two batches of four
        assert np.array_equal(tile(grid, 0, column, 28, 28), expected_top[column])
        assert np.array_equal(tile(grid, 1, column, 28, 28), expected_bottom[column])


@pytest.mark.parametrize('output', ['flat', 'tuple'])
def test_flat_and_tuple_outputs_are_reshaped_to_the_input(tmp_path, output):
    images = torch.rand(8, 3, 10, 12)
    run(ReconstructionSaver(folder=tmp_path, num_images=4), images, model=Scale(output))
    grid = read_png(tmp_path / 'reconstruction_0.png')
    assert grid.shape == (PAD + 2 * (10 + PAD), PAD + 4 * (12 + PAD), 3)
    assert np.array_equal(tile(grid, 1, 2, 10, 12), as_pixels(images[2:3] * 0.5)[0])


def test_flat_square_inputs_are_shown_as_grey_images(tmp_path):
    images = torch.rand(5, 784)
    run(ReconstructionSaver(folder=tmp_path, num_images=3).on_train(), images, on_validation=False)
    grid = read_png(tmp_path / 'reconstruction_0.png')
    assert grid.shape == (PAD + 2 * 30, PAD + 3 * 30, 1)
    assert np.array_equal(tile(grid, 0, 1, 28, 28)[..., 0], as_pixels(images[1].view(1, 1, 28, 28))[0, ..., 0])


def test_rgba_and_image_shape(tmp_path):
    images = torch.rand(2, 4 * 6 * 6)
    run(ReconstructionSaver(folder=tmp_path, num_images=2, image_shape=(4, 6, 6)), images)
    assert read_png(tmp_path / 'reconstruction_0.png').shape == (PAD + 2 * 8, PAD + 2 * 8, 4)


def test_fewer_images_than_asked_uses_what_there_is(tmp_path):
    images = torch.rand(3, 1, 28, 28)  # the PyTorch example's view(128, 1, 28, 28) breaks here
    run(ReconstructionSaver(folder=tmp_path, num_images=8), images, batch_size=2)
    grid = read_png(tmp_path / 'reconstruction_0.png')
    assert grid.shape == (PAD + 2 * 30, PAD + 3 * 30, 1)
    assert np.array_equal(tile(grid, 1, 0, 28, 28)[..., 0], as_pixels(images[:1] * 0.5)[0, ..., 0])


def test_rows_of_nrow_keep_reconstructions_below_the_inputs(tmp_path):
    images = torch.rand(5, 1, 8, 8)
    run(ReconstructionSaver(folder=tmp_path, num_images=5, nrow=3), images, batch_size=5)
    grid = read_png(tmp_path / 'reconstruction_0.png')
    assert grid.shape == (PAD + 4 * 10, PAD + 3 * 10, 1)  # 2 rows of inputs (one blank), 2 of outputs
    assert np.array_equal(tile(grid, 2, 0, 8, 8)[..., 0], as_pixels(images[:1] * 0.5)[0, ..., 0])
    assert not tile(grid, 1, 2, 8, 8).any()  # the blank tile that pads the inputs


def test_training_phase_and_custom_filename(tmp_path):
    images = torch.rand(4, 1, 8, 8)
    run(ReconstructionSaver(folder=tmp_path, filename='train/e{epoch:03d}.jpg', num_images=2).on_train(),
        images, epochs=2, on_validation=False)
    assert sorted(os.listdir(tmp_path / 'train')) == ['e000.jpg', 'e001.jpg']


def test_no_validation_data_warns_instead_of_silently_saving_nothing(tmp_path):
    with pytest.warns(UserWarning, match='saw no validation batch'):
        run(ReconstructionSaver(folder=tmp_path), torch.rand(4, 1, 8, 8), on_validation=False)
    assert not tmp_path.joinpath('reconstruction_0.png').exists()


def test_writes_atomically_and_replaces_an_old_file(tmp_path):
    target = tmp_path / 'reconstruction_0.png'
    target.write_bytes(b'old')
    run(ReconstructionSaver(folder=tmp_path, num_images=2), torch.rand(2, 1, 8, 8))
    assert read_png(target).shape[0] == PAD + 2 * 10
    assert os.listdir(tmp_path) == ['reconstruction_0.png']  # no temporary file left behind
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)


def test_output_that_does_not_fit_the_input_names_both_shapes(tmp_path):
    with pytest.raises(ValueError, match=r'output of shape \(2, 63\).*\(2, 1, 8, 8\)'):
        run(ReconstructionSaver(folder=tmp_path, num_images=2), torch.rand(2, 1, 8, 8), model=Scale('wrong'))


def test_missing_state_key_is_named(tmp_path):
    key = torchbearer.state_key('not_there')
    with pytest.raises(MissingStateError, match='not_there'):
        run(ReconstructionSaver(folder=tmp_path, key=key), torch.rand(2, 1, 8, 8))


def test_unknown_image_shape_asks_for_image_shape(tmp_path):
    with pytest.raises(ValueError, match='pass image_shape'):
        run(ReconstructionSaver(folder=tmp_path), torch.rand(2, 10))


# -- the arguments, checked at construction --

@pytest.mark.parametrize('cls', [PictureSaver, ReconstructionSaver, SampleSaver, LatentTraversal, Interpolation])
@pytest.mark.parametrize('kwargs, error, message', [
    ({'folder': 3}, TypeError, 'folder must be a path'),
    ({'filename': 'x_{step}.png'}, ValueError, 'only field is {epoch}'),
    ({'filename': '../x_{epoch}.png'}, ValueError, 'stay inside the folder'),
    ({'filename': 'x_{epoch}.txt'}, ValueError, 'image extension'),
    ({'normalize': 'yes'}, TypeError, 'normalize must be True or False'),
    ({'image_shape': (3, 3)}, ValueError, 'image_shape must be 3 ints >= 1'),
    ({'image_shape': 'abc'}, TypeError, 'image_shape must be 3 ints >= 1'),
    ({'output_transform': 'sigmoid'}, TypeError, 'output_transform must be callable'),
])
def test_the_arguments_every_picture_shares_are_checked_the_same_way(tmp_path, cls, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls(**{'folder': tmp_path, **kwargs})


@pytest.mark.parametrize('make, error, message', [
    # the rest of the {epoch} template's rules: one field, an image extension, a path inside the folder
    (lambda: ReconstructionSaver(filename='recon_{}.png'), ValueError, 'only field is {epoch}'),
    (lambda: ReconstructionSaver(filename='recon_{epoch'), ValueError, 'only field is {epoch}'),
    (lambda: ReconstructionSaver(filename='recon_{epoch}'), ValueError, 'image extension'),
    (lambda: ReconstructionSaver(filename='/tmp/abs_{epoch}.png'), ValueError, 'stay inside the folder'),
    (lambda: ReconstructionSaver(num_images=0), ValueError, 'num_images must be an int >= 1, got 0'),
    (lambda: ReconstructionSaver(num_images=2.5), TypeError, 'num_images must be an int >= 1, got 2.5'),
    (lambda: ReconstructionSaver(nrow=0), ValueError, 'nrow must be an int >= 1'),
    (lambda: PictureSaver(num_images=-1), ValueError, 'num_images must be an int >= 0, got -1'),
    (lambda: SampleSaver(num_images=0), ValueError, 'num_images must be an int >= 1, got 0'),
    (lambda: SampleSaver(num_images=2.5), TypeError, 'num_images must be an int >= 1, got 2.5'),
    (lambda: SampleSaver(num_images=True), TypeError, 'num_images must be an int >= 1, got True'),
    (lambda: SampleSaver(nrow=1.5), TypeError, 'nrow must be an int'),
    (lambda: SampleSaver(seed=-1), ValueError, 'seed must be an int >= 0, got -1'),
    (lambda: SampleSaver(seed=1.5), TypeError, 'seed must be an int >= 0'),
    (lambda: SampleSaver().with_handler('print'), TypeError, r'handler must be callable as handler\(image, index'),
    (lambda: LatentTraversal(dims=[]), ValueError, 'dims must be a non-empty sequence'),
    (lambda: LatentTraversal(dims='01'), TypeError, 'dims must be a sequence'),
    (lambda: LatentTraversal(dims=[0, -1]), ValueError, r'dims\[1\] must be an int >= 0, got -1'),
    (lambda: LatentTraversal(dims=[0.5]), TypeError, r'dims\[0\] must be an int'),
    (lambda: LatentTraversal(num_steps=1), ValueError, 'num_steps must be an int >= 2'),
    (lambda: LatentTraversal(value_range=(3, -3)), ValueError, 'low < high'),
    (lambda: LatentTraversal(value_range=3), TypeError, 'value_range must be two numbers'),
    (lambda: LatentTraversal(value_range=(0, 'x')), TypeError, 'value_range must be two numbers'),
    (lambda: LatentTraversal(inputs=[1, 2]), TypeError, 'inputs must be a floating point tensor'),
    (lambda: LatentTraversal(inputs=torch.zeros(0, 1, 3, 3)), ValueError, 'at least 1 image, got 0'),
    (lambda: Interpolation(num_pairs=0), ValueError, 'num_pairs must be an int >= 1, got 0'),
    (lambda: Interpolation(num_steps=1), ValueError, 'num_steps must be an int >= 2'),
    (lambda: Interpolation(num_steps=2.0), TypeError, 'num_steps must be an int >= 2'),
    (lambda: Interpolation(inputs=torch.rand(3, 1, 3, 3)), ValueError, 'at least 8 images, got 3'),
])
def test_bad_arguments_fail_at_construction(tmp_path, monkeypatch, make, error, message):
    monkeypatch.chdir(tmp_path)  # the default folder, results/, is never made
    with pytest.raises(error, match=message):
        make()
    assert os.listdir(tmp_path) == []


def test_dims_may_be_any_iterable_of_ints():
    assert LatentTraversal(dims=np.array([2, 0])).dims == [2, 0]
    assert LatentTraversal(dims=range(3)).dims == [0, 1, 2]


def test_folder_that_is_a_file_fails_at_construction(tmp_path):
    path = tmp_path / 'file'
    path.write_text('x')
    with pytest.raises(ValueError, match='is not a directory'):
        ReconstructionSaver(folder=path)


def test_nothing_is_read_from_state_once_the_images_are_collected(tmp_path):
    images = torch.rand(12, 1, 8, 8)
    key = torchbearer.state_key('only_the_first_batch_is_an_image')

    @torchbearer.callbacks.on_step_validation
    def store(state):  # after the first batch, the key holds something the saver would refuse to draw
        state[key] = state[torchbearer.X] if state[torchbearer.BATCH] == 0 else 'not an image'

    model = Scale()
    trial = Trial(model, torch.optim.SGD(model.parameters(), lr=0.0), zero_loss, verbose=0,
                  callbacks=[store, ReconstructionSaver(folder=tmp_path, num_images=2, key=key)])
    loader = DataLoader(TensorDataset(images, images), batch_size=2)
    trial.with_generators(train_generator=loader, val_generator=loader).run(2)
    grid = read_png(tmp_path / 'reconstruction_1.png')
    assert np.array_equal(tile(grid, 0, 1, 8, 8), as_pixels(images[1:2])[0])  # the first batch, read once


# -- the other picture callbacks, sharing ReconstructionSaver's machinery --

def probe_code(images):
    return images.reshape(images.shape[0], 9)[:, :3] * 8 - 4


def probe_picture(z):
    return ((z + 4) / 8).reshape(-1, 1, 3, 1).expand(-1, 1, 3, 3)


def assert_tile(grid, row, column, image, size=3):
    """The tile equals the image to within one grey level (PNG stores 8 bits)."""
    expected = as_pixels(image.unsqueeze(0))[0].astype(int)
    got = tile(grid, row, column, size, size).astype(int)
    if got.shape[-1] == 3 and expected.shape[-1] == 1:
        expected = expected.repeat(3, axis=2)
    assert np.abs(got - expected).max() <= 1, (row, column, got[..., 0], expected[..., 0])


def test_sample_saver_decodes_the_same_noise_every_epoch(tmp_path, mnist):
    from torchbearer_vae import VAE
    model = VAE(hidden_dim=32, latent_dim=4)
    images = torch.stack([mnist[i][0] for i in range(64)])
    saver = SampleSaver(folder=tmp_path, num_images=6, nrow=3, seed=7)
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=0.0), nn.BCELoss(reduction='sum'),
                  callbacks=[kld_loss(), saver], verbose=0)
    trial.with_train_generator(DataLoader(TensorDataset(images, images), batch_size=32)).run(2)
    first, second = read_png(tmp_path / 'samples_0.png'), read_png(tmp_path / 'samples_1.png')
    assert first.shape == (PAD + 2 * 30, PAD + 3 * 30, 1)
    assert np.array_equal(first, second)  # unchanged weights, fixed noise: the same picture
    noise = torch.randn(6, 4, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(saver.noise(4), noise)
    expected = as_pixels(model.decode(noise).detach())
    for index in range(6):
        assert np.array_equal(tile(first, index // 3, index % 3, 28, 28)[..., 0], expected[index, ..., 0])


def test_sample_saver_draws_in_eval_mode_without_grad_and_leaves_the_global_random_state(tmp_path):
    model = ProbeVAE()
    state = torch.get_rng_state()
    path = SampleSaver(folder=tmp_path, filename='samples.png', num_images=4).save(model)
    assert path == os.path.join(str(tmp_path), 'samples.png') and os.path.exists(path)
    assert torch.equal(torch.get_rng_state(), state)
    assert model.modes == [(False, False)] and model.training  # drawn in eval mode, then restored


class SampleOnly(nn.Module):
    """A generative model with only sample(n), drawing from the global random state."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(1.0))

    def sample(self, n):
        return torch.rand(n, 1, 5, 5) * self.weight


def test_sample_saver_seeds_a_model_that_only_has_sample(tmp_path):
    saver = SampleSaver(folder=tmp_path, filename='s{epoch}.png', num_images=4, nrow=2)
    state = torch.get_rng_state()
    saver.save(SampleOnly(), epoch=0)
    saver.save(SampleOnly(), epoch=1)
    SampleSaver(folder=tmp_path, filename='other.png', num_images=4, nrow=2, seed=1).save(SampleOnly())
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(read_png(tmp_path / 's0.png'), read_png(tmp_path / 's1.png'))
    assert not np.array_equal(read_png(tmp_path / 's0.png'), read_png(tmp_path / 'other.png'))


def test_sample_saver_rejects_a_model_without_decode_or_sample_before_training(tmp_path):
    model = Scale()
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    with pytest.raises(TypeError, match='SampleSaver needs a model with decode\\(z\\) and latent_dim, or sample'):
        run(SampleSaver(folder=tmp_path), torch.rand(4, 1, 8, 8), model=model)
    assert calls == []


def test_latent_traversal_varies_one_dimension_per_row(tmp_path):
    images = torch.rand(5, 1, 3, 3)
    run(LatentTraversal(folder=tmp_path, dims=[2, 0], num_steps=4, value_range=(-3.0, 3.0)), images,
        model=ProbeVAE(), batch_size=2)
    grid = read_png(tmp_path / 'traversal_0.png')
    assert grid.shape == (PAD + 2 * 5, PAD + 4 * 5, 1)
    mu = probe_code(images[:1])[0]  # the first validation image
    for row, dim in enumerate([2, 0]):
        for column, value in enumerate(torch.linspace(-3, 3, 4)):
            z = mu.clone()
            z[dim] = value
            assert_tile(grid, row, column, probe_picture(z.unsqueeze(0))[0])


def test_latent_traversal_with_fixed_inputs_needs_no_validation_data(tmp_path):
    fixed = torch.rand(2, 1, 3, 3)
    saver = LatentTraversal(folder=tmp_path, num_steps=2, value_range=(-1, 1), inputs=fixed)
    run(saver, torch.rand(4, 1, 3, 3), model=ProbeVAE(), on_validation=False, epochs=2)
    grid = read_png(tmp_path / 'traversal_1.png')
    assert grid.shape == (PAD + 3 * 5, PAD + 2 * 5, 1)  # all three latent dimensions, two values each
    z = probe_code(fixed[:1])[0]
    z[1] = 1.0
    assert_tile(grid, 1, 1, probe_picture(z.unsqueeze(0))[0])


def test_interpolation_rows_go_from_one_input_to_the_next(tmp_path):
    images = torch.rand(6, 1, 3, 3)
    run(Interpolation(folder=tmp_path, num_pairs=2, num_steps=3), images, model=ProbeVAE(), batch_size=3)
    grid = read_png(tmp_path / 'interpolation_0.png')
    assert grid.shape == (PAD + 2 * 5, PAD + 5 * 5, 1)  # input, three points on the line, input
    codes = probe_code(images[:4])
    for pair in range(2):
        start, end = codes[2 * pair], codes[2 * pair + 1]
        assert_tile(grid, pair, 0, images[2 * pair])
        assert_tile(grid, pair, 4, images[2 * pair + 1])
        for step, t in enumerate([0.0, 0.5, 1.0]):
            assert_tile(grid, pair, 1 + step, probe_picture((start + t * (end - start)).unsqueeze(0))[0])


def test_interpolation_uses_the_pairs_there_are(tmp_path):
    run(Interpolation(folder=tmp_path, num_pairs=4, num_steps=2), torch.rand(3, 1, 3, 3), model=ProbeVAE())
    assert read_png(tmp_path / 'interpolation_0.png').shape == (PAD + 1 * 5, PAD + 4 * 5, 1)


def test_interpolation_and_traversal_of_a_real_vae_on_mnist(tmp_path, mnist):
    from torchbearer_vae import VAE
    model = VAE(hidden_dim=64, latent_dim=5)
    inputs = torch.stack([mnist[i][0] for i in range(4)])
    interpolation = Interpolation(folder=tmp_path, filename='i.png', num_pairs=2, num_steps=4)
    traversal = LatentTraversal(folder=tmp_path, filename='t.png', num_steps=5)
    grid = read_png(interpolation.save(model, inputs))
    assert grid.shape == (PAD + 2 * 30, PAD + 6 * 30, 1)
    assert np.array_equal(tile(grid, 1, 5, 28, 28)[..., 0], as_pixels(inputs[3:4])[0, ..., 0])
    assert read_png(traversal.save(model, inputs)).shape == (PAD + 5 * 30, PAD + 5 * 30, 1)


def test_rank_other_than_0_writes_nothing(tmp_path, monkeypatch):
    from torchbearer_vae import distributed
    monkeypatch.setattr(distributed, 'get_rank', lambda: 1)  # as on rank 1 under torchrun
    savers = [ReconstructionSaver(folder=tmp_path), SampleSaver(folder=tmp_path), LatentTraversal(folder=tmp_path),
              Interpolation(folder=tmp_path, num_pairs=1)]
    for saver in savers:
        run(saver, torch.rand(4, 1, 3, 3), model=ProbeVAE())
    assert os.listdir(tmp_path) == []


def test_handlers_receive_the_grid_that_is_written(tmp_path):
    received = []
    saver = SampleSaver(folder=tmp_path, num_images=4, nrow=2).with_handler(
        lambda image, index, state: received.append((image, index, state[torchbearer.EPOCH])))
    run(saver, torch.rand(4, 1, 3, 3), model=ProbeVAE(), epochs=2)
    assert [(index, epoch) for _, index, epoch in received] == [(0, 0), (0, 1)]
    grid = as_pixels(received[1][0].unsqueeze(0))[0]  # make_grid's three equal channels; the file keeps one
    assert np.array_equal(grid[..., :1], read_png(tmp_path / 'samples_1.png')) and (grid == grid[..., :1]).all()


def test_to_tensorboard_writes_the_grid_as_an_image_event(tmp_path):
    # tensorboardX is in the test extra: this path is always run, never skipped
    saver = SampleSaver(folder=tmp_path / 'png', num_images=4, nrow=2).to_tensorboard(log_dir=str(tmp_path / 'logs'))
    run(saver, torch.rand(4, 1, 3, 3), model=ProbeVAE())
    events = list((tmp_path / 'logs' / 'torchbearer').glob('events.out.tfevents.*'))
    assert len(events) == 1
    content = events[0].read_bytes()
    assert b'samples' in content and b'\x89PNG' in content  # the tag and the encoded grid


def test_to_tensorboard_without_tensorboardx_says_what_to_install(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, 'tensorboardX', None)
    with pytest.raises(ImportError, match='pip install tensorboardX'):
        SampleSaver(folder=tmp_path).to_tensorboard()


def test_reconstruction_saver_save_reconstructs_outside_a_trial(tmp_path):
    images = torch.rand(5, 1, 8, 8)
    path = ReconstructionSaver(folder=tmp_path, filename='r.png', num_images=3).save(Scale('tuple'), images)
    grid = read_png(path)
    assert grid.shape == (PAD + 2 * 10, PAD + 3 * 10, 1)
    assert np.array_equal(tile(grid, 1, 2, 8, 8)[..., 0], as_pixels(images[2:3] * 0.5)[0, ..., 0])


def test_traversal_of_a_dimension_the_model_does_not_have_fails_before_training(tmp_path):
    with pytest.raises(ValueError, match='dims must be < the latent dimension 3, got \\[0, 3\\]'):
        run(LatentTraversal(folder=tmp_path, dims=[0, 3]), torch.rand(2, 1, 3, 3), model=ProbeVAE())
    with pytest.raises(TypeError, match='Interpolation needs a model with encode\\(\\) and decode\\(\\)'):
        run(Interpolation(folder=tmp_path), torch.rand(2, 1, 3, 3))


@pytest.mark.parametrize('channels', [1, 3])
def test_the_file_has_save_images_pixels_and_grey_images_one_channel(tmp_path, mnist, channels):
    from torchvision.utils import save_image
    digits = torch.stack([mnist[i][0] for i in range(8)])
    inputs = digits.repeat(1, channels, 1, 1) * torch.linspace(0.4, 1.0, channels).view(1, channels, 1, 1)
    outputs = inputs.flip(0) * 0.7
    ours = ReconstructionSaver(folder=tmp_path, filename='ours.png').write(inputs, outputs, epoch=0)
    save_image(torch.cat([inputs, outputs]), tmp_path / 'torchvision.png', nrow=8)  # always RGB
    ours, theirs = Image.open(ours), Image.open(tmp_path / 'torchvision.png')
    assert ours.mode == ('L' if channels == 1 else 'RGB') and theirs.mode == 'RGB'
    assert np.array_equal(np.asarray(ours.convert('RGB')), np.asarray(theirs))  # the same picture
    if channels == 1:  # in a third of the pixels' bytes
        assert os.path.getsize(tmp_path / 'ours.png') < 0.6 * os.path.getsize(tmp_path / 'torchvision.png')
