"""Picture callbacks: reconstructions, prior samples, latent traversals and interpolations, once per epoch.

Each writes one image per epoch (``{epoch}`` in its file name is torchbearer's 0-based epoch, or
counted from 1 after ``.number_epochs_from(1)``) into ``folder``, atomically, from rank 0 only.
A VAE trained the state way with all four::

    fixed = next(iter(val_loader))[0][:8]                  # the same inputs every epoch
    callbacks = [kld_loss(), ReconstructionSaver(folder='results'),  # inputs above reconstructions
                 SampleSaver(folder='results'),                    # 64 draws from N(0, I), fixed noise
                 LatentTraversal(folder='results', inputs=fixed),  # one latent dimension per row
                 Interpolation(folder='results', inputs=fixed)]    # 4 pairs, 8 points per line
    Trial(VAE(), optimizer, torch.nn.BCELoss(reduction='sum'), callbacks=callbacks).with_generators(
        train_loader, val_loader).run(10)

All four are :class:`~torchbearer_vae.PictureSaver` subclasses, so torchbearer
``ImagingCallback`` s: ``.on_train()``/``.on_val()``/``.on_test()`` choose the data,
``.to_tensorboard()``, ``.to_file(...)``, ``.to_state(...)`` or ``.with_handler(...)`` send the
grid elsewhere too, and ``.save(model, ...)`` draws outside a Trial (e.g. from a checkpoint).
"""

import warnings
from typing import Any, Callable, Iterable, Optional, Sequence, Tuple, Union

import torch
import torchbearer
from torchbearer.state import StateKey

from ..checks import check_int, check_range, describe
from ..distributed import unwrap_model
from ..files import PathLike
from ..model_utils import evaluating, is_conditional, model_device
from ..models.latent_prior import CategoricalPrior
from ..models.quantizer import VectorQuantizer
from ..priors import GaussianMixture
from ..state import LABEL
from .imaging import as_images, check_fits, check_grid_opens, check_inputs, image_batch, model_shape, tile
from .picture_saver import FromInputs, PictureSaver

__all__ = ['ReconstructionSaver', 'SampleSaver', 'LatentTraversal', 'Interpolation']

Transform = Optional[Callable[[torch.Tensor], torch.Tensor]]


