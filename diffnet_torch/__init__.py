"""DiffNet in PyTorch (Arridge & Hauptmann, JMIV 2019) on top of ssdops.

Models (:mod:`.models`, :mod:`.unet`), safetensors weights shared with ``diffnet_jax`` (:mod:`.weights`),
training with checkpoints / resume / DDP (:mod:`.train`), figures (:mod:`.figures`), a one-minute demo with
shipped weights (:mod:`.demo`) and the ``diffnet-torch`` command line (:mod:`.cli`).
"""
from .models import (DiffNet, DiffusionLayer, FilterEstimator, LinearDiffusionLayer, LinearDiffusionNet,
                     build_model, count_parameters)
from .unet import PAPER_UNET_PARAMETERS, UNet
from .weights import FORMAT, load_weights, save_weights

__all__ = [
    "FORMAT",
    "PAPER_UNET_PARAMETERS",
    "DiffNet",
    "DiffusionLayer",
    "FilterEstimator",
    "LinearDiffusionLayer",
    "LinearDiffusionNet",
    "UNet",
    "build_model",
    "count_parameters",
    "load_weights",
    "save_weights",
]
