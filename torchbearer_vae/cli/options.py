"""The options of ``torchbearer-vae train``, each defined once: its flag, type, default, help and checkpoint handling.

:class:`TrainOptions` has one field per option. A *run option* fixes the data, the model or the optimisation: it
is stored in the checkpoint's ``options``, and ``--resume`` compares it; the others (``--epochs``, ``--device``,
``--out``, ...) belong to one session. Everything else is derived from the fields: the ``train`` parser's
arguments (:func:`add_train_arguments`, and :func:`add_option` for the other commands' options of the same
name), the defaults with their ``(default: ...)`` in the help, the options a new run stores and a resumed run
keeps (:func:`run_options`), and what a checkpoint written before an option existed implies for it
(:func:`saved_options`). Adding an option to ``train`` is adding a field here.

The argument types turn argparse's text into values; their ``ArgumentTypeError`` is a one-line usage error.

Internal to the command line (:mod:`torchbearer_vae.cli`); every refusal is a :class:`CommandError`.
"""
import argparse
import dataclasses
import os
from functools import partial
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

from ..checks import check_bool, check_choice, check_int, check_number
from ..data.cache import CACHE_ENV, default_cache_dir
from ..errors import CommandError
from ..losses import LIKELIHOODS
from .data import DEFAULT_DATA_DIR, DEFAULT_DATASET, FOLDER, IDX, NAMES, absolute, check_preprocessing
from .kl import SCHEDULES, capacity_target, check_kl_options, check_stored, cycles, settle_cycles, unused
from .model import (
    CALIBRATED,
    CODE_DIM,
    CODEBOOK_ARGUMENTS,
    CODEBOOK_SIZE,
    MODELS,
    SIGMA,
    check_codebook_options,
    check_conditional,
    check_model_args,
    check_model_name,
    check_sigma,
    flag,
    is_own,
    is_quantized,
    model_argument,
    model_arguments,
    model_help,
    model_name,
)

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

_SEEDS = 2 ** 63  # what torch's generators and TensorLoader take


# -- argument types (the bounds are checked by torchbearer_vae.checks, the package's one rule; the wording is the
# command line's) --
def positive_int(text: str) -> int:
    """A whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a whole number >= 1, got {text!r}') from None
    try:
        return check_int('value', value, minimum=1)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}') from None


def random_seed(text: str) -> int:
    """A seed of torch's generators: a whole number from 0 to 2**63 - 1."""
    try:
        value = int(text)
        if not 0 <= value < _SEEDS:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a whole number from 0 to 2**63 - 1, got {text!r}') from None
    return value


def number(*, minimum: Optional[float] = None, above: Optional[float] = None, maximum: Optional[float] = None,
           below: Optional[float] = None) -> Callable[[str], float]:
    """The type of a finite number within the bounds (those of :func:`~torchbearer_vae.checks.check_number`)."""
    def parse(text: str) -> float:
        try:
            return check_number('value', float(text), minimum=minimum, above=above, maximum=maximum, below=below)
        except ValueError as error:  # not a number, or out of bounds: "value must be a finite number > 0, got ..."
            wanted = str(error).split(' must be ', 1)[-1].split(', got ')[0] if ' must be ' in str(error) else \
                'a number'
            raise argparse.ArgumentTypeError(f'must be {wanted}, got {text!r}') from None
    return parse


def sigma_value(text: str) -> Union[float, str]:
    """``--sigma``: a number > 0, or ``calibrated``."""
    if text == CALIBRATED:
        return CALIBRATED
    try:
        return number(above=0)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f'must be a finite number > 0 or {CALIBRATED}, got {text!r}') from None


def class_index(text: str) -> int:
    """A class of a conditional model: a whole number >= 0."""
    try:
        value = int(text)
        if value < 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a class index, a whole number >= 0, got {text!r}') from None
    return value


def dataset_name(text: str) -> str:
    """One of the datasets' names, ``idx:DIR`` or ``folder:DIR``."""
    if text in NAMES or any(text.startswith(prefix) and len(text) > len(prefix) for prefix in (IDX, FOLDER)):
        return text
    if os.path.isdir(text):  # a folder of the user's, named without its prefix
        raise argparse.ArgumentTypeError(f'unknown dataset {text!r}; it is a folder: for the images in it give '
                                         f'--dataset {FOLDER}{text} (or {IDX}{text} for IDX files)')
    raise argparse.ArgumentTypeError(f'unknown dataset {text!r}: choose {", ".join(NAMES)}, {IDX}DIR or {FOLDER}DIR')


