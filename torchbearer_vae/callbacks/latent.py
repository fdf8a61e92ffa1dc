"""Pictures of the latent space: where the data lands, what each place decodes to, and which dimensions are used.

Three :class:`~torchbearer_vae.PictureSaver` subclasses, one PNG per epoch each, drawn from the
validation data by default (``.on_train()``/``.on_test()`` and torchbearer's output builders as
for every picture):

* :class:`LatentScatter`: the posterior means of the validation images in two dimensions,
  coloured by class when the batches carry labels (:func:`~torchbearer_vae.load_batch_with_labels`);
* :class:`LatentManifold`: the images decoded over a grid of two latent directions (Kingma and
  Welling, 2014, Fig. 4);
* :class:`KLPerDimension`: the mean KL divergence of each latent dimension, sorted, with a
  threshold: the posterior-collapse diagnostic.

For a latent of more than two dimensions, the two directions are the first two principal
components of the posterior means, computed with :func:`torch.linalg.svd`. The charts are drawn
with matplotlib (``pip install matplotlib``) on its Agg canvas, without pyplot; each chart makes
its figure at its first drawing and draws on it again at the next ones.
"""
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torchbearer
from torchbearer.state import StateKey

from ..checks import check_int, check_number, describe
from ..distributed import unwrap_model
from ..files import PathLike
from ..model_utils import is_conditional, model_device, posterior, require_methods
from ..priors import GaussianMixture
from ..state import LABEL
from .picture_saver import PictureSaver

if TYPE_CHECKING:  # matplotlib is imported when a chart is drawn: `import torchbearer_vae` stays light
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PathCollection
    from matplotlib.container import BarContainer
    from matplotlib.figure import Figure
    from matplotlib.text import Text

__all__ = ['LatentScatter', 'LatentManifold', 'KLPerDimension']

_CHUNK = 1024  # images encoded at once: the whole validation set would need its activations at once


def _require_matplotlib(who: str) -> None:
    """An ImportError with the install line unless matplotlib can be imported: at construction, before any training."""
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise ImportError(f'{who} draws with matplotlib: pip install matplotlib (or pip install '
                          f'"torchbearer-vae[plot]")') from None


# -- the figure of a chart, made once and drawn on again at each epoch --
# Making a figure, its axes and their ticks costs more than drawing them, and so does tight_layout, which measures
# every text: a chart keeps its figure and changes its artists, and the layout is these margins in inches (left,
# bottom, right, top), which fit the usual tick labels, axis labels and title. A logarithmic axis labels its ticks
# 10^k, and 4x10^-2 when the values lie within a decade, wider than the scatter's numbers: its chart has a wider
# left margin (with 0.8 its axis label fell outside, and such a drawing paid tight_layout and a second drawing).
_MARGINS = (0.8, 0.6, 0.2, 0.37)
_LOG_MARGINS = (1.0,) + _MARGINS[1:]


def _figure(who: str, size: Tuple[float, float]) -> 'Axes':
    """The axes of a new matplotlib Figure on an Agg canvas (no pyplot, no GUI backend), ``size`` inches at 100 dpi."""
    _require_matplotlib(who)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(figure)
    return figure.add_subplot()


def _pixels(axes: 'Axes', margins: Tuple[float, float, float, float] = _MARGINS) -> torch.Tensor:
    """The figure of ``axes``, laid out with ``margins`` (inches), as an RGB ``(3, H, W)`` float tensor in ``[0, 1]``.

    The same margins at every drawing, whatever the earlier ones needed, so that an epoch's picture
    depends on its data only. Unusually wide tick labels (many digits) push an axis label out of
    the figure: then ``tight_layout`` lays it out and it is drawn again.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure, canvas = axes.figure, axes.figure.canvas
    if not isinstance(figure, Figure) or not isinstance(canvas, FigureCanvasAgg):
        raise TypeError('_pixels draws the axes of _figure: a Figure of its own on an Agg canvas')
    width, height = figure.get_size_inches()
    left, bottom, right, top = (min(margin / side, 0.4) for margin, side in zip(margins, (width, height) * 2))
    figure.subplots_adjust(left=left, bottom=bottom, right=1 - right, top=1 - top)  # (tiny figures: some axes left)
    canvas.draw()
    if not _inside(figure, canvas, axes.xaxis.label, axes.yaxis.label, axes.title):
        figure.tight_layout()
        canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return torch.from_numpy(rgba[..., :3].copy()).permute(2, 0, 1).float().div_(255)


def _inside(figure: 'Figure', canvas: 'FigureCanvasAgg', *texts: 'Text') -> bool:
    """Whether the drawn ``texts`` lie within the figure (to a pixel)."""
    renderer = canvas.get_renderer()
    boxes = [text.get_window_extent(renderer) for text in texts if text.get_text()]
    return all(box.x0 >= -1 and box.y0 >= -1 and box.x1 <= figure.bbox.width + 1 and box.y1 <= figure.bbox.height + 1
               for box in boxes)


def _encode(model: Any, inputs: torch.Tensor, labels: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(mu, logvar)`` of the inputs on the CPU, encoded a chunk at a time."""
    require_methods(model, 'a latent picture', 'encode')
    device, means, logvars = model_device(model), [], []
    for start in range(0, inputs.shape[0], _CHUNK):
        x = inputs[start:start + _CHUNK].to(device)
        y = None if labels is None else labels[start:start + _CHUNK]
        mu, logvar = posterior(model, x, y)
        means.append(mu.float().cpu())
        logvars.append(logvar.float().cpu())
    return torch.cat(means), torch.cat(logvars)


