"""Weight files (safetensors, never pickle), shared with ``diffnet_jax``.

Format ``ssdops-diffnet/1``:

- metadata ``{"format": "ssdops-diffnet/1", "config": json.dumps(config)}`` with ``config`` =
  ``{"model": "diffnet"|"linear"|"unet", ...constructor keyword arguments}`` (``model.config``);
- tensors: the PyTorch ``state_dict`` names, float32, contiguous, CPU:

  - DiffNet: ``layers.{k}.dt`` (0-d), ``layers.{k}.estimator.convs.{j}.weight`` ``(out, in, 3, 3)`` and
    ``layers.{k}.estimator.convs.{j}.bias`` ``(out,)``;
  - LinearDiffusionNet: ``layers.{k}.diagonals`` ``(5, H, W)`` (FIVE_POINT order: up, left, down, right,
    centre) and ``layers.{k}.dt`` (0-d);
  - UNet: its ``state_dict`` including the BatchNorm running statistics (``num_batches_tracked`` stored
    as float32 too).

Training checkpoints (:mod:`diffnet_torch.train`) use the same file type with extra tensors
(``adam.exp_avg.<name>``, ``adam.exp_avg_sq.<name>``) and extra metadata.
"""
from __future__ import annotations

import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save as _save_bytes

from ssdops.runs import atomic_write_bytes

from .models import build_model

__all__ = ["FORMAT", "load_weights", "read_safetensors", "save_weights", "state_tensors", "write_safetensors"]

FORMAT = "ssdops-diffnet/1"


def state_tensors(model):
    """``{name: float32 contiguous CPU tensor}`` of the model's state_dict."""
    return {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in model.state_dict().items()}


def write_safetensors(tensors, path, metadata):
    """Write tensors and string metadata to ``path`` atomically."""
    data = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    atomic_write_bytes(path, _save_bytes(data, metadata=meta))


def read_safetensors(path):
    """``(tensors, metadata)`` of a safetensors file (CPU tensors; metadata ``{}`` if none)."""
    tensors = {}
    with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
        metadata = dict(f.metadata() or {})
        for k in f.keys():
            tensors[k] = f.get_tensor(k)
    return tensors, metadata


def save_weights(model, path, *, extra_metadata=None):
    """Save ``model`` (a DiffNet, LinearDiffusionNet or UNet) in format ``ssdops-diffnet/1``."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    metadata = {"format": FORMAT, "config": json.dumps(model.config)}
    if extra_metadata:
        metadata.update(extra_metadata)
    write_safetensors(state_tensors(model), path, metadata)


def load_weights(path, *, device="cpu"):
    """The model stored at ``path`` (written by this package or by ``diffnet_jax``), in eval mode."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: format {metadata.get('format')!r}, expected {FORMAT!r}")
    model = build_model(json.loads(metadata["config"]))
    own = model.state_dict()
    state = {k: v.to(own[k].dtype) if k in own else v for k, v in tensors.items() if not k.startswith("adam.")}
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