def channel_count(text: str) -> int:
    """1 (grey) or 3 (colour)."""
    if text not in ('1', '3'):
        raise argparse.ArgumentTypeError(f'must be 1 (grey) or 3 (colour), got {text!r}')
    return int(text)


# -- checks of the values a checkpoint holds (a file may have been edited), as the library checks its arguments --
def _check_text(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f'{name} must be a string or None, got a {type(value).__name__}')


def _check_dataset(name: str, value: Any) -> None:
    """None, or a name ``--dataset`` takes (not any string: an unknown one would be read as ``idx:``)."""
    _check_text(name, value)
    if value is not None:
        try:
            dataset_name(value)
        except argparse.ArgumentTypeError as error:
            raise ValueError(f'{name}: {error}') from None


def _check_seed(name: str, value: Any) -> None:
    """A seed ``--seed`` takes: ``random_seed``'s range, so that torch's generators accept it."""
    if check_int(name, value, minimum=0) >= _SEEDS:
        raise ValueError(f'{name} must be a whole number from 0 to 2**63 - 1, got {value}')


def _check_sigma(name: str, value: object) -> None:
    """A stored ``--sigma``: a number > 0 or ``calibrated`` (None before it is settled)."""
    if value is not None and value != CALIBRATED:
        check_number(name, value, above=0)


def _check_channels(name: str, value: Any) -> None:
    if check_int(name, value, allow_none=True) not in (None, 1, 3):
        raise ValueError(f'{name} must be 1, 3 or None, got {value}')


# -- the options --
class _Required:
    """The type of :data:`REQUIRED` (shown as its name)."""

    def __repr__(self) -> str:
        return 'REQUIRED'


#: The ``implied`` of the run options ``train`` has stored from the start: a checkpoint without one was not written
#: by ``train`` (``--resume`` refuses it, and it records no split for ``--split val``).
REQUIRED = _Required()
_UNSET = object()


def option(default: Any = None, *, help: str, type: Optional[Callable[[str], Any]] = None,
           choices: Optional[Sequence[str]] = None, metavar: Optional[str] = None, switch: bool = False,
           run: bool = True, check: Optional[Callable[[str, Any], Any]] = None, implied: Any = _UNSET,
           shown: Optional[str] = None, flag: Optional[str] = None, append: bool = False) -> Any:
    """A field of :class:`TrainOptions`: one option of ``train``.

    Args:
        default: The value when the option is not given.
        help (str): The help text, without the default (added from ``default``, or ``shown``).
        type (callable or None): argparse's ``type``: the option's text to its value.
        choices (sequence of str or None): argparse's ``choices``.
        metavar (str or None): argparse's ``metavar``.
        switch (bool): A flag without a value (``store_true``).
        run (bool): A run option: stored in the checkpoint and kept by ``--resume``.
        check (callable or None): ``check(name, value)`` raising TypeError or ValueError for a stored value that
            the option cannot have (a run option's).
        implied: What a checkpoint written before the option existed means by its absence, or :data:`REQUIRED`:
            every run option says it (a checkpoint lacking the option must still resume and be evaluated).
        shown (str or None): What ``(default: ...)`` says when ``default`` alone does not (None: settled from the
            images); nothing is said of a switch's default, nor of a default of None without ``shown``.
        flag (str or None): The flag, when it is not ``--`` and the name with dashes.
        append (bool): A repeatable flag whose values argparse collects in a list (``action='append'``).
    """
    if run and (implied is _UNSET or check is None):
        raise TypeError('a run option needs implied= (what a checkpoint without it means) and check=')
    metadata = {'help': help, 'type': type, 'choices': choices, 'metavar': metavar, 'switch': switch, 'run': run,
                'check': check, 'implied': implied, 'shown': shown, 'flag': flag, 'append': append}
    return dataclasses.field(default=default, metadata=metadata)


