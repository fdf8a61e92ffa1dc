"""Picture callbacks: reconstructions, prior samples, latent traversals and interpolations, once per epoch.

Each writes one image per epoch (``{epoch}`` in its file name is torchbearer's 0-based epoch)
into ``folder``, atomically, from rank 0 only. A VAE trained the state way with all four::

    from torchbearer import Trial
    from torchbearer_vae import (VAE, Interpolation, LatentTraversal, ReconstructionSaver, SampleSaver,
                                 kld_loss)

    model = VAE()
    fixed = next(iter(val_loader))[0][:8]          # the same inputs every epoch
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3), torch.nn.BCELoss(reduction='sum'),
                  callbacks=[kld_loss(),
                             ReconstructionSaver(folder='results'),            # inputs above reconstructions
                             SampleSaver(folder='results'),                    # 64 draws from N(0, I), fixed noise
                             LatentTraversal(folder='results', inputs=fixed),  # one latent dimension per row
                             Interpolation(folder='results', inputs=fixed)])   # 4 pairs, 8 points per line
    trial.with_generators(train_loader, val_loader).run(10)

Each can also send its grid to TensorBoard (``.to_tensorboard()``, through torchbearer's imaging
handler; needs ``tensorboardX``) or to any torchbearer imaging handler (``.with_handler(...)``),
and draw outside a Trial with ``.save(model, ...)`` (e.g. from a checkpoint).

All four share one base class, :class:`~torchbearer_vae.picture_saver.PictureSaver`, which does
the checking, collecting, drawing and writing; a subclass only says what to draw.
"""

import math
import warnings
from typing import Callable, Optional, Sequence, Tuple

import torch
import torchbearer
from torchbearer.state import StateKey

from ._io import PathLike
from .picture_saver import (
    PictureSaver,
    _check_epoch,
    _check_inputs,
    _check_positive_int,
    _device,
    _drawing,
    _image_batch,
    _posterior_mean,
    _require,
)

__all__ = ['ReconstructionSaver', 'SampleSaver', 'LatentTraversal', 'Interpolation']


