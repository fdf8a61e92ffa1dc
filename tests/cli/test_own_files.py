"""Nothing a user made is overwritten, and a run never reads its own output (issue 23, part 4).

``train --out`` writes only into a folder that is empty, new, or its own run (recognised by the record the run
wrote when it started, not by the names of its files).
"""
import os
import shutil
import stat

import pytest
import torch

from torchbearer_vae import load_checkpoint
from torchbearer_vae.cli.main import main
from torchbearer_vae.cli.run_folder import RunFolder

LOCK, RUN = '.torchbearer-vae.lock', '.torchbearer-vae.run'
DIGITS = ['--dataset', 'digits', '--epochs', '1', '--hidden-dim', '16', '--latent-dim', '2', '--quiet']


def error_line(capsys) -> str:
    """The one error line on stderr (after the notice of the data a resumed run's checkpoint names, if any)."""
    err = capsys.readouterr().err.strip()
    *notices, line = err.splitlines()
    assert all(notice.startswith('reading --dataset ') for notice in notices) and len(notices) <= 1, err
    assert 'Traceback' not in err, err
    return line


def snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


# -- train --out: a user's files --
@pytest.mark.parametrize('name', ['samples_0.png', 'reconstruction_0.png', 'notes.txt', LOCK, RUN])
def test_train_keeps_a_users_file_in_out_and_is_refused(name, tmp_path, capsys):
    out = tmp_path / 'mine'
    out.mkdir()
    (out / name).write_bytes(b'my own file')
    assert main(['train', *DIGITS, '--out', str(out)]) == 2
    err = error_line(capsys)
    assert name in err and 'choose another --out' in err
    assert snapshot(out) == {name: b'my own file'}  # kept, and nothing written beside it


@pytest.mark.parametrize('files', [
    {LOCK: b''},  # an empty file of the lock's name, alone
    {LOCK: b'999999\n'},  # a lock file's content, but no run beside it
    {LOCK: b'12345\n', 'notes.txt': b'my notes'},  # refused for the notes: the lock file must stay as it is too
])
def test_a_lock_file_without_its_run_beside_it_is_the_users_and_is_kept(files, tmp_path, capsys):
    out = tmp_path / 'mine'
    out.mkdir()
    for name, content in files.items():
        (out / name).write_bytes(content)
    assert main(['train', *DIGITS, '--out', str(out)]) == 2
    err = error_line(capsys)
    assert LOCK in err and 'is kept' in err
    assert snapshot(out) == files  # byte for byte, nothing written beside them


@pytest.mark.parametrize('target', ['/dev/zero', 'missing-file', 'a-fifo'])
def test_a_lock_file_that_is_a_link_or_not_a_regular_file_is_never_followed_nor_read(target, tmp_path, capsys):
    out, elsewhere = tmp_path / 'run', tmp_path / 'elsewhere'
    out.mkdir()
    elsewhere.mkdir()
    if target == 'a-fifo':
        os.mkfifo(out / LOCK)
    else:  # /dev/zero would be read without end; a link to a missing file would create it outside --out
        os.symlink(target if target.startswith('/') else elsewhere / target, out / LOCK)
    assert main(['train', *DIGITS, '--out', str(out)]) == 2
    err = error_line(capsys)
    assert LOCK in err and 'is kept' in err and ('symbolic link' in err or 'not a regular file' in err)
    assert os.listdir(out) == [LOCK] and os.listdir(elsewhere) == []


