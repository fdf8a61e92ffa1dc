"""The documentation: the site builds offline with -W and works offline (its math typeset by a
MathJax copied into the site), its ``>>>`` examples pass, every public name is in the API
reference, and every example script and the README's Python snippet run end to end on the real
MNIST."""
import ast
import html as html_module
import importlib
import importlib.util
import os
import pathlib
import pkgutil
import re
import runpy
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import torchbearer_vae
from torchbearer_vae.cli.main import build_parser

# Sphinx builds the site in a module fixture every test here uses (autouse), and the examples train: all slow.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / 'docs'
EXAMPLES = DOCS / 'examples'
PAGES = ('index', 'tutorial', 'autoencoders', 'beyond', 'extending', 'latent', 'latent_spaces', 'own_images',
         'command_line', 'distributed', 'layout', 'api', 'changelog')
# Any attempt to fetch something (an intersphinx inventory, a remote image) fails, as it would offline.
OFFLINE = {'http_proxy': 'http://127.0.0.1:9', 'https_proxy': 'http://127.0.0.1:9',
           'HTTP_PROXY': 'http://127.0.0.1:9', 'HTTPS_PROXY': 'http://127.0.0.1:9', 'no_proxy': '', 'NO_PROXY': ''}


class SiteBuilds:
    """The html build of the site, then the doctest build, in a background thread, started at once.

    They run while the example scripts run in this process (the examples come first in this
    file); a test that needs a build waits for it. The doctest build reuses the html build's
    doctrees instead of reading the sources again.
    """

    def __init__(self, out):
        self.out = out
        self._pool = ThreadPoolExecutor(max_workers=1)  # one after the other, sharing the doctrees
        self._builds = {builder: self._pool.submit(self._build, builder) for builder in ('html', 'doctest')}

    def _build(self, builder):
        run = subprocess.run(
            [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b', builder,
             '-d', str(self.out / 'doctrees'), str(DOCS), str(self.out / builder)],
            cwd=self.out, env={**os.environ, **OFFLINE}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=300)
        return run.returncode, run.stdout, self.out / builder

    def result(self, builder):
        """``(returncode, output, folder)`` of a build, once it has finished."""
        return self._builds[builder].result()

    def stop(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope='module', autouse=True)
def builds(tmp_path_factory):
    site = SiteBuilds(tmp_path_factory.mktemp('site'))
    yield site
    site.stop()


@pytest.fixture(scope='module')
def html(builds):
    returncode, output, folder = builds.result('html')
    assert returncode == 0, f'sphinx-build -W -b html failed:\n{output}'
    return folder


# -- the example scripts, on a small slice of the real MNIST --

def load_example(name, folder=EXAMPLES):
    spec = importlib.util.spec_from_file_location(f'docs_example_{name}', folder / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_script(name):
    """A figure script of docs/ (``make_*.py``)."""
    return load_example(name, DOCS)


def picture(path):
    assert path.exists(), f'{path} was not written'
    return np.asarray(Image.open(path).convert('RGB'), dtype=float)


def test_vae_state_way_runs_as_a_program(mnist_dir, tmp_path, monkeypatch):
    # As `python vae_state_way.py ...` would, through its `if __name__ == '__main__'` line.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv', ['vae_state_way.py', '--data-dir', mnist_dir, '--limit', '600', '--epochs', '1',
                                      '--verbose', '0'])
    runpy.run_path(str(EXAMPLES / 'vae_state_way.py'), run_name='__main__')
    assert picture(tmp_path / 'results' / 'reconstruction_0.png').shape == (62, 242, 3)


def test_vae_state_way_own_model_and_beta_divergence(mnist_dir, tmp_path):
    history = load_example('vae_state_way').main(
        ['--data-dir', mnist_dir, '--limit', '600', '--epochs', '1', '--results', str(tmp_path), '--verbose', '0',
         '--own-model', '--beta', '4'])
    last = history[-1]
    # beta_kl added 4 x the KL to the reconstruction term, and stored the unweighted KL for the 'kl' metric
    assert last['val_kl'] > 0
    assert last['val_loss'] == pytest.approx(last['val_recon'] + 4 * last['val_kl'], rel=1e-4)
    assert picture(tmp_path / 'reconstruction_0.png').shape == (62, 242, 3)


