"""Data for autoencoders: ``(x, x)`` datasets, image folders (decoded once, cached), fast in-memory loaders."""
from .cache import CACHE_ENV, default_cache_dir
from .datasets import (
    AutoEncoderDataset,
    IDXDataset,
    ImageDataset,
    load_cifar10,
    load_digits,
    load_mnist,
    read_idx,
    train_val_split,
)
from .folders import IMAGE_EXTENSIONS, find_images, load_image_folder
from .loaders import TensorLoader, load_batch_with_labels

__all__ = ['AutoEncoderDataset', 'train_val_split', 'read_idx', 'ImageDataset', 'IDXDataset', 'load_mnist',
           'load_digits', 'load_cifar10', 'IMAGE_EXTENSIONS', 'find_images', 'load_image_folder', 'CACHE_ENV',
           'default_cache_dir', 'TensorLoader', 'load_batch_with_labels']
