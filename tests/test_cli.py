import subprocess
import sys

import torchbearer_vae
from torchbearer_vae.cli import main


def test_version_and_help(capsys):
    try:
        main(['--version'])
    except SystemExit as exit:
        assert exit.code == 0
    assert torchbearer_vae.__version__ in capsys.readouterr().out
    assert main([]) == 0
    assert 'torchbearer-vae' in capsys.readouterr().out


def test_python_dash_m_runs_the_same_command():
    result = subprocess.run([sys.executable, '-m', 'torchbearer_vae', '--version'], capture_output=True, text=True)
    assert result.returncode == 0 and torchbearer_vae.__version__ in result.stdout
