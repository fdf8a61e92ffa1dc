"""Your own VAE with torchbearer_vae: a BaseVAE subclass trained, checkpointed, rebuilt and sampled.

The subclass writes only its two networks (``forward_encoder``, ``forward_decoder``) and its own
constructor arguments; the base records those arguments (``model.config``), so the checkpoint
can rebuild the model later with ``model_from_checkpoint(path, model_class=DeepVAE)``. Run it::

    python custom_vae.py --data-dir ../shared/data/mnist --epochs 5

It writes ``results/checkpoint.pt`` (every epoch), ``results/samples_{epoch}.png`` while training
and ``results/rebuilt_samples.png`` from the model rebuilt out of the checkpoint.
"""
import argparse
import os

import torch
from torch import nn
from torch.utils.data import Subset
from torchbearer import Trial

from torchbearer_vae import (
    AutoEncoderDataset,
    BaseVAE,
    Checkpointer,
    IDXDataset,
    SampleSaver,
    TensorLoader,
    kld_loss,
    model_from_checkpoint,
    train_val_split,
)


class DeepVAE(BaseVAE):
    """A VAE with two hidden layers and dropout: the networks are all a subclass writes."""

    def __init__(self, input_shape=(1, 28, 28), latent_dim=16, *, hidden=(512, 256), dropout=0.1):
        super().__init__(input_shape, latent_dim)  # also: likelihood=, sigma=, use_state=, logvar_clamp=
        first, second = hidden
        self.encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(self.input_dim, first), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(first, second), nn.ReLU(), nn.Linear(second, 2 * latent_dim))
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, second), nn.ReLU(), nn.Linear(second, first), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(first, self.input_dim))

    def forward_encoder(self, x):
        """``(mu, logvar)`` of a batch ``(B, 1, 28, 28)``: the encoder's output cut in two."""
        return self.encoder(x).chunk(2, dim=1)

    def forward_decoder(self, z):
        """Logits of the 784 pixels; the base's ``decode`` applies the sigmoid."""
        return self.decoder(z)


def train(model, train_set, val_set, epochs, results, verbose=0):
    """Train the state way, with a checkpoint and a picture of samples after every epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    trial = Trial(model, optimizer, model.reconstruction_loss, metrics=['loss', 'recon', 'kl'],
                  callbacks=[kld_loss(),
                             Checkpointer(os.path.join(results, 'checkpoint.pt')),
                             SampleSaver(folder=results, num_images=64)], verbose=verbose)
    trial.with_generators(TensorLoader(train_set, 128, shuffle=True, seed=1), TensorLoader(val_set, 128))
    return trial.run(epochs=epochs)


def rebuild_and_sample(results):
    """The model back from its checkpoint (configuration and weights), and 64 samples from it."""
    model = model_from_checkpoint(os.path.join(results, 'checkpoint.pt'), model_class=DeepVAE)
    path = SampleSaver(folder=results, filename='rebuilt_samples.png', num_images=64).save(model)
    return model, path


def main(argv=None):
    args = parse_args(argv)
    images = IDXDataset.from_folder(args.data_dir)
    if args.limit is not None:
        images = Subset(images, range(args.limit))
    train_set, val_set = train_val_split(AutoEncoderDataset(images), val_fraction=0.1, seed=1)
    torch.manual_seed(1)
    model = DeepVAE(latent_dim=args.latent_dim, hidden=(256, 128), dropout=0.1)
    history = train(model, train_set, val_set, args.epochs, args.results, args.verbose)
    rebuilt, path = rebuild_and_sample(args.results)
    print(f'rebuilt {type(rebuilt).__name__}({rebuilt.config}); samples in {path}')
    return history, rebuilt


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default='../shared/data/mnist', help='a folder with MNIST IDX files')
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--latent-dim', type=int, default=16)
    parser.add_argument('--limit', type=int, default=None, help='use only the first N images')
    parser.add_argument('--results', default='results', help='folder for the checkpoint and pictures')
    parser.add_argument('--verbose', type=int, default=2, help='0: silent, 1: a line per epoch, 2: progress bars')
    return parser.parse_args(argv)


if __name__ == '__main__':
    main()
