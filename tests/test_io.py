import os

import pytest

from torchbearer_vae._io import atomic_write, remove_stale_temporaries


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / 'file.txt'
    target.write_text('old')

    def fail(tmp_path_):
        with open(tmp_path_, 'w') as file:
            file.write('half')
        raise OSError('disk full')

    with pytest.raises(OSError, match='disk full'):
        atomic_write(target, fail)
    assert target.read_text() == 'old' and os.listdir(tmp_path) == ['file.txt']


def test_the_temporary_keeps_the_extension_and_only_stale_temporaries_are_removed(tmp_path):
    seen = []
    atomic_write(tmp_path / 'sub' / 'picture.png', lambda path: seen.append(path) or open(path, 'w').close())
    assert seen[0].endswith('.tmp.png') and os.path.basename(seen[0]).startswith('.picture.')
    stale = os.path.join(tmp_path, 'sub', os.path.basename(seen[0]))
    open(stale, 'w').close()  # as a kill between write and rename would leave it
    open(tmp_path / 'sub' / '.keep', 'w').close()
    assert remove_stale_temporaries(tmp_path / 'sub') == 1
    assert sorted(os.listdir(tmp_path / 'sub')) == ['.keep', 'picture.png']