_whole = partial(check_int, minimum=1)
_whole_or_none = partial(check_int, minimum=1, allow_none=True)


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """The options of ``torchbearer-vae train``, in the order ``--help`` lists them; the defaults are a new run's.

    The first run options (``implied=REQUIRED``) are those ``train`` has stored from the start; each later one
    says what a checkpoint written before it existed used.
    """
    dataset: Optional[str] = option(
        None, type=dataset_name, metavar='DATASET', check=_check_dataset, implied=REQUIRED, shown=DEFAULT_DATASET,
        help='mnist, fashion-mnist, cifar10 (downloaded into --data-dir if missing), digits (scikit-learn\'s 8x8 '
             'digits, no download), idx:DIR (IDX files in DIR) or folder:DIR (every image file under DIR; class '
             'subfolders are labels)')
    data_dir: Optional[str] = option(DEFAULT_DATA_DIR, check=_check_text, implied=REQUIRED,
                                     help='where mnist, fashion-mnist and cifar10 are')
    limit: Optional[int] = option(None, type=positive_int, check=_whole_or_none, implied=REQUIRED,
                                  help='use only the first N images')
    image_size: Optional[int] = option(
        None, type=positive_int, metavar='N', check=_whole_or_none, implied=None,
        shown='keep the size; every image must then have the same size',
        help='folder:DIR: resize each image (shorter side) to N and crop its centre N x N square')
    channels: Optional[int] = option(
        None, type=channel_count, metavar='{1,3}', check=_check_channels, implied=None,
        shown='1 if every image is grey, else 3',
        help='folder:DIR: 1 (grey) or 3 (colour; RGBA and palette images converted)')
    model: Optional[str] = option(
        None, type=model_name, metavar='{' + ','.join(MODELS) + ',module:Class}', check=check_model_name,
        implied='mlp', shown='mlp for grey images, spatial for colour ones', help=model_help())
    model_args: Optional[Dict[str, Any]] = option(
        None, type=model_argument, metavar='KEY=VALUE', check=check_model_args, implied=None, flag='--model-arg',
        append=True,
        help='an argument of the model\'s constructor (repeat for more; VALUE a Python literal, else text); the '
             'config file\'s [model] table holds them')
    conditional: bool = option(
        False, switch=True, check=check_bool, implied=False,
        help='a ConditionalVAE (mlp) given each image\'s class, for labelled data (mnist, fashion-mnist, cifar10, '
             'digits, idx:DIR with labels, folder:DIR with class subfolders); then sample --label N draws class N')
    likelihood: Optional[str] = option(  # None: settled from the images (cli.model.settle), then stored
        None, choices=LIKELIHOODS, check=partial(check_choice, choices=LIKELIHOODS), implied='bernoulli',
        shown='gaussian for colour images, bernoulli for grey ones',
        help='of the decoder: bernoulli (pixels in [0, 1] as probabilities) or gaussian (standard deviation --sigma)')
    sigma: Union[float, str, None] = option(  # None: settled with the likelihood (cli.model.settle)
        None, type=sigma_value, check=_check_sigma, implied=SIGMA, shown=CALIBRATED,
        help=f'standard deviation of --likelihood gaussian, in pixel units of [0, 1], or {CALIBRATED}: each batch\'s '
             f'root mean squared error (at least exp(-6))')
    epochs: int = option(10, type=positive_int, run=False, help='total epochs')
    batch_size: int = option(128, type=positive_int, check=_whole, implied=REQUIRED, help='')
    lr: float = option(1e-3, type=number(above=0), check=partial(check_number, above=0), implied=REQUIRED,
                       help='Adam learning rate')
    latent_dim: Optional[int] = option(  # None: the model's own, settled and stored once the model is known
        None, type=positive_int, check=_whole_or_none, implied=REQUIRED,
        help='values of the latent code (spatial: at each position of its map)',
        shown=', '.join(f'{choice.latent_dim} ({name})' for name, choice in MODELS.items() if choice.latent_dim))
    hidden_dim: Optional[int] = option(  # None: the model's own width, settled and stored once the model is known
        None, type=positive_int, check=_whole_or_none, implied=REQUIRED,
        help='width of the fully connected layers (' + ', '.join(name for name, choice in MODELS.items()
                                                          if choice.hidden_dim) + ')',
        shown=', '.join(f'{choice.hidden_dim} ({name})' for name, choice in MODELS.items() if choice.hidden_dim))
    codebook_size: Optional[int] = option(  # None: another model's, or settled to VQVAE's default
        None, type=positive_int, metavar='K', check=_whole_or_none, implied=None, shown=f'{CODEBOOK_SIZE} (vqvae)',
        help='vqvae: codes in the codebook')
    code_dim: Optional[int] = option(
        None, type=positive_int, metavar='D', check=_whole_or_none, implied=None, shown=f'{CODE_DIM} (vqvae)',
        help='vqvae: values of each code, and of the latent map at each of its positions')
    beta: float = option(1.0, type=number(minimum=0), check=partial(check_number, minimum=0), implied=REQUIRED,
                         help='KL weight (the weight the KL schedules rise to)')
    kl_warmup: Optional[float] = option(
        None, type=number(above=0), metavar='EPOCHS', check=partial(check_number, above=0, allow_none=True),
        implied=None, help='KL warm-up: beta rises linearly from 0 to --beta over EPOCHS epochs, then stays')
    kl_cycles: Optional[str] = option(
        None, type=cycles, metavar='N', check=check_stored(cycles), implied=None,
        help='cyclical KL annealing: N cycles over --epochs (stored as N:EPOCHS, which it also takes), each rising '
             'from 0 to --beta over its first --kl-cycle-ratio, then staying')
    kl_cycle_ratio: float = option(
        0.5, type=number(above=0, maximum=1), metavar='R', check=partial(check_number, above=0, maximum=1),
        implied=0.5, help='the rising fraction of each --kl-cycles cycle')
    kl_capacity: Optional[str] = option(
        None, type=capacity_target, metavar='NATS:EPOCHS', check=check_stored(capacity_target), implied=None,
        help='a KL capacity: the term becomes 1000 |KL - C|, C rising from 0 to NATS nats per image over EPOCHS '
             'epochs (Burgess et al. 2018)')
    free_bits: float = option(0.0, type=number(minimum=0), metavar='NATS', check=partial(check_number, minimum=0),
                              implied=0.0, help='free bits: each latent dimension\'s KL counts at least NATS')
    val_fraction: float = option(0.1, type=number(above=0, below=1), check=partial(check_number, above=0, below=1),
                                 implied=REQUIRED, help='')
    seed: int = option(1, type=random_seed, check=_check_seed, implied=REQUIRED, help='')
    device: str = option('auto', choices=('auto', 'cpu', 'cuda'), run=False, help='auto picks cuda when available')
    cache_dir: Optional[str] = option(
        None, run=False, metavar='DIR', shown=f'${CACHE_ENV}, else the user cache folder ({default_cache_dir()})',
        help='folder:DIR: keep the decoded images in a file in this folder, and read them from there next time '
             '(the same folder decoded the same way, its files unchanged), memory-mapped')
    no_cache: bool = option(False, switch=True, run=False,
                            help='folder:DIR: decode the images into memory, and keep nothing in the cache folder')
    out: Optional[str] = option(None, run=False, shown='runs/DATASET', help='output folder')
    resume: bool = option(False, switch=True, run=False, help='continue the run in --out from its checkpoint.pt')
    quiet: bool = option(False, switch=True, run=False,
                         help='no progress on stderr (a line per epoch, and a live bar on a terminal)')
    compile: bool = option(
        False, switch=True, run=False,
        help='compile the model and its loss with torch.compile: the first steps take seconds to minutes longer, '
             'later ones can be faster (mostly on a GPU; see the README\'s Performance); chosen anew at --resume')
    tensorboard: bool = option(
        False, switch=True, run=False,
        help='also write the metrics of each epoch and the pictures for TensorBoard, into --out/tensorboard '
             '(needs tensorboardX: pip install -e ".[tensorboard]")')


