"""The fitted latent prior of a ``torchbearer-vae`` run: fitted by ``train`` at its last epoch, kept in the
checkpoint, drawn from by ``sample --prior fitted``.

``train`` fits :func:`~torchbearer_vae.fit_latent_prior` to the codes of the run's training images once its last
epoch is trained, and the last checkpoint keeps it (:func:`~torchbearer_vae.latent_prior_state_dict`, loadable
with ``weights_only=True``): a Gaussian mixture of :data:`COMPONENTS` components for a VAE, full covariances up to
:data:`FULL_UP_TO` latent values and diagonal ones above (a full fit grows with the square of the values), a
categorical prior per position for a VQ-VAE. A resumed run given more epochs fits it again at its new last epoch.
A conditional model gets none (its classes are its prior).

Internal to the command line (:mod:`torchbearer_vae.cli`); every refusal is a :class:`CommandError`.
"""
from typing import Any, Dict, Optional

import torch

from ..errors import CheckpointError, CommandError
from ..model_utils import Data, is_conditional
from ..models.latent_prior import fit_latent_prior, latent_prior_from_state_dict, latent_prior_state_dict
from ..models.quantizer import VectorQuantizer

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

#: The checkpoint's key of the fitted prior.
PRIOR = 'latent_prior'
#: Gaussians of a VAE's fitted mixture (pythae's GaussianMixtureSampler and Ghosh et al. 2020 use 10).
COMPONENTS = 10
#: The most latent values a VAE's mixture fits full covariances for; diagonal ones above.
FULL_UP_TO = 64
#: What ``sample --prior`` takes: the model's own ``N(0, I)``, or the prior ``train`` fitted.
PRIORS = ('normal', 'fitted')


def has_codebook(model: Any) -> bool:
    """Whether ``model`` is a VQ-VAE (a :class:`~torchbearer_vae.VectorQuantizer` as ``model.quantizer``)."""
    return VectorQuantizer.of(model) is not None


def fit_run_prior(model: Any, data: Data, seed: int) -> Optional[Dict[str, Any]]:
    """The prior a run's checkpoint keeps, fitted to the codes of ``data`` (the training images), or None for a
    conditional model."""
    if is_conditional(model):
        return None
    generator = torch.Generator().manual_seed(seed)
    dim = getattr(model, 'latent_dim', None)
    covariance = 'full' if isinstance(dim, int) and dim <= FULL_UP_TO else 'diag'
    return latent_prior_state_dict(fit_latent_prior(model, data, components=COMPONENTS, covariance=covariance,
                                                    batch_size=500, generator=generator))


def run_prior(checkpoint: Dict[str, Any], model: Any, path: str, wanted: Optional[str]) -> Any:
    """The prior ``sample`` draws from: ``--prior`` (``wanted``), by default fitted for a VQ-VAE and ``N(0, I)``
    (None) for a VAE; CommandError where there is no such prior."""
    wanted = wanted or ('fitted' if has_codebook(model) else 'normal')
    if wanted == 'normal':
        if has_codebook(model):
            raise CommandError(f'the model in {path} is a {type(model).__name__}: its codes have no N(0, I) prior to '
                               f'draw from; use --prior fitted, the prior train fitted to its codes')
        return None
    if PRIOR not in checkpoint:
        conditional = ' (a conditional model gets none: its classes are its prior, --label N)' \
            if is_conditional(model) else ''
        needs = 'a VQ-VAE needs a prior over its codes to be sampled, and ' if has_codebook(model) else ''
        raise CommandError(f'{needs}{path} holds no fitted prior{conditional}: train fits one once its last epoch is '
                           f'trained; finish the run (train --resume), or fit one with torchbearer_vae.'
                           f'fit_latent_prior' + ('' if has_codebook(model) else '; or use --prior normal'))
    try:
        prior = latent_prior_from_state_dict(checkpoint[PRIOR])
    except CheckpointError as error:
        raise CommandError(f'{path}: {error}; use the checkpoint of a run') from None
    latent_dim = getattr(model, 'latent_dim', None)
    if latent_dim is not None and prior.dim != latent_dim:
        raise CommandError(f'the fitted prior in {path} draws codes of {prior.dim} values, but its model\'s codes have '
                           f'{latent_dim}: the file was changed since train wrote it; use the checkpoint of a run')
    return prior
