"""The cache of decoded folders: a second load decodes nothing, and any change to the folder or the cache is noticed.

The folders are patches of scikit-learn's two photographs, written as PNG files.
"""
import json
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from torchbearer_vae import CACHE_ENV, TensorLoader, default_cache_dir, load_image_folder
from torchbearer_vae.data import folders

pytestmark = pytest.mark.filterwarnings('ignore:skipped 1 unreadable image file')  # the corrupt file, said each time


@pytest.fixture(scope='module')
def photos():
    from sklearn.datasets import load_sample_images
    return load_sample_images().images


@pytest.fixture
def folder(photos, tmp_path):
    """30 patches of 24 x 20 in two class folders, and a corrupt file: ``(root, cache folder)``."""
    root = tmp_path / 'photos'
    for index in range(30):
        photo = photos[index % 2]
        (root / ('china', 'flower')[index % 2]).mkdir(parents=True, exist_ok=True)
        top, left = 11 * index, 17 * index
        Image.fromarray(photo[top:top + 24, left:left + 20]).save(root / ('china', 'flower')[index % 2] /
                                                                  f'{index:02d}.png')
    (root / 'china' / 'broken.png').write_bytes(b'not an image')
    return root, tmp_path / 'cache'


@pytest.fixture
def decoded(monkeypatch):
    """The files decoded (Pillow's pixels read), in order."""
    paths = []
    real = folders._Decoder.decode
    monkeypatch.setattr(folders._Decoder, 'decode', lambda self, path: paths.append(path) or real(self, path))
    return paths


def load(root, cache, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        images = load_image_folder(root, cache_dir=cache, **kwargs)
    return images, [str(warning.message) for warning in caught]


def test_a_second_load_decodes_nothing_and_gives_the_same_dataset(folder, decoded):
    root, cache = folder
    first, said = load(root, cache, image_size=16)
    assert len(decoded) == 30 and any('skipped 1 unreadable image file' in line for line in said)
    fresh = load_image_folder(root, image_size=16)  # without the cache: the reference
    decoded.clear()
    second, said_again = load(root, cache, image_size=16)
    assert decoded == []  # read from the cache
    assert torch.equal(second.data, fresh.data) and torch.equal(second.targets, fresh.targets)
    assert second.classes == fresh.classes == ['china', 'flower'] and second.paths == fresh.paths
    assert said_again == said  # the skipped file is said again: the data still lacks it
    assert sorted(name.rsplit('.', 1)[1] for name in os.listdir(cache)) == ['json', 'u8']  # one entry, no leftover
    batch = next(iter(TensorLoader(second, batch_size=8)))  # batches gathered from the mapped file
    assert torch.equal(batch[0], next(iter(TensorLoader(fresh, batch_size=8)))[0])


def test_each_preprocessing_has_its_own_entry(folder, decoded):
    root, cache = folder
    load(root, cache, image_size=16)
    load(root, cache, image_size=8, channels=1)
    load(root, cache, image_size=16, limit=5)
    assert len(decoded) == 30 + 30 + 5 and len([name for name in os.listdir(cache) if name.endswith('.json')]) == 3
    decoded.clear()
    small, _ = load(root, cache, image_size=8, channels=1)
    limited, _ = load(root, cache, image_size=16, limit=5)
    assert decoded == [] and small.data.shape == (30, 1, 8, 8) and limited.data.shape == (5, 3, 16, 16)


@pytest.mark.parametrize('change', ['edit', 'add', 'remove', 'touch'])
def test_editing_adding_or_removing_an_image_decodes_the_folder_again(change, folder, decoded):
    root, cache = folder
    load(root, cache, image_size=16)
    target = root / 'flower' / '01.png'
    if change == 'edit':  # the same size in bytes, other pixels
        pixels = np.asarray(Image.open(target))
        Image.fromarray(255 - pixels).save(target)
    elif change == 'add':
        Image.new('RGB', (30, 30), (9, 200, 9)).save(root / 'flower' / '99.png')
    elif change == 'remove':
        target.unlink()
    else:  # only its modification time
        os.utime(target, ns=(os.stat(target).st_atime_ns, os.stat(target).st_mtime_ns + 10 ** 9))
    decoded.clear()
    again, said = load(root, cache, image_size=16)
    assert len(decoded) == {'add': 31, 'remove': 29}.get(change, 30)  # every file decoded again
    assert not any('is damaged (' in line for line in said)  # a changed folder is not a damaged cache
    assert torch.equal(again.data, load_image_folder(root, image_size=16).data)
    assert len([name for name in os.listdir(cache) if name.endswith('.u8')]) == 1  # the old images are gone


def _entry(cache):
    (description,) = [cache / name for name in os.listdir(cache) if name.endswith('.json')]
    return description, cache / json.loads(description.read_text())['data']


@pytest.mark.parametrize('damage', ['flip a byte', 'cut short', 'lengthen', 'remove the images', 'garbage',
                                    'edit the shape', 'name another file', 'edit the read files'])
def test_a_damaged_cache_is_never_trusted_and_rebuilt_with_one_warning(damage, folder, decoded):
    root, cache = folder
    load(root, cache, image_size=16)
    description, images = _entry(cache)
    described = json.loads(description.read_text())
    if damage == 'flip a byte':
        data = bytearray(images.read_bytes())
        data[1000] ^= 0xFF
        images.write_bytes(bytes(data))
    elif damage == 'cut short':
        images.write_bytes(images.read_bytes()[:-1])
    elif damage == 'lengthen':
        images.write_bytes(images.read_bytes() + b'\0')
    elif damage == 'remove the images':
        images.unlink()
    elif damage == 'garbage':
        description.write_text('{"format": 1, "shape": [')
    elif damage == 'edit the shape':
        described['shape'] = [15, 3, 16, 32]  # as many bytes, read as other images
        description.write_text(json.dumps(described))
    elif damage == 'name another file':
        (root.parent / 'elsewhere.u8').write_bytes(images.read_bytes())
        described['data'] = '../elsewhere.u8'
        description.write_text(json.dumps(described))
    else:
        described['read'] = described['read'][::-1]
        description.write_text(json.dumps(described))
    decoded.clear()
    again, said = load(root, cache, image_size=16)
    warned = [line for line in said if 'is damaged (' in line]
    assert len(warned) == 1 and repr(str(root)) in warned[0] and 'decoding the folder again' in warned[0], said
    assert len(decoded) == 30 and torch.equal(again.data, load_image_folder(root, image_size=16).data)
    decoded.clear()
    assert load(root, cache, image_size=16)[0].data.shape == again.data.shape and decoded == []  # rebuilt


def test_a_cache_folder_that_cannot_be_written_is_said_and_the_images_decoded_into_memory(folder, tmp_path):
    root, _ = folder
    blocked = tmp_path / 'a-file'
    blocked.write_text('not a folder')
    images, said = load(root, blocked / 'cache', image_size=16)
    assert images.data.shape == (30, 3, 16, 16)
    assert any('cannot keep the decoded images' in line and 'decoding them into memory' in line for line in said)


def test_a_folder_larger_than_the_memory_is_decoded_into_the_cache_instead_of_refused(folder, monkeypatch):
    root, cache = folder
    monkeypatch.setattr(folders, 'available_memory', lambda: 40_000)  # half: less than 30 x 3 x 16 x 16 bytes
    with pytest.raises(ValueError, match='more than half the'):
        load_image_folder(root, image_size=16)
    images, _ = load(root, cache, image_size=16)
    monkeypatch.undo()
    assert torch.equal(images.data, load_image_folder(root, image_size=16).data)


def test_a_cache_without_the_disk_space_is_refused_before_any_image_is_decoded(folder, decoded, monkeypatch):
    from collections import namedtuple

    from torchbearer_vae.data import cache as cache_module
    root, cache = folder
    usage = namedtuple('usage', 'total used free')
    monkeypatch.setattr(cache_module.shutil, 'disk_usage', lambda path: usage(10 ** 6, 10 ** 6 - 100, 100))
    with pytest.raises(ValueError, match=r'need .* in the cache .* has .* free; give another cache folder'):
        load_image_folder(root, image_size=16, cache_dir=cache)
    assert decoded == [] and not [name for name in os.listdir(cache) if not name.startswith('.')]


def test_the_default_cache_folder_is_the_variables_or_the_users(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / 'mine'))
    assert default_cache_dir() == str(tmp_path / 'mine')
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert default_cache_dir() == str(tmp_path / 'xdg' / 'torchbearer-vae')


