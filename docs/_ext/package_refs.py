"""Resolve a reference to a public object by the path users import it from, and refuse broken ones.

autodoc describes each object once, in the module that defines it
(``torchbearer_vae.divergences.kld_loss``, ``torchbearer_vae.callbacks.pictures.SampleSaver``), but
the pages and docstrings name it the way users import it: ``:func:`~torchbearer_vae.kld_loss```,
``:class:`~torchbearer_vae.callbacks.SampleSaver```, or, in a docstring, by a name its module
imported (``:func:`reconstruction_loss``` in ``torchbearer_vae.metrics``) or by a public name of
the package (``:class:`VAE``` anywhere). Sphinx would leave such a reference as plain text,
silently. This handler follows the reference's path as Python does (attributes, then submodules)
and links it to the described object of the same name that *is* the same object, so a re-export
resolves wherever it is and a namesake elsewhere does not (an instance attribute, which has no
object of its own, is matched through its class). A reference that names the package and still
has no target is a warning (an error under ``-W``), so a stale module path, a typo or an
undocumented object breaks the build instead of a link; a short reference that resolves to
nothing stays plain text, as Sphinx leaves it. So does any reference in the pages named by the
``package_refs_history`` setting (the changelog): history names what has since moved or gone.
"""
import importlib
import types

from sphinx.util import logging

logger = logging.getLogger(__name__)
PACKAGE = 'torchbearer_vae'
NOTHING = object()


def follow(path):
    """``(object, rest)``: what the dotted ``path`` names as far as Python follows it, and the names left over.

    ``torchbearer_vae.callbacks.SampleSaver`` gives ``(SampleSaver, ())``; the path of an instance
    attribute stops at its class, ``(PictureSaver, ('folder',))``.
    """
    parts = path.split('.')
    found = importlib.import_module(parts[0])
    for index, part in enumerate(parts[1:], 1):
        attribute = getattr(found, part, NOTHING)
        if attribute is NOTHING and isinstance(found, types.ModuleType):
            try:
                attribute = importlib.import_module(f'{found.__name__}.{part}')
            except ImportError:
                pass
        if attribute is NOTHING:
            return found, tuple(parts[index:])
        found = attribute
    return found, ()


def homes(domain, target):
    """The described objects (not autodoc's aliases under a defining module) that ``target`` names."""
    wanted, rest = follow(target)
    last = '.' + target.rpartition('.')[2]
    found = []
    for name, entry in domain.objects.items():
        if name.startswith(PACKAGE + '.') and name.endswith(last) and name != target and not entry.aliased:
            other, other_rest = follow(name)
            if other is wanted and other_rest == rest:
                found.append(name)
    return sorted(found)


def internal(target):
    """Whether ``target`` exists but is internal (private, or outside its module's ``__all__``): a type in a
    signature, such as a ``TypeVar`` or a ``Protocol``, that is shown as text, not linked."""
    module_name, _, name = target.rpartition('.')
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    return hasattr(module, name) and (name.startswith('_') or name not in getattr(module, '__all__', ()))


def resolve(app, env, node, contnode):
    if node.get('refdomain') != 'py':
        return None
    target = node.get('reftarget', '')
    named = target.startswith(PACKAGE + '.')
    if named:
        candidates = [target]
    else:  # a short name in a docstring: as its module (and class) sees it, else a name of the package's
        module, owner = node.get('py:module') or '', node.get('py:class')
        if not module.startswith(PACKAGE):
            return None
        candidates = ([f'{module}.{owner}.{target}'] if owner else []) + [f'{module}.{target}', f'{PACKAGE}.{target}']
    domain = env.get_domain('py')
    for candidate in candidates:
        found = homes(domain, candidate)
        if len(found) == 1:
            resolved = domain.resolve_xref(env, node.get('refdoc'), app.builder, node['reftype'], found[0], node,
                                           contnode)
            if resolved is not None:
                return resolved
    if named and not internal(target) and node.get('refdoc') not in app.config.package_refs_history:
        logger.warning('reference to %s (%s) has no documented target%s', target, node['reftype'],
                       f': several candidates {found}' if found else '', location=node, type='ref',
                       subtype='package')
    return None


def setup(app):
    app.add_config_value('package_refs_history', (), 'env', types=(list, tuple))
    app.connect('missing-reference', resolve)
    return {'version': '2', 'parallel_read_safe': True, 'parallel_write_safe': True}
