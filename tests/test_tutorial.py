"""The tutorial's code runs as a reader copies it: every block of docs/tutorial.rst (literalinclude, code-block and
``>>>`` examples), in the order of the page, executed one after the other in one namespace."""
import builtins
import dis
import pathlib
import re
import types

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / 'docs'
DIRECTIVE = re.compile(r'^\.\. (literalinclude|code-block|code|testcode)::\s*(.*)$')


def included(path: pathlib.Path, options: dict) -> str:
    """What Sphinx shows for a ``literalinclude`` of ``path`` with ``options`` (its own reader)."""
    from sphinx.config import Config
    from sphinx.directives.code import LiteralIncludeReader

    config = Config({'source_encoding': 'utf-8'})
    for name in ('dedent', 'lineno-start'):
        if name in options:
            options[name] = int(options[name])
    return LiteralIncludeReader(str(path), options, config).read()[0]


def page_blocks(page: pathlib.Path):
    """The Python blocks of a reST page in order: ``(line of the block, source)``."""
    lines = page.read_text(encoding='utf-8').splitlines()
    blocks, index = [], 0
    while index < len(lines):
        line = lines[index]
        found = DIRECTIVE.match(line)
        if found:
            kind, argument = found.groups()
            start = index + 1  # the directive's line, counted from 1
            index += 1
            options = {}
            while index < len(lines) and re.match(r'^\s+:[\w-]+:', lines[index]):
                name, _, value = lines[index].strip()[1:].partition(':')
                options[name] = value.strip() or True
                index += 1
            body = []
            while index < len(lines) and (not lines[index].strip() or lines[index].startswith((' ', '\t'))):
                body.append(lines[index])
                index += 1
            if kind == 'literalinclude':
                blocks.append((start, included(DOCS / argument, options)))
            elif argument in ('', 'python', 'python3'):
                indent = min(len(text) - len(text.lstrip()) for text in body if text.strip())
                blocks.append((start, '\n'.join(text[indent:] for text in body)))
            continue
        if line.lstrip().startswith('>>> '):  # a doctest block: its statements, without the expected output
            start, code = index + 1, []
            while index < len(lines) and lines[index].strip():
                text = lines[index].lstrip()
                if text.startswith(('>>> ', '... ')) or text in ('>>>', '...'):
                    code.append(text[4:])
                index += 1
            blocks.append((start, '\n'.join(code)))
            continue
        index += 1
    return blocks


def globals_read(code: types.CodeType):
    """The global names the functions and methods a block defines read when they are called."""
    names = set()
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= {instruction.argval for instruction in dis.get_instructions(constant)
                      if instruction.opname == 'LOAD_GLOBAL'}
            names |= globals_read(constant)
    return names


def test_the_tutorial_starts_with_the_imports_and_shows_what_main_reads():
    blocks = [source for _, source in page_blocks(DOCS / 'tutorial.rst')]
    first = blocks[0]
    assert first.startswith('import argparse') and 'from torchbearer_vae import (' in first
    assert all(not line.strip() or line.startswith(('import ', 'from ', '    ', ')')) for line in first.splitlines())
    shown = '\n'.join(blocks)
    assert shown.index('def parse_args(') < shown.index('def main(')


@pytest.mark.slow
def test_the_tutorial_blocks_run_in_page_order_as_copied(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the results/ folder the pictures go to
    namespace = {'__name__': 'tutorial'}  # the scripts' `if __name__ == '__main__'` lines stay out of it
    ran = []
    for line, source in page_blocks(DOCS / 'tutorial.rst'):
        # The page trains for 10 epochs on a download; here, on a slice of the MNIST beside the repository.
        source = source.replace("main(['--data-dir', 'data', '--epochs', '10'])",
                                f"main(['--data-dir', {mnist_dir!r}, '--epochs', '1', '--limit', '600', "
                                f"'--verbose', '0'])")
        code = compile(source, f'tutorial.rst, the block at line {line}', 'exec')
        exec(code, namespace)
        missing = sorted(name for name in globals_read(code) if name not in namespace and not hasattr(builtins, name))
        assert not missing, f'the block at line {line} of tutorial.rst uses {missing}, not defined above it'
        ran.append(source)
    assert len(ran) >= 15 and "'--epochs', '1'" in '\n'.join(ran)  # the training call was there and ran
    history = namespace['history']
    assert len(history) == 1 and history[0]['val_loss'] > 0
    assert (tmp_path / 'results' / 'reconstruction_0.png').exists()
