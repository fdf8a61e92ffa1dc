"""torchbearer_vae: variational auto-encoders (and autoencoders in general) for torchbearer.

Importing the package registers its public objects into torchbearer's namespace
(``torchbearer.MU``, ``torchbearer.callbacks.kld_loss``, ...): see :func:`register`.
"""
from ._registry import register
from .callbacks import ReconstructionSaver
from .datasets import AutoEncoderDataset, IDXDataset, load_mnist, read_idx, train_val_split
from .losses import MissingStateError, divergence, kld, kld_loss, vae_loss
from .models import VAE
from .state import KL, LOGVAR, MU
from .version import __version__

__all__ = [
    'MU', 'LOGVAR', 'KL',
    'kld', 'vae_loss', 'divergence', 'kld_loss', 'MissingStateError',
    'ReconstructionSaver',
    'AutoEncoderDataset', 'train_val_split', 'read_idx', 'IDXDataset', 'load_mnist',
    'VAE',
    'register',
    '__version__',
]

register()
