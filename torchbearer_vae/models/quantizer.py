"""The vector quantizer of VQ-VAE, a module of its own for any model: nearest codes, straight-through gradients.

:class:`VectorQuantizer` replaces each encoder vector by the nearest of ``num_codes`` learned codes
(van den Oord, Vinyals and Kavukcuoglu 2017, "Neural Discrete Representation Learning"). Its
codebook learns by exponential moving averages of the vectors each code is chosen for (the
paper's appendix, and VQ-VAE-2's default), or by gradient descent on a codebook loss term.
"""
from typing import Any, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_choice, check_int, check_number, describe
from ..distributed import get_world_size

__all__ = ['VectorQuantizer', 'QuantizerOutput']

#: How the codebook learns: ``'ema'`` (moving averages) or ``'loss'`` (gradients of the codebook term).
UPDATES = ('ema', 'loss')
#: Where the codes start: ``'data'`` (vectors of the first training batch) or ``'uniform'``.
INITS = ('data', 'uniform')


class QuantizerOutput(NamedTuple):
    """What a call of :class:`VectorQuantizer` returns; the loss terms are per image, summed over its values.

    Its fields:

    * ``quantized`` (torch.Tensor): The nearest codes, shaped like the input, with straight-through
      gradients: its value is the codes', its gradient goes to the input unchanged.
    * ``indices`` (torch.Tensor): The chosen codes' indices, ``(B, *spatial)`` int64 (``(B,)`` for a
      ``(B, D)`` input).
    * ``loss`` (torch.Tensor): ``(B,)``, what the quantizer adds to the model's loss:
      ``commitment_weight * commitment``, plus ``codebook`` for ``update='loss'``.
    * ``commitment`` (torch.Tensor): ``(B,)``, ``||z - sg(q)||^2`` summed over each image's values
      (unweighted); its gradient pulls the encoder towards its codes.
    * ``codebook`` (torch.Tensor or None): ``(B,)``, ``||sg(z) - q||^2`` likewise, whose gradient
      moves the codes (``update='loss'``); None for ``update='ema'``.
    * ``perplexity`` (torch.Tensor): ``exp`` of the entropy of the batch's code frequencies, a
      detached scalar: from 1 (one code for everything) to ``num_codes`` (all used evenly).
    * ``used_codes`` (torch.Tensor): How many codes the batch used, a 0-dim int64 tensor.
    """

    quantized: torch.Tensor
    indices: torch.Tensor
    loss: torch.Tensor
    commitment: torch.Tensor
    codebook: Optional[torch.Tensor]
    perplexity: torch.Tensor
    used_codes: torch.Tensor


