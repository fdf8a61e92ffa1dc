import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset
from torchbearer import Trial

import torchbearer_vae.records
from torchbearer_vae import VAE, MetricsCSV, kld_loss, plot_history, write_json


def train_with(callback, epochs=2):
    data = DataLoader(TensorDataset(torch.rand(16, 4), torch.rand(16, 4)), batch_size=8)
    model = VAE(input_shape=(4,), hidden_dim=8, latent_dim=2)
    trial = Trial(model, torch.optim.Adam(model.parameters()), torch.nn.BCELoss(reduction='sum'),
                  metrics=['loss'], callbacks=[kld_loss(), callback], verbose=0)
    return trial.with_generators(data, data).run(epochs)


def test_metrics_csv_has_one_row_per_epoch_matching_the_history(tmp_path):
    history = train_with(MetricsCSV(tmp_path / 'metrics.csv'), epochs=3)
    with open(tmp_path / 'metrics.csv') as file:
        rows = list(csv.DictReader(file))
    assert [row['epoch'] for row in rows] == ['1', '2', '3']  # counted as the log and the checkpoint count
    assert list(rows[0])[:2] == ['epoch', 'loss'] and 'val_loss' in rows[0]
    assert [float(row['val_loss']) for row in rows] == pytest.approx([epoch['val_loss'] for epoch in history])


def test_plot_history_draws_train_and_validation_curves(tmp_path):
    history = [{'loss': 3.0 - i, 'val_loss': 3.5 - i} for i in range(3)]
    assert plot_history(history, tmp_path / 'loss.png') is True
    image = np.asarray(Image.open(tmp_path / 'loss.png'))
    assert image.shape[0] > 100 and image.std() > 10


def drawn_axes(monkeypatch, history, path):
    """The axes of the chart plot_history writes to ``path``, as they were when the file was written."""
    from matplotlib.figure import Figure

    saved, savefig = [], Figure.savefig
    monkeypatch.setattr(Figure, 'savefig', lambda self, *args, **kwargs: saved.append(self) or savefig(
        self, *args, **kwargs))
    assert plot_history(history, path, metrics=('loss',)) is True
    return saved[0].axes[0]


def test_the_loss_chart_stays_readable_when_the_first_epoch_dwarfs_the_rest(tmp_path, monkeypatch):
    # A loss that falls from 120 to 104 after a first epoch of 5000: scaled to 5000, the later epochs would be a
    # flat line at the chart's bottom; they fill the chart, and its title says what was cut.
    history = [{'loss': 5000.0, 'val_loss': 300.0}] + [{'loss': 120.0 - 2 * i, 'val_loss': 118.0 - 2 * i}
                                                      for i in range(9)]
    axes = drawn_axes(monkeypatch, history, tmp_path / 'loss.png')
    low, high = axes.get_ylim()
    assert 100 < low < 104 and 120 < high < 124
    assert axes.get_title() == 'epoch 1 is off the scale (loss 5000, val_loss 300)'
    assert [list(line.get_xdata()) for line in axes.lines] == [list(range(1, 11))] * 2  # epochs counted from 1
    # a first epoch that does not dwarf the rest stays on the chart
    history[0] = {'loss': 140.0, 'val_loss': 125.0}
    axes = drawn_axes(monkeypatch, history, tmp_path / 'loss.png')
    assert axes.get_ylim()[1] > 140 and axes.get_title() == ''


def test_plot_history_without_matplotlib_writes_nothing(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith('matplotlib'):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', no_matplotlib)
    assert plot_history([{'loss': 1.0}], tmp_path / 'loss.png') is False
    assert not (tmp_path / 'loss.png').exists()


def test_write_json_round_trips(tmp_path):
    write_json(tmp_path / 's.json', {'a': 1.5, 'b': [1, 2]})
    assert json.loads((tmp_path / 's.json').read_text()) == {'a': 1.5, 'b': [1, 2]}


def test_write_json_writes_numbers_that_are_not_finite_as_null(tmp_path):
    data = {'nll': math.inf, 'history': [{'loss': math.nan}, {'loss': 1.5}], 'pair': (-math.inf, np.float64('nan'))}
    text = write_json(tmp_path / 's.json', data)
    assert 'NaN' not in text and 'Infinity' not in text and (tmp_path / 's.json').read_text() == text
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f'bare {name}')) == {
        'nll': None, 'history': [{'loss': None}, {'loss': 1.5}], 'pair': [None, None]}
    assert data['nll'] == math.inf  # the caller's values are left as they are


def test_metrics_csv_rejects_a_folder(tmp_path):
    with pytest.raises(ValueError, match='is a directory'):
        MetricsCSV(tmp_path)


def test_metrics_csv_background_must_be_a_bool(tmp_path):
    with pytest.raises(TypeError, match='background must be True or False'):
        MetricsCSV(tmp_path / 'metrics.csv', background=1)


@pytest.mark.parametrize('call, message', [
    (lambda tmp_path: MetricsCSV(3), 'path must be a path'),
    (lambda tmp_path: plot_history([], 3), 'path must be a path'),
    (lambda tmp_path: plot_history([{'loss': 1.0}], tmp_path / 'a.png', metrics='loss'),
     r"metrics must be a list or tuple of metric names such as \('loss', 'kl'\), got 'loss'"),
    (lambda tmp_path: plot_history([{'loss': 1.0}], tmp_path / 'a.png', metrics=['loss', 2]), 'metric names'),
    (lambda tmp_path: write_json(None, {}), 'path must be a path'),
    (lambda tmp_path: write_json(tmp_path / 'a.json', [1, 2]), 'data must be a dict'),
])
def test_wrong_types_are_type_errors_before_anything_is_written(tmp_path, call, message):
    with pytest.raises(TypeError, match=message):
        call(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_metrics_csv_with_background_false_writes_its_rows(tmp_path):
    csv_writer = MetricsCSV(tmp_path / 'metrics.csv', background=False)
    assert csv_writer.background is False
    train_with(csv_writer)
    assert len((tmp_path / 'metrics.csv').read_text().splitlines()) == 3


def test_only_the_main_process_writes_the_csv(tmp_path, monkeypatch):
    monkeypatch.setattr(torchbearer_vae.records, 'is_main_process', lambda: False)  # as on rank 1
    train_with(MetricsCSV(tmp_path / 'metrics.csv'))
    assert list(tmp_path.iterdir()) == []