class ReconstructionSaver(PictureSaver):
    """Save, once per epoch, the first inputs above their reconstructions as one image.

    Works for any autoencoder: grey or colour images of any size, models that return the
    reconstruction flattened (``(B, C*H*W)``) or as the first element of a tuple (as in *the
    PyTorch way*, ``(recon, mu, logvar)``). The images are taken from the first batches of the
    phase (validation by default; ``.on_train()``, ``.on_test()``) until ``num_images`` are
    collected (a short last batch is fine); nothing is copied on the other steps.

    Args:
        folder (str or PathLike or None): Folder to write into; created when the first image is written.
        filename (str): File name template; ``{epoch}`` is replaced by torchbearer's
            (0-based) epoch number (see :meth:`~PictureSaver.number_epochs_from`), padded by a
            format spec such as ``{epoch:03d}``. The extension picks the format (``.png``, ``.jpg``, ...).
        num_images (int): How many inputs (and reconstructions) to show.
        key (StateKey): Where the inputs are in state.
        output_key (StateKey): Where the model's output is in state.
        nrow (int or None): Images per row; default ``num_images``, so the inputs form the top row
            and the reconstructions the row below.
        normalize (bool): Rescale the grid to ``[0, 1]`` by its min and max (for outputs that
            are not already in ``[0, 1]``).
        image_shape (sequence of int or None): ``(C, H, W)`` of one image, needed only when the
            inputs are flattened and not square grey images (e.g. ``(3, 32, 32)``).
        output_transform (callable or None): Applied to the reconstructions before tiling, e.g.
            ``torch.sigmoid`` for a decoder that outputs logits.

    Raises:
        TypeError, ValueError: for a bad argument, at construction.

    Example: ::

        >>> import torchbearer
        >>> from torchbearer_vae import ReconstructionSaver
        >>> saver = ReconstructionSaver(folder='results', num_images=8)
        >>> test = ReconstructionSaver(folder='results', filename='test_{epoch}.png').on_test()
        >>> # Trial(model, optimizer, criterion, callbacks=[saver, test]).with_generators(train, val, test)
    """

    _default_name = 'reconstruction'

    def __init__(self, folder: Optional[PathLike] = 'results', filename: str = 'reconstruction_{epoch}.png', *,
                 num_images: int = 8, key: StateKey = torchbearer.X, output_key: StateKey = torchbearer.Y_PRED,
                 nrow: Optional[int] = None, normalize: bool = False, image_shape: Optional[Sequence[int]] = None,
                 output_transform: Transform = None):
        check_int('num_images', num_images, minimum=1)
        check_int('nrow', nrow, minimum=1, allow_none=True)
        super().__init__(folder, filename, key=key, num_images=num_images, nrow=nrow or num_images,
                         normalize=normalize, image_shape=image_shape, output_transform=output_transform)
        self.output_key = output_key
        self.collected_keys['output_key'] = output_key

    def draw(self, model: Any, state: dict) -> Optional[torch.Tensor]:
        """The inputs ``state[key]`` above the outputs ``state[output_key]`` (``output_transform`` applied)."""
        outputs = state[self.output_key] if model is None else self._transform(state[self.output_key])
        inputs, outputs = self._pair(state[self.key], outputs, model)
        count = inputs.shape[0]
        nrow = min(self.nrow, count)
        blank = (-count) % nrow  # pad each block to whole rows: the reconstructions start on a new row
        if blank:
            padding = inputs.new_zeros((blank,) + tuple(inputs.shape[1:]))
            inputs, outputs = torch.cat([inputs, padding]), torch.cat([outputs, padding])
        return tile(torch.cat([inputs, outputs]), nrow, self.normalize)

    def _pair(self, inputs: torch.Tensor, outputs: torch.Tensor, model: Any) -> Tuple[torch.Tensor, torch.Tensor]:
        """The inputs as ``(N, C, H, W)`` images and the outputs reshaped like them, or why they cannot be."""
        raw = tuple(inputs.shape[1:])
        inputs = as_images(inputs, 'inputs', type(self).__name__, self.image_shape, model)
        of = f'the input images of shape {tuple(inputs.shape)}'
        if outputs.shape[0] != inputs.shape[0]:
            raise ValueError(f'the model output of shape {tuple(outputs.shape)} has not one image per input: it '
                             f'does not fit {of}')
        if tuple(outputs.shape[1:]) != raw:  # the inputs' own layout, or the images' (flat included)
            check_fits(outputs, 'the model output', tuple(inputs.shape[1:]), of)
        return inputs, outputs.reshape(inputs.shape).float()

    def write(self, inputs: torch.Tensor, outputs: torch.Tensor, *, epoch: int) -> Optional[str]:
        """Write ``inputs`` above ``outputs`` as the picture of ``epoch`` (all of them: ``num_images`` is not applied).

        Args:
            inputs (torch.Tensor): The input images, float, ``(N, C, H, W)`` (or flat, as in training;
                see ``image_shape``).
            outputs (torch.Tensor): Their reconstructions, float, of the inputs' shape or flat;
                drawn as they are (``output_transform`` is not applied).
            epoch (int): Fills ``{epoch}`` in the file name.

        Returns:
            str or None: The path written (None when ``folder`` is None).

        Raises:
            TypeError, ValueError: naming the argument that is not a batch of images that fits.
        """
        inputs, outputs = check_inputs(inputs, 1), check_inputs(outputs, 1, 'outputs')
        return self._save(None, epoch, {'key': inputs, 'output_key': outputs})

    def save(self, model: torch.nn.Module, inputs: torch.Tensor, *, epoch: int = 0) -> Optional[str]:
        """Reconstruct ``inputs`` with ``model`` (eval mode) and write the grid, outside a Trial.

        Args:
            model (torch.nn.Module): An autoencoder; ``model(x)`` returns the reconstruction or
                a tuple whose first element it is.
            inputs (torch.Tensor): A batch of images; the first ``num_images`` are shown.
            epoch (int): Fills ``{epoch}`` in the file name.

        Returns:
            str or None: The path written (None when ``folder`` is None).

        Example: ::

            >>> import torch
            >>> from torchbearer_vae import VAE, ReconstructionSaver
            >>> saver = ReconstructionSaver(folder='results', filename='recon.png')
            >>> # saver.save(VAE(), torch.rand(8, 1, 28, 28)) writes results/recon.png
        """
        inputs = check_inputs(inputs, 1)[:self.num_images]
        as_images(inputs, 'inputs', type(self).__name__, self.image_shape, unwrap_model(model))  # before the model
        with evaluating(model):
            outputs = image_batch(model(inputs.to(model_device(model))), f'the output of {type(model).__name__}')
        return self._save(model, epoch, {'key': inputs, 'output_key': outputs.float().cpu()})


