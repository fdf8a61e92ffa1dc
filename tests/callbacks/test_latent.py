"""The latent pictures (LatentScatter, LatentManifold, KLPerDimension) checked by their pixels, the pictures of a
conditional VAE (one SampleSaver row per class, each input's label passed to the encoding pictures), and the docs'
latent-space example on the shared MNIST."""
import sys
import time

import numpy as np
import pytest
import torch
import torchbearer
from PIL import Image
from stand_ins import PAD, TAB10, ConstantPosterior, load_example, rgb
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset
from torchbearer import Trial

from torchbearer_vae import (
    LABEL,
    VAE,
    AutoEncoderDataset,
    CategoricalPrior,
    ConditionalVAE,
    GaussianMixture,
    Interpolation,
    KLPerDimension,
    LatentManifold,
    LatentScatter,
    LatentTraversal,
    ReconstructionSaver,
    SampleSaver,
    TensorLoader,
    kld_loss,
    load_batch_with_labels,
)


def read_png(path):
    return np.asarray(Image.open(path).convert('RGB'))


def count_colour(pixels, colour):
    return int((pixels == np.array(colour, dtype=np.uint8)).all(-1).sum())


def zero_loss(state):
    return state[torchbearer.Y_PRED].sum() * 0


def labelled(mnist, indices):
    return AutoEncoderDataset(Subset(mnist, list(indices)), keep_labels=True)


def run_trial(model, callbacks, train, val, epochs=1, lr=1e-3, criterion=None):
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=lr), criterion or nn.BCELoss(reduction='sum'),
                  metrics=['loss'], callbacks=callbacks, verbose=0)
    trial.with_generators(TensorLoader(train, 100, shuffle=True, seed=0), TensorLoader(val, 100))
    return trial.with_loader(load_batch_with_labels).run(epochs)


# -- a conditional VAE's pictures: its labels reach them --
def test_sample_saver_draws_one_row_per_class_with_the_same_noise_per_column(tmp_path):
    model = ConditionalVAE((1, 8, 8), num_classes=3, latent_dim=2, hidden_dim=16)
    saver = SampleSaver(folder=tmp_path, filename='samples.png', num_images=16, nrow=4, seed=5)
    grid = read_png(saver.save(model))[..., 0]
    assert grid.shape == (PAD + 3 * (8 + PAD), PAD + 4 * (8 + PAD))  # 3 classes x 4 columns
    noise = saver.noise(2)[:4]
    with torch.no_grad():
        for row in range(3):
            expected = model.eval().decode(noise, row).mul(255).add(0.5).clamp(0, 255).to(torch.uint8)
            for column in range(4):
                top, left = PAD + row * (8 + PAD), PAD + column * (8 + PAD)
                assert np.array_equal(grid[top:top + 8, left:left + 8], expected[column, 0].numpy())