def _principal_directions(mu: torch.Tensor) -> torch.Tensor:
    """The two unit directions ``(2, latent_dim)`` along which the posterior means vary most.

    The coordinate axes for a 2-D latent; else the first two right singular vectors of the
    centred means, each signed so that its largest component is positive (the same picture for
    the same model).
    """
    if mu.shape[1] <= 2:
        return torch.eye(mu.shape[1], 2).T if mu.shape[1] == 2 else torch.ones(1, 1)
    _, _, vh = torch.linalg.svd(mu - mu.mean(0), full_matrices=False)
    return _signed(vh[:2])


def _signed(directions: torch.Tensor) -> torch.Tensor:
    """``directions`` (one per row), each signed so that its largest component is positive."""
    signs = directions.gather(1, directions.abs().argmax(1, keepdim=True)).sign()
    return directions * signs


class LatentScatter(PictureSaver):
    """Save, once per epoch, the posterior means of the validation images as a scatter in two dimensions.

    The images collected (the first ``num_images`` of the phase) are encoded to their posterior
    means ``mu``; for ``latent_dim == 2`` the points are the two coordinates, otherwise their
    projections on the first two principal components (the axis labels say how much of the
    variance each holds). With labels in the batches (``state[torchbearer_vae.LABEL]``, see
    :func:`~torchbearer_vae.load_batch_with_labels`) each class has its colour and a legend entry,
    its name from ``class_names`` or else its index; without, the points are grey. Needs a model
    with ``encode(x) -> (mu, logvar)`` (a conditional one gets the labels).

    Args:
        folder (str or PathLike or None): Folder to write into.
        filename (str): File name template with ``{epoch}``.
        num_images (int): Validation images to encode and draw, >= 2.
        key (StateKey): Where the inputs are in state.
        size (float): Width and height of the chart, in inches at 100 pixels per inch.
        class_names (sequence of str or None): The name of each class index, for the legend (a folder's
            class subfolders, ``load_image_folder(...).classes``); None shows the indices.

    Raises:
        ImportError: when drawing without matplotlib, with the install command.

    Example: ::

        >>> from torchbearer_vae import LatentScatter, load_batch_with_labels
        >>> scatter = LatentScatter(folder='results', num_images=2000)  # results/latent_{epoch}.png
        >>> # Trial(model, ..., callbacks=[kld_loss(), scatter]).with_loader(load_batch_with_labels)
    """

    _default_name = 'latent'

    def __init__(self, folder: Optional[PathLike] = 'results', filename: str = 'latent_{epoch}.png', *,
                 num_images: int = 2000, key: StateKey = torchbearer.X, size: float = 5.0,
                 class_names: Optional[Sequence[str]] = None):
        check_int('num_images', num_images, minimum=2)
        self.size = check_number('size', size, minimum=1, maximum=40)
        if class_names is not None and (isinstance(class_names, str) or not all(
                isinstance(name, str) for name in class_names)):
            raise TypeError(f'class_names must be a sequence of str, one per class index, got {class_names!r}')
        self.class_names = None if class_names is None else list(class_names)
        super().__init__(folder, filename, key=key, num_images=num_images)
        _require_matplotlib(type(self).__name__)
        self._axes: Optional[Axes] = None  # made by the first draw, drawn on again: see _figure
        self._present: Optional[List[Optional[int]]] = None
        self._dots: Dict[Optional[int], PathCollection] = {}

    def draw(self, model: Any, state: dict) -> torch.Tensor:
        """The scatter of the collected images' posterior means, as an RGB image."""
        labels = state.get(LABEL)
        mu, _ = _encode(model, state[self.key], labels)
        directions = _principal_directions(mu)
        points = (mu - mu.mean(0)) @ directions.T if mu.shape[1] > 2 else mu
        if self._axes is None:
            self._axes = _figure(type(self).__name__, (self.size, self.size))
        axes = self._axes
        self._classes(axes, [None] if labels is None else labels.unique().tolist())
        for label, dots in self._dots.items():
            dots.set_offsets((points if label is None else points[labels == label]).numpy())
        axes.ignore_existing_data_limits = True  # the limits of this epoch's points only
        axes.update_datalim(points.numpy())
        axes.autoscale_view()
        if mu.shape[1] > 2:
            variance = points.var(0) / mu.var(0).sum().clamp_min(1e-12)
            axes.set_xlabel(f'principal component 1 ({variance[0]:.0%} of the variance)')
            axes.set_ylabel(f'principal component 2 ({variance[1]:.0%})')
        else:
            axes.set_xlabel('z[0]')
            axes.set_ylabel('z[1]')
        # y=1: the title's usual place, fixed; by default matplotlib measures the ticks above the axes to place it.
        axes.set_title(f'posterior means, epoch {self.epoch_number(state)}', y=1.0)
        return _pixels(axes)

    def _classes(self, axes: 'Axes', present: List[Optional[int]]) -> None:
        """A collection of points per class present, in order, and the legend; made again when the classes change.

        ``present`` is ``[None]`` for unlabelled points: one grey collection, no legend. One collection
        per class (not one with a colour per point) because matplotlib stamps a one-colour collection's
        marker, the same at every point, where it would shade each point by where it falls in its pixel.
        """
        if present == self._present:
            return
        for dots in self._dots.values():
            dots.remove()
        legend = axes.get_legend()
        if legend is not None:
            legend.remove()
        labels = [label for label in present if label is not None]
        if not labels:
            self._dots = {None: axes.scatter(np.zeros(0), np.zeros(0), s=4, color='0.5', linewidths=0)}
        else:
            colours = _colours(max(labels) + 1)
            self._dots = {label: axes.scatter(np.zeros(0), np.zeros(0), s=4, color=colours[label], linewidths=0,
                                              label=self._name(label)) for label in labels}
            axes.legend(markerscale=3, fontsize='small', loc='best',
                        title='label' if self.class_names is None else 'class')
        self._present = present

    def _name(self, label: int) -> str:
        """A class's legend entry: its name, else (no names, or none for this index) its index."""
        names = self.class_names
        return names[label] if names is not None and 0 <= label < len(names) else str(label)


