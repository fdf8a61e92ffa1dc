"""The main job on the user's own images (issue 13): a folder of colour photographs, the shared MNIST as PNG files,
CIFAR-10 and the convolutional VAE, each from one command, and every later command run from another folder."""
import csv
import json
import math
import os

import numpy as np
import pytest
from PIL import Image
from stand_ins import run_cli

from torchbearer_vae import load_checkpoint, model_from_checkpoint
from torchbearer_vae.cli import main

PATCH = 40  # pixels: cut from the photographs, then --image-size 32 resizes them



def write_photo_patches(root, size=PATCH):
    """scikit-learn's two photographs cut into ``size`` x ``size`` patches: ``china/`` and ``flower/``, PNG and
    JPEG in turn, and one corrupt JPEG. Returns the number of readable files."""
    from sklearn.datasets import load_sample_images

    written = 0
    for photo, name in zip(load_sample_images().images, ('china', 'flower')):
        (root / name).mkdir(parents=True)
        rows, columns = photo.shape[0] // size, photo.shape[1] // size
        for index in range(rows * columns):
            row, column = divmod(index, columns)
            patch = Image.fromarray(photo[row * size:(row + 1) * size, column * size:(column + 1) * size])
            patch.save(root / name / f'{index:04d}.{"jpg" if index % 2 else "png"}', quality=95)
            written += 1
    (root / 'china' / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 a JPEG cut after its first bytes')
    return written


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp('photos') / 'patches'
    return root, write_photo_patches(root)


@pytest.fixture(scope='module')
def colour_run(photos, tmp_path_factory):
    """``train --model conv --likelihood gaussian --sigma 0.1 --image-size 32`` on the photo patches, two epochs."""
    out = tmp_path_factory.mktemp('colour') / 'run'
    result = run_cli('train', '--dataset', f'folder:{photos[0]}', '--model', 'conv', '--likelihood', 'gaussian',
                     '--sigma', 0.1, '--image-size', 32, '--epochs', 2, '--out', out)
    assert result.returncode == 0, result.stderr
    return out, result


@pytest.mark.slow
def test_a_colour_folder_trains_the_convolutional_vae(colour_run, photos):
    out, result = colour_run
    readable = photos[1]
    assert sorted(os.listdir(out)) == ['checkpoint.pt', 'config.toml', 'kl_dims_002.png', 'latent_002.png',
                                       'loss.png', 'metrics.csv', 'reconstruction_001.png', 'reconstruction_002.png',
                                       'samples_001.png', 'samples_002.png', 'summary.json']  # china/, flower/: labels
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['image_shape'] == [3, 32, 32] and summary['train_images'] + summary['val_images'] == readable
    assert (summary['model'], summary['likelihood']) == ('conv', 'gaussian')
    options = summary['options']
    assert options['dataset'] == f'folder:{photos[0]}' and os.path.isabs(options['dataset'][len('folder:'):])
    assert (options['image_size'], options['channels'], options['sigma']) == (32, 3, 0.1)
    model = model_from_checkpoint(load_checkpoint(out / 'checkpoint.pt'))
    assert type(model).__name__ == 'ConvVAE' and model.input_shape == (3, 32, 32) and model.likelihood == 'gaussian'
    # the corrupt file: one warning line naming it, and the run went on
    assert "skipped 1 unreadable image file" in result.stderr and 'broken.jpg' in result.stderr
    assert 'Traceback' not in result.stderr and 'warnings.warn' not in result.stderr
    with open(out / 'metrics.csv') as file:
        rows = list(csv.DictReader(file))
    assert float(rows[1]['loss']) < float(rows[0]['loss'])  # it learns
    # Gaussian nats per image, summed over its 3,072 values: above a perfect reconstruction's -log N(x; x, 0.1^2),
    # and below what a mean per value could reach (-1.38); loss = recon + kl still
    perfect = 3 * 32 * 32 * (math.log(0.1) + 0.5 * math.log(2 * math.pi))
    assert perfect < float(rows[1]['val_recon']) < -100 and np.isfinite(summary['val_elbo_per_image'])
    assert float(rows[1]['loss']) == pytest.approx(float(rows[1]['recon']) + float(rows[1]['kl']), rel=1e-3)
    picture = np.asarray(Image.open(out / 'reconstruction_002.png'))
    assert picture.shape == (2 + 2 * 34, 2 + 8 * 34, 3)  # colour: three channels
    assert np.abs(picture[..., 0].astype(int) - picture[..., 2]).mean() > 2  # not grey


@pytest.mark.slow
def test_every_command_reproduces_the_folder_from_another_directory(colour_run, tmp_path):
    out = colour_run[0]
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    summary = json.loads((out / 'summary.json').read_text())
    checkpoint = out / 'checkpoint.pt'
    # the run's seed and batches: the same draws of z as its summary's (and a calibrated decoder's sigma of each)
    result = run_cli('evaluate', '--checkpoint', checkpoint, '--importance-samples', 10, '--out', 'e.json',
                     '--seed', 1, '--batch-size', 128, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((elsewhere / 'e.json').read_text())
    assert evaluation['split'] == 'val' and evaluation['images'] == summary['val_images']  # not the training images
    # the same images, decoded the same way (resized to 32, colour): the same figure
    assert evaluation['negative_elbo_per_image'] == pytest.approx(summary['val_elbo_per_image'], rel=1e-5)
    assert evaluation['iwae_nll_per_image'] < evaluation['negative_elbo_per_image']
    result = run_cli('reconstruct', '--checkpoint', checkpoint, '--num-images', 4, '--out', 'r.png', cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert np.asarray(Image.open(elsewhere / 'r.png')).shape == (2 + 2 * 34, 2 + 4 * 34, 3)
    result = run_cli('sample', '--checkpoint', checkpoint, '--num-images', 9, '--out', 's.png', cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert np.asarray(Image.open(elsewhere / 's.png')).shape == (2 + 3 * 34, 2 + 3 * 34, 3)
    assert sorted(os.listdir(elsewhere)) == ['e.json', 'r.png', 's.png']


@pytest.mark.slow
def test_mnist_written_as_png_files_trains_from_folder(mnist_png_folder, tmp_path):
    out = tmp_path / 'run'
    result = run_cli('train', '--dataset', f'folder:{mnist_png_folder}', '--epochs', 1, '--out', out, '--quiet')
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['image_shape'] == [1, 28, 28] and summary['model'] == 'mlp'  # grey: the example's VAE
    assert (summary['train_images'], summary['val_images'], summary['options']['channels']) == (9000, 1000, 1)
    assert 100 < summary['val_elbo_per_image'] < 200  # one epoch of the example's VAE on MNIST (IDX: about 160)
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    result = run_cli('evaluate', '--checkpoint', out / 'checkpoint.pt', '--out', 'e.json', cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((elsewhere / 'e.json').read_text())
    assert (evaluation['split'], evaluation['images']) == ('val', 1000)
    assert evaluation['negative_elbo_per_image'] == pytest.approx(summary['val_elbo_per_image'], abs=1.5)


@pytest.mark.slow
def test_the_convolutional_vae_reaches_the_issue_figure_on_mnist(mnist_dir, tmp_path):
    """--model conv on the shared split (9,000/1,000, seed 1), 10 epochs: at most 116.5 nats per image."""
    out = tmp_path / 'conv'
    result = run_cli('train', '--dataset', f'idx:{mnist_dir}', '--model', 'conv', '--epochs', 10, '--out', out,
                     '--quiet', timeout=3600)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert (summary['train_images'], summary['val_images'], summary['model']) == (9000, 1000, 'conv')
    assert summary['val_elbo_per_image'] <= 116.5


def test_cifar10_trains_the_fully_convolutional_vae_by_default(fake_cifar10, tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = (rng.random((120, 1, 1, 3)) * 255 * np.ones((1, 32, 32, 1))).astype(np.uint8)  # flat colours
    fake_cifar10(str(tmp_path / 'data'), images, rng.integers(0, 2, 120))
    out = tmp_path / 'run'
    assert main(['train', '--dataset', 'cifar10', '--data-dir', str(tmp_path / 'data'), '--epochs', '1',
                 '--latent-dim', '2', '--model-arg', 'channels=[4, 8]', '--out', str(out), '--quiet']) == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['image_shape'] == [3, 32, 32] and summary['model'] == 'spatial'  # colour: fully convolutional
    assert summary['options']['sigma'] == 'calibrated' and summary['options']['hidden_dim'] is None
    model = model_from_checkpoint(load_checkpoint(out / 'checkpoint.pt'))
    assert model.latent_shape == (2, 8, 8)  # --latent-dim: the values at each position of the map
    assert summary['options']['data_dir'] == str(tmp_path / 'data')
    capsys.readouterr()
    assert main(['evaluate', '--checkpoint', str(out / 'checkpoint.pt')]) == 0
    assert json.loads(capsys.readouterr().out)['images'] == summary['val_images']


def test_cifar10_offline_is_one_line_saying_what_to_do(tmp_path, capsys, monkeypatch):
    for name in ('http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY'):
        monkeypatch.setenv(name, 'http://127.0.0.1:9')  # any download fails at once, as offline
    monkeypatch.chdir(tmp_path)
    assert main(['train', '--dataset', 'cifar10', '--out', 'run']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    assert err.startswith('torchbearer-vae train: error: --dataset cifar10: CIFAR-10 is not in')
    assert 'cifar-10-batches-py' in err and '--dataset folder:DIR' in err
    assert os.listdir(tmp_path) == []  # no data folder, no run folder left behind


@pytest.mark.parametrize('args, message', [
    (['--dataset', 'digits', '--image-size', '32'], '--image-size apply to --dataset folder:DIR'),
    (['--dataset', 'digits', '--channels', '3'], '--channels apply to --dataset folder:DIR'),
    (['--dataset', 'digits', '--sigma', '0.2'], 'add --likelihood gaussian'),
    (['--dataset', 'digits', '--likelihood', 'bernoulli', '--sigma', 'calibrated'], 'add --likelihood gaussian'),
])
def test_options_that_do_not_apply_are_refused_before_any_work(args, message, tmp_path, capsys):
    assert main(['train', *args, '--out', str(tmp_path / 'run')]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('args, message', [
    (['--channels', '2'], "--channels: must be 1 (grey) or 3 (colour), got '2'"),
    (['--model', 'resnet'], "must be mlp, conv, spatial, vqvae or module:Class"),
    (['--likelihood', 'poisson'], "invalid choice: 'poisson'"),
    (['--sigma', '0'], "must be a finite number > 0 or calibrated, got '0'"),
    (['--sigma', 'learned'], "must be a finite number > 0 or calibrated, got 'learned'"),
    (['--dataset', 'folder:'], "unknown dataset 'folder:'"),
])
def test_bad_new_options_are_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main(['train', *args])
    assert exit.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize('args, message', [
    (['--hidden-dim', '64'], '--model spatial (the default for colour images) has none: leave --hidden-dim out'),
    (['--model', 'spatial', '--model-arg', 'latent_channels=8'], 'latent_channels=... is an argument the command '
                                                                 'passes itself: use --latent-dim'),
    (['--model-arg', 'chanels=[64]'], "unexpected keyword argument 'chanels'; did you mean channels?"),
    (['--model', 'conv', '--model-arg', 'zzz=1'], "'zzz'; it takes channels, use_state, logvar_clamp"),
])
def test_what_the_fully_convolutional_model_does_not_take_is_one_line_before_any_work(args, message, tmp_path,
                                                                                      capsys):
    images = tmp_path / 'images'
    images.mkdir()
    for index in range(4):
        Image.new('RGB', (8, 8), (index * 60, 0, 0)).save(images / f'{index}.png')
    assert main(['train', '--dataset', f'folder:{images}', *args, '--out', str(tmp_path / 'run'), '--quiet']) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('model, multiple', [
    ([], 4),  # spatial, the default for colour images: two stride-2 convolutions
    (['--model', 'conv', '--hidden-dim', '16'], 4),
    (['--model-arg', 'channels=[4, 4, 4]'], 8),  # spatial, three of them
])
def test_a_folder_the_convolutional_models_cannot_take_says_to_resize(model, multiple, tmp_path, capsys):
    images = tmp_path / 'images'  # beside the run's folder: never around it
    images.mkdir()
    for index in range(12):
        Image.new('RGB', (30, 30), (index * 20, 0, 0)).save(images / f'{index}.png')
    assert main(['train', '--dataset', f'folder:{images}', *model, '--out', str(tmp_path / 'run'), '--quiet']) == 2
    err = capsys.readouterr().err
    name = 'conv' if 'conv' in model else 'spatial'
    assert f'--model {name} needs images whose height and width are multiples of {multiple}' in err, err
    assert '3x30x30' in err and '--image-size 32' in err and not (tmp_path / 'run').exists()
    assert main(['train', '--dataset', f'folder:{images}', '--image-size', '8', '--epochs', '1', *model,
                 '--out', str(tmp_path / 'run'), '--quiet']) == 0  # resized: it trains
    summary = json.loads((tmp_path / 'run' / 'summary.json').read_text())
    assert summary['image_shape'] == [3, 8, 8] and summary['model'] == name


@pytest.mark.parametrize('image_size', [None, 4096])
def test_a_model_too_large_for_the_images_is_refused_before_any_image_is_decoded(image_size, tmp_path, capsys,
                                                                                 monkeypatch):
    from torchbearer_vae.data import folders
    images = tmp_path / 'images'
    images.mkdir()
    for index in range(2):  # 4096 x 4096 pictures of one colour: a few kB each, 48 MB each decoded
        Image.new('RGB', (4096, 4096), (index * 90, 40, 0)).save(images / f'{index}.png')
    decoded = []
    real_decode = folders._Decoder.decode
    monkeypatch.setattr(folders._Decoder, 'decode', lambda self, path: decoded.append(path) or real_decode(self, path))
    size = [] if image_size is None else ['--image-size', str(image_size)]
    assert main(['train', '--dataset', f'folder:{images}', *size, '--model', 'conv', '--out', str(tmp_path / 'run'),
                 '--quiet']) == 2  # its fully connected layer: 64 x 1024 x 1024 inputs
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'weights' in err and '3x4096x4096' in err and 'use smaller values' in err
    assert decoded == [] and not (tmp_path / 'run').exists()


def test_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(['train', '--dataset', f'folder:{tmp_path / "nowhere"}', '--out', str(tmp_path / 'run')]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--dataset folder:{tmp_path / 'nowhere'}: no folder" in err


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='no FIFOs on this platform')
def test_a_fifo_in_the_folder_is_skipped_by_every_command_with_one_warning(tmp_path):
    images = tmp_path / 'images'
    images.mkdir()
    for index in range(40):
        Image.fromarray(np.full((8, 8), 6 * index, dtype=np.uint8)).save(images / f'{index:02d}.png')
    os.mkfifo(images / 'pipe.png')  # opened, it would block every command forever
    warning = f"skipped 1 unreadable image file of 41 in {str(images)!r}, the first {str(images / 'pipe.png')!r} " \
              f"(OSError: a FIFO (named pipe), not a regular file)"
    result = run_cli('train', '--dataset', f'folder:{images}', '--epochs', '1', '--hidden-dim', '8', '--latent-dim',
                     '2', '--out', tmp_path / 'run', '--quiet', timeout=300)
    assert result.returncode == 0 and warning in result.stderr, result.stderr
    for command in (['reconstruct', '--num-images', '4', '--out', tmp_path / 'r.png'],
                    ['evaluate', '--out', tmp_path / 'e.json']):
        result = run_cli(command[0], '--checkpoint', tmp_path / 'run' / 'checkpoint.pt', *command[1:], timeout=300)
        assert result.returncode == 0 and warning in result.stderr, result.stderr


def write_random_crops(root, count, size, seed=0):
    """``count`` random ``size`` x ``size`` crops of scikit-learn's two photographs, in turn, as PNG files."""
    from sklearn.datasets import load_sample_images

    photos, generator = load_sample_images().images, np.random.default_rng(seed)
    root.mkdir(parents=True)
    for index in range(count):
        photo = photos[index % 2]
        top, left = (int(generator.integers(0, extent - size + 1)) for extent in photo.shape[:2])
        Image.fromarray(photo[top:top + size, left:left + size]).save(root / f'{index:04d}.png')


@pytest.mark.slow
def test_a_small_folder_of_colour_crops_trains_with_the_defaults_to_recognisable_reconstructions(tmp_path):
    """The issue's small folder, reduced: 300 crops of 32x32 seen at 16x16, the command's defaults (10 epochs).

    Measured: first, its 270 training pictures made 3 batches an epoch, 30 optimizer steps, every reconstruction
    about the mean colour (14.3 dB); an epoch going over them 33 times made 19.6 dB with the ConvVAE and --sigma 0.1;
    the fully convolutional model with the calibrated decoder, the defaults now, 22.3 dB."""
    folder, out = tmp_path / 'crops', tmp_path / 'run'
    write_random_crops(folder, 300, 32)
    result = run_cli('train', '--dataset', f'folder:{folder}', '--image-size', 16, '--out', out, '--quiet')
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert (summary['model'], summary['likelihood']) == ('spatial', 'gaussian')
    assert summary['options']['sigma'] == 'calibrated'
    assert summary['passes_per_epoch'] == 33
    assert summary['advice'] == [] and 'advice:' not in result.stderr  # a healthy run says nothing
    result = run_cli('evaluate', '--checkpoint', out / 'checkpoint.pt', '--importance-samples', 1)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)['reconstruction_psnr_db'] > 21


@pytest.mark.slow
def test_a_run_too_short_says_so_at_the_end_with_what_to_try(tmp_path):
    folder, out = tmp_path / 'crops', tmp_path / 'run'
    write_random_crops(folder, 300, 32)
    result = run_cli('train', '--dataset', f'folder:{folder}', '--image-size', 16, '--epochs', 2, '--out', out,
                     '--quiet')
    assert result.returncode == 0, result.stderr
    assert 'advice: this run took only 198 optimizer steps (2 epochs of 99 batches)' in result.stderr
    assert '--epochs 6' in result.stderr
    assert json.loads((out / 'summary.json').read_text())['advice'][0].startswith('this run took only 198')


def test_sigma_calibrated_trains_the_calibrated_decoder_and_its_checkpoint_rebuilds_it(tmp_path):
    out = tmp_path / 'run'
    assert main(['train', '--dataset', 'digits', '--likelihood', 'gaussian', '--sigma', 'calibrated', '--epochs', '1',
                 '--hidden-dim', '16', '--out', str(out), '--quiet']) == 0
    checkpoint = load_checkpoint(out / 'checkpoint.pt')
    assert checkpoint['options']['sigma'] == 'calibrated'
    assert model_from_checkpoint(checkpoint).sigma is None  # the models' calibrated decoder
    assert main(['train', '--dataset', 'digits', '--sigma', '0.2', '--epochs', '1', '--out', str(out), '--resume',
                 '--quiet']) == 2  # --resume keeps the run's


@pytest.mark.slow
def test_a_folder_is_decoded_once_then_read_from_the_cache_by_every_command(tmp_path, capsys, monkeypatch):
    from torchbearer_vae.data import folders
    images = tmp_path / 'images'
    images.mkdir()
    for index in range(40):
        Image.new('RGB', (12, 12), (index * 6, 255 - index * 6, 90)).save(images / f'{index:02d}.png')
    decoded = []
    real = folders._Decoder.decode
    monkeypatch.setattr(folders._Decoder, 'decode', lambda self, path: decoded.append(path) or real(self, path))
    cache = tmp_path / 'cache'
    train = ['train', '--dataset', f'folder:{images}', '--image-size', '8', '--epochs', '1', '--cache-dir',
             str(cache)]
    assert main([*train, '--out', str(tmp_path / 'run')]) == 0
    assert len(decoded) == 40 and f"in the cache '{cache}', memory-mapped" in capsys.readouterr().err
    decoded.clear()
    assert main([*train, '--out', str(tmp_path / 'again'), '--quiet']) == 0
    assert main(['evaluate', '--checkpoint', str(tmp_path / 'run' / 'checkpoint.pt'), '--importance-samples', '1',
                 '--cache-dir', str(cache)]) == 0
    assert decoded == []  # the second run and evaluate read the cache
    again = json.loads((tmp_path / 'again' / 'summary.json').read_text())
    first = json.loads((tmp_path / 'run' / 'summary.json').read_text())
    assert again['val_elbo_per_image'] == first['val_elbo_per_image']  # the same images, the same run
    monkeypatch.setenv('TORCHBEARER_VAE_CACHE', str(tmp_path / 'default'))
    assert main([*train[:-2], '--no-cache', '--out', str(tmp_path / 'uncached'), '--quiet']) == 0
    assert len(decoded) == 40 and not (tmp_path / 'default').exists()  # --no-cache: decoded, nothing kept
    assert main([*train[:-2], '--out', str(tmp_path / 'default-run'), '--quiet']) == 0
    assert len(os.listdir(tmp_path / 'default')) == 2  # the variable names the default cache folder
