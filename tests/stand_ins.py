"""Tiny models with known outputs, shared by the test modules (import: `from stand_ins import ...`)."""
import torch
from torch import nn

from torchbearer_vae import LOGVAR, MU


class FixedPosterior(nn.Module):
    """Stores the same posterior in state at every call (unless ``store=False``); outputs ``x * 0 + w``."""

    def __init__(self, mu, logvar, store=True):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.mu, self.logvar, self.store = mu, logvar, store

    def forward(self, x, state=None):
        if state is not None and self.store:
            state[MU], state[LOGVAR] = self.mu + self.weight, self.logvar
        return x * 0 + self.weight


class Scale(nn.Module):
    """A stand-in autoencoder with a known output, 0.5 * x: 'same' shape, 'flat', a 'tuple' or a 'wrong' size."""

    def __init__(self, output='same'):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(0.5))
        self.output = output

    def forward(self, x, state=None):
        recon = x * self.weight
        if self.output == 'flat':
            return recon.reshape(x.shape[0], -1)
        if self.output == 'tuple':
            return recon, torch.zeros(x.shape[0], 2), torch.zeros(x.shape[0], 2)
        if self.output == 'wrong':
            return recon.reshape(x.shape[0], -1)[:, :-1]
        return recon
