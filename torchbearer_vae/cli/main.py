"""The ``torchbearer-vae`` command line: train a VAE (on a dataset or your own images), sample, reconstruct, evaluate.

Every command is built from the same public pieces the tutorial uses (:class:`VAE`, :class:`ConvVAE`,
:func:`load_image_folder`, :func:`kld_loss`, :class:`ReconstructionSaver`, ...). A mistake in the arguments or
the inputs is reported as one line on stderr with exit status 2; nothing is left half-written. Ctrl-C exits
with status 130 and SIGTERM with 143, the files written so far complete.

The commands themselves are in the internal modules ``train`` and ``checkpoint_commands``
(imported only when there is work to do: ``--help`` stays fast), ``train``'s options in ``options``;
this module only parses and reports.
"""
import argparse
import difflib
import re
import signal
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..compat import environment
from ..errors import CheckpointError, CommandError
from .interrupts import Interruptions, check_interrupted
from .model import model_name
from .options import add_option, add_train_arguments, class_index, positive_int
from .prior import PRIORS

__all__ = ['main', 'build_parser', 'CommandError']


def build_parser(config: Optional[Dict[str, Any]] = None) -> argparse.ArgumentParser:
    """The argument parser of ``torchbearer-vae``, one sub-command per task.

    Args:
        config (dict or None): ``train``'s defaults from a config file (``train --config``), which flags override.

    Returns:
        argparse.ArgumentParser: The parser.
    """
    parser = argparse.ArgumentParser(
        prog='torchbearer-vae',
        description='Variational auto-encoders with torchbearer: train a VAE on a dataset or your own images, then '
                    'sample from it, reconstruct images and estimate likelihoods.')
    parser.add_argument('--version', action=_Version, nargs=0,
                        help="show the versions of torchbearer-vae, torch, torchvision, torchbearer and Python (what "
                             "a bug report needs) and exit")
    commands = parser.add_subparsers(dest='command', metavar='command', parser_class=_Command)
    _add_train(commands).set_defaults(**(config or {}))
    for add_command in (_add_sample, _add_reconstruct, _add_evaluate):
        add_command(commands)
    return parser


