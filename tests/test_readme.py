"""The README speaks to a user on a fresh machine: where the data is, a CPU-only PyTorch first, how long the
tests take, and a Performance section of measured numbers, how to reproduce them and no history."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / 'README.md').read_text(encoding='utf-8')
# CI (.ci/run) runs these two as they are: they must stay word for word.
MAIN_JOB = ('python3 -m venv .venv && . .venv/bin/activate && pip install -e . && torchbearer-vae train --dataset '
            'idx:../shared/data/mnist --epochs 10 --out runs/mnist')
TESTS = 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && pytest'
CPU_ONLY = 'pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu'


def section(title: str, text: str = README, level: str = '## ') -> str:
    return text.split(f'\n{level}{title}', 1)[1].split(f'\n{level}', 1)[0]


def test_set_up_says_where_the_data_is_and_offers_cpu_only_torch_before_the_two_commands():
    setup = section('Set up and run')
    commands = re.findall(r'```bash\n(.*?)\n```', setup, re.S)
    assert len(commands) == 3 and commands[1:] == [MAIN_JOB, TESTS]  # CI's two, unchanged
    assert CPU_ONLY in commands[0] and CPU_ONLY not in MAIN_JOB + TESTS  # optional, and first
    said = ' '.join(setup.split())
    assert "`../shared/data/mnist` is the data set that ships beside this repository" in said
    assert 'without a GPU' in said and '5.6 GB' in said


def test_the_test_command_says_how_long_it_takes_and_offers_the_quick_loop():
    setup = section('Set up and run')
    around = setup[setup.index('Run the tests'):]
    assert '10-15 minutes on a 2-core machine' in around.split('```')[0]  # said beside the command
    assert 'pytest -m "not slow"' in around


def test_performance_is_measured_numbers_and_how_to_reproduce_them_without_history():
    performance = section('Performance')
    words = ' '.join(performance.split())
    for history in ('target', 'issue 5', 'issue 15', 'earlier run', 'earlier session', 'not met', 'missed'):
        assert history not in words.lower(), history
    assert performance.count('\n| --- |') >= 3 and '### Reproduce' in performance
    assert 'python benchmarks/bench_training.py' in section('Reproduce', performance, '### ')
    for number in ('0.347', '28,794', '0.632', '15,816', '0.355', '0.383', '26,129', '0.417 (rounds 0.331-0.467)',
                   '0.358 (0.352-0.363)', '3.12 (2.88-3.35)', '0.277 (0.266-0.309)', '2.95 (2.67-3.15)',
                   '0.375 (0.328-0.399)', '4.81 (4.12-5.06)', '1.28 (1.17-1.35)', '1.04 (1.01-1.17)',
                   '0.96 (0.90-1.07)', '0.65 (0.62-0.76)', '86x', '1.06x', '1.41x', '50.9', '49.8', '900-990',
                   '35 MB', '(4)/(1) = 1.10'):
        assert number in words, number  # the measured numbers stay
    history = ' '.join((ROOT / 'benchmarks' / 'README.md').read_text(encoding='utf-8').split())
    for moved in ('0.99 (0.80-1.46)', '1.08 (0.67-1.34)', '<= 0.65', '0.65 against 0.59', '1.21x in an earlier',
                  '0.281 (0.245-0.298)', '0.92 (0.89-1.03)', '1.19 (1.16-1.31)'):
        assert moved in history, moved  # the history went to the benchmarks' README