def test_vae_pytorch_way_learns(mnist_dir, tmp_path):
    history = load_example('vae_pytorch_way').main(
        ['--data-dir', mnist_dir, '--limit', '600', '--epochs', '2', '--results', str(tmp_path), '--verbose', '0',
         '--own-model'])
    assert history[1]['val_loss'] < history[0]['val_loss']
    assert picture(tmp_path / 'reconstruction_1.png').shape == (62, 242, 3)


@pytest.mark.parametrize('noise', [0.0, 0.5])
def test_autoencoder_plain_and_denoising(mnist_dir, tmp_path, noise):
    history = load_example('autoencoder').main(
        ['--data-dir', mnist_dir, '--limit', '600', '--epochs', '1', '--results', str(tmp_path), '--verbose', '0',
         '--noise', str(noise)])
    assert np.isfinite(history[-1]['val_loss'])
    inputs = picture(tmp_path / 'reconstruction_0.png')[2:30, :, 0]
    black = (inputs == 0).mean()  # MNIST is mostly black background; noise lights up about half of it
    assert black > 0.7 if noise == 0 else black < 0.6, black


def test_conv_autoencoder_on_colour_images(tmp_path):
    history = load_example('conv_autoencoder').main(
        ['--limit', '256', '--epochs', '1', '--results', str(tmp_path), '--verbose', '0'])
    assert np.isfinite(history[-1]['val_loss'])
    grid = picture(tmp_path / 'reconstruction_0.png')
    assert grid.shape == (2 + 2 * 34, 2 + 8 * 34, 3)  # 8 colour 32x32 images above their reconstructions
    assert np.abs(grid[..., 0] - grid[..., 2]).mean() > 10  # in colour, not grey


def test_vqvae_example_trains_and_samples_from_its_fitted_prior(mnist_dir, tmp_path):
    history = load_example('vqvae').main(['--data-dir', mnist_dir, '--limit', '600', '--epochs', '2', '--results',
                                          str(tmp_path), '--verbose', '0'])
    assert history[1]['val_recon'] < history[0]['val_recon'] and history[-1]['used_codes'] > 1
    grid = picture(tmp_path / 'reconstruction_1.png')
    assert grid.shape == (62, 242, 3)
    samples = picture(tmp_path / 'samples.png')[..., 0]
    assert samples.shape == (2 + 8 * 30, 2 + 8 * 30) and samples.std() > 10  # 64 decoded draws, not blank


def test_the_figure_scripts_of_other_latent_spaces_run_and_measure(mnist_dir, tmp_path, capsys):
    distances = load_script('make_latent_priors_figure').main(
        ['--data-dir', mnist_dir, '--epochs', '1', '--images', '200', '--out', str(tmp_path / 'priors.png')])
    out = capsys.readouterr().out
    assert '| VAE, fitted prior |' in out and 'VAE fitted / VAE N(0, I) = ' in out
    assert distances['autoencoder, fitted prior'] < distances['autoencoder, N(0, I)']  # even after one epoch
    assert picture(tmp_path / 'priors.png').shape == (2 + 4 * 30, 2 + 10 * 30, 3)
    measured = load_script('make_vqvae_figure').main(
        ['--data-dir', mnist_dir, '--epochs', '1', '--limit', '1000', '--out', str(tmp_path)])
    out = capsys.readouterr().out
    assert '| VQVAE |' in out and 'VQVAE / ConvVAE reconstruction term = ' in out
    assert 1 <= measured['perplexity'] <= measured['used'] <= 512
    assert picture(tmp_path / 'vqvae.png').shape == (2 + 4 * 30, 2 + 10 * 30, 3)
    assert picture(tmp_path / 'vqvae_codes.png').shape[:2] == (260, 700)


def readme_snippet(title):
    """The first Python code block of the README section whose heading starts with ``title``."""
    section = (ROOT / 'README.md').read_text(encoding='utf-8').split(f'\n## {title}', 1)[1].split('\n## ', 1)[0]
    return re.search(r'```python\n(.*?)```', section, re.S).group(1)


