"""DiffNet (Arridge & Hauptmann, JMIV 2019) in JAX + Equinox, on top of ssdops.

Mirrors ``diffnet_torch``: the same models, parameter names, weight files (safetensors, format
``ssdops-diffnet/1``) and command line (``diffnet-jax train|evaluate``).
"""
from .models import (
    Conv2d,
    DiffNet,
    DiffusionLayer,
    FilterEstimator,
    LinearDiffusionLayer,
    LinearDiffusionNet,
    build_model,
    count_parameters,
)
from .weights import FORMAT, load_state_dict, load_weights, save_weights, state_dict

__all__ = [
    "FORMAT",
    "Conv2d",
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