class VectorQuantizer(nn.Module):
    r"""Replace each vector of an encoder's output by the nearest of ``num_codes`` codes of ``code_dim`` values.

    The input holds the vectors along dimension 1: ``(B, D)`` (one vector per image) or
    ``(B, D, H, W)`` (one per position of a map, as a convolutional encoder gives), or any
    ``(B, D, *spatial)``. Each vector ``z`` is replaced by the code ``q = e_k`` nearest to it in
    Euclidean distance (from ``||z||^2 - 2 z \cdot e_k + ||e_k||^2``: a ``(vectors, num_codes)``
    matrix, never a ``(vectors, num_codes, D)`` tensor), computed in at least float32 and outside
    autocast so that half precision cannot change which code is nearest. The output
    ``z + sg(q - z)`` (``sg``: stop-gradient) has the codes' values and passes the decoder's
    gradient straight through to the encoder. The call returns a :class:`QuantizerOutput`: the
    output, the indices and the loss terms, summed over each image's values like the package's
    reconstruction term (:func:`~torchbearer_vae.reconstruction_loss`), so that they add to it.

    **How the codebook learns.** ``update='ema'`` (default): at each call in training mode, with
    ``n_k`` the number of the batch's vectors that chose code ``k`` and ``s_k`` their sum,

    .. math::
        N_k \leftarrow \gamma N_k + (1 - \gamma) n_k, \qquad
        m_k \leftarrow \gamma m_k + (1 - \gamma) s_k, \qquad
        e_k = m_k \Big/ \frac{(N_k + \epsilon) \sum_j N_j}{\sum_j N_j + K \epsilon}

    (``gamma = decay``, ``epsilon = eps``, ``K = num_codes``; the denominator is ``N_k`` with
    Laplace smoothing, so a code nobody chose is not divided by zero). ``N`` and ``m`` are buffers
    (``cluster_size``, ``code_sum``) and so is the codebook: they are in the ``state_dict``, and no
    optimizer touches them. ``N`` starts at 1 and ``m`` at the codes, so ``e = m / N`` from the
    start. ``update='loss'``: the codebook is a parameter learned through the ``codebook`` term,
    whose gradient moves each chosen code towards its vectors; add ``output.loss`` to the loss.
    Either way ``output.loss`` holds ``commitment_weight`` times the commitment term (the paper's
    ``beta``, 0.25). Nothing is updated in eval mode, or under ``torch.no_grad`` in eval mode;
    under ``torch.no_grad`` in *training* mode the moving averages are still updated.

    **Where the codes start.** ``init='data'`` (default): at the first call in training mode the
    codes become random vectors of that batch (distinct ones when the batch has at least
    ``num_codes`` vectors), so that every code starts where the encoder's outputs are; before
    that (and with ``init='uniform'``) they are drawn uniformly from ``[-1/K, 1/K]``, as in the
    paper's implementation. A buffer, ``initialised``, records it, so a loaded model is not
    initialised again.

    **Restarts of unused codes.** The moving average ``N_k`` is kept in both modes. After each
    update in training mode, a code whose ``N_k`` is below ``restart_below`` times an even share,
    ``restart_below * sum(N) / K``, is dead: it becomes a random vector of the batch, and its
    ``N_k`` the threshold (``m_k`` follows, so ``e_k = m_k / N_k`` still holds), so unless
    vectors choose it at the next call it is restarted again there. ``restart_below=0`` turns
    restarts off. The draws use torch's global random generator.

    **Several processes.** When :mod:`torch.distributed` is initialised, the counts and sums of the
    moving averages are summed over the processes (``all_reduce``) before the update, and the
    vectors that initialise or restart codes are rank 0's (``broadcast``), so every process keeps
    the same codebook. These are collectives: every process must call the quantizer in training
    mode the same number of times. ``output.perplexity`` and ``used_codes`` stay this process's.

    Args:
        num_codes (int): ``K``, the number of codes.
        code_dim (int): ``D``, the values of a code, the size of the input's dimension 1.
        update (str): ``'ema'`` or ``'loss'``.
        decay (float): ``gamma`` of the moving averages, in ``(0, 1)``.
        commitment_weight (float): Weight of the commitment term in ``output.loss``, >= 0.
        eps (float): ``epsilon`` of the Laplace smoothing, > 0.
        restart_below (float): Restart codes used less than this fraction of an even share, in
            ``[0, 1]``; 0 never restarts.
        init (str): ``'data'`` or ``'uniform'``.

    Attributes:
        codebook (torch.Tensor): ``(num_codes, code_dim)``: a buffer (``'ema'``) or a parameter (``'loss'``).
        cluster_size (torch.Tensor): ``(num_codes,)``, the moving average ``N`` of the codes' use.
        code_sum (torch.Tensor): ``(num_codes, code_dim)``, the moving average ``m`` (``'ema'`` only).

    Example: ::

        >>> import torch
        >>> from torchbearer_vae import VectorQuantizer
        >>> quantizer = VectorQuantizer(num_codes=16, code_dim=4)
        >>> z = torch.randn(2, 4, 7, 7, requires_grad=True)
        >>> out = quantizer(z)  # training mode: the codes start from z, then move by moving averages
        >>> out.quantized.shape, out.indices.shape, out.loss.shape
        (torch.Size([2, 4, 7, 7]), torch.Size([2, 7, 7]), torch.Size([2]))
        >>> loss = out.quantized.pow(2).sum() + out.loss.sum()  # a decoder's loss, plus the quantizer's
        >>> loss.backward()
        >>> out = quantizer.eval()(z)  # no update: the output is the codes of the indices
        >>> torch.allclose(out.quantized, quantizer.lookup(out.indices))
        True
    """

    codebook: torch.Tensor
    cluster_size: torch.Tensor
    code_sum: torch.Tensor
    initialised: torch.Tensor

    def __init__(self, num_codes: int = 512, code_dim: int = 64, *, update: str = 'ema', decay: float = 0.99,
                 commitment_weight: float = 0.25, eps: float = 1e-5, restart_below: float = 0.01,
                 init: str = 'data'):
        super().__init__()
        self.num_codes = check_int('num_codes', num_codes, minimum=1)
        self.code_dim = check_int('code_dim', code_dim, minimum=1)
        self.update = check_choice('update', update, UPDATES)
        self.decay = check_number('decay', decay, above=0, below=1)
        self.commitment_weight = check_number('commitment_weight', commitment_weight, minimum=0)
        self.eps = check_number('eps', eps, above=0)
        self.restart_below = check_number('restart_below', restart_below, minimum=0, maximum=1)
        self.init = check_choice('init', init, INITS)
        codes = torch.empty(num_codes, code_dim).uniform_(-1 / num_codes, 1 / num_codes)
        if self.update == 'ema':
            self.register_buffer('codebook', codes)
            self.register_buffer('code_sum', codes.clone())
        else:
            self.codebook = nn.Parameter(codes)
        self.register_buffer('cluster_size', torch.ones(num_codes))
        self.register_buffer('initialised', torch.tensor(self.init == 'uniform'))

    @staticmethod
    def of(model: Any) -> Optional['VectorQuantizer']:
        """The quantizer of ``model`` (its ``quantizer`` attribute, as :class:`~torchbearer_vae.VQVAE`'s), or None:
        what the package's pieces look at to tell a VQ-VAE from a model with a Gaussian or plain latent.

        Example: ::

            >>> from torchbearer_vae import VAE, VQVAE, VectorQuantizer
            >>> VectorQuantizer.of(VQVAE(num_codes=8, code_dim=4)).num_codes, VectorQuantizer.of(VAE())
            (8, None)
        """
        quantizer = getattr(model, 'quantizer', None)
        return quantizer if isinstance(quantizer, VectorQuantizer) else None

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantize ``z``; in training mode, update the codebook (``'ema'``) and restart unused codes.

        Args:
            z (torch.Tensor): ``(B, code_dim, *spatial)`` floating point vectors.

        Returns:
            QuantizerOutput: The output, the indices, the loss terms and the batch's code use.

        Raises:
            TypeError: ``z`` is not a floating point tensor.
            ValueError: ``z`` does not have ``code_dim`` values along dimension 1.
        """
        self._check_input(z)
        dtype = torch.promote_types(torch.promote_types(z.dtype, self.codebook.dtype), torch.float32)
        with torch.autocast(z.device.type, enabled=False):
            flat = z.detach().movedim(1, -1).reshape(-1, self.code_dim).to(dtype)
            if self.training and self.init == 'data' and not bool(self.initialised):
                self._initialise(flat)
            indices = nearest_codes(flat, self.codebook.detach().to(dtype))
            codes = F.embedding(indices, self.codebook).to(dtype)  # before the update: the codes that were chosen
            counts = torch.bincount(indices, minlength=self.num_codes).to(dtype)
            if self.training:
                with torch.no_grad():
                    self._update(flat, indices, counts.clone())
            quantized = codes.reshape(z.shape[0], *z.shape[2:], self.code_dim).movedim(-1, 1)
            z_wide = z.to(dtype)
            commitment = (z_wide - quantized.detach()).pow(2).flatten(1).sum(1)
            codebook = (z_wide.detach() - quantized).pow(2).flatten(1).sum(1) if self.update == 'loss' else None
        loss = self.commitment_weight * commitment
        if codebook is not None:
            loss = loss + codebook
        output = z + (quantized.to(z.dtype) - z).detach()
        frequencies = counts / max(indices.numel(), 1)
        perplexity = torch.exp(-torch.special.xlogy(frequencies, frequencies).sum())
        return QuantizerOutput(output, indices.reshape(z.shape[0], *z.shape[2:]), loss, commitment, codebook,
                               perplexity, (counts > 0).sum())

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """The indices of the codes nearest to ``z``'s vectors, without updating anything (no gradient).

        Args:
            z (torch.Tensor): ``(B, code_dim, *spatial)`` floating point vectors.

        Returns:
            torch.Tensor: ``(B, *spatial)`` int64 indices, for :meth:`lookup`.
        """
        self._check_input(z)
        dtype = torch.promote_types(torch.promote_types(z.dtype, self.codebook.dtype), torch.float32)
        with torch.no_grad(), torch.autocast(z.device.type, enabled=False):
            flat = z.movedim(1, -1).reshape(-1, self.code_dim).to(dtype)
            return nearest_codes(flat, self.codebook.to(dtype)).reshape(z.shape[0], *z.shape[2:])

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """The codes of ``indices``, with the code dimension at dimension 1, as the quantizer's output has it.

        Args:
            indices (torch.Tensor): ``(B, *spatial)`` integer indices in ``[0, num_codes)``.

        Returns:
            torch.Tensor: ``(B, code_dim, *spatial)`` codes.

        Raises:
            TypeError: ``indices`` is not an integer tensor.
            ValueError: an index is outside ``[0, num_codes)``, or ``indices`` has no batch dimension.
        """
        if not isinstance(indices, torch.Tensor) or indices.is_floating_point() or indices.is_complex():
            raise TypeError(f'lookup needs an integer tensor of code indices, got {describe(indices)}')
        if indices.dim() < 1:
            raise ValueError(f'lookup needs indices with a batch dimension, (batch, *spatial), got shape '
                             f'{tuple(indices.shape)}')
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.num_codes):
            raise ValueError(f'lookup needs indices in [0, {self.num_codes}), got values from {int(indices.min())} '
                             f'to {int(indices.max())}')
        return F.embedding(indices.long(), self.codebook).movedim(-1, 1)

    def _check_input(self, z: torch.Tensor) -> None:
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError(f'VectorQuantizer needs a floating point tensor, got {describe(z)}')
        if z.dim() < 2 or z.shape[1] != self.code_dim:
            raise ValueError(f'VectorQuantizer(code_dim={self.code_dim}) needs vectors along dimension 1, '
                             f'(batch, {self.code_dim}) or (batch, {self.code_dim}, height, width), got shape '
                             f'{tuple(z.shape)}')

    def _initialise(self, flat: torch.Tensor) -> None:
        """The codes become random vectors of the batch (rank 0's), distinct ones if there are enough."""
        if len(flat) == 0:
            return
        with torch.no_grad():
            picks = (torch.randperm(len(flat), device=flat.device)[:self.num_codes] if len(flat) >= self.num_codes
                     else torch.randint(len(flat), (self.num_codes,), device=flat.device))
            vectors = _from_rank_zero(flat[picks])
            self.codebook.copy_(vectors)
            if self.update == 'ema':
                self.code_sum.copy_(vectors * self.cluster_size.unsqueeze(1))
            self.initialised.fill_(True)

    def _update(self, flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        """The moving averages of one training batch, the codebook from them (``'ema'``), then the restarts."""
        size = self.cluster_size
        sums = None
        if self.update == 'ema':
            sums = torch.zeros_like(self.code_sum, dtype=flat.dtype).index_add_(0, indices, flat)
        if get_world_size() > 1:
            torch.distributed.all_reduce(counts)
            if sums is not None:
                torch.distributed.all_reduce(sums)
        size.mul_(self.decay).add_(counts.to(size.dtype), alpha=1 - self.decay)
        if sums is not None:
            self.code_sum.mul_(self.decay).add_(sums.to(self.code_sum.dtype), alpha=1 - self.decay)
            total = size.sum()
            smoothed = (size + self.eps) / (total + self.num_codes * self.eps) * total
            self.codebook.copy_(self.code_sum / smoothed.unsqueeze(1))
        if self.restart_below > 0 and len(flat):
            self._restart(flat)

    def _restart(self, flat: torch.Tensor) -> None:
        """Dead codes (used less than ``restart_below`` of an even share) become random vectors of the batch.

        Written without a data-dependent branch, so that it costs no synchronisation with the GPU.
        """
        threshold = self.restart_below * self.cluster_size.sum() / self.num_codes
        dead = self.cluster_size < threshold
        vectors = _from_rank_zero(flat[torch.randint(len(flat), (self.num_codes,), device=flat.device)])
        self.codebook.copy_(torch.where(dead.unsqueeze(1), vectors.to(self.codebook.dtype), self.codebook))
        self.cluster_size.copy_(torch.where(dead, threshold, self.cluster_size))
        if self.update == 'ema':
            restarted = vectors.to(self.code_sum.dtype) * threshold
            self.code_sum.copy_(torch.where(dead.unsqueeze(1), restarted, self.code_sum))

    def extra_repr(self) -> str:
        return (f'num_codes={self.num_codes}, code_dim={self.code_dim}, update={self.update!r}, decay={self.decay}, '
                f'commitment_weight={self.commitment_weight}, restart_below={self.restart_below}, init={self.init!r}')


def nearest_codes(vectors: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """The index of the code nearest to each vector, ``(N,)``, for ``(N, D)`` vectors and a ``(K, D)`` codebook.

    ``argmin_k ||e_k||^2 - 2 z . e_k`` (``||z||^2`` is the same for every code), one matrix product.
    """
    scores = torch.addmm(codebook.pow(2).sum(1), vectors, codebook.t(), alpha=-2)
    return scores.argmin(1)


def _from_rank_zero(vectors: torch.Tensor) -> torch.Tensor:
    """``vectors`` as rank 0 has them, when several processes train together; else ``vectors``."""
    if get_world_size() > 1:
        vectors = vectors.contiguous()
        torch.distributed.broadcast(vectors, src=0)
    return vectors
