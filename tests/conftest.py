"""Shared fixtures: the real MNIST test split from ../shared/data/mnist, as IDX and as PNG files; a local CIFAR-10."""
import os
import pickle

import numpy as np
import pytest
import torch

import torchbearer_vae

MNIST_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'mnist'))


@pytest.fixture(scope='session')
def mnist_dir():
    """The folder with the real MNIST IDX files (the 10,000-image test split)."""
    if not os.path.isdir(MNIST_DIR):
        pytest.skip(f'the shared MNIST files are not at {MNIST_DIR} (see ../shared/data/README.md)')
    return MNIST_DIR


@pytest.fixture(scope='session')
def mnist(mnist_dir):
    """The real MNIST test split as an IDXDataset: (1, 28, 28) images in [0, 1] and labels."""
    return torchbearer_vae.IDXDataset.from_folder(mnist_dir)


@pytest.fixture(scope='session')
def mnist_png_folder(mnist, tmp_path_factory):
    """The real MNIST test split written as 10,000 PNG files, ``<label>/<index:05d>.png`` (written once a session)."""
    from PIL import Image

    root = tmp_path_factory.mktemp('mnist_png')
    for label in range(10):
        (root / str(label)).mkdir()
    for index, (image, label) in enumerate(zip(mnist.data.numpy(), mnist.targets.tolist())):
        Image.fromarray(image).save(root / str(label) / f'{index:05d}.png')
    return root


@pytest.fixture
def fake_cifar10(monkeypatch):
    """Write images as a local CIFAR-10 in its pickled format; returns torchvision's own CIFAR10 class to read it.

    ``write(root, images, labels, classes=('china', 'flower'))`` takes ``(N, 32, 32, 3)`` uint8
    images and writes ``root/cifar-10-batches-py``: all of them as the test split and, in five
    parts, as the training split, with ``batches.meta``. Only torchvision's checksums are skipped
    (they cannot match other images); the files are read and turned into ``.data`` by its code.
    """
    from torchvision.datasets import cifar

    monkeypatch.setattr(cifar, 'check_integrity', lambda path, md5=None: os.path.isfile(path))

    def write(root, images, labels, classes=('china', 'flower')):
        folder = os.path.join(root, 'cifar-10-batches-py')
        os.makedirs(folder)
        rows = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), -1)  # R, G, B planes
        labels = [int(label) for label in labels]
        parts = np.array_split(np.arange(len(images)), 5)
        batches = [('test_batch', np.arange(len(images)))] + [(f'data_batch_{i + 1}', part)
                                                               for i, part in enumerate(parts)]
        for name, part in batches:
            with open(os.path.join(folder, name), 'wb') as file:
                pickle.dump({'data': rows[part], 'labels': [labels[i] for i in part]}, file)
        with open(os.path.join(folder, 'batches.meta'), 'wb') as file:
            pickle.dump({'label_names': list(classes)}, file)
        return cifar.CIFAR10

    return write


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope='session', autouse=True)
def _cache_dir(tmp_path_factory):
    """The cache of decoded folders in the session's temporary folder, for the tests and the commands they run, never
    the user's own (the variable is inherited by every process a test starts)."""
    previous = os.environ.get(torchbearer_vae.CACHE_ENV)
    os.environ[torchbearer_vae.CACHE_ENV] = str(tmp_path_factory.mktemp('cache'))
    yield
    if previous is None:
        del os.environ[torchbearer_vae.CACHE_ENV]
    else:
        os.environ[torchbearer_vae.CACHE_ENV] = previous
