"""The package's architecture, read from its source with ``ast`` (nothing is imported to find what imports what).

The rules, one test each: the layers import one way (the core <- models/, data/ <- callbacks/ <- cli/); no import
cycle, lazy imports inside functions included; no private name imported from another module of the package; no
module, function or class past its size; each package's ``__init__`` declares its ``__all__``. Each checker takes
the folder of a package, so the last tests run it on a small made-up package to show that every rule can fail.
"""
import ast
import importlib
import io
import pathlib
import tokenize
from dataclasses import dataclass
from typing import Dict, List, Optional, Set

import pytest

import torchbearer_vae

PACKAGE = pathlib.Path(torchbearer_vae.__file__).resolve().parent
SUBPACKAGES = ('models', 'data', 'callbacks', 'cli')  # each a layer of its own
# layer: (the layers its modules may import, the rule in words). 'package' is the package's __init__.py and
# registry.py, which gather the library; __main__.py runs the command line.
LAYERS = {
    'core': ({'core'}, 'a core module imports no subpackage'),
    'models': ({'core', 'models'}, 'models/ imports only the core'),
    'data': ({'core', 'data'}, 'data/ imports only the core'),
    'callbacks': ({'core', 'models', 'data', 'callbacks'}, 'callbacks/ imports only the core, models/ and data/'),
    'cli': ({'core', 'models', 'data', 'callbacks', 'cli', 'package'}, 'cli/ may import anything'),
    'package': ({'core', 'models', 'data', 'callbacks', 'package'}, 'nothing outside cli/ imports cli/'),
    '__main__': ({'core', 'models', 'data', 'callbacks', 'cli', 'package'}, '__main__.py may import anything'),
}
MAX_LINES = {'module': 400, 'function': 60, 'class': 150}  # lines of code: no docstring, comment or blank line


@dataclass(frozen=True)
class Import:
    """One import statement's load of a module of the package."""

    source: str  # the importing module, e.g. 'torchbearer_vae.callbacks.pictures'
    target: str  # the module loaded, e.g. 'torchbearer_vae.callbacks.imaging'
    name: Optional[str]  # the name taken: ``from target import name``; for ``import a.b.c``, 'c'
    where: str  # 'torchbearer_vae/callbacks/pictures.py:31'


def modules(root: pathlib.Path) -> Dict[str, pathlib.Path]:
    """``{module name: file}`` for every ``.py`` file of the package in ``root`` (a package is its ``__init__``)."""
    found = {}
    for path in sorted(root.rglob('*.py')):
        parts = [root.name, *path.relative_to(root).with_suffix('').parts]
        found['.'.join(parts[:-1] if parts[-1] == '__init__' else parts)] = path
    return found


def where(root: pathlib.Path, path: pathlib.Path, line: int) -> str:
    return f'{path.relative_to(root.parent).as_posix()}:{line}'


