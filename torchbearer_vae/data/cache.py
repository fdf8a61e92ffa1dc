"""The decoded images of a folder, kept in a cache file so that the next run reads them instead of decoding again.

:func:`~torchbearer_vae.load_image_folder` with ``cache_dir`` writes what it decoded (``uint8``, already resized
and cropped) into ``cache_dir`` and, the next time, reads it back memory-mapped: no file is decoded, and a folder
larger than the memory trains at the disk's speed instead of being refused. A cache entry is found by the folder's
absolute path and the preprocessing (``image_size``, ``channels``, ``limit``); it is used only if the folder still
lists the same files with the same sizes and modification times, and if the bytes read back have the digest
recorded when they were written. Anything else (a file edited, added or removed; a cache file cut short, damaged
or edited) makes the folder decoded again and the entry replaced, never trusted; a damaged entry says so in one
warning.

An entry is two files: ``<key>.json``, what was decoded (the files' listing digest, the shape, which files were
read and which skipped, the data's digest), and ``<key>.<digest>.u8``, the images as raw bytes ``(N, C, H, W)``.
Both are written under temporary names and renamed into place, the description last, so a reader never sees
half an entry, and two runs building the same entry at once (ranks of a distributed run) do not disturb each other.
"""
import hashlib
import json
import math
import os
import re
import shutil
import stat
import sys
import uuid
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..files import PathLike

__all__ = ['CACHE_ENV', 'default_cache_dir']

#: The environment variable naming the cache folder (the command line's ``--cache-dir`` default).
CACHE_ENV = 'TORCHBEARER_VAE_CACHE'
_FORMAT = 1  # of the description; another one is not read
_CHUNK = 1 << 24  # bytes hashed at a time
_MAX_DESCRIPTION = 1 << 20  # bytes of a description, besides 64 a file (its index, a skipped file's path and reason)
_DATA_NAME = re.compile(r'[0-9a-f]{32}\.[0-9a-f]{32}\.u8\Z')


def default_cache_dir() -> str:
    """The cache folder used when none is given: ``$TORCHBEARER_VAE_CACHE``, else the platform's user cache.

    That is ``$XDG_CACHE_HOME/torchbearer-vae`` (``~/.cache/torchbearer-vae``) on Linux,
    ``~/Library/Caches/torchbearer-vae`` on macOS and ``%LOCALAPPDATA%\\torchbearer-vae`` on Windows.

    Returns:
        str: The folder (not created here).

    Example: ::

        >>> import os
        >>> from torchbearer_vae import default_cache_dir
        >>> os.path.basename(default_cache_dir()) == 'torchbearer-vae' or 'TORCHBEARER_VAE_CACHE' in os.environ
        True
    """
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return chosen
    if sys.platform == 'win32':
        base = os.environ.get('LOCALAPPDATA') or os.path.join(os.path.expanduser('~'), 'AppData', 'Local')
    elif sys.platform == 'darwin':
        base = os.path.join(os.path.expanduser('~'), 'Library', 'Caches')
    else:
        base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'torchbearer-vae')


def _digest(data: np.ndarray) -> str:
    """The BLAKE2b digest (32 hex digits) of an array's bytes, read a chunk at a time (a memory map stays on disk)."""
    flat = data.reshape(-1)
    digest = hashlib.blake2b(digest_size=16)
    for start in range(0, flat.size, _CHUNK):
        digest.update(np.ascontiguousarray(flat[start:start + _CHUNK]).data)
    return digest.hexdigest()


def _listing(root: str, paths: Sequence[str]) -> str:
    """A digest of the folder's files as found: each one's path below ``root``, size, modification time and kind."""
    digest = hashlib.blake2b(digest_size=16)
    prefix = os.path.join(root, '')
    for path in paths:
        name = path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)  # relpath is slow
        try:
            info = os.stat(path)
            entry = f'{name}\0{info.st_size}\0{info.st_mtime_ns}\0{stat.S_IFMT(info.st_mode)}'
        except OSError as error:  # unreadable now: still part of what the folder holds
            entry = f'{name}\0{type(error).__name__}'
        digest.update(entry.encode('utf-8', 'surrogateescape') + b'\n')
    return digest.hexdigest()


