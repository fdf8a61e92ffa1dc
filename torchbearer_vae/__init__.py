"""torchbearer_vae: variational auto-encoders (and autoencoders in general) for torchbearer.

Importing the package registers its public objects into torchbearer's namespace
(``torchbearer.MU``, ``torchbearer.callbacks.kld_loss``, ...): see :func:`register`.
"""
from .callbacks import (
    Interpolation,
    KLPerDimension,
    LatentManifold,
    LatentScatter,
    LatentTraversal,
    MakeGrid,
    NaNGuard,
    PictureSaver,
    ReconstructionSaver,
    SampleSaver,
)
from .checkpoints import Checkpointer, load_checkpoint, load_model_state, save_checkpoint
from .data import (
    CACHE_ENV,
    AutoEncoderDataset,
    IDXDataset,
    ImageDataset,
    TensorLoader,
    default_cache_dir,
    find_images,
    load_batch_with_labels,
    load_cifar10,
    load_digits,
    load_image_folder,
    load_mnist,
    read_idx,
    train_val_split,
)
from .distributed import ReduceMetrics
from .divergences import codebook_loss, commitment_loss, divergence, kld_loss
from .errors import CheckpointError, MissingStateError
from .evaluation import importance_weighted_nll, negative_elbo, reconstruction_psnr, reconstruction_term
from .losses import bernoulli_mean, kld, reconstruction_loss, vae_loss
from .metrics import ActiveUnits, KLMetric, QuantizerMetric, ReconstructionMetric
from .models import (
    VAE,
    VQVAE,
    BaseVAE,
    CategoricalPrior,
    ConditionalVAE,
    ConvVAE,
    QuantizerOutput,
    SpatialVAE,
    VectorQuantizer,
    fit_latent_prior,
    latent_prior_from_state_dict,
    latent_prior_state_dict,
    model_from_checkpoint,
)
from .priors import GaussianMixture
from .records import MetricsCSV, plot_history, write_json
from .registry import register
from .schedules import Schedule, capacity, constant, cyclical, linear_warmup
from .state import CODEBOOK, COMMITMENT, GLOBAL_EPOCH, GLOBAL_STEP, KL, LABEL, LOGVAR, MU, PERPLEXITY, RECON, USED_CODES
from .version import __version__

__all__ = [
    'MU', 'LOGVAR', 'KL', 'RECON', 'GLOBAL_STEP', 'GLOBAL_EPOCH', 'LABEL', 'COMMITMENT', 'CODEBOOK',
    'PERPLEXITY', 'USED_CODES',
    'kld', 'reconstruction_loss', 'vae_loss', 'bernoulli_mean', 'divergence', 'kld_loss', 'commitment_loss',
    'codebook_loss', 'MissingStateError',
    'Schedule', 'constant', 'linear_warmup', 'cyclical', 'capacity',
    'KLMetric', 'ReconstructionMetric', 'ActiveUnits', 'QuantizerMetric',
    'ReconstructionSaver', 'SampleSaver', 'LatentTraversal', 'Interpolation', 'PictureSaver', 'MakeGrid',
    'LatentScatter', 'LatentManifold', 'KLPerDimension',
    'AutoEncoderDataset', 'train_val_split', 'read_idx', 'ImageDataset', 'IDXDataset', 'load_mnist', 'load_digits',
    'load_cifar10', 'find_images', 'load_image_folder', 'default_cache_dir', 'CACHE_ENV',
    'TensorLoader', 'load_batch_with_labels',
    'VAE', 'BaseVAE', 'ConvVAE', 'SpatialVAE', 'ConditionalVAE',
    'VQVAE', 'VectorQuantizer', 'QuantizerOutput', 'GaussianMixture', 'CategoricalPrior', 'fit_latent_prior',
    'latent_prior_state_dict', 'latent_prior_from_state_dict',
    'importance_weighted_nll', 'negative_elbo', 'reconstruction_psnr', 'reconstruction_term',
    'save_checkpoint', 'load_checkpoint', 'model_from_checkpoint', 'load_model_state', 'Checkpointer',
    'CheckpointError', 'MetricsCSV', 'plot_history', 'write_json',
    'NaNGuard',
    'ReduceMetrics',
    'register',
    '__version__',
]

register()
