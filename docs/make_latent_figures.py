"""Make the pictures of the page "The latent space and conditional VAEs" from real runs of examples/latent_space.py.

    python docs/make_latent_figures.py [--data-dir ../shared/data/mnist] [--epochs 10]

Each picture is what the example's callbacks wrote after the last epoch: nothing is drawn by
hand. The runs use the MNIST files in ``--data-dir`` (by default the 10,000-image MNIST test
split beside the repository: 9,000 images for training, 1,000 for validation) and a fixed seed.
Written into ``docs/_static``:

* ``latent_scatter.png``, ``latent_manifold.png``: a VAE with a 2-D latent;
* ``kl_dims.png``: a VAE with a 20-D latent (several dimensions collapse);
* ``conditional_samples.png``: a ConditionalVAE with a 2-D latent, one row per digit.
"""
import argparse
import os
import shutil
import tempfile

import torch
from make_figures import DEFAULT_DATA, HERE, load_example  # beside this script (sys.path[0])


def figures(arguments, epochs, copies):
    """Run the example for ``epochs`` and copy its last pictures: ``copies`` maps a picture name to a target."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as results:
        load_example('latent_space').main(arguments + ['--epochs', str(epochs), '--results', results, '--verbose', '1'])
        for name, target in copies.items():
            shutil.copyfile(os.path.join(results, f'{name}_{epochs - 1}.png'), os.path.join(HERE, '_static', target))
            print(f'docs/_static/{target}: examples/latent_space.py {" ".join(arguments)} --epochs {epochs}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default=DEFAULT_DATA, help='folder with MNIST IDX files')
    parser.add_argument('--epochs', type=int, default=10)
    args = parser.parse_args(argv)
    data = ['--data-dir', args.data_dir]
    figures(data + ['--latent-dim', '2'], args.epochs, {'latent': 'latent_scatter.png',
                                                        'manifold': 'latent_manifold.png'})
    figures(data + ['--latent-dim', '20'], args.epochs, {'kl_dims': 'kl_dims.png'})
    figures(data + ['--latent-dim', '2', '--conditional'], args.epochs, {'samples': 'conditional_samples.png',
                                                                          'latent': 'conditional_scatter.png'})


if __name__ == '__main__':
    main()