class SampleSaver(PictureSaver):
    """Save, once per epoch, images decoded from draws of the prior ``N(0, I)``, the same draws every epoch.

    The noise is drawn once from a generator seeded with ``seed`` (not from the global random
    state, which it leaves alone), so the pictures of successive epochs, and of a resumed run,
    show the same latent points and can be compared. It works with any model that has
    ``decode(z)`` and ``latent_dim`` (the noise is ``(num_images, latent_dim)``), or else
    ``sample(n)``, which is called with the random state seeded by ``seed``. It collects no
    inputs, so by default it draws at the end of each epoch's training phase (``evaluate`` never
    overwrites it); ``.on_val()`` or ``.on_test()`` draw at the end of those phases instead.

    For a conditional model (one with ``num_classes``, such as
    :class:`~torchbearer_vae.ConditionalVAE`, whose ``decode(z, labels)`` takes the labels) it draws
    one row per class, ``min(nrow, num_images)`` images each, with the same noise in each
    column: what changes down a column is the class, what changes along a row is the style.
    With ``label`` it draws ``num_images`` images of that one class instead.

    With ``prior`` (a prior fitted to the model's codes by :func:`~torchbearer_vae.fit_latent_prior`)
    the fixed draws come from that prior instead of ``N(0, I)``: a plain autoencoder or a VQ-VAE,
    which have no ``N(0, I)`` prior, then give samples, and a VAE's come from where its decoder was
    trained.

    Args:
        folder (str or PathLike or None): Folder to write into.
        filename (str): File name template with ``{epoch}``.
        num_images (int): How many samples (per class for a conditional model, at most ``nrow``); a
            grid larger than Pillow opens is refused, here or when the model's image size is known.
        nrow (int): Images per row of the grid.
        seed (int): Seed of the fixed noise.
        normalize (bool): Rescale the grid to ``[0, 1]`` by its min and max.
        image_shape (sequence of int or None): ``(C, H, W)``, when the decoder's output is flat
            and the model has no 3-d ``input_shape``.
        output_transform (callable or None): Applied to the decoded images, e.g. ``torch.sigmoid``
            for a decoder that outputs logits.
        label (int or None): For a conditional model, the one class to draw; refused at the start
            for a model without labels or without that class.
        prior (GaussianMixture or CategoricalPrior or None): Where the draws come from; None:
            ``N(0, I)``. Its draws must have the model's ``latent_dim`` (checked at the start).

    Example: ::

        >>> from torchbearer_vae import SampleSaver
        >>> saver = SampleSaver(folder='results', num_images=64)  # results/samples_{epoch}.png
        >>> # Trial(model, optimizer, criterion, callbacks=[kld_loss(), saver])
    """

    _default_name = 'samples'

    def __init__(self, folder: Optional[PathLike] = 'results', filename: str = 'samples_{epoch}.png', *,
                 num_images: int = 64, nrow: int = 8, seed: int = 0, normalize: bool = False,
                 image_shape: Optional[Sequence[int]] = None, output_transform: Transform = None,
                 label: Optional[int] = None, prior: Optional[Union[GaussianMixture, CategoricalPrior]] = None):
        check_int('num_images', num_images, minimum=1)
        check_int('seed', seed, minimum=0)
        self.label = check_int('label', label, minimum=0, allow_none=True)
        if prior is not None and not isinstance(prior, (GaussianMixture, CategoricalPrior)):
            raise TypeError(f'prior must be a GaussianMixture or a CategoricalPrior (fit_latent_prior gives one), '
                            f'got {describe(prior)}')
        self.prior = prior
        super().__init__(folder, filename, nrow=nrow, normalize=normalize, image_shape=image_shape,
                         output_transform=output_transform)
        self.num_images, self.seed = num_images, seed  # images drawn, none collected
        # images of one pixel at least, of image_shape once the model is known (on_start)
        check_grid_opens(num_images, self.nrow, self.image_shape or (1, 1, 1), type(self).__name__,
                         'pass a smaller num_images')
        self._noise: Optional[torch.Tensor] = None

    def on_start(self, state: dict) -> None:
        """Refuse, before the first step, a model with neither ``decode`` and ``latent_dim`` nor ``sample``."""
        super().on_start(state)
        model = unwrap_model(state[torchbearer.MODEL])
        latent_dim = getattr(model, 'latent_dim', None)
        if callable(getattr(model, 'decode', None)) and latent_dim is not None:
            check_int('model.latent_dim', latent_dim, minimum=1)
            if self.prior is None and VectorQuantizer.of(model) is not None:
                raise TypeError(f'SampleSaver draws from N(0, I) by default, but {type(model).__name__} has a codebook '
                                f'and no N(0, I) prior: after training, give it prior=fit_latent_prior(model, '
                                f'train_data)')
            if self.prior is not None and self.prior.dim != latent_dim:
                raise ValueError(f'SampleSaver(prior=...) draws codes of {self.prior.dim} values, but '
                                 f'{type(model).__name__} has latent_dim={latent_dim}: fit the prior to this model')
        elif self.prior is not None:
            raise TypeError(f'SampleSaver(prior=...) decodes its draws with decode(z) and latent_dim, but '
                            f'{type(model).__name__} lacks one of them')
        elif not callable(getattr(model, 'sample', None)):
            raise TypeError(f'SampleSaver needs a model with decode(z) and latent_dim, or sample(n), but '
                            f'{type(model).__name__} has neither')
        self._check_label(model)
        shape = self.image_shape or model_shape(model)
        if shape:
            columns = min(self.nrow, self.num_images)
            conditional = self.label is None and is_conditional(model) and latent_dim is not None
            check_grid_opens(columns * model.num_classes if conditional else self.num_images,
                             columns if conditional else self.nrow, shape, type(self).__name__,
                             'pass a smaller num_images')

    def _check_label(self, model: Any) -> None:
        if self.label is None:
            return
        if not is_conditional(model) or getattr(model, 'latent_dim', None) is None:
            raise ValueError(f'SampleSaver(label={self.label}) draws one class of a conditional model, but '
                             f'{type(model).__name__} takes no labels; leave label out')
        if self.label >= model.num_classes:
            raise ValueError(f'SampleSaver(label={self.label}): the model has {model.num_classes} classes, 0 to '
                             f'{model.num_classes - 1}')

    def noise(self, latent_dim: int) -> torch.Tensor:
        """The fixed latent points, ``(num_images, latent_dim)``, on the CPU.

        Args:
            latent_dim (int): Dimension of the prior.

        Returns:
            torch.Tensor: The same tensor for the same ``latent_dim`` and ``seed``.
        """
        if self._noise is None or self._noise.shape[1] != latent_dim:
            generator = torch.Generator().manual_seed(self.seed)
            self._noise = (torch.randn(self.num_images, latent_dim, generator=generator) if self.prior is None
                           else self.prior.sample(self.num_images, generator=generator).float().cpu())
        return self._noise

    def draw(self, model: Any, state: dict) -> Optional[torch.Tensor]:
        """The decoded fixed noise (or ``model.sample(num_images)`` under the seeded random state)."""
        device = model_device(model)
        if callable(getattr(model, 'decode', None)) and getattr(model, 'latent_dim', None) is not None:
            z = self.noise(model.latent_dim).to(device)
            if self.label is not None:
                labels = torch.full((z.shape[0],), self.label, dtype=torch.long, device=device)
                return self.decode_images(model, z, labels)
            if is_conditional(model):  # one row per class, the same noise in each column
                columns, classes = min(self.nrow, self.num_images), model.num_classes
                labels = torch.arange(classes, device=device).repeat_interleave(columns)
                return tile(self.decode_images(model, z[:columns].repeat(classes, 1), labels), columns, self.normalize)
            return self.decode_images(model, z)
        with torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
            torch.manual_seed(self.seed)
            samples = model.sample(self.num_images)
        return as_images(self._transform(samples).float().cpu(), 'samples', type(self).__name__, self.image_shape,
                         model)

    def save(self, model: torch.nn.Module, *, epoch: int = 0) -> Optional[str]:
        """Draw and write the samples of ``model`` outside a Trial (e.g. from a checkpoint).

        Args:
            model (torch.nn.Module): A model with ``decode`` and ``latent_dim``, or ``sample``.
            epoch (int): Fills ``{epoch}`` in the file name.

        Returns:
            str or None: The path written (None when ``folder`` is None).

        Example: ::

            >>> from torchbearer_vae import VAE, SampleSaver
            >>> saver = SampleSaver(folder='results', filename='samples.png', num_images=16, nrow=4)
            >>> # saver.save(VAE()) writes results/samples.png
        """
        return self._save(model, epoch, {})


