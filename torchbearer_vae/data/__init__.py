"""Data for autoencoders: ``(x, x)`` datasets, image datasets and folders, and fast in-memory loaders."""
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
           'load_digits', 'load_cifar10', 'IMAGE_EXTENSIONS', 'find_images', 'load_image_folder', 'TensorLoader',
           'load_batch_with_labels']
