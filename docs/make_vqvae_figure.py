"""Measure a VQ-VAE against the convolutional VAE on the same images, and draw its reconstructions and code usage.

    python docs/make_vqvae_figure.py [--data-dir ../shared/data/mnist] [--epochs 10] [--seed 0]

It trains, on the 9,000 training images of the MNIST files in ``--data-dir`` (1,000 held out, the
split ``torchbearer-vae train`` makes), :class:`~torchbearer_vae.ConvVAE` and
:class:`~torchbearer_vae.VQVAE` with their defaults (the same encoder and decoder convolutions;
512 codes of 64 values, moving-average codebook, commitment weight 0.25), ``--epochs`` each, in a
torchbearer ``Trial`` (the state way: :func:`~torchbearer_vae.kld_loss` and
:func:`~torchbearer_vae.commitment_loss`). For the held-out images it prints each model's
reconstruction term (:func:`~torchbearer_vae.reconstruction_term`, nats per image, ``z`` each image's
code: the posterior mean, or the quantized map) and PSNR, and the VQ-VAE's codebook use: the
perplexity of its code frequencies and how many of its codes are used. It writes
``docs/_static/vqvae.png`` (rows: held-out images, ConvVAE reconstructions, VQ-VAE reconstructions,
VQ-VAE samples from a :class:`~torchbearer_vae.CategoricalPrior` fitted to its training codes) and
``docs/_static/vqvae_codes.png`` (each code's share of the held-out positions, largest first).
"""
import argparse
import math
import os

import torch
from torchbearer import Trial
from torchvision.utils import save_image

from torchbearer_vae import (
    VQVAE,
    AutoEncoderDataset,
    ConvVAE,
    IDXDataset,
    TensorLoader,
    commitment_loss,
    fit_latent_prior,
    kld_loss,
    reconstruction_psnr,
    reconstruction_term,
    train_val_split,
)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, '..', '..', 'shared', 'data', 'mnist'))


def train(model, callbacks, metrics, train_set, val_set, epochs, seed):
    """``epochs`` of a Trial over TensorLoaders, the criterion the model's own reconstruction term."""
    torch.manual_seed(seed)
    trial = Trial(model, torch.optim.Adam(model.parameters(), lr=1e-3), model.reconstruction_loss,
                  metrics=['loss', *metrics], callbacks=callbacks, verbose=0)
    trial.with_generators(TensorLoader(train_set, 128, shuffle=True, seed=seed), TensorLoader(val_set, 128))
    return trial.run(epochs=epochs)[-1]


def code_shares(model, images):
    """Each code's share of the quantized positions of ``images``, ``(K,)``."""
    with torch.no_grad():
        indices = model.quantizer.nearest(model.encode(images))
    return torch.bincount(indices.flatten(), minlength=model.quantizer.num_codes).double() / indices.numel()


def draw_codes(shares, path):
    """A bar per code, its share of the positions, largest first, on a logarithmic axis."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    ordered = shares.sort(descending=True).values
    used = int((ordered > 0).sum())
    figure, axes = pyplot.subplots(figsize=(7, 2.6), dpi=100)
    axes.bar(range(used), ordered[:used].numpy(), width=1.0, color='#1f77b4')
    axes.axhline(1 / len(shares), color='0.3', linestyle='--', linewidth=1)
    axes.set_yscale('log')
    axes.set_xlim(-0.5, len(shares) - 0.5)
    axes.set_xlabel(f'codes, most used first ({used} of {len(shares)} used; dashed: an even share)')
    axes.set_ylabel('share of positions')
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default=DEFAULT_DATA, help='folder with MNIST IDX files')
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--limit', type=int, default=None, help='use only the first N images (a quick check)')
    parser.add_argument('--out', default=os.path.join(HERE, '_static'), help='folder for the two pictures')
    args = parser.parse_args(argv)
    mnist = IDXDataset.from_folder(args.data_dir)
    if args.limit is not None:
        mnist = torch.utils.data.Subset(mnist, range(args.limit))
    train_set, val_set = train_val_split(AutoEncoderDataset(mnist), val_fraction=0.1, seed=1)
    val_x = torch.stack([val_set[i][0] for i in range(len(val_set))])
    train_x = torch.stack([train_set[i][0] for i in range(len(train_set))])

    conv = ConvVAE()
    train(conv, [kld_loss()], ['recon', 'kl'], train_set, val_set, args.epochs, args.seed)
    vq = VQVAE()
    last = train(vq, [commitment_loss(0.25)], ['recon', 'commitment', 'perplexity', 'used_codes'], train_set, val_set,
                 args.epochs, args.seed)
    rows = {}
    for name, model in (('ConvVAE', conv), ('VQVAE', vq)):
        model.eval()
        rows[name] = (reconstruction_term(model, val_x), reconstruction_psnr(model, val_x))
    shares = code_shares(vq, val_x)
    used = int((shares > 0).sum())
    perplexity = math.exp(-float((shares[shares > 0] * shares[shares > 0].log()).sum()))
    print(f'trained {args.epochs} epochs on {len(train_set):,} images; the {len(val_set):,} held out:')
    print('| model | reconstruction term (nats per image) | PSNR (dB) |')
    print('| --- | --- | --- |')
    for name, (term, psnr) in rows.items():
        print(f'| {name} | {term:.1f} | {psnr:.1f} |')
    ratio = rows['VQVAE'][0] / rows['ConvVAE'][0]
    print(f'VQVAE / ConvVAE reconstruction term = {ratio:.2f}')
    print(f'VQVAE codes: perplexity {perplexity:.0f} of the held-out positions, {used} of '
          f'{vq.quantizer.num_codes} codes used (last epoch\'s training batches: perplexity '
          f'{last["perplexity"]:.0f}, {last["used_codes"]:.0f} codes each)')

    prior = fit_latent_prior(vq, train_x)
    with torch.no_grad():
        shown = val_x[:10]
        samples = vq.decode(prior.sample(10, generator=torch.Generator().manual_seed(args.seed)))
        grid = torch.cat([shown, conv.decode(conv.encode(shown)[0]), vq.decode(vq.encode(shown)), samples])
    os.makedirs(args.out, exist_ok=True)
    save_image(grid, os.path.join(args.out, 'vqvae.png'), nrow=10, pad_value=1.0)
    draw_codes(shares, os.path.join(args.out, 'vqvae_codes.png'))
    print(f'{os.path.relpath(args.out)}/vqvae.png: rows held-out images, ConvVAE reconstructions, VQVAE '
          f'reconstructions, VQVAE samples from its fitted prior; vqvae_codes.png: each code\'s share')
    return {'ratio': ratio, 'perplexity': perplexity, 'used': used, 'rows': rows}


if __name__ == '__main__':
    main()
