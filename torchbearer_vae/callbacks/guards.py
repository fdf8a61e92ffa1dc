"""Numerical guards: stop training at the first NaN or infinity, before it reaches the weights or a checkpoint.

:class:`NaNGuard` extends torchbearer's :class:`~torchbearer.callbacks.terminate_on_nan.TerminateOnNaN`.
That callback watches a *metric* (``running_loss`` by default, refreshed every 10 steps), so it
notices a NaN up to 10 optimizer steps late, after the NaN has been written into the weights, and
it cannot say where the NaN came from. The guard checks the model's output, the loss and the
gradients of every step, names the part that is not finite (the reconstruction term, stored in
``state[RECON]``, or the KL, stored in ``state[KL]`` by :func:`~torchbearer_vae.kld_loss` and
other :func:`~torchbearer_vae.divergence` callbacks), skips the bad update and stops before the
epoch is recorded, so checkpoint callbacks (which run at ``on_checkpoint``, after the epoch) keep
the last good epoch.
"""
import math
import numbers
import warnings
from typing import Any, Dict, List, Optional, Tuple

import torch
import torchbearer
from torchbearer.callbacks import TerminateOnNaN

from ..checks import check_bool, describe
from ..state import KL, LOGVAR, RECON

__all__ = ['NaNGuard']

_TERMS = (('recon', RECON, 'reconstruction'), ('kl', KL, 'KL'))
# What a library user can change; a command line passes advice= naming its own options instead.
_ADVICE = ('try a lower learning rate, gradient clipping (torchbearer.callbacks.GradientNormClipping) or a logvar '
           'clamp (VAE(logvar_clamp=(-30, 20)))')
_DATA_ADVICE = 'find the non-finite values with torch.isfinite(x).all() on each batch and fix the data'


def _tensor_number(tensor: torch.Tensor) -> float:
    """A tensor as one float: its sum, or nan/inf if one of its values is."""
    tensor = tensor.detach()
    if not tensor.is_floating_point() or torch.isfinite(tensor).all():
        return float(tensor.float().sum())
    return math.nan if torch.isnan(tensor).any() else math.inf


