"""Folders of image files and CIFAR-10 as in-memory datasets: real photographs and real MNIST, written as files.

The photographs are patches of scikit-learn's two sample images (china.jpg, flower.jpg), saved
as PNG and JPEG in two class folders, with a corrupt and a truncated file among them.
"""
import os
import threading
import urllib.error
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from torchbearer_vae import AutoEncoderDataset, ImageDataset, TensorLoader, find_images, load_cifar10, load_image_folder
from torchbearer_vae.data import folders

SMALL, LARGE = (32, 32), (40, 48)  # (height, width) of the patches


@pytest.fixture(scope='module')
def photos():
    from sklearn import datasets as sklearn_datasets  # scikit-learn is in the test extra: never skipped
    return sklearn_datasets.load_sample_images().images  # two (427, 640, 3) uint8 photographs


def patch(photo, index, size):
    top, left = 37 * index % (427 - size[0]), 53 * index % (640 - size[1])
    return np.ascontiguousarray(photo[top:top + size[0], left:left + size[1]])


@pytest.fixture(scope='module')
def photo_folder(photos, tmp_path_factory):
    """``root/{china,flower}/``: per class 6 PNG and 2 JPEG 32x32 patches, 2 PNG and 2 JPEG 40x48 ones; 2 bad files.

    Returns ``(root, {relative path: the patch saved there})``.
    """
    root = tmp_path_factory.mktemp('photos')
    saved = {}
    for name, photo in zip(('china', 'flower'), photos):
        (root / name).mkdir()
        for index in range(12):
            size = SMALL if index < 8 else LARGE
            kind = 'jpg' if index in (6, 7, 10, 11) else 'png'
            relative = f'{name}/p{index:02d}.{kind}'
            Image.fromarray(patch(photo, index, size)).save(root / relative, quality=90)
            saved[relative] = patch(photo, index, size)
    (root / 'china' / 'p05b.png').write_bytes(b'\x89PNG\r\n\x1a\n' + os.urandom(200))  # corrupt: a header, then noise
    whole = (root / 'flower' / 'p09.png').read_bytes()
    (root / 'flower' / 'p03b.png').write_bytes(whole[:len(whole) * 2 // 3])  # truncated
    (root / 'flower' / 'notes.txt').write_text('not an image')
    return root, saved


def reference(path, size):
    """torchvision's resize (antialiased) and centre crop of the PIL image, channels-first: the independent answer."""
    from torchvision.transforms import functional

    image = Image.open(path).convert('RGB')
    image = functional.center_crop(functional.resize(image, size, antialias=True), size)
    return np.asarray(image).transpose(2, 0, 1)


def load_quietly(root, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return load_image_folder(root, **kwargs)


# -- finding and labelling --
def test_class_subfolders_are_the_labels_in_sorted_order(photo_folder):
    root, saved = photo_folder
    paths, labels, classes = find_images(root)
    relative = [os.path.relpath(path, root).replace(os.sep, '/') for path in paths]
    assert relative == sorted(set(saved) | {'china/p05b.png', 'flower/p03b.png'})  # no notes.txt
    assert classes == ['china', 'flower'] and labels == [int(name.startswith('flower')) for name in relative]


def test_a_folder_with_images_at_its_top_has_no_labels(photos, tmp_path):
    (tmp_path / 'sub').mkdir()
    for relative in ('b.png', 'a.png', 'sub/c.png', '.hidden.png'):
        Image.fromarray(patch(photos[0], 1, SMALL)).save(tmp_path / relative)
    paths, labels, classes = find_images(tmp_path)
    assert [os.path.relpath(path, tmp_path) for path in paths] == ['a.png', 'b.png', os.path.join('sub', 'c.png')]
    assert labels is None and classes is None
    images = load_image_folder(tmp_path)
    assert images.targets is None and images.classes is None and len(images) == 3 and images[0].shape == (3, 32, 32)


# -- decoding --
def test_pngs_are_exact_and_resized_images_are_torchvision_resize_and_centre_crop(photo_folder):
    root, saved = photo_folder
    with pytest.warns(UserWarning) as caught:
        images = load_image_folder(root, image_size=32)
    assert len(caught) == 1
    assert images.data.dtype == torch.uint8 and images.data.shape == (len(saved), 3, 32, 32)
    relative = [os.path.relpath(path, root).replace(os.sep, '/') for path in images.paths]
    assert relative == sorted(saved)
    assert images.targets.tolist() == [int(name.startswith('flower')) for name in relative]
    assert images.classes == ['china', 'flower']
    for name, decoded in zip(relative, images.data.numpy()):
        if saved[name].shape[:2] == SMALL and name.endswith('.png'):
            assert np.array_equal(decoded, saved[name].transpose(2, 0, 1)), name  # lossless: the patch itself
        elif saved[name].shape[:2] == SMALL:
            assert np.array_equal(decoded, np.asarray(Image.open(root / name)).transpose(2, 0, 1)), name
        else:
            assert np.array_equal(decoded, reference(root / name, 32)), name
    x, target = AutoEncoderDataset(images)[3]
    assert torch.equal(x, target) and torch.equal(x, images.data[3].float() / 255)


def test_large_pngs_resized_keep_their_order_and_pixels(photos, tmp_path):
    for index, photo in enumerate([photos[0], photos[1], photos[0][:, ::-1], photos[1][::-1]]):
        Image.fromarray(np.ascontiguousarray(photo)).save(tmp_path / f'{index}.png', compress_level=1)
    images = load_image_folder(tmp_path, image_size=40)  # 427x640 files: decoded by a pool of threads
    assert images.data.shape == (4, 3, 40, 40)
    for index, decoded in enumerate(images.data.numpy()):
        assert np.array_equal(decoded, reference(tmp_path / f'{index}.png', 40))


def test_resizing_down_a_large_jpeg_stays_close_to_the_full_decode(photos, tmp_path):
    Image.fromarray(photos[1]).save(tmp_path / 'flower.jpg', quality=95)  # 427x640: decoded at a reduced scale
    images = load_image_folder(tmp_path, image_size=48)
    difference = np.abs(images.data[0].numpy().astype(int) - reference(tmp_path / 'flower.jpg', 48).astype(int))
    assert images.data.shape == (1, 3, 48, 48) and difference.mean() < 2 and difference.max() < 40


def test_unreadable_files_are_skipped_with_one_warning_naming_the_first(photo_folder):
    root, saved = photo_folder
    with pytest.warns(UserWarning) as caught:
        load_image_folder(root, image_size=32)
    first = os.path.join(str(root), 'china', 'p05b.png')
    assert len(caught) == 1
    assert str(caught[0].message).startswith(f'skipped 2 unreadable image files of {len(saved) + 2} in '
                                             f'{str(root)!r}, the first {first!r} (')


def test_different_sizes_are_an_error_that_suggests_image_size(photo_folder):
    root, _ = photo_folder
    with pytest.raises(ValueError, match=r'images of different sizes in .*\(first 32x32 .*china.p00.png.*, then '
                                         r'48x40 at .*china.p08.png.*\); pass image_size=N \(--image-size N\)'):
        load_quietly(root)


def test_a_folder_with_no_readable_image_is_an_error(photo_folder, tmp_path):
    root, _ = photo_folder
    for name in ('china/p05b.png', 'flower/p03b.png'):
        (tmp_path / os.path.basename(name)).write_bytes((root / name).read_bytes())
    with pytest.raises(ValueError, match=r"none of the 2 image files in .* could be read; the first, .*p03b.png"):
        load_image_folder(tmp_path)


def test_missing_empty_and_file_roots(tmp_path):
    with pytest.raises(FileNotFoundError, match='no folder .*nowhere.*give the folder that holds the images'):
        load_image_folder(tmp_path / 'nowhere')
    (tmp_path / 'notes.txt').write_text('no images here')
    with pytest.raises(FileNotFoundError, match=r'no image files \(.bmp, .gif, .*\) in .* or its subfolders'):
        load_image_folder(tmp_path)
    with pytest.raises(ValueError, match='is a file, not a folder'):
        load_image_folder(tmp_path / 'notes.txt')


@pytest.mark.parametrize('kwargs, error, message', [
    ({'channels': 2}, ValueError, r'channels must be 1 \(grey\), 3 \(RGB\) or None'),
    ({'channels': '3'}, TypeError, 'channels must be an int'),
    ({'channels': True}, TypeError, 'channels must be an int'),
    ({'image_size': 0}, ValueError, 'image_size must be an int >= 1, got 0'),
    ({'limit': 2.0}, TypeError, 'limit must be an int >= 1'),
    ({'progress': 'yes'}, TypeError, r'progress must be True, False, None or a callable progress\(done, total\)'),
])
def test_bad_arguments(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        load_image_folder(tmp_path, **kwargs)


# -- channels --
def test_grey_files_give_one_channel_and_a_colour_file_makes_every_image_rgb(photos, tmp_path):
    grey = [patch(photos[0], index, SMALL)[..., 0] for index in range(3)]
    for index, image in enumerate(grey[:2]):
        Image.fromarray(image).save(tmp_path / f'{index}.png')
    Image.fromarray(grey[2]).convert('P').save(tmp_path / '2.gif')  # a palette of greys
    images = load_image_folder(tmp_path)
    assert images.data.shape == (3, 1, 32, 32)
    assert all(np.array_equal(images.data[index, 0].numpy(), grey[index]) for index in range(3))

    colour = patch(photos[1], 5, SMALL)
    Image.fromarray(colour).save(tmp_path / '3.png')
    images = load_image_folder(tmp_path)
    assert images.data.shape == (4, 3, 32, 32)
    for index in range(3):  # grey images repeated in the three channels, as Pillow's convert('RGB') does
        assert np.array_equal(images.data[index].numpy(), np.stack([grey[index]] * 3))
    assert np.array_equal(images.data[3].numpy(), colour.transpose(2, 0, 1))

    images = load_image_folder(tmp_path, channels=1)
    assert images.data.shape == (4, 1, 32, 32)
    assert np.array_equal(images.data[3, 0].numpy(), np.asarray(Image.fromarray(colour).convert('L')))


def test_16_bit_grey_images_keep_their_top_8_bits(tmp_path):
    deep = np.arange(0, 65536, 256, dtype=np.uint16).reshape(16, 16)
    Image.fromarray(deep).save(tmp_path / 'deep.png')
    images = load_image_folder(tmp_path)
    assert images.data.shape == (1, 1, 16, 16) and np.array_equal(images.data[0, 0].numpy(), deep >> 8)
    assert torch.equal(load_image_folder(tmp_path, channels=3).data[0], images.data[0].expand(3, 16, 16))


def test_rgba_palette_and_animated_gif_images_are_converted(photos, tmp_path):
    colour = patch(photos[1], 2, SMALL)
    alpha = np.arange(32 * 32, dtype=np.uint8).reshape(32, 32, 1)
    Image.fromarray(np.concatenate([colour, alpha], axis=2), 'RGBA').save(tmp_path / 'a_rgba.png')
    palette = Image.fromarray(colour).quantize(64)
    palette.save(tmp_path / 'b_palette.png')
    frames = [Image.fromarray(patch(photos[0], index, SMALL)).quantize(256) for index in (1, 2)]
    frames[0].save(tmp_path / 'c_animated.gif', save_all=True, append_images=frames[1:])
    Image.fromarray(colour).save(tmp_path / 'd.bmp')
    images = load_image_folder(tmp_path)
    assert images.data.shape == (4, 3, 32, 32)
    expected = [colour, np.asarray(palette.convert('RGB')), np.asarray(frames[0].convert('RGB')), colour]
    for decoded, want in zip(images.data.numpy(), expected):
        assert np.array_equal(decoded, want.transpose(2, 0, 1))


# -- memory, limit, progress --
def test_a_folder_too_large_for_memory_is_refused_with_the_figure(photo_folder, monkeypatch):
    root, saved = photo_folder
    monkeypatch.setattr(folders, 'available_memory', lambda: 40_000)
    # the estimate counts the files (26: two of them turn out unreadable): 26 x 3,072 bytes = 78 KiB > 40,000 / 2
    with pytest.raises(ValueError, match=r'26 images of 3x32x32 from .* need 78 KiB in memory, more than half the '
                                         r'39.1 KiB available; pass limit=N or image_size=N \(--limit/--image-size\)'):
        load_quietly(root, image_size=32)
    # 2 x 3,072 bytes, and 32x32 x 8 + 32x32 x 4 = 12,288 bytes to decode and resize one PNG: 18,432 fit
    assert len(load_quietly(root, image_size=32, limit=2)) == 2


def test_an_image_size_too_large_for_one_image_is_refused_before_opening_any_file(photo_folder, monkeypatch):
    root, _ = photo_folder
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, 'open', lambda path, *args, **kwargs: opened.append(path) or real_open(path))
    with pytest.raises(ValueError, match=r'1 images of 3x1000000x1000000 .* need [0-9.e+]+ GiB in memory, more '
                                         r'than half'):
        load_image_folder(root, image_size=10 ** 6)
    assert opened == []


def test_limit_opens_only_the_files_it_keeps(photo_folder, monkeypatch):
    root, _ = photo_folder
    everything = load_quietly(root, image_size=32)
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, 'open', lambda path, *args, **kwargs: opened.append(path) or real_open(path))
    images = load_image_folder(root, image_size=32, limit=5)
    # each kept file is opened twice: once for its header (its size checked), once to decode it
    assert sorted(set(opened)) == sorted(opened[:5]) == opened[5:] and torch.equal(images.data, everything.data[:5])
    opened.clear()
    with pytest.warns(UserWarning, match='skipped 1 unreadable image file of 8'):  # p05b.png: one more file is read
        images = load_image_folder(root, image_size=32, limit=7)
    assert len(set(opened)) == 8 and torch.equal(images.data, everything.data[:7])
    assert torch.equal(images.targets, everything.targets[:7])


def test_check_sees_the_shape_and_count_from_the_headers_before_any_image_is_decoded(photo_folder, monkeypatch):
    root, _ = photo_folder
    seen, opened = [], []
    real_open = Image.open
    monkeypatch.setattr(Image, 'open', lambda path, *args, **kwargs: opened.append(path) or real_open(path))

    def check(shape, count):
        seen.append((shape, count, len(opened)))
        raise RuntimeError('too large for the model')

    with pytest.raises(RuntimeError, match='too large for the model'):
        load_quietly(root, image_size=16, limit=6, check=check)
    assert seen == [((3, 16, 16), 6, 6)] and len(opened) == 6  # each of the 6 headers read once, none decoded
    grey = load_quietly(root, image_size=8, channels=1, limit=3, check=lambda shape, count: seen.append((shape, count)))
    assert seen[-1] == ((1, 8, 8), 3) and grey.data.shape == (3, 1, 8, 8)


def test_progress_callable_sees_every_image(photo_folder):
    root, saved = photo_folder
    seen = []
    load_quietly(root, image_size=32, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (len(saved) + 2, len(saved) + 2)  # every file opened, the two unreadable ones included
    seen.clear()
    with pytest.warns(UserWarning, match='skipped 1'):
        load_image_folder(root, image_size=32, limit=7, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(8, 8)]


# -- MNIST as PNG files --
def test_mnist_pngs_give_the_idx_pixels_and_labels(mnist, tmp_path):
    for label in range(10):
        (tmp_path / str(label)).mkdir()
    for index in range(300):
        Image.fromarray(mnist.data[index].numpy()).save(tmp_path / str(int(mnist.targets[index])) / f'{index:05d}.png')
    images = load_image_folder(tmp_path)
    order = [int(os.path.basename(path)[:5]) for path in images.paths]
    assert sorted(order) == list(range(300)) and images.classes == [str(label) for label in range(10)]
    assert images.data.shape == (300, 1, 28, 28)
    assert torch.equal(images.data[:, 0], mnist.data[order]) and torch.equal(images.targets, mnist.targets[order])
    batches = list(TensorLoader(AutoEncoderDataset(images), batch_size=128))
    assert [len(x) for x, _ in batches] == [128, 128, 44] and batches[0][0].shape == (128, 1, 28, 28)


@pytest.mark.slow
def test_the_10000_mnist_pngs_give_exactly_the_idx_dataset(mnist, mnist_png_folder):
    images = load_image_folder(mnist_png_folder)
    order = [int(os.path.basename(path)[:5]) for path in images.paths]
    assert sorted(order) == list(range(10000))
    assert torch.equal(images.data[:, 0], mnist.data[order]) and torch.equal(images.targets, mnist.targets[order])
    assert torch.equal(images.targets, torch.tensor(sorted(mnist.targets.tolist())))  # class folder by class folder


# -- CIFAR-10 --
def test_load_cifar10_reads_torchvisions_files_channels_first(photos, fake_cifar10, tmp_path):
    images = np.stack([patch(photos[index % 2], index, SMALL) for index in range(50)])
    labels = np.arange(50) % 2
    fake_cifar10(tmp_path, images, labels)
    for train in (True, False):
        cifar = load_cifar10(tmp_path, train=train, download=False)
        assert cifar.data.shape == (50, 3, 32, 32) and cifar.data.is_contiguous()
        assert np.array_equal(cifar.data.numpy(), images.transpose(0, 3, 1, 2))
        assert cifar.targets.tolist() == labels.tolist() and cifar.classes == ['china', 'flower']
    first = load_cifar10(tmp_path, train=False, limit=7)
    assert len(first) == 7 and torch.equal(first.data, cifar.data[:7])


def test_load_cifar10_fails_clearly_offline(tmp_path, monkeypatch):
    from torchvision.datasets import cifar

    def offline(*args, **kwargs):
        raise urllib.error.URLError('[Errno -2] Name or service not known')

    monkeypatch.setattr(cifar, 'download_and_extract_archive', offline)
    with pytest.raises(RuntimeError, match=r"CIFAR-10 test files not found in .*; put the cifar-10-batches-py folder "
                                           r"\(from cifar-10-python.tar.gz\) in .* \(or pass download=True\)"):
        load_cifar10(tmp_path, train=False, download=False)
    with pytest.raises(RuntimeError, match=r"CIFAR-10 is not in .* and could not be downloaded \(.*Name or service "
                                           r"not known.*\)\. Without internet, put the cifar-10-batches-py folder"):
        load_cifar10(tmp_path / 'data')
    assert not (tmp_path / 'data').exists()  # no empty folder left behind


# -- hostile folders: nothing hangs, nothing is decoded before its size is checked --
def load_within(seconds, root, **kwargs):
    """``load_image_folder(root, **kwargs)`` in a thread: its result or error, and its warnings; a test failure if
    it has not returned within ``seconds`` (then every FIFO in ``root`` gets a writer, so the thread ends)."""
    outcome = {}

    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            try:
                outcome['result'] = load_image_folder(root, **kwargs)
            except Exception as error:  # noqa: BLE001 - handed to the test
                outcome['result'] = error
        outcome['warnings'] = [str(warning.message) for warning in caught]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in root.rglob('*'):
            if fifo.is_fifo():
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # unblocks a reader stuck opening it
        thread.join(seconds)
        pytest.fail(f'load_image_folder({str(root)!r}) still running after {seconds} s: it hangs')
    return outcome['result'], outcome['warnings']


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='no FIFOs on this platform')
def test_fifos_devices_and_link_loops_are_skipped_with_the_unreadable_warning(photos, tmp_path):
    image = patch(photos[0], 1, SMALL)
    Image.fromarray(image).save(tmp_path / 'b.png')
    os.mkfifo(tmp_path / 'a_pipe.png')  # sorted first: the warning names it
    os.symlink('/dev/zero', tmp_path / 'c_zero.png')  # a character device: never ends
    os.symlink(tmp_path / 'd_loop.png', tmp_path / 'd_loop.png')  # a link to itself
    paths, _, _ = find_images(tmp_path)
    assert [os.path.basename(path) for path in paths] == ['a_pipe.png', 'b.png', 'c_zero.png', 'd_loop.png']
    for kwargs in ({}, {'image_size': 16}, {'limit': 1}):
        images, caught = load_within(30, tmp_path, **kwargs)
        assert isinstance(images, ImageDataset), images
        assert [os.path.basename(path) for path in images.paths] == ['b.png']
        shape = (16, 16) if 'image_size' in kwargs else (32, 32)
        assert images.data.shape[2:] == shape
        skipped = '1 unreadable image file of 2' if 'limit' in kwargs else '3 unreadable image files of 4'
        assert caught == [f'skipped {skipped} in {str(tmp_path)!r}, the first '
                          f'{str(tmp_path / "a_pipe.png")!r} (OSError: a FIFO (named pipe), not a regular file)']
    os.remove(tmp_path / 'b.png')
    error, _ = load_within(30, tmp_path)
    assert isinstance(error, ValueError)
    assert str(error).startswith('none of the 3 image files in ')
    assert 'a FIFO (named pipe), not a regular file' in str(error)


@pytest.fixture(scope='module')
def giant_png(tmp_path_factory):
    """A 13000x13000 one-bit PNG of a few KB (2.4 decoded GB in RGB): its header alone says how large it is."""
    path = tmp_path_factory.mktemp('giant') / 'giant.png'
    Image.new('1', (13000, 13000)).save(path)
    assert path.stat().st_size < 100_000
    return path


@pytest.mark.filterwarnings('ignore::PIL.Image.DecompressionBombWarning')  # 169 million pixels, on purpose
def test_images_whose_headers_say_they_would_not_fit_are_refused_before_any_is_decoded(giant_png, photos, tmp_path,
                                                                                       monkeypatch):
    for name in ('a.png', 'b.png'):
        os.symlink(giant_png, tmp_path / name)
    loaded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, 'load', lambda image: loaded.append(image.size) or real_load(image))
    monkeypatch.setattr(folders, 'available_memory', lambda: 1024 ** 3)  # half of it: 512 MiB
    with pytest.raises(ValueError, match=r"a.png' is 13000x13000 pixels: decoding it needs 322 MiB in memory "
                                         r"besides the 322 MiB the images take, more than half the 1 GiB available; "
                                         r"remove that file from .* or save it smaller"):
        load_image_folder(tmp_path)
    with pytest.raises(ValueError, match=r"2 images of 3x12000x12000 from .* need 824 MiB in memory, more than half "
                                         r"the 1 GiB available; pass limit=N or image_size=N"):
        load_image_folder(tmp_path, image_size=12000, channels=3)
    with pytest.raises(ValueError, match=r"a.png' is 13000x13000 pixels: decoding it needs [0-9.]+ MiB in memory "
                                         r"besides the 275 MiB the images take"):
        load_image_folder(tmp_path, image_size=12000)
    assert loaded == []  # nothing decoded
    # a small image among giant ones: refused by its different size before any is decoded
    Image.fromarray(patch(photos[0], 1, SMALL)).save(tmp_path / '0.png')
    loaded.clear()  # saving loads it
    with pytest.raises(ValueError, match=r'images of different sizes in .*\(first 32x32 at .*0.png.*, then '
                                         r'13000x13000 at .*a.png.*\); pass image_size=N'):
        load_image_folder(tmp_path)
    assert loaded == []
    # with memory to spare, the same folder decodes
    monkeypatch.setattr(folders, 'available_memory', lambda: 64 * 1024 ** 3)
    images = load_image_folder(tmp_path, image_size=8, limit=2, channels=1)
    assert images.data.shape == (2, 1, 8, 8) and int(images.data[1].max()) == 0


def test_a_decompression_bomb_is_skipped_from_its_header(giant_png, photos, tmp_path, monkeypatch):
    os.symlink(giant_png, tmp_path / 'bomb.png')
    Image.fromarray(patch(photos[0], 1, SMALL)).save(tmp_path / 'small.png')
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 10 ** 7)  # 13000x13000 is more than twice that: Pillow refuses it
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image file of 2 in .*, the first .*bomb.png' "
                                         r"\(DecompressionBombError: "):
        images = load_image_folder(tmp_path)
    assert images.data.shape == (1, 3, 32, 32) and [os.path.basename(path) for path in images.paths] == ['small.png']
