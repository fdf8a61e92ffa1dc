"""Reading IDX files (the MNIST format) safely, for :func:`torchbearer_vae.read_idx` and ``IDXDataset``.

A file from the internet is not trusted: only a regular file is opened (a FIFO would block
forever, ``/dev/zero`` never ends), the sizes its header announces are checked against what
the file can hold before anything is allocated, reading stops at the announced size (a gzip
bomb is never decompressed past it), and with a ``limit`` only the bytes of the first
``limit`` items are decompressed. Every problem is one ``ValueError`` that names the file.
"""
import gzip
import io
import math
import os
import stat
import zlib
from typing import Optional, Tuple

import numpy as np
import torch

from ..files import PathLike, file_kind

__all__ = []  # internal: the public reader is torchbearer_vae.read_idx

# IDX element types (http://yann.lecun.com/exdb/mnist/): all multi-byte values are big-endian.
_IDX_TYPES = {0x08: '>u1', 0x09: '>i1', 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}
# Deflate expands at most 1032:1 (a 258-byte match per 2 bits), so a gzip of S bytes cannot hold more than this
# times S: a header that announces more is refused before any allocation or decompression.
_MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 20  # bytes decompressed per read: memory stays bounded by what the header announces
_FIX = 'download it again (or check that the path is the right file)'


def _open_regular(name: str) -> io.BufferedIOBase:
    """Open ``name`` for reading if it is a regular file (after symlinks); never block on a FIFO."""
    # O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting; no effect on regular files.
    flags = os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_BINARY', 0)
    try:
        descriptor = os.open(name, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f'IDX file {name!r} does not exist; check the path') from None
    except IsADirectoryError:  # Windows cannot open a folder; POSIX can, and fstat says what it is
        raise ValueError(f'{name!r} is a folder, not an IDX file; give the file itself, or the folder to '
                         f'IDXDataset.from_folder') from None
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        hint = ('give the file itself, or the folder to IDXDataset.from_folder' if stat.S_ISDIR(mode) else
                'IDX data is read from regular files only (a pipe or a device may block or never end); save it to '
                'a file first')
        raise ValueError(f'{name!r} is {file_kind(mode)}, not an IDX file; {hint}')
    return os.fdopen(descriptor, 'rb')


def _header(stream: io.BufferedIOBase, name: str) -> Tuple[np.dtype, Tuple[int, ...], int]:
    """The element type, the shape and the header's size in bytes."""
    magic = stream.read(4)
    if not magic:
        raise ValueError(f'{name!r} is empty, not an IDX file; {_FIX}')
    if len(magic) < 4 or magic[:2] != b'\x00\x00' or magic[2] not in _IDX_TYPES or magic[3] == 0:
        raise ValueError(f'{name!r} is not an IDX file: it does not start with a valid IDX magic number; {_FIX}')
    ndim = magic[3]
    sizes = stream.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise ValueError(f'{name!r} is truncated: its header ends before its {ndim} dimensions; {_FIX}')
    shape = tuple(int.from_bytes(sizes[i:i + 4], 'big') for i in range(0, 4 * ndim, 4))
    return np.dtype(_IDX_TYPES[magic[2]]), shape, 4 + 4 * ndim


def _read_exactly(stream: io.BufferedIOBase, size: int) -> np.ndarray:
    """Up to ``size`` bytes of ``stream``, read in chunks into one buffer (shorter at the end of the data)."""
    buffer = np.empty(size, dtype=np.uint8)
    view, done = buffer.data, 0
    while done < size:
        count = stream.readinto(view[done:done + _CHUNK])
        if not count:
            break
        done += count
    return buffer[:done]


def read(path: PathLike, limit: Optional[int] = None) -> Tuple[torch.Tensor, Tuple[int, ...]]:
    """The array of an IDX file (its first ``limit`` items if given) and the shape its header announces."""
    name = os.fspath(path)
    with _open_regular(name) as file:
        file_size = os.fstat(file.fileno()).st_size
        compressed = file.read(2) == b'\x1f\x8b'  # detected from the content, not the name
        file.seek(0)
        try:
            if compressed:
                with gzip.GzipFile(fileobj=file, mode='rb') as stream:
                    return _payload(stream, name, file_size, compressed, limit)
            return _payload(file, name, file_size, compressed, limit)
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise ValueError(f'{name!r} is a truncated or corrupt gzip file ({error}); {_FIX}') from None


def _payload(stream: io.BufferedIOBase, name: str, file_size: int, compressed: bool,
             limit: Optional[int]) -> Tuple[torch.Tensor, Tuple[int, ...]]:
    dtype, shape, header = _header(stream, name)
    whole = limit is None  # with a limit, nothing after the items it keeps is read, or judged
    rows = shape[0] if limit is None else min(limit, shape[0])
    needed = rows * math.prod(shape[1:]) * dtype.itemsize
    announced = f'its header announces {shape} of {dtype.name}'
    if compressed and needed > _MAX_DEFLATE_RATIO * file_size:
        raise ValueError(f'{name!r} is corrupt: {announced}, {needed} bytes, more than a gzip file of {file_size} '
                         f'bytes can hold; {_FIX}')
    if not compressed and (file_size - header < needed or (whole and file_size - header != needed)):
        raise ValueError(f'{name!r} is truncated or corrupt: {announced} ({needed} bytes) but it holds '
                         f'{file_size - header} bytes of data; {_FIX}')
    data = _read_exactly(stream, needed)
    if len(data) < needed:
        raise ValueError(f'{name!r} is truncated or corrupt: {announced} ({needed} bytes) but its data ends after '
                         f'{len(data)} bytes; {_FIX}')
    if whole and stream.read(1):  # stop at the announced size: whatever follows is not read
        raise ValueError(f'{name!r} is corrupt: it holds more data than {announced} ({needed} bytes); {_FIX}')
    array = data.view(dtype)
    if dtype.itemsize > 1:
        array = array.astype(dtype.newbyteorder('='))
    return torch.from_numpy(array.reshape((rows,) + shape[1:])), shape
