"""See the latent space of a VAE on MNIST, and condition it on the digit: torchbearer_vae's latent pictures.

The labels travel with the images (``AutoEncoderDataset(..., keep_labels=True)``) and reach
``state[LABEL]`` at every step through ``trial.with_loader(load_batch_with_labels)``; the
criterion still compares each image with itself. Each epoch writes, into ``results``:

* ``latent_{epoch}.png``: the validation images' posterior means, coloured by digit;
* ``manifold_{epoch}.png``: the images decoded over a grid of two latent directions;
* ``kl_dims_{epoch}.png``: the KL of each latent dimension, largest first (posterior collapse);
* ``samples_{epoch}.png``: prior samples; with ``--conditional``, one row per digit.

Run it::

    python latent_space.py                                # downloads MNIST into ./data
    python latent_space.py --data-dir ../shared/data/mnist --epochs 10 --latent-dim 2 --conditional
"""
import argparse

import torch
from torch import nn
from torch.utils.data import Subset
from torchbearer import Trial

from torchbearer_vae import (
    VAE,
    AutoEncoderDataset,
    ConditionalVAE,
    IDXDataset,
    KLPerDimension,
    LatentManifold,
    LatentScatter,
    SampleSaver,
    TensorLoader,
    kld_loss,
    load_batch_with_labels,
    load_mnist,
    train_val_split,
)


def make_trial(model, train, val, results):
    """A Trial whose batches carry the labels, with the three latent pictures and the samples."""
    pictures = [LatentScatter(results), LatentManifold(results), KLPerDimension(results), SampleSaver(results)]
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3), nn.BCELoss(reduction='sum'),
                  metrics=['loss', 'kl'], callbacks=[kld_loss()] + pictures)
    trial.with_generators(TensorLoader(train, 128, shuffle=True, seed=1), TensorLoader(val, 128))
    return trial.with_loader(load_batch_with_labels)  # state[LABEL] at every step


def main(argv=None):
    args = parse_args(argv)
    data = AutoEncoderDataset(mnist_images(args.data_dir, args.limit), keep_labels=True)  # (x, x, label)
    train, val = train_val_split(data, val_fraction=0.1, seed=1)
    if args.conditional:
        model = ConditionalVAE(num_classes=10, latent_dim=args.latent_dim)
    else:
        model = VAE(latent_dim=args.latent_dim)
    history = make_trial(model, train, val, args.results).run(epochs=args.epochs, verbose=args.verbose)
    return model, history


def mnist_images(data_dir, limit=None):
    """MNIST ``(image, label)`` items: IDX files already in ``data_dir``, else downloaded there."""
    try:
        images = IDXDataset.from_folder(data_dir)
    except FileNotFoundError:
        images = load_mnist(data_dir, train=True)
    return images if limit is None else Subset(images, range(limit))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default='data', help='folder with MNIST IDX files, or where to download them')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--limit', type=int, default=None, help='use only the first LIMIT images (a quick run)')
    parser.add_argument('--latent-dim', type=int, default=2)
    parser.add_argument('--conditional', action='store_true', help='a ConditionalVAE, given the digit')
    parser.add_argument('--results', default='results', help='folder for the pictures')
    parser.add_argument('--verbose', type=int, default=2, help='0: silent, 1: a line per epoch, 2: progress bars')
    return parser.parse_args(argv)


if __name__ == '__main__':
    main()
