"""The model of a ``torchbearer-vae`` run, built from the run's options and the shape of its images.

``--model mlp`` is :class:`~torchbearer_vae.VAE` (the PyTorch example's), ``--model conv`` is
:class:`~torchbearer_vae.ConvVAE`, ``--model spatial`` is :class:`~torchbearer_vae.SpatialVAE`, ``--model vqvae``
:class:`~torchbearer_vae.VQVAE` (a codebook, ``--codebook-size`` and ``--code-dim``, and no KL term), ``--conditional``
the MLP :class:`~torchbearer_vae.ConditionalVAE`;
``--likelihood`` and ``--sigma`` choose the decoder's likelihood. Another model for ``--model`` is one more
entry of ``MODELS``: the choices, the help and the default width follow from it. ``--model module:Class`` is the
user's own :class:`~torchbearer_vae.BaseVAE` subclass, imported because the user named it (a class path found in
a checkpoint is never imported by itself); ``--model-arg`` and the config file's ``[model]`` table give its
constructor more arguments.
Options a run left to their default are settled here once the images are known (``mlp`` for grey
images, ``spatial`` for colour ones), and recorded so that a resumed run and ``evaluate`` use the same.

Internal to the command line (:mod:`torchbearer_vae.cli`); every refusal is a :class:`CommandError`.
"""
import argparse
import ast
import dataclasses
import difflib
import importlib
import inspect
import os
import re
import sys
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch

from ..errors import CommandError
from ..losses import reconstruction_loss
from ..models.base import BaseVAE
from ..models.conditional import ConditionalVAE
from ..models.vae import VAE, ConvVAE, SpatialVAE
from ..models.vqvae import VQVAE

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main


@dataclasses.dataclass(frozen=True)
class ModelChoice:
    """A model ``--model`` names: its class, its own defaults and what ``--help`` says of it.

    ``--latent-dim`` gives the constructor's ``latent_argument`` (``latent_dim``, or a fully convolutional model's
    ``latent_channels``: its values per position), ``--hidden-dim`` its ``hidden_dim``; ``hidden_dim=None``: the model
    has no fully connected layer, and ``--hidden-dim`` is refused. ``latent_argument=None``: a model with a codebook
    (``--codebook-size`` codes of ``--code-dim`` values, :data:`CODEBOOK_ARGUMENTS`) instead of ``--latent-dim``.
    """
    model_class: type
    hidden_dim: Optional[int]
    about: str
    latent_dim: Optional[int] = 20
    latent_argument: Optional[str] = 'latent_dim'


#: What ``--sigma`` says for the calibrated Gaussian decoder (``sigma=None`` of the models and reconstruction_loss).
CALIBRATED = 'calibrated'
#: What a checkpoint written before ``--sigma calibrated`` existed used, and what a Bernoulli run stores for
#: ``--sigma`` (unused). A Gaussian run's default is CALIBRATED, settled with the likelihood: it measured better on
#: the colour default model (docs/own_images.rst).
SIGMA = 0.1


def decoder_sigma(options: dict) -> Optional[float]:
    """The models' ``sigma`` for the run's ``--sigma``: a number, or None for ``calibrated``."""
    return None if options['sigma'] == CALIBRATED else options['sigma']


#: The models of ``--model``, by the name the command line gives them: its choices, its help and build_model's class.
MODELS = {
    'mlp': ModelChoice(VAE, hidden_dim=400, about="the PyTorch example's VAE"),
    'conv': ModelChoice(ConvVAE, hidden_dim=256, about='ConvVAE, height and width multiples of 4'),
    'spatial': ModelChoice(SpatialVAE, hidden_dim=None, latent_dim=4, latent_argument='latent_channels',
                           about='SpatialVAE, fully convolutional: --latent-dim values at each position of a map of '
                                 'a quarter of the height and width, height and width multiples of 4'),
    'vqvae': ModelChoice(VQVAE, hidden_dim=None, latent_dim=None, latent_argument=None,
                         about='VQVAE: each position of a map of a quarter of the height and width is one of '
                               '--codebook-size codes of --code-dim values, height and width multiples of 4'),
}

