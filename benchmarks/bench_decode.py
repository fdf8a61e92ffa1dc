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

Then the cache of decoded folders (``load_image_folder(..., cache_dir=...)``, what the command line
does by default), on a folder of ``--photos`` (20,000) 128 x 128 PNG crops of scikit-learn's two
photographs, read at 32 x 32 (``image_size=32``), in interleaved rounds, each with a new cache folder:

  (4) bare: ``np.asarray(Image.open(p).convert('RGB').resize((32, 32), BILINEAR))`` over the paths;
  (5) first run: ``load_image_folder(folder, image_size=32, cache_dir=new)``: decoded into the cache;
  (6) second run: the same call again: read from the cache (its digest checked), memory-mapped;

and the training speed from the two: an epoch of the command's colour model (``SpatialVAE``, batch
128, Adam) over a :class:`TensorLoader` of the images in memory (``cache_dir=None``) and of the
memory-mapped cache (page cache warm), interleaved. Targets: (5)/(4) <= 1.1, (5)/(6) >= 20, and the
epoch from the cache at least 0.95x as fast as from memory.

    python benchmarks/bench_decode.py              # 7 rounds of MNIST, 3 of the photographs (about 5 minutes)
    python benchmarks/bench_decode.py --rounds 3 --photos 5000
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
#: The cache's targets: the first run's decoding against the bare loop, the second run against the first, and an
#: epoch's speed from the cache against from memory.
FIRST_TARGET, SECOND_TARGET, EPOCH_TARGET = 1.1, 20, 0.95


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


def write_photos(folder, count, size=128, seed=0):
    """``count`` random ``size`` x ``size`` crops of scikit-learn's two photographs as PNG files; their paths."""
    from sklearn.datasets import load_sample_images

    photos, generator = load_sample_images().images, np.random.default_rng(seed)
    paths = []
    for index in range(count):
        photo = photos[index % 2]
        top, left = (int(generator.integers(0, extent - size + 1)) for extent in photo.shape[:2])
        paths.append(os.path.join(folder, f'{index:05d}.png'))
        Image.fromarray(photo[top:top + size, left:left + size]).save(paths[-1])
    return paths


def bare_resized(paths, size=32):
    return [np.asarray(Image.open(path).convert('RGB').resize((size, size), Image.BILINEAR)) for path in paths]


def cached(folder_and_cache):
    folder, cache = folder_and_cache
    return load_image_folder(folder, image_size=32, progress=False, cache_dir=cache)


def epoch_seconds(dataset, seed=0):
    """Seconds of one training epoch of the command's colour model over ``dataset`` (a TensorLoader, batch 128)."""
    from torchbearer_vae import SpatialVAE, TensorLoader, kld

    torch.manual_seed(seed)
    model = SpatialVAE(tuple(dataset.data.shape[1:]), likelihood='gaussian', sigma=None)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = TensorLoader(dataset, batch_size=128, shuffle=True, seed=seed)
    start = time.perf_counter()
    for x in loader:  # a folder without class subfolders: batches of images only, float in [0, 1]
        recon, mu, logvar = model(x)
        loss = (model.reconstruction_loss(recon, x) + kld(mu, logvar)) / len(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def spread(values):
    return f'{statistics.median(values):.3f} s  ({min(values):.3f}-{max(values):.3f})'


def cache_rounds(count, rounds):
    """Time (4), (5), (6) and the two epochs over ``rounds`` interleaved rounds; print them and the targets."""
    seconds = {name: [] for name in ('(4)', '(5)', '(6)', 'memory', 'cache')}
    with tempfile.TemporaryDirectory() as work:
        folder = os.path.join(work, 'photos')
        os.makedirs(folder)
        paths = write_photos(folder, count)
        print(f'{count:,} PNG crops of 128x128 ({sum(os.path.getsize(p) for p in paths) / 2 ** 20:.1f} MiB), read '
              f'at 32x32; {rounds} interleaved rounds, each with a new cache folder')
        for round_ in range(rounds):
            cache = os.path.join(work, f'cache{round_}')
            steps = [('(4)', bare_resized, paths), ('(5)', cached, (folder, cache))]
            if round_ % 2:
                steps.reverse()
            results = {}
            for name, function, argument in steps + [('(6)', cached, (folder, cache))]:
                took, results[name] = timed(function, argument)
                seconds[name].append(took)
            memory = load_image_folder(folder, image_size=32, progress=False)
            assert torch.equal(memory.data, results['(6)'].data) and torch.equal(memory.data, results['(5)'].data)
            epochs = [('memory', memory), ('cache', results['(6)'])]
            for name, dataset in epochs if round_ % 2 == 0 else epochs[::-1]:
                seconds[name].append(epoch_seconds(dataset))
        same = np.array_equal(np.stack(results['(4)'])[:, :1, :1], memory.data.permute(0, 2, 3, 1).numpy()[:, :1, :1])
    names = {'(4)': "(4) bare loop: Image.open(p).convert('RGB').resize(32)", '(5)': '(5) first run: decoded into '
             'the cache', '(6)': '(6) second run: read from the cache', 'memory': 'an epoch from memory',
             'cache': 'an epoch from the memory-mapped cache'}
    for name, values in seconds.items():
        print(f'{names[name]:<56} {spread(values)}')
    print(f'(4) and (5) agree on the first pixel of every image: {same} (Pillow resizes (4) without cropping)')
    ratios = {
        'first run / bare loop': ([a / b for a, b in zip(seconds['(5)'], seconds['(4)'])], FIRST_TARGET, '<='),
        'first run / second run': ([a / b for a, b in zip(seconds['(5)'], seconds['(6)'])], SECOND_TARGET, '>='),
        'epoch speed, cache / memory': ([m / c for m, c in zip(seconds['memory'], seconds['cache'])],
                                        EPOCH_TARGET, '>=')}
    for what, (values, target, sense) in ratios.items():
        ratio = statistics.median(values)
        met = ratio <= target if sense == '<=' else ratio >= target
        print(f'ratio {what} = {ratio:.2f}   (rounds {min(values):.2f}-{max(values):.2f})   target {sense} {target}   '
              f'{"met" if met else "MISS"}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', default=os.path.normpath(DATA), help='folder with the MNIST IDX files')
    parser.add_argument('--rounds', type=int, default=7, help='interleaved rounds, the first untimed (default: 7)')
    parser.add_argument('--photos', type=int, default=20_000,
                        help='PNG crops of the photographs for the cache rounds (default: 20,000; 0: none)')
    parser.add_argument('--cache-rounds', type=int, default=3, help='rounds of the cache (default: 3)')
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
    if args.photos:
        cache_rounds(args.photos, args.cache_rounds)
    print(f'load average at the end {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
