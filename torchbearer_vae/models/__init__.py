"""The models: the base of every VAE (yours included), the reference and conditional VAEs, the VQ-VAE, its quantizer.

A model's constructor arguments are recorded as its ``config``, so :func:`model_from_checkpoint`
rebuilds it from a checkpoint.
"""
from .base import BaseVAE
from .conditional import ConditionalVAE
from .quantizer import QuantizerOutput, VectorQuantizer
from .rebuild import model_from_checkpoint
from .vae import VAE, ConvVAE, SpatialVAE
from .vqvae import VQVAE

__all__ = ['BaseVAE', 'VAE', 'ConvVAE', 'SpatialVAE', 'ConditionalVAE', 'VQVAE', 'VectorQuantizer', 'QuantizerOutput',
           'model_from_checkpoint']