#: The options of a model with a codebook (``latent_argument=None``), and the constructor argument each gives.
CODEBOOK_ARGUMENTS = {'codebook_size': 'num_codes', 'code_dim': 'code_dim'}
#: VQVAE's defaults, what ``--codebook-size`` and ``--code-dim`` default to.
CODEBOOK_SIZE = inspect.signature(VQVAE).parameters['num_codes'].default
CODE_DIM = inspect.signature(VQVAE).parameters['code_dim'].default
#: The options of a Gaussian VAE's KL term, which a model with a codebook does not have.
_KL_OPTIONS = ('beta', 'kl_warmup', 'kl_cycles', 'kl_capacity', 'free_bits')


def flag(name: str) -> str:
    """The command-line flag of the option ``name``: ``--code-dim`` for ``code_dim``."""
    return '--' + name.replace('_', '-')


def is_quantized(options: Mapping[str, Any]) -> bool:
    """Whether the run's ``--model`` is one of :data:`MODELS` with a codebook (vqvae) rather than a Gaussian VAE."""
    choice = MODELS.get(str(options.get('model')))
    return choice is not None and choice.latent_argument is None


def check_codebook_options(options: dict, given: dict) -> None:
    """Refuse (CommandError) a new run's options that do not go with its model's latent space; ``given``: what was
    typed.

    A model with a codebook takes ``--codebook-size`` and ``--code-dim``, and has no ``--latent-dim`` and no KL term
    (nor a ``decay`` for a codebook learned by its loss); another takes neither of the two.
    """
    typed = [name for name in CODEBOOK_ARGUMENTS if given.get(name) is not None]
    if not is_quantized(options):
        if typed:
            raise CommandError(f'{flag(typed[0])} is of --model vqvae\'s codebook; this run\'s --model '
                               f'{options.get("model") or "(default)"} has none: add --model vqvae, or leave '
                               f'{flag(typed[0])} out')
        return
    if given.get('latent_dim') is not None:
        raise CommandError(f'--model {options["model"]} has no --latent-dim: its latent map holds --code-dim values at '
                           f'each position (default {CODE_DIM}); leave --latent-dim out')
    kl = [name for name in _KL_OPTIONS if given.get(name)]
    if kl:
        raise CommandError(f'{flag(kl[0])} is of a Gaussian VAE\'s KL term; --model {options["model"]} has none (its '
                           f'commitment term\'s weight is --model-arg commitment_weight=0.25): leave {flag(kl[0])} '
                           f'out')
    model_args = options.get('model_args') or {}
    if model_args.get('update') == 'loss' and 'decay' in model_args:
        raise CommandError('--model-arg decay=... is the decay of the codebook\'s moving averages (update=ema); with '
                           '--model-arg update=loss the codebook learns by its loss and nothing uses it: leave decay '
                           'out, or leave update=loss out')


_CLASS_PATH = re.compile(r'[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z')
_ABOUT_OWN = 'module:Class: your own BaseVAE subclass, importable by your Python (see --model-arg)'


def is_own(name: Optional[str]) -> bool:
    """Whether ``--model`` names the user's own class (``module:Class``) rather than one of :data:`MODELS`."""
    return isinstance(name, str) and ':' in name


def model_name(text: str) -> str:
    """``--model``: one of :data:`MODELS`, or ``module:Class``, the user's own BaseVAE subclass."""
    if text in MODELS or _CLASS_PATH.match(text):
        return text
    raise argparse.ArgumentTypeError(f'must be {", ".join(MODELS)} or module:Class (your BaseVAE subclass, e.g. '
                                     f'mypackage.models:MyVAE), got {text!r}')


def model_help() -> str:
    """What ``--help`` says of ``--model``: each of :data:`MODELS`, and the user's own class."""
    return '; '.join([f'{name}: {choice.about}' for name, choice in MODELS.items()] + [_ABOUT_OWN])


def check_model_name(name: str, value: Any) -> None:
    """A stored ``model``: one ``--model`` takes (checked, never imported)."""
    if not isinstance(value, str):
        raise TypeError(f'{name} must be a string, got a {type(value).__name__}')
    try:
        model_name(value)
    except argparse.ArgumentTypeError as error:
        raise ValueError(f'{name} {error}') from None


_PLAIN = (bool, int, float, str)


def _plain(value: Any) -> bool:
    """Whether a model argument is a value config.toml and the checkpoint hold: a number, a string, a bool, or a
    list of them."""
    if isinstance(value, (list, tuple)):
        return all(isinstance(item, _PLAIN) for item in value)
    return isinstance(value, _PLAIN)


