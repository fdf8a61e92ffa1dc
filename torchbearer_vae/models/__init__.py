"""The models: the base of every VAE (yours included), the reference and conditional VAEs, the VQ-VAE, its quantizer,
and the priors fitted to a trained model's codes.

A model's constructor arguments are recorded as its ``config``, so :func:`model_from_checkpoint`
rebuilds it from a checkpoint.
"""
from .base import BaseVAE
from .conditional import ConditionalVAE
from .latent_prior import CategoricalPrior, fit_latent_prior, latent_prior_from_state_dict, latent_prior_state_dict
from .quantizer import QuantizerOutput, VectorQuantizer
from .rebuild import model_from_checkpoint
from .vae import VAE, ConvVAE, SpatialVAE
from .vqvae import VQVAE

__all__ = ['BaseVAE', 'VAE', 'ConvVAE', 'SpatialVAE', 'ConditionalVAE', 'VQVAE', 'VectorQuantizer', 'QuantizerOutput',
           'model_from_checkpoint', 'CategoricalPrior', 'fit_latent_prior', 'latent_prior_state_dict',
           'latent_prior_from_state_dict']
