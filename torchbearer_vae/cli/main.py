"""The ``torchbearer-vae`` command line: train a VAE (on a dataset or your own images), sample, reconstruct, evaluate.

Every command is built from the same public pieces the tutorial uses (:class:`VAE`, :class:`ConvVAE`,
:func:`load_image_folder`, :func:`kld_loss`, :class:`ReconstructionSaver`, ...). A mistake in the arguments or
the inputs is reported as one line on stderr with exit status 2; nothing is left half-written. Ctrl-C exits
with status 130 and SIGTERM with 143, the files written so far complete.

The commands themselves are in the internal modules ``train`` and ``checkpoint_commands``
(imported only when there is work to do: ``--help`` stays fast); this module only parses and reports.
"""
import argparse
import re
import signal
import sys
from typing import Optional, Sequence

from ..checks import check_int, check_number
from ..errors import CheckpointError, CommandError
from ..version import __version__

__all__ = ['main', 'build_parser', 'CommandError']

DATASETS = ('mnist', 'fashion-mnist', 'cifar10', 'digits', 'idx:DIR', 'folder:DIR')
_SEEDS = 2 ** 63  # what torch's generators and TensorLoader take


# -- argument types: argparse turns their ArgumentTypeError into a one-line usage error --
# (the bounds are checked by _checks, the package's one rule; the wording is the command line's)
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a whole number >= 1, got {text!r}') from None
    try:
        return check_int('value', value, minimum=1)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}') from None


def _seed(text: str) -> int:
    try:
        value = int(text)
        if not 0 <= value < _SEEDS:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a whole number from 0 to 2**63 - 1, got {text!r}') from None
    return value


def _number(**bounds):
    def parse(text: str) -> float:
        try:
            return check_number('value', float(text), **bounds)
        except ValueError as error:  # not a number, or out of bounds: "value must be a finite number > 0, got ..."
            wanted = str(error).split(' must be ', 1)[-1].split(', got ')[0] if ' must be ' in str(error) else \
                'a number'
            raise argparse.ArgumentTypeError(f'must be {wanted}, got {text!r}') from None
    return parse


def _label(text: str) -> int:
    try:
        value = int(text)
        if value < 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a class index, a whole number >= 0, got {text!r}') from None
    return value


def _dataset_name(text: str) -> str:
    folders = ('idx:', 'folder:')
    if text in DATASETS[:4] or any(text.startswith(prefix) and len(text) > len(prefix) for prefix in folders):
        return text
    raise argparse.ArgumentTypeError(f'unknown dataset {text!r}: choose {", ".join(DATASETS[:-1])} or {DATASETS[-1]}')


