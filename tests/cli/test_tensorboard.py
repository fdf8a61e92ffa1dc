"""``train --tensorboard``: the metrics of each epoch and the pictures in event files under --out/tensorboard."""
import struct
import sys

import pytest
from test_config import TINY, error_line

from torchbearer_vae.cli import main


def events(folder):
    """Every event of the tensorboardX files in ``folder``, read back from their records."""
    from tensorboardX.proto import event_pb2
    found = []
    for path in sorted(folder.glob('events.out.tfevents.*')):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack('<Q', data[at:at + 8])
            event = event_pb2.Event()
            event.ParseFromString(data[at + 12:at + 12 + length])  # after the length and its CRC
            found.append(event)
            at += 12 + length + 4  # the data's CRC
    return found


def test_without_tensorboardx_the_run_stops_first_with_the_install_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, 'tensorboardX', None)  # as if not installed: importing it raises ImportError
    assert main(['train', *TINY, '--tensorboard', '--out', str(tmp_path / 'run')]) == 2
    line = error_line(capsys)
    assert '--tensorboard needs the tensorboardX package' in line and 'pip install -e ".[tensorboard]"' in line
    assert not (tmp_path / 'run').exists()  # before any work


@pytest.mark.slow
def test_each_epochs_metrics_and_the_pictures_are_written(tmp_path):
    out = tmp_path / 'run'
    assert main(['train', *TINY, '--epochs', '2', '--tensorboard', '--out', str(out)]) == 0
    assert main(['train', '--resume', '--epochs', '3', '--tensorboard', '--out', str(out), '--quiet']) == 0
    written = events(out / 'tensorboard')
    scalars, images = {}, {}
    for event in written:
        for value in event.summary.value:
            if value.HasField('image'):
                images.setdefault(value.tag, []).append(event.step)
                assert value.image.encoded_image_string.startswith(b'\x89PNG')
            else:
                scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    for metric in ('loss', 'recon', 'kl', 'val_loss', 'val_recon', 'val_kl', 'val_active_units'):
        assert sorted(scalars[f'epoch/{metric}']) == [0, 1, 2], metric  # every epoch, the resumed one included
    import csv
    with open(out / 'metrics.csv') as file:
        rows = list(csv.DictReader(file))
    assert [round(scalars['epoch/val_loss'][i], 3) for i in range(3)] == \
           [round(float(row['val_loss']), 3) for row in rows]
    assert sorted(images) == ['reconstruction', 'samples']
    assert sorted(images['reconstruction']) == [0, 1, 2] and sorted(images['samples']) == [0, 1, 2]


@pytest.mark.slow
def test_a_resumed_run_started_in_the_same_second_adds_a_file_instead_of_replacing_one(tmp_path, monkeypatch):
    import types

    from tensorboardX import event_file_writer
    # tensorboardX names a file by the second it was opened in: every writer here opens in the same second
    monkeypatch.setattr(event_file_writer, 'time', types.SimpleNamespace(time=lambda: 1_800_000_000.0))
    out = tmp_path / 'run'
    assert main(['train', *TINY, '--epochs', '1', '--tensorboard', '--out', str(out), '--quiet']) == 0
    assert main(['train', '--resume', '--epochs', '2', '--tensorboard', '--out', str(out), '--quiet']) == 0
    assert len(list((out / 'tensorboard').glob('events.out.tfevents.*'))) == 2
    steps = [event.step for event in events(out / 'tensorboard') for value in event.summary.value
             if value.tag == 'epoch/val_loss']
    assert sorted(steps) == [0, 1]