#: The fields of :class:`TrainOptions` by name: each option's definition.
FIELDS = {field.name: field for field in dataclasses.fields(TrainOptions)}
#: The run options, in the order a new run stores them.
RUN_OPTIONS = tuple(name for name, field in FIELDS.items() if field.metadata['run'])
#: The run options every checkpoint of ``train`` holds.
REQUIRED_OPTIONS = tuple(name for name in RUN_OPTIONS if FIELDS[name].metadata['implied'] is REQUIRED)
#: A new run's values of the run options (None: settled once the images are known, then stored).
DEFAULTS = {name: FIELDS[name].default for name in RUN_OPTIONS}
#: What a checkpoint without one of the later run options used: it resumes (and is evaluated) with these.
IMPLIED = {name: FIELDS[name].metadata['implied'] for name in RUN_OPTIONS if name not in REQUIRED_OPTIONS}


def flag_of(name: str) -> str:
    """The flag of the option ``name``: ``--batch-size`` for ``batch_size``."""
    return FIELDS[name].metadata['flag'] or flag(name)


# -- the parser --
def _shown(value: Any) -> str:
    """A default as the help shows it: ``1e-3`` rather than ``0.001``."""
    if isinstance(value, float) and 0 < abs(value) < 0.01:
        mantissa, exponent = f'{value:e}'.split('e')
        return f'{float(mantissa):g}e{int(exponent)}'
    return str(value)


def _with_default(help: str, default: Any, metadata: Mapping[str, Any]) -> str:
    shown = metadata['shown']
    if shown is None and default is not None and not metadata['switch']:
        shown = _shown(default)
    if shown is None:
        return help
    return f'{help} (default: {shown})' if help else f'default: {shown}'


_FROM_FIELD = object()


