"""Your own divergence with torchbearer_vae: an MMD term, as in InfoVAE and WAE, warmed up by a schedule.

``@divergence(MU, LOGVAR, ...)`` turns a function of state values into a loss callback: it adds
``beta * mmd(mu, logvar)`` to the loss in training and validation, stores the unweighted value
under its own state key for a metric, and counts the steps its schedule reads. Here it sits
beside the usual KL term (``kld_loss()``), as in InfoVAE. Run it::

    python custom_divergence.py --data-dir ../shared/data/mnist --epochs 5
"""
import argparse

import torch
import torchbearer
from torch.utils.data import Subset
from torchbearer import Trial

from torchbearer_vae import (
    LOGVAR,
    MU,
    VAE,
    AutoEncoderDataset,
    IDXDataset,
    KLMetric,
    TensorLoader,
    divergence,
    kld_loss,
    linear_warmup,
    train_val_split,
)

#: Where the MMD callback stores its unweighted value: a key of our own, created once.
MMD = torchbearer.state_key('mmd')


def gaussian_kernel(a, b):
    """``exp(-|a_i - b_j|^2 / dim)`` for every pair of rows: InfoVAE's kernel."""
    return torch.exp(-torch.cdist(a, b).pow(2) / a.shape[1])


def mmd(z, prior):
    """The (biased) squared maximum mean discrepancy between two samples, one row per point."""
    return (gaussian_kernel(z, z).mean() + gaussian_kernel(prior, prior).mean()
            - 2 * gaussian_kernel(z, prior).mean())


def mmd_term(weight=100.0, warmup_steps=200):
    """The loss callback: MMD between the batch's posterior draws and as many prior draws."""
    @divergence(MU, LOGVAR, beta=linear_warmup(num_steps=warmup_steps, max_beta=weight), store_as=MMD)
    def mmd_to_prior(mu, logvar):
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # draws of q(z|x), one per image
        return z.shape[0] * mmd(z, torch.randn_like(z))  # per batch, like the summed reconstruction term
    return mmd_to_prior


def make_trial(model, mmd_callback, verbose=0):
    """Reconstruction + KL + the scheduled MMD; the 'mmd' metric reads the value the callback stored."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    metrics = ['loss', 'recon', 'kl', KLMetric(key=MMD, name='mmd')]  # KLMetric shows any stored divergence
    return Trial(model, optimizer, model.reconstruction_loss, metrics=metrics,
                 callbacks=[kld_loss(), mmd_callback], verbose=verbose)


def main(argv=None):
    args = parse_args(argv)
    images = IDXDataset.from_folder(args.data_dir)
    if args.limit is not None:
        images = Subset(images, range(args.limit))
    train_set, val_set = train_val_split(AutoEncoderDataset(images), val_fraction=0.1, seed=1)
    torch.manual_seed(1)
    callback = mmd_term(args.weight, args.warmup_steps)
    trial = make_trial(VAE(latent_dim=args.latent_dim), callback, args.verbose)
    trial.with_generators(TensorLoader(train_set, 128, shuffle=True, seed=1), TensorLoader(val_set, 128))
    return trial.run(epochs=args.epochs), callback


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default='../shared/data/mnist', help='a folder with MNIST IDX files')
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--latent-dim', type=int, default=8)
    parser.add_argument('--weight', type=float, default=100.0, help='the MMD weight after the warm-up')
    parser.add_argument('--warmup-steps', type=int, default=200, help='training steps of the linear warm-up')
    parser.add_argument('--limit', type=int, default=None, help='use only the first N images')
    parser.add_argument('--verbose', type=int, default=2, help='0: silent, 1: a line per epoch, 2: progress bars')
    return parser.parse_args(argv)


if __name__ == '__main__':
    main()