@pytest.mark.slow
def test_resume_keeps_a_users_picture_where_the_run_would_write_one(tmp_path, capsys):
    out = tmp_path / 'run'
    assert main(['train', *DIGITS, '--limit', '200', '--out', str(out)]) == 0
    users_picture(out / 'samples_002.png')  # the name of the next epoch's samples
    mine = (out / 'samples_002.png').read_bytes()
    capsys.readouterr()
    assert main(['train', '--resume', '--epochs', '2', '--quiet', '--out', str(out)]) == 2
    err = error_line(capsys)
    assert 'samples_002.png' in err and 'did not write' in err and 'move them away, then --resume' in err
    assert (out / 'samples_002.png').read_bytes() == mine and load_checkpoint(out / 'checkpoint.pt')['epoch'] == 1
    (out / 'samples_002.png').unlink()
    os.mkfifo(out / 'samples_002.png')  # never opened: it would block
    assert main(['train', '--resume', '--epochs', '2', '--quiet', '--out', str(out)]) == 2
    assert 'samples_002.png' in error_line(capsys) and stat.S_ISFIFO(os.lstat(out / 'samples_002.png').st_mode)
    (out / 'samples_002.png').unlink()
    assert main(['train', '--resume', '--epochs', '2', '--quiet', '--out', str(out)]) == 0
    assert load_checkpoint(out / 'checkpoint.pt')['epoch'] == 2


@pytest.mark.slow
def test_train_writes_into_an_empty_folder_and_starts_over_a_run_of_its_own_stopped_in_its_first_epoch(tmp_path):
    out = tmp_path / 'empty'
    out.mkdir()
    assert main(['train', *DIGITS, '--out', str(out)]) == 0
    assert (out / 'samples_001.png').is_file() and not (out / LOCK).exists()
    assert not (out / RUN).exists()  # the checkpoint records the run from its first epoch on
    stopped = tmp_path / 'stopped'  # a run stopped before its first checkpoint: its record and a picture
    folder = RunFolder(stopped)
    folder.open()
    folder.check_new_run()
    (stopped / 'samples_001.png').write_bytes(b'half written')
    folder.close()
    assert sorted(os.listdir(stopped)) == [RUN, 'samples_001.png']
    assert main(['train', *DIGITS, '--out', str(stopped)]) == 0
    assert (stopped / 'samples_001.png').read_bytes() == (out / 'samples_001.png').read_bytes()  # the same seed
    assert sorted(os.listdir(stopped)) == sorted(os.listdir(out))


@pytest.mark.slow
def test_a_run_recorded_by_name_only_is_not_a_run(tmp_path, capsys):
    out = tmp_path / 'mine'
    out.mkdir()
    (out / RUN).write_text('{"mine": true}')  # a file of the record's name, but not a run's record
    (out / 'samples_0.png').write_bytes(b'my own file')
    assert main(['train', *DIGITS, '--out', str(out)]) == 2
    assert 'samples_0.png' in error_line(capsys)
    assert snapshot(out) == {RUN: b'{"mine": true}', 'samples_0.png': b'my own file'}


@pytest.mark.slow
def test_a_refused_run_leaves_a_new_folder_unmade(tmp_path, capsys):
    out = tmp_path / 'new' / 'run'
    assert main(['train', '--dataset', f'folder:{tmp_path / "nowhere"}', '--out', str(out), '--quiet']) == 2
    error_line(capsys)
    assert not (tmp_path / 'new').exists()


@pytest.mark.slow
def test_resume_needs_its_own_run(tmp_path, capsys):
    out = tmp_path / 'run'
    assert main(['train', *DIGITS, '--out', str(out)]) == 0
    assert main(['train', '--resume', '--epochs', '2', '--quiet', '--out', str(out)]) == 0
    assert not (out / RUN).exists()
    capsys.readouterr()
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'samples_0.png').write_bytes(b'my own file')
    assert main(['train', '--resume', '--epochs', '2', '--quiet', '--out', str(mine)]) == 2
    assert 'no checkpoint at' in error_line(capsys)
    assert snapshot(mine) == {'samples_0.png': b'my own file'}


# -- sample, reconstruct, evaluate --out: a file the command did not write is kept unless --force --
@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A run of a few steps on scikit-learn's digits: its checkpoint.pt."""
    out = tmp_path_factory.mktemp('own') / 'run'
    assert main(['train', *DIGITS, '--limit', '300', '--out', str(out)]) == 0
    return out / 'checkpoint.pt'