@pytest.mark.slow
def test_readme_state_way_snippet_runs_offline_as_written(mnist_dir, tmp_path):
    # The snippet reads '../shared/data/mnist', relative to the repository's folder. Running it in the
    # repository would leave its results/ there (and could delete a user's own); instead it runs, as it
    # is, from a stand-in folder `checkout` whose ../shared/data/mnist is a link to the real files, so
    # the relative path resolves as in the repository and everything it writes lands under tmp_path.
    (tmp_path / 'shared' / 'data').mkdir(parents=True)
    (tmp_path / 'shared' / 'data' / 'mnist').symlink_to(mnist_dir, target_is_directory=True)
    checkout = tmp_path / 'checkout'
    checkout.mkdir()
    script = tmp_path / 'readme_snippet.py'
    script.write_text(readme_snippet('A VAE in a Trial'), encoding='utf-8')
    run = subprocess.run([sys.executable, str(script)], cwd=checkout, env={**os.environ, **OFFLINE},
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:]
    assert sorted(path.name for path in (checkout / 'results').iterdir()) == sorted(
        f'reconstruction_{epoch}.png' for epoch in range(10))
    grid = picture(checkout / 'results' / 'reconstruction_9.png')[..., 0]
    assert grid.shape == (62, 242)  # 8 MNIST digits above their reconstructions
    inputs, reconstructions = grid[2:30], grid[32:60]
    assert np.corrcoef(inputs.ravel(), reconstructions.ravel())[0, 1] > 0.7  # it learned: they look alike



# -- the site, built by the two processes started with the first test --

def test_site_builds_with_no_warning_and_has_every_page(builds, html):
    output = builds.result('html')[1]
    assert 'WARNING' not in output and 'ERROR' not in output, output
    for page in PAGES:
        assert (html / f'{page}.html').stat().st_size > 1000, page


def test_tutorial_shows_the_reconstruction_figure_made_from_mnist(html):
    tutorial = (html / 'tutorial.html').read_text(encoding='utf-8')
    assert re.search(r'<img[^>]+src="_images/reconstruction\.png"', tutorial)
    built = html / '_images' / 'reconstruction.png'
    assert built.read_bytes() == (DOCS / '_static' / 'reconstruction.png').read_bytes()
    grid = np.asarray(Image.open(built).convert('L'), dtype=float)
    assert grid.shape == (2 + 2 * 30, 2 + 8 * 30)  # 8 MNIST digits above their 8 reconstructions
    inputs, reconstructions = grid[2:30], grid[32:60]
    assert (inputs == 0).mean() > 0.5 and inputs.max() == 255  # handwritten digits on black
    assert np.corrcoef(inputs.ravel(), reconstructions.ravel())[0, 1] > 0.7  # reconstructions look like them


def test_tutorial_code_is_the_example_scripts_code(html):
    text = html_text(html / 'tutorial.html')
    for name in ('MyVAE', 'mnist_images', 'make_loaders', 'beta_kl', 'make_trial', 'main'):
        assert top_level_source(EXAMPLES / 'vae_state_way.py', name) in text, name
    assert top_level_source(EXAMPLES / 'vae_pytorch_way.py', 'make_trial') in text
    text = html_text(html / 'autoencoders.html')
    for script, name in (('autoencoder', 'AutoEncoder'), ('autoencoder', 'make_loaders'),
                         ('conv_autoencoder', 'ConvAutoEncoder'), ('conv_autoencoder', 'colour_images')):
        assert top_level_source(EXAMPLES / f'{script}.py', name) in text, (script, name)
    text = html_text(html / 'latent_spaces.html')
    for name in ('make_trial', 'sample_from_fitted_prior'):
        assert top_level_source(EXAMPLES / 'vqvae.py', name) in text, name
    for page in DOCS.glob('*.rst'):
        assert ':lines:' not in page.read_text(), f'{page.name}: use :pyobject: or :start-after:/:end-before:'


# The attributes that fetch what a page needs to show; an absolute or protocol-relative URL in one
# of them needs the network (an ``<a href>`` is only a link, and fine).
FETCHING = re.compile(r'<(?:script|link|img|iframe|source|video|audio|embed)\b[^>]*?\b(?:src|href|srcset)=["\']'
                      r'(?:https?:)?//[^"\']*', re.I)


def test_site_needs_no_network_and_bundles_mathjax(html):
    for page in html.rglob('*.html'):
        fetched = FETCHING.findall(page.read_text(encoding='utf-8'))
        assert not fetched, f'{page.relative_to(html)} fetches from the network: {fetched}'
    for stylesheet in (html / '_static').glob('**/*.css'):
        text = stylesheet.read_text(encoding='utf-8', errors='replace')
        assert not re.search(r'(?:url\(|@import)\s*["\']?(?:https?:)?//', text), stylesheet
    for page in ('tutorial', 'api'):  # the pages with formulas load MathJax from the site itself
        scripts = re.findall(r'<script[^>]*\bsrc="([^"]*mathjax[^"]*)"', (html / f'{page}.html').read_text('utf-8'))
        assert scripts == ['_static/mathjax/tex-chtml.js'], (page, scripts)
    mathjax = html / '_static' / 'mathjax'
    assert b'MathJax' in (mathjax / 'tex-chtml.js').read_bytes()
    # CommonHTML output loads its fonts next to the script; without them the formulas are tofu.
    assert (mathjax / 'output' / 'chtml' / 'fonts' / 'woff-v2' / 'MathJax_Main-Regular.woff').stat().st_size > 1000


