"""The models: the base of every VAE (yours included), the reference VAEs, the conditional VAE and the quantizer.

A model's constructor arguments are recorded as its ``config``, so :func:`model_from_checkpoint`
rebuilds it from a checkpoint.
"""
from .base import BaseVAE
from .conditional import ConditionalVAE
from .quantizer import QuantizerOutput, VectorQuantizer
from .rebuild import model_from_checkpoint
from .vae import VAE, ConvVAE, SpatialVAE

__all__ = ['BaseVAE', 'VAE', 'ConvVAE', 'SpatialVAE', 'ConditionalVAE', 'VectorQuantizer', 'QuantizerOutput',
           'model_from_checkpoint']
