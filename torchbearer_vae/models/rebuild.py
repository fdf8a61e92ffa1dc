"""Rebuild a model from a checkpoint: the package's own models by themselves, a user's from its class.

The checkpoint file format is :mod:`torchbearer_vae.checkpoints`; rebuilding needs the models, so it
lives here, above the format.
"""
from typing import Any, Dict, Optional, Union

import torch
from torch import nn

from ..checkpoints import class_path, load_checkpoint, load_model_state
from ..errors import CheckpointError
from ..files import PathLike
from .base import BaseVAE
from .vqvae import VQVAE

__all__ = ['model_from_checkpoint']


def model_from_checkpoint(checkpoint: Union[PathLike, Dict[str, Any]], model_class: Optional[type] = None
                          ) -> nn.Module:
    """Rebuild the model a checkpoint was saved from, with its weights, in eval mode.

    The checkpoint stores the model's class (as ``module:qualname``) and its
    :attr:`~torchbearer_vae.BaseVAE.config`. The package's own models (:class:`~torchbearer_vae.VAE`,
    :class:`~torchbearer_vae.ConvVAE`, ...) are rebuilt by themselves; any other
    :class:`~torchbearer_vae.BaseVAE` subclass, a user's own, is rebuilt when its class is given
    as ``model_class``: no class is ever imported from a name found in a file. The name must match
    the stored one (a class saved from a script, ``__main__``, matches by its qualified name).

    Before anything is allocated, the configuration is built on the ``meta`` device and its weight
    shapes compared with the stored ones, so a file whose configuration was edited (say
    ``hidden_dim=10**9`` beside small weights) is refused at once instead of allocating gigabytes.

    Args:
        checkpoint (str, PathLike or dict): A checkpoint path, or what :func:`load_checkpoint` returned.
        model_class (type or None): The class to rebuild, for models that are not the package's own.

    Returns:
        nn.Module: The model, on the CPU, in eval mode.

    Raises:
        CheckpointError: if the class cannot be rebuilt (not the package's and no ``model_class``,
            or ``model_class`` is another class), the checkpoint holds no configuration, or the
            configuration does not build a model whose weights fit the stored ones.

    Example: ::

        >>> from torchbearer_vae import VAE, save_checkpoint, model_from_checkpoint
        >>> save_checkpoint('vae.pt', VAE(latent_dim=2))
        >>> model_from_checkpoint('vae.pt').latent_dim
        2
    """
    if not isinstance(checkpoint, dict):
        checkpoint = load_checkpoint(checkpoint)
    entry = dict(checkpoint['model'])
    stored = entry.pop('class')
    config = entry.pop('config', None)
    cls = _model_class(stored, model_class)
    if config is None:
        raise CheckpointError(f'the checkpoint holds no configuration for its {stored} (its arguments were not plain '
                              f'values); build the model yourself and call load_model_state(model, '
                              f'checkpoint["model_state"])')
    _check_fits(cls, config, checkpoint['model_state'])
    model: nn.Module = cls(**config)
    load_model_state(model, checkpoint['model_state'])
    return model.eval()


def _package_models() -> Dict[str, type]:
    """The BaseVAE and VQVAE subclasses this package defines (walked, not imported by name), by their class path."""
    found, todo = [], [BaseVAE, VQVAE]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return {class_path(cls): cls for cls in found if cls.__module__.split('.')[0] == __name__.split('.')[0]}


# Where version 0.2 kept the package's models, as its checkpoints name them: the files stay loadable.
_MOVED = {
    'torchbearer_vae.models:VAE': 'torchbearer_vae.models.vae:VAE',
    'torchbearer_vae.models:ConvVAE': 'torchbearer_vae.models.vae:ConvVAE',
    'torchbearer_vae.conditional:ConditionalVAE': 'torchbearer_vae.models.conditional:ConditionalVAE',
}


def _model_class(stored: str, model_class: Optional[type]) -> type:
    if model_class is None:
        cls = _package_models().get(_MOVED.get(stored, stored))
        if cls is None:
            raise CheckpointError(f'the checkpoint holds a {stored}, which is not one of torchbearer_vae\'s models; '
                                  f'pass model_class=YourClass (a class is never imported from a name found in a file)')
        return cls
    if not isinstance(model_class, type) or not issubclass(model_class, nn.Module):
        raise TypeError(f'model_class must be a torch.nn.Module subclass, got {model_class!r}')
    given = class_path(model_class)
    stored_module, _, stored_name = stored.rpartition(':')
    from_script = '__main__' in (stored_module, model_class.__module__)  # a class saved from or loaded into a script
    saved_from_script = from_script and stored_name == model_class.__qualname__
    if _MOVED.get(stored, stored) != given and not saved_from_script:
        raise CheckpointError(f'the checkpoint holds a {stored}, but model_class is {given}; pass the class the '
                              f'checkpoint was saved from')
    return model_class


def _check_fits(cls: type, config: Dict[str, Any], weights: Dict[str, torch.Tensor]) -> None:
    """Build ``cls(**config)`` on the meta device (no memory) and compare its weight shapes with the stored ones."""
    try:
        with torch.device('meta'):
            probe = cls(**config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f'the checkpoint\'s configuration does not build a {cls.__name__}: {error}') from None
    except Exception:  # a model that cannot be built on the meta device: load_model_state checks it once built
        return
    expected = {name: tuple(value.shape) for name, value in probe.state_dict().items()}
    problems = [f'{name}: configuration {shape} vs stored {tuple(weights[name].shape)}'
                for name, shape in expected.items() if name in weights and tuple(weights[name].shape) != shape]
    problems += [f'{name}: missing from the checkpoint' for name in expected if name not in weights]
    problems += [f'{name}: not in the model' for name in weights if name not in expected]
    if problems:
        shown = '; '.join(problems[:3]) + ('; ...' if len(problems) > 3 else '')
        raise CheckpointError(f'the checkpoint\'s configuration and weights disagree ({shown}); the file was edited '
                              f'or damaged, so the {cls.__name__} was not built')