def imports(root: pathlib.Path) -> List[Import]:
    """Every import of a module of the package by another, at module level or inside a function."""
    package, known, found = root.name, modules(root), []
    for module, path in known.items():
        here = module.split('.') if path.name == '__init__.py' else module.split('.')[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'), str(path))):
            if isinstance(node, ast.Import):
                loads = [(alias.name, alias.name.rpartition('.')[2]) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    base = '.'.join(here[:len(here) - node.level + 1] + ([node.module] if node.module else []))
                loads = [(f'{base}.{alias.name}' if f'{base}.{alias.name}' in known else base, alias.name)
                         for alias in node.names]
            else:
                continue
            found += [Import(module, target, name, where(root, path, node.lineno)) for target, name in loads
                      if target == package or target.startswith(package + '.')]
    return found


def layer(module: str, root: pathlib.Path) -> Optional[str]:
    parts = module.split('.')[1:]
    if not parts or parts == ['registry']:
        return 'package'
    if parts == ['__main__']:
        return '__main__'
    if (root / parts[0] / '__init__.py').exists():
        return parts[0] if parts[0] in SUBPACKAGES else None
    return 'core'


def layer_violations(root: pathlib.Path) -> List[str]:
    found = []
    for edge in imports(root):
        source, target = layer(edge.source, root), layer(edge.target, root)
        if source is None or target is None:
            stray = edge.source if source is None else edge.target
            found.append(f'{edge.where}: {stray} is in no layer: add its subpackage to SUBPACKAGES and LAYERS')
        elif target not in LAYERS[source][0]:
            found.append(f'{edge.where}: {edge.source} imports {edge.target}, but {LAYERS[source][1]}')
    return found


def cycles(root: pathlib.Path) -> List[str]:
    """Each set of modules that import one another in a circle (Tarjan's strongly connected components), as one
    circle through it: ``module (where it imports the next) -> ... -> the first module again``."""
    edges: Dict[str, Dict[str, str]] = {}
    for edge in imports(root):
        edges.setdefault(edge.source, {}).setdefault(edge.target, edge.where)
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    components: List[Set[str]] = []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in edges.get(module, {}):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = {stack.pop()}
            while module not in component:
                component.add(stack.pop())
            if len(component) > 1 or module in edges.get(module, {}):
                components.append(component)

    for module in sorted(edges):
        if module not in index:
            visit(module)
    found = []
    for component in sorted(components, key=min):
        walk = circle(component, edges)
        found.append(' -> '.join(f'{source} ({edges[source][target]})' for source, target in walk)
                     + f' -> {walk[0][0]}')
    return found


def circle(component: Set[str], edges: Dict[str, Dict[str, str]]):
    """The shortest circle through the component from its first module by name: ``[(module, the next), ...]``."""
    start = min(component)
    previous, queue = {}, [start]
    while queue:
        module = queue.pop(0)
        for target in sorted(target for target in edges.get(module, {}) if target in component):
            if target == start:
                walk = [(module, start)]
                while module != start:
                    walk.insert(0, (previous[module], module))
                    module = previous[module]
                return walk
            if target not in previous:
                previous[target] = module
                queue.append(target)
    raise AssertionError(f'no circle through {sorted(component)}')


def is_private(name: str) -> bool:
    return name.startswith('_') and not (name.startswith('__') and name.endswith('__'))


def private_imports(root: pathlib.Path) -> List[str]:
    found = []
    for edge in imports(root):
        if edge.name and is_private(edge.name) and edge.target != edge.source:
            what = (f'the private module {edge.target}' if edge.target.endswith('.' + edge.name)
                    else f'the private name {edge.name} of {edge.target}')
            found.append(f'{edge.where}: {edge.source} imports {what}: make it public or keep it where it is used')
    return found


def code_lines(source: str, tree: ast.AST) -> Set[int]:
    """The numbers of the lines that hold code: not a docstring, a comment or a blank line (as tools/sizes.py)."""
    documentation = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                documentation.update(range(first.lineno, first.end_lineno + 1))
    code = set()
    skipped = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skipped:
            code.update(range(token.start[0], token.end[0] + 1))
    return code - documentation


def oversized(root: pathlib.Path) -> List[str]:
    found = []
    for path in modules(root).values():
        source = path.read_text(encoding='utf-8')
        tree = ast.parse(source, str(path))
        code = code_lines(source, tree)
        if len(code) > MAX_LINES['module']:
            found.append(f'{where(root, path, 1)}: the module has {len(code)} lines of code, more than '
                         f'{MAX_LINES["module"]}: split it')
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                kind = 'class' if isinstance(node, ast.ClassDef) else 'function'
                count = len([line for line in code if node.lineno <= line <= node.end_lineno])
                if count > MAX_LINES[kind]:
                    found.append(f'{where(root, path, node.lineno)}: {kind} {node.name} has {count} lines of code, '
                                 f'more than {MAX_LINES[kind]}: split it')
    return found


def declared_all(path: pathlib.Path) -> Optional[List[str]]:
    """The names of ``__all__ = [...]`` (a literal list or tuple of strings) at the top of the module, or None."""
    for node in ast.parse(path.read_text(encoding='utf-8'), str(path)).body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == '__all__' for t in node.targets):
            try:
                names = ast.literal_eval(node.value)
            except ValueError:
                return None
            return list(names) if isinstance(names, (list, tuple)) else None
    return None


def bound_names(path: pathlib.Path) -> Set[str]:
    """The names a module binds at its top level: imports, definitions and assignments."""
    names = set()
    for node in ast.parse(path.read_text(encoding='utf-8'), str(path)).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {alias.asname or alias.name.partition('.')[0] for alias in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names |= {name.id for name in ast.walk(target) if isinstance(name, ast.Name)}
    return names


def missing_all(root: pathlib.Path) -> List[str]:
    """Each package ``__init__`` without a literal ``__all__``, and each name of it the ``__init__`` does not bind."""
    found = []
    for module, path in modules(root).items():
        if path.name != '__init__.py':
            continue
        names = declared_all(path)
        if names is None:
            found.append(f'{where(root, path, 1)}: {module} declares no __all__ (a list of the names it exports)')
            continue
        bound = bound_names(path) | {sub.stem for sub in path.parent.glob('*.py')} | {
            sub.parent.name for sub in path.parent.glob('*/__init__.py')}
        found += [f'{where(root, path, 1)}: {module}.__all__ names {name}, which {module} does not define or import'
                  for name in names if name not in bound]
    return found


# -- the rules, on the package --

def test_the_layers_import_one_way():
    violations = layer_violations(PACKAGE)
    assert not violations, '\n'.join(violations)


def test_no_import_cycle_lazy_imports_included():
    found = cycles(PACKAGE)
    assert not found, 'modules on an import cycle:\n' + '\n'.join(found)


def test_no_private_name_is_imported_from_another_module():
    violations = private_imports(PACKAGE)
    assert not violations, '\n'.join(violations)


def test_no_module_function_or_class_is_too_long():
    violations = oversized(PACKAGE)
    assert not violations, '\n'.join(violations)


def test_each_package_declares_its_all_and_every_name_in_it_is_importable():
    violations = missing_all(PACKAGE)
    assert not violations, '\n'.join(violations)
    for module, path in modules(PACKAGE).items():
        if path.name == '__init__.py':
            imported = importlib.import_module(module)
            missing = [name for name in imported.__all__ if not hasattr(imported, name)]
            assert not missing, f'{module}.__all__ names what it does not have: {missing}'


CHAIN = ['state', 'errors', 'losses', 'schedules', 'divergences', 'metrics']  # the objective, bottom up


def test_the_objective_modules_import_only_the_ones_below_them():
    core = PACKAGE.name + '.'
    graph: Dict[str, Set[str]] = {}
    violations = []
    for edge in imports(PACKAGE):
        graph.setdefault(edge.source, set()).add(edge.target)
        if edge.source in [core + name for name in CHAIN]:
            position = CHAIN.index(edge.source[len(core):])
            if edge.target in {core + name for name in CHAIN[position + 1:] + ['evaluation', 'records']}:
                violations.append(f'{edge.where}: {edge.source} imports {edge.target}, above it in {CHAIN}')
    assert not violations, '\n'.join(violations)
    assert core + 'losses' in graph[core + 'evaluation']  # the likelihood is losses.reconstruction_loss
    assert {core + 'schedules', core + 'losses', core + 'errors'} <= graph[core + 'divergences']


def test_the_checkers_see_the_packages_real_imports():
    # A checker that found nothing to check would pass every rule: these imports are known to be there.
    found = {(edge.source, edge.target, edge.name) for edge in imports(PACKAGE)}
    assert ('torchbearer_vae.models.vae', 'torchbearer_vae.models.base', 'BaseVAE') in found  # relative, same folder
    assert ('torchbearer_vae.models.vae', 'torchbearer_vae.checks', 'check_int') in found  # relative, the core
    assert ('torchbearer_vae.__main__', 'torchbearer_vae.cli.main', 'main') in found
    assert ('torchbearer_vae.cli.main', 'torchbearer_vae.cli.train', 'train') in found  # lazy, in main()
    assert len(modules(PACKAGE)) > 40 and {layer(module, PACKAGE) for module in modules(PACKAGE)} == set(LAYERS)


# -- each rule fails on a made-up package that breaks it --

def write(root: pathlib.Path, files: Dict[str, str]) -> pathlib.Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding='utf-8')
    return root


@pytest.fixture
def made_up(tmp_path):
    """A package ``pkg`` with the four subpackages and a core module, obeying every rule; tests add what breaks one."""
    return write(tmp_path / 'pkg', {
        '__init__.py': 'from .models import Model\n\n__all__ = ["Model"]\n',
        '__main__.py': 'from .cli import main\n',
        'core.py': '"""Docstring."""\nimport os\n\n__all__ = ["public"]\n\n\ndef public():\n    return os.sep\n',
        'models/__init__.py': 'from .model import Model\n\n__all__ = ["Model"]\n',
        'models/model.py': 'from ..core import public\n\n\nclass Model:\n    pass\n',
        'data/__init__.py': '__all__ = []\n',
        'callbacks/__init__.py': 'from ..models import Model\nfrom pkg.data import *\n\n__all__ = ["Model"]\n',
        'cli/__init__.py': 'from .. import callbacks\nfrom pkg import core as _core\n\n__all__ = ["main"]\n\n\n'
                           'def main():\n    from ..models.model import Model\n    return Model\n',
    })


def test_a_made_up_package_that_obeys_every_rule_passes_them(made_up):
    assert layer_violations(made_up) == cycles(made_up) == private_imports(made_up) == []
    assert oversized(made_up) == missing_all(made_up) == []
    assert ('pkg.cli', 'pkg.models.model', 'Model', 'pkg/cli/__init__.py:8') in {
        (edge.source, edge.target, edge.name, edge.where) for edge in imports(made_up)}


def test_an_import_against_the_layers_is_named_with_its_line(made_up):
    write(made_up, {
        'core.py': 'def later():\n    from .models import Model  # lazy: still an import of models/\n',
        'data/loader.py': 'import os\nimport pkg.models.model\n',
        'models/other.py': 'from ..callbacks import Model\n',
        'registry.py': 'from . import cli\n',
        'utils/__init__.py': 'from ..core import later\n',
    })
    assert sorted(layer_violations(made_up)) == [
        'pkg/core.py:2: pkg.core imports pkg.models, but a core module imports no subpackage',
        'pkg/data/loader.py:2: pkg.data.loader imports pkg.models.model, but data/ imports only the core',
        'pkg/models/other.py:1: pkg.models.other imports pkg.callbacks, but models/ imports only the core',
        'pkg/registry.py:1: pkg.registry imports pkg.cli, but nothing outside cli/ imports cli/',
        'pkg/utils/__init__.py:1: pkg.utils is in no layer: add its subpackage to SUBPACKAGES and LAYERS',
    ]


def test_an_import_cycle_through_a_lazy_import_is_named_with_its_lines(made_up):
    write(made_up, {
        'core.py': 'from . import losses\n',
        'losses.py': 'from .state import KEY\n',
        'state.py': 'KEY = 1\n\n\ndef shim():\n    from .core import something\n',
        'alone.py': 'from . import alone\n',
    })
    assert cycles(made_up) == [
        'pkg.alone (pkg/alone.py:1) -> pkg.alone',
        'pkg.core (pkg/core.py:1) -> pkg.losses (pkg/losses.py:1) -> pkg.state (pkg/state.py:5) -> pkg.core',
    ]


def test_a_private_name_from_another_module_is_named_with_its_line(made_up):
    write(made_up, {
        'core.py': '_HIDDEN = 1\n\n\ndef _helper():\n    return _HIDDEN\n\n\n__version__ = "1"\n',
        'models/model.py': 'from ..core import _helper, __version__\nfrom .. import core as _core  # fine\n',
        'data/__init__.py': 'import pkg._private\n\n__all__ = []\n',
        '_private.py': '',
        'callbacks/__init__.py': 'def late():\n    from pkg.core import _HIDDEN as shown\n\n\n__all__ = []\n',
    })
    fix = 'make it public or keep it where it is used'
    assert sorted(private_imports(made_up)) == [
        f'pkg/callbacks/__init__.py:2: pkg.callbacks imports the private name _HIDDEN of pkg.core: {fix}',
        f'pkg/data/__init__.py:1: pkg.data imports the private module pkg._private: {fix}',
        f'pkg/models/model.py:1: pkg.models.model imports the private name _helper of pkg.core: {fix}',
    ]


def lines_of_code(count, indent='    '):
    return ''.join(f'{indent}x{i} = {i}\n' for i in range(count))


def test_a_module_function_or_class_past_its_size_is_named_with_its_line(made_up):
    write(made_up, {  # fits: its def line and 59 more, 60 lines of code; grows: 62
        'core.py': 'def fits():\n    """Not counted."""\n' + lines_of_code(59) + '\n\n'
                   'def grows():\n    # not counted\n\n' + lines_of_code(60) + '    return 1\n',
        'data/big.py': lines_of_code(401, indent=''),
        'models/model.py': 'class Big:\n' + ''.join(f'    def m{i}(self):\n        return {i}\n\n' for i in range(75)),
    })
    assert sorted(oversized(made_up)) == [
        'pkg/core.py:64: function grows has 62 lines of code, more than 60: split it',
        'pkg/data/big.py:1: the module has 401 lines of code, more than 400: split it',
        'pkg/models/model.py:1: class Big has 151 lines of code, more than 150: split it',
    ]


def test_an_init_without_all_or_naming_what_it_lacks_is_named(made_up):
    write(made_up, {
        'data/__init__.py': 'from .loader import Loader\n',
        'data/loader.py': 'class Loader:\n    pass\n',
        'models/__init__.py': 'from .model import Model\nfrom . import model\n\n__all__ = ["Model", "model", "Mdl"]\n',
        'callbacks/__init__.py': '__all__ = [name for name in ("a", "b")]\n',
    })
    assert sorted(missing_all(made_up)) == [
        'pkg/callbacks/__init__.py:1: pkg.callbacks declares no __all__ (a list of the names it exports)',
        'pkg/data/__init__.py:1: pkg.data declares no __all__ (a list of the names it exports)',
        'pkg/models/__init__.py:1: pkg.models.__all__ names Mdl, which pkg.models does not define or import',
    ]