def users_picture(path):
    from PIL import Image
    Image.new('RGB', (12, 10), (200, 30, 30)).save(path)
    return path.read_bytes()


@pytest.mark.parametrize('command, out, default', [
    ('sample', 'photo.jpg', None),
    ('sample', 'photo.png', None),
    ('reconstruct', 'pictures/', 'recon.png'),
    ('evaluate', 'config.json', None),
])
def test_a_file_the_command_did_not_write_is_kept_unless_force(command, out, default, checkpoint, tmp_path, capsys):
    target = tmp_path / out / default if default else tmp_path / out
    target.parent.mkdir(exist_ok=True)
    mine = target.write_bytes(b'{"lr": 0.1}') and b'{"lr": 0.1}' if command == 'evaluate' else users_picture(target)
    given = str(tmp_path / out) + ('/' if out.endswith('/') else '')
    args = [command, '--checkpoint', str(checkpoint), '--num-images' if command != 'evaluate' else '--limit', '4',
            '--out', given]
    assert main(args) == 2
    err = error_line(capsys)
    assert f"--out '{target}' exists and was not written by torchbearer-vae" in err and '--force' in err, err
    assert target.read_bytes() == mine  # kept
    assert main(args + ['--force']) == 0
    assert target.read_bytes() != mine
    capsys.readouterr()
    assert main(args) == 0  # its own file now: the same command again replaces it
    assert target.stat().st_size > 0


def test_a_picture_of_another_kind_is_still_refused_with_the_way_out(checkpoint, tmp_path, capsys):
    notes = tmp_path / 'notes.png'
    notes.write_text('my notes')
    assert main(['sample', '--checkpoint', str(checkpoint), '--n', '4', '--out', str(notes)]) == 2
    assert 'exists and is not a PNG image this command writes; it is kept' in error_line(capsys)
    assert notes.read_text() == 'my notes'
    before = checkpoint.read_bytes()
    assert main(['evaluate', '--checkpoint', str(checkpoint), '--out', str(checkpoint), '--force']) == 2  # its input
    assert 'is the checkpoint this command reads' in error_line(capsys)
    assert checkpoint.read_bytes() == before


def test_a_link_to_a_missing_file_is_kept_unless_force(checkpoint, tmp_path, capsys):
    link = tmp_path / 'dangling.png'
    link.symlink_to(tmp_path / 'missing.png')
    assert main(['sample', '--checkpoint', str(checkpoint), '--n', '4', '--out', str(link)]) == 2
    assert 'is a symbolic link to a missing file; it is kept' in error_line(capsys)
    assert link.is_symlink() and not (tmp_path / 'missing.png').exists()
    assert main(['sample', '--checkpoint', str(checkpoint), '--n', '4', '--out', str(link), '--force']) == 0
    capsys.readouterr()
    assert link.is_file()


def test_the_default_output_beside_the_checkpoint_is_rewritten_on_every_run(checkpoint, capsys):
    for command, name in (('sample', 'samples.png'), ('reconstruct', 'recon.png'), ('evaluate', 'evaluation.json')):
        for _ in range(2):
            count = '--limit' if command == 'evaluate' else '--num-images'
            assert main([command, '--checkpoint', str(checkpoint), count, '4']) == 0, capsys.readouterr().err
        assert (checkpoint.parent / name).is_file()


# -- a run never reads its own output: --out and a folder: dataset apart --
@pytest.fixture
def images(tmp_path):
    """A folder of 40 small grey pictures (scikit-learn's digits)."""
    from PIL import Image
    from sklearn.datasets import load_digits
    folder = tmp_path / 'images'
    folder.mkdir()
    for index, digit in enumerate(load_digits().images[:40]):
        Image.fromarray((digit * 15).astype('uint8')).save(folder / f'{index:02d}.png')
    return folder


