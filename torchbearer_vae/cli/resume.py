"""What ``torchbearer-vae train --resume`` needs from a checkpoint, checked before use, and putting it back.

A checkpoint that loads (``weights_only``) may still lack what a resumed run needs, or hold it in the
wrong form (written by another program, or edited): every piece is checked and restored here, and a
problem is one :class:`CommandError` naming the file and the piece, never a ``KeyError`` from deep inside.
"""
from typing import Any, Dict, Sequence

import torch

from ..checkpoints import load_model_state
from ..errors import CheckpointError, CommandError

__all__ = []  # internal: the public entry point is torchbearer_vae.cli.main

# The pieces train saves besides the model, and their types.
_PIECES = (('options', dict), ('epoch', int), ('history', list), ('optimizer_state', dict), ('kl_term', dict),
           ('train_loader', dict))


def _refuse(path: str, problem: str) -> CommandError:
    return CommandError(f'{path!r} cannot be resumed: {problem}; it was not written by torchbearer-vae train, or '
                        f'was changed since: start a new run in another --out')


def check_resumable(checkpoint: Dict[str, Any], path: str, option_names: Sequence[str]) -> None:
    """Refuse (CommandError) a checkpoint without the pieces, options and random state a resumed run needs."""
    for key, kind in _PIECES:
        value = checkpoint.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            got = 'nothing' if key not in checkpoint else f'a {type(value).__name__}'
            raise _refuse(path, f'its {key!r} should be a {kind.__name__} but it holds {got}')
    missing = [name for name in option_names if name not in checkpoint['options']]
    if missing:
        raise _refuse(path, f'its options lack {", ".join(missing)}')
    if not 0 <= checkpoint['epoch'] == len(checkpoint['history']):
        raise _refuse(path, f"its epoch ({checkpoint['epoch']}) is not the length of its history "
                            f"({len(checkpoint['history'])})")
    states = checkpoint.get('rng_states') or [checkpoint.get('rng_state')]
    if not isinstance(states, list) or not all(_is_rng_state(state) for state in states):
        raise _refuse(path, 'its random generator state (rng_state) is missing or not a byte tensor')


def check_same_data(checkpoint: Dict[str, Any], path: str, *, images: int, digest, dataset: str) -> None:
    """Refuse (CommandError) to resume on data that is not the run's: other image count, or other files (folder:).

    ``images`` and ``digest`` (:func:`~torchbearer_vae.cli.data.files_digest`) are the data's now; what a
    checkpoint of an earlier version did not record (``dataset_digest``, ``dataset_images``) is not compared.
    """
    expected, recorded = checkpoint.get('dataset_images'), checkpoint.get('dataset_digest')
    if isinstance(expected, int) and not isinstance(expected, bool) and expected != images:
        changed = f'it holds {images} images, the run started with {expected}'
    elif isinstance(recorded, str) and digest is not None and recorded != digest:
        changed = 'its files are not those the run started with'
    else:
        return
    raise CommandError(f'{path!r} cannot be resumed: --dataset {dataset} changed since the run started ({changed}); '
                       f'a run continues only on its own data: start a new run in another --out, without --resume')


def _is_rng_state(value) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 1


def restore(checkpoint: Dict[str, Any], path: str, *, model, optimizer, kl_term, train_loader, rank: int) -> list:
    """Put the saved state back into each piece of a run; returns the history. CommandError if a piece does not fit."""
    pieces = (('model_state', lambda: load_model_state(model, checkpoint['model_state'])),
              ('optimizer_state', lambda: optimizer.load_state_dict(checkpoint['optimizer_state'])),
              ('kl_term', lambda: kl_term.load_state_dict(checkpoint['kl_term'])),
              ('train_loader', lambda: train_loader.load_state_dict(checkpoint['train_loader'])))
    for name, put_back in pieces:
        try:
            put_back()
        except CheckpointError as error:
            raise _refuse(path, str(error)) from None
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as error:  # a piece of another shape
            raise _refuse(path, f'its {name!r} does not fit this run ({type(error).__name__}: {error})') from None
    rng_states = checkpoint.get('rng_states') or [checkpoint['rng_state']]  # one per rank, or one process's
    if rank < len(rng_states):  # a rank the run did not have keeps its seed + rank
        torch.set_rng_state(rng_states[rank])
    return checkpoint['history']


def optimizer_to(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Move a loaded optimizer's moment tensors to the model's device.

    Adam's ``step`` count stays on the CPU, where torch wants it, except for the fused and
    capturable variants, which keep it beside the parameters.
    """
    for group in optimizer.param_groups:
        step_beside_parameters = group.get('fused') or group.get('capturable')
        for parameter in group['params']:
            state = optimizer.state.get(parameter, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and (key != 'step' or step_beside_parameters):
                    state[key] = value.to(device)
