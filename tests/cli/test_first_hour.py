"""A user's first hour with the command: one numbering of epochs, messages that point at the fix, files that do not
overwrite each other, and the runs of version 0.2 still resumed."""
import csv
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from stand_ins import run_cli

from torchbearer_vae.cli import main
from torchbearer_vae.cli.run_folder import picture_file

TINY = ['--hidden-dim', '16', '--latent-dim', '2', '--quiet']


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert 'Traceback' not in err
    return err


def usage_error(capsys, args) -> str:
    """The last line of the usage error ``args`` make (exit status 2), after checking the usage shown is theirs."""
    with pytest.raises(SystemExit) as exit:
        main(args)
    err = error_line(capsys)
    assert exit.value.code == 2 and err.startswith(f'usage: torchbearer-vae {args[0]} '), err
    return err.splitlines()[-1]


def write_images(folder, classes=(None,), count=6):
    """``count`` grey 8x8 PNGs in ``folder``, or in each of its ``classes`` subfolders."""
    for name in classes:
        where = folder if name is None else folder / name
        where.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            Image.fromarray(np.full((8, 8), 20 * index + 5, dtype=np.uint8)).save(where / f'{index}.png')
    return folder


# -- messages that point at the fix --
def test_an_idx_folder_that_does_not_exist_says_no_folder_as_folder_does(tmp_path, capsys):
    missing = tmp_path / 'nowhere'
    for prefix in ('idx:', 'folder:'):
        assert main(['train', '--dataset', f'{prefix}{missing}', '--out', str(tmp_path / 'run')]) == 2
        err = error_line(capsys)
        assert len(err.splitlines()) == 1 and f'--dataset {prefix}{missing}: no folder {str(missing)!r}' in err, err
    assert not (tmp_path / 'run').exists()


def test_a_folder_named_as_dataset_suggests_folder_prefix(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'photos').mkdir()
    line = usage_error(capsys, ['train', '--dataset', 'photos'])
    assert "unknown dataset 'photos'; it is a folder" in line and '--dataset folder:photos' in line
    line = usage_error(capsys, ['train', '--dataset', 'potatoes'])  # not a folder: the choices
    assert 'choose mnist, fashion-mnist, cifar10, digits, idx:DIR or folder:DIR' in line


@pytest.mark.parametrize('args, wrong, closest', [
    (['train', '--epohcs', '3'], '--epohcs', '--epochs'),
    (['train', '--latnet-dim=4'], '--latnet-dim=4', '--latent-dim'),
    (['sample', '--chekpoint', 'run/checkpoint.pt'], '--chekpoint', '--checkpoint'),  # not "--checkpoint missing"
    (['reconstruct', '--checkpoint', 'c.pt', '--num-imgaes', '4'], '--num-imgaes', '--num-images'),
    (['evaluate', '--checkpoint', 'c.pt', '--importance-smaples', '9'], '--importance-smaples', '--importance-samples'),
])
def test_a_mistyped_flag_shows_the_commands_usage_and_the_closest_flag(args, wrong, closest, capsys):
    assert usage_error(capsys, args) == (f'torchbearer-vae {args[0]}: error: unrecognized argument: {wrong}; did you '
                                         f'mean {closest}?')


def test_an_unknown_flag_like_none_of_ours_and_a_prefix_of_one(capsys):
    assert usage_error(capsys, ['train', '--bogus', '--zzz']).endswith('unrecognized arguments: --bogus --zzz')
    with pytest.raises(SystemExit) as exit:  # argparse's abbreviations still work: --epoch is --epochs
        main(['train', '--epoch', '0'])
    assert exit.value.code == 2 and 'argument --epochs: must be >= 1, got 0' in error_line(capsys)


@pytest.mark.parametrize('command', ['train', 'sample', 'reconstruct', 'evaluate'])
def test_every_command_help_has_a_description(command, capsys):
    with pytest.raises(SystemExit):
        main([command, '--help'])
    text = capsys.readouterr().out
    description = text.split('\n\n')[1]  # after the usage, before the options
    assert not description.lstrip().startswith(('options:', 'optional arguments:')), text
    assert len(description.split()) >= 15, description


def test_one_image_says_no_fraction_can_split_it(tmp_path, capsys):
    folder = write_images(tmp_path / 'one', count=1)
    assert main(['train', '--dataset', f'folder:{folder}', '--out', str(tmp_path / 'run'), '--quiet']) == 2
    err = error_line(capsys)
    assert err.endswith(f'--dataset folder:{folder}: 1 image cannot be split into training and validation images, '
                        f'whatever --val-fraction: give at least 2 images'), err
    assert main(['train', '--dataset', f'folder:{folder}', '--out', str(tmp_path / 'run')]) == 2
    said = capsys.readouterr().err
    assert f'--dataset folder:{folder}: 1 image of 1x8x8' in said and '1 images' not in said


def test_picture_names_sort_in_order_whatever_the_number_of_epochs():
    assert picture_file('reconstruction', 10) == 'reconstruction_{epoch:03d}.png'
    assert picture_file('samples', 12345) == 'samples_{epoch:05d}.png'
    names = [picture_file('samples', 1000).format(epoch=epoch) for epoch in range(1, 1001)]
    assert names[0] == 'samples_0001.png' and sorted(names) == names


