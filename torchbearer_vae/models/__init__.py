"""The models: the base of every VAE (yours included), the reference VAEs and the conditional VAE.

A model's constructor arguments are recorded as its ``config``, so :func:`model_from_checkpoint`
rebuilds it from a checkpoint.
"""
from .base import BaseVAE
from .conditional import ConditionalVAE
from .rebuild import model_from_checkpoint
from .vae import VAE, ConvVAE, SpatialVAE

__all__ = ['BaseVAE', 'VAE', 'ConvVAE', 'SpatialVAE', 'ConditionalVAE', 'model_from_checkpoint']
