"""In-memory ``uint8`` images in either layout: :class:`~torchbearer_vae.ImageDataset` and the one layout rule.

:class:`~torchbearer_vae.TensorLoader` uses the same rule (``channels_first``) for the arrays
it is given, so that a dataset and a loader never read one array two ways.
"""
from typing import Any, Callable, List, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..checks import check_bool, check_callable, describe, plural

__all__ = []  # internal: ImageDataset is public through torchbearer_vae.datasets

_CHANNELS = (1, 3, 4)  # grey, RGB, RGBA: what a channel dimension of real images holds
_HOW_TO_STATE_LAYOUT = ('pass channels_last=True for (N, H, W, C) images (as numpy, PIL, scikit-image and '
                        "torchvision's CIFAR10.data hold them) or channels_last=False for (N, C, H, W)")


def as_tensor(data: Union[torch.Tensor, np.ndarray]) -> torch.Tensor:
    """A tensor, or a numpy array as a tensor that shares its memory where torch can (writable, positive strides)."""
    if isinstance(data, np.ndarray):
        if not data.flags.writeable or any(stride < 0 for stride in data.strides):
            data = data.copy()  # torch.from_numpy needs writable memory and positive strides
        return torch.from_numpy(data)
    return data


def infer_layout(shape: Sequence[int]) -> Optional[bool]:
    """Whether 4-D images of ``shape`` are channels-last (True), channels-first (False), or None: cannot tell."""
    first, last = shape[1] in _CHANNELS, shape[3] in _CHANNELS
    return last if first != last else None


def channels_first(data: Union[torch.Tensor, np.ndarray], channels_last: Optional[bool], name: str) -> torch.Tensor:
    """``data`` (a tensor or numpy array) as a tensor of ``(N, H, W)`` or ``(N, C, H, W)`` images.

    ``channels_last`` states the layout of 4-D images (None: inferred from the shape, an error
    when it is ambiguous). Images are returned in contiguous channels-first storage (made once,
    not per batch, so that a batch gathers contiguous rows), sharing ``data``'s memory when it
    already is (a grey ``(N, H, W)`` tensor, or a transposed view such as ``CIFAR10.data``).
    """
    tensor = as_tensor(data)
    shape = tuple(tensor.shape)
    if tensor.dim() == 3:
        if channels_last is None and shape[2] in (3, 4) and shape[1] > shape[2]:  # e.g. (32, 32, 3): a photo
            raise ValueError(f'{name} of shape {shape} looks like one channels-last image (H, W, C), not a batch of '
                             f'grey images (N, H, W); give a batch (N, H, W, C), e.g. image[None], or pass '
                             f'channels_last=False if these are {shape[0]} grey images of {shape[1]}x{shape[2]}')
        if channels_last:
            raise ValueError(f'channels_last=True needs 4-D images (N, H, W, C), but {name} is 3-D, {shape}: grey '
                             f'images (N, H, W); leave channels_last out')
        return tensor.contiguous()
    if tensor.dim() == 4:
        if channels_last is None:
            channels_last = infer_layout(shape)
        if channels_last is None:
            raise ValueError(f'cannot tell the layout of {name} of shape {shape}: '
                             + (f'both {shape[1]} and {shape[3]} could be its channels' if shape[1] in _CHANNELS else
                                f'neither {shape[1]} nor {shape[3]} is a number of channels (1, 3 or 4)')
                             + f'; {_HOW_TO_STATE_LAYOUT}')
        return (tensor.permute(0, 3, 1, 2) if channels_last else tensor).contiguous()
    return tensor


