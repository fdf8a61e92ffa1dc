"""The model of a ``torchbearer-vae`` run, built from the run's options and the shape of its images.

``--model mlp`` is :class:`~torchbearer_vae.VAE` (the PyTorch example's), ``--model conv`` is
:class:`~torchbearer_vae.ConvVAE`, ``--conditional`` the MLP :class:`~torchbearer_vae.ConditionalVAE`;
``--likelihood`` and ``--sigma`` choose the decoder's likelihood. Another model for ``--model`` is one more
entry of ``MODELS``: the choices, the help and the default width follow from it.
Options a run left to their default are settled here once the images are known (``mlp`` for grey
images, ``conv`` for colour ones), and recorded so that a resumed run and ``evaluate`` use the same.

Internal to the command line (:mod:`torchbearer_vae.cli`); every refusal is a :class:`CommandError`.
"""
import dataclasses
from typing import Callable, Optional, Sequence

import torch

from ..errors import CommandError
from ..losses import reconstruction_loss
from ..models.conditional import ConditionalVAE
from ..models.vae import VAE, ConvVAE

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """A model ``--model`` names: its class, its own default width (``--hidden-dim``) and what ``--help`` says of it."""
    model_class: type
    hidden_dim: int
    about: str


#: What ``--sigma`` says for the calibrated Gaussian decoder (``sigma=None`` of the models and reconstruction_loss).
CALIBRATED = 'calibrated'
#: ``--sigma``'s default, settled with the likelihood: the fixed standard deviation measured better than the calibrated
#: one for the default length of a run (docs/own_images.rst), and every run before ``calibrated`` used it.
SIGMA = 0.1


def decoder_sigma(options: dict) -> Optional[float]:
    """The models' ``sigma`` for the run's ``--sigma``: a number, or None for ``calibrated``."""
    return None if options['sigma'] == CALIBRATED else options['sigma']


#: The models of ``--model``, by the name the command line gives them: its choices, its help and build_model's class.
MODELS = {
    'mlp': ModelChoice(VAE, hidden_dim=400, about="the PyTorch example's VAE"),
    'conv': ModelChoice(ConvVAE, hidden_dim=256, about='ConvVAE, height and width multiples of 4'),
}


def settle(options: dict, image_shape: Sequence[int]) -> dict:
    """``options`` with the defaults that depend on the images filled in: ``model``, ``likelihood``, ``hidden_dim``.

    Colour images get the convolutional model and a Gaussian decoder (``--sigma``, by default SIGMA), grey ones the
    MLP and a Bernoulli decoder (their values are mostly near 0 or 1, as digits are).
    """
    options = dict(options)
    colour = len(image_shape) == 3 and image_shape[0] == 3
    if options.get('model') is None:
        options['model'] = 'conv' if colour and not options.get('conditional') else 'mlp'  # conditional: MLP only
    if options.get('likelihood') is None:  # a new run's (a checkpoint's options hold theirs)
        options['likelihood'] = 'gaussian' if colour else 'bernoulli'
        check_sigma(options)
    if options.get('sigma') is None:  # stored for either likelihood, as it always was
        options['sigma'] = SIGMA
    if options.get('hidden_dim') is None:
        options['hidden_dim'] = MODELS[options['model']].hidden_dim
    return options


def check_sigma(options: dict) -> None:
    """Refuse ``--sigma`` with a likelihood other than gaussian (it is the Gaussian's standard deviation)."""
    if options.get('sigma') is not None and options.get('likelihood') not in (None, 'gaussian'):
        raise CommandError(f'--sigma is the standard deviation of --likelihood gaussian; this run\'s likelihood is '
                           f'{options["likelihood"]}: add --likelihood gaussian, or leave --sigma out')


def check_conditional(options: dict) -> None:
    """Refuse ``--conditional`` with ``--model conv``: the conditional model is the MLP one."""
    if options.get('conditional') and options.get('model') == 'conv':
        raise CommandError('--conditional trains the MLP ConditionalVAE; there is no conditional --model conv: leave '
                           '--model out (or pass --model mlp)')


def build_model(options: dict, image_shape: Sequence[int], device: Optional[str] = None, *,
                num_classes: Optional[int] = None) -> torch.nn.Module:
    """The run's model for images of ``image_shape`` (on ``device``; ``'meta'`` allocates nothing).

    A ``--conditional`` run's model is a :class:`~torchbearer_vae.ConditionalVAE` of ``num_classes`` classes.

    Raises:
        CommandError: for sizes the model refuses (conv: height and width not multiples of 4) or too
            large for PyTorch to describe, naming the options to change.
    """
    name = options['model']
    config = {'latent_dim': options['latent_dim'], 'hidden_dim': options['hidden_dim'],
              'likelihood': options['likelihood'], 'sigma': decoder_sigma(options)}
    try:
        with torch.device(device or 'cpu'):
            if options.get('conditional'):
                return ConditionalVAE(tuple(image_shape), num_classes=num_classes, **config)
            return MODELS[name].model_class(tuple(image_shape), **config)
    except ValueError as error:
        if name == 'conv' and len(image_shape) == 3 and (image_shape[1] % 4 or image_shape[2] % 4):
            raise CommandError(f'--model conv needs images whose height and width are multiples of 4, but --dataset '
                               f'{options["dataset"] or "mnist"} has {"x".join(map(str, image_shape))}; pass '
                               f'--image-size 32 (or another multiple of 4) with --dataset folder:DIR, or use '
                               f'--model mlp') from None
        raise CommandError(f'--model {name}: {error}') from None
    except (RuntimeError, OverflowError, TypeError, MemoryError) as error:  # too large for PyTorch to describe
        raise CommandError(f'--hidden-dim {options["hidden_dim"]} and --latent-dim {options["latent_dim"]} make a '
                           f'model too large to build ({type(error).__name__}); use smaller values') from None


def criterion(likelihood: str, sigma: Optional[float]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The Trial's criterion: ``-log p(x|z)`` of the run's likelihood, in nats per image (the one formula)."""
    def reconstruction(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return reconstruction_loss(recon, target, likelihood, sigma=sigma, reduction='batchmean')
    return reconstruction
