"""Make the figure of "Train on your own images" from a real run of the command line on colour photographs.

    python docs/make_own_images_figure.py [--epochs 20]

The folder is cut from the two photographs bundled with scikit-learn (``load_sample_images``):
40x40 patches every 10 pixels, in ``china/`` and ``flower/``, PNG and JPEG in turn, as a user's
folder of pictures would be. Then ``torchbearer-vae train --dataset folder:DIR --model conv
--likelihood gaussian --image-size 32`` runs on it (through ``torchbearer_vae.cli.main``, with a
fixed seed), and the reconstruction picture it wrote after its last epoch is copied to
``docs/_static/own_images.png``: nothing is drawn by hand.
"""
import argparse
import os
import shutil
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, '_static', 'own_images.png')


def photo_patches(root, size=40, stride=10):
    """Cut the photographs into ``size`` x ``size`` patches every ``stride`` pixels, one folder per photograph."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    count = 0
    for photo, name in zip(load_sample_images().images, ('china', 'flower')):
        os.makedirs(os.path.join(root, name))
        for top in range(0, photo.shape[0] - size + 1, stride):
            for left in range(0, photo.shape[1] - size + 1, stride):
                patch = Image.fromarray(photo[top:top + size, left:left + size])
                patch.save(os.path.join(root, name, f'{top:03d}_{left:03d}.{"jpg" if count % 2 else "png"}'),
                           quality=95)
                count += 1
    return count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=30)
    args = parser.parse_args(argv)
    from torchbearer_vae.cli import main as command

    with tempfile.TemporaryDirectory() as work:
        folder, out = os.path.join(work, 'patches'), os.path.join(work, 'run')
        count = photo_patches(folder)
        status = command(['train', '--dataset', f'folder:{folder}', '--model', 'conv', '--likelihood', 'gaussian',
                          '--image-size', '32', '--epochs', str(args.epochs), '--seed', '1', '--out', out])
        if status:
            raise SystemExit(status)  # the command said why on stderr; the figure is left as it was
        shutil.copyfile(os.path.join(out, f'reconstruction_{args.epochs - 1}.png'), TARGET)
    print(f'docs/_static/own_images.png: {count} patches, --epochs {args.epochs}')


if __name__ == '__main__':
    main()
