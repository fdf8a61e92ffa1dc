import gzip
import hashlib
import pickle
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset, TensorDataset

from torchbearer_vae import AutoEncoderDataset, IDXDataset, load_mnist, read_idx, train_val_split


def test_idx_reader_reads_the_real_mnist(mnist_dir):
    images = read_idx(f'{mnist_dir}/t10k-images-idx3-ubyte.gz')
    labels = read_idx(f'{mnist_dir}/t10k-labels-idx1-ubyte.gz')
    assert images.shape == (10000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10000,)
    # The checksums and counts in ../shared/data/README.md.
    with gzip.open(f'{mnist_dir}/t10k-images-idx3-ubyte.gz') as file:
        header = file.read(16)
    assert hashlib.md5(header + images.numpy().tobytes()).hexdigest() == '2646ac647ad5339dbf082846283269ea'
    assert torch.bincount(labels.long()).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert images.double().mean().item() == pytest.approx(33.79, abs=0.01)


def test_idx_reader_reads_raw_files_and_wide_types(tmp_path):
    values = (np.arange(6).reshape(2, 3) - 3).astype('>i4')
    path = tmp_path / 'raw-idx2'
    path.write_bytes(bytes([0, 0, 0x0C, 2]) + (2).to_bytes(4, 'big') + (3).to_bytes(4, 'big') + values.tobytes())
    assert torch.equal(read_idx(path), torch.from_numpy(values.astype(np.int32)))


@pytest.mark.parametrize('content, message', [
    (b'not an idx file', 'not an IDX file'),
    (bytes([0, 0, 8, 1]) + (5).to_bytes(4, 'big') + b'abc', 'truncated or corrupt'),
    (b'', 'not an IDX file'),
])
def test_idx_reader_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / 'bad'
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_idx(path)


def test_idx_dataset_items_equal_torchvision_to_tensor(mnist):
    from torchvision.transforms.functional import to_tensor
    image, label = mnist[7]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and isinstance(label, int)
    assert torch.equal(image, to_tensor(mnist.data[7].numpy()))
    assert label == int(mnist.targets[7])
    assert 'IDXDataset(10,000 images' in repr(mnist)


def test_idx_dataset_from_folder_errors(tmp_path, mnist_dir):
    with pytest.raises(FileNotFoundError, match='t10k-images-idx3-ubyte'):
        IDXDataset.from_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match='train-images-idx3-ubyte'):
        IDXDataset.from_folder(mnist_dir, split='train')
    with pytest.raises(ValueError, match='split must be'):
        IDXDataset.from_folder(mnist_dir, split='val')


def test_load_mnist_uses_local_files_and_fails_clearly_offline(tmp_path, mnist_dir):
    assert len(load_mnist(mnist_dir, train=False)) == 10000
    with pytest.raises(RuntimeError, match=r'MNIST train files not found in .*put train-images-idx3-ubyte.gz'):
        load_mnist(tmp_path, train=True, download=False)


def test_autoencoder_dataset_returns_the_input_as_target(mnist):
    data = AutoEncoderDataset(mnist)
    x, target = data[3]
    assert torch.equal(x, mnist[3][0]) and target is x
    assert len(data) == len(mnist)
    _, flat = AutoEncoderDataset(mnist, flatten_target=True)[3]
    assert flat.shape == (784,) and torch.equal(flat, x.view(-1))


def test_autoencoder_dataset_denoising_transform_changes_only_the_input():
    clean = torch.rand(4, 1, 5, 5)
    data = AutoEncoderDataset(TensorDataset(clean, torch.arange(4)), transform=lambda x: x + 1)
    x, target = data[2]
    assert torch.equal(target, clean[2]) and torch.equal(x, clean[2] + 1)
    _, doubled = AutoEncoderDataset(clean, target_transform=lambda x: 2 * x)[1]
    assert torch.equal(doubled, 2 * clean[1])


@pytest.mark.parametrize('wrap', [
    lambda images: images,  # a bare tensor
    lambda images: TensorDataset(images),  # 1-tuples
    lambda images: TensorDataset(images, torch.zeros(len(images)), torch.ones(len(images))),  # 3-tuples
    lambda images: Subset(TensorDataset(images, torch.zeros(len(images))), [1, 2, 3]),
    lambda images: [(image.numpy(), 0) for image in images],  # numpy items
])
def test_autoencoder_dataset_accepts_many_item_shapes(wrap):
    images = torch.rand(5, 2, 3)
    dataset = wrap(images)
    data = AutoEncoderDataset(dataset, flatten_target=True)
    x, target = data[0]
    assert torch.equal(torch.as_tensor(x).reshape(-1), target)


@pytest.mark.slow
def test_autoencoder_dataset_works_with_dataloader_workers(mnist):
    data = AutoEncoderDataset(Subset(mnist, range(64)), flatten_target=True)
    pickle.dumps(data)
    batches = list(DataLoader(data, batch_size=32, num_workers=2))
    assert len(batches) == 2
    x, target = batches[1]
    assert x.shape == (32, 1, 28, 28) and torch.equal(x.view(32, -1), target)


@pytest.mark.parametrize('dataset, kwargs, error, message', [
    (42, {}, TypeError, 'map-style dataset'),
    (torch.rand(3, 2), {'transform': 'noise'}, TypeError, 'transform must be callable'),
    ([()], {}, ValueError, 'item 0 is an empty tuple'),
    ([('text', 0)], {'flatten_target': True}, TypeError, 'item 0 is a str.*ToTensor'),
])
def test_autoencoder_dataset_bad_input_fails_at_construction(dataset, kwargs, error, message):
    with pytest.raises(error, match=message):
        AutoEncoderDataset(dataset, **kwargs)


def test_keep_labels_refuses_a_dataset_without_labels():
    with pytest.raises(ValueError, match=r'keep_labels=True needs items \(x, label, \.\.\.\)'):
        AutoEncoderDataset(torch.rand(4, 1, 8, 8), keep_labels=True)
    with pytest.raises(TypeError, match='keep_labels must be True or False'):
        AutoEncoderDataset(TensorDataset(torch.rand(4, 2), torch.zeros(4)), keep_labels=1)


def test_train_val_split_is_disjoint_seeded_and_keeps_global_random_state():
    data = torch.arange(1000)
    random.seed(123)
    expected_next = random.random()
    random.seed(123)
    train, val = train_val_split(data, 0.1, seed=1)
    assert random.random() == expected_next
    train_items = {int(train[i]) for i in range(len(train))}
    val_items = {int(val[i]) for i in range(len(val))}
    assert len(train) == 900 and len(val) == 100
    assert train_items.isdisjoint(val_items) and len(train_items | val_items) == 1000
    _, again = train_val_split(data, 0.1, seed=1)
    assert [int(again[i]) for i in range(100)] == [int(val[i]) for i in range(100)]


@pytest.mark.parametrize('fraction, error, message', [
    (0, ValueError, 'val_fraction must be a finite number > 0 and < 1, got 0.0'),
    (1.0, ValueError, 'val_fraction must be a finite number > 0 and < 1, got 1.0'),
    ('0.1', TypeError, "val_fraction must be a finite number > 0 and < 1, got '0.1'"),
    (0.0001, ValueError, 'empty'),
])
def test_train_val_split_bad_fraction(fraction, error, message):
    with pytest.raises(error, match=message):
        train_val_split(torch.arange(100), fraction)
