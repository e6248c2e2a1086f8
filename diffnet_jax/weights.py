"""Weight files shared with ``diffnet_torch``: safetensors, never pickle.

Format ``ssdops-diffnet/1``: metadata ``{"format": "ssdops-diffnet/1", "config": json.dumps(config)}`` where
``config`` is ``{"model": "diffnet"|"linear", ...constructor kwargs}``; tensor names are PyTorch
``state_dict`` names (``layers.{k}.dt`` 0-d, ``layers.{k}.estimator.convs.{j}.weight`` ``(out, in, 3, 3)``,
``layers.{k}.estimator.convs.{j}.bias``, ``layers.{k}.diagonals`` ``(5, H, W)``), all float32.

The names come from the Equinox module tree itself (attribute names and list indices joined by dots), so a
JAX model and its PyTorch twin have the same names by construction.
"""
from __future__ import annotations

import json
import os
import tempfile

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import load_file, save_file

from .models import build_model

__all__ = [
    "FORMAT",
    "state_dict",
    "load_state_dict",
    "save_weights",
    "load_weights",
    "read_weights",
    "write_safetensors",
]

FORMAT = "ssdops-diffnet/1"


def _key_name(k):
    if isinstance(k, jax.tree_util.GetAttrKey):
        return k.name
    if isinstance(k, jax.tree_util.SequenceKey):
        return str(k.idx)
    if isinstance(k, jax.tree_util.DictKey):
        return str(k.key)
    raise TypeError(f"unsupported pytree key {k!r}")


def _is_array(x):
    """Array leaves, including the ``jax.ShapeDtypeStruct`` leaves of a ``jax.eval_shape`` skeleton."""
    return eqx.is_array(x) or isinstance(x, jax.ShapeDtypeStruct)


def named_leaves(tree):
    """``[(name, leaf)]`` over the array leaves of ``tree``, names in PyTorch ``state_dict`` style."""
    params = eqx.filter(tree, _is_array)
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return [(".".join(_key_name(k) for k in path), leaf) for path, leaf in flat]


def state_dict(model):
    """``{name: numpy float32 array}`` (host copies)."""
    return {name: np.asarray(leaf, dtype=np.float32) for name, leaf in named_leaves(model)}


def load_state_dict(model, tensors, *, prefix=""):
    """``model`` with every array leaf replaced by ``tensors[prefix + name]`` (shapes checked, float32).

    ``model`` may be a skeleton from ``equinox.filter_eval_shape`` (no initialisation cost).

    Raises KeyError listing missing and unexpected names, ValueError on a shape mismatch.
    """
    names = [name for name, _ in named_leaves(model)]
    wanted = {prefix + n for n in names}
    available = {k for k in tensors if k.startswith(prefix)} if prefix else set(tensors)
    missing = sorted(wanted - set(tensors))
    unexpected = sorted(available - wanted) if not prefix else []
    if missing or unexpected:
        raise KeyError(f"weights do not match the model: missing {missing}, unexpected {unexpected}")
    params, static = eqx.partition(model, _is_array)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    new = []
    for name, leaf in zip(names, leaves):
        value = np.asarray(tensors[prefix + name])
        if tuple(value.shape) != tuple(leaf.shape):
            raise ValueError(f"{prefix + name}: shape {tuple(value.shape)} in the file, {tuple(leaf.shape)} in the model")
        new.append(jnp.asarray(value, dtype=leaf.dtype))
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, new), static)


def write_safetensors(tensors, path, metadata):
    """Write ``tensors`` (numpy) and string ``metadata`` to ``path`` atomically (temp file + rename)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=directory)
    os.close(fd)
    try:
        save_file({k: np.array(v, order="C", copy=True) for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_weights(path):
    """``(tensors, metadata)`` of a safetensors file (metadata may be ``{}``)."""
    from safetensors import safe_open

    with safe_open(os.fspath(path), framework="numpy") as f:
        metadata = dict(f.metadata() or {})
    return load_file(os.fspath(path)), metadata


def save_weights(model, path, *, extra_metadata=None):
    """Save ``model`` in the shared format (readable by ``diffnet_torch.load_weights``)."""
    metadata = {"format": FORMAT, "config": json.dumps(model.config)}
    if extra_metadata:
        metadata.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in extra_metadata.items()})
    write_safetensors(state_dict(model), path, metadata)


def config_from_metadata(metadata, path="<weights>"):
    """The model config of a weights file, or of a training checkpoint (which names ``weights_format``)."""
    fmt = metadata.get("format")
    if fmt == "ssdops-diffnet-checkpoint/1" and metadata.get("weights_format") == FORMAT:
        fmt = FORMAT
    if fmt != FORMAT:
        raise ValueError(f"{path}: format {fmt!r}, expected {FORMAT!r}")
    return json.loads(metadata["config"])


def load_weights(path):
    """The model stored at ``path`` (written by this package or by ``diffnet_torch``; a training checkpoint
    of either package also loads: its ``adam.*`` tensors are ignored)."""
    tensors, metadata = read_weights(path)
    config = config_from_metadata(metadata, path)
    tensors = {k: v for k, v in tensors.items() if not k.startswith("adam.")}   # a training checkpoint
    skeleton = eqx.filter_eval_shape(build_model, config)   # shapes only: nothing is initialised
    return load_state_dict(skeleton, tensors)
