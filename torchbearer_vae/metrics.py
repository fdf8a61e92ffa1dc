r"""The ELBO's terms as torchbearer metrics: ``'kl'``, ``'recon'`` and ``'active_units'``.

:func:`~torchbearer_vae.register` (run by ``import torchbearer_vae``) registers them with
torchbearer's metric machinery (:func:`~torchbearer.metrics.decorators.default_for_key`), so they
can be named like torchbearer's own ``'loss'``::

    Trial(model, optimizer, BCELoss(reduction='sum'), metrics=['loss', 'recon', 'kl'],
          callbacks=[kld_loss()])

``'kl'`` and ``'recon'`` behave like ``'loss'``: a running mean in the progress bar
(``running_kl``), the epoch mean in the history (``kl``, ``val_kl``) and so in
:class:`~torchbearer.callbacks.csv_logger.CSVLogger` rows. They read values the
:func:`~torchbearer_vae.divergence` callbacks (:func:`~torchbearer_vae.kld_loss`) store, so they
add no computation and no host-device synchronisation beyond the one torchbearer's running mean
and epoch mean already make for ``'loss'``.

What the terms are, *the torchbearer state way* (the model stores ``MU``/``LOGVAR``, a
``kld_loss`` callback adds the KL):

- ``kl`` is ``state[torchbearer_vae.KL]``: the unweighted KL of the batch, in the callback's
  reduction (per batch for ``'sum'``, per image for ``'batchmean'``). It is the true KL even when
  the loss uses a weight, a capacity target or free bits.
- ``recon`` is ``state[torchbearer_vae.RECON]``: ``state[LOSS]`` as the *first* divergence callback
  of the step found it, that is the criterion's output (the reconstruction term) plus whatever
  callbacks listed before it added. With several divergence callbacks, the later ones are not in
  ``recon``; give them another ``store_as`` key to see them. With ``beta = 1`` and no capacity or
  free bits, ``loss = recon + kl``.

*The PyTorch way* (the model returns ``(recon, mu, logvar)`` and the criterion, e.g.
:func:`~torchbearer_vae.vae_loss`, returns the whole loss) has no divergence callback, and the
criterion cannot see state, so nothing separates the terms: ``'kl'`` and ``'recon'`` raise a
:class:`~torchbearer_vae.MissingStateError` saying so. Use the state way to see them.
"""
import functools
import inspect
from typing import Any, Callable, Optional, Tuple, TypeVar, cast

import torch
import torchbearer
from torchbearer import Metric
from torchbearer.metrics import mean, running_mean, to_dict
from torchbearer.state import StateKey

from .checks import check_number
from .errors import MissingStateError
from .state import COMMITMENT, KL, MU, PERPLEXITY, RECON, USED_CODES, key_name

__all__ = ['KLMetric', 'ReconstructionMetric', 'ActiveUnits', 'QuantizerMetric']



def _read(state: dict, key: Any, metric: str) -> Any:
    try:
        return state[key]
    except KeyError:
        if key in (COMMITMENT, PERPLEXITY, USED_CODES):
            raise MissingStateError(
                f"the '{metric}' metric reads state[{key_name(key)}], which a model with a vector quantizer "
                f"stores in its forward (torchbearer_vae.VQVAE with use_state=True); this model stored none") from None
        raise MissingStateError(
            f"the '{metric}' metric reads state[{key_name(key)}], which no callback stored. "
            f"Add a kld_loss() (or @divergence) callback and let the model store MU and LOGVAR in state "
            f"(the torchbearer state way); with a criterion that returns the whole loss (vae_loss, the "
            f"PyTorch way) the terms cannot be separated.") from None


_Class = TypeVar('_Class', bound=type)


def _decorated(*decorators: Callable[[type], type]) -> Callable[[_Class], _Class]:
    """Apply torchbearer's metric decorators, keeping the class's module, name and signature.

    The decorators return a wrapper class defined in torchbearer with an ``(*args, **kwargs)``
    constructor; the docs and the registry (which recognises our objects by module) need ours.
    """
    def decorate(cls: _Class) -> _Class:
        original: Any = cls  # mypy refuses reading __init__ from a class it only knows as a type
        wrapped: Any = cls
        for decorator in reversed(decorators):
            wrapped = decorator(wrapped)
        wrapped.__module__, wrapped.__qualname__ = cls.__module__, cls.__qualname__
        wrapped.__init__.__signature__ = inspect.signature(original.__init__)
        for name in getattr(cls, 'builders', ()):  # the wrapper's builders choose on the metric it wraps
            setattr(wrapped, name, _forwarded(getattr(cls, name)))
        return cast(_Class, wrapped)  # to its users the wrapper is the class: same name, signature, builders
    return decorate


