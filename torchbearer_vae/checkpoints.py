"""Checkpoints that load with ``torch.load(..., weights_only=True)``: plain tensors and values only.

torchbearer's own ``Trial.state_dict()`` pickles ``StateKey`` objects, which ``weights_only``
loading refuses (and unrestricted unpickling of a downloaded file can run arbitrary code). A
checkpoint here is a dict of tensors, numbers, strings, lists and dicts, written atomically.
"""
import io
import os
import pickle
import pickletools
import warnings
import zipfile
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch
import torchbearer
from torch import nn
from torchbearer.callbacks import Callback

from .distributed import is_main_process, unwrap_model
from .errors import CheckpointError
from .files import BackgroundWriter, PathLike, atomic_write, bytes_writer
from .version import __version__

__all__ = ['save_checkpoint', 'load_checkpoint', 'load_model_state', 'Checkpointer']

FORMAT = 'torchbearer_vae.checkpoint/1'
# What save_checkpoint writes itself: extra values may not take these names.
_RESERVED = ('format', 'torchbearer_vae', 'model', 'model_state', 'optimizer_state')


def class_path(cls: type) -> str:
    """``module:qualname``, the unambiguous import path (a qualname may hold dots: ``f.<locals>.MyVAE``)."""
    return f'{cls.__module__}:{cls.__qualname__}'


def _model_entry(model: nn.Module) -> Dict[str, Any]:
    """The model's class path and its recorded configuration, if it has one (``None`` if not plain values).

    A :class:`~torchbearer_vae.BaseVAE` records its constructor's arguments as ``model.config``, a dict.
    """
    config = getattr(model, 'config', None)
    config = config if isinstance(config, dict) else None
    problem = _not_plain(config, 'config') if config is not None else None
    if problem is not None:
        warnings.warn(f'{type(model).__name__}.{problem}: the checkpoint keeps the weights but cannot rebuild '
                      f'the model by itself; override {type(model).__name__}.config to return plain values',
                      stacklevel=4)
        config = None
    return {'class': class_path(type(model)), 'config': config}  # tuples stay tuples: weights_only loads them