class _Version(argparse.Action):
    """``--version``: the package's version and those of what it runs on, one per line, then exit."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        versions = environment()
        print(f"{parser.prog} {versions.pop('torchbearer_vae')}")
        python, system = versions.pop('python'), versions.pop('platform')
        print(', '.join(f'{name} {version}' for name, version in versions.items()))
        print(f'Python {python} on {system}')
        parser.exit()


class _Command(argparse.ArgumentParser):
    """A sub-command's parser: an argument it does not know is its own usage error, naming the closest option.

    argparse leaves an unknown argument of a sub-command to the main parser, which shows the main usage and
    no hint; here ``train --epohcs 3`` shows ``train``'s usage and "did you mean --epochs?".
    """

    def parse_known_args(self, args: Optional[Sequence[str]] = None,  # type: ignore[override]
                         namespace: Optional[argparse.Namespace] = None) -> Tuple[Any, List[str]]:
        given = list(sys.argv[1:] if args is None else args)
        unknown = [arg for arg in given[:given.index('--') if '--' in given else len(given)]
                   if arg.startswith('--') and not self._knows(arg.split('=', 1)[0])]
        if unknown:  # before argparse's own checks, which would report a required option "missing" instead
            self.error(f'unrecognized {_arguments(unknown)}{self._closest(unknown)}')
        namespace, extras = super().parse_known_args(given, namespace)
        if extras:
            self.error(f'unrecognized {_arguments(extras)}')
        return namespace, extras

    def _flags(self) -> List[str]:
        return [flag for action in self._actions for flag in action.option_strings if flag.startswith('--')]

    def _knows(self, flag: str) -> bool:
        """Whether ``flag`` is one of ours, or a prefix argparse expands to one (``--epoch`` for ``--epochs``)."""
        return any(known.startswith(flag) for known in self._flags())

    def _closest(self, unknown: Sequence[str]) -> str:
        """'; did you mean --epochs?' for the first of the ``unknown`` options that is like one of ours, else ''."""
        names = {flag[2:]: flag for flag in self._flags()}  # compared without the dashes every flag shares
        for flag in unknown:
            found = difflib.get_close_matches(flag.split('=', 1)[0][2:], list(names), n=1, cutoff=0.6)
            if found:
                return f'; did you mean {names[found[0]]}?'
        return ''


def _arguments(given: Sequence[str]) -> str:
    return f'argument{"s" if len(given) > 1 else ""}: {" ".join(given)}'


def _add_train(commands: Any) -> argparse.ArgumentParser:
    train: argparse.ArgumentParser = commands.add_parser(
        'train', help='train a VAE (or a VQ-VAE) on a dataset or your own images',
        description='Train a VAE with torchbearer on a dataset or a folder of your own images. Writes '
                    'reconstruction_001.png, samples_001.png, ... (one per epoch, counted from 1 as the log counts), '
                    'kl_dims_010.png (and latent_010.png for labelled data; every 10 epochs and at the last), '
                    'metrics.csv, loss.png, checkpoint.pt and summary.json into --out, and config.toml, the resolved '
                    'configuration: train --config runs/x/config.toml --out runs/y repeats the run. At the last epoch '
                    'a prior is fitted to the codes of the training images and kept in checkpoint.pt (sample --prior '
                    'fitted). --model vqvae writes the reconstructions only: it has no N(0, I) prior and no KL term.')
    train.add_argument('--config', metavar='FILE', default=None,
                       help='a TOML file of these options (batch_size = 64, a [model] table for the model\'s class '
                            'and arguments); flags given here override it')
    train.add_argument('--print-config', action='store_true',
                       help='print the resolved configuration (TOML, what --config reads) and exit')
    add_train_arguments(train)
    return train


def _add_sample(commands: Any) -> None:
    sample = commands.add_parser(
        'sample', help='decode draws from the prior of a trained model',
        description='Decode draws from the prior of a trained model into a grid of images: samples.png beside the '
                    'checkpoint (samples_labelN.png with --label N), or --out. The prior is a VAE\'s N(0, I), or '
                    'with --prior fitted the one train fitted to the codes of its training images at its last epoch '
                    '(a Gaussian mixture; for --model vqvae, the default and only prior, each position\'s code '
                    'frequencies). A conditional model draws one row per class, or class N only with --label N.')
    _checkpoint_option(sample)
    _num_images_option(sample, 64)
    sample.add_argument('--out', default=None, help='image file, or a folder for samples.png (samples_labelN.png '
                                                    'with --label N) (default: that file beside the checkpoint)')
    _force_option(sample)
    sample.add_argument('--label', type=class_index, default=None, metavar='N',
                        help='a conditional model (train --conditional): draw class N only (default: one row per '
                             'class)')
    sample.add_argument('--prior', choices=PRIORS, default=None,
                        help='normal: N(0, I); fitted: the prior train fitted to the codes of the training images, '
                             'often sharper samples (default: normal, fitted for --model vqvae)')
    add_option(sample, 'seed', default=0)
    add_option(sample, 'device')
    _model_option(sample)


def _add_reconstruct(commands: Any) -> None:
    reconstruct = commands.add_parser(
        'reconstruct', help='show images above their reconstructions',
        description="Encode and decode images with a trained model and write them above their reconstructions: "
                    "recon.png beside the checkpoint, or --out. The images are the run's validation images unless "
                    "--split or --dataset says otherwise.")
    _checkpoint_option(reconstruct)
    _data_options(reconstruct)
    _num_images_option(reconstruct, 8)
    reconstruct.add_argument('--out', default=None, help='image file, or a folder for recon.png '
                                                         '(default: recon.png beside the checkpoint)')
    _force_option(reconstruct)
    add_option(reconstruct, 'device')
    _model_option(reconstruct)


def _add_evaluate(commands: Any) -> None:
    evaluate = commands.add_parser(
        'evaluate', help='the ELBO, importance-weighted NLL and reconstruction term on a dataset',
        description="Estimate how well a trained model explains images, in nats per image: the negative ELBO, "
                    "with --importance-samples K > 1 the importance-weighted (IWAE) bound on -log p(x), and the "
                    "reconstruction term -log p(x|z) with z each image's code, with the reconstructions' PSNR "
                    "(--model vqvae: these two; it has no ELBO). Prints the "
                    "JSON and writes it to evaluation.json beside the checkpoint, or --out. The images are the "
                    "run's validation images unless --split or --dataset says otherwise.")
    _checkpoint_option(evaluate)
    _data_options(evaluate)
    evaluate.add_argument('--importance-samples', type=positive_int, default=1,
                          help='K > 1 also estimates -log p(x) with the IWAE bound (default: 1)')
    add_option(evaluate, 'batch_size', default=500)
    add_option(evaluate, 'seed', default=0)
    evaluate.add_argument('--out', default=None, help='JSON file, or a folder for evaluation.json '
                               '(default: evaluation.json beside the checkpoint)')
    _force_option(evaluate)
    add_option(evaluate, 'device')
    _model_option(evaluate)


def _model_option(command: argparse.ArgumentParser) -> None:
    command.add_argument('--model', type=model_name, default=None, metavar='module:Class',
                         help='the class of a checkpoint of your own model, as given to train --model (a class named '
                              'in a checkpoint is imported only when you name it; the package\'s models need none)')


def _force_option(command: argparse.ArgumentParser) -> None:
    command.add_argument('--force', action='store_true',
                         help='replace an existing --out file that this command did not write (default: keep it and '
                              'stop)')


def _checkpoint_option(command: argparse.ArgumentParser) -> None:
    command.add_argument('--checkpoint', required=True, help='a checkpoint.pt written by train')


def _data_options(command: argparse.ArgumentParser) -> None:
    """--dataset, --data-dir, --limit and --split of a command reading a checkpoint: by default, the run's data."""
    add_option(command, 'dataset', shown="the run's")
    add_option(command, 'data_dir')
    add_option(command, 'limit')
    add_option(command, 'cache_dir')
    add_option(command, 'no_cache')
    command.add_argument('--split', choices=('all', 'train', 'val'), default=None,
                         help="all of --dataset, or the run's own training/validation split (default: val, the "
                              "images the model was not trained on; all if --dataset names other data)")


