"""``train --config FILE``: ``train``'s options in a TOML file, and the resolved ``config.toml`` every run writes.

A config file holds any of ``train``'s options (:class:`~torchbearer_vae.cli.options.TrainOptions`), by their
names (``batch_size = 64``), and a ``[model]`` table: ``class`` (what ``--model`` takes) and the model's
constructor arguments (what ``--model-arg`` gives). Each value is checked as the same value typed after its flag
is, with the same message; an unknown key is refused. Flags given on the command line override the file.

What ``train --print-config`` prints, and what a run writes into ``--out/config.toml``, is the same file
resolved: every option with its value (a run's after the images settled its model and width), so that
``train --config runs/x/config.toml --out runs/y`` repeats the run exactly. The options a run does not use
(``sigma`` of a Bernoulli run, ...) are left out, so reading the file back is never refused.

TOML is read with :mod:`tomllib` (``tomli`` before Python 3.11) and written here: flat keys, strings, numbers,
booleans and arrays of them.

Internal to the command line (:mod:`torchbearer_vae.cli`); every refusal is a :class:`CommandError`.
"""
import argparse
import math
import os
import stat
import sys
from typing import Any, Dict, Mapping

from ..errors import CommandError
from ..files import atomic_write, file_kind
from .data import run_name
from .model import CODEBOOK_ARGUMENTS, MODELS, OWN_ARGUMENTS, check_model_args
from .options import FIELDS, run_options, unused_options

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the same parser, released apart before Python 3.11
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

#: The file every run writes into its ``--out``.
CONFIG = 'config.toml'
#: The options a file cannot hold: what one command line does, not what a run is.
NOT_IN_FILE = ('resume', 'model', 'model_args')
_MAX_BYTES = 1 << 20  # a configuration is a few hundred bytes: anything larger is not one
_HEADER = ('# torchbearer-vae train: the resolved configuration. Repeat the run with\n'
           '#   torchbearer-vae train --config THIS_FILE --out ANOTHER_FOLDER\n'
           '# (flags given on the command line override the file).\n')


# -- reading --
def read_config(path: str) -> Dict[str, Any]:
    """The options the file ``path`` holds, as ``train``'s parser holds them (``model_args`` as a list of pairs).

    Raises:
        CommandError: one line naming the file: not a regular file, not TOML, an unknown key, or a value its
            option refuses (the message the flag gives).
    """
    values: Dict[str, Any] = {}
    for key, value in _load(path).items():
        if key == 'model':
            values.update(_model_table(value, path))
        elif key not in FIELDS or key in NOT_IN_FILE:
            raise CommandError(_unknown(key, path))
        else:
            values[key] = file_value(key, value, where=f'--config {path}: {key}')
    return values


def _load(path: str) -> Dict[str, Any]:
    try:
        status = os.stat(path)
    except OSError as error:
        raise CommandError(f'--config {path}: {error.strerror or error}') from None
    if not stat.S_ISREG(status.st_mode):
        raise CommandError(f'--config {path} is {file_kind(status.st_mode)}; give a TOML file')
    if status.st_size > _MAX_BYTES:
        raise CommandError(f'--config {path} has {status.st_size:,} bytes, more than a configuration\'s '
                           f'{_MAX_BYTES:,}; give the TOML file of train\'s options')
    try:
        with open(path, 'rb') as file:
            data: Dict[str, Any] = tomllib.load(file)
        return data
    except ValueError as error:  # tomllib.TOMLDecodeError, or bytes that are not UTF-8
        raise CommandError(f'--config {path} is not valid TOML: {" ".join(str(error).split())}') from None
    except OSError as error:
        raise CommandError(f'--config {path}: {error.strerror or error}') from None


def _unknown(key: str, path: str) -> str:
    import difflib
    names = [name for name in FIELDS if name not in NOT_IN_FILE] + ['model']
    close = difflib.get_close_matches(key.replace('-', '_'), names, n=1)
    hint = f' (did you mean {close[0]}?)' if close else ''
    return (f'--config {path}: unknown option {key!r}{hint}; a config file holds train\'s options by name, '
            f'batch_size = 64, and a [model] table')


def file_value(name: str, value: Any, *, where: str) -> Any:
    """The value of the option ``name`` in a file, checked and converted as its flag's text would be."""
    metadata = FIELDS[name].metadata
    if metadata['switch']:
        if not isinstance(value, bool):
            raise CommandError(f'{where}: must be true or false, got {toml_value(value, strict=False)}')
        return value
    text = value if isinstance(value, str) else toml_value(value, strict=False)
    if metadata['choices'] is not None:
        if text not in metadata['choices']:
            choices = ', '.join(map(repr, metadata['choices']))
            raise CommandError(f'{where}: invalid choice: {text!r} (choose from {choices})')
        return text
    if metadata['type'] is None:
        if not isinstance(value, str):
            raise CommandError(f'{where}: must be a string, got {text}')
        return value
    try:
        return metadata['type'](text)
    except argparse.ArgumentTypeError as error:
        raise CommandError(f'{where}: {error}') from None


