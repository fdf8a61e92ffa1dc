"""A convolutional autoencoder on 3-channel 32x32 images with torchbearer_vae's pieces.

The images are CIFAR-10-shaped, ``(3, 32, 32)`` in ``[0, 1]``, made up here (smooth random
colour fields) so that the script runs anywhere without a download; any dataset of colour
image tensors works the same way. Run it as it is::

    python conv_autoencoder.py
    python conv_autoencoder.py --epochs 1 --limit 512

Reconstructions are written to ``results/reconstruction_{epoch}.png``, in colour.
"""
import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchbearer import Trial

from torchbearer_vae import AutoEncoderDataset, ReconstructionSaver, train_val_split


def colour_images(count, size=32, seed=0):
    """``count`` smooth random colour images ``(3, size, size)`` in ``[0, 1]``: 4x4 noise, upsampled."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 4, 4, generator=generator)
    return F.interpolate(coarse, size=(size, size), mode='bilinear', align_corners=False)


class ConvAutoEncoder(nn.Module):
    """Two stride-2 convolutions down to a ``(64, 8, 8)`` code, two transposed convolutions back."""

    def __init__(self, channels=3):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 32, 4, stride=2, padding=1), nn.ReLU(),  # 32x32 -> 16x16
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU())        # 16x16 -> 8x8
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # 8x8 -> 16x16
            nn.ConvTranspose2d(32, channels, 4, stride=2, padding=1), nn.Sigmoid())  # -> 32x32

    def forward(self, x):
        return self.decoder(self.encoder(x))


def make_loaders(images, batch_size=64):
    """``(image, image)`` loaders from a tensor of images."""
    data = AutoEncoderDataset(images)  # a plain tensor works: each item becomes (image, image)
    train, val = train_val_split(data, val_fraction=0.1, seed=1)
    return DataLoader(train, batch_size, shuffle=True), DataLoader(val, batch_size)


def make_trial(model, results='results'):
    """Mean squared error, and a picture of colour inputs above their reconstructions per epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return Trial(model, optimizer, nn.MSELoss(), metrics=['loss'],
                 callbacks=[ReconstructionSaver(folder=results, num_images=8)])  # (N, 3, 32, 32): RGB


def main(argv=None):
    args = parse_args(argv)
    train_loader, val_loader = make_loaders(colour_images(args.limit), args.batch_size)
    trial = make_trial(ConvAutoEncoder(), args.results).to(args.device)
    trial.with_generators(train_generator=train_loader, val_generator=val_loader)
    return trial.run(epochs=args.epochs, verbose=args.verbose)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--limit', type=int, default=5000, help='how many images to make up')
    parser.add_argument('--results', default='results', help='folder for the reconstruction pictures')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--verbose', type=int, default=2, help='0: silent, 1: a line per epoch, 2: progress bars')
    return parser.parse_args(argv)


if __name__ == '__main__':
    main()
