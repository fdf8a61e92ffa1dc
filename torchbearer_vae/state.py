"""State keys shared by the plugin's models, losses and callbacks.

torchbearer keeps its per-batch values in a :class:`torchbearer.state.State` dict keyed by
:class:`~torchbearer.state.StateKey` objects. The keys below are created **once**, here, and
re-exported as ``torchbearer.MU``, ``torchbearer.LOGVAR``, ``torchbearer.KL`` (and likewise
``RECON``, ``GLOBAL_STEP``, ``GLOBAL_EPOCH``, ``LABEL``).

.. warning::
    Do not create these keys yourself with ``torchbearer.state_key('mu')``. torchbearer makes
    every key name unique, so a second ``state_key('mu')`` returns a *different* key named
    ``'mu_1'``: a model storing under it and a loss reading ``torchbearer_vae.MU`` would never
    meet. Always import the keys: ``from torchbearer_vae import MU, LOGVAR``.
"""
from typing import Any

import torchbearer
from torchbearer.state import StateKey

__all__ = ['MU', 'LOGVAR', 'KL', 'RECON', 'GLOBAL_STEP', 'GLOBAL_EPOCH', 'LABEL', 'COMMITMENT', 'CODEBOOK',
           'PERPLEXITY', 'USED_CODES']


def _plugin_key(name: str, attribute: str) -> StateKey:
    """Return the key ``name``, reusing the one an earlier import registered in torchbearer.

    A reload (or a second copy of this module) must not create ``mu_1``: the key named ``name``
    already exists when torchbearer's attribute holds a StateKey with exactly that name.
    """
    existing = getattr(torchbearer, attribute, None)
    if isinstance(existing, StateKey) and existing.key == name:
        return existing
    return torchbearer.state_key(name)


#: The mean of the approximate posterior q(z|x), shape ``(batch, latent_dim)``, stored by the model.
MU = _plugin_key('mu', 'MU')

#: The log-variance of q(z|x), same shape as :data:`MU`, stored by the model.
LOGVAR = _plugin_key('logvar', 'LOGVAR')

#: The unweighted divergence of the last batch (a detached scalar tensor), stored by
#: :func:`~torchbearer_vae.divergence` callbacks such as :func:`~torchbearer_vae.kld_loss`.
KL = _plugin_key('kl', 'KL')

#: The reconstruction term of the last batch (a detached tensor), read by the ``'recon'`` metric.
#: It is ``torchbearer.LOSS`` as the first :func:`~torchbearer_vae.divergence` callback of the step found
#: it, i.e. the criterion's output before any divergence was added.
RECON = _plugin_key('recon', 'RECON')

#: The number of training steps (batches) completed before the current one, a Python int, which is
#: the training position that KL schedules read. The :func:`~torchbearer_vae.divergence` callback counts
#: it across epochs, puts it in state when its beta is a schedule or another function of state, and
#: restores it with its ``load_state_dict``. During validation it is that of the last training step,
#: so validation uses the beta training last used.
GLOBAL_STEP = _plugin_key('global_step', 'GLOBAL_STEP')

#: The number of training epochs completed before the current one, as :data:`GLOBAL_STEP` counts
#: steps (during validation, the index of the epoch just trained).
GLOBAL_EPOCH = _plugin_key('global_epoch', 'GLOBAL_EPOCH')

#: The class labels of the batch, an integer tensor ``(batch,)`` on the Trial's device, put in state at
#: every step by :func:`~torchbearer_vae.load_batch_with_labels` (from ``AutoEncoderDataset(...,
#: keep_labels=True)`` batches) and read by :class:`~torchbearer_vae.ConditionalVAE` and the pictures.
LABEL = _plugin_key('label', 'LABEL')

#: A vector quantizer's commitment term of the batch, ``(batch,)``, ``||z - sg(q)||^2`` summed over each image's
#: values, unweighted; stored by :class:`~torchbearer_vae.VQVAE`'s forward in the state way, added to the loss
#: (weighted) by :func:`~torchbearer_vae.commitment_loss` and shown by the ``'commitment'`` metric.
COMMITMENT = _plugin_key('commitment', 'COMMITMENT')

#: A vector quantizer's codebook term of the batch, ``(batch,)``, ``||sg(z) - q||^2`` per image, stored when the
#: codebook learns by gradients (``update='loss'``) and added to the loss by :func:`~torchbearer_vae.codebook_loss`.
CODEBOOK = _plugin_key('codebook', 'CODEBOOK')

#: The perplexity of the batch's codes (a detached scalar tensor), ``exp`` of the entropy of their frequencies,
#: from 1 (one code for everything) to the number of codes; shown by the ``'perplexity'`` metric.
PERPLEXITY = _plugin_key('perplexity', 'PERPLEXITY')

#: How many codes the batch used (a 0-dim int64 tensor); shown by the ``'used_codes'`` metric.
USED_CODES = _plugin_key('used_codes', 'USED_CODES')


def key_name(key: Any) -> str:
    """How a message names state key ``key``: ``torchbearer_vae.MU`` for the package's keys, else its name quoted."""
    for name in __all__:
        if globals()[name] == key:
            return f'torchbearer_vae.{name}'
    return repr(str(key))
