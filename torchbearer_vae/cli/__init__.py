"""The ``torchbearer-vae`` command line, a client of the library: nothing outside this subpackage imports it."""
from .main import build_parser, main

__all__ = ['main', 'build_parser']
