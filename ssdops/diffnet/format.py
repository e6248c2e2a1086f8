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

``sha256_file`` (:data:`CHECKSUM_KEY`) is the SHA-256 of the whole file but itself: the safetensors header
(every tensor's name, dtype, shape and offsets, and every metadata entry but this one; as canonical JSON)
followed by the tensor payload. It is verified on every read, so that a truncated, corrupted or edited file
(a dtype changed in the header, two tensors' names swapped, a checkpoint's epoch edited) is a
:class:`CorruptFileError` naming the file. Files written before it carry ``sha256`` (:data:`LEGACY_CHECKSUM_KEY`),
the SHA-256 of the payload only: they load, with an :class:`UnverifiedHeaderWarning`. A checkpoint with neither
is refused; a weights file with neither (written by another tool, by the documented names) loads with the
warning. Non-finite tensors are refused unless ``allow_nonfinite=True``. Every write is atomic
(:func:`ssdops.diffnet.runs.atomic_write_bytes`).

Files are untrusted input. The header is checked before any tensor is read (every tensor float32, its
offsets inside the payload and of its shape's size; metadata strings), and a model's ``config`` before any
model is built: its settings typed and in range, and the tensors the config implies (names and shapes,
:func:`expected_shapes`) exactly the file's. So a model is only ever built when its parameters are the
file's own tensors, and loading allocates a small multiple of the file's size. A checkpoint's training state,
Adam step counts and RNG state are checked to be of the types written, and on resume its config to be the run's
model (:func:`check_checkpoint_model`).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import warnings

import numpy as np

from .config import MODELS
from .runs import atomic_write_bytes

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKSUM_KEY",
    "LEGACY_CHECKSUM_KEY",
    "STATE_KEYS",
    "WEIGHTS_FORMAT",
    "CorruptFileError",
    "NonFiniteWeightsError",
    "UnverifiedHeaderWarning",
    "check_checkpoint_model",
    "expected_shapes",
    "read",
    "read_checkpoint",
    "read_weights",
    "write",
    "write_checkpoint",
    "write_weights",
]

WEIGHTS_FORMAT = "ssdops-diffnet/1"
CHECKPOINT_FORMAT = "ssdops-diffnet-checkpoint/1"
CHECKSUM_KEY = "sha256_file"
#: The checksum of files written before :data:`CHECKSUM_KEY`: the tensor payload only.
LEGACY_CHECKSUM_KEY = "sha256"
#: The one tensor dtype of both formats (safetensors' name).
TENSOR_DTYPE = "F32"
#: JSON-encoded training state in a checkpoint's metadata.
STATE_KEYS = ("epoch", "step", "early", "seconds", "best_psnr")
ADAM_PREFIX = "adam."


class CorruptFileError(ValueError):
    """A weights or checkpoint file that cannot be read, fails its checksum, or is not of the expected format."""


class NonFiniteWeightsError(ValueError):
    """A weights or checkpoint file holding NaN or infinity (refused unless ``allow_nonfinite=True``)."""


class UnverifiedHeaderWarning(UserWarning):
    """A weights or checkpoint file whose header no checksum covers (written before :data:`CHECKSUM_KEY`, or by
    another tool): its tensor names, dtypes, shapes and metadata are taken as they are."""


def _unique_keys(pairs):
    """A JSON object's dict, a ValueError if a key repeats (which entry counts would be up to the parser: the
    checksum's or safetensors')."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen, repeated = set(), set()
        for key, _ in pairs:
            (repeated if key in seen else seen).add(key)
        raise ValueError(f"repeated keys {sorted(repeated)[:3]}")
    return result


def _split(path, data):
    """``(header, payload)`` of safetensors bytes ``data``: the header's JSON, checked to be the documented
    structure (a :class:`CorruptFileError` naming ``path`` otherwise), and the bytes after it."""
    if len(data) < 8:
        raise CorruptFileError(f"{path}: {len(data)} bytes, not a safetensors file (truncated?)")
    (header_length,) = struct.unpack("<Q", data[:8])
    if 8 + header_length > len(data):
        raise CorruptFileError(f"{path}: header of {header_length} bytes past the end of the file (truncated?)")
    try:
        header = json.loads(data[8 : 8 + header_length], object_pairs_hook=_unique_keys)
    except ValueError as err:   # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CorruptFileError(f"{path}: not a readable safetensors header ({err})") from None
    payload = data[8 + header_length:]
    if not isinstance(header, dict):
        raise CorruptFileError(f"{path}: the safetensors header is not a JSON object")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CorruptFileError(f"{path}: the metadata is not a mapping of strings")
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict):
            raise CorruptFileError(f"{path}: tensor {name!r}: its header entry is not a JSON object")
        if entry.get("dtype") != TENSOR_DTYPE:
            raise CorruptFileError(f"{path}: tensor {name!r} has dtype {entry.get('dtype')!r}; every tensor of the "
                                   f"format is float32 ({TENSOR_DTYPE!r})")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if (not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape)
                or not isinstance(offsets, list) or len(offsets) != 2
                or not all(type(n) is int and n >= 0 for n in offsets)
                or offsets[1] - offsets[0] != 4 * math.prod(shape) or offsets[1] > len(payload)):
            raise CorruptFileError(f"{path}: tensor {name!r}: shape {shape!r} and offsets {offsets!r} do not "
                                   f"describe float32 data inside the {len(payload)}-byte payload")
    return header, payload


def _checksum(header, payload):
    """The SHA-256 of ``header`` (its metadata without the checksum entries, as canonical JSON) and
    ``payload``."""
    header = dict(header)
    header["__metadata__"] = {k: v for k, v in (header.get("__metadata__") or {}).items()
                              if k not in (CHECKSUM_KEY, LEGACY_CHECKSUM_KEY)}
    digest = hashlib.sha256(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    digest.update(b"\0")
    digest.update(payload)
    return digest.hexdigest()


def write(path, tensors, metadata):
    """Write NumPy ``tensors`` (cast to float32) and ``metadata`` (strings; anything else JSON-encoded) to
    ``path`` atomically, with the SHA-256 of the header and payload under :data:`CHECKSUM_KEY`."""
    from safetensors.numpy import save

    arrays = {k: np.asarray(v, dtype=np.float32, order="C") for k, v in tensors.items()}  # (ascontiguousarray
    # makes 0-d 1-d)
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()
            if k not in (CHECKSUM_KEY, LEGACY_CHECKSUM_KEY)}
    # The payload and the tensor entries do not depend on the metadata (offsets count from the payload's
    # start): hash them with the metadata, then serialise again with the checksum in the header.
    meta[CHECKSUM_KEY] = _checksum(*_split(path, save(arrays, metadata=meta)))
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
    header, payload = _split(path, data)
    metadata = dict(header.get("__metadata__") or {})
    if CHECKSUM_KEY in metadata:
        if _checksum(header, payload) != metadata[CHECKSUM_KEY]:
            raise CorruptFileError(f"{path}: the file does not match its SHA-256 (corrupted or edited)")
    elif LEGACY_CHECKSUM_KEY in metadata:
        if hashlib.sha256(payload).hexdigest() != metadata[LEGACY_CHECKSUM_KEY]:
            raise CorruptFileError(f"{path}: the tensor data does not match its SHA-256 (the file is corrupted)")
        warnings.warn(f"{path}: written before the checksum covered the header: the tensor data is verified, "
                      "its names, dtypes, shapes and metadata are not (save it again to verify them)",
                      UnverifiedHeaderWarning, stacklevel=3)
    elif require_checksum:
        raise CorruptFileError(f"{path}: no {CHECKSUM_KEY} in the metadata; cannot verify the file")
    else:
        warnings.warn(f"{path}: no checksum: neither its header nor its tensor data can be verified",
                      UnverifiedHeaderWarning, stacklevel=3)
    try:
        tensors = load(data)
    except (SafetensorError, ValueError) as err:
        raise CorruptFileError(f"{path}: not a readable safetensors file ({err})") from None
    # What was checked and hashed is what safetensors read.
    if {k: (v.dtype, v.shape) for k, v in tensors.items()} != {
            k: (np.dtype(np.float32), tuple(e["shape"])) for k, e in header.items() if k != "__metadata__"}:
        raise CorruptFileError(f"{path}: safetensors read other tensors than the header describes")
    if not allow_nonfinite:
        bad = sorted(k for k, v in tensors.items()
                     if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all())
        if bad:
            raise NonFiniteWeightsError(f"{path}: non-finite values in {bad[:5]}{' ...' if len(bad) > 5 else ''} "
                                        "(pass allow_nonfinite=True to load them anyway)")
    return tensors, metadata


def _model_metadata(config):
    """The metadata entries that describe the model: its constructor ``config`` and its grid dimension."""
    return {"config": json.dumps(config), "ndim": str(_check_config("config", config, 1 << 62)[1])}


#: Every model's config keys: ``name -> (types, smallest value or None)``; all required but those with a
#: default in :data:`_DEFAULTS` (files written before 3-D have no DiffNet ``ndim``).
_CONFIG_KEYS = {
    "diffnet": {"n_layers": (int, 1), "depth": (int, 2), "width": (int, 1), "final_relu": (bool, None),
                "ndim": (int, 1)},
    "linear": {"grid_shape": (list, None), "n_layers": (int, 1), "final_relu": (bool, None)},
    "unet": {"channels": (list, None), "in_channels": (int, 1), "residual": (bool, None)},
}
_DEFAULTS = {"diffnet": {"ndim": 2}, "unet": {"channels": [64, 128, 256, 512, 1024], "in_channels": 1,
                                              "residual": True}}


def _check_config(path, config, tensor_count):
    """``(config, ndim)``: ``config`` with its defaults, checked to be a model's constructor config whose sizes
    a file of ``tensor_count`` tensors can hold (the loops of :func:`expected_shapes` are bounded by it): a
    :class:`CorruptFileError` naming ``path`` otherwise."""
    if not isinstance(config, dict) or config.get("model", "diffnet") not in MODELS:
        raise CorruptFileError(f"{path}: the model config {config!r:.200} is not a config of one of {MODELS}")
    kind = config.get("model", "diffnet")
    keys = _CONFIG_KEYS[kind]
    config = {**_DEFAULTS.get(kind, {}), **config, "model": kind}
    unknown, missing = set(config) - set(keys) - {"model"}, set(keys) - set(config)
    if unknown or missing:
        raise CorruptFileError(f"{path}: the {kind} config has unknown keys {sorted(unknown)} / lacks "
                               f"{sorted(missing)}")
    for key, (kind_of, low) in keys.items():
        value = config[key]
        # bool is an int in Python: a flag must be a bool and a size must not be one.
        if type(value) is not kind_of or (low is not None and value < low):
            raise CorruptFileError(f"{path}: config {key} = {value!r:.80} is not a {kind_of.__name__}"
                                   + (f" >= {low}" if low is not None else ""))
    sizes = {"linear": "grid_shape", "unet": "channels"}.get(kind)
    if sizes is not None and (not 1 <= len(config[sizes]) <= (3 if kind == "linear" else tensor_count)
                              or not all(type(n) is int and n >= 1 for n in config[sizes])):
        raise CorruptFileError(f"{path}: config {sizes} = {config[sizes]!r:.80} is not a list of positive integers "
                               "of a valid length")
    for key in ("n_layers", "depth"):
        if key in config and config[key] > tensor_count:
            raise CorruptFileError(f"{path}: config {key} = {config[key]} but the file holds {tensor_count} "
                                   "tensors")
    ndim = {"diffnet": config.get("ndim"), "unet": 2}.get(kind) or len(config["grid_shape"])
    if ndim > 3:
        raise CorruptFileError(f"{path}: config ndim = {ndim}: models are 1-, 2- or 3-D")
    return config, ndim


def expected_shapes(config):
    """``{name: shape}`` of every tensor of the model of constructor ``config`` (its ``state_dict``, the
    names of both frameworks), computed from the config alone: nothing is built.

    >>> expected_shapes({"model": "linear", "grid_shape": [4, 5], "n_layers": 1, "final_relu": False})
    {'layers.0.diagonals': (5, 4, 5), 'layers.0.dt': ()}
    """
    config, ndim = _check_config("config", config, 1 << 62)
    kind, shapes = config["model"], {}
    if kind == "diffnet":
        kernel = (3,) * ndim
        chans = [1] + [config["width"]] * (config["depth"] - 1) + [2 * ndim + 1]
        for k in range(config["n_layers"]):
            shapes[f"layers.{k}.dt"] = ()
            for j, (cin, cout) in enumerate(zip(chans, chans[1:], strict=False)):
                shapes[f"layers.{k}.estimator.convs.{j}.weight"] = (cout, cin, *kernel)
                shapes[f"layers.{k}.estimator.convs.{j}.bias"] = (cout,)
    elif kind == "linear":
        for k in range(config["n_layers"]):
            shapes[f"layers.{k}.diagonals"] = (2 * ndim + 1, *config["grid_shape"])
            shapes[f"layers.{k}.dt"] = ()
    else:
        def block(prefix, cin, cout):
            for conv, norm, c_in in (("0", "1", cin), ("3", "4", cout)):
                shapes[f"{prefix}.{conv}.weight"] = (cout, c_in, 3, 3)
                batch_norm(f"{prefix}.{norm}", cout)

        def batch_norm(prefix, c):
            for name in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{prefix}.{name}"] = (c,)
            shapes[f"{prefix}.num_batches_tracked"] = ()

        channels, c_in = config["channels"], config["in_channels"]
        for i, c in enumerate(channels):
            block(f"down.{i}", c_in, c)
            c_in = c
        for j, c in enumerate(reversed(channels[:-1])):
            shapes[f"up.{j}.0.weight"] = (2 * c, c, 3, 3)
            batch_norm(f"up.{j}.1", c)
            block(f"dec.{j}", 2 * c, c)
        shapes["head.weight"] = (config["in_channels"], channels[0], 1, 1)
        shapes["head.bias"] = (config["in_channels"],)
    return shapes


def _check_tensors(path, config, tensors):
    """:class:`CorruptFileError` naming ``path`` unless ``tensors`` (a file's, ``adam.*`` included) are
    exactly the model of ``config``'s tensors (and, for a checkpoint, Adam moments of some of them)."""
    model = {k: v for k, v in tensors.items() if not k.startswith(ADAM_PREFIX)}
    _check_config(path, config, len(model))   # bounds the loops of expected_shapes by the file's tensors
    expected = expected_shapes(config)
    got = {k: tuple(v.shape) for k, v in model.items()}
    if got != expected:
        missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
        raise CorruptFileError(
            f"{path}: the tensors are not those of the model its config describes ({config!r:.120}): missing "
            f"{missing[:3]}, unexpected {extra[:3]}, of another shape {[(k, got[k], expected[k]) for k in wrong[:3]]}"
        )
    for name, value in tensors.items():
        if name.startswith(ADAM_PREFIX):
            target = name.split(".", 2)[-1]
            if name.split(".")[1] not in ("exp_avg", "exp_avg_sq") or got.get(target) != tuple(value.shape):
                raise CorruptFileError(f"{path}: {name!r} is not an Adam moment of a model tensor of its shape")


def write_weights(path, config, tensors, extra_metadata=None):
    """Write a model's ``tensors`` (name -> NumPy float32), its constructor ``config`` and its grid dimension
    ``ndim`` as format :data:`WEIGHTS_FORMAT`; ``extra_metadata`` adds string entries."""
    write(path, tensors, {**(extra_metadata or {}), "format": WEIGHTS_FORMAT, **_model_metadata(config)})


def read_weights(path, *, allow_nonfinite=False):
    """``(config, tensors)`` of a weights file, or of a training checkpoint (its ``adam.*`` tensors left out):
    both frameworks load either (the same behaviour in ``diffnet_torch`` and ``diffnet_jax``). The config is
    checked against the tensors (:func:`expected_shapes`) before anything is built: a config that is not
    the tensors' model, or a ``ndim`` that contradicts it, is a :class:`CorruptFileError`."""
    tensors, metadata = read(path, allow_nonfinite=allow_nonfinite)
    fmt = metadata.get("format")
    if fmt == CHECKPOINT_FORMAT:
        fmt = metadata.get("weights_format")
    if fmt != WEIGHTS_FORMAT:
        raise CorruptFileError(f"{path}: format {metadata.get('format')!r}, expected {WEIGHTS_FORMAT!r} "
                               f"or {CHECKPOINT_FORMAT!r}")
    try:
        config = json.loads(metadata["config"])
    except (KeyError, ValueError) as err:
        raise CorruptFileError(f"{path}: no readable model config in the metadata ({err!r})") from None
    _check_tensors(path, config, tensors)
    ndim = _check_config(path, config, len(tensors))[1]
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
    ``state`` holds the :data:`STATE_KEYS` decoded. The tensors are checked against the checkpoint's config, the
    training state, Adam step counts and RNG state against the types :func:`write_checkpoint` stores; that the
    config is the resumed model's is :func:`check_checkpoint_model`."""
    tensors, metadata = read(path, require_checksum=True)
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise CorruptFileError(f"{path}: not a DiffNet checkpoint (format {metadata.get('format')!r})")
    try:
        _check_tensors(path, json.loads(metadata["config"]), tensors)
        state = {k: json.loads(metadata[k]) for k in STATE_KEYS}
        adam_steps, rng = json.loads(metadata["adam_steps"]), json.loads(metadata["rng"])
    except (KeyError, ValueError) as err:
        raise CorruptFileError(f"{path}: the checkpoint's metadata is incomplete or unreadable ({err!r})") from None
    problem = _state_problem(state, adam_steps, rng, tensors)
    if problem:
        raise CorruptFileError(f"{path}: the checkpoint's training state has values of the wrong type ({problem})")
    return tensors, metadata, state


def check_checkpoint_model(path: str | os.PathLike, metadata: dict, model_config: dict) -> None:
    """:class:`CorruptFileError` naming checkpoint ``path`` unless its ``metadata``'s model config is
    ``model_config`` (the model being resumed: the checkpoint's tensors are checked against its own config by
    :func:`read_checkpoint`, and would otherwise be loaded in part, or with another model's Adam state)."""
    try:
        stored = json.loads(metadata["config"])
    except (KeyError, ValueError) as err:
        raise CorruptFileError(f"{path}: no readable model config in the metadata ({err!r})") from None
    stored = _check_config(path, stored, 1 << 62)[0]
    # As stored: through JSON (a grid shape tuple in memory is a list in the file).
    if stored != _check_config("the run's model config", json.loads(json.dumps(model_config)), 1 << 62)[0]:
        raise CorruptFileError(f"{path}: the checkpoint is of the model {stored!r:.160}, not of the run's model "
                               f"{model_config!r:.160}")


def _is_count(value):
    return type(value) is int and value >= 0


def _is_number(value):
    # bool is an int in Python, and NaN compares false: neither is a count, a time or a PSNR.
    return type(value) in (int, float) and value == value


def _state_problem(state, adam_steps, rng, tensors):
    """What is wrong with a checkpoint's decoded training state, Adam step counts and RNG state (the types
    :func:`write_checkpoint` stores, which the trainers' ``restore`` use without checking), or ``""``."""
    early = state["early"]
    if not (_is_count(state["epoch"]) and _is_count(state["step"])):
        return f"epoch {state['epoch']!r:.40} and step {state['step']!r:.40} are not counts"
    if not (_is_number(state["seconds"]) and state["seconds"] >= 0 and _is_number(state["best_psnr"])):
        return f"seconds {state['seconds']!r:.40} / best_psnr {state['best_psnr']!r:.40} are not numbers"
    if (not isinstance(early, dict) or set(early) != {"best", "best_epoch", "bad_epochs"}
            or not _is_number(early["best"]) or not _is_count(early["bad_epochs"])
            or not (early["best_epoch"] is None or _is_count(early["best_epoch"]))):
        return f"early stopping state {early!r:.80}"
    if not isinstance(adam_steps, dict) or not all(_is_number(v) and v >= 0 for v in adam_steps.values()):
        return f"adam_steps {adam_steps!r:.80}"
    moments = [name for name in adam_steps
               if name.startswith(ADAM_PREFIX) or not all(f"{ADAM_PREFIX}{m}.{name}" in tensors
                                                             for m in ("exp_avg", "exp_avg_sq"))]
    if moments:
        return f"adam_steps names {moments[:3]} without both Adam moments in the file"
    if not isinstance(rng, dict) or not all(isinstance(v, str) or (isinstance(v, list)
                                                                  and all(isinstance(x, str) for x in v))
                                            for v in rng.values()):
        return f"rng {rng!r:.80}"
    return ""
