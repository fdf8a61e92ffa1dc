"""torchbearer_vae: variational auto-encoders (and autoencoders in general) for torchbearer.

Importing the package registers its public objects into torchbearer's namespace
(``torchbearer.MU``, ``torchbearer.callbacks.kld_loss``, ...): see :func:`register`.
"""
from ._registry import register
from .base import BaseVAE
from .callbacks import Interpolation, LatentTraversal, ReconstructionSaver, SampleSaver
from .checkpoints import (
                          Checkpointer,
                          CheckpointError,
                          load_checkpoint,
                          load_model_state,
                          model_from_checkpoint,
                          save_checkpoint,
)
from .conditional import ConditionalVAE
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
from .distributed import ReduceMetrics
from .divergences import divergence, kld_loss
from .errors import MissingStateError
from .evaluation import importance_weighted_nll, negative_elbo
from .folders import find_images, load_image_folder
from .guards import NaNGuard
from .imaging import MakeGrid
from .latent import KLPerDimension, LatentManifold, LatentScatter
from .loaders import TensorLoader, load_batch_with_labels
from .losses import bernoulli_mean, kld, reconstruction_loss, vae_loss
from .metrics import ActiveUnits, KLMetric, ReconstructionMetric
from .models import VAE, ConvVAE
from .picture_saver import PictureSaver
from .records import MetricsCSV, plot_history, write_json
from .schedules import Schedule, capacity, constant, cyclical, linear_warmup
from .state import GLOBAL_EPOCH, GLOBAL_STEP, KL, LABEL, LOGVAR, MU, RECON
from .version import __version__

__all__ = [
    'MU', 'LOGVAR', 'KL', 'RECON', 'GLOBAL_STEP', 'GLOBAL_EPOCH', 'LABEL',
    'kld', 'reconstruction_loss', 'vae_loss', 'bernoulli_mean', 'divergence', 'kld_loss', 'MissingStateError',
    'Schedule', 'constant', 'linear_warmup', 'cyclical', 'capacity',
    'KLMetric', 'ReconstructionMetric', 'ActiveUnits',
    'ReconstructionSaver', 'SampleSaver', 'LatentTraversal', 'Interpolation', 'PictureSaver', 'MakeGrid',
    'LatentScatter', 'LatentManifold', 'KLPerDimension',
    'AutoEncoderDataset', 'train_val_split', 'read_idx', 'ImageDataset', 'IDXDataset', 'load_mnist', 'load_digits',
    'load_cifar10', 'find_images', 'load_image_folder',
    'TensorLoader', 'load_batch_with_labels',
    'VAE', 'BaseVAE', 'ConvVAE', 'ConditionalVAE',
    'importance_weighted_nll', 'negative_elbo',
    'save_checkpoint', 'load_checkpoint', 'model_from_checkpoint', 'load_model_state', 'Checkpointer',
    'CheckpointError', 'MetricsCSV', 'plot_history', 'write_json',
    'NaNGuard',
    'ReduceMetrics',
    'register',
    '__version__',
]

register()
