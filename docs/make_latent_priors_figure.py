"""Measure samples from N(0, I) against samples from a fitted latent prior, and draw them side by side.

    python docs/make_latent_priors_figure.py [--data-dir ../shared/data/mnist] [--epochs 10] [--seed 0]

It trains, on the 9,000 training images of the MNIST files in ``--data-dir`` (1,000 held out),
the reference :class:`~torchbearer_vae.VAE` (784-400-20) and a plain autoencoder of the same size
(the same layers, no ``logvar``, no KL), ``--epochs`` each, in a torchbearer ``Trial``. It then
fits :func:`~torchbearer_vae.fit_latent_prior` (10 full-covariance Gaussians) to each model's codes
of the training images, and draws 1,000 images from each model with N(0, I) and with the fitted
prior. An independent judge, a small MLP digit classifier trained on the training images,
turns each set of images into its 256 hidden features, and the Fréchet distance between the
features of a set and those of the 1,000 held-out images says how far the set is from real digits
(lower is better; the reconstructions of the held-out images give the floor). Printed as a table;
the samples are written to ``docs/_static/latent_priors.png`` (rows: VAE N(0, I), VAE fitted,
autoencoder N(0, I), autoencoder fitted).
"""
import argparse
import os

import torch
from torch import nn
from torchbearer import Trial
from torchvision.utils import save_image

from torchbearer_vae import (
    VAE,
    AutoEncoderDataset,
    IDXDataset,
    TensorLoader,
    fit_latent_prior,
    kld_loss,
    train_val_split,
)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, '..', '..', 'shared', 'data', 'mnist'))


class AutoEncoder(nn.Module):
    """A plain autoencoder the size of the reference VAE: 784-400-20-400-784, a Bernoulli decoder."""

    def __init__(self, latent_dim=20):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, 400), nn.ReLU(), nn.Linear(400, 784), nn.Sigmoid())

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z).reshape(len(z), 1, 28, 28)

    def forward(self, x):
        return self.decode(self.encode(x))


def judge(images, labels, epochs=10):
    """The judge: an MLP digit classifier (784-256-10) trained on ``images``; its 256 hidden units are the features."""
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


def frechet_distance(first, second):
    """The Fréchet distance between Gaussians fitted to two sets of features ``(N, F)``, in float64."""
    first, second = first.double(), second.double()
    mean = (first.mean(0) - second.mean(0)).pow(2).sum()
    cov1, cov2 = torch.cov(first.T), torch.cov(second.T)
    values, vectors = torch.linalg.eigh(cov1)
    root = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    cross = torch.linalg.eigvalsh(root @ cov2 @ root).clamp_min(0).sqrt().sum()
    return float(mean + torch.trace(cov1) + torch.trace(cov2) - 2 * cross)


def train(model, criterion, callbacks, train_set, val_set, epochs, seed):
    """``epochs`` of a Trial over TensorLoaders, as the tutorial trains."""
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3), criterion, metrics=['loss'],
                  callbacks=callbacks, verbose=0)
    trial.with_generators(TensorLoader(train_set, 128, shuffle=True, seed=seed), TensorLoader(val_set, 128))
    history = trial.run(epochs=epochs)
    return history[-1]['val_loss']


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default=DEFAULT_DATA, help='folder with MNIST IDX files')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--images', type=int, default=1000, help='generated images per set')
    parser.add_argument('--out', default=os.path.join(HERE, '_static', 'latent_priors.png'))
    args = parser.parse_args(argv)
    mnist = IDXDataset.from_folder(args.data_dir)
    train_set, val_set = train_val_split(AutoEncoderDataset(mnist), val_fraction=0.1, seed=1)
    images = mnist.data.unsqueeze(1).float().div(255)
    train_x, val_x = images[list(train_set.ids)], images[list(val_set.ids)]
    labels = torch.as_tensor(mnist.targets)[list(train_set.ids)]

    torch.manual_seed(args.seed)
    vae = VAE()
    vae_loss = train(vae, vae.reconstruction_loss, [kld_loss()], train_set, val_set, args.epochs, args.seed)
    torch.manual_seed(args.seed)
    autoencoder = AutoEncoder()
    ae_loss = train(autoencoder, nn.BCELoss(reduction='sum'), [], train_set, val_set, args.epochs, args.seed)
    print(f'trained {args.epochs} epochs: VAE validation loss {vae_loss / 128:.1f}, autoencoder {ae_loss / 128:.1f} '
          f'(nats per image, approximately: a batch of 128)')

    net = judge(train_x, labels)
    with torch.no_grad():
        accuracy = float((net(val_x).argmax(1) == torch.as_tensor(mnist.targets)[list(val_set.ids)]).float().mean())
    features = nn.Sequential(*list(net)[:3]).eval()
    print(f'judge: {accuracy:.1%} of the held-out digits classified correctly')

    sets, rows = {}, []
    for name, model in (('VAE', vae), ('autoencoder', autoencoder)):
        model.eval()
        prior = fit_latent_prior(model, train_x, components=10, generator=torch.Generator().manual_seed(args.seed))
        with torch.no_grad():
            normal = torch.randn(args.images, 20, generator=torch.Generator().manual_seed(args.seed))
            sets[f'{name}, N(0, I)'] = model.decode(normal)
            sets[f'{name}, fitted prior'] = model.decode(
                prior.sample(args.images, generator=torch.Generator().manual_seed(args.seed)))
        rows += [sets[f'{name}, N(0, I)'][:10], sets[f'{name}, fitted prior'][:10]]
    with torch.no_grad():
        sets['VAE reconstructions of the held-out images'] = vae.decode(vae.encode(val_x)[0])
        real = features(val_x)
        distances = {name: frechet_distance(features(generated), real) for name, generated in sets.items()}
    print('| images | Fréchet distance to the held-out digits (judge features) |')
    print('| --- | --- |')
    for name, distance in distances.items():
        print(f'| {name} | {distance:.1f} |')
    vae_ratio = distances['VAE, fitted prior'] / distances['VAE, N(0, I)']
    ae_ratio = distances['autoencoder, fitted prior'] / distances['VAE, N(0, I)']
    print(f'VAE fitted / VAE N(0, I) = {vae_ratio:.2f}; autoencoder fitted / VAE N(0, I) = {ae_ratio:.2f}')
    save_image(torch.cat(rows), args.out, nrow=10, pad_value=1.0)
    print(f'{os.path.relpath(args.out)}: rows VAE N(0, I), VAE fitted, autoencoder N(0, I), autoencoder fitted')
    return distances


if __name__ == '__main__':
    main()
