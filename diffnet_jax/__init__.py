"""DiffNet (Arridge & Hauptmann, JMIV 2019) in JAX + Equinox, on top of ssdops.

Mirrors ``diffnet_torch``: the same models (DiffNet and the linear network; no U-Net), parameter names and
weight files (:mod:`ssdops.diffnet.format`, format ``ssdops-diffnet/1``), the same epoch loop
(:mod:`ssdops.diffnet.loop`, with :class:`diffnet_jax.trainer.JaxTrainer`) and command line
(``diffnet-jax train|evaluate``).
"""
from ssdops.diffnet.format import WEIGHTS_FORMAT as FORMAT

from .models import (
    Conv,
    DiffNet,
    DiffusionLayer,
    FilterEstimator,
    LinearDiffusionLayer,
    LinearDiffusionNet,
    build_model,
    count_parameters,
    load_state_dict,
    load_weights,
    save_weights,
    state_dict,
)

__all__ = [
    "FORMAT",
    "Conv",
    "DiffNet",
    "DiffusionLayer",
    "FilterEstimator",
    "LinearDiffusionLayer",
    "LinearDiffusionNet",
    "build_model",
    "count_parameters",
    "load_state_dict",
    "load_weights",
    "save_weights",
    "state_dict",
]
