"""Tiny models with known outputs, shared by the test modules (import: `from stand_ins import ...`)."""
import importlib.util
import itertools
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import torch
from torch import nn

from torchbearer_vae import LOGVAR, MU

EXECUTABLE = shutil.which('torchbearer-vae', path=os.path.dirname(sys.executable))
COMMAND = [EXECUTABLE] if EXECUTABLE else [sys.executable, '-m', 'torchbearer_vae']
EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / 'docs' / 'examples'


def run_cli(*args, timeout=900, **kwargs):
    """``torchbearer-vae ARGS`` in a child process (the installed script, else ``python -m``), its output as text."""
    return subprocess.run(COMMAND + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs)


class FixedPosterior(nn.Module):
    """Stores the same posterior in state at every call (unless ``store=False``); outputs ``x * 0 + w``."""

    def __init__(self, mu, logvar, store=True):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.mu, self.logvar, self.store = mu, logvar, store

    def forward(self, x, state=None):
        if state is not None and self.store:
            state[MU], state[LOGVAR] = self.mu + self.weight, self.logvar
        return x * 0 + self.weight


class ConstantPosterior(nn.Module):
    """The same posterior for every input: means ``sqrt(squared_means)``, log-variances 0, so the KL of dimension d
    is ``squared_means[d] / 2``; outputs zeros."""

    def __init__(self, squared_means):
        super().__init__()
        self.mu = nn.Parameter(torch.tensor(squared_means).sqrt())

    def encode(self, x):
        mu = self.mu.expand(x.shape[0], -1)
        return mu, torch.zeros_like(mu)

    def forward(self, x, state=None):
        return x * 0 + self.mu.sum() * 0


class Scale(nn.Module):
    """A stand-in autoencoder with a known output, 0.5 * x: 'same' shape, 'flat', a 'tuple' or a 'wrong' size."""

    def __init__(self, output='same'):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(0.5))
        self.output = output

    def forward(self, x, state=None):
        recon = x * self.weight
        if self.output == 'flat':
            return recon.reshape(x.shape[0], -1)
        if self.output == 'tuple':
            return recon, torch.zeros(x.shape[0], 2), torch.zeros(x.shape[0], 2)
        if self.output == 'wrong':
            return recon.reshape(x.shape[0], -1)[:, :-1]
        return recon


class ProbeVAE(nn.Module):
    """A VAE whose pictures can be predicted pixel by pixel.

    Images are (1, 3, 3) in [0, 1]; encode reads the top row as the code, mu = 8 x - 4 (so in
    [-4, 4]); decode paints row r of the image with (z_r + 4) / 8, the same in every column, and records in
    ``modes`` whether it was called in training mode and with gradients.
    """

    latent_dim = 3

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(1.0))
        self.modes = []

    def encode(self, x):
        mu = x.reshape(x.shape[0], 9)[:, :3] * 8 - 4
        return mu * self.weight, torch.zeros_like(mu)

    def decode(self, z):
        self.modes.append((self.training, torch.is_grad_enabled()))
        return ((z + 4) / 8).reshape(-1, 1, 3, 1).expand(-1, 1, 3, 3)

    def forward(self, x, state=None):
        return self.decode(self.encode(x)[0])


def zero_loss(*tensors):  # torchbearer unpacks tuple outputs into the criterion's arguments
    return (tensors[0] * 0).sum()


def classifier(images, labels, epochs=10):
    """A small MLP digit classifier trained on ``(N, 1, 28, 28)`` images (about 95% on held-out MNIST digits).

    The judge of the conditional-sample quality tests: which digit does a sample look like?
    """
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(images))
        for start in range(0, len(images), 128):
            batch = order[start:start + 128]
            loss = nn.functional.cross_entropy(net(images[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return net.eval()


# -- what the loaders serve and the pictures write, compared exactly --
PAD = 2  # make_grid's padding


def batches(loader, first=None):
    """Every batch of ``loader`` (or its ``first`` ones only) as a tuple of tensors."""
    return [tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
            for batch in itertools.islice(loader, first)]


def assert_same_batches(expected, got):
    """The same batches, tensor for tensor: dtype, shape and every value."""
    assert len(expected) == len(got)
    for want, have in zip(expected, got):
        assert len(want) == len(have)
        for a, b in zip(want, have):
            assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


def read_png(path):
    """The pixels, channels last: (H, W, 1) for the grey PNGs grey images are saved as."""
    from PIL import Image

    image = Image.open(path)
    pixels = np.asarray(image)
    return pixels[..., None] if image.mode == 'L' else pixels


def tile(grid, row, column, height, width):
    """One image of a make_grid picture (channels last)."""
    top, left = PAD + row * (height + PAD), PAD + column * (width + PAD)
    return grid[top:top + height, left:left + width]


def as_pixels(images):
    """What save_image writes for images in [0, 1]: round(x * 255), channels last."""
    return images.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


# matplotlib's tab10 colours: LatentScatter's one colour per label
TAB10 = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf']


def rgb(hex_colour):
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def load_example(name):
    """The documentation's example script ``docs/examples/<name>.py``, imported as a module (its main not run)."""
    spec = importlib.util.spec_from_file_location(f'docs_example_{name}', EXAMPLES / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def edit_checkpoint(path, changes):
    """Rewrite the checkpoint at ``path`` with ``changes``: ``{key: value}``, a value of None deleting the key."""
    checkpoint = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            del checkpoint[key]
        else:
            checkpoint[key] = value
    torch.save(checkpoint, path)
