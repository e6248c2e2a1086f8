"""DiffNet in PyTorch (Arridge & Hauptmann, JMIV 2019) on top of ssdops.

Models and their weight files (:mod:`.models`, :mod:`.unet`; the format is :mod:`ssdops.diffnet.format`,
shared with ``diffnet_jax``), the PyTorch trainer of the shared epoch loop with DDP (:mod:`.trainer`),
figures (:mod:`.figures`), a one-minute demo with shipped weights (:mod:`.demo`) and the ``diffnet-torch``
command line (:mod:`.cli`).
"""
from ssdops.diffnet.format import WEIGHTS_FORMAT as FORMAT

from .deepinv import as_deepinv
from .models import (
                     DiffNet,
                     DiffusionLayer,
                     FilterEstimator,
                     LinearDiffusionLayer,
                     LinearDiffusionNet,
                     build_model,
                     count_parameters,
                     load_weights,
                     save_weights,
)
from .unet import PAPER_UNET_PARAMETERS, UNet

__all__ = [
    "FORMAT",
    "PAPER_UNET_PARAMETERS",
    "DiffNet",
    "DiffusionLayer",
    "FilterEstimator",
    "LinearDiffusionLayer",
    "LinearDiffusionNet",
    "UNet",
    "as_deepinv",
    "build_model",
    "count_parameters",
    "load_weights",
    "save_weights",
]