def _num_images_option(command: argparse.ArgumentParser, default: int) -> None:
    command.add_argument('--num-images', '--n', dest='num_images', type=positive_int, default=default,
                         help=f'how many images (default: {default})')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``).

    Args:
        argv (sequence of str or None): The arguments, without the program name.

    Returns:
        int: The exit status: 0 on success, 2 for a usage or input error (or a run stopped by a NaN),
        130 if interrupted by Ctrl-C (SIGINT), 143 if terminated (SIGTERM).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stdout)
        return 0
    if args.command == 'train' and (args.config is not None or args.print_config):
        try:
            args = _configured(argv, args)
        except CommandError as error:
            return _fail(args.command, str(error))
        if args.print_config:
            return 0
    with Interruptions() as interruptions:
        try:
            from . import checkpoint_commands, train  # the heavy imports (torchvision, the Trial) only for work to do
            check_interrupted()  # a Ctrl-C during the imports
            getattr(train if args.command == 'train' else checkpoint_commands, args.command)(args)
        except (CommandError, CheckpointError) as error:
            return _fail(args.command, str(error))
        except OSError as error:  # a file the command could not read or write
            where = f': {error.filename}' if error.filename else ''
            return _fail(args.command, f'{error.strerror or error}{where}')
        except MemoryError:
            return _fail(args.command, 'out of memory; use smaller sizes (--batch-size, --hidden-dim, --image-size, '
                                       '--num-images)')
        except KeyboardInterrupt as interruption:
            signum = interruptions.signum
            advice = f'; {interruption}' if str(interruption) else ''
            print(f'torchbearer-vae {args.command}: {"terminated" if signum == signal.SIGTERM else "interrupted"}; '
                  f'files written so far are complete{advice}', file=sys.stderr)
            return 128 + signum
    return 0


def _configured(argv: Optional[Sequence[str]], args: argparse.Namespace) -> argparse.Namespace:
    """``train``'s arguments over its ``--config`` file; ``--print-config`` prints them. CommandError: a bad file."""
    from .config import print_config, read_config
    if args.config is not None:
        args = build_parser(read_config(args.config)).parse_args(argv)
    if args.print_config:
        print(print_config(args), end='')
    return args


def _fail(command: str, message: str) -> int:
    print(f'torchbearer-vae {command}: error: {_one_line(message)}', file=sys.stderr)
    return 2


# A library's advice to load with weights_only=False would run the code a crafted file holds: never pass it on.
_UNSAFE_ADVICE = re.compile(r'weights_only\W*(?:=|set to|to)?\W*False', re.IGNORECASE)


def _one_line(message: str) -> str:
    """``message`` on one line, without any sentence advising ``weights_only=False``."""
    sentences = re.split(r'(?<=[.;:])\s+', ' '.join(str(message).split()))
    kept = [sentence for sentence in sentences if not _UNSAFE_ADVICE.search(sentence)]
    return ' '.join(kept).rstrip(' ;:') or 'the file was refused'
