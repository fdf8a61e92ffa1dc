"""``python -m torchbearer_vae``: the same as the ``torchbearer-vae`` command."""
import sys

from .cli.main import main

if __name__ == '__main__':
    sys.exit(main())
