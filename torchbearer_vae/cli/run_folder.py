"""Where ``torchbearer-vae`` writes: ``train``'s run folder, locked for the life of a run, and the output file of
``sample``, ``reconstruct`` and ``evaluate``, which may never be one of the command's inputs or a file of another kind.

Internal to the command line (:mod:`torchbearer_vae.cli`); every refusal is a :class:`CommandError`.
"""
import errno
import json
import os
import re
import shutil
import stat
import sys
import time
from typing import IO, Any, Callable, Dict, List, Optional

from torchbearer import EPOCH
from torchbearer.callbacks import Callback

from ..callbacks.imaging import written_by_package
from ..data.folders import IMAGE_EXTENSIONS
from ..errors import CommandError
from ..records import write_json
from .data import FOLDER, is_folder

if sys.platform == 'win32':  # pragma: no cover (Windows: msvcrt locks a byte of the file instead)
    import msvcrt
else:  # POSIX
    import fcntl

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

CHECKPOINT, SUMMARY, METRICS, PLOT = 'checkpoint.pt', 'summary.json', 'metrics.csv', 'loss.png'
LOCK = '.torchbearer-vae.lock'
_LOCK_SIZE = 32  # a PID and a newline fit many times over: a longer file is not a lock file of ours
# The run's own record, written when a new run starts in a folder: the folder is then the run's, whatever its files
# are named. Recognised by its content (RUN_RECORD), never by its name alone.
RUN = '.torchbearer-vae.run'
RUN_RECORD = {'written_by': 'torchbearer-vae train'}
# The run's pictures are numbered by epoch as its log counts them, from 1, and zero-padded so that they sort in order.
FIRST_EPOCH, EPOCH_DIGITS = 1, 3


def picture_file(stem: str, epochs: int) -> str:
    """The file name template of a picture of the run: ``'reconstruction_{epoch:03d}.png'``, numbered from 1.

    Padded to the digits of the run's ``epochs``, at least :data:`EPOCH_DIGITS`, so the files of an epoch
    sort in order (``reconstruction_009.png`` before ``reconstruction_010.png``). Runs of version 0.2
    named them ``reconstruction_{epoch}``, numbered from 0; their files are kept as they are.
    """
    return f'{stem}_{{epoch:0{max(EPOCH_DIGITS, len(str(epochs)))}d}}.png'


# The latent pictures are drawn every this many epochs and at the run's last: drawing them (matplotlib) costs
# about as much as a quarter of an MNIST-test-sized epoch, too much for every epoch of a small dataset.
LATENT_EVERY = 10


def _no_space(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.ENOSPC, getattr(errno, 'EDQUOT', errno.ENOSPC))


