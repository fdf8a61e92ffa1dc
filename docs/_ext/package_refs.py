"""Resolve ``torchbearer_vae.X`` references to where ``X`` is documented, and refuse broken ones.

The docstrings and pages refer to public objects by the path users import them from,
``:func:`~torchbearer_vae.kld_loss```, but autodoc documents each object in its module,
``torchbearer_vae.divergences.kld_loss``. Sphinx would leave such a reference as plain text, silently.
This handler resolves a missing ``py`` reference to ``torchbearer_vae.<rest>`` as
``torchbearer_vae.<module>.<rest>`` when exactly one documented module has it, and emits a
warning (an error under ``-W``) for any reference into ``torchbearer_vae`` that still has no
target, so a typo or an undocumented object breaks the build instead of a link.
"""
from sphinx.util import logging

logger = logging.getLogger(__name__)
PACKAGE = 'torchbearer_vae'


def resolve(app, env, node, contnode):
    if node.get('refdomain') != 'py':
        return None
    target = node.get('reftarget', '')
    if not target.startswith(PACKAGE + '.'):
        return None
    domain = env.get_domain('py')
    rest = target[len(PACKAGE) + 1:]
    homes = sorted(name for name in domain.objects
                   if name.startswith(PACKAGE + '.') and name.endswith('.' + rest) and name.count('.') ==
                   target.count('.') + 1)
    public = [name for name in homes if not any(part.startswith('_') for part in name.split('.')[1:-1])]
    homes = public or homes  # autodoc also records a class under its defining private module (its canonical name)
    if len(homes) == 1:
        resolved = domain.resolve_xref(env, node.get('refdoc'), app.builder, node['reftype'], homes[0], node, contnode)
        if resolved is not None:
            return resolved
    logger.warning('reference to %s (%s) has no documented target%s', target, node['reftype'],
                   f': several candidates {homes}' if homes else '', location=node, type='ref', subtype='package')
    return None


def setup(app):
    app.connect('missing-reference', resolve)
    return {'version': '1', 'parallel_read_safe': True, 'parallel_write_safe': True}