def _forwarded(builder: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A builder of torchbearer's ``ToDict`` wrapper: calls ``builder`` on the wrapped metric, returns the wrapper."""
    @functools.wraps(builder)
    def build(self: Any) -> Any:
        builder(self.metric)
        return self
    return build


@_decorated(running_mean, mean)  # like torchbearer's 'loss': running mean in training, epoch means
class KLMetric(Metric):
    """The ``'kl'`` metric: the KL term the divergence callback stored in ``state[KL]``.

    A running mean in training (``running_kl``) and the epoch mean (``kl``, ``val_kl``), like
    torchbearer's ``'loss'``. See the module documentation for what the value is.

    Args:
        key (StateKey): Where the divergence is stored (a :func:`~torchbearer_vae.divergence`
            callback's ``store_as``).
        name (str): The metric's name in the history.

    Example: ::

        >>> import torch
        >>> import torchbearer
        >>> from torchbearer_vae import VAE, KLMetric, kld_loss
        >>> model = VAE()
        >>> trial = torchbearer.Trial(model, torch.optim.Adam(model.parameters()),
        ...                           torch.nn.BCELoss(reduction='sum'),
        ...                           metrics=['loss', 'kl'],  # or metrics=[KLMetric()]
        ...                           callbacks=[kld_loss()])
    """

    def __init__(self, key: StateKey = KL, name: str = 'kl'):
        super().__init__(name)
        self.key = key

    def process(self, *args: Any) -> Any:
        return _read(args[0], self.key, self.name)


@_decorated(running_mean, mean)
class ReconstructionMetric(Metric):
    """The ``'recon'`` metric: the reconstruction term, ``state[RECON]``.

    The criterion's output, recorded by the first divergence callback of each step before it adds
    its term (see the module documentation). A running mean in training (``running_recon``) and
    the epoch mean (``recon``, ``val_recon``).

    Example: ::

        >>> import torch
        >>> import torchbearer
        >>> from torchbearer_vae import VAE, kld_loss
        >>> model = VAE()
        >>> trial = torchbearer.Trial(model, torch.optim.Adam(model.parameters()),
        ...                           torch.nn.BCELoss(reduction='sum'),
        ...                           metrics=['loss', 'recon', 'kl'], callbacks=[kld_loss()])
    """

    def __init__(self) -> None:
        super().__init__('recon')

    def process(self, *args: Any) -> Any:
        return _read(args[0], RECON, self.name)


@_decorated(to_dict)  # one value per epoch: no running mean
class ActiveUnits(Metric):
    r"""The ``'active_units'`` metric: how many latent dimensions the encoder uses (Burda et al. 2015).

    Burda, Grosse and Salakhutdinov ("Importance weighted autoencoders", 2015) call latent
    dimension ``j`` *active* when its posterior mean varies across the data:

    .. math::
        A_j = \mathrm{Cov}_x\big(\mathbb{E}_{q(z \mid x)}[z_j]\big) > \delta, \qquad \delta = 0.01

    Over an epoch the metric accumulates the sum and the sum of squares of ``state[MU]`` per
    dimension (in float64, on the device: no synchronisation per step), and at the end of the epoch
    returns the number of dimensions whose variance (the population variance, divided by the
    number of images) exceeds ``threshold``: one host-device synchronisation per epoch.

    By default it is computed over the validation data (``val_active_units`` in the history) and
    test data (``Trial.evaluate``), with the model in eval mode, as Burda et al. measure it after
    training. The builders choose the phases, as the pictures' do: ``.on_train()`` computes it over
    the training data (``active_units``; the posterior means then come from a model that changes
    during the epoch), ``.on_val()`` over the validation data, ``.on_test()`` over the test data,
    and several builders over each of their phases.

    Args:
        threshold (float): ``δ``, the variance above which a dimension is active.
        key (StateKey): Where the model stores the posterior means, shape ``(batch, *latent)``.

    Example: ::

        >>> import torch
        >>> import torchbearer
        >>> from torchbearer_vae import VAE, ActiveUnits, kld_loss
        >>> model = VAE(latent_dim=20)
        >>> trial = torchbearer.Trial(model, torch.optim.Adam(model.parameters()),
        ...                           torch.nn.BCELoss(reduction='sum'), callbacks=[kld_loss()],
        ...                           metrics=['loss', 'active_units'])  # or ActiveUnits().on_train().on_val()
    """

    builders = ('on_train', 'on_val', 'on_test')

    def __init__(self, threshold: float = 0.01, *, key: StateKey = MU):
        super().__init__('active_units')
        self.threshold = check_number('threshold', threshold, minimum=0)
        self.key = key
        self._phases: Tuple[Any, ...] = ()  # the data chosen with the builders; none chosen: validation and test
        self._data = torchbearer.TRAIN_DATA  # the phase running: a Trial starts a run in training mode
        self._sum: Optional[torch.Tensor] = None
        self._sum_of_squares: Optional[torch.Tensor] = None
        self._count = 0

    def on_train(self) -> 'ActiveUnits':
        """Compute it over the training data (``active_units``). Returns: self."""
        self._phases += (torchbearer.TRAIN_DATA,)
        return self

    def on_val(self) -> 'ActiveUnits':
        """Compute it over the validation data (``val_active_units``). Returns: self."""
        self._phases += (torchbearer.VALIDATION_DATA,)
        return self

    def on_test(self) -> 'ActiveUnits':
        """Compute it over the test data (``trial.evaluate(data_key=torchbearer.TEST_DATA)``). Returns: self."""
        self._phases += (torchbearer.TEST_DATA,)
        return self

    def train(self) -> None:
        self._data = torchbearer.TRAIN_DATA

    def eval(self, data_key: Optional[StateKey] = None) -> None:
        self._data = torchbearer.VALIDATION_DATA if data_key is None else data_key

    @property
    def _active(self) -> bool:
        return self._data in (self._phases or (torchbearer.VALIDATION_DATA, torchbearer.TEST_DATA))

    def reset(self, state: dict) -> None:
        self._sum = self._sum_of_squares = None
        self._count = 0

    def process(self, *args: Any) -> None:
        if not self._active:
            return None
        means = _read(args[0], self.key, self.name)
        # float64: E[m^2] - E[m]^2 of a dimension whose mean is large but constant must come out ~0.
        means = means.detach().reshape(means.shape[0], -1).double()
        if self._sum is None or self._sum_of_squares is None:
            self._sum, self._sum_of_squares = means.sum(0), means.pow(2).sum(0)
        else:
            self._sum += means.sum(0)
            self._sum_of_squares += means.pow(2).sum(0)
        self._count += means.shape[0]
        return None

    def process_final(self, *args: Any) -> Optional[int]:
        if not self._active or not self._count or self._sum is None or self._sum_of_squares is None:
            return None
        average = self._sum / self._count
        variance = self._sum_of_squares / self._count - average.pow(2)
        return int((variance > self.threshold).sum().item())


_QUANTIZER_KEYS = {'commitment': COMMITMENT, 'perplexity': PERPLEXITY, 'used_codes': USED_CODES}


@_decorated(running_mean, mean)  # like 'loss': a running mean in training, the epoch mean
class QuantizerMetric(Metric):
    """A vector quantizer's metric: ``'commitment'``, ``'perplexity'`` or ``'used_codes'``.

    The values :class:`~torchbearer_vae.VQVAE` stores in state at every step (the state way):

    - ``commitment``: the unweighted commitment term of the batch, as
      :func:`~torchbearer_vae.commitment_loss` reduced it before weighting it (it stores it back in
      ``state[COMMITMENT]``, as :func:`~torchbearer_vae.kld_loss` stores the KL): summed over the
      images with its default ``reduction='sum'``, their mean with ``'batchmean'``; without that
      callback, the sum of the per-image terms the model stored;
    - ``perplexity``: ``state[PERPLEXITY]``, ``exp`` of the entropy of the batch's code
      frequencies; a codebook that collapsed onto a few codes has a perplexity near their number;
    - ``used_codes``: ``state[USED_CODES]``, how many codes the batch used.

    A running mean in training (``running_perplexity``) and the epoch mean (``perplexity``,
    ``val_perplexity``), like torchbearer's ``'loss'``. The names work in ``Trial(metrics=[...])``.

    Args:
        name (str): ``'commitment'``, ``'perplexity'`` or ``'used_codes'``.

    Example: ::

        >>> from torchbearer_vae import QuantizerMetric
        >>> metrics = ['loss', 'commitment', 'perplexity', 'used_codes']  # Trial(..., metrics=metrics)
        >>> QuantizerMetric('used_codes').name  # the same, as an object
        'used_codes'
    """

    def __init__(self, name: str = 'perplexity'):
        if name not in _QUANTIZER_KEYS:
            raise ValueError(f"QuantizerMetric's name must be one of {sorted(_QUANTIZER_KEYS)}, got {name!r}")
        super().__init__(name)
        self.key = _QUANTIZER_KEYS[name]

    def process(self, *args: Any) -> Any:
        value = _read(args[0], self.key, self.name)
        return value.detach().sum().float() if self.name == 'commitment' else value.detach().float()  # one value,
        # or the model's per-image terms