def browser():
    return next(filter(None, map(shutil.which, ('chromium', 'chromium-browser', 'google-chrome'))), None)


@pytest.mark.slow
@pytest.mark.skipif(browser() is None, reason='no Chromium to open the site in (apt-get install chromium)')
@pytest.mark.parametrize('page', ['tutorial', 'api'])
def test_math_is_typeset_when_the_site_is_opened_from_disk_offline(html, tmp_path, page):
    # A real browser opens the built file with every request sent to a closed port, so MathJax works
    # only if the site carries it. MathJax replaces each \( \) or \[ \] element Sphinx wrote by an
    # <mjx-container>; with MathJax missing, the raw LaTeX would stay.
    run = subprocess.run(
        [browser(), '--headless', '--no-sandbox', '--disable-gpu', '--proxy-server=http://127.0.0.1:9',
         f'--user-data-dir={tmp_path}', '--virtual-time-budget=20000', '--dump-dom', (html / f'{page}.html').as_uri()],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    written = len(re.findall(r'class="math notranslate nohighlight"', (html / f'{page}.html').read_text('utf-8')))
    assert written >= (3 if page == 'tutorial' else 5)  # the KL formula and its neighbours
    typeset = len(re.findall(r'<mjx-container\b', run.stdout))
    assert typeset == written, f'{typeset} of the {written} formulas of {page}.html typeset'
    assert not re.search(r'\\[(\[]', html_text_of(run.stdout)), 'raw LaTeX left in the page'


STATE_KEYS = ('MU', 'LOGVAR', 'KL', 'RECON', 'GLOBAL_STEP', 'GLOBAL_EPOCH')


def api_entries(html, kind):
    """``{full name: HTML of its entry}`` for the ``py <kind>`` entries of the API page."""
    page = (html / 'api.html').read_text(encoding='utf-8')
    starts = [match.start() for match in re.finditer(r'<dl class="py ', page)] + [len(page)]
    entries = {}
    for start, end in zip(starts, starts[1:]):
        found = re.match(rf'<dl class="py {kind}">\s*<dt[^>]*\bid="([^"]+)"', page[start:end])
        if found:
            entries[found.group(1)] = page[start:end]
    return entries


def test_state_keys_render_as_their_comment_not_as_a_type(html):
    # napoleon reads a data docstring's first line as 'type: description', so a '#:' comment with a
    # colon in its first line rendered as "TYPE: <half a sentence>" below the other half.
    entries = api_entries(html, 'data')
    source = (ROOT / 'torchbearer_vae' / 'state.py').read_text(encoding='utf-8')
    for key in STATE_KEYS:
        entry = entries[f'torchbearer_vae.state.{key}']
        assert 'field-list' not in entry and '>Type<' not in entry, f'{key} renders with a Type field'
        comment = re.search(rf'((?:#:.*\n)+){key} = ', source).group(1)
        opening = re.split(r'[`:]', comment.splitlines()[0][2:].strip())[0]  # up to the first markup
        description = ' '.join(html_text_of(entry.split('</dt>', 1)[1]).split())
        assert len(opening) > 10 and description.startswith(opening.strip()), (key, description)


def test_every_type_field_in_the_api_reference_is_a_type(html):
    # The same garbling for any attribute or property: what napoleon shows as a type must be one
    # ('str or None'), not the start of a sentence.
    for kind in ('data', 'attribute', 'property'):
        for name, entry in api_entries(html, kind).items():
            for field in re.findall(r'>Type<span class="colon">:</span></dt>\s*<dd[^>]*>(.*?)</dd>', entry, re.S):
                words = [word for word in html_text_of(field).split() if word not in ('or', 'of', 'None')]
                assert len(words) <= 3 and words[0].lower() not in ('a', 'an', 'the', 'like'), (name, words)


def html_text(path):
    """The text of an HTML page, tags removed (code blocks come out as their source)."""
    return html_text_of(path.read_text(encoding='utf-8'))


def html_text_of(markup):
    return html_module.unescape(re.sub(r'<[^>]+>', '', markup))


def top_level_source(script, name):
    tree = ast.parse(script.read_text())
    node = next(node for node in tree.body if getattr(node, 'name', None) == name)
    return ast.get_source_segment(script.read_text(), node)


def documented_names(html):
    """Every Python object in the site's inventory (objects.inv), by full name."""
    from sphinx.util.inventory import InventoryFile

    with open(html / 'objects.inv', 'rb') as file:
        inventory = InventoryFile.load(file, '', os.path.join)
    items = inventory.data.items() if hasattr(inventory, 'data') else inventory.items()
    return {name for kind, entries in items if kind.startswith('py:') for name in entries}


def public_modules():
    """The modules and subpackages of ``torchbearer_vae`` that users import: no leading underscore, a non-empty
    ``__all__``."""
    modules = []
    for info in pkgutil.walk_packages(torchbearer_vae.__path__, prefix='torchbearer_vae.'):
        if any(part.startswith('_') for part in info.name.split('.')) or info.name == 'torchbearer_vae.version':
            continue
        module = importlib.import_module(info.name)
        assert hasattr(module, '__all__'), f'{info.name} has no __all__'
        if module.__all__:  # __all__ = [] declares a module internal
            modules.append(module)
    return modules


def test_public_modules_are_found_in_every_subpackage():
    found = {module.__name__ for module in public_modules()}
    for name in ('torchbearer_vae.state', 'torchbearer_vae.models', 'torchbearer_vae.models.base',
                 'torchbearer_vae.data.loaders', 'torchbearer_vae.callbacks.pictures', 'torchbearer_vae.cli'):
        assert name in found, name
    assert 'torchbearer_vae.checks' not in found and 'torchbearer_vae.data.idx' not in found  # internal


def test_every_public_module_and_name_is_described_once_in_the_site(html):
    names = documented_names(html)
    for module in public_modules():
        assert module.__name__ in names, f'docs/api.rst has no automodule for {module.__name__}'
    # Each object once, in its defining module: the package and its subpackages re-export it, and an
    # ``automodule`` with ``:members:`` on one of them would describe it again, which Sphinx does not
    # warn about (it takes the second entry for an alias of the first).
    described = object_descriptions(html)
    for module in [torchbearer_vae] + public_modules():
        for name in module.__all__:
            if name == '__version__':
                continue
            obj = getattr(module, name)
            places = [place for place in described.get(name, []) if resolve(place.partition('#')[2]) is obj]
            assert places, f'{module.__name__}.{name} is not in the docs (docstring missing? automodule missing?)'
            assert len(places) == 1, f'{module.__name__}.{name} is described {len(places)} times: {places}'


def object_descriptions(html):
    """``{name: ['page.html#full.name', ...]}``: where the site describes a module-level object called ``name``."""
    described = {}
    for page in html.glob('*.html'):
        for kind, full in re.findall(r'<dl class="py (\w+)">\s*<dt[^>]*\bid="([^"]+)"', page.read_text('utf-8')):
            if kind in ('class', 'exception', 'function', 'decorator', 'data'):
                described.setdefault(full.rpartition('.')[2], []).append(f'{page.name}#{full}')
    return described


def resolve(full_name):
    module_name, _, attribute = full_name.rpartition('.')
    try:
        return getattr(importlib.import_module(module_name), attribute, None)
    except ImportError:
        return None


def test_command_line_help_is_generated_into_the_api_page(html):
    api = html_text(html / 'api.html')
    parser = build_parser()
    assert f'usage: {parser.prog}' in api
    commands = [action for action in parser._actions if action.__class__.__name__ == '_SubParsersAction']
    for command in (commands[0].choices if commands else ()):
        assert f'$ {parser.prog} {command} --help' in api and f'usage: {parser.prog} {command} [' in api, command


def test_docstring_and_page_examples_pass_the_doctest_builder(builds):
    returncode, output, folder = builds.result('doctest')
    report = (folder / 'output.txt').read_text() if (folder / 'output.txt').exists() else ''
    assert returncode == 0, f'sphinx-build -b doctest failed:\n{output}\n{report}'
    tested = int(re.search(r'(\d+) tests\n\s+0 failures in tests', report).group(1))
    assert tested >= 40, report  # the docstrings' examples ran, not only the pages' few
    assert 'torchbearer_vae.losses.kld\n' in report and 'Document: tutorial' in report
