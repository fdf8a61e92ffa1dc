"""IDX files are untrusted: FIFOs, devices, gzip bombs, truncated or corrupt files fail at once with one clear error.

And ``limit`` reads (and decompresses) only the images it keeps.
"""
import gzip
import os
import subprocess
import sys
import threading
import tracemalloc
import zlib

import pytest
import torch

from torchbearer_vae import IDXDataset, read_idx

MB = 1 << 20


def header(shape, kind=0x08):
    return bytes([0, 0, kind, len(shape)]) + b''.join(size.to_bytes(4, 'big') for size in shape)


def gzip_of(head, zeros, chunk=MB):
    """A gzip of ``head`` followed by ``zeros`` zero bytes, compressed without holding them in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    parts, block = [compressor.compress(head)], bytes(chunk)
    for start in range(0, zeros, chunk):
        parts.append(compressor.compress(block[:min(chunk, zeros - start)]))
    parts.append(compressor.flush())
    return b''.join(parts)


def peak_bytes(function):
    """The result of ``function()`` (or the error it raised) and the peak of Python/numpy/torch allocations."""
    tracemalloc.start()
    try:
        try:
            result = function()
        except (ValueError, FileNotFoundError) as error:
            result = error
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assert_clear(error, path, *phrases):
    """One error naming the file and the fix, not a traceback from gzip/zlib/numpy internals."""
    message = str(error)
    assert os.fspath(path) in message
    for phrase in phrases:
        assert phrase in message, message
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


# -- files that are not regular files --
def test_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / 't10k-images-idx3-ubyte'
    os.mkfifo(fifo)
    outcome = []

    def read():
        try:
            read_idx(fifo)
        except ValueError as error:
            outcome.append(error)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout=20)
    if thread.is_alive():  # a regression: release the blocked reader so that the suite goes on
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail('read_idx blocked on a FIFO')
    assert len(outcome) == 1
    assert_clear(outcome[0], fifo, 'FIFO', 'regular files only', 'save it to a file first')


def test_symlink_to_a_device_is_refused(tmp_path):
    link = tmp_path / 'images.gz'
    os.symlink('/dev/null', link)  # a device that ends at once: a regression shows in the message, not in memory
    with pytest.raises(ValueError) as caught:
        read_idx(link)
    assert_clear(caught.value, link, 'a character device, not an IDX file')


@pytest.mark.slow
def test_symlink_to_dev_zero_fails_at_once_without_growing_memory(tmp_path):
    link = tmp_path / 'images'
    os.symlink('/dev/zero', link)
    code = ('import resource, sys\n'
            'from torchbearer_vae import read_idx\n'
            'resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))  # a regression dies here, not the machine\n'
            'try:\n'
            '    read_idx(sys.argv[1])\n'
            'except ValueError as error:\n'
            '    print(error)\n')
    result = subprocess.run([sys.executable, '-c', code, str(link)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'is a character device, not an IDX file' in result.stdout


def test_folder_is_refused_by_read_idx_idx_dataset_and_from_folder(tmp_path, mnist_dir):
    with pytest.raises(ValueError) as caught:
        read_idx(tmp_path)
    assert_clear(caught.value, tmp_path, 'is a folder, not an IDX file', 'IDXDataset.from_folder')
    with pytest.raises(ValueError, match='is a folder'):
        IDXDataset(tmp_path)
    # A folder named like the images file (a bad unpacking) is named in the error, not skipped or chosen silently.
    (tmp_path / 't10k-images-idx3-ubyte').mkdir()
    os.symlink(os.path.join(mnist_dir, 't10k-labels-idx1-ubyte.gz'), tmp_path / 't10k-labels-idx1-ubyte.gz')
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte' is a folder"):
        IDXDataset.from_folder(tmp_path)
    # With the real file next to it, the file is the one read.
    os.symlink(os.path.join(mnist_dir, 't10k-images-idx3-ubyte.gz'), tmp_path / 't10k-images-idx3-ubyte.gz')
    assert len(IDXDataset.from_folder(tmp_path, limit=5)) == 5


def test_missing_file_is_file_not_found_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"IDX file '.*nothing-here.gz' does not exist"):
        read_idx(tmp_path / 'nothing-here.gz')


# -- gzip bombs and lying headers: memory bounded by what is used --
def test_limit_decompresses_only_the_images_it_reads(tmp_path):
    path = tmp_path / 'bomb.gz'  # announces 10**6 28x28 images (784 MB) but holds 100 MB of zeros in ~100 kB
    path.write_bytes(gzip_of(header((10 ** 6, 28, 28)), 100 * MB))
    assert path.stat().st_size < MB
    images, peak = peak_bytes(lambda: read_idx(path, limit=200))
    assert images.shape == (200, 28, 28) and images.dtype == torch.uint8 and not images.any()
    assert peak < 2 * MB  # 200 images are 157 kB: neither the 100 MB nor the 784 MB announced were allocated


def test_header_announcing_more_than_the_gzip_can_hold_is_refused_before_reading(tmp_path):
    path = tmp_path / 'bomb.gz'
    path.write_bytes(gzip_of(header((10 ** 6, 28, 28)), 100 * MB))
    error, peak = peak_bytes(lambda: read_idx(path))
    assert isinstance(error, ValueError)
    assert_clear(error, path, 'is corrupt', '(1000000, 28, 28)', 'more than a gzip file of', 'download it again')
    assert peak < MB  # refused from the sizes alone: nothing decompressed
    huge = tmp_path / 'huge.gz'  # 2**32 - 1 images: the count alone would be 3 TB
    huge.write_bytes(gzip.compress(header((2 ** 32 - 1, 28, 28)) + bytes(784 * 3)))
    error, peak = peak_bytes(lambda: read_idx(huge))
    assert isinstance(error, ValueError) and 'more than a gzip file of' in str(error) and peak < MB
    assert read_idx(huge, limit=3).shape == (3, 28, 28)  # the images it has can still be read


def test_reading_stops_at_the_announced_size(tmp_path):
    path = tmp_path / 'padded.gz'  # announces 1,000 images (784 kB) but decompresses to 100 MB more
    path.write_bytes(gzip_of(header((1000, 28, 28)), 100 * MB))
    error, peak = peak_bytes(lambda: read_idx(path))
    assert isinstance(error, ValueError)
    assert_clear(error, path, 'holds more data than its header announces (1000, 28, 28)', 'download it again')
    assert peak < 4 * MB  # the 784 kB announced and one chunk, not the 100 MB
    assert read_idx(path, limit=1000).shape == (1000, 28, 28)  # a limit reads what it uses and no further


def test_gzip_shorter_than_announced_is_truncated(tmp_path):
    path = tmp_path / 'short.gz'  # random pixels: a gzip that could hold the 1,000 images announced, but holds 10
    pixels = torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    path.write_bytes(gzip.compress(header((1000, 28, 28)) + pixels.numpy().tobytes()))
    with pytest.raises(ValueError) as caught:
        read_idx(path)
    assert_clear(caught.value, path, 'truncated or corrupt', 'its data ends after 7840 bytes')
    assert torch.equal(read_idx(path, limit=10), pixels)


@pytest.mark.parametrize('extra, message', [(-1, 'holds 783 bytes of data'), (1, 'holds 785 bytes of data')])
def test_raw_file_size_is_checked_before_reading(tmp_path, extra, message):
    path = tmp_path / 'raw'
    path.write_bytes(header((1, 28, 28)) + bytes(784 + extra))
    with pytest.raises(ValueError) as caught:
        read_idx(path)
    assert_clear(caught.value, path, message)


def test_raw_file_with_a_huge_count_reads_its_first_images(tmp_path):
    values = torch.arange(24, dtype=torch.int32).reshape(4, 2, 3) - 5
    path = tmp_path / 'raw-int32'  # announces 10**9 items but holds 4
    path.write_bytes(header((10 ** 9, 2, 3), kind=0x0C) + values.numpy().astype('>i4').tobytes())
    with pytest.raises(ValueError, match='truncated or corrupt'):
        read_idx(path)
    assert torch.equal(read_idx(path, limit=4), values)  # big-endian int32, converted
    with pytest.raises(ValueError, match='holds 96 bytes of data'):
        read_idx(path, limit=5)


# -- truncated, corrupt, empty --
def test_truncated_and_corrupt_gzip_are_one_clear_value_error(tmp_path, mnist_dir):
    real = open(os.path.join(mnist_dir, 't10k-labels-idx1-ubyte.gz'), 'rb').read()
    cases = {
        'cut.gz': (real[:len(real) // 2], 'truncated or corrupt gzip'),  # EOFError inside gzip
        'flipped.gz': (real[:200] + bytes(b ^ 0xFF for b in real[200:400]) + real[400:], 'truncated or corrupt gzip'),
        'crc.gz': (real[:-8] + bytes(b ^ 0xFF for b in real[-8:-4]) + real[-4:], 'CRC check failed'),
        'garbage-after.gz': (real + b'not gzip', 'truncated or corrupt gzip'),
        'not-gzip-after-magic.gz': (b'\x1f\x8b' + b'\x00' * 30, 'truncated or corrupt gzip'),
    }
    for name, (content, phrase) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError) as caught:
            read_idx(path)
        assert_clear(caught.value, path, phrase, 'download it again')


def test_empty_file_and_empty_gzip(tmp_path):
    for name, content in (('empty', b''), ('empty.gz', gzip.compress(b''))):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError) as caught:
            read_idx(path)
        assert_clear(caught.value, path, 'is empty, not an IDX file', 'download it again')
    short = tmp_path / 'short-header'
    short.write_bytes(bytes([0, 0, 8, 3]) + (5).to_bytes(4, 'big'))
    with pytest.raises(ValueError, match='header ends before its 3 dimensions'):
        read_idx(short)


def test_idx_dataset_with_no_images_or_mismatched_labels(tmp_path):
    none = tmp_path / 'none'
    none.write_bytes(header((0, 28, 28)))
    assert read_idx(none).shape == (0, 28, 28)  # a valid, empty array
    with pytest.raises(ValueError, match="none' holds no images"):
        IDXDataset(none)
    images, labels = tmp_path / 'images', tmp_path / 'labels'
    images.write_bytes(header((3, 2, 2)) + bytes(12))
    labels.write_bytes(header((2,)) + bytes(2))
    for limit in (None, 1):  # compared by the counts the headers announce, not by what a limit read
        with pytest.raises(ValueError, match=r'labels of shape \(2,\) for the 3 images'):
            IDXDataset(images, labels, limit=limit)


# -- limit on the real files --
def test_limit_reads_the_first_images_of_the_real_mnist(mnist_dir, mnist):
    path = os.path.join(mnist_dir, 't10k-images-idx3-ubyte.gz')
    first, peak = peak_bytes(lambda: read_idx(path, limit=200))
    assert torch.equal(first, mnist.data[:200])
    assert peak < MB  # not the 7.8 MB of the whole file
    assert torch.equal(read_idx(path, limit=20000), mnist.data)  # more than there are: all of them
    data = IDXDataset.from_folder(mnist_dir, limit=300)
    assert len(data) == 300 and torch.equal(data.data, mnist.data[:300])
    assert torch.equal(data.targets, mnist.targets[:300])
    assert torch.equal(data[299][0], mnist[299][0]) and data[299][1] == mnist[299][1]


@pytest.mark.parametrize('limit, error, message', [
    (0, ValueError, 'limit must be an int >= 1, got 0'),
    (-5, ValueError, 'limit must be an int >= 1, got -5'),
    (1.5, TypeError, 'limit must be an int >= 1, got 1.5'),
    (True, TypeError, 'limit must be an int >= 1, got True'),
])
def test_bad_limit(mnist_dir, limit, error, message):
    with pytest.raises(error, match=message):
        read_idx(os.path.join(mnist_dir, 't10k-labels-idx1-ubyte.gz'), limit=limit)
    with pytest.raises(error, match=message):
        IDXDataset.from_folder(mnist_dir, limit=limit)


def test_limit_is_keyword_only(mnist_dir):
    with pytest.raises(TypeError):
        read_idx(os.path.join(mnist_dir, 't10k-labels-idx1-ubyte.gz'), 10)
