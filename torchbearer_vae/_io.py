"""File writing shared by everything the package saves: always atomic."""
import os
import tempfile
from typing import Callable, Union

PathLike = Union[str, 'os.PathLike[str]']


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` onto ``path``.

    The temporary file sits in the destination folder (so the rename is atomic on POSIX and
    Windows) and keeps ``path``'s extension (so writers that pick a format from it still work).
    A crash or an exception leaves either the old file or the new one, never half of one.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    stem, extension = os.path.splitext(name)
    fd, tmp_path = tempfile.mkstemp(prefix='.' + stem + '.', suffix='.tmp' + extension, dir=folder)
    os.close(fd)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.remove(tmp_path)
        except OSError:
            pass
        raise
