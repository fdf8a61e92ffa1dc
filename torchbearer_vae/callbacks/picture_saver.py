"""PictureSaver: the base of the picture callbacks, a torchbearer ``ImagingCallback`` that draws once per phase.

A picture is one subclass with one method, :meth:`PictureSaver.draw`, which returns an image.
The base does the rest, and its subclasses (:class:`~torchbearer_vae.ReconstructionSaver`,
:class:`~torchbearer_vae.SampleSaver`, :class:`~torchbearer_vae.LatentTraversal`,
:class:`~torchbearer_vae.Interpolation`) share it:

* *What*: the first ``num_images`` images of ``state[key]`` in a phase (fewer if the phase has
  fewer) are collected as one ``(N, ...)`` CPU batch, nothing being copied on the other steps;
  or the fixed ``inputs`` are used every time. ``draw`` reads them from ``state[key]``. When the
  batches carry class labels (``state[torchbearer_vae.LABEL]``, see
  :func:`~torchbearer_vae.load_batch_with_labels`), those of the collected inputs are collected
  with them and ``draw`` reads them from ``state[LABEL]``; otherwise (and for fixed ``inputs``
  without ``labels``) ``state[LABEL]`` is absent.
* *When*: once at the end of each phase the callback is on: ``.on_val()`` (validation data,
  checked with ``state[torchbearer.DATA]``, so ``trial.evaluate(data_key=torchbearer.TEST_DATA)``
  leaves validation pictures alone), ``.on_test()`` (test data, in ``evaluate``) and
  ``.on_train()``. The default is validation for a saver that collects inputs, and training
  (once per epoch, never in ``evaluate``) for one that collects none. ``evaluate`` runs as
  epoch 0: give a test-data saver its own ``filename``. A training phase stopped early
  (``STOP_TRAINING``, e.g. by :class:`~torchbearer_vae.NaNGuard`) draws nothing, so the files of
  the last complete epoch stay. ``draw`` runs on rank 0 only, with the
  model in eval mode under ``no_grad``; a batch it returns is tiled with
  :func:`torchvision.utils.make_grid`.
* *Where*: unless ``folder`` is None, each image is written atomically to ``folder/filename``
  with ``{epoch}`` filled in, a PNG (or the format of the extension) with the pixels
  ``save_image`` writes, grey as one channel; in a Trial in a background thread, waited for at
  ``on_end``, so the file is on disk when ``Trial.run`` returns. torchbearer's builders
  ``to_file``, ``to_pyplot``, ``to_state``, ``to_tensorboard``, ``to_visdom`` and
  ``with_handler`` add handlers, which receive the ``(3 or 4, H, W)`` image in ``[0, 1]`` (grey
  as three equal channels, as ``make_grid`` makes it), index 0 and the Trial's state.
"""
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, TypeVar

import torch
import torchbearer
from torchbearer.callbacks.imaging.imaging import ImagingCallback
from torchbearer.state import State, StateKey

from ..checks import (
    check_bool,
    check_callable,
    check_int,
    check_shape,
    describe,
)
from ..distributed import is_main_process, unwrap_model
from ..errors import MissingStateError
from ..files import PathLike
from ..model_utils import decoded, evaluating, model_device, posterior, require_methods
from ..state import LABEL
from .imaging import (
    ImageFiles,
    as_grid,
    as_images,
    check_fits,
    check_inputs,
    image_batch,
    model_shape,
)

__all__ = ['PictureSaver']

_Saver = TypeVar('_Saver', bound='_PhaseImages')