class LatentTraversal(FromInputs):
    """Save, once per epoch, a grid that varies one latent dimension at a time.

    The input is encoded and its posterior mean ``mu`` kept; row ``i`` of the grid decodes
    ``mu`` with dimension ``dims[i]`` replaced by each of ``num_steps`` values evenly spaced over
    ``value_range`` (in prior standard deviations, as the prior is ``N(0, I)``), left to right.
    The input is ``inputs[0]`` if given (recommended: the same image every epoch; drawn at the end
    of each training phase by default), otherwise the first image of the phase (validation by
    default: the same each epoch when validation data is not shuffled). Needs a model with
    ``encode(x) -> (mu, logvar)`` and ``decode(z)``; a conditional model's
    (``encode(x, labels)``, ``decode(z, labels)``) gets the input's label, collected with it.

    Args:
        folder (str or PathLike or None): Folder to write into.
        filename (str): File name template with ``{epoch}``.
        dims (sequence of int or None): Latent dimensions to vary, one row each; default, all.
        num_steps (int): Values per dimension (columns), at least 2.
        value_range (tuple of float): ``(low, high)`` of the values.
        inputs (torch.Tensor or None): A batch ``(N, ...)`` whose first image is used.
        key (StateKey): Where the inputs are in state when ``inputs`` is None.
        normalize (bool): Rescale the grid to ``[0, 1]`` by its min and max.
        image_shape (sequence of int or None): ``(C, H, W)`` when the decoder's output is flat.
        output_transform (callable or None): Applied to the decoded images.

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import LatentTraversal
        >>> traversal = LatentTraversal(folder='results', dims=[0, 1, 2], num_steps=7, value_range=(-2.0, 2.0))
        >>> fixed = LatentTraversal(folder='results', inputs=torch.rand(1, 1, 28, 28))
    """

    _default_name = 'traversal'

    def __init__(self, folder: Optional[PathLike] = 'results', filename: str = 'traversal_{epoch}.png', *,
                 dims: Optional[Sequence[int]] = None, num_steps: int = 9,
                 value_range: Tuple[float, float] = (-3.0, 3.0), inputs: Optional[torch.Tensor] = None,
                 key: StateKey = torchbearer.X, normalize: bool = False, image_shape: Optional[Sequence[int]] = None,
                 output_transform: Transform = None):
        if dims is not None:
            if isinstance(dims, (str, bytes)) or not isinstance(dims, Iterable):
                raise TypeError(f'dims must be a sequence of latent dimension indices, got {type(dims).__name__}')
            dims = [check_int(f'dims[{i}]', d, minimum=0) for i, d in enumerate(dims)]
            if not dims:
                raise ValueError('dims must be a non-empty sequence of latent dimension indices, got none')
        check_int('num_steps', num_steps, minimum=2)
        value_range = check_range('value_range', value_range)
        super().__init__(folder, filename, key=key, num_images=1, inputs=inputs, nrow=num_steps, normalize=normalize,
                         image_shape=image_shape, output_transform=output_transform)
        self.dims, self.num_steps, self.value_range = dims, num_steps, value_range

    def on_start(self, state: dict) -> None:
        """Also refuse ``dims`` the model's ``latent_dim`` does not have."""
        super().on_start(state)
        self._check_dims(getattr(unwrap_model(state[torchbearer.MODEL]), 'latent_dim', None))

    def _check_dims(self, latent_dim: Optional[int]) -> None:
        if self.dims is not None and latent_dim is not None and max(self.dims) >= latent_dim:
            raise ValueError(f'dims must be < the latent dimension {latent_dim}, got {self.dims}')

    def draw(self, model: Any, state: dict) -> Optional[torch.Tensor]:
        """One row per dimension: ``mu`` of the first input with that dimension swept over ``value_range``."""
        label = state[LABEL][:1] if LABEL in state else None  # a conditional model's: the input's class throughout
        mu = self._encode(model, state[self.key][:1], label)
        self._check_dims(mu.shape[1])
        dims = self.dims if self.dims is not None else list(range(mu.shape[1]))
        values = torch.linspace(*self.value_range, self.num_steps, device=mu.device, dtype=mu.dtype)
        z = mu.repeat(len(dims) * self.num_steps, 1)
        for row, dim in enumerate(dims):
            z[row * self.num_steps:(row + 1) * self.num_steps, dim] = values
        return self.decode_images(model, z, None if label is None else label.expand(z.shape[0]))


