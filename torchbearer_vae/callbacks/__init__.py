"""The callbacks: pictures of a model (torchbearer ``ImagingCallback``\\ s), latent-space charts and guards.

A picture of your own is a :class:`PictureSaver` subclass with one method, ``draw(model, state)``.
"""
from .guards import NaNGuard
from .imaging import MakeGrid
from .latent import KLPerDimension, LatentManifold, LatentScatter
from .picture_saver import PictureSaver
from .pictures import Interpolation, LatentTraversal, ReconstructionSaver, SampleSaver

__all__ = ['PictureSaver', 'ReconstructionSaver', 'SampleSaver', 'LatentTraversal', 'Interpolation', 'MakeGrid',
           'LatentScatter', 'LatentManifold', 'KLPerDimension', 'NaNGuard']