class _PhaseImages(ImagingCallback):
    """An ImagingCallback that processes once at the end of each phase it is on, from the first inputs of the phase.

    The phase machinery of :class:`PictureSaver`: which phases (``state[torchbearer.DATA]``), the
    first ``needed`` values of ``collected_keys`` of the phase copied to the CPU (nothing once it
    has them; none when ``needed`` is 0; an ``optional`` key only while it is in state), then
    ``process(state)`` on rank 0 with them in ``self._collected``.
    """

    def __init__(self, keys: Dict[str, StateKey], needed: int) -> None:
        super().__init__()
        self.collected_keys, self._needed = keys, needed
        self._optional: Set[str] = set()  # names of collected_keys gathered only when in state (the labels)
        self._phases: Tuple[Any, ...] = ()  # () until on_train/on_val/on_test choose: the default phase
        self._batches: Dict[str, List[torch.Tensor]] = {}
        self._collected: Dict[str, torch.Tensor] = {}
        self._active = self._validated = self._warned = False

    def on_start_epoch(self, state: dict) -> None:
        self._validated = False

    def on_start_training(self, state: dict) -> None:
        self._start(torchbearer.TRAIN_DATA)

    def on_step_training(self, state: dict) -> None:
        self._step(state)

    def on_end_training(self, state: dict) -> None:
        if state.get(torchbearer.STOP_TRAINING):  # a stopped epoch (NaNGuard...): the last complete one's files stay
            self._active = False
        else:
            self._end(state)

    def on_start_validation(self, state: dict) -> None:
        self._validated = self._validated or state[torchbearer.DATA] == torchbearer.VALIDATION_DATA
        self._start(state[torchbearer.DATA])

    def on_step_validation(self, state: dict) -> None:
        self._step(state)

    def on_end_validation(self, state: dict) -> None:
        self._end(state)

    def on_end_epoch(self, state: dict) -> None:
        if (self._needed and state.get(torchbearer.DATA) == torchbearer.VALIDATION_DATA and not self._validated
                and self._is_on(torchbearer.VALIDATION_DATA) and not self._warned and is_main_process()):
            self._warned = True
            warnings.warn(f'{type(self).__name__} saw no validation batch this epoch, so it saved nothing: give the '
                          f'Trial validation data (with_generators(val_generator=...)) or call .on_train()',
                          stacklevel=2)

    def _on(self: _Saver, data: Any) -> _Saver:
        self._phases += (data,)
        return self

    def _is_on(self, data: Any) -> bool:
        default = torchbearer.VALIDATION_DATA if self._needed else torchbearer.TRAIN_DATA
        return data in (self._phases or (default,))

    def _start(self, data: Any) -> None:
        self._active = self._is_on(data) and is_main_process()
        self._batches = {name: [] for name in self.collected_keys}

    def _step(self, state: dict) -> None:
        count = sum(batch.shape[0] for batch in self._batches.get('key', ()))
        if not self._active or count >= self._needed:
            return  # nothing is copied once the inputs are collected
        who = type(self).__name__
        for name, key in self.collected_keys.items():
            if key not in state and name in self._optional:
                continue
            if key not in state:
                raise MissingStateError(f'{who} needs state[{key!r}] ({name}) but it is not in state; pass the '
                                        f'{name} under which your data is stored')
            value = state[key]
            if name in self._optional:  # labels: one value per image, not images
                if not isinstance(value, torch.Tensor) or value.dim() == 0:
                    raise ValueError(f'{who}: state[{key!r}] ({name}) must be a tensor with one value per image, '
                                     f'got {describe(value)}')
                batch = value
            else:
                batch = image_batch(value, f'{who}: state[{key!r}] ({name})')
            self._batches[name].append(batch[:self._needed - count].detach().cpu())

    def _end(self, state: dict) -> None:
        if not self._active or (self._needed and not self._batches['key']):
            return
        self._active = False
        collected = {name: torch.cat(parts) for name, parts in self._batches.items() if parts}
        count = collected['key'].shape[0] if self._needed else 0
        collected = {name: batch for name, batch in collected.items() if batch.shape[0] == count}  # all or none
        self._send(state, collected)

    def _send(self, state: dict, collected: Dict[str, torch.Tensor]) -> None:
        self._collected, self._batches = collected, {}
        try:
            self.process(state)  # torchbearer's: on_batch, then every handler
        finally:
            self._collected = {}


