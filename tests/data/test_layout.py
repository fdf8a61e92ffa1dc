"""Image layout is never silently wrong: channels-last photographs become exactly what ToTensor makes of them.

Real colour photographs (scikit-learn's two sample images, 427x640 RGB) cut into 32x32 patches,
held as numpy, PIL and torchvision's CIFAR10 hold images: ``(N, H, W, C)`` uint8.
"""
import warnings

import numpy as np
import pytest
import torch
import torchbearer
from stand_ins import assert_same_batches, batches
from torch.utils.data import DataLoader, Subset

from torchbearer_vae import AutoEncoderDataset, ConvVAE, ImageDataset, TensorLoader, kld_loss, train_val_split


@pytest.fixture(scope='module')
def patches():
    """520 real 32x32 RGB patches, ``(520, 32, 32, 3)`` uint8, channels-last, and a label per photograph."""
    from sklearn import datasets as sklearn_datasets  # scikit-learn is in the test extra: never skipped
    photos = sklearn_datasets.load_sample_images().images  # china.jpg and flower.jpg, (427, 640, 3) uint8
    cut = [photo[top:top + 32, left:left + 32] for photo in photos
           for top in range(0, 416, 32) for left in range(0, 640, 32)]
    labels = np.repeat(np.arange(len(photos)), len(cut) // len(photos))
    return np.stack(cut), labels






# -- ImageDataset --
def test_channels_last_items_are_exactly_to_tensor_of_the_patch(patches):
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    images, labels = patches
    assert images.shape == (520, 32, 32, 3) and images.dtype == np.uint8 and images.std() > 30  # real, varied
    dataset = ImageDataset(images, labels)
    assert dataset.data.shape == (520, 3, 32, 32) and dataset.data.dtype == torch.uint8  # one byte per pixel
    for index in range(len(images)):
        x, label = dataset[index]
        assert torch.equal(x, to_tensor(images[index]))  # bit for bit
        assert label == labels[index]
    assert torch.equal(dataset[7][0], to_tensor(Image.fromarray(images[7])))  # as from a PIL image
    # The photographs' own structure survives: each channel of a patch is that colour plane of the photo.
    assert torch.equal(dataset.data[0, 2], torch.from_numpy(images[0, :, :, 2].copy()))


@pytest.mark.parametrize('convert', [
    lambda images: images,  # numpy, channels-last
    lambda images: torch.from_numpy(images),  # tensor, channels-last
    lambda images: np.ascontiguousarray(images.transpose(0, 3, 1, 2)),  # numpy, channels-first
    lambda images: torch.from_numpy(images).permute(0, 3, 1, 2),  # tensor, channels-first (a view)
    lambda images: np.stack([np.asarray(image) for image in images[:, ::-1][:, ::-1]]),  # flipped twice: strides < 0
])
def test_every_layout_and_container_gives_the_same_dataset(patches, convert):
    images, labels = patches
    expected = torch.from_numpy(images).permute(0, 3, 1, 2)
    dataset = ImageDataset(convert(images), torch.from_numpy(labels))
    assert torch.equal(dataset.data, expected)


def test_read_only_and_grey_numpy_arrays(patches):
    images = patches[0].copy()
    images.flags.writeable = False  # e.g. np.frombuffer: no warning, no shared write access
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        dataset = ImageDataset(images)
    assert torch.equal(dataset.data, torch.from_numpy(patches[0]).permute(0, 3, 1, 2))
    grey = torch.from_numpy(np.ascontiguousarray(patches[0][..., 0]))  # (520, 32, 32): grey images, as MNIST
    dataset = ImageDataset(grey)
    assert dataset[3].shape == (1, 32, 32)
    assert dataset.data.data_ptr() == grey.data_ptr()  # shared, not copied


@pytest.mark.parametrize('shape, channels_last, expected', [
    ((2, 3, 32, 3), True, (2, 3, 3, 32)),
    ((2, 3, 32, 3), False, (2, 3, 32, 3)),
    ((2, 4, 4, 4), True, (2, 4, 4, 4)),
    ((2, 5, 6, 2), True, (2, 2, 5, 6)),  # two channels (grey and alpha): stated, so accepted
])
def test_stated_layout_is_used(shape, channels_last, expected):
    data = torch.arange(np.prod(shape), dtype=torch.int64).remainder(256).to(torch.uint8).reshape(shape)
    dataset = ImageDataset(data, channels_last=channels_last)
    assert dataset.data.shape == expected
    assert torch.equal(dataset.data, data.permute(0, 3, 1, 2) if channels_last else data)


@pytest.mark.parametrize('shape, reason', [
    ((10, 3, 32, 3), 'both 3 and 3 could be its channels'),
    ((10, 1, 28, 4), 'both 1 and 4 could be its channels'),
    ((10, 2, 28, 28), 'neither 2 nor 28 is a number of channels'),
])
def test_ambiguous_layout_is_a_clear_error_saying_how_to_state_it(shape, reason):
    data = np.zeros(shape, dtype=np.uint8)
    for make in (lambda: ImageDataset(data), lambda: TensorLoader(data), lambda: TensorLoader(torch.from_numpy(data)),
                 lambda: TensorLoader(AutoEncoderDataset(data))):
        with pytest.raises(ValueError) as caught:
            make()
        message = str(caught.value)
        assert 'cannot tell the layout of' in message and f'{shape}' in message and reason in message
        assert 'pass channels_last=True for (N, H, W, C)' in message
        assert 'channels_last=False for (N, C, H, W)' in message


def test_one_channels_last_image_is_not_read_as_a_batch_of_grey_images(patches):
    one = patches[0][0]  # (32, 32, 3): a photo, not 32 grey 32x3 images
    with pytest.raises(ValueError, match=r'looks like one channels-last image.*image\[None\]'):
        ImageDataset(one)
    assert ImageDataset(one[None])[0].shape == (3, 32, 32)
    assert len(ImageDataset(one, channels_last=False)) == 32  # stated: 32 grey images of 32x3
    with pytest.raises(ValueError, match='channels_last=True needs 4-D images'):
        ImageDataset(patches[0][..., 0], channels_last=True)


@pytest.mark.parametrize('kwargs, error, message', [
    ({'data': [[[0]]]}, TypeError, 'data must be a uint8 tensor or numpy array of images, got a list'),
    ({'data': np.zeros((2, 4, 4), dtype=np.float32)}, ValueError, 'data must be uint8 images'),
    ({'data': torch.zeros(2, 4, dtype=torch.uint8)}, ValueError, r'uint8 images .* got a torch.uint8 Tensor of shape'),
    ({'channels_last': 'yes'}, TypeError, "channels_last must be True or False, got 'yes'"),
    ({'targets': torch.zeros(3)}, ValueError, 'targets must hold 2 labels, one per image'),
    ({'targets': 'ab'}, TypeError, 'targets must be None or a tensor, array or sequence of labels, got a str'),
    ({'transform': 3}, TypeError, 'transform must be callable'),
])
def test_bad_image_dataset_arguments(kwargs, error, message):
    kwargs = {'data': torch.zeros(2, 5, 5, dtype=torch.uint8), **kwargs}
    with pytest.raises(error, match=message):
        ImageDataset(**kwargs)


def test_the_transform_gets_the_float_image():
    data = torch.full((2, 4, 4), 255, dtype=torch.uint8)  # two grey 4x4 images (square: not one 4-channel image)
    dataset = ImageDataset(data, [0, 1], transform=lambda x: x * 2)
    assert torch.equal(dataset[1][0], torch.full((1, 4, 4), 2.0)) and dataset[1][1] == 1


# -- TensorLoader over channels-last images --
def test_loader_over_channels_last_gives_the_batches_of_channels_first(patches):
    images, labels = patches
    first = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    for channels_last, channels_first in (
            (images, first),
            (torch.from_numpy(images), first),
            (AutoEncoderDataset(images), AutoEncoderDataset(first)),
            (Subset(AutoEncoderDataset(images), range(500, 0, -7)),
             Subset(AutoEncoderDataset(first), range(500, 0, -7))),
            (ImageDataset(images, labels), ImageDataset(first, labels))):
        expected = batches(TensorLoader(channels_first, batch_size=64, shuffle=True, seed=3))
        loader = TensorLoader(channels_last, batch_size=64, shuffle=True, seed=3)
        assert_same_batches(expected, batches(loader))
        assert loader.nbytes <= images.nbytes + 8 * len(images)  # stored as uint8 (and int64 labels): not floats
    x = next(iter(TensorLoader(images, batch_size=520)))
    assert torch.equal(x, first.float() / 255)


def test_loader_over_image_dataset_gives_the_dataloader_batches(patches):
    images, labels = patches
    train, val = train_val_split(AutoEncoderDataset(ImageDataset(images, labels)), 0.2, seed=0)
    for dataset in (train, val, ImageDataset(images, labels)):
        assert_same_batches(batches(DataLoader(dataset, batch_size=50)), batches(TensorLoader(dataset, batch_size=50)))


def test_stated_layout_for_an_ambiguous_array(patches):
    images = patches[0][:, :, :3]  # (520, 32, 3, 3) channels-last: ambiguous
    loader = TensorLoader(images, batch_size=520, channels_last=True)
    assert torch.equal(next(iter(loader)), torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    with pytest.raises(ValueError, match='channels_last applies to a uint8 tensor or array of images.*not to '
                                         'ImageDataset.*pass it there'):
        TensorLoader(ImageDataset(images, channels_last=True), channels_last=True)


def test_torchvision_cifar10_is_served_from_its_channels_last_data(patches, tmp_path, fake_cifar10):
    from torchvision import transforms

    images, labels = patches
    cifar = fake_cifar10(tmp_path, images, labels)(tmp_path, train=False, transform=transforms.ToTensor())
    assert cifar.data.shape == (520, 32, 32, 3) and np.array_equal(cifar.data, images)
    loader = TensorLoader(AutoEncoderDataset(cifar), batch_size=100)
    assert loader.nbytes == images.nbytes  # recognised (uint8, shared with .data), not preloaded as floats
    assert_same_batches(batches(DataLoader(AutoEncoderDataset(cifar), batch_size=100)), batches(loader))
    assert_same_batches(batches(DataLoader(cifar, batch_size=100)), batches(TensorLoader(cifar, batch_size=100)))


# -- in a real Trial --
@pytest.mark.slow
def test_conv_vae_trains_from_channels_last_photographs(patches):
    images, labels = patches
    train, val = train_val_split(AutoEncoderDataset(ImageDataset(images, labels)), 0.1, seed=0)
    torch.manual_seed(0)
    model = ConvVAE(input_shape=(3, 32, 32), latent_dim=8)
    trial = torchbearer.Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3),
                              torch.nn.BCELoss(reduction='sum'), metrics=['loss'], callbacks=[kld_loss()], verbose=0)
    trial.with_generators(TensorLoader(train, batch_size=64, shuffle=True, seed=0), TensorLoader(val, batch_size=64))
    history = trial.run(epochs=1)
    assert len(history) == 1 and history[0]['train_steps'] == 8
    assert np.isfinite(history[0]['loss']) and np.isfinite(history[0]['val_loss'])
    # A channels-last batch would have reached the model as (B, 32, 32, 3) and failed in its first convolution.