def _number(value: Any) -> Optional[float]:
    """A tensor or number as one float (see :func:`_tensor_number`); None for anything else."""
    if isinstance(value, torch.Tensor):
        return _tensor_number(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def _show(value: float) -> str:
    return f'{value:.4g}' if math.isfinite(value) else str(value)


def _float_tensors(value: Any) -> List[torch.Tensor]:
    """The floating point tensors of a model output: the tensor, or those of a tuple/list."""
    values = value if isinstance(value, (tuple, list)) else (value,)
    return [v for v in values if isinstance(v, torch.Tensor) and v.is_floating_point()]


def _finite_output(value: Any) -> Any:
    """The output with every NaN/inf replaced by 0, so that a criterion (``BCELoss`` raises on NaN) can run."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return torch.nan_to_num(value, nan=0.0, posinf=0.0, neginf=0.0)
    if isinstance(value, (tuple, list)):
        return type(value)(_finite_output(v) for v in value)
    return value


def _gradients(optimizer: Optional[torch.optim.Optimizer]) -> List[torch.Tensor]:
    """The gradients the optimizer is about to apply."""
    if optimizer is None:
        return []
    return [parameter.grad for group in optimizer.param_groups for parameter in group['params']
            if parameter.grad is not None]


def _sum_is_finite(tensors: List[torch.Tensor]) -> bool:
    """Whether the float32 sum of all the values is finite: one cheap pass and one host synchronisation.

    A NaN or an infinity anywhere makes the sum non-finite; a finite sum may still be beyond
    float32 (values near 1e38), so a ``False`` is confirmed with :func:`_first_non_finite`.
    """
    if len(tensors) == 1 and tensors[0].dim() == 0:  # a loss: one number, read as it is
        return math.isfinite(float(tensors[0].detach()))
    total = tensors[0].detach().sum(dtype=torch.float32)
    if len(tensors) > 1:
        total = total + torch.stack([t.detach().sum(dtype=torch.float32).to(total.device) for t in tensors[1:]]).sum()
    return math.isfinite(float(total))


def _first_non_finite(tensors: List[torch.Tensor]) -> Optional[torch.Tensor]:
    for tensor in tensors:
        if not bool(torch.isfinite(tensor).all()):
            return tensor
    return None


def _gradient_name(model: Any, gradient: Optional[torch.Tensor]) -> str:
    if isinstance(model, torch.nn.Module):
        for name, parameter in model.named_parameters():
            if gradient is not None and parameter.grad is gradient:
                return name
    return describe(gradient)


def _non_finite_weights(model: Any) -> List[str]:
    """Names of the parameters holding a NaN or an infinity, with one host synchronisation."""
    if not isinstance(model, torch.nn.Module):
        return []
    named = [(name, parameter) for name, parameter in model.named_parameters() if parameter.is_floating_point()]
    if not named:
        return []
    device = named[0][1].device
    finite = torch.stack([torch.isfinite(parameter.detach()).all().to(device) for _, parameter in named]).tolist()
    return [name for (name, _), ok in zip(named, finite) if not ok]


def _consequence(phase: str) -> str:
    if phase == 'validation':
        return 'the epoch is recorded (its weights are finite), then training stops'
    return 'the epoch is not recorded, so checkpoints keep the last complete epoch'


class NaNGuard(TerminateOnNaN):
    """Stop training at the first NaN or infinity, say where it came from, keep the weights and checkpoints good.

    A torchbearer :class:`~torchbearer.callbacks.terminate_on_nan.TerminateOnNaN` that checks every
    step itself rather than a running metric. When, in a training step, the model's output, the
    loss or a gradient is not finite, it:

    * names the culprit: ``'recon'``, the reconstruction term (``state[torchbearer_vae.RECON]``,
      the criterion's output), or ``'kl'`` (``state[torchbearer_vae.KL]``), both stored by
      :func:`~torchbearer_vae.kld_loss` and other :func:`~torchbearer_vae.divergence` callbacks;
      ``'loss'`` when neither is (or without such a callback); ``'output'``, the model's output;
      ``'gradients'``, the first parameter whose gradient is not finite although the loss is;
      and adds what explains it (how large ``logvar`` got, non-finite inputs or weights);
    * skips that step's update: the gradients are dropped at ``on_backward``, before the
      optimizer step (``optimizer.zero_grad(set_to_none=True)``; optimizers leave parameters
      without a gradient alone), so the weights in memory stay those of the last good step;
    * sets ``torchbearer.STOP_TRAINING``, so torchbearer skips validation, ``on_end_epoch`` and
      ``on_checkpoint``: the epoch is not added to the history, and
      :class:`~torchbearer_vae.Checkpointer`, :class:`~torchbearer_vae.MetricsCSV` and the picture
      callbacks keep the files of the last complete epoch;
    * stores a one-line explanation in :attr:`message` (where it happened in :attr:`stopped_at`)
      and, with ``warn=True``, issues it as a :class:`RuntimeWarning`.

    Why the output and the gradients, not only the loss: a finite loss can have infinite
    gradients, whose update writes NaN into the weights; and a ``logvar`` beyond about 177 makes
    the draw ``mu + exp(logvar / 2) * eps`` infinite. Either way the next forward pass gives
    NaN images, which ``BCELoss`` refuses with ``RuntimeError: all elements of input should be
    between 0 and 1`` (a device-side assert on CUDA) before any loss exists to check. The guard
    checks the output at ``on_forward`` and, when it stops there, replaces the NaNs of the output
    and the target by 0 so that the criterion can run to the end of the (skipped) step. At the
    end of each training pass it also checks the weights (once per epoch), so that no checkpoint
    gets non-finite weights. During validation, with ``validation=True``, the output and the loss are checked; a
    non-finite one stops training after the epoch is recorded (its weights passed that check).

    **Several processes** (``DistributedDataParallel``): the guard needs no communication of its
    own, as long as ``gradients=True``. A non-finite loss on one rank gives NaN gradients there
    (when it stops at the output, the guard makes the loss NaN for that reason), the all-reduce
    of the backward pass hands them to every rank, and every rank's gradient check stops at the
    same step. Validation runs with the same weights everywhere, and so do the weights checks.

    **Cost.** Two numbers are read back from the device per training step: the sum of the
    output (before the criterion) and the loss plus the sum of every gradient (before the
    update). A sum is finite when every value is, so one pass over the values and one
    synchronisation each suffice (a non-finite sum is confirmed value by value before anything
    stops: finite values near 1e38 can overflow it). These are the synchronisations needed to
    stop in time; ``torch.amp.GradScaler`` reads its inf check once per step for the same
    reason. Checking only every few steps is not offered: the bad update would reach the
    weights, and the next step would fail as above before the check came. Almost all of the cost
    is the gradient sums: ``gradients=False`` leaves the cheap checks of the output and the loss.

    **Advice.** The message ends with what to try. By default that is what a user of the library
    can change: a lower learning rate, gradient clipping
    (:class:`torchbearer.callbacks.GradientNormClipping`) or a logvar clamp
    (``VAE(logvar_clamp=(-30, 20))``), or, when the inputs are not finite, fixing the data. A
    program that builds the Trial for its users, such as a command line, passes ``advice`` in
    the terms its users know (its own options).

    **Without the output check** (``output=False``): when the criterion turns a non-finite output
    into a non-finite loss instead of raising (the package's
    :func:`~torchbearer_vae.reconstruction_loss`, which scores a Bernoulli decoder from its logits
    and a Gaussian one from its means; ``BCEWithLogitsLoss``; ``MSELoss``), the loss check of the
    same step stops it before its update, one synchronisation per step less (the command line
    does this: 2% of an MNIST epoch); the culprit is then the term that became non-finite.

    Args:
        gradients (bool): Also check the gradients.
        validation (bool): Also check validation steps.
        output (bool): Check the model's output at every forward, before the criterion (needed for
            a criterion that raises on non-finite values, such as ``BCELoss``).
        warn (bool): Issue :attr:`message` as a :class:`RuntimeWarning` when the guard stops training.
        advice (str or None): What the message suggests; ``None`` for the default above, ``''``
            for no advice.

    Attributes:
        message (str or None): Why the guard last stopped training, one line; ``None`` if it did not.
        stopped_at (dict or None): ``{'phase', 'epoch', 'batch', 'term'}`` of that stop; ``term`` is
            ``'recon'``, ``'kl'``, ``'recon and kl'``, ``'loss'``, ``'output'``, ``'gradients'`` or
            ``'weights'``; ``epoch`` and ``batch`` count from 0, as torchbearer does.

    Example: ::

        >>> import torch, torchbearer
        >>> from torchbearer_vae import VAE, NaNGuard, kld_loss
        >>> model = VAE()
        >>> guard = NaNGuard()  # NaNGuard(advice='try a lower --lr') in a command line
        >>> trial = torchbearer.Trial(model, torch.optim.Adam(model.parameters()), torch.nn.BCELoss(reduction='sum'),
        ...                           callbacks=[kld_loss(), guard])
        >>> # after trial.run(...): if guard.message: print(guard.message)
    """

    def __init__(self, *, gradients: bool = True, validation: bool = True, warn: bool = True,
                 advice: Optional[str] = None, output: bool = True):
        super().__init__(monitor='loss')
        self.gradients, self.validation = check_bool('gradients', gradients), check_bool('validation', validation)
        self.output = check_bool('output', output)
        self.warn = check_bool('warn', warn)
        if advice is not None and not isinstance(advice, str):
            raise TypeError(f"advice must be a str (or None for the default advice), got {describe(advice)}")
        self.advice = advice
        self.message: Optional[str] = None
        self.stopped_at: Optional[Dict[str, Any]] = None

    def __repr__(self) -> str:
        advice = '' if self.advice is None else f', advice={self.advice!r}'
        output = '' if self.output else ', output=False'  # shown when off, as advice is when given
        return f'NaNGuard(gradients={self.gradients}, validation={self.validation}, warn={self.warn}{advice}{output})'

    # -- torchbearer hooks --
    def on_start(self, state: dict) -> None:
        self.message, self.stopped_at = None, None

    def on_forward(self, state: dict) -> None:
        if self.output:
            self._guard_output(state, 'training')

    def on_criterion(self, state: dict) -> None:
        if self.stopped_at is not None and self.stopped_at['phase'] == 'training':  # stopped at on_forward
            # A NaN loss gives NaN gradients, which DistributedDataParallel's all-reduce hands to every rank:
            # each rank's gradient check then stops at this same step, and none waits for this one.
            state[torchbearer.LOSS] = state[torchbearer.LOSS] * math.nan

    def on_backward(self, state: dict) -> None:
        # After every on_criterion callback (the KL is in the loss), before the optimizer step.
        stopped = self.stopped_at is not None and self.stopped_at['phase'] == 'training'  # at on_forward
        gradients = _gradients(state.get(torchbearer.OPTIMIZER)) if self.gradients else []
        if stopped or self._guard_loss(state, 'training', gradients):
            optimizer = state.get(torchbearer.OPTIMIZER)
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)

    def on_step_training(self, state: dict) -> None:
        pass  # TerminateOnNaN checks its metric here, after the update; the guard checked before it

    def on_end_training(self, state: dict) -> None:
        if self.stopped_at is not None:
            return
        bad = _non_finite_weights(state.get(torchbearer.MODEL))
        if bad:
            epoch = state.get(torchbearer.EPOCH)
            shown = ', '.join(bad[:3]) + (', ...' if len(bad) > 3 else '')
            self._fail(state, 'training', 'weights', f'the weights are not finite after training epoch {epoch} '
                                                     f'({shown}): an update diverged', batch=None)

    def on_forward_validation(self, state: dict) -> None:
        if self.validation and self.output:
            self._guard_output(state, 'validation')

    def on_step_validation(self, state: dict) -> None:
        if self.validation:
            self._guard_loss(state, 'validation', [])

    def on_end_epoch(self, state: dict) -> None:
        pass  # TerminateOnNaN checks its metric here; every step has been checked already

    # -- checking: one host synchronisation each, the rest only once something is wrong --
    def _guard_output(self, state: dict, phase: str) -> None:
        output = state.get(torchbearer.Y_PRED)
        tensors = _float_tensors(output)
        if self.stopped_at is not None or not tensors or _sum_is_finite(tensors) or _first_non_finite(tensors) is None:
            return
        # The criterion must run to the end of the (skipped) step: BCELoss raises on a NaN output or target.
        state[torchbearer.Y_PRED] = _finite_output(output)
        if torchbearer.Y_TRUE in state:
            state[torchbearer.Y_TRUE] = _finite_output(state[torchbearer.Y_TRUE])
        details = [f'the {"first " if len(tensors) > 1 else ""}tensor it returned holds {_show(_tensor_number(t))}'
                   for t in tensors if not torch.isfinite(t).all()][:1]
        inputs = _float_tensors(state.get(torchbearer.X))
        bad_data = bool(inputs) and not all(bool(torch.isfinite(t).all()) for t in inputs)
        if bad_data:
            details.append('the inputs of this batch are not finite: the data holds NaN or inf')
        details += self._causes(state)
        self._fail(state, phase, 'output', f"the model's output is not finite ({'; '.join(details)})",
                   default_advice=_DATA_ADVICE if bad_data else _ADVICE)

    def _guard_loss(self, state: dict, phase: str, gradients: List[torch.Tensor]) -> bool:
        """Stop if the loss of this step (or a gradient) is not finite; ``True`` if it stopped."""
        loss = state.get(torchbearer.LOSS)
        if self.stopped_at is not None or loss is None:
            return False
        if not isinstance(loss, torch.Tensor):
            gradients = []  # a number cannot have been backpropagated
        elif _sum_is_finite([loss] + gradients):
            return False
        value = _number(loss)
        if value is None or (math.isfinite(value) and _first_non_finite(gradients) is None):
            return False
        term, details = self._diagnose(state, value, gradients)
        self._fail(state, phase, term, '; '.join(details))
        return True

    # -- explaining and stopping --
    def _diagnose(self, state: dict, loss: float, gradients: List[torch.Tensor]) -> Tuple[str, List[str]]:
        """``(term, details)``: which part of a step with a non-finite loss or gradient is to blame."""
        values = {name: _number(state.get(key)) for name, key, _ in _TERMS}
        labels = {name: label for name, _, label in _TERMS}
        bad = [name for name, value in values.items() if value is not None and not math.isfinite(value)]
        if math.isfinite(loss):
            gradient = _first_non_finite(gradients)
            return 'gradients', [f'the loss is finite ({_show(loss)}) but a gradient is not (first: '
                                 f'{_gradient_name(state.get(torchbearer.MODEL), gradient)})']
        details = [f'the loss is {_show(loss)}']
        if bad:
            term = ' and '.join(bad)
            details += [f'the {labels[name]} term is {_show(value)}' for name, value in values.items()
                        if value is not None and name in bad]
            details += [f'the {labels[name]} term is {_show(value)}' for name, value in values.items()
                        if value is not None and name not in bad]
        elif any(value is not None for value in values.values()):
            term = 'loss'
            # a divergence with store_as=None stores the reconstruction term but no KL: name the terms there are
            finite = [f'{labels[name]} ({_show(value)})' for name, value in values.items() if value is not None]
            details.append(f"the {' and '.join(finite)} term{'s are' if len(finite) > 1 else ' is'} finite, so the "
                           f"weighting (beta) or another callback's term is not")
        else:
            term = 'loss'
            details.append('no divergence callback stored its terms (state[RECON], state[KL])')
        return term, details + self._causes(state, logvar=term != 'recon')

    @staticmethod
    def _causes(state: dict, logvar: bool = True) -> List[str]:
        """What may explain a non-finite step: a runaway logvar, weights already broken."""
        causes = []
        value = state.get(LOGVAR)
        if logvar and isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel():
            value = value.detach()
            if not bool(torch.isfinite(value).all()):
                causes.append('logvar is not finite')
            elif float(value.max()) > 20:
                causes.append(f'logvar reached {_show(float(value.max()))}')
        broken = _non_finite_weights(state.get(torchbearer.MODEL))
        if broken:
            causes.append(f'the weights were already not finite ({broken[0]}): an earlier update diverged')
        return causes

    def _fail(self, state: dict, phase: str, term: str, what: str, batch: Any = ...,
              default_advice: str = _ADVICE) -> None:
        epoch = state.get(torchbearer.EPOCH)
        batch = state.get(torchbearer.BATCH) if batch is ... else batch
        where = f'epoch {epoch}' + (f', batch {batch}' if batch is not None else '') + f' ({phase}; counted from 0)'
        skipped = "; this step's update was skipped" if phase == 'training' and batch is not None else ''
        advice = default_advice if self.advice is None else self.advice
        self.stopped_at = {'phase': phase, 'epoch': epoch, 'batch': batch, 'term': term}
        self.message = (f'NaNGuard stopped training at {where}: {what}{skipped}; {_consequence(phase)}'
                        + (f'; {advice}' if advice else ''))
        state[torchbearer.STOP_TRAINING] = True
        if self.warn:
            warnings.warn(self.message, RuntimeWarning, stacklevel=2)
