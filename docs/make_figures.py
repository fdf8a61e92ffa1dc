"""Make the pictures of the docs from real, short training runs of the example scripts.

    python docs/make_figures.py [--data-dir ../shared/data/mnist] [--epochs 5]

Each picture is what ``ReconstructionSaver`` wrote after the last epoch of an example script,
run with its own ``main``: nothing is drawn by hand. The runs use the MNIST files in
``--data-dir`` (by default the 10,000-image MNIST test split beside the repository: 9,000
images for training, 1,000 for validation) and a fixed seed. Written into ``docs/_static``:

* ``reconstruction.png``: ``examples/vae_state_way.py`` (``torchbearer_vae.VAE``), the tutorial's figure;
* ``denoising.png``: ``examples/autoencoder.py --noise 0.5``;
* ``conv_autoencoder.png``: ``examples/conv_autoencoder.py``, on its made-up colour images.
"""
import argparse
import importlib.util
import os
import shutil
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, '..', '..', 'shared', 'data', 'mnist'))


def load_example(name):
    """Import ``docs/examples/<name>.py`` as a module (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, 'examples', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def figure(example, arguments, epochs, target):
    """Run ``example`` for ``epochs`` and copy its last reconstruction picture to ``_static/target``."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as results:
        load_example(example).main(arguments + ['--epochs', str(epochs), '--results', results, '--verbose', '1'])
        last = os.path.join(results, f'reconstruction_{epochs - 1}.png')
        shutil.copyfile(last, os.path.join(HERE, '_static', target))
    print(f'docs/_static/{target}: examples/{example}.py {" ".join(arguments)} --epochs {epochs}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-dir', default=DEFAULT_DATA, help='folder with MNIST IDX files')
    parser.add_argument('--epochs', type=int, default=5)
    args = parser.parse_args(argv)
    data = ['--data-dir', args.data_dir]
    figure('vae_state_way', data, args.epochs, 'reconstruction.png')
    figure('autoencoder', data + ['--noise', '0.5'], args.epochs, 'denoising.png')
    figure('conv_autoencoder', [], args.epochs, 'conv_autoencoder.png')


if __name__ == '__main__':
    main()
