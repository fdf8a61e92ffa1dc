"""The release: the sdist and wheel built from this tree hold what they must and nothing else, and the metadata
states the range ``tox -e oldest`` tests (the lower bounds are requirements/oldest.txt's pins)."""
import configparser
import email
import pathlib
import re
import subprocess
import sys
import tarfile
import zipfile

import pytest
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parents[1]
CACHES = re.compile(r'(^|/)(__pycache__|\.pytest_cache|\.hypothesis|\.mypy_cache|\.ruff_cache|\.tox|\.git|_build)(/|$)'
                    r'|\.py[cod]$')
DATA = re.compile(r'\.(pt|pth|ckpt|npz|npy|gz|zip)$|-ubyte|^(runs|results|data)/')  # the .gitignore'd outputs


def setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / 'setup.cfg')
    return config


def lower_bounds():
    """``{name: version}`` of every ``>=`` in install_requires."""
    lines = setup_cfg()['options']['install_requires'].splitlines()
    found = (re.match(r'([\w-]+)>=([\w.]+)', line.strip()).groups() for line in lines if '>=' in line)
    return {name: Version(version) for name, version in found}


def oldest_pins():
    lines = (ROOT / 'requirements' / 'oldest.txt').read_text().splitlines()
    pins = (line.split('==') for line in lines if line and not line.startswith('#'))
    return {name: Version(version) for name, version in pins}


def test_every_dependency_has_a_lower_bound_and_oldest_pins_exactly_it():
    bounds = lower_bounds()
    assert {'torch', 'torchvision', 'torchbearer', 'numpy', 'Pillow', 'tqdm', 'matplotlib'} <= set(bounds)
    declared = [line.strip() for line in setup_cfg()['options']['install_requires'].splitlines()
                if line.strip() and not line.strip().startswith('#')]
    assert all('>=' in line for line in declared), declared
    assert oldest_pins() == bounds  # tox -e oldest runs on exactly the versions the package claims to support


def test_the_readmes_oldest_row_is_what_tox_e_oldest_pins():
    """The README's Compatibility table states the versions the oldest run used: requirements/oldest.txt's."""
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    header, = [line for line in readme.splitlines() if line.startswith('| environment |')]
    row, = [line for line in readme.splitlines() if line.startswith('| `tox -e oldest` |')]
    cells = [[cell.strip() for cell in line.split('|')[1:-1]] for line in (header, row)]
    stated = dict(zip(*cells))
    pins = oldest_pins()
    for name in ('torch', 'torchvision', 'torchbearer', 'numpy', 'Pillow', 'tqdm', 'matplotlib'):
        assert Version(stated[name]) == pins[name], name
    lowest = re.fullmatch(r'>=(3\.\d+)', setup_cfg()['options']['python_requires']).group(1)
    assert stated['Python'] == lowest and stated['tests'] == 'all'


def test_the_python_classifiers_run_from_the_lowest_claimed_python_to_3_13():
    metadata = setup_cfg()['metadata']
    lowest = re.fullmatch(r'>=3\.(\d+)', setup_cfg()['options']['python_requires']).group(1)
    minors = sorted(int(minor) for minor in re.findall(r'Python :: 3\.(\d+)', metadata['classifiers']))
    assert minors == list(range(int(lowest), 14))
    assert 'License ::' not in metadata['classifiers'] and metadata['license_expression'] == 'MIT'


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """The sdist and the wheel, as ``python -m build`` makes them from this tree."""
    out = tmp_path_factory.mktemp('dist')
    result = subprocess.run([sys.executable, '-m', 'build', '--outdir', str(out), str(ROOT)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (sdist,), (wheel,) = out.glob('*.tar.gz'), out.glob('*.whl')
    return sdist, wheel


@pytest.mark.slow
def test_the_sdist_holds_the_tests_docs_and_benchmarks_and_no_cache_or_data(built):
    sdist, _ = built
    with tarfile.open(sdist) as archive:
        names = {name.partition('/')[2] for name in archive.getnames()} - {''}
    for needed in ('LICENSE', 'README.md', 'tox.ini', 'requirements/oldest.txt', 'torchbearer_vae/py.typed',
                   'tests/conftest.py', 'tests/stand_ins.py', 'docs/conf.py', 'docs/examples/autoencoder.py',
                   'benchmarks/bench_training.py'):
        assert needed in names, needed
    for folder in ('tests', 'docs', 'benchmarks', 'torchbearer_vae'):  # every source file of the tree
        on_disk = {str(path.relative_to(ROOT)) for path in (ROOT / folder).rglob('*')
                   if path.is_file() and not CACHES.search(str(path.relative_to(ROOT)))}
        assert on_disk <= names, sorted(on_disk - names)
    assert not [name for name in names if CACHES.search(name) or DATA.search(name)]


@pytest.mark.slow
def test_the_wheel_holds_the_package_typed_and_licensed_and_states_its_range(built):
    _, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = email.message_from_bytes(archive.read(next(n for n in names if n.endswith('.dist-info/METADATA'))))
    assert 'torchbearer_vae/py.typed' in names and any(n.endswith('.dist-info/licenses/LICENSE') for n in names)
    assert all(name.startswith('torchbearer_vae') for name in names)  # no tests, docs or data in the wheel
    assert not [name for name in names if CACHES.search(name) or DATA.search(name)]
    requires = metadata.get_all('Requires-Dist')
    for name, version in lower_bounds().items():
        assert any(re.match(rf'{name}\b.*>={re.escape(str(version))}\b', line) for line in requires), name
    assert metadata['License-Expression'] == 'MIT'
    assert {url.split(',')[0] for url in metadata.get_all('Project-URL')} >= {'Source', 'Documentation', 'Issues'}
    extras = metadata.get_all('Provides-Extra')
    assert len(extras) == len(set(extras)) and 'tensorboard' in extras and 'test' in extras
    test_extra = [line for line in requires if 'extra == "test"' in line]
    assert any(line.startswith('tensorboardX') for line in test_extra)  # the suite's tensorboard path always runs