class ImageDataset(Dataset):
    """Images held in memory as ``uint8``, with optional labels: the shape of MNIST-like data.

    ``self.data`` is the ``uint8`` tensor, ``(N, H, W)`` (grey, as torchvision's MNIST keeps it)
    or ``(N, C, H, W)``, and ``self.targets`` the labels. Items are float tensors ``(C, H, W)``
    in ``[0, 1]``, exactly what ``transforms.ToTensor()`` gives for the same image, so the whole
    dataset costs one byte per pixel and batches can be converted at once.

    ``data`` may be a tensor or a numpy array, in either layout: channels-last images
    ``(N, H, W, C)``, as numpy, PIL (``np.asarray(image)``), scikit-image and torchvision's
    ``CIFAR10.data`` hold them, are converted once to ``(N, C, H, W)``. The layout of 4-D data is
    inferred when only one of its second and last dimensions is a number of channels (1, 3 or
    4): ``(N, 32, 32, 3)`` is channels-last, ``(N, 3, 32, 32)`` channels-first. Otherwise, e.g.
    ``(N, 3, 32, 3)``, it cannot be told, and a ``ValueError`` asks for ``channels_last``.

    Args:
        data (torch.Tensor or numpy.ndarray): ``uint8`` images, ``(N, H, W)``, ``(N, C, H, W)``
            or ``(N, H, W, C)``.
        targets (tensor, array, sequence or None): ``N`` labels; without them items are images only.
        channels_last (bool or None): Whether 4-D ``data`` is ``(N, H, W, C)`` (True) or
            ``(N, C, H, W)`` (False); None infers it from the shape.
        transform (callable or None): Applied to each image tensor.
        target_transform (callable or None): Applied to each label.

    Example: ::

        >>> import numpy as np
        >>> import torch
        >>> from torchbearer_vae import ImageDataset
        >>> images = ImageDataset(torch.full((3, 2, 2), 255, dtype=torch.uint8), torch.tensor([0, 1, 2]))
        >>> images[1]
        (tensor([[[1., 1.],
                 [1., 1.]]]), 1)
        >>> photos = ImageDataset(np.zeros((10, 32, 32, 3), dtype=np.uint8))  # channels-last, as numpy holds them
        >>> photos.data.shape, photos[0].shape
        (torch.Size([10, 3, 32, 32]), torch.Size([3, 32, 32]))
    """

    #: The class names, by label, when the images came from a source that names them (a folder's subfolders,
    #: CIFAR-10); None for a folder without classes.
    classes: Optional[List[str]]
    #: The file of each image, when the images came from files (:func:`~torchbearer_vae.load_image_folder`).
    paths: List[str]

    def __init__(self, data: Union[torch.Tensor, np.ndarray], targets: Any = None, *,
                 channels_last: Optional[bool] = None, transform: Optional[Callable[..., Any]] = None,
                 target_transform: Optional[Callable[..., Any]] = None) -> None:
        if not isinstance(data, (torch.Tensor, np.ndarray)):
            raise TypeError(f'data must be a uint8 tensor or numpy array of images, got {describe(data)}')
        uint8 = data.dtype == (torch.uint8 if isinstance(data, torch.Tensor) else np.uint8)
        if not uint8 or data.ndim not in (3, 4):
            fix = ('; convert float images in [0, 1] with (x * 255).round() to uint8, or use a TensorDataset '
                   'for float data' if data.ndim in (3, 4) else '')
            raise ValueError(f'data must be uint8 images (N, H, W), (N, C, H, W) or (N, H, W, C), got '
                             f'{describe(data)}{fix}')
        if channels_last is not None:
            check_bool('channels_last', channels_last)
        self.data = channels_first(data, channels_last, 'data')
        self.targets = None if targets is None else self._labels(targets)
        self.transform = check_callable('transform', transform, allow_none=True)
        self.target_transform = check_callable('target_transform', target_transform, allow_none=True)

    def _labels(self, targets: Any) -> torch.Tensor:
        if not isinstance(targets, (torch.Tensor, np.ndarray, list, tuple)):
            raise TypeError(f'targets must be None or a tensor, array or sequence of labels, got {describe(targets)}')
        labels = torch.as_tensor(np.asarray(targets) if isinstance(targets, (list, tuple)) else targets)
        if labels.shape != (len(self.data),):
            raise ValueError(f'targets must hold {len(self.data)} labels, one per image, got {describe(labels)}')
        return labels.long()

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Any:
        image = self.data[index]
        image = (image.unsqueeze(0) if image.dim() == 2 else image).float().div_(255)
        if self.transform is not None:
            image = self.transform(image)
        if self.targets is None:
            return image
        target = int(self.targets[index])
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self) -> str:
        return f'{type(self).__name__}({plural(len(self), "image")} of {tuple(self.data.shape[1:])})'