class RunFolder:
    """``train``'s ``--out``: created if needed, checked writable and locked before any work, released at the end.

    The lock is an operating-system lock on a file in the folder (``fcntl.flock``), so it dies with its
    process: a run killed with SIGKILL leaves the file but not the lock, and ``--resume`` takes it over.
    The file holds the holder's PID, which a refused second process names.
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self._file: Optional[IO[str]] = None
        self._created: List[str] = []  # the folders this run made, removed again if it leaves them empty

    # -- opening: create, lock, and prove the folder writable by writing the lock file --
    def open(self) -> None:
        """Create the folder (and its parents) and lock it; CommandError if it cannot be, or another run holds it."""
        self._create()
        try:
            self._lock()
        except BaseException:
            self.close()
            raise

    def _create(self) -> None:
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise CommandError(f'--out {self.path!r} is a file; give a folder for the run')
        missing, folder = [], os.path.abspath(self.path)
        while not os.path.exists(folder):
            missing.append(folder)
            folder = os.path.dirname(folder)
        if not os.path.isdir(folder):
            raise CommandError(f'--out {self.path!r} cannot be created: {folder!r} is a file, not a folder; '
                               f'choose another --out')
        for folder in reversed(missing):
            try:
                os.mkdir(folder)
            except FileExistsError:
                continue  # made by another process in the meantime
            except OSError as error:
                self.close()
                raise CommandError(f'cannot create the run folder {self.path!r} ({error.strerror or error}); '
                                   f'choose another --out') from None
            self._created.append(folder)

    def _lock(self) -> None:
        path = os.path.join(self.path, LOCK)
        for _ in range(100):
            existed = os.path.lexists(path)
            file = self._open_lock(path)
            if not _try_lock(file):
                file.close()
                raise CommandError(f'{self.path!r} is in use by another torchbearer-vae train (PID {_holder(path)}); '
                                   f'wait for it to finish, or choose another --out')
            # The holder removes the file when it ends: if it did between our open and our lock, we hold a lock
            # on a file no one else will see. Lock the file the name refers to now.
            try:
                same = os.path.samestat(os.fstat(file.fileno()), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                break
            file.close()
        else:  # pragma: no cover - only under a storm of runs starting and ending in the same folder
            raise CommandError(f'could not lock {self.path!r}: other runs keep starting in it; choose another --out')
        try:
            file.seek(0)
            found = file.read(_LOCK_SIZE + 1)
        except (OSError, ValueError):  # not text: not a lock file of ours
            found = None
        if found is not None and len(found) > _LOCK_SIZE:
            found = None  # more than a PID
        if found is None or not (found.strip() == '' or found.strip().isdigit()):
            file.close()  # a file of the user's that has the lock file's name: kept, and the run refused
            raise CommandError(f'{path!r} is not a lock file of torchbearer-vae (it holds something else) and is '
                               f'kept; choose another --out, or move the file away')
        if existed and not (is_run(self.path) or os.path.exists(os.path.join(self.path, CHECKPOINT))):
            # A stale lock of a run stands beside that run's record or checkpoint; this one is the user's file.
            file.close()
            raise CommandError(f'{path!r} is not the lock file of a torchbearer-vae run (no run record or '
                               f'{CHECKPOINT} beside it) and is kept; choose another --out, or move the file away')
        self._file = file
        try:
            file.seek(0)
            file.truncate()
            file.write(f'{os.getpid()}\n')
            file.flush()
            os.fsync(file.fileno())
        except OSError as error:
            what = 'no space left on device' if _no_space(error) else (error.strerror or str(error))
            raise CommandError(f'cannot write in the run folder {self.path!r} ({what}); '
                               f'choose another --out') from None

    def _open_lock(self, path: str) -> IO[str]:
        """The lock file, opened (created if missing) for reading and writing: a regular file in the folder only.

        A symbolic link is never followed (it could lead the run to create or read a file elsewhere, or read
        ``/dev/zero`` without end), nor a FIFO or device opened blocking: such a file is the user's, kept.
        """
        flags = os.O_RDWR | os.O_CREAT | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NONBLOCK', 0)
        try:
            descriptor = os.open(path, flags, 0o644)
        except OSError as error:
            if os.path.islink(path):
                raise CommandError(f'{path!r} is a symbolic link, not a lock file of torchbearer-vae, and is kept; '
                                   f'choose another --out, or move the link away') from None
            raise CommandError(f'cannot write in the run folder {self.path!r} ({error.strerror or error}); '
                               f'choose another --out or change its permissions') from None
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise CommandError(f'{path!r} is not a regular file, not a lock file of torchbearer-vae, and is kept; '
                               f'choose another --out, or move it away')
        return os.fdopen(descriptor, 'r+')

    def check_own_pictures(self, paths: List[str]) -> None:
        """Refuse (CommandError) a resumed run that would write over a picture torchbearer-vae did not write.

        ``paths`` are the pictures of the epochs still to train; one that exists must carry the package's mark.
        """
        foreign = [path for path in paths if os.path.lexists(path) and not written_by_package(path)]
        if foreign:
            shown = ', '.join(os.path.basename(path) for path in foreign[:4]) + (', ...' if len(foreign) > 4 else '')
            raise CommandError(f'{self.path!r} holds files the resumed run would write over, which torchbearer-vae '
                               f'did not write ({shown}); they are kept: move them away, then --resume')

    # -- what is in it --
    def check_new_run(self) -> None:
        """Refuse a folder a new run could not call its own: one that holds a checkpoint, or files but no run record.

        A run writes only into a folder that is empty (or new), or that its own record (:data:`RUN`) marks as a
        run's: one stopped before its first checkpoint, whose files a new run replaces. The record is written here.
        """
        if os.path.exists(os.path.join(self.path, CHECKPOINT)):
            raise CommandError(f'{self.path!r} already holds a run ({CHECKPOINT}); pass --resume to continue it or '
                               f'choose another --out')
        others = sorted(name for name in os.listdir(self.path) if name != LOCK)
        if others and not is_run(self.path):
            shown = ', '.join(others[:4]) + (', ...' if len(others) > 4 else '')
            raise CommandError(f'{self.path!r} holds files this run did not write ({shown}) and no {CHECKPOINT} to '
                               f'continue from; train writes only into an empty or new folder, or its own run: '
                               f'choose another --out, or move them away')
        if not others:
            write_json(os.path.join(self.path, RUN), RUN_RECORD)

    def check_apart(self, dataset: Optional[str]) -> None:
        """Refuse (CommandError) a run folder inside a ``folder:`` dataset, or the dataset inside the run folder.

        A folder is read recursively: the run's pictures would become training images at the next run or ``--resume``.
        """
        if dataset is None or not is_folder(dataset):
            return
        out = self.path
        images, run = os.path.realpath(dataset[len(FOLDER):]), os.path.realpath(out)
        if _inside(run, images):
            raise CommandError(f'--out {out!r} is inside --dataset {dataset}: the run\'s pictures would be read as '
                               f'training images; give an --out outside {images!r} (a run already there: move its '
                               f'folder out, then --resume it)')
        if _inside(images, run):
            raise CommandError(f'--dataset {dataset} is inside --out {out!r}: the run\'s pictures would be read as '
                               f'training images; give an --out that does not hold the images')

    # -- closing --
    def close(self) -> None:
        """Release the lock (removing its file) and the folders this run created, if they are still empty.

        The run's record goes too once the run has a checkpoint (which records it from then on), or if the run
        wrote nothing: it stays only beside the files of a run stopped before its first checkpoint.
        """
        if self._file is not None:
            self._forget_record()
            try:
                os.remove(os.path.join(self.path, LOCK))  # while still locked: no one can take a file on its way out
            except OSError:
                pass
            self._file.close()  # releases the lock
            self._file = None
        for folder in reversed(self._created):
            try:
                os.rmdir(folder)
            except OSError:
                break  # not empty: the run wrote something
        self._created = []

    def _forget_record(self) -> None:
        try:
            names = set(os.listdir(self.path)) - {LOCK}
            if RUN in names and (CHECKPOINT in names or names == {RUN}) and is_run(self.path):
                os.remove(os.path.join(self.path, RUN))
        except OSError:
            pass


def is_run(folder: str) -> bool:
    """Whether ``folder`` holds the record a run of ``train`` wrote into it when it started (:data:`RUN`)."""
    try:
        with open(os.path.join(folder, RUN), encoding='utf-8') as file:
            return bool(json.load(file) == RUN_RECORD)
    except (OSError, ValueError):
        return False


def _try_lock(file: IO[str]) -> bool:
    try:
        if sys.platform == 'win32':  # pragma: no cover
            msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _holder(path: str) -> str:
    """The PID in a lock file; its holder may not have written it yet, so look a few times."""
    for _ in range(20):
        try:
            with open(path) as file:
                text = file.read().strip()
        except OSError:
            text = ''
        if text.isdigit():
            return text
        time.sleep(0.01)
    return 'unknown'


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


# -- the output file of sample, reconstruct and evaluate --
# The image files a picture may be written to: those --dataset folder:DIR reads, but .pgm. The pictures are colour
# grids (make_grid's), which Pillow writes under a .pgm name as a colour PPM (P6): a file its name misdescribes.
PICTURE_EXTENSIONS = tuple(extension for extension in IMAGE_EXTENSIONS if extension != '.pgm')


def output_file(out: Optional[str], *, default_name: str, beside: str, kind: str,
                inputs: Optional[Dict[str, str]] = None, force: bool = False) -> str:
    """The file a command writes: ``out``, or ``default_name`` in ``out`` when it is a folder, or beside ``beside``.

    An existing file is replaced only if the command wrote it (a picture the package marked as its own, see
    :func:`~torchbearer_vae.callbacks.imaging.written_by_package`; an evaluation's JSON), or ``force`` is true.
    Refused (CommandError): one of the command's ``inputs`` (``{'the checkpoint': path}``), even with ``force``;
    an existing file the command did not write; a name whose folder is under a file; for an image, a name whose
    extension is not an image format.
    """
    if out is None:
        path = os.path.join(os.path.dirname(os.path.abspath(beside)), default_name)
    elif os.path.isdir(out) or out.endswith(('/', os.sep)):
        path = os.path.join(out, default_name)
    else:
        path = out
    shown = out if out == path else path
    if kind == 'image' and os.path.splitext(path)[1].lower() not in PICTURE_EXTENSIONS:
        raise CommandError(f'--out {shown!r} is not an image file name; give a name ending in .png')
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise CommandError(f'--out {shown!r} cannot be written: {folder!r} is a file, not a folder')
    if os.path.islink(path) and not os.path.exists(path):  # a link of the user's to a missing file: kept too
        if force:
            return path
        raise CommandError(f'--out {shown!r} is a symbolic link to a missing file; it is kept: give another --out, '
                           f'or pass --force to replace the link')
    if not os.path.exists(path):
        return path
    for role, given in (inputs or {}).items():
        if os.path.exists(given) and os.path.samefile(path, given):
            raise CommandError(f'--out {shown!r} is {role} this command reads; give another file name')
    if os.path.isfile(path) and force:
        return path
    what = 'a PNG image' if kind == 'image' else 'a JSON file'
    if not os.path.isfile(path) or not _is_kind(path, kind):
        raise CommandError(f'--out {shown!r} exists and is not {what} this command writes; it is kept: give another '
                           f'--out, or pass --force to replace it')
    if not _written_here(path, kind):
        raise CommandError(f'--out {shown!r} exists and was not written by torchbearer-vae; it is kept: give another '
                           f'--out, or pass --force to replace it')
    return path


def check_outside_data(out: str, dataset: Optional[str]) -> None:
    """Refuse (CommandError) an output file inside the ``folder:`` dataset the command reads, even with ``--force``.

    It would write over one of the images, or add a picture to them.
    """
    if dataset is None or not is_folder(dataset):
        return
    images = os.path.realpath(dataset[len(FOLDER):])
    if _inside(os.path.realpath(out), images):
        raise CommandError(f'--out {out!r} is inside --dataset {dataset}, which this command reads; its images are '
                           f'kept: give an --out outside {images!r}')


def _is_kind(path: str, kind: str) -> bool:
    if kind == 'json':
        return isinstance(_json(path), dict)
    from PIL import Image
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception:  # PIL raises many types for a file that is not an image
        return False
    return True


def _written_here(path: str, kind: str) -> bool:
    """Whether the command wrote ``path``: a picture with the package's mark, or the JSON of an evaluation."""
    if kind == 'json':  # evaluate's record: its own keys (see checkpoint_commands.evaluate)
        data = _json(path)
        return isinstance(data, dict) and {'checkpoint', 'reconstruction_psnr_db'} <= set(data) and (
            'negative_elbo_per_image' in data or 'reconstruction_term_per_image' in data)
    return written_by_package(path)


def _json(path: str) -> Any:
    try:
        with open(path, encoding='utf-8') as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


# -- a file of the run that could not be written --
_TORCH_WRITER = ('PytorchStreamWriter', 'unexpected pos', 'inline_container')


def write_failure(error: BaseException, folder: str, needed: int) -> Optional[str]:
    """One line for ``error`` if it is a file of the run folder that could not be written, else None.

    torch's writer reports a full disk as ``unexpected pos N vs M``, without an errno: it is taken for one
    when the disk has less room than ``needed`` bytes (about one checkpoint) once the temporary is removed.
    """
    chain: List[BaseException] = []
    seen: Optional[BaseException] = error
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = ' '.join(str(item) for item in chain)
    written = re.search(r'could not write (.+?): ', text)
    filename = next((item.filename for item in chain if isinstance(item, OSError) and item.filename), None)
    path = written.group(1) if written else filename
    torch_writer = any(mark in text for mark in _TORCH_WRITER)
    if path is None and not torch_writer:
        return None
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if any(_no_space(item) for item in chain) or (torch_writer and free is not None and free < needed):
        what = 'no space left on device'
        fix = 'free space'
    else:
        what = next((item.strerror for item in chain if isinstance(item, OSError) and item.strerror),
                    str(chain[-1]).splitlines()[0] if str(chain[-1]) else type(chain[-1]).__name__)
        fix = 'fix that'
    if os.path.exists(os.path.join(folder, CHECKPOINT)):
        return f'{what} writing {path or folder}; {checkpoint_state(folder)}; {fix} and run again with --resume'
    return f'{what} writing {path or folder}; no checkpoint was written yet: {fix} and run the same command again'


def checkpoint_state(folder: str) -> str:
    """'the last checkpoint (epoch N) is intact', read from the run's checkpoint file."""
    from ..checkpoints import load_checkpoint
    try:
        epoch = load_checkpoint(os.path.join(folder, CHECKPOINT)).get('epoch')
    except (ValueError, OSError):
        return f'the last checkpoint ({os.path.join(folder, CHECKPOINT)}) is intact'
    return f'the last checkpoint (epoch {epoch}) is intact'


class OnSomeEpochs(Callback):
    """Hand ``callback`` whole the epochs ``wanted(epoch)`` chooses (0-based), and the run's start and end always.

    torchbearer's callbacks have no "every N epochs" of their own; every ``on_*`` hook of :class:`Callback` is
    forwarded (set below), so a picture collects, draws and writes in the chosen epochs only.
    """

    def __init__(self, callback: Callback, wanted: Callable[[int], bool]) -> None:
        self.callback, self.wanted = callback, wanted

    def state_dict(self) -> Dict[str, Any]:
        state: Dict[str, Any] = self.callback.state_dict()
        return state

    def load_state_dict(self, state_dict: Dict[str, Any]) -> 'OnSomeEpochs':
        self.callback.load_state_dict(state_dict)
        return self


_ALWAYS = ('on_init', 'on_start', 'on_end', 'on_checkpoint')


def _forwarded(name: str) -> Callable[['OnSomeEpochs', dict], Any]:
    def method(self: 'OnSomeEpochs', state: dict) -> Any:
        if name in _ALWAYS or self.wanted(state[EPOCH]):
            return getattr(self.callback, name)(state)
    method.__name__ = name
    return method


for _name in dir(Callback):
    if _name.startswith('on_'):
        setattr(OnSomeEpochs, _name, _forwarded(_name))


def latent_pictures(out: str, *, labelled: bool, epochs: int, num_images: int,
                    class_names: Optional[List[str]] = None) -> List[Callback]:
    """The run's kl_dims_001.png (and latent_001.png for labelled data), every LATENT_EVERY epochs and the last.

    Without labels the scatter would be grey points only: it is left out; the KL bars always say something.
    The scatter's legend names the classes ``class_names`` (a folder's subfolders), else their indices.
    """
    from ..callbacks.latent import KLPerDimension, LatentScatter

    def wanted(epoch: int) -> bool:
        return (epoch + 1) % LATENT_EVERY == 0 or epoch + 1 == epochs

    pictures = [KLPerDimension(folder=out, filename=picture_file('kl_dims', epochs), num_images=num_images)]
    if labelled:
        pictures.append(LatentScatter(folder=out, filename=picture_file('latent', epochs), num_images=num_images,
                                      class_names=class_names))
    return [OnSomeEpochs(picture.number_epochs_from(FIRST_EPOCH), wanted) for picture in pictures]
