"""How fast load_image_folder decodes a folder of PNG files, against a bare Pillow loop (issue 13).

The 10,000 real MNIST test images (../shared/data/mnist) are written as PNG files into a temporary
folder, one subfolder per label (``<label>/<index>.png``), and read, interleaved round by round
(the order of the two swapped every round, so that neither always runs on a warmer cache):

  (1) bare: ``[np.asarray(PIL.Image.open(p).convert('L')) for p in paths]`` over the sorted paths;
  (2) ours: ``torchbearer_vae.load_image_folder(folder)``: listing, labels, decoding into one
      uint8 (N, 1, 28, 28) tensor, and an ImageDataset around it.

For the record, (3) the same loop with torchvision.io (``decode_image(read_file(p), GRAY)``) is
timed in the same rounds. The first round of each is a warm-up (the page cache) and not counted.
It prints the median seconds of each and their spread, then the median of the rounds' ratios
(2)/(1) against the target, <= 1.5. It also checks that (2) holds exactly the pixels of (1).

    python benchmarks/bench_decode.py              # 7 rounds (about half a minute on 2 cores)
    python benchmarks/bench_decode.py --rounds 3
"""
import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import torch
from PIL import Image

import torchbearer_vae
from torchbearer_vae import IDXDataset, load_image_folder

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'data', 'mnist')
TARGET = 1.5


def write_pngs(mnist, folder):
    for label in range(10):
        os.makedirs(os.path.join(folder, str(label)))
    for index, (image, label) in enumerate(zip(mnist.data.numpy(), mnist.targets.tolist())):
        Image.fromarray(image).save(os.path.join(folder, str(label), f'{index:05d}.png'))


def bare(paths):
    return [np.asarray(Image.open(path).convert('L')) for path in paths]


def ours(folder):
    return load_image_folder(folder, progress=False)


def torchvision_io(paths):
    from torchvision.io import ImageReadMode, decode_image, read_file

    return [decode_image(read_file(path), mode=ImageReadMode.GRAY) for path in paths]


def timed(function, argument):
    start = time.perf_counter()
    result = function(argument)
    return time.perf_counter() - start, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', default=os.path.normpath(DATA), help='folder with the MNIST IDX files')
    parser.add_argument('--rounds', type=int, default=7, help='interleaved rounds, the first untimed (default: 7)')
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error('--rounds must be >= 2 (the first round is not timed)')
    print(f'torchbearer_vae {torchbearer_vae.__version__}, Pillow {Image.__version__}, torch {torch.__version__}, '
          f'{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}')
    mnist = IDXDataset.from_folder(args.data)
    seconds = {'(1)': [], '(2)': [], '(3)': []}
    ratios = []
    with tempfile.TemporaryDirectory() as folder:
        write_pngs(mnist, folder)
        paths = sorted(os.path.join(folder, label, name) for label in os.listdir(folder)
                       for name in os.listdir(os.path.join(folder, label)))
        print(f'{len(paths):,} MNIST PNG files ({sum(os.path.getsize(p) for p in paths) / 2 ** 20:.1f} MiB) in ten '
              f'label folders; {args.rounds} interleaved rounds, the first untimed')
        for round_ in range(args.rounds):
            order = [('(1)', bare, paths), ('(2)', ours, folder)]
            if round_ % 2:
                order.reverse()
            took = {}
            for name, function, argument in order + [('(3)', torchvision_io, paths)]:
                took[name], result = timed(function, argument)
                if name == '(2)':
                    dataset = result
                elif name == '(1)':
                    expected = result
            if round_ > 0:
                for name, value in took.items():
                    seconds[name].append(value)
                ratios.append(took['(2)'] / took['(1)'])
        same = np.array_equal(dataset.data[:, 0].numpy(), np.stack(expected))
    names = {'(1)': "(1) bare loop: np.asarray(Image.open(p).convert('L'))",
             '(2)': '(2) load_image_folder(folder)',
             '(3)': '(3) torchvision.io: decode_image(read_file(p), GRAY)'}
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f'{names[name]:<56} {median:.3f} s  ({min(values):.3f}-{max(values):.3f})  '
              f'{len(paths) / median:>7,.0f} images/s')
    print(f'(2) holds exactly the pixels of (1): {same}; {dataset}, {len(dataset.classes)} classes')
    ratio = statistics.median(ratios)
    print(f'ratio ours/bare = {ratio:.2f}   (rounds {min(ratios):.2f}-{max(ratios):.2f})   target <= {TARGET:.1f}   '
          f'{"met" if ratio <= TARGET else "MISS"}')
    print(f'load average at the end {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