class Interpolation(FromInputs):
    """Save, once per epoch, decodings along straight lines between the codes of pairs of inputs.

    Pair ``i`` is inputs ``2i`` and ``2i+1``; both are encoded to their posterior means ``a`` and
    ``b`` and row ``i`` shows input ``2i``, the decodings of ``a + t (b - a)`` for ``num_steps``
    values of ``t`` evenly spaced over ``[0, 1]``, then input ``2i+1``. The inputs are
    ``inputs`` if given (recommended: the same pairs every epoch; drawn at the end of each
    training phase by default), otherwise the first ``2 * num_pairs`` images of the phase
    (validation by default; fewer pairs if the phase has fewer images). Needs a model with
    ``encode(x) -> (mu, logvar)`` and ``decode(z)``. For a conditional model, with the labels
    collected from the batches, the class goes from one input's to the other's too, as weights
    of the two classes (``decode(z, weights)``).

    Args:
        folder (str or PathLike or None): Folder to write into.
        filename (str): File name template with ``{epoch}``.
        num_pairs (int): Pairs of inputs, one row each.
        num_steps (int): Decoded points per line, both ends included, at least 2.
        inputs (torch.Tensor or None): A batch of at least ``2 * num_pairs`` images.
        key (StateKey): Where the inputs are in state when ``inputs`` is None.
        normalize (bool): Rescale the grid to ``[0, 1]`` by its min and max.
        image_shape (sequence of int or None): ``(C, H, W)`` when inputs and decoder output are flat.
        output_transform (callable or None): Applied to the decoded images (not to the inputs).

    Example: ::

        >>> from torchbearer_vae import Interpolation
        >>> interpolation = Interpolation(folder='results', num_pairs=4, num_steps=8)
        >>> # Trial(model, optimizer, criterion, callbacks=[kld_loss(), interpolation])
    """

    _default_name = 'interpolation'

    def __init__(self, folder: Optional[PathLike] = 'results', filename: str = 'interpolation_{epoch}.png', *,
                 num_pairs: int = 4, num_steps: int = 8, inputs: Optional[torch.Tensor] = None,
                 key: StateKey = torchbearer.X, normalize: bool = False, image_shape: Optional[Sequence[int]] = None,
                 output_transform: Transform = None):
        check_int('num_pairs', num_pairs, minimum=1)
        check_int('num_steps', num_steps, minimum=2)
        super().__init__(folder, filename, key=key, num_images=2 * num_pairs, inputs=inputs, nrow=num_steps + 2,
                         normalize=normalize, image_shape=image_shape, output_transform=output_transform)
        self.num_pairs, self.num_steps = num_pairs, num_steps

    def draw(self, model: Any, state: dict) -> Optional[torch.Tensor]:
        """One row per pair: the first input, the decoded points of the line, the second input."""
        inputs = state[self.key]
        pairs = min(self.num_pairs, inputs.shape[0] // 2)
        if pairs == 0:
            warnings.warn('Interpolation needs at least 2 inputs; it saw 1 and saved nothing', stacklevel=2)
            return None
        inputs = inputs[:2 * pairs]
        labels = state[LABEL][:2 * pairs] if LABEL in state else None
        mu = self._encode(model, inputs, labels)
        t = torch.linspace(0, 1, self.num_steps, device=mu.device, dtype=mu.dtype).view(1, -1, 1)

        def line(ends: torch.Tensor) -> torch.Tensor:
            """``(2 * pairs, D)`` -> the points of each pair's line, ``(pairs * num_steps, D)``."""
            start, end = ends[0::2], ends[1::2]
            return (start.unsqueeze(1) + t * (end - start).unsqueeze(1)).reshape(pairs * self.num_steps, -1)

        weights = None  # a conditional model's class, from one input's to the other's as weights of the classes
        if labels is not None and is_conditional(model):
            weights = line(torch.nn.functional.one_hot(labels.long().to(mu.device), model.num_classes).to(mu.dtype))
        decoded = self.decode_images(model, line(mu), weights)
        shape = tuple(decoded.shape[1:])
        check_fits(inputs, 'inputs', shape, f'the decoded images of shape {shape}')
        ends = inputs.float().reshape((pairs, 2) + shape)
        rows = torch.cat([ends[:, :1], decoded.reshape((pairs, self.num_steps) + shape), ends[:, 1:]], dim=1)
        return rows.reshape((-1,) + shape)