def test_sample_saver_with_a_label_draws_that_class_only(tmp_path):
    model = ConditionalVAE((1, 8, 8), num_classes=3, latent_dim=2, hidden_dim=16)
    saver = SampleSaver(folder=tmp_path, filename='samples.png', num_images=6, nrow=3, seed=5, label=2)
    grid = read_png(saver.save(model))[..., 0]
    assert grid.shape == (PAD + 2 * (8 + PAD), PAD + 3 * (8 + PAD))  # 6 images of one class, 3 a row
    with torch.no_grad():
        expected = model.eval().decode(saver.noise(2), 2).mul(255).add(0.5).clamp(0, 255).to(torch.uint8)
        other = model.decode(saver.noise(2), 1).mul(255).add(0.5).clamp(0, 255).to(torch.uint8)
    assert not torch.equal(expected, other)  # the class shows in the pixels
    for index in range(6):
        top, left = PAD + (index // 3) * (8 + PAD), PAD + (index % 3) * (8 + PAD)
        assert np.array_equal(grid[top:top + 8, left:left + 8], expected[index, 0].numpy())


@pytest.mark.parametrize('model, label, error, match', [
    (VAE((1, 8, 8), hidden_dim=16, latent_dim=2), 0, ValueError, r'label=0\) draws one class of a conditional model'),
    (ConditionalVAE((1, 8, 8), num_classes=3, latent_dim=2, hidden_dim=16), 3, ValueError,
     r'the model has 3 classes, 0 to 2'),
])
def test_sample_saver_refuses_a_label_the_model_does_not_have(tmp_path, model, label, error, match):
    with pytest.raises(error, match=match):
        SampleSaver(folder=tmp_path, label=label).save(model)
    assert not list(tmp_path.iterdir())  # refused before anything is written
    with pytest.raises(ValueError, match='label must be an int >= 0, got -1'):
        SampleSaver(folder=tmp_path, label=-1)


def test_the_encoding_pictures_pass_each_input_its_label(mnist, tmp_path):
    model = ConditionalVAE(latent_dim=2, hidden_dim=32)
    callbacks = [kld_loss(), LatentTraversal(tmp_path, num_steps=3), Interpolation(tmp_path, num_pairs=1, num_steps=3),
                 ReconstructionSaver(tmp_path), LatentScatter(tmp_path), LatentManifold(tmp_path, label=4),
                 KLPerDimension(tmp_path)]
    run_trial(model, callbacks, labelled(mnist, range(500)), labelled(mnist, range(9000, 9200)))
    x, label = mnist[9000][0], mnist.targets[9000]
    with torch.no_grad():
        mu = model.eval().encode(x[None], label[None])[0]
        z = mu.repeat(3, 1)
        z[:, 0] = torch.tensor([-3.0, 0.0, 3.0])
        expected = model.decode(z, label).mul(255).add(0.5).clamp(0, 255).to(torch.uint8)
    traversal = read_png(tmp_path / 'traversal_0.png')[..., 0]
    for column in range(3):
        left = PAD + column * (28 + PAD)
        assert np.abs(traversal[PAD:PAD + 28, left:left + 28].astype(int) - expected[column, 0].numpy()).max() <= 1
    for name in ('interpolation', 'reconstruction', 'latent', 'manifold', 'kl_dims'):
        assert (tmp_path / f'{name}_0.png').exists()


# -- the pictures --
def test_latent_scatter_colours_each_label_present_and_no_other(mnist, tmp_path):
    chosen = [i for i in range(9000, 10000) if int(mnist.targets[i]) in (0, 3, 7)]
    run_trial(VAE(latent_dim=2, hidden_dim=32), [kld_loss(), LatentScatter(tmp_path, num_images=300)],
              labelled(mnist, range(200)), labelled(mnist, chosen))
    pixels = read_png(tmp_path / 'latent_0.png')
    present = {label: count_colour(pixels, rgb(TAB10[label])) for label in range(10)}
    assert all(present[label] > 20 for label in (0, 3, 7)), present
    assert all(present[label] == 0 for label in (1, 2, 4, 5, 6, 8, 9)), present


def test_latent_scatter_names_the_classes_in_its_legend_and_counts_epochs_as_told(mnist, tmp_path):
    chosen = [i for i in range(9000, 10000) if int(mnist.targets[i]) in (0, 3, 7)]
    names = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine']
    named = LatentScatter(tmp_path, num_images=300, class_names=names).number_epochs_from(1)
    indexed = LatentScatter(tmp_path, filename='indexed_{epoch}.png', num_images=300)
    run_trial(VAE(latent_dim=2, hidden_dim=32), [kld_loss(), named, indexed], labelled(mnist, range(200)),
              labelled(mnist, chosen))
    legend = named._axes.get_legend()  # the chart as drawn: its legend's words and title
    assert [text.get_text() for text in legend.get_texts()] == ['zero', 'three', 'seven']
    assert legend.get_title().get_text() == 'class' and named._axes.get_title() == 'posterior means, epoch 1'
    assert [text.get_text() for text in indexed._axes.get_legend().get_texts()] == ['0', '3', '7']
    assert indexed._axes.get_title() == 'posterior means, epoch 0'  # torchbearer's numbering, as in indexed_0.png
    assert (tmp_path / 'latent_1.png').exists() and (tmp_path / 'indexed_0.png').exists()
    with pytest.raises(TypeError, match='class_names must be a sequence of str'):
        LatentScatter(tmp_path, class_names='cat')


def test_latent_scatter_without_labels_is_grey_and_projects_a_larger_latent(mnist, tmp_path):
    data = AutoEncoderDataset(Subset(mnist, range(600)))
    trial = Trial(VAE(latent_dim=8), None, nn.BCELoss(reduction='sum'),
                  callbacks=[kld_loss(), LatentScatter(tmp_path, num_images=200)], verbose=0)
    trial.with_generators(val_generator=TensorLoader(data, 100)).run(1)
    pixels = read_png(tmp_path / 'latent_0.png')
    assert count_colour(pixels, (128, 128, 128)) > 50  # matplotlib's '0.5' grey
    assert all(count_colour(pixels, rgb(colour)) == 0 for colour in TAB10 if colour != '#7f7f7f')  # tab10's grey


class Known(nn.Module):
    """A stand-in VAE: mu puts the image's two values in latent dimensions ``dims``; decode shows two coordinates.

    A decoded (1, 4, 8) image's left half is sigmoid(z[dims[0]]), its right half sigmoid(z[dims[1]]).
    """

    def __init__(self, latent_dim=2, dims=(0, 1)):
        super().__init__()
        self.latent_dim, self.dims = latent_dim, dims
        self.weight = nn.Parameter(torch.zeros(()))

    def encode(self, x):
        mu = torch.zeros(x.shape[0], self.latent_dim)
        mu[:, self.dims[0]] = 3 * x[:, 0, 0, 0]  # the larger spread: the first principal direction
        mu[:, self.dims[1]] = x[:, 0, 0, 1]
        return mu, torch.zeros_like(mu)

    def decode(self, z):
        halves = torch.sigmoid(z[:, list(self.dims)]).view(-1, 1, 1, 2, 1).expand(-1, 1, 4, 2, 4)
        return halves.reshape(-1, 1, 4, 8)

    def forward(self, x, state=None):
        return x + self.weight


def manifold_of(model, tmp_path, num_steps=5):
    images = torch.zeros(64, 1, 4, 8)  # two uncorrelated values, zero mean: the principal directions are exact
    images[:, 0, 0, 0] = torch.tensor([-1.0, 1.0]).repeat(32)
    images[:, 0, 0, 1] = torch.tensor([-1.0, -1.0, 1.0, 1.0]).repeat(16)
    trial = Trial(model, None, zero_loss, callbacks=[LatentManifold(tmp_path, num_steps=num_steps, num_images=64)],
                  verbose=0)
    trial.with_generators(val_generator=DataLoader(TensorDataset(images, images), batch_size=16)).run(1)
    grid = read_png(tmp_path / 'manifold_0.png')[..., 0].astype(float)
    assert grid.shape == (PAD + num_steps * (4 + PAD), PAD + num_steps * (8 + PAD))
    tiles = [[grid[PAD + r * 6:PAD + r * 6 + 4, PAD + c * 10:PAD + c * 10 + 8] for c in range(num_steps)]
             for r in range(num_steps)]
    left = np.array([[tile[:, :4].mean() for tile in row] for row in tiles])
    right = np.array([[tile[:, 4:].mean() for tile in row] for row in tiles])
    return left, right


@pytest.mark.parametrize('latent_dim, dims', [(2, (0, 1)), (6, (4, 2))])
def test_latent_manifold_spans_the_two_directions_at_normal_quantiles(tmp_path, latent_dim, dims):
    left, right = manifold_of(Known(latent_dim, dims), tmp_path)
    quantiles = torch.distributions.Normal(0.0, 1.0).icdf((torch.arange(5) + 0.5) / 5)
    expected = torch.sigmoid(quantiles).mul(255).round().numpy()
    assert np.abs(left - expected[None, :]).max() <= 1  # the first direction grows left to right, in every row
    assert np.abs(right - expected[::-1, None]).max() <= 1  # the second grows upwards, in every column


@pytest.mark.parametrize('latent_dim, dims', [(2, (0, 1)), (6, (4, 2))])
def test_latent_manifold_with_a_prior_spans_its_principal_directions_around_its_mean(tmp_path, latent_dim, dims):
    # two components at +-1 along dims[0] (variance 3 each: 4 in all, a standard deviation of 2), both at 0.4 along
    # dims[1] (standard deviation 0.5), nearly nothing elsewhere
    means, variances = torch.zeros(2, latent_dim), torch.full((2, latent_dim), 1e-4)
    means[:, dims[0]], means[:, dims[1]] = torch.tensor([1.0, -1.0]), 0.4
    variances[:, dims[0]], variances[:, dims[1]] = 3.0, 0.25
    prior = GaussianMixture(torch.tensor([0.5, 0.5]), means, variances)
    trial = Trial(Known(latent_dim, dims), None, zero_loss, verbose=0,
                  callbacks=[LatentManifold(tmp_path, num_steps=5, num_images=0, prior=prior)])
    images = torch.rand(4, 1, 4, 8)
    trial.with_generators(val_generator=DataLoader(TensorDataset(images, images), batch_size=4)).run(1)
    grid = read_png(tmp_path / 'manifold_0.png')[..., 0].astype(float)
    tiles = [[grid[PAD + r * 6:PAD + r * 6 + 4, PAD + c * 10:PAD + c * 10 + 8] for c in range(5)] for r in range(5)]
    quantiles = torch.distributions.Normal(0.0, 1.0).icdf((torch.arange(5) + 0.5) / 5)
    left = np.array([[tile[:, :4].mean() for tile in row] for row in tiles])
    right = np.array([[tile[:, 4:].mean() for tile in row] for row in tiles])
    assert np.abs(left - torch.sigmoid(2 * quantiles).mul(255).round().numpy()[None, :]).max() <= 1
    assert np.abs(right - torch.sigmoid(0.4 + 0.5 * quantiles).mul(255).round().numpy()[::-1, None]).max() <= 1


def test_latent_manifold_refuses_a_prior_it_cannot_walk(tmp_path):
    codes = CategoricalPrior(torch.full((4, 3), 1 / 3), torch.rand(3, 2), (2, 2, 2))
    with pytest.raises(TypeError, match='walks two directions of a continuous latent: it takes a GaussianMixture'):
        LatentManifold(tmp_path, prior=codes)
    with pytest.raises(ValueError, match='at least 2 dimensions'):
        LatentManifold(tmp_path, prior=GaussianMixture(torch.ones(1), torch.zeros(1, 1), torch.ones(1, 1)))
    prior = GaussianMixture(torch.ones(1), torch.zeros(1, 3), torch.ones(1, 3))
    trial = Trial(Known(4, (0, 1)), None, zero_loss, callbacks=[LatentManifold(tmp_path, prior=prior)], verbose=0)
    with pytest.raises(ValueError, match='walks a prior of 3 values, but Known has latent_dim=4'):
        trial.with_generators(val_generator=DataLoader(TensorDataset(torch.rand(4, 1, 4, 8)), batch_size=4)).run(1)


def test_latent_manifold_refuses_a_larger_latent_without_inputs(tmp_path):
    trial = Trial(Known(4, (0, 1)), None, zero_loss, callbacks=[LatentManifold(tmp_path, num_images=0)], verbose=0)
    with pytest.raises(ValueError, match='needs a 2-D latent'):
        trial.with_generators(val_generator=DataLoader(TensorDataset(torch.rand(4, 1, 4, 8)), batch_size=4)).run(1)


def columns_of(pixels, colour):
    """The runs of columns holding ``colour``: (first, last, top row) of each bar."""
    mask = (pixels == np.array(colour, dtype=np.uint8)).all(-1)
    columns = np.flatnonzero(mask.any(0))
    runs = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1)
    return [(run[0], run[-1], int(np.flatnonzero(mask[:, run[len(run) // 2]])[0])) for run in runs if len(run)]


def test_kl_per_dimension_sorts_the_bars_and_draws_the_threshold_at_its_height(tmp_path):
    images = torch.rand(8, 1, 4, 4)
    trial = Trial(ConstantPosterior([0.25, 0.0, 16.0, 2.0]), None, zero_loss,  # KL per dimension 1/8, 0, 8, 1
                  callbacks=[KLPerDimension(tmp_path, threshold=0.01)], verbose=0)
    trial.with_generators(val_generator=DataLoader(TensorDataset(images, images), batch_size=4)).run(1)
    pixels = read_png(tmp_path / 'kl_dims_0.png')
    blue = columns_of(pixels, rgb(TAB10[0]))
    assert len(blue) == 3  # KL 8, 1, 1/8 above the threshold, in that order, left to right; KL 0 is grey
    assert blue[0][0] < blue[1][0] < blue[2][0] and blue[0][2] < blue[1][2] < blue[2][2]
    per_halving = (blue[2][2] - blue[0][2]) / 6  # a log axis: each halving of the KL is as many pixels lower
    assert abs((blue[1][2] - blue[0][2]) - 3 * per_halving) <= 1.5
    red = (pixels == np.array((255, 0, 0), dtype=np.uint8)).all(-1)
    line = np.flatnonzero(red.sum(1) > 50)  # the dashed line's rows
    expected = blue[1][2] + per_halving * np.log2(1 / 0.01)  # KL 1 -> 0.01: log2(100) halvings lower
    assert len(line) and abs(line.mean() - expected) <= 3
    grey = columns_of(pixels, (153, 153, 153))  # matplotlib's '0.6'
    assert any(first > blue[2][1] for first, _, _ in grey)  # the collapsed dimension, last


def test_kl_per_dimension_of_a_huge_latent_draws_its_largest_dimensions_and_says_how_many_are_left_out():
    # 100,000 dimensions, 150 of them above the threshold (KL 1 + j / 1000, logvar 0: mu = sqrt(2 KL)), at random places
    kl = torch.full((100_000,), 1e-4)
    places = torch.randperm(100_000, generator=torch.Generator().manual_seed(0))[:150]
    kl[places] = 1 + torch.arange(150) / 1000
    mu = (2 * kl).sqrt().expand(20, -1)
    started = time.perf_counter()
    pixels = drawn(KLPerDimension(None, max_dims=100), mu).permute(1, 2, 0).mul(255).round().to(torch.uint8).numpy()
    assert time.perf_counter() - started < 20  # every bar drawn: minutes and gigabytes
    assert len(columns_of(pixels, rgb(TAB10[0]))) == 100  # the 100 largest, all above the threshold: no grey bar
    assert all(last - first < 5 for first, last, _ in columns_of(pixels, (153, 153, 153)))  # grey text only
    # the same chart of 100 dimensions: as wide, and without the axis label's note of the 99,900 left out
    small = drawn(KLPerDimension(None, max_dims=100), mu[:, places[:100]])
    small = small.permute(1, 2, 0).mul(255).round().to(torch.uint8).numpy()
    assert small.shape == pixels.shape
    dark, dark_small = (pixels < 128).all(-1), (small < 128).all(-1)
    assert dark[-40:].sum() > dark_small[-40:].sum() + 100  # more text at the bottom: the note


def test_the_scatter_of_a_later_epoch_shows_that_epochs_points_and_classes_only(mnist, tmp_path):
    def of_digits(digits):
        return labelled(mnist, [i for i in range(9000, 10000) if int(mnist.targets[i]) in digits][:300])

    model, scatter = VAE(latent_dim=2, hidden_dim=32), LatentScatter(tmp_path, num_images=300)
    trial = Trial(model, torch.optim.Adam(model.parameters()), nn.BCELoss(reduction='sum'),
                  callbacks=[kld_loss(), scatter], verbose=0).with_loader(load_batch_with_labels)
    train = TensorLoader(labelled(mnist, range(200)), 100)
    trial.with_generators(train, TensorLoader(of_digits((0, 3, 8)), 100)).run(1)
    trial.with_generators(train, TensorLoader(of_digits((1, 5)), 100)).run(2)  # epoch 1, the same callback
    first, second = read_png(tmp_path / 'latent_0.png'), read_png(tmp_path / 'latent_1.png')
    for pixels, present in ((first, (0, 3, 8)), (second, (1, 5))):
        counts = {label: count_colour(pixels, rgb(TAB10[label])) for label in range(10)}
        assert all(counts[label] > 20 for label in present), counts
        # Neither the points nor the legend of the other epoch; 7's grey is also in the antialiased text.
        assert all(counts[label] == 0 for label in range(10) if label not in present + (7,)), counts


def encoded(mu):
    """A stand-in VAE whose posterior mean is ``mu`` (one row per input, the inputs being 0, 1, 2, ...), logvar 0."""
    class Fixed(nn.Module):
        def encode(self, x):
            means = mu[x.flatten(1)[:, 0].long()]
            return means, torch.zeros_like(means)

    return Fixed()


def drawn(chart, mu, labels=None, epoch=3):
    state = {torchbearer.X: torch.arange(len(mu)).float().view(-1, 1, 1, 1), torchbearer.EPOCH: epoch}
    if labels is not None:
        state[LABEL] = labels
    with torch.no_grad():
        return chart.draw(encoded(mu), state)


WIDE = torch.stack([torch.linspace(-1, 1, 200), 1e-4 * torch.linspace(-1, 1, 200) - 0.0123], 1)  # '-0.01225'


@pytest.mark.parametrize('chart', [lambda: LatentScatter(None), lambda: KLPerDimension(None)])
def test_a_chart_drawn_again_is_the_picture_a_new_chart_draws(chart):
    generator = torch.Generator().manual_seed(0)
    earlier = [(torch.randn(300, 5, generator=generator), torch.arange(300) % 10),
               (torch.randn(300, 5, generator=generator) * 1e3, None),  # unlabelled, other tick labels
               (WIDE, torch.arange(200) % 3),  # a 2-D latent; the scatter's wide tick labels need a wider margin
               (0.25 + 0.01 * torch.randn(300, 4, generator=generator), None)]  # KL within a decade: wide labels
    later = (torch.randn(300, 5, generator=generator) * torch.logspace(0, -1, 5), torch.arange(300) % 4 + 2)
    reused = chart()
    for mu, labels in earlier:
        drawn(reused, mu, labels)
    again, new = drawn(reused, *later), drawn(chart(), *later)
    assert again.shape == new.shape and torch.equal(again, new)  # nothing of the earlier drawings is left


@pytest.mark.parametrize('chart, mu', [(LatentScatter, WIDE), (KLPerDimension, torch.full((50, 4), 0.25))])
def test_wide_tick_labels_push_the_layout_instead_of_cutting_the_axis_label(chart, mu):
    pixels = drawn(chart(None), mu)
    dark = (pixels < 0.5).all(0)  # black text: the tick labels and the rotated axis label
    assert not dark[:, :3].any()  # nothing cut at the left edge
    frame = int((dark.sum(0) > dark.shape[0] // 2).nonzero()[0])  # the axes' left spine, a dark column
    inked = dark[:, :frame].any(0).tolist()
    runs = sum(1 for x in range(len(inked)) if inked[x] and (x == 0 or not inked[x - 1]))
    # Left of the frame: the rotated axis label, a gap, then the tick labels (however wide this matplotlib draws
    # them: a log axis within one decade has wide minor labels in newer releases, one narrow label in older ones)
    assert runs >= 2 and inked.index(True) < frame // 2


@pytest.mark.parametrize('chart', [LatentScatter, KLPerDimension])
def test_usual_charts_are_laid_out_once(chart, monkeypatch):
    # tight_layout and a second drawing are for unusually wide tick labels only: they doubled the KL chart's time
    from matplotlib.figure import Figure
    layouts = []
    monkeypatch.setattr(Figure, 'tight_layout', lambda self, *args, **kwargs: layouts.append(self))
    generator = torch.Generator().manual_seed(0)
    # the KL per dimension (logvar 0: mu^2 / 2) of a new model, within a decade (ticks labelled 4x10^-3, ...), and of
    # a trained one, over decades; and a scatter of large means
    for scales in (torch.linspace(0.09, 0.25, 20), torch.logspace(0.5, -2, 20), torch.full((20,), 30.0)):
        drawn(chart(None), torch.randn(500, 20, generator=generator) * scales, torch.arange(500) % 10)
    assert layouts == []


def test_the_smallest_scatter_is_drawn_too():
    assert drawn(LatentScatter(None, size=1), torch.randn(50, 3)).shape == (3, 100, 100)  # 1 inch at 100 dpi


def test_the_charts_say_how_to_install_matplotlib_when_they_are_made_before_any_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'matplotlib.figure', None)
    for chart in (KLPerDimension, LatentScatter):
        with pytest.raises(ImportError, match=f'{chart.__name__} draws with matplotlib: pip install matplotlib'):
            chart(tmp_path)
    LatentManifold(tmp_path)  # decoded images, tiled by torchvision: no matplotlib needed


@pytest.mark.parametrize('make, match', [
    (lambda: LatentScatter(num_images=1), 'num_images'),
    (lambda: LatentManifold(num_steps=1), 'num_steps'),
    (lambda: KLPerDimension(threshold=0), 'threshold'),
    (lambda: KLPerDimension(max_dims=0), 'max_dims'),
])
def test_bad_arguments_are_refused_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- the example script of the page "The latent space and conditional VAEs" --
@pytest.mark.slow
@pytest.mark.parametrize('conditional', [False, True])
def test_the_latent_space_example_draws_its_pictures_on_mnist(mnist_dir, tmp_path, conditional):
    model, history = load_example('latent_space').main(
        ['--data-dir', mnist_dir, '--limit', '2000', '--epochs', '2', '--results', str(tmp_path), '--verbose', '0']
        + (['--conditional'] if conditional else []))
    assert isinstance(model, ConditionalVAE) == conditional and history[1]['val_loss'] < history[0]['val_loss']
    scatter = read_png(tmp_path / 'latent_1.png')
    assert all(count_colour(scatter, rgb(colour)) > 0 for colour in TAB10)  # the ten digits of the validation set
    assert read_png(tmp_path / 'manifold_1.png').shape[:2] == (PAD + 15 * 30, PAD + 15 * 30)
    assert read_png(tmp_path / 'samples_1.png').shape[0] == PAD + (10 if conditional else 8) * 30  # rows
    assert (tmp_path / 'kl_dims_1.png').exists()
