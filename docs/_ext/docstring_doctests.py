"""Make the docstrings' ``Example: ::`` blocks real doctests for ``sphinx-build -b doctest``.

The package's docstrings follow torchbearer's habit: ``Example: ::`` followed by ``>>>`` lines.
The ``::`` makes docutils read them as a *literal* block, which ``sphinx.ext.doctest`` skips (it
tests only doctest blocks and its own directives), so they would never run. This transform
turns every literal block that starts with ``>>>`` and has no explicit language into a doctest
block: the HTML is the same (Sphinx highlights both as a Python console session) and the
doctest builder now runs them. Each docstring is its own doctest group, named after its
object, so, as with Python's ``doctest`` module, one docstring's example cannot lean on the
names another one defined, and a failure names the object whose docstring is wrong.
"""
from docutils import nodes
from sphinx.transforms import SphinxTransform


class ConsoleLiteralsAreDoctests(SphinxTransform):
    default_priority = 300  # before Sphinx's highlighting and the doctest builder look at the tree

    def apply(self, **kwargs):
        blocks = [block for block in self.document.findall(nodes.literal_block)
                  if block.astext().lstrip().startswith('>>>') and 'language' not in block]
        for number, block in enumerate(blocks):
            text = block.astext()
            owner = (block.source or '').partition(':docstring of ')[2]
            doctest = nodes.doctest_block(text, text, groups=[owner or f'example-{number}'])
            doctest.source, doctest.line = block.source, block.line
            block.replace_self(doctest)


def setup(app):
    app.add_transform(ConsoleLiteralsAreDoctests)
    return {'version': '1', 'parallel_read_safe': True, 'parallel_write_safe': True}