def _not_plain(value: Any, where: str) -> Optional[str]:
    """Where ``value`` holds something ``torch.load(weights_only=True)`` refuses, or None if it is all plain."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return None
    if isinstance(value, (list, tuple)):
        return next((p for i, item in enumerate(value) if (p := _not_plain(item, f'{where}[{i}]'))), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                return f'{where} has the key {key!r}, a {type(key).__name__} (keys must be strings)'
            problem = _not_plain(item, f'{where}[{key!r}]')
            if problem:
                return problem
        return None
    return f'{where} is a {type(value).__module__}.{type(value).__qualname__}, not a plain value'


def _plain(value: Any) -> Any:
    """Tuples become lists, 0-d tensors numbers: the form ``weights_only`` loading accepts anywhere."""
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def save_checkpoint(path: PathLike, model: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                    **extra: Any) -> None:
    """Write the model (its configuration and weights), the optimizer and ``extra`` values atomically.

    Args:
        path (str or PathLike): The file to write (``.pt`` by convention); replaced atomically.
        model (nn.Module): The model; for a :class:`~torchbearer_vae.BaseVAE` (the package's
            models and yours) its class and :attr:`~torchbearer_vae.BaseVAE.config` are stored
            too, so :func:`model_from_checkpoint` can rebuild it. A model wrapped in
            :class:`~torch.nn.parallel.DistributedDataParallel` or ``DataParallel`` is saved as
            the model inside (weight names without the wrapper's ``module.`` prefix), so the file
            loads into the plain model. Under :mod:`torch.distributed`, call this on one rank.
        optimizer (Optimizer or None): Its state, for resuming with the same moments and steps.
        **extra: Plain values to store alongside (epoch, history, random states, ...): tensors,
            numbers, strings, ``None`` and lists/dicts of them, checked here (not when loading).

    Raises:
        TypeError: if an extra value holds anything else (a numpy array, say), naming where.
        ValueError: if an extra value takes a name the checkpoint uses itself (``model_state``, ...).

    Example: ::

        >>> from torchbearer_vae import VAE, save_checkpoint, load_checkpoint
        >>> save_checkpoint('checkpoint.pt', VAE(latent_dim=2), epoch=3)  # in the current folder
        >>> load_checkpoint('checkpoint.pt')['epoch']
        3
    """
    payload = _payload(model, optimizer, extra)
    atomic_write(path, _serialised(payload))


def _payload(model: nn.Module, optimizer: Optional[torch.optim.Optimizer], extra: Dict[str, Any]) -> Dict[str, Any]:
    """What a checkpoint holds; its tensors are the model's and optimizer's own (not copies)."""
    model = unwrap_model(model)
    for key, value in extra.items():
        if key in _RESERVED:
            raise ValueError(f'save_checkpoint: {key!r} is written by save_checkpoint itself; give the extra value '
                             f'another name')
        problem = _not_plain(value, key)
        if problem is not None:
            raise TypeError(f'save_checkpoint: {problem}, which torch.load(weights_only=True) refuses; store '
                            f'tensors, numbers, strings, None and lists/dicts of them (e.g. torch.as_tensor(array) '
                            f'or array.tolist())')
    payload = {'format': FORMAT, 'torchbearer_vae': __version__, 'model': _model_entry(model),
               'model_state': model.state_dict(),
               'optimizer_state': None if optimizer is None else optimizer.state_dict()}
    payload.update({key: _plain(value) for key, value in extra.items()})
    return payload


def _serialised(payload: Dict[str, Any]) -> Callable[[str], None]:
    """A ``write(tmp_path)`` that serialises ``payload`` in memory, then writes the bytes.

    ``torch.save`` straight into a file reports a full disk as ``unexpected pos N vs M``, with no
    errno; written from memory, a full disk is a plain ``OSError(ENOSPC)`` naming the file.
    """
    def write(tmp_path: str) -> None:
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        bytes_writer(buffer.getbuffer())(tmp_path)
    return write


def _snapshot(value: Any) -> Any:
    """``value`` with every tensor copied (dicts and lists rebuilt): what it holds now, whatever training does next.

    Copying the reference VAE's weights and Adam's moments (7.8 MB) takes ~0.2 ms, serialising
    them ~3 ms and writing them ~6 ms more: the copy is taken in the training loop, the rest
    happens in the background.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: _snapshot(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_snapshot(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_snapshot(item) for item in value)
    return value


def load_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, safely (``weights_only=True``).

    Args:
        path (str or PathLike): The checkpoint file.

    Returns:
        dict: ``model`` (class and configuration), ``model_state``, ``optimizer_state`` and the
        extra values it was saved with. Tensors are loaded on the CPU.

    Raises:
        CheckpointError: if the file is missing, truncated or corrupt, not a torchbearer_vae
            checkpoint, or holds Python objects other than plain values (refused unread: such a
            file may be crafted to run code when unpickled).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'no checkpoint at {path!r}')
    with open(path, 'rb') as file:
        head = file.read(4)
    if head[:2] != b'PK' and head[:1] != b'\x80':  # torch.save writes a zip file (or, before 1.6, a pickle)
        raise CheckpointError(f'{path!r} is not a checkpoint: torch.save did not write it (give the checkpoint.pt '
                              f'of a run)')
    try:
        payload = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickling_reason(str(error))
        if _whole_pickle(path):  # intact, so refused for what it holds: Python objects, what weights_only blocks
            raise CheckpointError(f'{path!r} was refused: it asks to load Python objects other than tensors and '
                                  f'plain values, which torchbearer_vae never writes (it may come from another '
                                  f'program or be crafted to run code): {reason}') from None
        raise CheckpointError(f'{path!r} is not a readable checkpoint (truncated or corrupt?): {reason}') from None
    except Exception as error:  # torch raises several types for a damaged zip/pickle stream
        raise CheckpointError(f'{path!r} is not a readable checkpoint (truncated or corrupt?): '
                              f'{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}') from None
    if not isinstance(payload, dict) or payload.get('format') != FORMAT:
        raise CheckpointError(f'{path!r} is not a torchbearer_vae checkpoint (no {FORMAT!r} format marker)')
    problem = _layout_problem(payload) or _unbacked_tensors(payload, os.path.getsize(path))
    if problem is not None:
        raise CheckpointError(f'{path!r} is a damaged torchbearer_vae checkpoint: {problem}; use an intact copy or '
                              f'train again')
    return payload


def _layout_problem(payload: Dict[str, Any]) -> Optional[str]:
    """What is wrong with the entries ``save_checkpoint`` writes, or None."""
    model = payload.get('model')
    if not isinstance(model, dict) or not isinstance(model.get('class'), str):
        return "its 'model' entry is missing or holds no class name"
    if not isinstance(model.get('config', {}), (dict, type(None))):
        return "its 'model' entry has a 'config' that is not a dict"
    weights = payload.get('model_state')
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        return "its 'model_state' is missing or does not map weight names to tensors"
    if not isinstance(payload.get('optimizer_state'), (dict, type(None))):
        return "its 'optimizer_state' is neither a dict nor None"
    return None


def _tensors(value: Any) -> Iterator[Tuple[str, torch.Tensor]]:
    """``(where, tensor)`` for every tensor ``value`` holds (in dicts, lists and tuples), walked without recursion."""
    todo = [('', value)]
    while todo:
        where, item = todo.pop()
        if isinstance(item, torch.Tensor):
            yield where, item
        elif isinstance(item, dict):
            todo.extend((f'{where}[{key!r}]' if where else str(key), value) for key, value in item.items())
        elif isinstance(item, (list, tuple)):
            todo.extend((f'{where}[{index}]', value) for index, value in enumerate(item))


def _unbacked_tensors(payload: Dict[str, Any], file_size: int) -> Optional[str]:
    """A tensor whose shape needs more bytes than the file stores for it, or None.

    A zero-stride view (``torch.zeros(1).expand(10**7, 784)``) is saved as its one-element storage:
    a file of kilobytes would become gigabytes the moment a model copies it. Every tensor's storage
    must hold its elements, and the distinct tensors together (the same view twice, as tied weights
    are, counts once) may not need more bytes than the file has: its size bounds what loading costs.
    """
    views = {}
    for where, tensor in _tensors(payload):
        needed = tensor.numel() * tensor.element_size()
        storage = tensor.untyped_storage()
        if storage.nbytes() < needed:
            return (f'its {where} of shape {tuple(tensor.shape)} needs {needed:,} bytes but its storage holds '
                    f'{storage.nbytes():,} (a zero-stride view, as expand() makes: not weights a model saved)')
        views[storage.data_ptr(), tensor.storage_offset(), tuple(tensor.shape), tensor.stride(), tensor.dtype] = needed
    if sum(views.values()) > file_size:
        return (f'its tensors need {sum(views.values()):,} bytes but the file has {file_size:,} (views of the same '
                f'stored values, overlapping: not weights a model saved)')
    return None


def _whole_pickle(path: str) -> bool:
    """Whether the file's pickle stream is complete and well formed, read as opcodes (nothing is imported or run).

    Tells a file ``weights_only`` refused for what it holds from a damaged one by the file itself, not by the
    wording of torch's message (which differs between releases). ``torch.save`` writes the pickle as the
    zip entry ``<name>/data.pkl``, stored uncompressed (or, before torch 1.6, at the start of the file).
    """
    try:
        if not zipfile.is_zipfile(path):
            with open(path, 'rb') as file:
                return _parses(file)
        with zipfile.ZipFile(path) as archive:
            entries = [info for info in archive.infolist() if info.filename.rsplit('/', 1)[-1] == 'data.pkl']
            if len(entries) != 1 or entries[0].file_size > os.path.getsize(path):  # no inflating a crafted entry
                return False
            with archive.open(entries[0]) as file:
                return _parses(file)
    except (OSError, zipfile.BadZipFile, EOFError):
        return False


def _parses(file: Any) -> bool:
    """Whether ``file`` holds one whole pickle, up to its STOP opcode."""
    try:
        for _ in pickletools.genops(file):
            pass
    except (ValueError, EOFError):  # genops reports a truncated or unknown opcode as ValueError
        return False
    return True


def _unpickling_reason(message: str) -> str:
    """The one informative line of torch's long weights_only error (its first and last are boilerplate)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    details = [line for line in lines[1:-1] if not line.startswith('Please file an issue')]
    return (details or lines or ['unknown error'])[-1]


def load_model_state(model: nn.Module, state_dict: Dict[str, torch.Tensor]) -> None:
    """``model.load_state_dict(state_dict)``, after checking that every name and shape fits.

    Args:
        model (nn.Module): The model to fill.
        state_dict (dict): Its saved weights.

    Raises:
        CheckpointError: naming the missing, unexpected or differently shaped weights.
    """
    own = model.state_dict()
    problems = [f'{name}: checkpoint {tuple(value.shape)} vs model {tuple(own[name].shape)}'
                for name, value in state_dict.items() if name in own and own[name].shape != value.shape]
    problems += [f'{name}: missing from the checkpoint' for name in own if name not in state_dict]
    problems += [f'{name}: not in the model' for name in state_dict if name not in own]
    if problems:
        shown = '; '.join(problems[:4]) + ('; ...' if len(problems) > 4 else '')
        raise CheckpointError(f'the checkpoint does not fit this {type(model).__name__}: {shown}')
    model.load_state_dict(state_dict)


def _plain_history(history: List[Dict[Any, Any]]) -> List[Dict[str, Any]]:
    """Epoch metric dicts as plain numbers (torchbearer may leave 0-d tensors in them)."""
    return [{str(key): _plain(value) for key, value in epoch.items()} for epoch in history]


class Checkpointer(Callback):
    """Save a :func:`save_checkpoint` checkpoint after every epoch: weights, optimizer, history.

    Unlike torchbearer's checkpointers (which save ``Trial.state_dict()``, pickling its state
    keys), the file loads with ``torch.load(weights_only=True)``. It is taken at torchbearer's
    ``on_checkpoint`` hook, after the epoch's history entry exists, so the file always describes
    whole epochs: a run killed mid-epoch resumes from the last complete one.

    With ``background=True`` (the default) the hook copies the weights, the optimizer's state
    and the extra values as they are at that moment (a fraction of a millisecond for the
    reference VAE), and a background thread serialises and writes them to the disk (atomically,
    with ``fsync``) while the next epoch trains. ``on_end`` waits for the write, so the file is
    complete when ``Trial.run`` returns; a write that fails raises its error at the next
    epoch's hook or at the end. ``background=False`` writes before the hook returns, for a
    callback that reads the file at the same hook.

    Under :mod:`torch.distributed` only rank 0 writes (the ranks hold the same weights), and a
    :class:`~torch.nn.parallel.DistributedDataParallel` model is saved unwrapped. ``extra`` is
    called on every rank, before rank 0 writes, so it may gather values from all ranks with a
    collective (each rank's random state, say).

    Args:
        path (str or PathLike): The checkpoint file, replaced every epoch.
        extra (callable or None): ``extra(state) -> dict`` of more plain values to store
            (e.g. random generator states, schedule positions).
        background (bool): Write the file in a background thread (default) or at the hook.

    Example: ::

        >>> from torchbearer_vae import Checkpointer
        >>> checkpointer = Checkpointer('runs/vae/checkpoint.pt')
        >>> # Trial(model, optimizer, criterion, callbacks=[checkpointer])
    """

    def __init__(self, path: PathLike, extra: Optional[Callable[[dict], Dict[str, Any]]] = None,
                 background: bool = True) -> None:
        super().__init__()
        if os.path.isdir(path):
            raise ValueError(f'path {os.fspath(path)!r} is a directory; give the checkpoint file name')
        if extra is not None and not callable(extra):
            raise TypeError('extra must be a function of state returning a dict, or None')
        if not isinstance(background, bool):
            raise TypeError(f'background must be True or False, got {background!r}')
        self.path, self.extra, self.background = path, extra, background

    def on_checkpoint(self, state: dict) -> None:
        history = state[torchbearer.HISTORY]
        extra = self.extra(state) if self.extra is not None else {}
        if not is_main_process():
            return
        payload = _payload(state[torchbearer.MODEL], state[torchbearer.OPTIMIZER],
                           dict(epoch=len(history), history=_plain_history(history), **extra))
        if self.background:
            payload = _snapshot(payload)  # the weights of this epoch: the next one starts at once
        BackgroundWriter.of_run(state).write(self.path, _serialised(payload), owner=self, background=self.background)

    def on_end(self, state: dict) -> None:
        BackgroundWriter.of_run(state).wait(owner=self)
