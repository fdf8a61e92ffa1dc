"""Train a variational auto-encoder on MNIST with torchbearer_vae, *the PyTorch way*.

The model returns ``(recon, mu, logvar)``, as in the PyTorch VAE example, and the criterion is
``vae_loss(recon, mu, logvar, target)``: torchbearer unpacks the tuple into the criterion's
arguments. No state, no loss callback. Run it as it is::

    python vae_pytorch_way.py                             # downloads MNIST into ./data
    python vae_pytorch_way.py --data-dir ../shared/data/mnist --epochs 1 --limit 2000   # local IDX files

Reconstructions are written to ``results/reconstruction_{epoch}.png``.
"""
import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset
from torchbearer import Trial

from torchbearer_vae import (
    VAE,
    AutoEncoderDataset,
    IDXDataset,
    ReconstructionSaver,
    TensorLoader,
    load_mnist,
    train_val_split,
    vae_loss,
)


class MyVAE(nn.Module):
    """The PyTorch example's VAE, unchanged: ``forward`` returns ``(recon, mu, logvar)``."""

    def __init__(self, latent_dim=20):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, latent_dim)
        self.fc22 = nn.Linear(400, latent_dim)
        self.fc3 = nn.Linear(latent_dim, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        hidden = F.relu(self.fc1(x.view(-1, 784)))
        return self.fc21(hidden), self.fc22(hidden)

    def reparameterize(self, mu, logvar):
        if not self.training:
            return mu
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)).view(x.shape), mu, logvar


def mnist_images(data_dir, limit=None):
    """MNIST ``(image, label)`` items: IDX files already in ``data_dir``, else downloaded there."""
    try:
        images = IDXDataset.from_folder(data_dir)  # a local copy (its training split if it has one)
    except FileNotFoundError:
        images = load_mnist(data_dir, train=True)  # the 60,000 training images, downloaded by torchvision
    return images if limit is None else Subset(images, range(limit))


def make_loaders(images, batch_size=128):
    """Training and validation loaders of ``(image, image)`` pairs."""
    data = AutoEncoderDataset(images)  # (image, label) -> (image, image): the target is the input
    train, val = train_val_split(data, val_fraction=0.1, seed=1)
    # TensorLoader: batches cut from the stored tensors at once (a DataLoader works too, item by item)
    return TensorLoader(train, batch_size, shuffle=True, seed=1), TensorLoader(val, batch_size)


def make_trial(model, results='results'):
    """The Trial of the PyTorch way: the whole loss in the criterion."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Trial(model, optimizer, vae_loss,  # called as vae_loss(recon, mu, logvar, target)
                 metrics=['loss'],
                 callbacks=[ReconstructionSaver(folder=results)])  # shows recon, the first of the tuple


def main(argv=None):
    args = parse_args(argv)
    train_loader, val_loader = make_loaders(mnist_images(args.data_dir, args.limit), args.batch_size)
    model = MyVAE() if args.own_model else VAE(use_state=False)  # use_state=False: return the tuple
    trial = make_trial(model, args.results).to(args.device)
    trial.with_generators(train_generator=train_loader, val_generator=val_loader)
    return trial.run(epochs=args.epochs, verbose=args.verbose)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default='data', help='folder with MNIST IDX files, or where to download them')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--limit', type=int, default=None, help='use only the first LIMIT images (a quick run)')
    parser.add_argument('--results', default='results', help='folder for the reconstruction pictures')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--own-model', action='store_true', help='train MyVAE instead of torchbearer_vae.VAE')
    parser.add_argument('--verbose', type=int, default=2, help='0: silent, 1: a line per epoch, 2: progress bars')
    return parser.parse_args(argv)


if __name__ == '__main__':
    main()