class PictureSaver(_PhaseImages):
    """The base of the picture callbacks: subclass it and implement :meth:`draw`; the rest comes with it.

    See the module's description for what it collects, when it draws and where the image goes.

    Args:
        folder (str or PathLike or None): Folder to write into (created when needed); None writes no file.
        filename (str): File name template; ``{epoch}`` is replaced by torchbearer's 0-based epoch (from 1 after
            :meth:`number_epochs_from`); a format spec pads it, as in ``'mean_{epoch:03d}.png'``.
        key (StateKey): Where the inputs are in state (the first element of a tuple value).
        num_images (int): Inputs to collect each phase; 0 collects none.
        inputs (torch.Tensor or None): Fixed inputs to draw from instead, at least ``num_images``.
        nrow (int): Images per row when :meth:`draw` returns a batch.
        normalize (bool): Rescale a batch to ``[0, 1]`` by its min and max when tiling it.
        image_shape (sequence of int or None): ``(C, H, W)`` of one image, for subclasses that
            reshape flat outputs.
        output_transform (callable or None): For subclasses, applied to the model's images.

    Example: ::

        >>> import torchbearer
        >>> from torchbearer_vae import PictureSaver
        >>> class MeanImage(PictureSaver):
        ...     def draw(self, model, state):
        ...         return state[self.key].mean(0)  # the mean of the collected inputs, (C, H, W)
        >>> saver = MeanImage(folder='results', filename='mean_{epoch}.png', num_images=64)
        >>> saver = saver.on_val().to_state(torchbearer.state_key('mean_image'))
    """

    _default_name = 'picture'

    def __init__(self, folder: Optional[PathLike] = 'results', filename: str = 'picture_{epoch}.png', *,
                 key: StateKey = torchbearer.X, num_images: int = 0, inputs: Optional[torch.Tensor] = None,
                 nrow: int = 8, normalize: bool = False, image_shape: Optional[Sequence[int]] = None,
                 output_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> None:
        self.num_images = check_int('num_images', num_images, minimum=0)
        self.inputs = None if inputs is None else check_inputs(inputs, max(num_images, 1))[:max(num_images, 1)]
        super().__init__({'key': key}, 0 if inputs is not None else num_images)
        self.collected_keys['label'] = LABEL  # the labels of the collected inputs, when the batches carry them
        self._optional.add('label')
        self._files = None if folder is None else ImageFiles(folder, filename)
        self.folder, self.filename, self.key = folder, filename, key
        self.first_epoch = 0
        self.nrow = check_int('nrow', nrow, minimum=1)
        self.normalize = check_bool('normalize', normalize)
        self.image_shape = None if image_shape is None else check_shape(
            'image_shape', image_shape, ndim=3, example='(3, 32, 32): channels, height, width')
        self.output_transform = check_callable('output_transform', output_transform, allow_none=True,
                                               how='on a batch of images')
        if self._files is not None:
            self.with_handler(self._files)

    def draw(self, model: Any, state: dict) -> Optional[torch.Tensor]:
        """The picture, drawn at the end of each phase the callback is on: implement it in a subclass.

        Called on rank 0 only, with the model in eval mode under ``torch.no_grad()``.

        Args:
            model (torch.nn.Module or None): The Trial's model, unwrapped from ``DataParallel``/DDP.
            state (dict): A copy of the Trial's state in which ``state[self.key]`` is the
                collected ``(N, ...)`` CPU batch (or ``inputs``) when the callback collects inputs,
                and ``state[torchbearer.EPOCH]`` the epoch.

        Returns:
            torch.Tensor or None: A float image ``(C, H, W)`` or a batch ``(N, C, H, W)`` (tiled with
            ``make_grid``, ``nrow`` per row), 1, 3 or 4 channels in ``[0, 1]``; None for no picture.
        """
        raise NotImplementedError(f'{type(self).__name__} must implement draw(model, state) and return an image '
                                  f'(C, H, W) or a batch (N, C, H, W)')

    def file_for(self, epoch: int) -> Optional[str]:
        """The file this callback writes at ``epoch`` (``state[torchbearer.EPOCH]``), or None with ``folder=None``.

        Example: ::

            >>> from torchbearer_vae import SampleSaver
            >>> SampleSaver(folder='runs/x').file_for(4).replace('\\\\', '/')
            'runs/x/samples_4.png'
        """
        return None if self._files is None else self._files.path(epoch)

    # -- builders: which phases (torchbearer's names); the output builders are torchbearer's own --
    def on_train(self: _Saver) -> _Saver:
        """Draw from training batches, at the end of each training phase. Returns: self."""
        return self._on(torchbearer.TRAIN_DATA)

    def on_val(self: _Saver) -> _Saver:
        """Draw from validation batches (``state[torchbearer.DATA]`` is ``VALIDATION_DATA``). Returns: self."""
        return self._on(torchbearer.VALIDATION_DATA)

    def on_test(self: _Saver) -> _Saver:
        """Draw from test batches (``trial.evaluate(data_key=torchbearer.TEST_DATA)``). Returns: self."""
        return self._on(torchbearer.TEST_DATA)

    def number_epochs_from(self: _Saver, first: int) -> _Saver:
        """Number the epochs from ``first`` in the file names and the charts' titles. Returns: self.

        The default, 0, is torchbearer's ``state[torchbearer.EPOCH]``, as torchbearer's own ``to_file``
        names its files; 1 counts as people do (and the command line's log): the picture written after
        the first epoch is epoch 1.
        """
        self.first_epoch = check_int('first', first, minimum=0) or 0  # an int: None is refused
        if self._files is not None:
            self._files.first_epoch = self.first_epoch
        return self

    def epoch_number(self, state: dict) -> int:
        """The epoch of ``state`` as this picture numbers it (see :meth:`number_epochs_from`), for a chart's title."""
        return int(state[torchbearer.EPOCH]) + self.first_epoch

    def with_handler(self: _Saver, handler: Callable[..., Any], index: Optional[int] = None) -> _Saver:
        """torchbearer's ``with_handler``, checking now that ``handler`` can be called. Returns: self."""
        check_callable('handler', handler, how='as handler(image, index, state)')
        super().with_handler(handler, index=index)
        return self

    def to_tensorboard(self: _Saver, name: Optional[str] = None, log_dir: str = './logs', comment: str = 'torchbearer',
                       index: Optional[int] = None) -> _Saver:
        """torchbearer's ``to_tensorboard``, checking for ``tensorboardX`` now; ``name`` defaults to e.g. ``'samples'``.

        Raises:
            ImportError: if ``tensorboardX`` is not installed (``pip install tensorboardX``).
        """
        try:
            import tensorboardX  # noqa: F401  (torchbearer's TensorBoard writer)
        except ImportError:
            raise ImportError('to_tensorboard needs the tensorboardX package, which torchbearer uses to write '
                              'TensorBoard files: pip install tensorboardX') from None
        name = self._default_name if name is None else name
        if not isinstance(name, str):
            raise TypeError(f'name must be a str, got {type(name).__name__}')
        # torchbearer formats the name with {index}; other braces are the user's text.
        super().to_tensorboard(name.replace('{', '{{').replace('}', '}}'), log_dir, comment, index=index)
        return self

    def cache(self, num_images: int) -> None:
        """Not for picture callbacks, which collect their inputs themselves (``num_images``)."""
        raise TypeError(f'{type(self).__name__} collects its inputs itself: pass num_images= to the constructor')

    def make_grid(self, *args: Any, **kwargs: Any) -> None:
        """Not for picture callbacks, which tile a batch themselves (``nrow``, ``normalize``).

        torchbearer's builder would also pass ``range=`` to ``make_grid``, which torchvision no longer accepts.
        """
        raise TypeError(f'{type(self).__name__} tiles the batch draw returns itself: pass nrow= and normalize= to '
                        f'the constructor')

    # -- torchbearer hooks --
    def on_end(self, state: dict) -> None:
        if self._files is not None:
            self._files.wait(state)  # the last pictures are on disk when Trial.run returns

    def on_batch(self, state: dict) -> Optional[torch.Tensor]:
        """The image of :meth:`draw`, as handlers receive it (torchbearer's ``ImagingCallback`` hook)."""
        model = unwrap_model(state[torchbearer.MODEL]) if torchbearer.MODEL in state else None
        view = State()
        view.update(state)
        view.pop(LABEL, None)  # the last batch's labels are not those of the inputs drawn: only collected ones
        if self.inputs is not None:
            view[self.key] = self.inputs
        view.update({self.collected_keys[name]: batch for name, batch in self._collected.items()})
        if not self._needed and self.inputs is None:
            view.pop(self.key, None)  # nothing collected: the last batch of some phase is not this picture's inputs
        with evaluating(model):
            try:
                image = self.draw(model, view)
            except KeyError as error:
                if error.args and error.args[0] is self.key and self.key not in view:
                    raise MissingStateError(f'{type(self).__name__}.draw read state[{self.key!r}], but it collects no '
                                            f'inputs: pass num_images=N to PictureSaver.__init__ (how many of the '
                                            f"phase's images to collect) or inputs=") from None
                raise
        return None if image is None else as_grid(image, self.nrow, self.normalize, type(self).__name__)

    # -- for the subclasses --
    def _save(self, model: Any, epoch: int, collected: Dict[str, torch.Tensor]) -> Optional[str]:
        """Draw and send one picture outside a Trial; the file is on disk when it returns."""
        check_int('epoch', epoch, minimum=0)
        state = State()
        state.update({torchbearer.EPOCH: epoch, torchbearer.METRICS: {}})
        if model is not None:
            state[torchbearer.MODEL] = model
            self.on_start(state)  # the model checks a Trial makes when it starts
        self._send(state, collected)
        if self._files is None:
            return None
        self._files.wait(state)
        return self._files.path(epoch)

    def _transform(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs if self.output_transform is None else self.output_transform(outputs)

    def decode_images(self, model: Any, z: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The model's decoding of latent codes as the images of this picture, for :meth:`draw`.

        Args:
            model (torch.nn.Module): A model with ``decode(z)``; a conditional one (an int
                ``num_classes``) is given ``labels``.
            z (torch.Tensor): Latent codes ``(N, latent_dim)`` on the model's device.
            labels (torch.Tensor or None): The class of each code, for a conditional model.

        Returns:
            torch.Tensor: ``(N, C, H, W)`` float images on the CPU, ``output_transform`` applied,
            shaped by ``image_shape`` or the model's ``input_shape``.

        Raises:
            ValueError: for decoded images that cannot be shown as images (naming their shape).
        """
        images = image_batch(decoded(model, z, labels), 'model.decode(z)')
        return as_images(self._transform(images).float().cpu(), 'decoded images', type(self).__name__,
                         self.image_shape, model)


class FromInputs(PictureSaver):
    """A picture of encoded inputs: fixed ones given at construction or the first of a phase."""

    def on_start(self, state: dict) -> None:
        """Refuse, before the first step, a model without ``encode``/``decode`` or fixed inputs that do not fit it."""
        super().on_start(state)
        model = unwrap_model(state[torchbearer.MODEL])
        require_methods(model, type(self).__name__, 'encode', 'decode')
        if self.inputs is not None:
            self._check_fit(model, self.inputs)

    def save(self, model: torch.nn.Module, inputs: Optional[torch.Tensor] = None, *, epoch: int = 0,
             labels: Optional[torch.Tensor] = None) -> Optional[str]:
        """Draw and write the picture of ``model`` outside a Trial.

        Args:
            model (torch.nn.Module): A model with ``encode`` and ``decode``.
            inputs (torch.Tensor or None): A batch of images; default, the ``inputs`` given at
                construction.
            epoch (int): Fills ``{epoch}`` in the file name.
            labels (torch.Tensor or None): The class of each input ``(N,)``, for a conditional
                model (``state[LABEL]`` for :meth:`draw`).

        Returns:
            str or None: The path written (None when ``folder`` is None).
        """
        collected: Dict[str, torch.Tensor] = {}
        if inputs is not None:
            images = collected['key'] = check_inputs(inputs, min(self.num_images, 2))
        elif self.inputs is not None:
            images = self.inputs
        else:
            raise ValueError(f'{type(self).__name__}.save needs inputs (none were given at construction)')
        if labels is not None:
            if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.shape[0] != images.shape[0]:
                raise ValueError(f'labels must be a tensor (N,) with one class index per input, got '
                                 f'{describe(labels)}')
            collected['label'] = labels.detach().cpu()
        return self._save(model, epoch, collected)

    @staticmethod
    def _check_fit(model: Any, inputs: torch.Tensor) -> None:
        shape = model_shape(model)
        if shape:  # the whole image shape, so that channels-last images are refused by name
            check_fits(inputs, 'inputs', shape, f"the model's input_shape {shape}")

    def _encode(self, model: Any, inputs: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        self._check_fit(model, inputs)
        return posterior(model, inputs.to(model_device(model)), labels)[0]
