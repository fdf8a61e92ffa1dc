"""The ``torchbearer-vae`` command line."""
import argparse
import sys
from typing import Optional, Sequence

from .version import __version__

__all__ = ['main', 'build_parser']


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``torchbearer-vae``.

    Returns:
        argparse.ArgumentParser: The parser, with one sub-parser per command.
    """
    parser = argparse.ArgumentParser(
        prog='torchbearer-vae',
        description='Variational auto-encoders for torchbearer: train, sample, reconstruct, evaluate.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    parser.add_subparsers(dest='command', metavar='command')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``).

    Args:
        argv (sequence of str or None): The arguments, without the program name.

    Returns:
        int: The exit status.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stdout)
        return 0
    return 0
