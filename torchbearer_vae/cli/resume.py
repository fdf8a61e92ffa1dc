"""What ``torchbearer-vae train --resume`` needs from a checkpoint, checked before use, and putting it back.

A checkpoint that loads (``weights_only``) may still lack what a resumed run needs, or hold it in the
wrong form (written by another program, or edited): every piece is checked and restored here, and a
problem is one :class:`CommandError` naming the file and the piece, never a ``KeyError`` from deep inside.
"""
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ..checkpoints import load_model_state
from ..checks import check_bool, check_number, describe, plural
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
        raise _refuse(path, f'its random generator state (rng_state) is missing or not {torch.get_rng_state().numel()} '
                            f'bytes, the state of torch\'s generator')


def check_same_data(checkpoint: Dict[str, Any], path: str, *, images: int, digests: Dict[str, Optional[str]],
                    dataset: str) -> None:
    """Refuse (CommandError) to resume on data that is not the run's: other image count, other files (folder:), or
    other image content.

    ``images`` is the data's image count now, ``digests`` its ``dataset_digest``
    (:func:`~torchbearer_vae.cli.data.files_digest`) and ``images_digest``
    (:func:`~torchbearer_vae.cli.data.images_digest`), None where not known; what a checkpoint of an earlier
    version did not record is not compared.
    """
    expected = checkpoint.get('dataset_images')
    differs = {key: isinstance(checkpoint.get(key), str) and digest is not None and checkpoint[key] != digest
               for key, digest in digests.items()}
    if isinstance(expected, int) and not isinstance(expected, bool) and expected != images:
        changed = f'it holds {plural(images, "image")}, the run started with {expected:,}'
    elif differs.get('dataset_digest'):
        changed = 'its files are not those the run started with'
    elif differs.get('images_digest'):
        changed = 'the content of some of its images is not what the run started with'
    else:
        return
    raise CommandError(f'{path!r} cannot be resumed: --dataset {dataset} changed since the run started ({changed}); '
                       f'a run continues only on its own data: start a new run in another --out, without --resume')


def _is_rng_state(value: Any) -> bool:
    """A state ``torch.set_rng_state`` takes: bytes, as many as torch's own generator state has."""
    return (isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 1
            and value.numel() == torch.get_rng_state().numel())


def check_adam_state(optimizer: torch.optim.Optimizer) -> None:
    """Refuse (TypeError/ValueError) a loaded Adam state that a step would choke on or turn into NaN.

    ``Adam.load_state_dict`` copies what it is given: a learning rate that is a string, or a parameter's state
    without ``exp_avg``, fails only at the first step, deep inside torch.
    """
    for group in optimizer.param_groups:
        check_number('lr', group.get('lr'), above=0)
        check_number('eps', group.get('eps'), minimum=0)
        check_number('weight_decay', group.get('weight_decay'), minimum=0)
        betas = group.get('betas')
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f'betas must be two numbers, got {betas!r}')
        for beta in betas:
            check_number('betas', beta, minimum=0, below=1)
        for name in ('amsgrad', 'maximize', 'capturable', 'differentiable', 'decoupled_weight_decay'):
            check_bool(name, group.get(name, False))
        for name in ('foreach', 'fused'):
            if group.get(name) is not None:
                check_bool(name, group[name])
        moments = ('exp_avg', 'exp_avg_sq') + (('max_exp_avg_sq',) if group['amsgrad'] else ())
        for index, parameter in enumerate(group['params']):
            state = optimizer.state.get(parameter)
            if state:  # Adam creates the state of a parameter at its first step
                _check_parameter_state(state, parameter, moments, f'state of parameter {index}')


def _check_parameter_state(state: dict, parameter: torch.Tensor, moments: Sequence[str], where: str) -> None:
    step = state.get('step')
    if isinstance(step, torch.Tensor) and step.numel() == 1:
        step = step.item()
    check_number(f'the step of the {where}', step, minimum=1)
    for key in moments:
        value = state.get(key)
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise TypeError(f'the {where} lacks {key}, a tensor of floats (got {describe(value)})')
        if value.shape != parameter.shape:
            raise ValueError(f'the {where} has {key} of shape {tuple(value.shape)}, the parameter '
                             f'{tuple(parameter.shape)}')
        if not value.isfinite().all() or (key != 'exp_avg' and (value < 0).any()):
            raise ValueError(f'the {where} has {key} holding NaN, infinity{"" if key == "exp_avg" else " or < 0"}')


def restore(checkpoint: Dict[str, Any], path: str, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            kl_term: Any, train_loader: Any, rank: int) -> List[Dict[str, Any]]:
    """Put the saved state back into each piece of a run; returns the history. CommandError if a piece does not fit."""
    def put_optimizer_back() -> None:
        optimizer.load_state_dict(checkpoint['optimizer_state'])
        check_adam_state(optimizer)

    pieces: Tuple[Tuple[str, Callable[[], Any]], ...] = (
        ('model_state', lambda: load_model_state(model, checkpoint['model_state'])),
        ('optimizer_state', put_optimizer_back),
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
    history: List[Dict[str, Any]] = checkpoint['history']
    return history


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
