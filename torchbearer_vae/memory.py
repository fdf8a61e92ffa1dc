"""How much memory is left: the one helper behind every "would not fit" check (data, models, pictures)."""
import os
from typing import Any, List, Optional

__all__ = []  # internal


def available_memory(device: Any = None) -> Optional[int]:
    """Bytes that can still be allocated on ``device`` (default the CPU), or None if unknown.

    The CPU's is ``MemAvailable`` (else the free pages), within a container's own limit (cgroup
    v2), which is often far below the machine's; a GPU's is what CUDA reports free.
    """
    if device is not None and getattr(device, 'type', 'cpu') == 'cuda':
        import torch
        return torch.cuda.mem_get_info(device)[0]
    found: List[int] = []
    try:
        with open('/proc/meminfo') as file:
            found += [int(line.split()[1]) * 1024 for line in file if line.startswith('MemAvailable:')]
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found.append(os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE'))
        except (AttributeError, ValueError, OSError):
            pass
    try:
        with open('/sys/fs/cgroup/memory.max') as limit, open('/sys/fs/cgroup/memory.current') as current:
            text = limit.read().strip()
            if text != 'max':
                found.append(int(text) - int(current.read().strip()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None
