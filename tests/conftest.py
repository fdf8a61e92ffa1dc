"""Shared fixtures: the real MNIST test split from ../shared/data/mnist."""
import os

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


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
