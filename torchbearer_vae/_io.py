"""File writing shared by everything the package saves: always atomic."""
import atexit
import os
import queue
import re
import tempfile
import threading
from typing import Callable, List, Optional, Tuple, Union

PathLike = Union[str, 'os.PathLike[str]']


_TMP_MARK = '.tmp'
# What atomic_write names its temporary files: '.' + stem + '.' + mkstemp's 8 random characters + '.tmp' + extension.
_TEMPORARY = re.compile(r'^\..+\.[a-z0-9_]{8}' + re.escape(_TMP_MARK) + r'(\.[^.]+)?$')


def remove_stale_temporaries(folder: PathLike) -> int:
    """Delete temporary files that an interrupted :func:`atomic_write` left in ``folder``.

    A process killed between writing a temporary file and renaming it leaves the temporary
    behind (the real file is untouched). Call this when (re)starting work in a folder.

    Returns:
        int: How many were removed.
    """
    removed = 0
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if _TEMPORARY.match(name) and os.path.isfile(os.path.join(folder, name)):
                os.remove(os.path.join(folder, name))
                removed += 1
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: str, directory: bool = False) -> None:
    """Push a file's data (or a folder's entries) to the disk, so a rename cannot outlive its content."""
    try:
        fd = os.open(path, os.O_RDONLY if directory else os.O_RDWR)
    except OSError:  # folders cannot be opened on Windows, where the rename is durable by itself
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (and folders on some platforms) do not support it: the rename is still atomic
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` onto ``path``.

    The temporary file sits in the destination folder (so the rename is atomic on POSIX and
    Windows) and keeps ``path``'s extension (so writers that pick a format from it still work).
    A crash or an exception leaves either the old file or the new one, never half of one. The
    data is flushed to the disk (``fsync``) before the rename and the folder after it, so that
    after a power cut or a kernel crash, too, the file is the old one or the complete new one
    (without it, some file systems can show the new name with no data); about a millisecond per file.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    stem, extension = os.path.splitext(name)
    fd, tmp_path = tempfile.mkstemp(prefix='.' + stem + '.', suffix=_TMP_MARK + extension, dir=folder)
    os.close(fd)
    try:
        write(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        _fsync(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.remove(tmp_path)
        except OSError:
            pass
        raise
    _fsync(folder, directory=True)


def bytes_writer(data) -> Callable[[str], None]:
    """A ``write(tmp_path)`` for :func:`atomic_write` that writes ``data`` (bytes or a buffer) as is."""
    def write(tmp_path: str) -> None:
        with open(tmp_path, 'wb') as file:
            file.write(data)
    return write


# -- writing in the background: the training loop hands a file over and goes on --
# One worker thread, started on first use, takes the files in the order they were handed over.
_lock = threading.Lock()
_jobs: 'queue.Queue[Tuple[str, Callable[[str], None]]]' = queue.Queue()
_worker: Optional[threading.Thread] = None
_errors: List[Tuple[str, BaseException]] = []


def _work() -> None:
    while True:
        path, write = _jobs.get()
        try:
            atomic_write(path, write)
        except BaseException as error:  # kept for the training thread, which raises it
            with _lock:
                _errors.append((path, error))
        finally:
            _jobs.task_done()


def write_in_background(path: PathLike, write: Callable[[str], None]) -> None:
    """:func:`atomic_write` ``(path, write)`` in a background thread, after every write handed over before it.

    For the files a callback writes every epoch (checkpoint, CSV, pictures): the training loop
    goes on while the bytes reach the disk. ``write`` must use only what it owns (bytes, text,
    tensors copied for it), never the live model or history, which training goes on changing.
    Writes happen in the order they were handed over, so a file written after another is never
    newer on disk. A process that ends normally (or on an exception) finishes its writes first
    (at exit); a killed one leaves the old file and a temporary that
    :func:`remove_stale_temporaries` deletes.

    Raises:
        OSError (or whatever an earlier write raised): the first error of an earlier background
            write, so that a failing disk stops training at the next write, not silently.
    """
    global _worker
    raise_write_errors()
    with _lock:
        if _worker is None or not _worker.is_alive():  # first use, or a child process after fork
            _worker = threading.Thread(target=_work, name='torchbearer_vae file writer', daemon=True)
            _worker.start()
    _jobs.put((os.fspath(path), write))


def wait_for_writes() -> None:
    """Block until every :func:`write_in_background` write is on disk; raise the first error one met."""
    _jobs.join()
    raise_write_errors()


atexit.register(_jobs.join)  # the worker is a daemon (it never ends by itself): finish its files before exit


def raise_write_errors() -> None:
    """Raise (once) the first error a background write met, naming its file."""
    with _lock:
        if not _errors:
            return
        path, error = _errors[0]
        _errors.clear()
    if isinstance(error, OSError):
        message = f'could not write {path}: {error.strerror or error}'
        raise (OSError(error.errno, message) if error.errno else OSError(message)) from error
    raise RuntimeError(f'could not write {path}: {type(error).__name__}: {error}') from error
