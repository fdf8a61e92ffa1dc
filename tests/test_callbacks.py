import os

import numpy as np
import pytest
import torch
import torchbearer
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchbearer import Trial

from torchbearer_vae import MissingStateError, ReconstructionSaver

PAD = 2  # make_grid's default padding


def read_png(path):
    return np.asarray(Image.open(path))


def tile(grid, row, column, height, width):
    top, left = PAD + row * (height + PAD), PAD + column * (width + PAD)
    return grid[top:top + height, left:left + width]


def as_pixels(images):
    """What save_image writes for images in [0, 1]: round(x * 255), channels last."""
    return images.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


class Scale(nn.Module):
    """A stand-in autoencoder with a known output: 0.5 * x, shaped as asked."""

    def __init__(self, output='same'):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(0.5))
        self.output = output

    def forward(self, x, state=None):
        recon = x * self.weight
        if self.output == 'flat':
            return recon.reshape(x.shape[0], -1)
        if self.output == 'tuple':
            return recon, torch.zeros(x.shape[0], 2), torch.zeros(x.shape[0], 2)
        if self.output == 'wrong':
            return recon.reshape(x.shape[0], -1)[:, :-1]
        return recon


def zero_loss(*tensors):  # torchbearer unpacks tuple outputs into the criterion's arguments
    return (tensors[0] * 0).sum()


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
    assert grid.shape == (PAD + 2 * (28 + PAD), PAD + 6 * (28 + PAD), 3)
    expected_top, expected_bottom = as_pixels(images[:6]), as_pixels(images[:6] * 0.5)
    for column in range(6):  # six images gathered across two batches of four
        assert np.array_equal(tile(grid, 0, column, 28, 28), expected_top[column].repeat(3, axis=2))
        assert np.array_equal(tile(grid, 1, column, 28, 28), expected_bottom[column].repeat(3, axis=2))


@pytest.mark.parametrize('output', ['flat', 'tuple'])
def test_flat_and_tuple_outputs_are_reshaped_to_the_input(tmp_path, output):
    images = torch.rand(8, 3, 10, 12)
    run(ReconstructionSaver(folder=tmp_path, num_images=4), images, model=Scale(output))
    grid = read_png(tmp_path / 'reconstruction_0.png')
    assert grid.shape == (PAD + 2 * (10 + PAD), PAD + 4 * (12 + PAD), 3)
    assert np.array_equal(tile(grid, 1, 2, 10, 12), as_pixels(images[2:3] * 0.5)[0])


def test_flat_square_inputs_are_shown_as_grey_images(tmp_path):
    images = torch.rand(5, 784)
    run(ReconstructionSaver(folder=tmp_path, num_images=3, on='training'), images, on_validation=False)
    grid = read_png(tmp_path / 'reconstruction_0.png')
    assert grid.shape == (PAD + 2 * 30, PAD + 3 * 30, 3)
    assert np.array_equal(tile(grid, 0, 1, 28, 28)[..., 0], as_pixels(images[1].view(1, 1, 28, 28))[0, ..., 0])


def test_rgba_and_image_shape(tmp_path):
    images = torch.rand(2, 4 * 6 * 6)
    run(ReconstructionSaver(folder=tmp_path, num_images=2, image_shape=(4, 6, 6)), images)
    assert read_png(tmp_path / 'reconstruction_0.png').shape == (PAD + 2 * 8, PAD + 2 * 8, 4)


def test_fewer_images_than_asked_uses_what_there_is(tmp_path):
    images = torch.rand(3, 1, 28, 28)  # the PyTorch example's view(128, 1, 28, 28) breaks here
    run(ReconstructionSaver(folder=tmp_path, num_images=8), images, batch_size=2)
    grid = read_png(tmp_path / 'reconstruction_0.png')
    assert grid.shape == (PAD + 2 * 30, PAD + 3 * 30, 3)
    assert np.array_equal(tile(grid, 1, 0, 28, 28)[..., 0], as_pixels(images[:1] * 0.5)[0, ..., 0])


def test_rows_of_nrow_keep_reconstructions_below_the_inputs(tmp_path):
    images = torch.rand(5, 1, 8, 8)
    run(ReconstructionSaver(folder=tmp_path, num_images=5, nrow=3), images, batch_size=5)
    grid = read_png(tmp_path / 'reconstruction_0.png')
    assert grid.shape == (PAD + 4 * 10, PAD + 3 * 10, 3)  # 2 rows of inputs (one blank), 2 of outputs
    assert np.array_equal(tile(grid, 2, 0, 8, 8)[..., 0], as_pixels(images[:1] * 0.5)[0, ..., 0])
    assert not tile(grid, 1, 2, 8, 8).any()  # the blank tile that pads the inputs


def test_training_phase_and_custom_filename(tmp_path):
    images = torch.rand(4, 1, 8, 8)
    run(ReconstructionSaver(folder=tmp_path, filename='train/e{epoch:03d}.jpg', on='training', num_images=2),
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
        run(ReconstructionSaver(folder=tmp_path, input_key=key), torch.rand(2, 1, 8, 8))


def test_unknown_image_shape_asks_for_image_shape(tmp_path):
    with pytest.raises(ValueError, match='pass image_shape'):
        run(ReconstructionSaver(folder=tmp_path), torch.rand(2, 10))


@pytest.mark.parametrize('kwargs, error, message', [
    ({'num_images': 0}, ValueError, 'num_images must be >= 1, got 0'),
    ({'num_images': 2.5}, TypeError, 'num_images must be an int'),
    ({'nrow': 0}, ValueError, 'nrow must be >= 1'),
    ({'on': 'test'}, ValueError, "on must be 'validation' or 'training'"),
    ({'filename': 'recon_{step}.png'}, ValueError, 'only field is {epoch}'),
    ({'filename': 'recon_{}.png'}, ValueError, 'only field is {epoch}'),
    ({'filename': 'recon_{epoch'}, ValueError, 'only field is {epoch}'),
    ({'filename': 'recon_{epoch}'}, ValueError, 'image extension'),
    ({'filename': '../escape_{epoch}.png'}, ValueError, 'stay inside the folder'),
    ({'filename': '/tmp/abs_{epoch}.png'}, ValueError, 'stay inside the folder'),
    ({'image_shape': (28, 28)}, ValueError, 'image_shape must be'),
    ({'output_transform': 3}, TypeError, 'output_transform must be callable'),
])
def test_bad_arguments_fail_at_construction(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        ReconstructionSaver(folder=tmp_path, **kwargs)


def test_folder_that_is_a_file_fails_at_construction(tmp_path):
    path = tmp_path / 'file'
    path.write_text('x')
    with pytest.raises(ValueError, match='is not a directory'):
        ReconstructionSaver(folder=path)


def test_nothing_is_copied_on_steps_after_the_grid_is_saved(tmp_path, monkeypatch):
    saver = ReconstructionSaver(folder=tmp_path, num_images=2)
    calls = []
    original = saver._collect
    monkeypatch.setattr(saver, '_collect', lambda state: calls.append(1) or original(state))
    run(saver, torch.rand(12, 1, 8, 8), batch_size=2, epochs=2)
    assert len(calls) == 2  # one batch per epoch; the other five validation steps do nothing
