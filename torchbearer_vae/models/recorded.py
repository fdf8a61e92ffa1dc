"""How a model of the package remembers the arguments it was built with (its ``config``); *internal*.

:class:`~torchbearer_vae.BaseVAE` and :class:`~torchbearer_vae.VQVAE` wrap each subclass's ``__init__``
with :func:`record_config` (in ``__init_subclass__``), so that :func:`~torchbearer_vae.model_from_checkpoint`
rebuilds any of them from a checkpoint.
"""
import functools
import inspect
from typing import Any, Callable, Dict

__all__ = []  # internal


def record_config(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a subclass's ``__init__`` so that the instance remembers the keyword arguments it was built with.

    Only the ``__init__`` of the class being instantiated records (not the ones it reaches through
    ``super().__init__``), with the defaults filled in, so ``type(model)(**model.config)`` builds
    the same network.
    """
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if type(self).__init__ is not __init__ or '_init_config' in self.__dict__:
            return
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        config: Dict[str, Any] = {}
        for name, parameter in list(signature.parameters.items())[1:]:
            value = bound.arguments.get(name)
            if parameter.kind is parameter.VAR_KEYWORD:
                config.update(value or {})
            elif parameter.kind is parameter.VAR_POSITIONAL:
                if value:  # cannot be passed back by keyword
                    self.__dict__['_init_config'] = None
                    return
            else:
                config[name] = value
        self.__dict__['_init_config'] = config
    return __init__