def _colours(count: int) -> List[Tuple[float, float, float, float]]:
    """One colour per class: matplotlib's tab10 (tab20 for more classes, then a colour map)."""
    from matplotlib import colormaps

    if count <= 10:
        return [colormaps['tab10'](i) for i in range(count)]
    if count <= 20:
        return [colormaps['tab20'](i) for i in range(count)]
    return [colormaps['viridis'](i / (count - 1)) for i in range(count)]


class LatentManifold(PictureSaver):
    r"""Save, once per epoch, the images decoded over a grid of two latent directions (Kingma and Welling, 2014).

    The grid is ``num_steps`` by ``num_steps`` points ``z = a d_1 + b d_2``, with ``a`` (left to
    right) and ``b`` (bottom to top) the quantiles ``(i + 1/2) / num_steps`` of ``N(0, 1)``, so
    that the points are spread as the prior is (Kingma and Welling, "Auto-encoding variational
    Bayes", Fig. 4). ``d_1, d_2`` are the two coordinate axes for a 2-D latent; for a larger
    latent, the first two principal directions of the posterior means of the collected
    validation images (unit vectors, so the prior along each is ``N(0, 1)`` too; the other
    coordinates stay 0, the prior's mean). A conditional model decodes with the class ``label``.

    With ``prior`` (a :class:`~torchbearer_vae.GaussianMixture` fitted to the model's codes by
    :func:`~torchbearer_vae.fit_latent_prior`), the grid is spread as that prior is instead:
    ``z = m + a s_1 d_1 + b s_2 d_2`` around its mean ``m``, along the two principal directions of
    its covariance, ``s_1, s_2`` its standard deviations along them (see
    :meth:`~torchbearer_vae.GaussianMixture.moments`); no validation images are needed. A plain
    autoencoder, which has no ``N(0, I)``, gets its manifold this way.

    Args:
        folder (str or PathLike or None): Folder to write into.
        filename (str): File name template with ``{epoch}``.
        num_steps (int): Points per direction, >= 2.
        num_images (int): Validation images whose posterior means give the principal directions;
            0 for a 2-D latent, which needs none (then it draws at the end of each training phase).
        key (StateKey): Where the inputs are in state.
        label (int): The class a conditional model decodes with.
        prior (GaussianMixture or None): The prior the grid is spread as; None: ``N(0, I)``.

    Raises:
        TypeError: ``prior`` is not a GaussianMixture (a VQ-VAE's categorical prior has no
            continuous directions to walk).
        ValueError: ``prior`` has fewer than 2 dimensions.

    Example: ::

        >>> from torchbearer_vae import LatentManifold
        >>> manifold = LatentManifold(folder='results', num_steps=20)  # results/manifold_{epoch}.png
    """

    _default_name = 'manifold'

    def __init__(self, folder: Optional[PathLike] = 'results', filename: str = 'manifold_{epoch}.png', *,
                 num_steps: int = 15, num_images: int = 2000, key: StateKey = torchbearer.X, label: int = 0,
                 prior: Optional[GaussianMixture] = None):
        self.num_steps = check_int('num_steps', num_steps, minimum=2)
        self.label = check_int('label', label, minimum=0)
        if prior is not None and not isinstance(prior, GaussianMixture):
            raise TypeError(f'LatentManifold(prior=...) walks two directions of a continuous latent: it takes a '
                            f'GaussianMixture (fit_latent_prior of a VAE or an autoencoder), got {describe(prior)}; '
                            f'draw a VQ-VAE with SampleSaver(prior=...)')
        if prior is not None and prior.dim < 2:
            raise ValueError(f'LatentManifold(prior=...) needs a prior of at least 2 dimensions, got {prior.dim}')
        self.prior = prior
        super().__init__(folder, filename, key=key, num_images=check_int('num_images', num_images, minimum=0),
                         nrow=num_steps)

    def on_start(self, state: dict) -> None:
        """Refuse, before the first step, a model without ``decode``, or one with a larger latent and no inputs."""
        super().on_start(state)
        model = unwrap_model(state[torchbearer.MODEL])
        require_methods(model, type(self).__name__, 'decode')
        latent_dim = getattr(model, 'latent_dim', None)
        if self.prior is not None and latent_dim is not None and self.prior.dim != latent_dim:
            raise ValueError(f'LatentManifold(prior=...) walks a prior of {self.prior.dim} values, but '
                             f'{type(model).__name__} has latent_dim={latent_dim}: fit the prior to this model')
        if self.num_images == 0 and latent_dim is not None and latent_dim != 2 and self.prior is None:
            raise ValueError(f'LatentManifold(num_images=0) needs a 2-D latent; the model has latent_dim={latent_dim}: '
                             f'give num_images > 0 so that the principal directions can be found')

    def draw(self, model: Any, state: dict) -> torch.Tensor:
        """The decoded grid, ``num_steps`` per row, the second direction growing upwards."""
        centre: Union[torch.Tensor, float] = 0.0
        if self.prior is not None:  # its principal directions, each scaled by its standard deviation
            mean, covariance = self.prior.moments()
            values, vectors = torch.linalg.eigh(covariance.cpu())  # ascending
            directions = (_signed(vectors[:, [-1, -2]].T) * values[[-1, -2]].clamp(min=0).sqrt()[:, None]).float()
            centre = mean.cpu().float()
        elif self.key in state and self.num_images:
            mu, _ = _encode(model, state[self.key], state.get(LABEL))
            directions = _principal_directions(mu)
        else:
            directions = torch.eye(2)
        quantiles = torch.distributions.Normal(0.0, 1.0).icdf((torch.arange(self.num_steps) + 0.5) / self.num_steps)
        b, a = torch.meshgrid(quantiles.flip(0), quantiles, indexing='ij')  # top row: the largest b
        z = centre + a.reshape(-1, 1) * directions[0] + b.reshape(-1, 1) * directions[1]
        labels = None
        if is_conditional(model):
            if self.label >= model.num_classes:
                raise ValueError(f'label must be < num_classes={model.num_classes}, got {self.label}')
            labels = torch.full((z.shape[0],), self.label, dtype=torch.long)
        return self.decode_images(model, z.to(model_device(model)), labels)


