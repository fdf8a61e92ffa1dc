"""File writing shared by everything the package saves: always atomic."""
import os
import queue
import re
import stat
import tempfile
import threading
import weakref
from typing import Callable, Dict, Optional, Tuple, Union

import torchbearer

__all__ = []  # internal

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


def file_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, for a message: 'a regular file', 'a FIFO (named pipe)', ..."""
    for test, name in ((stat.S_ISREG, 'a regular file'), (stat.S_ISDIR, 'a folder'),
                       (stat.S_ISFIFO, 'a FIFO (named pipe)'), (stat.S_ISCHR, 'a character device'),
                       (stat.S_ISBLK, 'a block device'), (stat.S_ISSOCK, 'a socket')):
        if test(mode):
            return name
    return 'not a regular file'


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


def bytes_writer(data: Union[bytes, bytearray, memoryview]) -> Callable[[str], None]:
    """A ``write(tmp_path)`` for :func:`atomic_write` that writes ``data`` (bytes or a buffer) as is."""
    def write(tmp_path: str) -> None:
        with open(tmp_path, 'wb') as file:
            file.write(data)
    return write


# -- writing in the background: the training loop hands a file over and goes on --
# Where a Trial's state keeps its run's writer (private: only the file-writing callbacks use it).
_RUN_WRITER = torchbearer.state_key('torchbearer_vae_file_writer')


# The writer threads alive in this process (weakly: a finished thread leaves by itself), which wait_for_writers joins.
_WRITER_THREADS: 'weakref.WeakSet[threading.Thread]' = weakref.WeakSet()


def wait_for_writers(timeout: Optional[float] = None) -> None:
    """Wait until every :class:`BackgroundWriter` of this process has written its files (each thread at most
    ``timeout`` seconds).

    Only the writers' own threads are joined, never the process's other non-daemon threads (a
    ``concurrent.futures`` pool, which ``torch.compile`` starts, lives until the interpreter exits).
    """
    for thread in list(_WRITER_THREADS):
        if thread is not threading.current_thread():
            thread.join(timeout=timeout)


class BackgroundWriter:
    """Write files with :func:`atomic_write` in a thread, in the order they were handed over.

    One writer belongs to one run: :meth:`of_run` keeps it in the Trial's state, so every
    file-writing callback of the run (checkpoint, CSV, pictures) hands its files to the same
    queue and a file handed over after another is never newer on disk (a checkpoint is never
    behind the CSV written after it). A write that fails is raised, naming its file, by the next
    :meth:`write` or :meth:`wait` of the callback (``owner``) that asked for it, not by another's.
    The thread exists only while there are files to write and is not a daemon: a process that
    ends normally (or on an exception) finishes its files first, and an idle writer holds no
    thread, so there is nothing to close. A killed process leaves the old file and a temporary
    that :func:`remove_stale_temporaries` deletes.

    ``write`` callables must use only what they own (bytes, text, tensors copied for them), never
    the live model or history, which training goes on changing.
    """

    def __init__(self, name: str = 'torchbearer_vae file writer'):
        self.name = name
        self._lock = threading.Lock()
        self._jobs: queue.Queue[Tuple[str, Callable[[str], None], int]] = queue.Queue()
        self._thread: Optional[threading.Thread] = None
        self._errors: Dict[int, Tuple[str, BaseException]] = {}

    @classmethod
    def of_run(cls, state: dict) -> 'BackgroundWriter':
        """The writer of the run whose state this is, made on first use (a dict outside a Trial works too)."""
        if _RUN_WRITER not in state:
            state[_RUN_WRITER] = cls()
        writer: BackgroundWriter = state[_RUN_WRITER]
        return writer

    def write(self, path: PathLike, write: Callable[[str], None], *, owner: object = None,
              background: bool = True) -> None:
        """``atomic_write(path, write)``: in the thread, or (``background=False``) now, after the earlier files.

        First raises an earlier failed write of ``owner``'s.
        """
        self.raise_error(owner)
        if not background:
            self.wait(owner)
            atomic_write(path, write)
            return
        with self._lock:
            self._jobs.put((os.fspath(path), write, id(owner)))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self.name)
                _WRITER_THREADS.add(self._thread)
                self._thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:  # stop only when nothing is queued, under the lock write() starts threads with
                if self._jobs.empty():
                    self._thread = None
                    return
            path, write, owner = self._jobs.get()
            try:
                atomic_write(path, write)
            except BaseException as error:  # kept for the owner's thread, which raises it
                with self._lock:
                    self._errors.setdefault(owner, (path, error))
            finally:
                self._jobs.task_done()

    def wait(self, owner: object = None) -> None:
        """Block until every file handed over is on disk; raise ``owner``'s first failed write, if any."""
        self._jobs.join()
        self.raise_error(owner)

    def raise_error(self, owner: object = None) -> None:
        """Raise (once) the first error a background write of ``owner``'s met, naming its file."""
        with self._lock:
            failed = self._errors.pop(id(owner), None)
        if failed is None:
            return
        path, error = failed
        if isinstance(error, OSError):
            message = f'could not write {path}: {error.strerror or error}'
            raise (OSError(error.errno, message) if error.errno else OSError(message)) from error
        raise RuntimeError(f'could not write {path}: {type(error).__name__}: {error}') from error
