"""Make the figure and the figures of "Train on your own images" from real runs of the command line on photographs.

    python docs/make_own_images_figure.py                          # 500 crops of 64x64, the command's defaults
    python docs/make_own_images_figure.py -- --model conv          # anything after -- is passed on to train
    python docs/make_own_images_figure.py --patches --no-figure    # 4,000 patches of 32x32, --epochs 20

The folder is cut from the two photographs bundled with scikit-learn (``load_sample_images``,
427x640 each) into a temporary folder: ``--crops`` (default 500) random 64x64 crops, or with
``--patches`` 4,000 random 32x32 patches, alternately from each photograph, seeded, as PNG files
(``0000.png`` ...), as a user's folder of pictures would be. Then ``torchbearer-vae train
--dataset folder:DIR --image-size 32`` runs on it with the command's defaults (through
``torchbearer_vae.cli.main``, the seed fixed), ``torchbearer-vae evaluate`` measures the
reconstruction PSNR on the run's validation split (``--val-fraction``, the images it did not train
on), and the reconstruction and samples pictures the run wrote after its last epoch are copied to
``docs/_static/own_images.png`` and ``own_images_samples.png`` (unless ``--no-figure``): nothing
is drawn by hand.
"""
import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
#: Where the last reconstruction and samples pictures of the run are copied (the figures of the page).
TARGETS = {'reconstruction': os.path.join(HERE, '_static', 'own_images.png'),
           'samples': os.path.join(HERE, '_static', 'own_images_samples.png')}


def random_crops(root: str, count: int, size: int, *, seed: int = 0) -> int:
    """Write ``count`` random ``size`` x ``size`` crops of the two photographs (in turn) into ``root`` as PNG files."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    generator = np.random.default_rng(seed)
    os.makedirs(root)
    for index in range(count):
        photo = photos[index % len(photos)]
        top = int(generator.integers(0, photo.shape[0] - size + 1))
        left = int(generator.integers(0, photo.shape[1] - size + 1))
        Image.fromarray(photo[top:top + size, left:left + size]).save(os.path.join(root, f'{index:04d}.png'))
    return count


def run(folder: str, out: str, train_options: List[str]) -> dict:
    """``train`` on ``folder`` into ``out`` with ``train_options``, then ``evaluate``: its JSON."""
    from torchbearer_vae.cli import main as command

    status = command(['train', '--dataset', f'folder:{folder}', '--image-size', '32',
                      '--seed', '1', '--out', out, *train_options])
    if status:
        raise SystemExit(status)  # the command said why on stderr; the figure is left as it was
    status = command(['evaluate', '--checkpoint', os.path.join(out, 'checkpoint.pt'), '--importance-samples', '1',
                      '--out', os.path.join(out, 'evaluation.json')])
    if status:
        raise SystemExit(status)
    with open(os.path.join(out, 'evaluation.json')) as file:
        return json.load(file)


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    passed = argv[argv.index('--') + 1:] if '--' in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--crops', type=int, default=500, help='random 64x64 crops (default: 500)')
    parser.add_argument('--patches', action='store_true', help='4,000 random 32x32 patches, --epochs 20')
    parser.add_argument('--no-figure', action='store_true', help='measure only: leave docs/_static as it is')
    args = parser.parse_args(argv[:argv.index('--')] if '--' in argv else argv)
    count, size = (4000, 32) if args.patches else (args.crops, 64)
    train_options = (['--epochs', '20'] if args.patches else []) + passed
    with tempfile.TemporaryDirectory() as work:
        folder, out = os.path.join(work, 'photos'), os.path.join(work, 'run')
        random_crops(folder, count, size)
        result = run(folder, out, train_options)
        if not args.no_figure:
            for picture, target in TARGETS.items():
                last = max(glob.glob(os.path.join(out, f'{picture}_*.png')),
                           key=lambda path: int(path.rsplit('_', 1)[1].split('.')[0]))
                shutil.copyfile(last, target)
    print(f'{count} images of {size}x{size}, train {" ".join(train_options) or "(defaults)"}: reconstruction PSNR '
          f'{result["reconstruction_psnr_db"]:.2f} dB on {result["images"]} validation images')


if __name__ == '__main__':
    main()
