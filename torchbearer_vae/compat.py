"""What differs between the releases the package supports, in one place (internal).

The package supports torch 2.3 and later (setup.cfg's lower bounds, run by ``tox -e oldest``). Code
that depends on the release asks here, by version number, never by the wording of an error message;
each branch has its test in ``tests/test_compat.py``. Also the versions a bug report needs.
"""
import importlib.metadata
import platform
import re
from typing import Dict, Tuple, Union

import torch

from .version import __version__

__all__ = []  # internal

#: ``(major, minor)`` of the torch in use.
TORCH_VERSION: Tuple[int, int] = tuple(int(part) for part in re.findall(r'\d+', torch.__version__)[:2])  # type: ignore[assignment]


def fused_adam_supported(device: Union[str, torch.device]) -> bool:
    """Whether ``torch.optim.Adam(fused=True)`` has a kernel for ``device`` in this torch.

    CUDA has had one since torch 2.0, the CPU since 2.4; other devices get the default Adam.
    """
    kind = torch.device(device).type
    return kind == 'cuda' or (kind == 'cpu' and TORCH_VERSION >= (2, 4))


def environment() -> Dict[str, str]:
    """The versions of this package, of torch, torchvision and torchbearer, of Python and of the platform.

    Read from the installed distributions' metadata, without importing them (fast, and it works
    when one of them is broken). ``torchbearer-vae --version`` prints them; ``train`` stores them
    in ``summary.json``. ``'not installed'`` for a missing distribution.
    """
    versions = {'torchbearer_vae': __version__}
    for name in ('torch', 'torchvision', 'torchbearer'):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = 'not installed'
    versions.update(python=platform.python_version(), platform=platform.platform())
    return versions