def _channels(text: str) -> int:
    if text not in ('1', '3'):
        raise argparse.ArgumentTypeError(f'must be 1 (grey) or 3 (colour), got {text!r}')
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``torchbearer-vae``, one sub-command per task.

    Returns:
        argparse.ArgumentParser: The parser.
    """
    parser = argparse.ArgumentParser(
        prog='torchbearer-vae',
        description='Variational auto-encoders with torchbearer: train a VAE on a dataset or your own images, then '
                    'sample from it, reconstruct images and estimate likelihoods.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    commands = parser.add_subparsers(dest='command', metavar='command')

    def data_options(command, default):
        command.add_argument('--dataset', type=_dataset_name, default=None, metavar='DATASET',
                             help='mnist, fashion-mnist, cifar10 (downloaded into --data-dir if missing), digits '
                                  "(scikit-learn's 8x8 digits, no download), idx:DIR (IDX files in DIR) or folder:DIR "
                                  f'(every image file under DIR; class subfolders are labels) (default: {default})')
        command.add_argument('--data-dir', default=None,
                             help='where mnist, fashion-mnist and cifar10 are (default: data)')
        command.add_argument('--limit', type=_positive_int, default=None, help='use only the first N images')

    def split_option(command):
        command.add_argument('--split', choices=('all', 'train', 'val'), default=None,
                             help="all of --dataset, or the run's own training/validation split (default: val, the "
                                  "images the model was not trained on; all if --dataset names other data)")

    def device_option(command):
        command.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto',
                             help='auto picks cuda when available (default: auto)')

    train = commands.add_parser(
        'train', help='train a VAE (mlp or conv) on a dataset or your own images',
        description='Train a VAE with torchbearer on a dataset or a folder of your own images. Writes '
                    'reconstruction_{epoch}.png, samples_{epoch}.png, kl_dims_{epoch}.png (and latent_{epoch}.png for '
                    'labelled data), metrics.csv, loss.png, checkpoint.pt and '
                    'summary.json into --out.')
    data_options(train, 'mnist')
    train.add_argument('--image-size', type=_positive_int, default=None, metavar='N',
                       help='folder:DIR: resize each image (shorter side) to N and crop its centre N x N square '
                            '(default: keep the size; every image must then have the same size)')
    train.add_argument('--channels', type=_channels, default=None, metavar='{1,3}',
                       help='folder:DIR: 1 (grey) or 3 (colour; RGBA and palette images converted) '
                            '(default: 1 if every image is grey, else 3)')
    train.add_argument('--model', choices=('mlp', 'conv'), default=None,
                       help='mlp: the PyTorch example\'s VAE; conv: ConvVAE, height and width multiples of 4 '
                            '(default: mlp for grey images, conv for colour ones)')
    train.add_argument('--conditional', action='store_true', default=None,
                       help='a ConditionalVAE (mlp) given each image\'s class, for labelled data (mnist, '
                            'fashion-mnist, cifar10, digits, idx:DIR with labels, folder:DIR with class '
                            'subfolders); then sample --label N draws class N')
    train.add_argument('--likelihood', choices=('bernoulli', 'gaussian'), default=None,
                       help='of the decoder: bernoulli (pixels in [0, 1] as probabilities) or gaussian with a '
                            'fixed --sigma (default: bernoulli)')
    train.add_argument('--sigma', type=_number(above=0), default=None,
                       help='standard deviation of --likelihood gaussian, in pixel units of [0, 1] (default: 0.1)')
    train.add_argument('--epochs', type=_positive_int, default=10, help='total epochs (default: 10)')
    train.add_argument('--batch-size', type=_positive_int, default=None, help='default: 128')
    train.add_argument('--lr', type=_number(above=0), default=None, help='Adam learning rate (default: 1e-3)')
    train.add_argument('--latent-dim', type=_positive_int, default=None, help='default: 20')
    train.add_argument('--hidden-dim', type=_positive_int, default=None, help='default: 400 (mlp), 256 (conv)')
    train.add_argument('--beta', type=_number(minimum=0), default=None, help='KL weight (default: 1.0)')
    train.add_argument('--val-fraction', type=_number(above=0, below=1), default=None, help='default: 0.1')
    train.add_argument('--seed', type=_seed, default=None, help='default: 1')
    device_option(train)
    train.add_argument('--out', default=None, help='output folder (default: runs/DATASET)')
    train.add_argument('--resume', action='store_true', help='continue the run in --out from its checkpoint.pt')
    train.add_argument('--quiet', action='store_true', help='no progress on stderr (a line per epoch, and a live '
                                                            'bar on a terminal)')
    train.add_argument('--compile', action='store_true',
                       help='compile the model and its loss with torch.compile: the first steps take seconds to '
                            'minutes longer, later ones can be faster (mostly on a GPU; see the README\'s '
                            'Performance); chosen anew at --resume')

    sample = commands.add_parser('sample', help='decode draws from the prior of a trained model')
    sample.add_argument('--checkpoint', required=True, help='a checkpoint.pt written by train')
    sample.add_argument('--num-images', '--n', dest='num_images', type=_positive_int, default=64,
                        help='how many images (default: 64)')
    sample.add_argument('--out', default=None, help='image file, or a folder for samples.png '
                                                    '(default: samples.png beside the checkpoint)')
    sample.add_argument('--label', type=_label, default=None, metavar='N',
                        help='a conditional model (train --conditional): draw class N only (default: one row per '
                             'class)')
    sample.add_argument('--seed', type=_seed, default=0, help='default: 0')
    device_option(sample)

    reconstruct = commands.add_parser('reconstruct', help='show images above their reconstructions')
    reconstruct.add_argument('--checkpoint', required=True, help='a checkpoint.pt written by train')
    data_options(reconstruct, "the run's")
    split_option(reconstruct)
    reconstruct.add_argument('--num-images', '--n', dest='num_images', type=_positive_int, default=8,
                             help='how many images (default: 8)')
    reconstruct.add_argument('--out', default=None, help='image file, or a folder for recon.png '
                                                         '(default: recon.png beside the checkpoint)')
    device_option(reconstruct)

    evaluate = commands.add_parser('evaluate', help='the ELBO and importance-weighted NLL on a dataset')
    evaluate.add_argument('--checkpoint', required=True, help='a checkpoint.pt written by train')
    data_options(evaluate, "the run's")
    split_option(evaluate)
    evaluate.add_argument('--importance-samples', type=_positive_int, default=1,
                          help='K > 1 also estimates -log p(x) with the IWAE bound (default: 1)')
    evaluate.add_argument('--batch-size', type=_positive_int, default=500, help='default: 500')
    evaluate.add_argument('--seed', type=_seed, default=0, help='default: 0')
    evaluate.add_argument('--out', default=None, help='JSON file, or a folder for evaluation.json '
                               '(default: evaluation.json beside the checkpoint)')
    device_option(evaluate)
    return parser


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
    received = []

    def terminate(signum, frame):  # SIGTERM stops the command as Ctrl-C does: files whole, one line
        received.append(signum)
        raise KeyboardInterrupt

    previous = _handle(signal.SIGTERM, terminate)
    try:
        from . import checkpoint_commands, train  # the heavy imports (torchvision, the Trial) only for work to do
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
        advice = f'; {interruption}' if str(interruption) else ''
        print(f'torchbearer-vae {args.command}: {"terminated" if received else "interrupted"}; files written so '
              f'far are complete{advice}', file=sys.stderr)
        return 128 + (received[0] if received else signal.SIGINT)
    finally:
        _handle(signal.SIGTERM, previous)
    return 0


def _handle(signum, handler):
    """Install a signal handler where Python allows it (the main thread); returns the previous one."""
    try:
        return signal.signal(signum, handler)
    except (ValueError, TypeError):  # not the main thread, or no previous Python handler to restore
        return handler


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
