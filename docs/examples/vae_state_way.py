"""Train a variational auto-encoder on MNIST with torchbearer_vae, *the torchbearer state way*.

The model stores the posterior's ``mu`` and ``logvar`` in torchbearer's state and returns only
the reconstruction; the criterion is the reconstruction term alone and the ``kld_loss()``
callback adds the KL divergence, read from state. Run it as it is::

    python vae_state_way.py                               # downloads MNIST into ./data
    python vae_state_way.py --data-dir ../shared/data/mnist --epochs 1 --limit 2000   # local IDX files

Reconstructions are written to ``results/reconstruction_{epoch}.png``.
"""
import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset
from torchbearer import Trial

from torchbearer_vae import (
    LOGVAR,
    MU,
    VAE,
    AutoEncoderDataset,
    IDXDataset,
    ReconstructionSaver,
    TensorLoader,
    divergence,
    kld,
    kld_loss,
    load_mnist,
    train_val_split,
)


class MyVAE(nn.Module):
    """The PyTorch example's VAE, written for the torchbearer state way.

    torchbearer calls ``forward(x, state=state)``. ``mu`` and ``logvar`` go into state under the
    plugin's keys, where the KL callback finds them; only the reconstruction is returned, for
    the criterion to compare with the target.
    """

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

    def forward(self, x, state):
        mu, logvar = self.encode(x)
        state[MU], state[LOGVAR] = mu, logvar  # imported keys: never torchbearer.state_key('mu') again
        return self.decode(self.reparameterize(mu, logvar)).view(x.shape)


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


def beta_kl(beta):
    """A beta-VAE's KL term written with the ``divergence`` decorator (``kld_loss(beta=beta)`` does the same)."""
    @divergence(MU, LOGVAR, beta=beta)  # receives state[MU], state[LOGVAR]; adds beta * result to the loss
    def kl_to_prior(mu, logvar):
        return kld(mu, logvar, reduction='sum')

    return kl_to_prior


def make_trial(model, kl_callback, results='results'):
    """The Trial of the state way: a reconstruction criterion, plus the KL added by a callback."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Trial(model, optimizer, nn.BCELoss(reduction='sum'),
                 metrics=['loss', 'recon', 'kl'],  # the loss and its two terms (the plugin's metrics)
                 callbacks=[kl_callback, ReconstructionSaver(folder=results)])


def main(argv=None):
    args = parse_args(argv)
    train_loader, val_loader = make_loaders(mnist_images(args.data_dir, args.limit), args.batch_size)
    model = MyVAE() if args.own_model else VAE()
    kl_callback = kld_loss() if args.beta is None else beta_kl(args.beta)
    trial = make_trial(model, kl_callback, args.results).to(args.device)
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
    parser.add_argument('--beta', type=float, default=None, help='KL weight, with the beta_kl divergence')
    parser.add_argument('--verbose', type=int, default=2, help='0: silent, 1: a line per epoch, 2: progress bars')
    return parser.parse_args(argv)


if __name__ == '__main__':
    main()