def test_channels_asked_for_are_served_by_an_entry_that_made_them_and_by_no_other(folder, decoded):
    root, cache = folder
    load(root, cache, image_size=16)  # colour photographs: 3 channels
    decoded.clear()
    assert load(root, cache, image_size=16, channels=3)[0].data.shape[1] == 3 and decoded == []  # what evaluate asks
    grey, _ = load(root, cache, image_size=16, channels=1)
    assert grey.data.shape[1] == 1 and len(decoded) == 30  # not the colour entry
    assert torch.equal(grey.data, load_image_folder(root, image_size=16, channels=1).data)


def _load_in_a_process(arguments):
    root, cache = arguments
    import warnings

    from torchbearer_vae import load_image_folder
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return load_image_folder(root, image_size=16, cache_dir=cache).data.sum().item()


@pytest.mark.slow
def test_processes_building_the_same_entry_at_once_each_get_the_images_and_leave_one_entry(folder):
    import multiprocessing
    root, cache = folder
    expected = load_image_folder(root, image_size=16).data.sum().item()
    with multiprocessing.get_context('spawn').Pool(3) as pool:  # as the ranks of a distributed run may
        sums = pool.map(_load_in_a_process, [(str(root), str(cache))] * 3)
    assert sums == [expected] * 3
    assert sorted(name.rsplit('.', 1)[1] for name in os.listdir(cache)) == ['json', 'u8']  # no temporary file left


@pytest.mark.parametrize('damage', ['fifo', 'huge'])
def test_a_description_that_is_not_a_small_regular_file_is_not_read(damage, folder, decoded):
    root, cache = folder
    load(root, cache, image_size=16)
    description, _ = _entry(cache)
    description.unlink()
    if damage == 'fifo':
        os.mkfifo(description)  # opening it to read would wait for a writer forever
    else:
        description.write_bytes(b' ' * (2 << 20))
    decoded.clear()
    again, said = load(root, cache, image_size=16)
    assert any('is not a regular file of a description' in line for line in said) and len(decoded) == 30
    assert description.is_file()  # replaced by a real description


def test_a_full_disk_while_the_cache_is_written_is_an_error_and_leaves_no_file(folder, decoded, monkeypatch):
    import errno
    root, cache = folder

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(os, 'posix_fallocate', full)
    with pytest.raises(OSError, match='No space left'):
        load_image_folder(root, image_size=16, cache_dir=cache)
    assert os.listdir(cache) == []  # the temporary file removed
