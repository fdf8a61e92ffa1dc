"""A picture of your own: how much each latent dimension of a VAE is used, as bars, once per epoch.

A picture callback is one :class:`~torchbearer_vae.PictureSaver` subclass with one method,
``draw(model, state)``, which returns an image. ``KLBars`` encodes the first validation
images (collected for it in ``state[self.key]``) and draws one bar per latent dimension, as tall
as that dimension's mean KL divergence from the prior: the dimensions the VAE uses stand tall,
collapsed ones stay flat. The base does the rest: collecting, eval mode, rank 0, the atomic PNG
per epoch, and torchbearer's builders (``.on_test()``, ``.to_tensorboard()``, ...). Run it::

    python custom_picture.py                              # downloads MNIST into ./data
    python custom_picture.py --data-dir ../shared/data/mnist --epochs 2 --limit 2000   # local IDX files

The bars are written to ``results/kl_{epoch}.png``.
"""
import argparse

import torch
from torch import nn
from torch.utils.data import Subset
from torchbearer import Trial

from torchbearer_vae import (
    VAE,
    AutoEncoderDataset,
    IDXDataset,
    PictureSaver,
    TensorLoader,
    kld_loss,
    load_mnist,
    train_val_split,
)


class KLBars(PictureSaver):
    """One bar per latent dimension: its mean KL divergence from the prior over the first validation images.

    The tallest bar fills the picture's ``height``; each bar is ``width`` pixels wide, with a
    one-pixel gap. Needs a model with ``encode(x) -> (mu, logvar)``.
    """

    def __init__(self, folder='results', filename='kl_{epoch}.png', *, num_images=512, height=64, width=8):
        super().__init__(folder, filename, num_images=num_images)  # collect num_images inputs each phase
        self.height, self.width = height, width

    def draw(self, model, state):
        inputs = state[self.key].to(next(model.parameters()).device)  # the collected (N, 1, 28, 28) CPU batch
        mu, logvar = model.encode(inputs)
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).mean(0)  # (latent_dim,), in nats per image
        bars = kl / kl.max().clamp_min(1e-12) * self.height
        rows = torch.arange(self.height, 0, -1, device=kl.device).view(-1, 1)  # each row's height, top first
        image = (rows <= bars.round().view(1, -1)).float()  # (height, latent_dim): 1 under each bar
        image = image.unsqueeze(-1).repeat(1, 1, self.width)
        image[..., -1] = 0  # the gap between bars
        return image.reshape(1, self.height, -1)  # a grey image (1, H, W) in [0, 1]


def mnist_images(data_dir, limit=None):
    """MNIST ``(image, label)`` items: IDX files already in ``data_dir``, else downloaded there."""
    try:
        images = IDXDataset.from_folder(data_dir)
    except FileNotFoundError:
        images = load_mnist(data_dir, train=True)
    return images if limit is None else Subset(images, range(limit))


def main(argv=None):
    args = parse_args(argv)
    train, val = train_val_split(AutoEncoderDataset(mnist_images(args.data_dir, args.limit)), val_fraction=0.1,
                                 seed=1)
    model = VAE(latent_dim=args.latent_dim)
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3), nn.BCELoss(reduction='sum'),
                  metrics=['loss', 'kl'], callbacks=[kld_loss(), KLBars(folder=args.results)])
    trial.with_generators(TensorLoader(train, 128, shuffle=True, seed=1), TensorLoader(val, 128))
    return trial.run(epochs=args.epochs, verbose=args.verbose)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default='data', help='folder with MNIST IDX files, or where to download them')
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--limit', type=int, default=None, help='use only the first LIMIT images (a quick run)')
    parser.add_argument('--latent-dim', type=int, default=20)
    parser.add_argument('--results', default='results', help='folder for the pictures')
    parser.add_argument('--verbose', type=int, default=2, help='0: silent, 1: a line per epoch, 2: progress bars')
    return parser.parse_args(argv)


if __name__ == '__main__':
    main()
