"""The DiffNet weight and checkpoint files, for both frameworks: safetensors, never pickle; NumPy arrays here
(the framework packages convert their tensors to and from them).

Weights, format ``ssdops-diffnet/1``:

- metadata ``format``, ``config`` (JSON: ``{"model": "diffnet"|"linear"|"unet", ...constructor keyword
  arguments}``, see :func:`ssdops.diffnet.config.model_config`), ``ndim`` (the model's grid dimension d,
  2 or 3: :func:`ssdops.diffnet.config.model_ndim` of the config; a file without it is 2-D), ``sha256`` and
  optional extras (the best epoch and its test PSNR);
- tensors: the PyTorch ``state_dict`` names, float32, C-contiguous: DiffNet ``layers.{k}.dt`` (0-d),
  ``layers.{k}.estimator.convs.{j}.weight`` ``(out, in, 3, ..., 3)`` (d kernel axes) and ``.bias``
  ``(out,)``, the last conv's ``out`` being ``2d + 1``; the linear network ``layers.{k}.diagonals``
  ``(2d + 1, *grid)`` (FIVE_POINT / SEVEN_POINT order) and ``layers.{k}.dt``; the U-Net its ``state_dict``
  including BatchNorm statistics (``num_batches_tracked`` stored as float32).

Checkpoints, format ``ssdops-diffnet-checkpoint/1``: the model tensors plus ``adam.exp_avg.<name>`` and
``adam.exp_avg_sq.<name>``; metadata ``weights_format``, ``config``, ``ndim``, ``sha256``, the training state
(:data:`STATE_KEYS`), ``adam_steps`` and ``rng``, each JSON-encoded.

``sha256`` is the SHA-256 of the file's tensor payload (every byte after the safetensors header). It is
verified on every read: a truncated or corrupted file is a :class:`CorruptFileError` naming the file. A
checkpoint without it is refused; a weights file without it (written by another tool, by the documented
names) loads unverified. Non-finite tensors are refused unless ``allow_nonfinite=True``. Every write is
atomic (:func:`ssdops.diffnet.runs.atomic_write_bytes`).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np

from .config import model_ndim
from .runs import atomic_write_bytes

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKSUM_KEY",
    "STATE_KEYS",
    "WEIGHTS_FORMAT",
    "CorruptFileError",
    "NonFiniteWeightsError",
    "read",
    "read_checkpoint",
    "read_weights",
    "write",
    "write_checkpoint",
    "write_weights",
]

WEIGHTS_FORMAT = "ssdops-diffnet/1"
CHECKPOINT_FORMAT = "ssdops-diffnet-checkpoint/1"
CHECKSUM_KEY = "sha256"
#: JSON-encoded training state in a checkpoint's metadata.
STATE_KEYS = ("epoch", "step", "early", "seconds", "best_psnr")
ADAM_PREFIX = "adam."


class CorruptFileError(ValueError):
    """A weights or checkpoint file that cannot be read, fails its checksum, or is not of the expected format."""


class NonFiniteWeightsError(ValueError):
    """A weights or checkpoint file holding NaN or infinity (refused unless ``allow_nonfinite=True``)."""


def _payload(path, data):
    """The tensor payload of safetensors bytes ``data`` (everything after the 8-byte length and the header)."""
    if len(data) < 8:
        raise CorruptFileError(f"{path}: {len(data)} bytes, not a safetensors file (truncated?)")
    (header_length,) = struct.unpack("<Q", data[:8])
    if 8 + header_length > len(data):
        raise CorruptFileError(f"{path}: header of {header_length} bytes past the end of the file (truncated?)")
    return data[8 + header_length:]


def _checksum(payload):
    return hashlib.sha256(payload).hexdigest()


def write(path, tensors, metadata):
    """Write NumPy ``tensors`` and ``metadata`` (strings; anything else JSON-encoded) to ``path`` atomically,
    with the SHA-256 of the tensor payload under :data:`CHECKSUM_KEY`."""
    from safetensors.numpy import save

    arrays = {k: np.asarray(v, order="C") for k, v in tensors.items()}   # (ascontiguousarray makes 0-d 1-d)
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items() if k != CHECKSUM_KEY}
    # the payload does not depend on the metadata (offsets count from the payload's start): hash it, then
    # serialise again with the checksum in the header
    meta[CHECKSUM_KEY] = _checksum(_payload(path, save(arrays, metadata=meta)))
    atomic_write_bytes(path, save(arrays, metadata=meta))


def read(path, *, allow_nonfinite=False, require_checksum=False):
    """``(tensors, metadata)`` of a file written by :func:`write` (NumPy arrays, metadata ``{}`` if none).

    Raises :class:`FileNotFoundError`, :class:`CorruptFileError` (unreadable, truncated, checksum mismatch,
    no checksum when ``require_checksum``) or :class:`NonFiniteWeightsError`, each naming ``path``.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such weights or checkpoint file")
    with open(path, "rb") as f:
        data = f.read()
    payload = _payload(path, data)
    try:
        tensors = load(data)
        (header_length,) = struct.unpack("<Q", data[:8])
        metadata = dict(json.loads(data[8 : 8 + header_length]).get("__metadata__") or {})
    except (SafetensorError, ValueError) as err:   # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CorruptFileError(f"{path}: not a readable safetensors file ({err})") from None
    expected = metadata.get(CHECKSUM_KEY)
    if expected is None:
        if require_checksum:
            raise CorruptFileError(f"{path}: no {CHECKSUM_KEY} in the metadata; cannot verify the file")
    elif _checksum(payload) != expected:
        raise CorruptFileError(f"{path}: the tensor data does not match its SHA-256 (the file is corrupted)")
    if not allow_nonfinite:
        bad = sorted(k for k, v in tensors.items()
                     if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all())
        if bad:
            raise NonFiniteWeightsError(f"{path}: non-finite values in {bad[:5]}{' ...' if len(bad) > 5 else ''} "
                                        "(pass allow_nonfinite=True to load them anyway)")
    return tensors, metadata


