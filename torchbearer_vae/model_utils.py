"""What the package asks of a model, its own or a user's: one definition each, used by every layer.

A model here is any ``nn.Module`` with ``encode(x) -> (mu, logvar)`` and ``decode(z)``; a conditional
one (an int ``num_classes``) takes the labels too, ``encode(x, labels)`` and ``decode(z, labels)``.
"""
import contextlib
from typing import Any, Iterable, Iterator, Optional, Tuple, Union

import torch
from torch.utils.data import DataLoader, Dataset

from .checks import describe

__all__ = []  # internal


def model_device(model: Any) -> torch.device:
    """The device of the model's first parameter; the CPU for a model without parameters."""
    parameter = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    return parameter.device if parameter is not None else torch.device('cpu')


def is_conditional(model: Any) -> bool:
    """A model conditioned on class labels: an int ``num_classes`` (``encode(x, labels)``, ``decode(z, labels)``)."""
    classes = getattr(model, 'num_classes', None)
    return isinstance(classes, int) and not isinstance(classes, bool)


@contextlib.contextmanager
def evaluating(model: Any) -> Iterator[None]:
    """Eval mode (no dropout, batch-norm running statistics) and no autograd, then the mode as before."""
    training = getattr(model, 'training', False)
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(training)


def require_methods(model: Any, who: str, *methods: str) -> None:
    """A TypeError naming what ``who`` needs unless the model has each of ``methods``."""
    missing = [name for name in methods if not callable(getattr(model, name, None))]
    if missing:
        raise TypeError(f'{who} needs a model with {" and ".join(m + "()" for m in methods)}, but '
                        f'{type(model).__name__} has no {", ".join(missing)}')


def posterior(model: Any, x: torch.Tensor, labels: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(mu, logvar)`` of a batch, each ``(batch, latent_dim)``, checked.

    A conditional model is given ``labels``; another model ignores them.

    Raises:
        TypeError: if ``model.encode`` does not return a pair.
        ValueError: if ``mu`` and ``logvar`` are not both ``(batch, latent_dim)`` for this batch.
    """
    return _pair(_encoded(model, x, labels), x)


def _encoded(model: Any, x: torch.Tensor, labels: Optional[torch.Tensor]) -> Any:
    return model.encode(x, labels) if labels is not None and is_conditional(model) else model.encode(x)


def _pair(encoded: Any, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``encode``'s ``(mu, logvar)`` for the batch ``x``, checked (see :func:`posterior`)."""
    if not isinstance(encoded, (tuple, list)) or len(encoded) < 2:
        raise TypeError(f'model.encode(x) must return (mu, logvar), a Gaussian posterior, got {describe(encoded)}: '
                        f'this is for VAEs (a VQ-VAE or a plain autoencoder has no posterior to sample, chart or '
                        f'score)')
    mu, logvar = encoded[0], encoded[1]
    if (not isinstance(mu, torch.Tensor) or not isinstance(logvar, torch.Tensor) or mu.dim() != 2
            or mu.shape != logvar.shape or mu.shape[0] != x.shape[0]):
        raise ValueError(f'model.encode(x) must return mu and logvar of shape (batch, latent_dim), got '
                         f'{describe(mu)} and {describe(logvar)} for a batch of {x.shape[0]}')
    return mu, logvar


def latent_code(model: Any, x: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The deterministic code of each image, ``(batch, ...)``: the posterior mean of a VAE (``encode`` returns
    ``(mu, logvar)``), else what ``encode`` returns (a plain autoencoder's code, a VQ-VAE's map before quantization).

    A conditional model is given ``labels``; another model ignores them.

    Raises:
        TypeError: if ``model.encode`` returns neither a pair nor a float tensor of ``(batch, ...)``.
    """
    encoded = _encoded(model, x, labels)
    if isinstance(encoded, (tuple, list)):
        return _pair(encoded, x)[0]
    if not isinstance(encoded, torch.Tensor) or not encoded.is_floating_point() or encoded.dim() < 2 \
            or encoded.shape[0] != x.shape[0]:
        raise TypeError(f'model.encode(x) must return the codes (batch, ...) or (mu, logvar), got {describe(encoded)} '
                        f'for a batch of {x.shape[0]}')
    return encoded


def decoded(model: Any, z: torch.Tensor, labels: Optional[torch.Tensor] = None) -> Any:
    """``model.decode(z)``; a conditional model is given ``labels``, another model ignores them."""
    return model.decode(z, labels) if labels is not None and is_conditional(model) else model.decode(z)


#: What the evaluation and the prior fitting read: a tensor of images, a Dataset, or an iterable of batches.
Data = Union[torch.Tensor, Dataset, Iterable]


def _labels_of(batch: Any, x: torch.Tensor) -> Optional[torch.Tensor]:
    """The labels of a batch: ``(x, target, label)``'s third, or ``(x, label)``'s second if it is one per image."""
    if not isinstance(batch, (tuple, list)):
        return None
    candidate = batch[2] if len(batch) >= 3 else batch[1] if len(batch) == 2 else None
    if isinstance(candidate, torch.Tensor) and candidate.dim() in (1, 2) and candidate.shape[0] == x.shape[0] and (
            candidate.dim() == 1 or candidate.is_floating_point()) and candidate.shape != x.shape:
        return candidate
    return None


def _first(batch: Any, conditional: bool, model: Any) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    x = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    if not isinstance(x, torch.Tensor):
        raise TypeError(f'data must yield tensors or (x, ...) tuples of tensors, got a {type(x).__name__}')
    if not conditional:
        return x, None
    labels = _labels_of(batch, x)
    if labels is None:
        raise ValueError(f'{type(model).__name__} is conditional (num_classes={model.num_classes}): the data must '
                         f'carry the labels, as batches (x, target, label) or (x, label); e.g. '
                         f'AutoEncoderDataset(dataset, keep_labels=True), or the labelled dataset itself')
    return x, labels


def data_batches(data: Data, batch_size: int, model: Any) -> Iterator[Tuple[torch.Tensor, Optional[torch.Tensor]]]:
    """``(x, labels)`` batches of ``data`` (a tensor of images, a Dataset, an iterable of batches); ``labels`` is
    None unless the model is conditional, which needs them."""
    conditional = is_conditional(model)
    if isinstance(data, torch.Tensor):
        if data.dim() < 2:
            raise ValueError(f'a tensor of images needs a batch dimension, got shape {tuple(data.shape)}')
        for x in data.split(batch_size):
            yield _first(x, conditional, model)
        return
    if isinstance(data, Dataset):
        data = DataLoader(data, batch_size=batch_size)
    try:
        iterator = iter(data)
    except TypeError:
        raise TypeError(f'data must be a tensor, a Dataset or an iterable of batches, got a '
                        f'{type(data).__name__}') from None
    for batch in iterator:
        yield _first(batch, conditional, model)