# -- runs --
@pytest.mark.slow
def test_epochs_are_counted_from_1_in_the_log_files_csv_and_checkpoint(tmp_path):
    out = tmp_path / 'run'
    result = run_cli('train', '--dataset', 'digits', '--epochs', 2, '--out', out, *TINY[:-1], timeout=300)
    assert result.returncode == 0, result.stderr
    logged = [line.split(':')[0] for line in result.stderr.splitlines() if line.startswith('epoch ')]
    assert logged == ['epoch 1/2', 'epoch 2/2']
    assert result.stdout.startswith(f'{out}: 2 epochs, validation negative ELBO')
    pictures = sorted(name for name in os.listdir(out) if name.endswith('.png') and name != 'loss.png')
    assert pictures == ['kl_dims_002.png', 'latent_002.png', 'reconstruction_001.png', 'reconstruction_002.png',
                        'samples_001.png', 'samples_002.png']  # the last epoch's charts are epoch 2's, as logged
    with open(out / 'metrics.csv') as file:
        assert [row['epoch'] for row in csv.DictReader(file)] == ['1', '2']
    one = run_cli('train', '--dataset', 'digits', '--epochs', 1, '--out', tmp_path / 'one', *TINY, timeout=300)
    assert one.returncode == 0 and one.stdout.startswith(f'{tmp_path / "one"}: 1 epoch, validation'), one.stdout


@pytest.mark.slow
def test_a_run_of_version_0_2_with_its_pictures_numbered_from_0_resumes(tmp_path, capsys):
    out = tmp_path / 'run'
    assert main(['train', '--dataset', 'digits', '--epochs', '1', '--out', str(out), *TINY]) == 0
    for name in os.listdir(out):  # as 0.2 named them: reconstruction_0.png, ...; metrics.csv's epoch from 0
        if name.endswith('_001.png'):
            os.rename(out / name, out / name.replace('_001.png', '_0.png'))
    old = sorted(os.listdir(out))
    assert 'reconstruction_0.png' in old and 'samples_0.png' in old
    assert main(['train', '--resume', '--epochs', '2', '--out', str(out), '--quiet']) == 0
    assert set(old) <= set(os.listdir(out))  # its files are kept
    assert {'reconstruction_002.png', 'samples_002.png', 'kl_dims_002.png'} <= set(os.listdir(out))
    again = tmp_path / 'again'  # and a run folder of 0.2 that holds no checkpoint is still refused, files kept
    again.mkdir()
    shutil.copy(out / 'samples_0.png', again / 'samples_0.png')
    assert main(['train', '--dataset', 'digits', '--out', str(again), *TINY]) == 2
    assert 'samples_0.png' in error_line(capsys) and os.listdir(again) == ['samples_0.png']


@pytest.fixture(scope='module')
def conditional_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp('conditional') / 'run'
    assert main(['train', '--dataset', 'digits', '--conditional', '--epochs', '1', '--out', str(out), *TINY]) == 0
    return out / 'checkpoint.pt'


@pytest.mark.slow
def test_sample_label_writes_its_own_file_beside_the_checkpoint(conditional_checkpoint, capsys):
    for label in (3, 7):
        assert main(['sample', '--checkpoint', str(conditional_checkpoint), '--label', str(label), '--n', '4']) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith('wrote 4 samples of class 7 to ')
    folder = conditional_checkpoint.parent
    three, seven = Image.open(folder / 'samples_label3.png'), Image.open(folder / 'samples_label7.png')
    assert three.size == seven.size and not np.array_equal(np.asarray(three), np.asarray(seven))
    assert not (folder / 'samples.png').exists()
    assert main(['sample', '--checkpoint', str(conditional_checkpoint)]) == 0  # every class: samples.png
    assert (folder / 'samples.png').exists()


@pytest.mark.slow
def test_counts_of_one_read_right(conditional_checkpoint, tmp_path, capsys):
    assert main(['sample', '--checkpoint', str(conditional_checkpoint), '--label', '1', '--n', '1',
                 '--out', str(tmp_path / 'one.png')]) == 0
    assert capsys.readouterr().out.startswith('wrote 1 sample of class 1 to ')
    assert main(['sample', '--checkpoint', str(conditional_checkpoint), '--n', '10', '--out',
                 str(tmp_path / 'rows.png')]) == 0
    assert capsys.readouterr().out.startswith('wrote 10 rows of 1 sample, one row per class')
    assert main(['reconstruct', '--checkpoint', str(conditional_checkpoint), '--n', '1', '--out',
                 str(tmp_path / 'recon.png')]) == 0
    assert capsys.readouterr().out.startswith('wrote 1 image and its reconstruction to ')


@pytest.mark.slow
def test_the_latent_chart_names_a_folders_classes(tmp_path):
    # Two runs on the same pictures, seeded alike, whose class folders have other names: the same points,
    # so the charts differ only where the legend names the classes.
    charts, bars = [], []
    for names in (('cat', 'dog'), ('a_rather_long_class_name', 'another_long_one')):
        images = write_images(tmp_path / '-'.join(names), classes=names, count=10)
        out = tmp_path / f'run-{names[0]}'
        assert main(['train', '--dataset', f'folder:{images}', '--epochs', '1', '--out', str(out), *TINY]) == 0
        charts.append(np.asarray(Image.open(out / 'latent_001.png').convert('L'), dtype=int))
        bars.append(np.asarray(Image.open(out / 'kl_dims_001.png')))
    assert np.array_equal(*bars)  # the same training ...
    assert charts[0].shape == charts[1].shape and (charts[0] != charts[1]).sum() > 100  # ... other words drawn
