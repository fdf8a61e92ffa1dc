"""A VQ-VAE on MNIST the torchbearer state way, then samples from a prior fitted to its codes.

The model stores its quantizer's terms in torchbearer's state, the criterion is the reconstruction
term, and ``commitment_loss`` adds the commitment term, as ``kld_loss`` adds a VAE's KL term. After
training, ``fit_latent_prior`` fits a categorical prior to the codes of the training images, and
``SampleSaver`` draws from it. Run it as it is::

    python vqvae.py                                       # downloads MNIST into ./data
    python vqvae.py --data-dir ../shared/data/mnist --epochs 5   # local IDX files (a few minutes on a CPU)

Reconstructions are written to ``results/reconstruction_{epoch}.png``, the samples to
``results/samples.png``.
"""
import argparse

import torch
from torch.utils.data import Subset
from torchbearer import Trial

from torchbearer_vae import (
    VQVAE,
    AutoEncoderDataset,
    IDXDataset,
    ReconstructionSaver,
    SampleSaver,
    TensorLoader,
    commitment_loss,
    fit_latent_prior,
    load_mnist,
    train_val_split,
)


def mnist_images(data_dir, limit=None):
    """MNIST ``(image, label)`` items: IDX files already in ``data_dir``, else downloaded there."""
    try:
        images = IDXDataset.from_folder(data_dir)
    except FileNotFoundError:
        images = load_mnist(data_dir, train=True)
    return images if limit is None else Subset(images, range(limit))


def make_trial(model, results='results'):
    """A VQ-VAE's Trial: the reconstruction term, the commitment term by its callback, the codebook's metrics."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Trial(model, optimizer, model.reconstruction_loss,
                 metrics=['loss', 'recon', 'commitment', 'perplexity', 'used_codes'],
                 callbacks=[commitment_loss(beta=0.25), ReconstructionSaver(folder=results)])


def sample_from_fitted_prior(model, train_set, results='results'):
    """Fit a prior to the codes of the training images, and decode 64 draws from it."""
    prior = fit_latent_prior(model, train_set)  # a VQ-VAE: each position's code frequencies
    return SampleSaver(folder=results, filename='samples.png', prior=prior).save(model)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default='data')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--limit', type=int, default=None)
    parser.add_argument('--results', default='results')
    parser.add_argument('--verbose', type=int, default=1)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    train_set, val_set = train_val_split(AutoEncoderDataset(mnist_images(args.data_dir, args.limit)),
                                         val_fraction=0.1, seed=1)
    model = VQVAE(input_shape=(1, 28, 28), num_codes=512, code_dim=64)
    trial = make_trial(model, args.results)
    trial.with_generators(TensorLoader(train_set, 128, shuffle=True, seed=0), TensorLoader(val_set, 128))
    history = trial.run(epochs=args.epochs, verbose=args.verbose)
    sample_from_fitted_prior(model, train_set, args.results)
    return history


if __name__ == '__main__':
    main()