def _model_metadata(config):
    """The metadata entries that describe the model: its constructor ``config`` and its grid dimension."""
    return {"config": json.dumps(config), "ndim": str(model_ndim(config))}


def write_weights(path, config, tensors, extra_metadata=None):
    """Write a model's ``tensors`` (name -> NumPy float32), its constructor ``config`` and its grid dimension
    ``ndim`` as format :data:`WEIGHTS_FORMAT`; ``extra_metadata`` adds string entries."""
    write(path, tensors, {**(extra_metadata or {}), "format": WEIGHTS_FORMAT, **_model_metadata(config)})


def read_weights(path, *, allow_nonfinite=False):
    """``(config, tensors)`` of a weights file, or of a training checkpoint (its ``adam.*`` tensors left out):
    both frameworks load either (the same behaviour in ``diffnet_torch`` and ``diffnet_jax``). A file whose
    ``ndim`` contradicts its config is a :class:`CorruptFileError`."""
    tensors, metadata = read(path, allow_nonfinite=allow_nonfinite)
    fmt = metadata.get("format")
    if fmt == CHECKPOINT_FORMAT:
        fmt = metadata.get("weights_format")
    if fmt != WEIGHTS_FORMAT:
        raise CorruptFileError(f"{path}: format {metadata.get('format')!r}, expected {WEIGHTS_FORMAT!r} "
                               f"or {CHECKPOINT_FORMAT!r}")
    try:
        config = json.loads(metadata["config"])
        ndim = model_ndim(config)
    except (KeyError, TypeError, ValueError) as err:
        raise CorruptFileError(f"{path}: no readable model config in the metadata ({err!r})") from None
    if "ndim" in metadata and metadata["ndim"] != str(ndim):
        raise CorruptFileError(f"{path}: metadata ndim {metadata['ndim']!r} contradicts the config "
                               f"(a {ndim}-D model)")
    return config, {k: v for k, v in tensors.items() if not k.startswith(ADAM_PREFIX)}


def write_checkpoint(path, tensors, *, config, state, adam_steps, rng):
    """Write a training checkpoint: model and ``adam.*`` ``tensors``, the model ``config``, the training
    ``state`` (the :data:`STATE_KEYS`), Adam step counts per parameter and the RNG state."""
    meta = {k: json.dumps(state[k]) for k in STATE_KEYS}
    write(path, tensors, dict(meta, format=CHECKPOINT_FORMAT, weights_format=WEIGHTS_FORMAT, **_model_metadata(config),
                              adam_steps=json.dumps(adam_steps), rng=json.dumps(rng)))


def read_checkpoint(path):
    """``(tensors, metadata, state)`` of a checkpoint (checksum required, finite tensors required);
    ``state`` holds the :data:`STATE_KEYS` decoded."""
    tensors, metadata = read(path, require_checksum=True)
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise CorruptFileError(f"{path}: not a DiffNet checkpoint (format {metadata.get('format')!r})")
    state = {k: json.loads(v) for k, v in metadata.items() if k in STATE_KEYS}
    return tensors, metadata, state
