"""Sphinx configuration of the torchbearer_vae site.

The build is offline and so is the site it makes: no intersphinx (it would fetch inventories from
the internet), a theme installed from PyPI, MathJax copied into the site's ``_static`` (by
``sphinx-mathjax-offline``) instead of loaded from a CDN, and local extensions in ``_ext``:
``cli_help`` renders the command line's ``--help`` from the real parser, ``docstring_doctests``
makes the docstrings' ``Example: ::`` blocks run under the doctest builder, ``package_refs``
resolves ``torchbearer_vae.X`` references and ``attribute_docs`` refuses a ``#:`` comment that
napoleon would garble. Build and test with::

    sphinx-build -W --keep-going -b html docs docs/_build/html
    sphinx-build -W --keep-going -b doctest docs docs/_build/doctest
"""
import doctest
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '_ext'))

import torchbearer_vae  # noqa: E402  (after the path set-up, like every conf.py)

project = 'torchbearer_vae'
author = 'torchbearer_vae contributors'
copyright = author
version = release = torchbearer_vae.__version__

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.doctest',
    'sphinx.ext.napoleon',
    'sphinx.ext.mathjax',
    # Copies MathJax 3 (its module is named with hyphens) into _static/mathjax at the end of the
    # build, so the formulas render with no network, e.g. a site opened from disk.
    'sphinx-mathjax-offline',
    'sphinx.ext.viewcode',
    'cli_help',
    'docstring_doctests',
    'package_refs',
    'attribute_docs',
]

# package_refs: the pages whose references may name what has since moved or been removed (history).
package_refs_history = ['changelog']

exclude_patterns = ['_build']
templates_path = []

# The package's docstrings are Google style with typed Args; napoleon turns them into fields.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
autodoc_preserve_defaults = True
# Hooks such as on_step_training would otherwise show torchbearer's generic Callback docstrings.
autodoc_inherit_docstrings = False

html_theme = 'furo'
html_title = f'torchbearer_vae {release}'
html_static_path = ['_static']
html_css_files = ['custom.css']
# Relative to _static: the copy sphinx-mathjax-offline makes (it sets the same value; said here so
# that no CDN default can come back). tests/test_docs.py checks the site needs no network.
mathjax_path = 'mathjax/tex-chtml.js'

# ``-b doctest`` runs the docstrings' examples and the pages' ``>>>`` blocks. Whitespace is
# normalised because tensors wrap differently across PyTorch versions. The examples run in a
# temporary folder (the set-up runs once per group) so that an example writing a relative path
# never writes into the repository.
doctest_default_flags = (doctest.ELLIPSIS | doctest.IGNORE_EXCEPTION_DETAIL | doctest.DONT_ACCEPT_TRUE_FOR_1
                         | doctest.NORMALIZE_WHITESPACE)
doctest_global_setup = '''
import os as _os, tempfile as _tempfile
if not _os.path.basename(_os.getcwd()).startswith('torchbearer_vae_doctest_'):
    import atexit as _atexit, shutil as _shutil
    _os.chdir(_tempfile.mkdtemp(prefix='torchbearer_vae_doctest_'))
    _atexit.register(_shutil.rmtree, _os.getcwd(), True)
'''