@pytest.mark.parametrize('where', ['the folder', 'a subfolder'])
def test_out_inside_the_dataset_is_refused_before_anything_is_written(where, images, capsys):
    out = images if where == 'the folder' else images / 'runs' / 'a'
    before = snapshot(images)
    assert main(['train', '--dataset', f'folder:{images}', '--epochs', '1', '--quiet', '--out', str(out)]) == 2
    assert f'--out {str(out)!r} is inside --dataset folder:{images}' in error_line(capsys)
    assert snapshot(images) == before and not (images / 'runs').exists()


def test_the_dataset_inside_out_is_refused(images, tmp_path, capsys):
    assert main(['train', '--dataset', f'folder:{images}', '--epochs', '1', '--quiet', '--out', str(tmp_path)]) == 2
    assert f'--dataset folder:{images} is inside --out {str(tmp_path)!r}' in error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == ['images']


@pytest.mark.slow
@pytest.mark.parametrize('command', ['reconstruct', 'evaluate'])
def test_an_output_inside_the_dataset_the_command_reads_is_refused_even_with_force(command, images, tmp_path, capsys):
    run = tmp_path / 'run'
    assert main(['train', '--dataset', f'folder:{images}', '--epochs', '1', '--hidden-dim', '16', '--quiet',
                 '--out', str(run)]) == 0
    before = snapshot(images)
    out = images / ('00.png' if command == 'reconstruct' else 'evaluation.json')
    capsys.readouterr()
    assert main([command, '--checkpoint', str(run / 'checkpoint.pt'), '--out', str(out), '--force']) == 2
    assert f'--out {str(out)!r} is inside --dataset folder:{images}, which this command reads' in error_line(capsys)
    assert snapshot(images) == before


@pytest.mark.slow
def test_resume_of_a_run_inside_its_dataset_is_refused(images, tmp_path, capsys):
    run = tmp_path / 'run'
    assert main(['train', '--dataset', f'folder:{images}', '--epochs', '1', '--hidden-dim', '16', '--quiet',
                 '--out', str(run)]) == 0
    moved = images / 'run'
    os.rename(run, moved)  # as a run of an earlier version could have been made
    capsys.readouterr()
    assert main(['train', '--resume', '--epochs', '2', '--quiet', '--out', str(moved)]) == 2
    assert 'is inside --dataset' in error_line(capsys)
    assert len(load_checkpoint(moved / 'checkpoint.pt')['history']) == 1


@pytest.mark.slow
def test_resume_refuses_a_dataset_that_changed_since_the_run_started(images, tmp_path, capsys):
    run = tmp_path / 'run'
    assert main(['train', '--dataset', f'folder:{images}', '--epochs', '1', '--hidden-dim', '16', '--quiet',
                 '--out', str(run)]) == 0
    resume = ['train', '--resume', '--epochs', '2', '--quiet', '--out', str(run)]
    shutil.copy(images / '00.png', images / '40.png')  # one image more
    capsys.readouterr()
    assert main(resume) == 2
    err = error_line(capsys)
    assert 'it holds 41 images, the run started with 40' in err and 'start a new run in another --out' in err
    os.rename(images / '40.png', images / '00a.png')  # as many images, but not the same files
    (images / '05.png').unlink()
    assert main(resume) == 2
    assert 'its files are not those the run started with' in error_line(capsys)
    os.rename(images / '00a.png', images / '05.png')  # the same names again, but 05.png now holds 00.png's picture
    assert main(resume) == 2
    assert 'the content of some of its images is not what the run started with' in error_line(capsys)
    assert len(load_checkpoint(run / 'checkpoint.pt')['history']) == 1  # not trained on other data
    checkpoint = torch.load(run / 'checkpoint.pt', weights_only=True)
    del checkpoint['dataset_digest'], checkpoint['images_digest']  # an earlier version's: only the count is compared
    torch.save(checkpoint, run / 'checkpoint.pt')
    assert main(resume) == 0
    assert len(load_checkpoint(run / 'checkpoint.pt')['history']) == 2
