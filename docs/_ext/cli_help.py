"""``.. cli-help:: module:function``: the ``--help`` of an argparse command line, from its real parser.

The page cannot go stale: the text is produced at build time by calling the function (which
must return an :class:`argparse.ArgumentParser`), for the program and for each sub-command, so
a new option or command appears in the docs with no edit. No third-party extension, no
internet. Output is a rubric (``$ prog --help``) and a literal block per (sub-)command.
"""
import argparse
import functools
import importlib

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

# A fixed width: the text must not depend on the terminal the docs are built in.
WIDTH = 90


def _fixed_width(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = functools.partial(parser.formatter_class, width=WIDTH)
    if hasattr(parser, 'color'):  # Python >= 3.14 may colour help text
        parser.color = False


def command_helps(parser: argparse.ArgumentParser):
    """Yield ``(command line, help text)`` for ``parser`` and, depth first, each sub-command."""
    _fixed_width(parser)
    yield parser.prog, parser.format_help()
    seen = set()
    for action in parser._actions:  # argparse has no public way to list sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if id(sub) not in seen:  # aliases map to the same parser
                    seen.add(id(sub))
                    yield from command_helps(sub)


class CommandLineHelp(SphinxDirective):
    """Render the help of ``module:function`` (a function returning an ArgumentParser)."""

    required_arguments = 1
    has_content = False

    def run(self):
        module_name, _, function_name = self.arguments[0].partition(':')
        if not function_name:
            raise self.error(f'cli-help needs "module:function", got {self.arguments[0]!r}')
        module = importlib.import_module(module_name)
        self.env.note_dependency(module.__file__)
        parser = getattr(module, function_name)()
        result = []
        for prog, text in command_helps(parser):
            command = f'$ {prog} --help'  # a literal, so that smart quotes leave "--" alone
            result.append(nodes.rubric('', '', nodes.literal(command, command)))
            result.append(nodes.literal_block(text, text, language='text'))
        return result


def setup(app):
    app.add_directive('cli-help', CommandLineHelp)
    return {'version': '1', 'parallel_read_safe': True, 'parallel_write_safe': True}