def _model_table(table: Any, path: str) -> Dict[str, Any]:
    """``[model]``: ``class`` (``--model``) and the constructor's arguments (``--model-arg``); or ``model = "mlp"``."""
    if not isinstance(table, dict):
        return {'model': file_value('model', table, where=f'--config {path}: model')}
    values: Dict[str, Any] = {}
    arguments = {key: value for key, value in table.items() if key != 'class'}
    if 'class' in table:
        values['model'] = file_value('model', table['class'], where=f'--config {path}: [model] class')
    taken = [key for key in arguments if key in OWN_ARGUMENTS]
    if taken:
        raise CommandError(f'--config {path}: [model] {taken[0]} is an option of train, not a model argument: '
                           f'write {taken[0]} = ... above the [model] table')
    try:
        check_model_args('[model]', arguments)
    except (TypeError, ValueError) as error:
        raise CommandError(f'--config {path}: {error}') from None
    if arguments:
        values['model_args'] = list(arguments.items())
    return values


# -- writing --
_ESCAPES = {'"': '\\"', '\\': '\\\\', '\b': '\\b', '\t': '\\t', '\n': '\\n', '\f': '\\f', '\r': '\\r'}


def _string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for character in text:
        if character in _ESCAPES:
            out.append(_ESCAPES[character])
        elif ord(character) < 0x20 or ord(character) == 0x7F:
            out.append(f'\\u{ord(character):04X}')
        elif 0xD800 <= ord(character) <= 0xDFFF:  # a file name's undecodable byte: TOML holds Unicode text only
            raise CommandError(f'{text!r} holds bytes that are not text (UTF-8), which a TOML file cannot hold; '
                               f'rename it')
        else:
            out.append(character)
    return '"' + ''.join(out) + '"'


def _key(key: str) -> str:
    bare = key and all(character.isascii() and (character.isalnum() or character in '_-') for character in key)
    return key if bare else _string(key)


def toml_value(value: Any, *, strict: bool = True) -> str:
    """``value`` as TOML: a bool, a number, a string or an array of them (``strict=False``: anything, shown)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ('nan' if math.isnan(value) else ('inf' if value > 0 else '-inf') if math.isinf(value)
                else repr(value))
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(toml_value(item, strict=strict) for item in value) + ']'
    if strict:
        raise TypeError(f'TOML holds no {type(value).__name__}')
    return repr(value)


def config_text(options: Mapping[str, Any], session: Mapping[str, Any]) -> str:
    """The TOML of a run: its run ``options`` and its ``session`` options, the model in a ``[model]`` table.

    Options of value None (not set: a limit, a schedule; or settled when the images are read) and those the run
    does not use are left out: reading the file back gives the same options.
    """
    values = {**options, **session}
    left_out = set(unused_options(options)) | set(NOT_IN_FILE)
    lines = [f'{name} = {toml_value(values[name])}' for name in FIELDS
             if name not in left_out and values.get(name) is not None]
    no_hidden = values.get('model') in MODELS and MODELS[values['model']].hidden_dim is None  # no such layer
    settled = [name for name in ('model', 'channels', 'likelihood', 'sigma', 'latent_dim', 'hidden_dim',
                                 *CODEBOOK_ARGUMENTS)
               if values.get(name) is None and (name == 'model' or name not in left_out) and
               not (name == 'hidden_dim' and no_hidden)]  # the model is the [model] table's
    if settled:
        lines.append(f'# {", ".join(settled)}: settled from the images when the run starts')
    table = [] if options.get('model') is None else [f'class = {toml_value(options["model"])}']
    table += [f'{_key(key)} = {toml_value(value)}' for key, value in (options.get('model_args') or {}).items()]
    return _HEADER + '\n'.join(lines + (['', '[model]'] + table if table else [])) + '\n'


def session_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The options of ``args`` that are not run options (``--epochs``, ``--device``, ...), ``--out`` resolved."""
    session = {name: getattr(args, name, field.default) for name, field in FIELDS.items()
               if not field.metadata['run'] and name not in NOT_IN_FILE}
    session['out'] = os.path.abspath(run_folder(args))
    return session


def run_folder(args: argparse.Namespace) -> str:
    """``--out``, or by default ``runs/NAME`` of the dataset."""
    return args.out or os.path.join('runs', run_name(args.dataset))


def print_config(args: argparse.Namespace) -> str:
    """``train --print-config``: the configuration the command line (and ``--config``) give a new run."""
    if args.resume:
        raise CommandError(f'--print-config shows the configuration of a new run; a run\'s own is the {CONFIG} in '
                           f'its --out')
    return config_text(run_options(args, None), session_options(args))


def write_config(folder: str, options: Mapping[str, Any], session: Mapping[str, Any]) -> str:
    """Write the run's ``config.toml`` into ``folder`` (atomically); returns its path."""
    path = os.path.join(folder, CONFIG)
    data = config_text(options, session).encode('utf-8')

    def write(tmp_path: str) -> None:
        with open(tmp_path, 'wb') as file:
            file.write(data)
    atomic_write(path, write)
    return path