def add_option(parser: argparse.ArgumentParser, name: str, *, default: Any = _FROM_FIELD,
               shown: Optional[str] = None) -> argparse.Action:
    """Add the option ``name`` of :class:`TrainOptions` to ``parser`` (any command's), as ``train`` has it.

    A run option reads None when not given (a resumed run compares only what was given); another command may
    give the option its own ``default``, or ``shown`` to say what its default of None means.
    """
    field = FIELDS[name]
    metadata = dict(field.metadata, shown=shown or field.metadata['shown'])
    text = _with_default(metadata['help'], field.default if default is _FROM_FIELD else default, metadata)
    if default is _FROM_FIELD:
        default = None if metadata['run'] else field.default
    flag = flag_of(name)
    if metadata['switch']:
        return parser.add_argument(flag, action='store_true', default=default, help=text)
    return parser.add_argument(flag, type=metadata['type'], choices=metadata['choices'], default=default,
                               metavar=metadata['metavar'], help=text, dest=name,
                               action='append' if metadata['append'] else 'store')


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every option of ``train`` to ``parser``, in the order of :class:`TrainOptions`."""
    for name in FIELDS:
        add_option(parser, name)


# -- the checkpoint's options --
def saved_options(checkpoint: dict) -> dict:
    """A checkpoint's run options, with the implied values of the options a previous version did not store."""
    options = checkpoint.get('options')
    return {**IMPLIED, **(options if isinstance(options, dict) else {})}


def check_saved_options(options: dict, path: str, *, resuming: bool = True) -> None:
    """The run options a checkpoint holds, checked as the command line checks its own (a file may have been edited).

    Every command that reads a checkpoint's options calls it: ``train --resume`` (``resuming``), ``sample``,
    ``reconstruct`` and ``evaluate``. Only the options present are checked: ``--resume`` refuses a checkpoint
    lacking one of its own, and a checkpoint of :func:`~torchbearer_vae.save_checkpoint` holds none.

    Raises:
        CommandError: naming the file and the first option that is not valid.
    """
    try:
        if not isinstance(options, dict):
            raise TypeError(f'options must be a dict, got a {type(options).__name__}')
        for name in RUN_OPTIONS:
            if name in options:
                FIELDS[name].metadata['check'](name, options[name])
    except (TypeError, ValueError) as error:
        if resuming:
            raise CommandError(f'{path!r} cannot be resumed: its options are not valid ({error}); start a new run '
                               f'in another --out') from None
        raise CommandError(f'{path!r} was refused: its options are not valid ({error}); it was changed since '
                           f'torchbearer-vae train wrote it: use the checkpoint of a run') from None


def run_options(args: argparse.Namespace, checkpoint: Optional[dict]) -> dict:
    """The run's options: the command line's with the defaults, or, when resuming, the checkpoint's.

    When resuming, an option given on the command line must be the run's (CommandError naming each that is not),
    and a run of the user's own model class needs its ``--model`` given again: a class path found in a checkpoint
    is never imported by itself.
    """
    given = absolute({name: getattr(args, name, None) for name in RUN_OPTIONS})
    given['model_args'] = model_arguments(given['model_args'])
    settle_cycles(given, getattr(args, 'epochs', None) or TrainOptions.epochs)
    if checkpoint is None:
        options = absolute({name: DEFAULTS[name] if value is None else value for name, value in given.items()})
        check_sigma(options)  # again once the images settle the likelihood
        check_kl_options(options, given)
        check_preprocessing(options['dataset'], options['image_size'], options['channels'])
        check_conditional(options)
        check_codebook_options(options, given)
        return options
    saved = absolute(saved_options(checkpoint))
    conflicts = [f'{flag_of(name)} {value} (the run used {saved[name]})'
                 for name, value in given.items() if value is not None and value != saved[name]]
    if conflicts:
        raise CommandError(f'--resume continues the run with the options it started with; got {", ".join(conflicts)}.'
                           f' Start a new run in another --out to change them')
    if is_own(saved['model']) and given['model'] is None:
        raise CommandError(f'the run in --out trains your own model class: add --model {saved["model"]} to --resume '
                           f'(a class named in a checkpoint is imported only when you name it)')
    return {**checkpoint['options'], **{name: saved[name] for name in RUN_OPTIONS}}


def unused_options(options: Mapping[str, Any]) -> Tuple[str, ...]:
    """The run options a run does not use (``--sigma`` of a Bernoulli run, ...): its config.toml leaves them out."""
    if is_quantized(options):  # a codebook instead of a Gaussian latent and its KL term
        return ('latent_dim', 'beta', 'free_bits', *SCHEDULES, 'kl_cycle_ratio') + \
            (() if options.get('likelihood') in ('gaussian', None) else ('sigma',))
    return (() if options.get('likelihood') in ('gaussian', None) else ('sigma',)) + unused(options) + \
        tuple(CODEBOOK_ARGUMENTS)