class KLPerDimension(PictureSaver):
    r"""Save, once per epoch, the mean KL divergence of each latent dimension as bars, largest first.

    Over the collected validation images (the first ``num_images``), dimension ``j`` gets
    :math:`\frac{1}{N}\sum_n \frac{1}{2}(\mu_{nj}^2 + \sigma_{nj}^2 - 1 - \log \sigma_{nj}^2)` nats,
    its share of the KL term of the loss. The bars are sorted, labelled with their dimension's
    index, on a logarithmic axis, and a dashed line marks ``threshold``: the dimensions under it
    (grey) carry almost no information about the image, their posterior being the prior: they
    have collapsed. The title counts the dimensions above it. Only the ``max_dims`` largest are
    drawn (a chart of 100,000 bars would take gigabytes); the axis label says how many were left
    out. (The ``'active_units'`` metric,
    :class:`~torchbearer_vae.ActiveUnits`, counts by the variance of ``mu`` instead; a dimension's KL
    is at least half that variance.) Needs a model with ``encode(x) -> (mu, logvar)``.

    Args:
        folder (str or PathLike or None): Folder to write into.
        filename (str): File name template with ``{epoch}``.
        num_images (int): Validation images to average over, >= 1.
        threshold (float): KL in nats per image under which a dimension counts as collapsed, > 0.
        max_dims (int): The most dimensions drawn, those of largest KL, >= 1.
        key (StateKey): Where the inputs are in state.

    Example: ::

        >>> from torchbearer_vae import KLPerDimension
        >>> bars = KLPerDimension(folder='results', threshold=0.01)  # results/kl_dims_{epoch}.png
    """

    _default_name = 'kl_dims'

    def __init__(self, folder: Optional[PathLike] = 'results', filename: str = 'kl_dims_{epoch}.png', *,
                 num_images: int = 10000, threshold: float = 0.01, max_dims: int = 100,
                 key: StateKey = torchbearer.X):
        self.threshold = check_number('threshold', threshold, above=0)
        self.max_dims = check_int('max_dims', max_dims, minimum=1)
        super().__init__(folder, filename, key=key, num_images=check_int('num_images', num_images, minimum=1))
        _require_matplotlib(type(self).__name__)
        self._axes: Optional[Axes] = None  # made by the first draw, drawn on again: see _figure
        self._bars: Optional[BarContainer] = None

    def draw(self, model: Any, state: dict) -> torch.Tensor:
        """The sorted bars of the mean KL per dimension (the ``max_dims`` largest), and the threshold line."""
        mu, logvar = _encode(model, state[self.key], state.get(LABEL))
        kl = torch.zeros(mu.shape[1], dtype=torch.float64)
        for start in range(0, len(mu), 1024):  # in float64 a chunk at a time: a huge latent is not copied whole
            chunk_mu, chunk_logvar = mu[start:start + 1024].double(), logvar[start:start + 1024].double()
            kl += (0.5 * (chunk_mu ** 2 + chunk_logvar.exp() - 1 - chunk_logvar)).sum(0)
        kl /= max(1, len(mu))
        order = kl.argsort(descending=True)
        active = int((kl >= self.threshold).sum())
        order = order[:self.max_dims]
        drawn, left_out = len(order), len(kl) - len(order)
        values = kl[order].clamp_min(self.threshold * 1e-3)  # a log axis: a zero would be no bar at all
        if self._axes is None or self._bars is None or len(self._bars) != drawn:  # the first drawing, or another model
            self._axes = _figure(type(self).__name__, (max(5.5, 0.25 * drawn + 1.5), 3.5))
            self._bars = self._axes.bar(range(drawn), np.ones(drawn))
            self._axes.set_yscale('log')
            self._axes.axhline(self.threshold, color='red', linestyle='--', linewidth=1.5)
            self._axes.set_ylabel('mean KL (nats per image)')
        axes, bars = self._axes, self._bars
        for bar, value, above in zip(bars, values.tolist(), (kl[order] >= self.threshold).tolist()):
            bar.set_height(value)
            bar.set_facecolor('tab:blue' if above else '0.6')
        axes.set_xlabel('latent dimension' + (f' (the {drawn:,} of largest KL; {left_out:,} more not drawn)'
                                              if left_out else ''))
        axes.set_ylim(min(float(values.min()), self.threshold) / 2, max(float(values.max()), self.threshold) * 2)
        if drawn <= 64:
            axes.set_xticks(range(drawn), [str(i) for i in order.tolist()], fontsize='small')
        axes.set_title(f'{active} of {len(kl)} dimensions above {self.threshold:g} nats, '
                       f'epoch {self.epoch_number(state)}', y=1.0)  # y=1: see LatentScatter.draw
        return _pixels(axes, _LOG_MARGINS)