class FolderCache:
    """The cache entry of one folder decoded one way: :meth:`load` it, or :meth:`allocate` and :meth:`commit` a new one.

    Args:
        cache_dir: The cache folder (created when an entry is written).
        root: The folder of images (``paths`` are below it).
        paths: Its image files, as :func:`~torchbearer_vae.find_images` lists them.
        settings: The preprocessing (``image_size``, ``channels``, ``limit``): a different ``image_size`` or
            ``limit`` is another entry; ``channels`` is checked against the entry's (``_same_channels``).
    """

    def __init__(self, cache_dir: PathLike, root: str, paths: Sequence[str], settings: Dict[str, Any]):
        self.folder = os.path.abspath(os.fspath(cache_dir))
        self.root, self.paths, self.settings = os.path.abspath(root), paths, dict(settings)
        self.channels = self.settings.pop('channels', None)  # not in the key: see _same_channels
        identity = json.dumps({'root': self.root, **self.settings}, sort_keys=True)
        self.key = hashlib.blake2b(identity.encode('utf-8', 'surrogateescape'), digest_size=16).hexdigest()
        self.listing = _listing(root, paths)
        self.description = os.path.join(self.folder, f'{self.key}.json')
        self._temporary: List[str] = []

    # -- reading --

    def load(self) -> Optional[Tuple[np.ndarray, List[int], List[Tuple[str, str]]]]:
        """The images of a valid entry, memory-mapped (copy-on-write), the indices read and the files skipped
        (``(path, reason)``); None without a usable entry (a damaged one is reported in one warning)."""
        try:
            info = os.stat(self.description)
        except FileNotFoundError:
            return None
        except OSError as error:
            return self._damaged(f'its description cannot be read ({type(error).__name__})')
        # a FIFO would block the read, a huge file fill the memory: a description is a small regular file
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_DESCRIPTION + 64 * len(self.paths):
            return self._damaged('its description is not a regular file of a description\'s size')
        try:
            with open(self.description, encoding='utf-8') as file:
                described = json.load(file)
        except (OSError, ValueError) as error:
            return self._damaged(f'its description cannot be read ({type(error).__name__})')
        try:
            if not isinstance(described, dict) or described.get('format') != _FORMAT:
                return self._damaged('its description is not one this version writes')
            if described.get('root') != self.root or described.get('settings') != self.settings or \
                    described.get('listing') != self.listing or not self._same_channels(described):
                return None  # the folder changed (or another folder's entry): decoded again, silently
            shape, read, skipped, name = (described['shape'], described['read'], described['skipped'],
                                          described['data'])
            valid = (isinstance(shape, list) and len(shape) == 4 and
                     all(isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in shape) and
                     isinstance(read, list) and len(read) == shape[0] and
                     all(isinstance(index, int) and not isinstance(index, bool) for index in read) and
                     read == sorted(set(read)) and 0 <= read[0] and read[-1] < len(self.paths) and
                     isinstance(skipped, list) and
                     all(isinstance(item, list) and len(item) == 2 and all(isinstance(part, str) for part in item)
                         for item in skipped) and
                     isinstance(name, str) and _DATA_NAME.match(name) is not None and name.startswith(self.key))
        except (KeyError, TypeError, IndexError):
            valid = False
        if not valid:
            return self._damaged('its description does not hold a valid entry')
        path = os.path.join(self.folder, name)
        try:
            if os.path.getsize(path) != math.prod(shape):
                return self._damaged(f'{name} holds {os.path.getsize(path):,} bytes, not the {math.prod(shape):,} '
                                     f'described')
            data = np.memmap(path, dtype=np.uint8, mode='c', shape=tuple(shape))
        except OSError as error:
            return self._damaged(f'{name} cannot be read ({type(error).__name__}: {error})')
        if _digest(data) != described.get('digest'):
            return self._damaged(f'the bytes of {name} are not those written')
        return data, read, [(item[0], item[1]) for item in skipped]

    def _same_channels(self, described: dict) -> bool:
        """Whether the entry's images are those asked for: decoded with the same ``channels``, or without one
        (grey if every image is, else RGB) into the number asked for, which converting each image gives too."""
        asked, made, shape = self.channels, described.get('channels'), described.get('shape')
        return asked == made or (made is None and isinstance(shape, list) and len(shape) == 4 and shape[1] == asked)

    def _damaged(self, why: str) -> Optional[Tuple[np.ndarray, List[int], List[Tuple[str, str]]]]:
        """Warn that the entry is damaged (``why``): None, the entry is not used."""
        warnings.warn(f'the cache of the decoded images of {self.root!r} in {self.folder!r} is damaged ({why}): '
                      f'decoding the folder again, and replacing it', stacklevel=4)
        return None

    # -- writing --

    def check_space(self, needed: int) -> None:
        """Refuse, before any image is decoded, an entry of ``needed`` bytes larger than the free disk space."""
        os.makedirs(self.folder, exist_ok=True)
        free = shutil.disk_usage(self.folder).free
        if needed > free:
            raise ValueError(f'the decoded images of {self.root!r} need {needed / 2 ** 30:.3g} GiB in the cache '
                             f'{self.folder!r}, which has {free / 2 ** 30:.3g} GiB free; give another cache folder '
                             f'(--cache-dir, or ${CACHE_ENV}) or none (--no-cache)')

    def allocate(self, shape: Tuple[int, ...]) -> np.ndarray:
        """A writable memory map of ``shape`` (``uint8``) in a new temporary file of the cache folder."""
        os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, f'.{self.key}.{uuid.uuid4().hex}.tmp')
        self._temporary.append(path)
        size = math.prod(shape)
        with open(path, 'wb') as file:  # the disk space reserved now: a full disk is an OSError here, not a
            if hasattr(os, 'posix_fallocate'):  # SIGBUS when a page of the map is written later
                os.posix_fallocate(file.fileno(), 0, size)
            else:
                file.truncate(size)
        return np.memmap(path, dtype=np.uint8, mode='r+', shape=shape)

    def commit(self, data: np.ndarray, read: Sequence[int], skipped: Sequence[Tuple[str, Exception]]) -> np.ndarray:
        """Make ``data`` (from :meth:`allocate`; its first ``len(read)`` images) the entry; returns them, mapped
        read-only (copy-on-write) from the entry's file."""
        count = len(read)
        if not isinstance(data, np.memmap) or data.filename not in self._temporary:
            raise ValueError('commit takes the array allocate returned')
        source = data.filename
        data.flush()
        digest = _digest(data[:count])
        shape = (count,) + tuple(data.shape[1:])
        del data
        name = f'{self.key}.{digest}.u8'
        final = os.path.join(self.folder, name)
        os.truncate(source, math.prod(shape))  # images skipped under limit leave rows unused at the end
        os.replace(source, final)
        described = {'format': _FORMAT, 'root': self.root, 'settings': self.settings, 'channels': self.channels,
                     'listing': self.listing,
                     'shape': list(shape), 'read': list(read), 'data': name, 'digest': digest,
                     'skipped': [[path, f'{type(error).__name__}: {error}'] for path, error in skipped]}
        temporary = os.path.join(self.folder, f'.{self.key}.{uuid.uuid4().hex}.tmp')
        self._temporary.append(temporary)
        with open(temporary, 'w', encoding='utf-8') as file:
            json.dump(described, file)
        os.replace(temporary, self.description)  # the entry exists from here on
        self.discard()
        for other in os.listdir(self.folder):  # the entry's earlier images
            if other != name and other.startswith(self.key + '.') and _DATA_NAME.match(other):
                try:
                    os.remove(os.path.join(self.folder, other))
                except OSError:
                    pass
        return np.memmap(final, dtype=np.uint8, mode='c', shape=shape)

    def discard(self) -> None:
        """Remove the temporary files this entry wrote (after a failure, or once committed)."""
        for path in self._temporary:
            try:
                os.remove(path)
            except OSError:
                pass
        self._temporary.clear()
