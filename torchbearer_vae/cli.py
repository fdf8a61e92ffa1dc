"""The ``torchbearer-vae`` command line: train, sample, reconstruct and evaluate the reference VAE.

Every command is built from the same public pieces the tutorial uses (:class:`VAE`,
:func:`kld_loss`, :class:`ReconstructionSaver`, ...). A mistake in the arguments or the inputs
is reported as one line on stderr with exit status 2; nothing is left half-written.
"""
import argparse
import sys
from typing import Optional, Sequence

from .errors import CommandError
from .version import __version__

__all__ = ['main', 'build_parser', 'CommandError']

DATASETS = ('mnist', 'fashion-mnist', 'digits', 'idx:DIR')
# Options that fix the model, the data or the optimisation: a resumed run must keep them.
_RUN_OPTIONS = ('dataset', 'data_dir', 'batch_size', 'lr', 'latent_dim', 'hidden_dim', 'beta', 'val_fraction',
                'seed', 'limit')
_DEFAULTS = {'dataset': None, 'data_dir': 'data', 'batch_size': 128, 'lr': 1e-3, 'latent_dim': 20,
             'hidden_dim': 400, 'beta': 1.0, 'val_fraction': 0.1, 'seed': 1, 'limit': None}


# -- argument types: argparse turns their ArgumentTypeError into a one-line usage error --
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'must be a whole number >= 1, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def _number(low: float, low_inclusive: bool, high: Optional[float] = None):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'must be a number, got {text!r}') from None
        too_low = value < low if low_inclusive else value <= low
        if too_low or (high is not None and value >= high) or value != value or value == float('inf'):
            bound = f'{">=" if low_inclusive else ">"} {low:g}' + (f' and < {high:g}' if high is not None else '')
            raise argparse.ArgumentTypeError(f'must be a finite number {bound}, got {text!r}')
        return value
    return parse


def _dataset_name(text: str) -> str:
    if text in DATASETS[:3] or (text.startswith('idx:') and len(text) > 4):
        return text
    raise argparse.ArgumentTypeError(f'unknown dataset {text!r}: choose mnist, fashion-mnist, digits or idx:DIR')


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``torchbearer-vae``, one sub-command per task.

    Returns:
        argparse.ArgumentParser: The parser.
    """
    parser = argparse.ArgumentParser(
        prog='torchbearer-vae',
        description='Variational auto-encoders with torchbearer: train the reference VAE, then sample from it, '
                    'reconstruct images and estimate likelihoods.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    commands = parser.add_subparsers(dest='command', metavar='command')

    def data_options(command, required=False):
        command.add_argument('--dataset', type=_dataset_name, required=required, default=None,
                             help='mnist, fashion-mnist (downloaded into --data-dir if missing), digits '
                                  "(scikit-learn's 8x8 digits, no download) or idx:DIR (IDX files in DIR)")
        command.add_argument('--data-dir', default=None, help='where mnist/fashion-mnist are (default: data)')
        command.add_argument('--limit', type=_positive_int, default=None, help='use only the first N images')

    def split_option(command):
        command.add_argument('--split', choices=('all', 'train', 'val'), default='all',
                             help="all of --dataset, or the run's own training/validation split (default: all)")

    def device_option(command):
        command.add_argument('--device', choices=('auto', 'cpu', 'cuda'), default='auto',
                             help='auto picks cuda when available (default: auto)')

    train = commands.add_parser('train', help='train the reference VAE', description=(
        'Train the reference VAE with torchbearer. Writes reconstruction_{epoch}.png, samples_{epoch}.png, '
        'metrics.csv, loss.png, checkpoint.pt and summary.json into --out.'))
    data_options(train)
    train.add_argument('--epochs', type=_positive_int, default=10, help='total epochs (default: 10)')
    train.add_argument('--batch-size', type=_positive_int, default=None, help='default: 128')
    train.add_argument('--lr', type=_number(0, False), default=None, help='Adam learning rate (default: 1e-3)')
    train.add_argument('--latent-dim', type=_positive_int, default=None, help='default: 20')
    train.add_argument('--hidden-dim', type=_positive_int, default=None, help='default: 400')
    train.add_argument('--beta', type=_number(0, True), default=None, help='KL weight (default: 1.0)')
    train.add_argument('--val-fraction', type=_number(0, False, 1), default=None, help='default: 0.1')
    train.add_argument('--seed', type=int, default=None, help='default: 1')
    device_option(train)
    train.add_argument('--out', default=None, help='output folder (default: runs/DATASET)')
    train.add_argument('--resume', action='store_true', help='continue the run in --out from its checkpoint.pt')
    train.add_argument('--quiet', action='store_true', help='no progress bar')

    sample = commands.add_parser('sample', help='decode draws from the prior of a trained model')
    sample.add_argument('--checkpoint', required=True, help='a checkpoint.pt written by train')
    sample.add_argument('--n', type=_positive_int, default=64, help='how many images (default: 64)')
    sample.add_argument('--out', default='samples.png', help='image file (default: samples.png)')
    sample.add_argument('--seed', type=int, default=0, help='default: 0')
    device_option(sample)

    reconstruct = commands.add_parser('reconstruct', help='show images above their reconstructions')
    reconstruct.add_argument('--checkpoint', required=True, help='a checkpoint.pt written by train')
    data_options(reconstruct)
    split_option(reconstruct)
    reconstruct.add_argument('--n', type=_positive_int, default=8, help='how many images (default: 8)')
    reconstruct.add_argument('--out', default='recon.png', help='image file (default: recon.png)')
    device_option(reconstruct)

    evaluate = commands.add_parser('evaluate', help='the ELBO and importance-weighted NLL on a dataset')
    evaluate.add_argument('--checkpoint', required=True, help='a checkpoint.pt written by train')
    data_options(evaluate)
    split_option(evaluate)
    evaluate.add_argument('--importance-samples', type=_positive_int, default=1,
                          help='K > 1 also estimates -log p(x) with the IWAE bound (default: 1)')
    evaluate.add_argument('--batch-size', type=_positive_int, default=500, help='default: 500')
    evaluate.add_argument('--seed', type=int, default=0, help='default: 0')
    evaluate.add_argument('--out', default=None, help='JSON file (default: evaluation.json beside the checkpoint)')
    device_option(evaluate)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``).

    Args:
        argv (sequence of str or None): The arguments, without the program name.

    Returns:
        int: The exit status: 0 on success, 2 for a usage or input error, 130 if interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stdout)
        return 0
    from . import commands  # the heavy imports (torchvision, the Trial) only when there is work to do
    from .checkpoints import CheckpointError

    try:
        getattr(commands, args.command)(args)
    except (CommandError, CheckpointError) as error:
        message = ' '.join(str(error).split())  # one line, even when a library's message has several
        print(f'torchbearer-vae {args.command}: error: {message}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'torchbearer-vae {args.command}: interrupted; files written so far are complete'
              + ('; continue with --resume' if args.command == 'train' else ''), file=sys.stderr)
        return 130
    return 0