def model_argument(text: str) -> Tuple[str, Any]:
    """``--model-arg KEY=VALUE``: VALUE a Python literal (``64``, ``0.5``, ``True``, ``'x'``, ``[1, 2]``), else text."""
    key, equals, raw = text.partition('=')
    key = key.strip()
    if not equals or not key.isidentifier():
        raise argparse.ArgumentTypeError(f'must be KEY=VALUE, KEY a constructor argument\'s name, got {text!r}')
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = raw.strip()
    if isinstance(value, tuple):
        value = list(value)
    if not _plain(value):
        raise argparse.ArgumentTypeError(f'{key}: must be a number, a string, True/False or a list of them (what '
                                         f'config.toml holds), got {raw.strip()!r}')
    return key, value


#: The arguments the command passes itself (from --latent-dim, ...): not model arguments; the flag giving each.
OWN_ARGUMENTS = {'input_shape': '--image-size (the images\' shape)', 'latent_dim': '--latent-dim',
                 'latent_channels': '--latent-dim', 'hidden_dim': '--hidden-dim', 'likelihood': '--likelihood',
                 'sigma': '--sigma', 'num_classes': '--conditional (the data\'s classes)'}


def check_model_args(name: str, value: Any) -> None:
    """The stored model arguments: None, or a dict of constructor argument names to plain values."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise TypeError(f'{name} must be a dict or None, got a {type(value).__name__}')
    for key, argument in value.items():
        if not isinstance(key, str) or not key.isidentifier() or key in OWN_ARGUMENTS:
            raise ValueError(f'{name} holds {key!r}, which is not a model argument')
        if not _plain(argument):
            raise ValueError(f'{name}[{key!r}] must be a number, a string, a bool or a list of them')


def model_arguments(pairs: Any, flag: str = '--model-arg') -> Optional[Dict[str, Any]]:
    """The ``--model-arg`` pairs as a dict (a later one wins), or None; CommandError for an argument the command
    passes itself."""
    if pairs is None:
        return None
    arguments = dict(pairs)
    taken = [key for key in arguments if key in OWN_ARGUMENTS]
    if taken:
        raise CommandError(f'{flag} {taken[0]}=... is an argument the command passes itself: use '
                           f'{OWN_ARGUMENTS[taken[0]]}')
    return arguments


def import_model_class(path: str, flag: str = '--model') -> type:
    """The class ``module:Class`` names, imported (the user named it); CommandError for one that is not a BaseVAE."""
    module_name, _, qualname = path.partition(':')
    added = '' not in sys.path and os.getcwd() not in sys.path  # as `python -m` does; the console script does not
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise CommandError(f'{flag} {path}: no module named {error.name!r} (Python looks in the current folder, '
                           f'PYTHONPATH and the installed packages: run from the folder holding {module_name}, add '
                           f'that folder to PYTHONPATH, or pip install your package)') from None
    except Exception as error:  # the user's module failed while it was imported
        raise CommandError(f'{flag} {path}: importing {module_name} failed: {type(error).__name__}: '
                           f'{error}') from None
    finally:
        if added:
            sys.path.remove(os.getcwd())
    for part in qualname.split('.'):
        target = getattr(target, part, None)
    if not isinstance(target, type) or not issubclass(target, BaseVAE):
        found = 'nothing' if target is None else f'a {type(target).__name__}' if not isinstance(target, type) \
            else f'the class {target.__name__}, not a BaseVAE subclass'
        raise CommandError(f'{flag} {path}: {module_name} holds {found} under {qualname!r}; --model takes a '
                           f'subclass of torchbearer_vae.BaseVAE')
    return target


def settle(options: dict, image_shape: Sequence[int]) -> dict:
    """``options`` with the defaults that depend on the images filled in: ``model``, ``likelihood``, ``sigma``,
    ``latent_dim``, ``hidden_dim``.

    Colour images get the fully convolutional model and a calibrated Gaussian decoder, grey ones the MLP and a
    Bernoulli decoder (their values are mostly near 0 or 1, as digits are). CommandError for ``--hidden-dim`` with a
    model that has no fully connected layer.
    """
    options = dict(options)
    colour = len(image_shape) == 3 and image_shape[0] == 3
    if options.get('model') is None:
        options['model'] = 'spatial' if colour and not options.get('conditional') else 'mlp'  # conditional: MLP only
    if options.get('likelihood') is None:  # a new run's (a checkpoint's options hold theirs)
        options['likelihood'] = 'gaussian' if colour else 'bernoulli'
        check_sigma(options)
    if options.get('sigma') is None:  # stored for either likelihood, as it always was
        options['sigma'] = CALIBRATED if options['likelihood'] == 'gaussian' else SIGMA
    choice = None if is_own(options['model']) else MODELS[options['model']]
    if options.get('latent_dim') is None:
        options['latent_dim'] = MODELS['mlp'].latent_dim if choice is None else choice.latent_dim
    if is_quantized(options):
        options['codebook_size'] = options.get('codebook_size') or CODEBOOK_SIZE
        options['code_dim'] = options.get('code_dim') or CODE_DIM
    if choice is not None and choice.hidden_dim is None and options.get('hidden_dim') is not None:
        raise CommandError(f'--hidden-dim is the width of the fully connected layer of --model mlp and conv; '
                           f'--model {options["model"]}{" (the default for colour images)" if colour else ""} has '
                           f'none: leave --hidden-dim out (its convolutions\' channels are --model-arg '
                           f'"channels=[32, 64]"), or pass --model conv')
    if options.get('hidden_dim') is None and choice is not None:  # the user's class: its own default
        options['hidden_dim'] = choice.hidden_dim
    return options


def check_sigma(options: dict) -> None:
    """Refuse ``--sigma`` with a likelihood other than gaussian (it is the Gaussian's standard deviation)."""
    if options.get('sigma') is not None and options.get('likelihood') not in (None, 'gaussian'):
        raise CommandError(f'--sigma is the standard deviation of --likelihood gaussian; this run\'s likelihood is '
                           f'{options["likelihood"]}: add --likelihood gaussian, or leave --sigma out')


def check_conditional(options: dict) -> None:
    """Refuse ``--conditional`` with another model than mlp: the conditional model is the MLP one."""
    if options.get('conditional') and options.get('model') not in (None, 'mlp'):
        raise CommandError(f'--conditional trains the MLP ConditionalVAE; there is no conditional --model '
                           f'{options["model"]}: leave --model out (or pass --model mlp)')


def build_model(options: dict, image_shape: Sequence[int], device: Optional[str] = None, *,
                num_classes: Optional[int] = None) -> torch.nn.Module:
    """The run's model for images of ``image_shape`` (on ``device``; ``'meta'`` allocates nothing).

    A ``--conditional`` run's model is a :class:`~torchbearer_vae.ConditionalVAE` of ``num_classes`` classes, a
    ``--model vqvae`` run's a :class:`~torchbearer_vae.VQVAE` of ``--codebook-size`` codes of ``--code-dim`` values.

    Raises:
        CommandError: for sizes the model refuses (conv: height and width not multiples of 4) or too
            large for PyTorch to describe, naming the options to change.
    """
    name = options['model']
    if options.get('conditional') and num_classes is None:
        raise ValueError('build_model needs num_classes for a --conditional run (classes_of gives it)')
    latent_argument = 'latent_dim' if is_own(name) else MODELS[name].latent_argument
    config = {latent_argument: options['latent_dim']} if latent_argument is not None else {
        argument: options[option] for option, argument in CODEBOOK_ARGUMENTS.items()}  # a codebook
    config.update({'hidden_dim': options['hidden_dim'], 'likelihood': options['likelihood'],
                   'sigma': decoder_sigma(options)})
    if latent_argument is None:
        passed = {argument: flag(option) for option, argument in CODEBOOK_ARGUMENTS.items()}
        taken = [key for key in options.get('model_args') or {} if key in passed]
        if taken:
            raise CommandError(f'--model-arg {taken[0]}=... is an argument the command passes itself: use '
                               f'{passed[taken[0]]}')
    if config['hidden_dim'] is None:  # the user's class, --hidden-dim not given: its own default; or no such layer
        del config['hidden_dim']
    config.update(options.get('model_args') or {})
    if is_own(name):
        return _build_own(import_model_class(name), options, image_shape, device, config)
    try:
        with torch.device(device or 'cpu'):
            if options.get('conditional') and num_classes is not None:
                return ConditionalVAE(tuple(image_shape), num_classes=num_classes, **config)
            model: torch.nn.Module = MODELS[name].model_class(tuple(image_shape), **config)
            return model
    except TypeError as error:
        if options.get('model_args') and 'argument' in str(error):
            raise CommandError(f'--model {name} does not take the --model-arg given: {error}'
                               f'{_closest(MODELS[name].model_class, options["model_args"])}') from None
        if options.get('model_args'):  # a value of the wrong type, which the constructor's checks name
            raise CommandError(f'--model {name}: {" ".join(str(error).split())} (a --model-arg value)') from None
        raise _too_large(options) from None
    except ValueError as error:
        model_class = MODELS[name].model_class
        channels = (options.get('model_args') or {}).get('channels', _default(model_class, 'channels')
                                                          if _accepts(model_class, 'channels') else None)
        multiple = 4 if name == 'conv' else 2 ** len(channels) if isinstance(channels, (list, tuple)) else None
        if multiple and len(image_shape) == 3 and (image_shape[1] % multiple or image_shape[2] % multiple):
            raise CommandError(f'--model {name} needs images whose height and width are multiples of {multiple}, '
                               f'but --dataset {options["dataset"] or "mnist"} has {"x".join(map(str, image_shape))}; '
                               f'pass --image-size 32 (or another multiple of {multiple}) with --dataset folder:DIR, '
                               f'or use --model mlp') from None
        raise CommandError(f'--model {name}: {error}') from None
    except (RuntimeError, OverflowError, MemoryError) as error:  # too large for PyTorch to describe
        raise _too_large(options, type(error).__name__) from None


def _too_large(options: dict, error: str = 'TypeError') -> CommandError:
    sizes = (f'--codebook-size {options["codebook_size"]} and --code-dim {options["code_dim"]}' if is_quantized(options)
             else f'--hidden-dim {options["hidden_dim"]} and --latent-dim {options["latent_dim"]}')
    return CommandError(f'{sizes} make a model too large to build ({error}); use smaller values')


def _closest(cls: type, arguments: Dict[str, Any]) -> str:
    """``; did you mean ...?`` for the first of ``arguments`` that ``cls``'s constructor does not take, else ''."""
    taken = [name for name in inspect.signature(cls).parameters if name not in OWN_ARGUMENTS and name != 'self']
    for key in arguments:
        if key not in taken:
            close = difflib.get_close_matches(key, taken, n=1)
            return f'; did you mean {close[0]}?' if close else f'; it takes {", ".join(taken)}'
    return ''


def _default(cls: type, name: str) -> Any:
    """The default of ``cls``'s constructor argument ``name``."""
    return inspect.signature(cls).parameters[name].default


def _accepts(cls: type, name: str) -> bool:
    """Whether ``cls``'s constructor takes the keyword argument ``name`` (by name, or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(parameter.name == name and parameter.kind is not parameter.POSITIONAL_ONLY
               or parameter.kind is parameter.VAR_KEYWORD for parameter in parameters)


def _build_own(cls: type, options: dict, image_shape: Sequence[int], device: Optional[str],
               config: Dict[str, Any]) -> torch.nn.Module:
    """The user's class, given the images' shape first and the run's arguments by keyword; one line if it refuses.

    ``likelihood`` and ``sigma`` are passed when the constructor takes them; a model whose likelihood is then not
    the run's is refused (the loss is the run's).
    """
    config = {key: value for key, value in config.items() if key not in ('likelihood', 'sigma') or
              _accepts(cls, key)}
    try:
        with torch.device(device or 'cpu'):
            model: BaseVAE = cls(tuple(image_shape), **config)
    except (TypeError, ValueError) as error:
        shown = ', '.join(f'{key}={value!r}' for key, value in config.items())
        raise CommandError(f'--model {options["model"]}: {cls.__name__}({tuple(image_shape)}, {shown}) was refused: '
                           f'{type(error).__name__}: {" ".join(str(error).split())}; its constructor takes the '
                           f'images\' shape first, then latent_dim, hidden_dim if --hidden-dim is given, and each '
                           f'--model-arg') from None
    got = (model.likelihood, model.sigma if model.likelihood == 'gaussian' else None)
    wanted = (options['likelihood'], decoder_sigma(options) if options['likelihood'] == 'gaussian' else None)
    if got != wanted:
        raise CommandError(f'--model {options["model"]} has the {got[0]} likelihood, the run asks for '
                           f'--likelihood {wanted[0]}: give the class likelihood= and sigma= arguments passed on to '
                           f'BaseVAE, or leave --likelihood and --sigma out')
    return model


def criterion(likelihood: str, sigma: Optional[float]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The Trial's criterion: ``-log p(x|z)`` of the run's likelihood, in nats per image (the one formula)."""
    def reconstruction(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return reconstruction_loss(recon, target, likelihood, sigma=sigma, reduction='batchmean')
    return reconstruction