class ReconstructionSaver(PictureSaver):
    """Save, once per epoch, the first inputs above their reconstructions as one image.

    Works for any autoencoder: grey or colour images of any size, models that return the
    reconstruction flattened (``(B, C*H*W)``) or as the first element of a tuple (as in *the
    PyTorch way*, ``(recon, mu, logvar)``). The images are taken from the first batches of the
    chosen phase until ``num_images`` are collected (a short last batch is fine); nothing is
    copied on the other steps. The grid is made with :func:`torchvision.utils.make_grid` and
    written atomically, so a crash never leaves half a PNG.

    Args:
        folder (str or PathLike): Folder to write into; created when the first image is written.
        filename (str): File name template; ``{epoch}`` is replaced by torchbearer's
            (0-based) epoch number. The extension picks the format (``.png``, ``.jpg``, ...).
        num_images (int): How many inputs (and reconstructions) to show.
        on (str): ``'validation'`` (the default; needs validation data) or ``'training'``.
        input_key (StateKey): Where the inputs are in state.
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
        ValueError: for a bad argument, at construction.

    Example: ::

        >>> import torchbearer
        >>> from torchbearer_vae import ReconstructionSaver
        >>> saver = ReconstructionSaver(folder='results', num_images=8)
        >>> # Trial(model, optimizer, criterion, callbacks=[saver]).with_generators(train, val)
    """

    _default_name = 'reconstruction'

    def __init__(self, folder: PathLike = 'results', filename: str = 'reconstruction_{epoch}.png',
                 num_images: int = 8, on: str = 'validation', input_key: StateKey = torchbearer.X,
                 output_key: StateKey = torchbearer.Y_PRED, nrow: Optional[int] = None,
                 normalize: bool = False, image_shape: Optional[Sequence[int]] = None,
                 output_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        _check_positive_int('num_images', num_images)
        _check_positive_int('nrow', nrow, allow_none=True)
        super().__init__(folder, filename, on=on, input_key=input_key, normalize=normalize,
                         image_shape=image_shape, output_transform=output_transform)
        self.num_images, self.output_key, self.nrow = num_images, output_key, nrow or num_images
        self._needed = num_images

    def _keys(self):
        return (self.input_key, 'input_key'), (self.output_key, 'output_key')

    def _picture(self, model, collected):
        inputs, outputs = self._pair(*collected)
        return self._stack(inputs, self._transform(outputs))

    def _pair(self, inputs, outputs):
        """The inputs as ``(N, C, H, W)`` images and the outputs reshaped like them, or why they cannot be."""
        inputs = self._as_images(inputs, 'inputs')
        count, shape = inputs.shape[0], tuple(inputs.shape[1:])
        if outputs.shape[0] != count or outputs[0].numel() != math.prod(shape):
            raise ValueError(f'the model output of shape {tuple(outputs.shape)} cannot be reshaped to the input '
                             f'images of shape {(count,) + shape}; the reconstruction must have as many values '
                             f'per image as the input')
        return inputs, outputs.reshape(inputs.shape)

    def _stack(self, inputs, outputs):
        count = inputs.shape[0]
        nrow = min(self.nrow, count)
        # Pad each block to whole rows so the reconstructions always start on a new row.
        blank = (-count) % nrow
        if blank:
            padding = inputs.new_zeros((blank,) + tuple(inputs.shape[1:]))
            inputs, outputs = torch.cat([inputs, padding]), torch.cat([outputs, padding])
        return torch.cat([inputs, outputs]), nrow

    def write(self, inputs: torch.Tensor, outputs: torch.Tensor, epoch: int) -> str:
        """Write ``inputs`` above ``outputs`` as the file for ``epoch`` (all of them: ``num_images`` is not applied).

        Args:
            inputs (torch.Tensor): The input images, float, ``(N, C, H, W)`` (or flat, as in training;
                see ``image_shape``).
            outputs (torch.Tensor): Their reconstructions, float, as many values per image as the
                inputs; drawn as they are (``output_transform`` is not applied).
            epoch (int): Fills ``{epoch}`` in the file name.

        Returns:
            str: The path written.

        Raises:
            TypeError, ValueError: naming the argument that is not a batch of images that fits.
        """
        _check_epoch(epoch)
        inputs, outputs = _check_inputs(inputs, 1), _check_inputs(outputs, 1, 'outputs')
        return self._emit(*self._stack(*self._pair(inputs, outputs)), {torchbearer.EPOCH: epoch})

    def save(self, model: torch.nn.Module, inputs: torch.Tensor, epoch: int = 0) -> str:
        """Reconstruct ``inputs`` with ``model`` (eval mode) and write the grid, outside a Trial.

        Args:
            model (torch.nn.Module): An autoencoder; ``model(x)`` returns the reconstruction or
                a tuple whose first element it is.
            inputs (torch.Tensor): A batch of images; the first ``num_images`` are shown.
            epoch (int): Fills ``{epoch}`` in the file name.

        Returns:
            str: The path written.

        Example: ::

            >>> import torch
            >>> from torchbearer_vae import VAE, ReconstructionSaver
            >>> saver = ReconstructionSaver(folder='results', filename='recon.png')
            >>> # saver.save(VAE(), torch.rand(8, 1, 28, 28)) writes results/recon.png
        """
        inputs = _check_inputs(inputs, 1)[:self.num_images]
        with _drawing(model):
            outputs = _image_batch(model(inputs.to(_device(model))), f'the output of {type(model).__name__}')
        return self._save(model, [inputs, outputs.float().cpu()], epoch)


class SampleSaver(PictureSaver):
    """Save, once per epoch, images decoded from draws of the prior ``N(0, I)``, the same draws every epoch.

    The noise is drawn once from a generator seeded with ``seed`` (not from the global random
    state, which it leaves alone), so the pictures of successive epochs, and of a resumed run,
    show the same latent points and can be compared. It works with any model that has
    ``decode(z)`` and ``latent_dim`` (the noise is ``(num_images, latent_dim)``), or else
    ``sample(n)``, which is called with the random state seeded by ``seed``. The model is in eval
    mode under ``no_grad`` while drawing; the images are written at the end of each epoch.

    Args:
        folder (str or PathLike): Folder to write into.
        filename (str): File name template with ``{epoch}``.
        num_images (int): How many samples.
        nrow (int): Images per row of the grid.
        seed (int): Seed of the fixed noise.
        normalize (bool): Rescale the grid to ``[0, 1]`` by its min and max.
        image_shape (sequence of int or None): ``(C, H, W)``, when the decoder's output is flat
            and the model has no 3-d ``input_shape``.
        output_transform (callable or None): Applied to the decoded images, e.g. ``torch.sigmoid``
            for a decoder that outputs logits.

    Example: ::

        >>> from torchbearer_vae import SampleSaver
        >>> saver = SampleSaver(folder='results', num_images=64)  # results/samples_{epoch}.png
        >>> # Trial(model, optimizer, criterion, callbacks=[kld_loss(), saver])
    """

    _default_name = 'samples'

    def __init__(self, folder: PathLike = 'results', filename: str = 'samples_{epoch}.png', num_images: int = 64,
                 nrow: int = 8, seed: int = 0, normalize: bool = False, image_shape: Optional[Sequence[int]] = None,
                 output_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        _check_positive_int('num_images', num_images)
        _check_positive_int('nrow', nrow)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f'seed must be an int >= 0, got {seed!r}')
        super().__init__(folder, filename, normalize=normalize, image_shape=image_shape,
                         output_transform=output_transform)
        self.num_images, self.nrow, self.seed = num_images, nrow, seed
        self._noise: Optional[torch.Tensor] = None

    def _check_model(self, model):
        latent_dim = getattr(model, 'latent_dim', None)
        if callable(getattr(model, 'decode', None)) and latent_dim is not None:
            _check_positive_int('model.latent_dim', latent_dim)
        elif not callable(getattr(model, 'sample', None)):
            raise TypeError(f'SampleSaver needs a model with decode(z) and latent_dim, or sample(n), but '
                            f'{type(model).__name__} has neither')

    def noise(self, latent_dim: int) -> torch.Tensor:
        """The fixed latent points, ``(num_images, latent_dim)``, on the CPU.

        Args:
            latent_dim (int): Dimension of the prior.

        Returns:
            torch.Tensor: The same tensor for the same ``latent_dim`` and ``seed``.
        """
        if self._noise is None or self._noise.shape[1] != latent_dim:
            generator = torch.Generator().manual_seed(self.seed)
            self._noise = torch.randn(self.num_images, latent_dim, generator=generator)
        return self._noise

    def _picture(self, model, collected):
        device = _device(model)
        if callable(getattr(model, 'decode', None)) and getattr(model, 'latent_dim', None) is not None:
            return self._decode(model, self.noise(model.latent_dim).to(device)), self.nrow
        with torch.random.fork_rng(devices=[device] if device.type == 'cuda' else []):
            torch.manual_seed(self.seed)
            samples = model.sample(self.num_images)
        return self._as_images(self._transform(samples).float().cpu(), 'samples', model), self.nrow

    def save(self, model: torch.nn.Module, epoch: int = 0) -> str:
        """Draw and write the samples of ``model`` outside a Trial (e.g. from a checkpoint).

        Args:
            model (torch.nn.Module): A model with ``decode`` and ``latent_dim``, or ``sample``.
            epoch (int): Fills ``{epoch}`` in the file name.

        Returns:
            str: The path written.

        Example: ::

            >>> from torchbearer_vae import VAE, SampleSaver
            >>> saver = SampleSaver(folder='results', filename='samples.png', num_images=16, nrow=4)
            >>> # saver.save(VAE()) writes results/samples.png
        """
        return self._save(model, [], epoch)


class _FromInputs(PictureSaver):
    """A picture drawn from encoded inputs: fixed ones given at construction or the first of a phase."""

    _least = 1  # inputs without which there is no picture

    def __init__(self, folder, filename, needed: int, inputs, on, input_key, normalize, image_shape,
                 output_transform):
        super().__init__(folder, filename, on=on, input_key=input_key, normalize=normalize,
                         image_shape=image_shape, output_transform=output_transform)
        self.inputs = _check_inputs(inputs, needed, allow_none=True)
        if self.inputs is not None:
            self.inputs = self.inputs[:needed]
        self._needed = 0 if self.inputs is not None else needed

    def _check_model(self, model):
        _require(model, type(self).__name__, 'encode', 'decode')

    def _picture(self, model, collected):
        inputs = collected[0] if collected else self.inputs
        return self._from_inputs(model, inputs)

    def save(self, model: torch.nn.Module, inputs: Optional[torch.Tensor] = None, epoch: int = 0) -> str:
        """Draw and write the picture of ``model`` outside a Trial.

        Args:
            model (torch.nn.Module): A model with ``encode`` and ``decode``.
            inputs (torch.Tensor or None): A batch of images; default, the ``inputs`` given at
                construction.
            epoch (int): Fills ``{epoch}`` in the file name.

        Returns:
            str: The path written.
        """
        if inputs is None and self.inputs is None:
            raise ValueError(f'{type(self).__name__}.save needs inputs (none were given at construction)')
        inputs = self.inputs if inputs is None else _check_inputs(inputs, self._least)
        return self._save(model, [inputs], epoch)


class LatentTraversal(_FromInputs):
    """Save, once per epoch, a grid that varies one latent dimension at a time.

    The input is encoded and its posterior mean ``mu`` kept; row ``i`` of the grid decodes
    ``mu`` with dimension ``dims[i]`` replaced by each of ``num_steps`` values evenly spaced over
    ``value_range`` (in prior standard deviations, as the prior is ``N(0, I)``), left to right.
    The input is ``inputs[0]`` if given (recommended: the same image every epoch), otherwise the
    first image of the ``on`` phase (the same each epoch when validation data is not shuffled).
    Needs a model with ``encode(x) -> (mu, logvar)`` and ``decode(z)``.

    Args:
        folder (str or PathLike): Folder to write into.
        filename (str): File name template with ``{epoch}``.
        dims (sequence of int or None): Latent dimensions to vary, one row each; default, all.
        num_steps (int): Values per dimension (columns), at least 2.
        value_range (tuple of float): ``(low, high)`` of the values.
        inputs (torch.Tensor or None): A batch ``(N, ...)`` whose first image is used.
        on (str): ``'validation'`` or ``'training'``: where to take the input when ``inputs`` is None.
        input_key (StateKey): Where the inputs are in state.
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

    def __init__(self, folder: PathLike = 'results', filename: str = 'traversal_{epoch}.png',
                 dims: Optional[Sequence[int]] = None, num_steps: int = 9,
                 value_range: Tuple[float, float] = (-3.0, 3.0), inputs: Optional[torch.Tensor] = None,
                 on: str = 'validation', input_key: StateKey = torchbearer.X, normalize: bool = False,
                 image_shape: Optional[Sequence[int]] = None,
                 output_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        if dims is not None:
            dims = list(dims) if not isinstance(dims, (int, str)) else None
            if not dims or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims):
                raise ValueError(f'dims must be a non-empty sequence of latent dimension indices >= 0, got {dims!r}')
        _check_positive_int('num_steps', num_steps)
        if num_steps < 2:
            raise ValueError(f'num_steps must be >= 2 to span value_range, got {num_steps}')
        try:
            low, high = (float(v) for v in value_range)
        except (TypeError, ValueError):
            raise ValueError(f'value_range must be two numbers (low, high), got {value_range!r}') from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f'value_range must be finite with low < high, got {value_range!r}')
        super().__init__(folder, filename, 1, inputs, on, input_key, normalize, image_shape, output_transform)
        self.dims, self.num_steps, self.value_range = dims, num_steps, (low, high)

    def _check_model(self, model):
        super()._check_model(model)
        self._check_dims(getattr(model, 'latent_dim', None))

    def _check_dims(self, latent_dim):
        if self.dims is not None and latent_dim is not None and max(self.dims) >= latent_dim:
            raise ValueError(f'dims must be < the latent dimension {latent_dim}, got {self.dims}')

    def _from_inputs(self, model, inputs):
        mu = _posterior_mean(model, inputs[:1].to(_device(model)))
        self._check_dims(mu.shape[1])
        dims = self.dims if self.dims is not None else list(range(mu.shape[1]))
        values = torch.linspace(*self.value_range, self.num_steps, device=mu.device, dtype=mu.dtype)
        z = mu.repeat(len(dims) * self.num_steps, 1)
        for row, dim in enumerate(dims):
            z[row * self.num_steps:(row + 1) * self.num_steps, dim] = values
        return self._decode(model, z), self.num_steps


class Interpolation(_FromInputs):
    """Save, once per epoch, decodings along straight lines between the codes of pairs of inputs.

    Pair ``i`` is inputs ``2i`` and ``2i+1``; both are encoded to their posterior means ``a`` and
    ``b`` and row ``i`` shows input ``2i``, the decodings of ``a + t (b - a)`` for ``num_steps``
    values of ``t`` evenly spaced over ``[0, 1]``, then input ``2i+1``. The inputs are
    ``inputs`` if given (recommended: the same pairs every epoch), otherwise the first
    ``2 * num_pairs`` images of the ``on`` phase (fewer pairs if the phase has fewer images).
    Needs a model with ``encode(x) -> (mu, logvar)`` and ``decode(z)``.

    Args:
        folder (str or PathLike): Folder to write into.
        filename (str): File name template with ``{epoch}``.
        num_pairs (int): Pairs of inputs, one row each.
        num_steps (int): Decoded points per line, both ends included, at least 2.
        inputs (torch.Tensor or None): A batch of at least ``2 * num_pairs`` images.
        on (str): ``'validation'`` or ``'training'``: where to take the inputs when ``inputs`` is None.
        input_key (StateKey): Where the inputs are in state.
        normalize (bool): Rescale the grid to ``[0, 1]`` by its min and max.
        image_shape (sequence of int or None): ``(C, H, W)`` when inputs and decoder output are flat.
        output_transform (callable or None): Applied to the decoded images (not to the inputs).

    Example: ::

        >>> from torchbearer_vae import Interpolation
        >>> interpolation = Interpolation(folder='results', num_pairs=4, num_steps=8)
        >>> # Trial(model, optimizer, criterion, callbacks=[kld_loss(), interpolation])
    """

    _default_name = 'interpolation'
    _least = 2

    def __init__(self, folder: PathLike = 'results', filename: str = 'interpolation_{epoch}.png',
                 num_pairs: int = 4, num_steps: int = 8, inputs: Optional[torch.Tensor] = None,
                 on: str = 'validation', input_key: StateKey = torchbearer.X, normalize: bool = False,
                 image_shape: Optional[Sequence[int]] = None,
                 output_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        _check_positive_int('num_pairs', num_pairs)
        _check_positive_int('num_steps', num_steps)
        if num_steps < 2:
            raise ValueError(f'num_steps must be >= 2 (both ends of the line), got {num_steps}')
        super().__init__(folder, filename, 2 * num_pairs, inputs, on, input_key, normalize, image_shape,
                         output_transform)
        self.num_pairs, self.num_steps = num_pairs, num_steps

    def _from_inputs(self, model, inputs):
        pairs = min(self.num_pairs, inputs.shape[0] // 2)
        if pairs == 0:
            warnings.warn('Interpolation needs at least 2 inputs; it saw 1 and saved nothing', stacklevel=2)
            return None
        inputs = inputs[:2 * pairs]
        mu = _posterior_mean(model, inputs.to(_device(model)))
        start, end = mu[0::2], mu[1::2]
        t = torch.linspace(0, 1, self.num_steps, device=mu.device, dtype=mu.dtype).view(1, -1, 1)
        z = (start.unsqueeze(1) + t * (end - start).unsqueeze(1)).reshape(pairs * self.num_steps, -1)
        decoded = self._decode(model, z)
        shape = tuple(decoded.shape[1:])
        if inputs[0].numel() != math.prod(shape):
            raise ValueError(f'inputs of shape {tuple(inputs.shape)} cannot be shown beside decoded images of '
                             f'shape {shape}')
        ends = inputs.float().reshape((pairs, 2) + shape)
        rows = torch.cat([ends[:, :1], decoded.reshape((pairs, self.num_steps) + shape), ends[:, 1:]], dim=1)
        return rows.reshape((-1,) + shape), self.num_steps + 2
