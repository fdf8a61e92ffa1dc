"""The KL schedules and free bits of ``train`` (cli/kl.py): built from the library's, stored, resumed exactly."""
import pytest
import torch
from test_config import TINY, assert_same_run, error_line, printed

from torchbearer_vae.cli import main
from torchbearer_vae.cli.kl import CAPACITY_GAMMA, schedule

OPTIONS = {'beta': 2.0, 'kl_warmup': None, 'kl_cycles': None, 'kl_cycle_ratio': 0.5, 'kl_capacity': None}


def test_each_schedule_runs_in_steps_over_its_epochs():
    assert schedule(OPTIONS, steps_per_epoch=10) is None  # a fixed --beta
    warmup = schedule({**OPTIONS, 'kl_warmup': 1.5}, steps_per_epoch=10)  # 15 steps up to --beta
    assert [warmup.value(step) for step in (0, 5, 15, 100)] == [0.0, 2.0 / 3, 2.0, 2.0]
    cycles = schedule({**OPTIONS, 'kl_cycles': '2:4', 'kl_cycle_ratio': 0.25}, steps_per_epoch=10)  # period 20
    assert [cycles.value(step) for step in (0, 1, 5, 19, 20, 25)] == [0.0, 0.4, 2.0, 2.0, 0.0, 2.0]
    target = schedule({**OPTIONS, 'kl_capacity': '25:2'}, steps_per_epoch=10)  # C: 0 to 25 nats over 20 steps
    assert [target.value(step) for step in (0, 10, 20, 40)] == [0.0, 12.5, 25.0, 25.0]
    assert target.gamma == CAPACITY_GAMMA


def test_kl_cycles_are_stored_over_the_runs_epochs(capsys):
    assert printed(capsys, '--kl-cycles', '3', '--epochs', '12')[1]['kl_cycles'] == '3:12'
    assert printed(capsys, '--kl-cycles', '3:6', '--epochs', '12')[1]['kl_cycles'] == '3:6'
    _, config = printed(capsys, '--kl-cycles', '2', '--kl-cycle-ratio', '0.25', '--free-bits', '0.5')
    assert config['kl_cycle_ratio'] == 0.25 and config['free_bits'] == 0.5


@pytest.mark.parametrize('argv, expected', [
    (['--kl-warmup', '2', '--kl-cycles', '3'], '--kl-warmup and --kl-cycles are each a schedule of the KL term'),
    (['--kl-cycles', '3', '--kl-capacity', '5:2'], '--kl-cycles and --kl-capacity are each a schedule'),
    (['--kl-capacity', '5:2', '--free-bits', '0.5'], '--free-bits and --kl-capacity both replace the KL term'),
    (['--kl-capacity', '5:2', '--beta', '4'], '--kl-capacity replaces beta * KL with 1000 * |KL - C|'),
    (['--kl-cycle-ratio', '0.3'], '--kl-cycle-ratio is the rising part of each cycle of --kl-cycles'),
])
def test_combinations_that_cannot_go_together_are_refused_in_one_line(capsys, tmp_path, argv, expected):
    assert main(['train', *TINY, *argv, '--out', str(tmp_path / 'run')]) == 2
    assert expected in error_line(capsys)
    assert not (tmp_path / 'run').exists()  # refused before the run folder is made


@pytest.mark.parametrize('argv, expected', [
    (['--kl-capacity', '25'], 'must be NATS:EPOCHS'), (['--kl-cycles', '1.5'], 'a whole number of cycles'),
    (['--kl-warmup', '0'], 'must be a finite number > 0'), (['--free-bits', '-1'], 'must be a finite number >= 0'),
    (['--kl-cycle-ratio', '1.5'], 'must be a finite number > 0 and <= 1'),
])
def test_bad_values_are_usage_errors(capsys, argv, expected):
    with pytest.raises(SystemExit):
        main(['train', *argv])
    assert expected in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize('schedule_args', [
    ['--kl-warmup', '3', '--free-bits', '0.3'],
    ['--kl-cycles', '2:4', '--kl-cycle-ratio', '0.75'],
    ['--kl-capacity', '4:3'],
], ids=['warmup-free-bits', 'cycles', 'capacity'])
def test_a_resumed_run_continues_the_schedule_bit_for_bit(tmp_path, schedule_args):
    whole, halves = tmp_path / 'whole', tmp_path / 'halves'
    assert main(['train', *TINY, *schedule_args, '--epochs', '4', '--out', str(whole)]) == 0
    assert main(['train', *TINY, *schedule_args, '--epochs', '2', '--out', str(halves)]) == 0
    assert main(['train', '--resume', '--epochs', '4', '--out', str(halves), '--quiet']) == 0
    assert_same_run(whole, halves)
    first = torch.load(whole / 'checkpoint.pt', weights_only=True)['history'][0]
    assert abs(first['loss'] - (first['recon'] + first['kl'])) > 0.01  # the schedule changed the KL term
