"""A plain autoencoder on MNIST with torchbearer_vae's pieces; with ``--noise``, a denoising one.

No KL and no state: the model returns the reconstruction and an ordinary criterion compares it
with the target. ``AutoEncoderDataset`` makes the ``(input, target)`` pairs, ``ReconstructionSaver``
draws them. Run it as it is::

    python autoencoder.py                                 # downloads MNIST into ./data
    python autoencoder.py --noise 0.5                     # denoising: noisy inputs, clean targets
    python autoencoder.py --data-dir ../shared/data/mnist --epochs 1 --limit 2000   # local IDX files

Reconstructions are written to ``results/reconstruction_{epoch}.png``.
"""
import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchbearer import Trial

from torchbearer_vae import AutoEncoderDataset, IDXDataset, ReconstructionSaver, load_mnist, train_val_split


class AutoEncoder(nn.Module):
    """784-256-32-256-784: a 32-number code, a sigmoid output in ``[0, 1]``."""

    def __init__(self, code_dim=32):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, code_dim))
        self.decoder = nn.Sequential(nn.Linear(code_dim, 256), nn.ReLU(), nn.Linear(256, 784), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x)).view(x.shape)


def mnist_images(data_dir, limit=None):
    """MNIST ``(image, label)`` items: IDX files already in ``data_dir``, else downloaded there."""
    try:
        images = IDXDataset.from_folder(data_dir)  # a local copy (its training split if it has one)
    except FileNotFoundError:
        images = load_mnist(data_dir, train=True)  # the 60,000 training images, downloaded by torchvision
    return images if limit is None else Subset(images, range(limit))


def gaussian_noise(sigma):
    """Adds N(0, sigma^2) noise to an image in [0, 1] and clips back (torchvision 0.19+: ``v2.GaussianNoise``)."""
    return lambda image: (image + sigma * torch.randn_like(image)).clamp(0, 1)


def make_loaders(images, noise=0.0, batch_size=128):
    """``(input, target)`` loaders; with ``noise`` > 0 the inputs are corrupted, the targets stay clean."""
    corrupt = gaussian_noise(noise) if noise > 0 else None
    data = AutoEncoderDataset(images, transform=corrupt)  # transform: the input only
    train, val = train_val_split(data, val_fraction=0.1, seed=1)
    return DataLoader(train, batch_size, shuffle=True), DataLoader(val, batch_size)


def make_trial(model, results='results'):
    """An autoencoder's Trial: a reconstruction criterion, and pictures of the validation batches."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Trial(model, optimizer, nn.BCELoss(), metrics=['loss'],
                 callbacks=[ReconstructionSaver(folder=results)])  # inputs (noisy or not) above outputs


def main(argv=None):
    args = parse_args(argv)
    train_loader, val_loader = make_loaders(mnist_images(args.data_dir, args.limit), args.noise, args.batch_size)
    trial = make_trial(AutoEncoder(), args.results).to(args.device)
    trial.with_generators(train_generator=train_loader, val_generator=val_loader)
    return trial.run(epochs=args.epochs, verbose=args.verbose)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default='data', help='folder with MNIST IDX files, or where to download them')
    parser.add_argument('--noise', type=float, default=0.0, help='std of the Gaussian noise added to the inputs')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--limit', type=int, default=None, help='use only the first LIMIT images (a quick run)')
    parser.add_argument('--results', default='results', help='folder for the reconstruction pictures')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--verbose', type=int, default=2, help='0: silent, 1: a line per epoch, 2: progress bars')
    return parser.parse_args(argv)


if __name__ == '__main__':
    main()
