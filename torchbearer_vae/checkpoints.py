"""Checkpoints that load with ``torch.load(..., weights_only=True)``: plain tensors and values only.

torchbearer's own ``Trial.state_dict()`` pickles ``StateKey`` objects, which ``weights_only``
loading refuses (and unrestricted unpickling of a downloaded file can run arbitrary code). A
checkpoint here is a dict of tensors, numbers, strings, lists and dicts, written atomically.
"""
import os
import pickle
from typing import Any, Dict, Optional

import torch
import torchbearer
from torch import nn
from torchbearer.callbacks import Callback

from ._io import BackgroundWriter, PathLike, atomic_write
from .distributed import _is_main_process, _unwrap
from .errors import CheckpointError
from .models import VAE, ConvVAE
from .version import __version__

__all__ = ['CheckpointError', 'save_checkpoint', 'load_checkpoint', 'model_from_checkpoint', 'load_model_state',
           'Checkpointer']

FORMAT = 'torchbearer_vae.checkpoint/1'
# The models a checkpoint can rebuild, with the constructor arguments that define the function they compute
# (shapes, likelihood, logvar clamp): a rebuilt model must compute what the saved one did.
_MODELS = {'VAE': (VAE, ('input_shape', 'hidden_dim', 'latent_dim', 'likelihood', 'sigma', 'logvar_clamp')),
           'ConvVAE': (ConvVAE, ('input_shape', 'latent_dim', 'channels', 'hidden_dim', 'likelihood', 'sigma',
                                 'logvar_clamp'))}


def _model_config(model: nn.Module) -> Dict[str, Any]:
    name = type(model).__name__
    if name not in _MODELS:
        return {'class': name}
    return {'class': name, **{key: _plain(getattr(model, key)) for key in _MODELS[name][1]}}


def _plain(value):
    """Tuples become lists, 0-d tensors numbers: the form ``weights_only`` loading accepts anywhere."""
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def save_checkpoint(path: PathLike, model: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None,
                    **extra) -> None:
    """Write the model (its configuration and weights), the optimizer and ``extra`` values atomically.

    Args:
        path (str or PathLike): The file to write (``.pt`` by convention); replaced atomically.
        model (nn.Module): The model; for the package's models its constructor arguments are
            stored too, so :func:`model_from_checkpoint` can rebuild it. A model wrapped in
            :class:`~torch.nn.parallel.DistributedDataParallel` or ``DataParallel`` is saved as
            the model inside (weight names without the wrapper's ``module.`` prefix), so the file
            loads into the plain model. Under :mod:`torch.distributed`, call this on one rank.
        optimizer (Optimizer or None): Its state, for resuming with the same moments and steps.
        **extra: Plain values to store alongside (epoch, history, random states, ...): tensors,
            numbers, strings, ``None`` and lists/dicts of them.

    Example: ::

        >>> import torch, tempfile, os
        >>> from torchbearer_vae import VAE, save_checkpoint, load_checkpoint
        >>> path = os.path.join(tempfile.mkdtemp(), 'checkpoint.pt')
        >>> save_checkpoint(path, VAE(latent_dim=2), epoch=3)
        >>> load_checkpoint(path)['epoch']
        3
    """
    payload = _payload(model, optimizer, extra)
    atomic_write(path, lambda tmp_path: torch.save(payload, tmp_path))


def _payload(model: nn.Module, optimizer: Optional[torch.optim.Optimizer], extra: Dict[str, Any]) -> Dict[str, Any]:
    """What a checkpoint holds; its tensors are the model's and optimizer's own (not copies)."""
    model = _unwrap(model)
    payload = {'format': FORMAT, 'torchbearer_vae': __version__, 'model': _model_config(model),
               'model_state': model.state_dict(),
               'optimizer_state': None if optimizer is None else optimizer.state_dict()}
    payload.update({key: _plain(value) for key, value in extra.items()})
    return payload


def _snapshot(value):
    """``value`` with every tensor copied (dicts and lists rebuilt): what it holds now, whatever training does next.

    Copying the reference VAE's weights and Adam's moments (7.8 MB) takes ~0.2 ms, serialising
    them ~3 ms and writing them ~6 ms more: the copy is taken in the training loop, the rest
    happens in the background.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: _snapshot(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_snapshot(item) for item in value]
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
    try:
        payload = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickling_reason(str(error))
        if 'GLOBAL' in reason:  # the file names a Python object to import: exactly what weights_only blocks
            raise CheckpointError(f'{path!r} was refused: it asks to load Python objects other than tensors and '
                                  f'plain values, which torchbearer_vae never writes (it may come from another '
                                  f'program or be crafted to run code): {reason}') from None
        raise CheckpointError(f'{path!r} is not a readable checkpoint (truncated or corrupt?): {reason}') from None
    except Exception as error:  # torch raises several types for a damaged zip/pickle stream
        raise CheckpointError(f'{path!r} is not a readable checkpoint (truncated or corrupt?): '
                              f'{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}') from None
    if not isinstance(payload, dict) or payload.get('format') != FORMAT:
        raise CheckpointError(f'{path!r} is not a torchbearer_vae checkpoint (no {FORMAT!r} format marker)')
    return payload


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


def model_from_checkpoint(checkpoint: Dict[str, Any]) -> nn.Module:
    """Rebuild the model a checkpoint was saved from, with its weights, in eval mode.

    Args:
        checkpoint (dict): As returned by :func:`load_checkpoint`.

    Returns:
        nn.Module: The model, on the CPU.

    Raises:
        CheckpointError: if the checkpoint's model is not one of the package's models.
    """
    config = dict(checkpoint['model'])
    name = config.pop('class')
    if name not in _MODELS:
        raise CheckpointError(f'the checkpoint holds a {name}, which torchbearer_vae cannot rebuild by itself; '
                              f'build the model and use load_model_state(model, checkpoint["model_state"])')
    model = _MODELS[name][0](**config)
    load_model_state(model, checkpoint['model_state'])
    return model.eval()


def _plain_history(history):
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

    def __init__(self, path: PathLike, extra=None, background: bool = True):
        super().__init__()
        if os.path.isdir(path):
            raise ValueError(f'path {os.fspath(path)!r} is a directory; give the checkpoint file name')
        if extra is not None and not callable(extra):
            raise TypeError('extra must be a function of state returning a dict, or None')
        if not isinstance(background, bool):
            raise TypeError(f'background must be True or False, got {background!r}')
        self.path, self.extra, self.background = path, extra, background
        self._writer = BackgroundWriter(background)

    def on_checkpoint(self, state):
        history = state[torchbearer.HISTORY]
        extra = self.extra(state) if self.extra is not None else {}
        if not _is_main_process():
            return
        payload = _payload(state[torchbearer.MODEL], state[torchbearer.OPTIMIZER],
                           dict(epoch=len(history), history=_plain_history(history), **extra))
        if self.background:
            payload = _snapshot(payload)  # the weights of this epoch: the next one starts at once
        self._writer.write(self.path, lambda tmp_path: torch.save(payload, tmp_path))

    def on_end(self, state):
        self._writer.close()
