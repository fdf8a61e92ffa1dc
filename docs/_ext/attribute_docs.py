"""Refuse a ``#:`` comment (or attribute docstring) whose first line napoleon would read as a type.

napoleon reads the first line of a data, attribute or property docstring in the Google style
``type: description``: whatever stands before the line's first colon (outside literals and roles)
becomes a "Type" field. A comment written as prose, such as ``#: The training position (an int):
the number of steps ...``, then renders as "TYPE: The training position (an int)" below the rest
of its own sentence. This handler runs before napoleon and warns (an error under ``-W``) when that
part is prose rather than a short type such as ``str or None``, so that the comment is reworded
instead of shipping garbled.
"""
import re

from sphinx.util import logging

logger = logging.getLogger(__name__)
PACKAGE = 'torchbearer_vae'
# Literals and roles, whose colons separate nothing (napoleon skips them the same way).
CODE = re.compile(r'(:(?:[a-zA-Z0-9]+[\-_.:])*[a-zA-Z0-9]+:`.+?`|``.+?``|`.+?`)')
SINGLE_COLON = re.compile(r'(?<!:):(?!:)')
# Words that a type such as ``list of str or None`` may have besides type names.
TYPE_GLUE = {'or', 'of', 'and', 'None'}


def type_part(line):
    """What napoleon would show as the type of a docstring whose first line is ``line``, or None."""
    pieces = CODE.split(line)
    for index in range(0, len(pieces), 2):  # the even pieces are outside literals and roles
        colon = SINGLE_COLON.search(pieces[index])
        if colon:
            before = ''.join(pieces[:index]) + pieces[index][:colon.start()]
            after = pieces[index][colon.end():] + ''.join(pieces[index + 1:])
            return before.strip() if after.strip() else None  # napoleon keeps 'Text:' whole
    return None


def looks_like_prose(text):
    words = [word for word in CODE.sub('T', text).split() if word not in TYPE_GLUE]
    return len(words) > 3 or bool(words) and words[0].lower() in ('a', 'an', 'the', 'like')


def check(app, what, name, obj, options, lines):
    if what not in ('data', 'attribute', 'property') or not name.startswith(PACKAGE + '.'):
        return
    first = next((line for line in lines if line.strip()), None)
    kind = type_part(first) if first is not None else None
    if kind and looks_like_prose(kind):
        logger.warning('%s: the first line of its docstring or #: comment has a colon, so napoleon shows "%s" as '
                       'its type; reword that line without a colon (or start it with a short type, "int: ...")',
                       name, kind, type='napoleon', subtype='attribute_type')


def setup(app):
    app.connect('autodoc-process-docstring', check, priority=400)  # napoleon rewrites the lines at 500
    return {'version': '1', 'parallel_read_safe': True, 'parallel_write_safe': True}
