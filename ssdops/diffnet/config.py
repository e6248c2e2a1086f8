"""The configuration of a DiffNet training run: one dataclass, :class:`RunConfig`, is the only place where a
setting's name, type, default, allowed range and help text are written.

The command lines (:mod:`ssdops.diffnet.cli_common`) build their flags from its fields, the run directory
stores it as ``config.json``, and :meth:`RunConfig.model_config` gives the model's constructor config (the
``config`` stored in weight files). Framework-free.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass, field

__all__ = ["COMMAND_LINE_ONLY", "DATA_SETS", "DEFAULTS", "GRID_DIMENSIONS", "MODELS", "RUNTIME_KEYS", "TASKS",
           "RunConfig", "available_cores", "check_input_shape", "model_config", "model_ndim"]

from .data import DATA_NDIM, DEFAULT_SIZES, NATURAL_SOURCES, TASKS

MODELS = ("diffnet", "linear", "unet")
DATA_SETS = tuple(DATA_NDIM)
#: The grid dimensions a run can have: images (2) and volumes (3), each with its data sets.
GRID_DIMENSIONS = (2, 3)
#: Models that exist in 2-D only.
PLANAR_MODELS = ("unet",)
#: Settings that may differ on ``--resume`` (how and where a run executes, not what it computes).
RUNTIME_KEYS = ("time_budget", "out", "progress", "threads", "device", "devices", "cache_dir")
#: Settings that only the command line gives: ``config.json`` stores them as null, since a directory that
#: a run directory names could lie outside it (nothing is ever written outside the run directory because of
#: what a file in it says).
COMMAND_LINE_ONLY = ("cache_dir",)
#: Settings added after the first runs were stored, with the value that a ``config.json`` without them meant.
ADDED_LATER = {"ndim": 2, "test_sources": [], "lr_halve_every": None, "eval_every": 1}
#: Settings holding a tuple of names (a list in ``config.json``, several values after one flag).
LIST_KEYS = ("exclude", "test_sources")
#: Smallest image side: the 3x3 convolutions and the 5-point stencil need an interior.
MIN_IMAGE_SIZE = 3


def _number(kind, low, *, strict, optional):
    """A parser ``str -> kind`` that enforces ``value > low`` (``strict``) or ``value >= low``; with
    ``optional`` the value may also be None. Raises :class:`argparse.ArgumentTypeError` with one line."""
    relation = ">" if strict else ">="

    def check(value):
        if value is None and optional:
            return None
        try:
            number = kind(value)
        except (TypeError, ValueError):
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}") from None
        if kind is float and not math.isfinite(number):
            raise argparse.ArgumentTypeError(f"{value!r} is not finite")
        if kind is int and isinstance(value, float) and value != number:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer")
        if number < low or (strict and number == low):
            raise argparse.ArgumentTypeError(f"{value!r} must be {relation} {low}")
        return number

    check.__name__ = f"{kind.__name__} {relation} {low}"    # argparse names the type in its messages
    return check


def _setting(default, help, check=None, choices=None, flag=True):
    """A dataclass field with its command-line description in the metadata."""
    return field(default=default, metadata={"help": help, "check": check, "choices": choices, "flag": flag})


positive_int = _number(int, 1, strict=False, optional=False)
positive_float = _number(float, 0.0, strict=True, optional=False)
nonnegative_float = _number(float, 0.0, strict=False, optional=False)
nonnegative_int = _number(int, 0, strict=False, optional=False)
optional_positive_int = _number(int, 1, strict=False, optional=True)
optional_positive_float = _number(float, 0.0, strict=True, optional=True)
image_side = _number(int, MIN_IMAGE_SIZE, strict=False, optional=False)
optional_image_size = _number(int, MIN_IMAGE_SIZE, strict=False, optional=True)
hidden_layers = _number(int, 2, strict=False, optional=False)


@dataclass(frozen=True)
class RunConfig:
    """Every setting of a training run (the flags of ``diffnet-torch train`` / ``diffnet-jax train``).

    Values are checked on construction (:class:`ValueError` naming the setting), so a config that exists
    is a valid one. ``out`` is the run directory; ``devices`` is used by ``diffnet-jax`` only.

    >>> RunConfig(model="linear", layers=3).model_config((8, 6))
    {'model': 'linear', 'grid_shape': [8, 6], 'n_layers': 3, 'final_relu': False}
    >>> RunConfig(ndim=3, data="balls", layers=2).model_config((8, 8, 8))
    {'model': 'diffnet', 'n_layers': 2, 'depth': 4, 'width': 32, 'final_relu': True, 'ndim': 3}
    """

    model: str = _setting("diffnet", "the network", choices=MODELS)
    task: str = _setting("pm-inverse", "what to learn: undo a blur or Perona-Malik, or learn Perona-Malik",
                         choices=TASKS)
    ndim: int = _setting(2, "grid dimension: 2 (images) or 3 (volumes: --data balls; Conv3d filter estimators, "
                         "7-point stencils)", positive_int, choices=GRID_DIMENSIONS)
    data: str = _setting("natural", "images: random disks, patches of scikit-image's photographs, or STL-10; "
                         "volumes (--ndim 3): random solid balls", choices=DATA_SETS)
    data_path: str | None = _setting(None, "--data stl10: the stl10_binary directory (train_X.bin for "
                                     "training, test_X.bin for the test set)")
    noise: float = _setting(0.0, "input noise, std relative to each image's max (0.01 is the paper's 1%%)",
                            nonnegative_float)
    train_size: int = _setting(1024, "training images", positive_int)
    test_size: int = _setting(128, "test images", positive_int)
    image_size: int | None = _setting(None, f"image (volume) side in pixels (>= {MIN_IMAGE_SIZE}); None: "
                                      f"{DEFAULT_SIZES['disks']} for disks, {DEFAULT_SIZES['balls']} for balls, "
                                      f"{DEFAULT_SIZES['natural']} otherwise", optional_image_size)
    epochs: int = _setting(10, "epochs (the learning-rate decay spans them all)", positive_int)
    batch_size: int = _setting(16, "images per step and process (torch) or device (jax)", positive_int)
    lr: float = _setting(2e-3, "initial learning rate (Adam)", positive_float)
    lr_final: float = _setting(4e-6, "learning rate at the last step (exponential decay); with --lr-halve-every "
                               "the floor of the step schedule", positive_float)
    lr_halve_every: int | None = _setting(None, "step schedule instead of the exponential decay: halve the learning "
                                          "rate every this many steps, never below lr_final (the authors' code: "
                                          "10000)", optional_positive_int)
    layers: int = _setting(5, "diffusion layers", positive_int)
    depth: int = _setting(4, "conv layers per filter estimator (K >= 2)", hidden_layers)
    width: int = _setting(32, "channels of the filter estimator's hidden convs", positive_int)
    device: str = _setting("auto", "auto, cpu, cuda (torch) / gpu, tpu (jax)")
    devices: int | None = _setting(None, "diffnet-jax: data parallel over the first N devices (None: all)",
                                   optional_positive_int)
    seed: int = _setting(0, "seed of the initialisation and of the data (test set: seed + 1)", nonnegative_int)
    patience: int | None = _setting(None, "early stop after this many epochs without a better test loss",
                                    optional_positive_int)
    eval_every: int = _setting(1, "evaluate the test set every this many epochs and after the last (metrics row, "
                               "best weights, checkpoint; the time budget and stop points fall there too)",
                               positive_int)
    time_budget: float | None = _setting(None, "seconds (> 0); no epoch starts that would end later",
                                         optional_positive_float)
    threads: int | None = _setting(None, "CPU threads per process (torch; accepted and unused by jax)",
                                   optional_positive_int)
    cache_dir: str | None = _setting(None, "cache the generated data sets here (.npz)")
    exclude: tuple = _setting((), "natural data: photographs to hold out (e.g. camera)", choices=NATURAL_SOURCES)
    test_sources: tuple = _setting((), "natural data: cut the test set from these photographs only and hold them "
                                   "out of training (none: both from all photographs)", choices=NATURAL_SOURCES)
    progress: bool = _setting(True, "progress bars", flag=False)
    out: str | None = _setting(None, "the run directory", flag=False)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            check, choices = f.metadata["check"], f.metadata["choices"]
            if check is not None:
                try:
                    object.__setattr__(self, f.name, check(value))
                except argparse.ArgumentTypeError as err:
                    raise ValueError(f"{f.name}: {err}") from None
            values = tuple(value) if f.name in LIST_KEYS else (value,)
            if choices is not None and any(v not in choices for v in values):
                raise ValueError(f"{f.name}: {value!r} is not one of {choices}")
        for name in LIST_KEYS:
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.test_sources and self.data != "natural":
            raise ValueError(f"test_sources: only for data natural, not {self.data}")
        if set(self.test_sources) & set(self.exclude):
            raise ValueError(f"test_sources {self.test_sources} and exclude {self.exclude} overlap")
        if self.data == "stl10" and self.data_path is None:
            raise ValueError("data stl10 needs data_path (--data-path: the stl10_binary directory)")
        data_ndim = DATA_NDIM[self.data]
        if data_ndim != self.ndim:
            if self.ndim == 2:   # the default: the data set asks for another dimension
                raise ValueError(f"data {self.data} is {data_ndim}-D: set ndim {data_ndim} (--ndim {data_ndim})")
            fitting = " or ".join(name for name, ndim in DATA_NDIM.items() if ndim == self.ndim)
            raise ValueError(f"ndim {self.ndim} needs {self.ndim}-D data: data {fitting} (--data); data "
                             f"{self.data} is {data_ndim}-D")
        if self.model in PLANAR_MODELS and self.ndim != 2:
            raise ValueError(f"model {self.model} is 2-D only: use diffnet or linear with ndim {self.ndim}")
        if self.threads is not None and self.threads > available_cores():
            raise ValueError(f"threads: {self.threads} is more than this machine's {available_cores()} cores")

    @classmethod
    def from_stored(cls, values, source):
        """A config from the JSON of a run directory's ``config.json`` (``source``, named in errors), checked
        as the command line checks its flags and more strictly: every stored setting present, each of its
        declared type (no string for a number, no number for a flag), :data:`COMMAND_LINE_ONLY` settings
        null. Raises ValueError naming ``source`` and the setting."""
        if not isinstance(values, dict):
            raise ValueError(f"{source}: not a JSON object of settings")
        stored = [f for f in dataclasses.fields(cls) if f.name != "progress"]
        values = {**ADDED_LATER, **values}
        missing = sorted({f.name for f in stored} - set(values))
        unknown = sorted(set(values) - {f.name for f in stored})
        if missing or unknown:
            raise ValueError(f"{source}: " + "; ".join(
                part for part in (f"missing settings {missing}" if missing else "",
                                  f"unknown settings {unknown}" if unknown else "") if part))
        for f in stored:
            value = values[f.name]
            if value is None and "None" in str(f.type):
                continue
            kind = str(f.type).split(" | ")[0]
            ok = {"int": type(value) is int, "float": type(value) in (int, float), "str": type(value) is str,
                  "tuple": type(value) is list and all(type(v) is str for v in value)}[kind]
            if not ok:
                raise ValueError(f"{source}: {f.name} = {value!r:.80} is not of type {f.type}")
        for name in COMMAND_LINE_ONLY:
            if values[name] is not None:
                raise ValueError(f"{source}: {name} = {values[name]!r:.80}: only the command line may name it "
                                 f"(--{name.replace('_', '-')})")
        try:
            return cls.from_dict(values)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_dict(cls, values):
        """A config from a dict such as ``config.json`` (ValueError naming unknown keys)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown settings {unknown}")
        return cls(**values)

    def to_dict(self):
        """The JSON-ready dict of ``config.json`` (``exclude`` and ``test_sources`` as lists; ``progress`` left out)."""
        values = dataclasses.asdict(self)
        for name in LIST_KEYS:
            values[name] = list(getattr(self, name))
        del values["progress"]
        for name in COMMAND_LINE_ONLY:
            values[name] = None
        return values

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def model_config(self, image_shape):
        """The model's constructor config (``{"model": ..., kwargs}``, as stored in weight files) for the
        grid ``image_shape`` of the run's data (``(H, W)`` or ``(D, H, W)``)."""
        if len(image_shape) != self.ndim:
            raise ValueError(f"image shape {tuple(image_shape)} is not a grid of the run's ndim {self.ndim}")
        return model_config(self.model, layers=self.layers, depth=self.depth, width=self.width,
                            image_shape=image_shape)


def available_cores():
    """The CPU cores this process may run on (its affinity where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def model_config(model, *, layers, depth, width, image_shape):
    """The constructor config of ``model`` for data on the grid ``image_shape``: what ``build_model`` of
    either framework takes and what a model's ``config`` property returns (the one spelling of it). The
    grid dimension is ``len(image_shape)``: DiffNet records it as ``ndim``, the linear network in its
    ``grid_shape``; the U-Net is 2-D only."""
    ndim = len(image_shape)
    if model == "diffnet":
        return {"model": "diffnet", "n_layers": int(layers), "depth": int(depth), "width": int(width),
                "final_relu": True, "ndim": ndim}
    if model == "linear":
        return {"model": "linear", "grid_shape": [int(n) for n in image_shape], "n_layers": int(layers),
                "final_relu": False}
    if model == "unet":
        if ndim != 2:
            raise ValueError(f"model unet is 2-D only, not for a grid of shape {tuple(image_shape)}")
        return {"model": "unet"}
    raise ValueError(f"unknown model {model!r}: use one of {MODELS}")


def model_ndim(config):
    """The grid dimension of the model with constructor ``config`` (a weight file's ``config``): DiffNet's
    ``ndim`` (2 when absent, as in files written before 3-D), the length of the linear network's
    ``grid_shape``, 2 for the U-Net."""
    kind = config.get("model", "diffnet")
    if kind == "diffnet":
        return int(config.get("ndim", 2))
    if kind == "linear":
        return len(config["grid_shape"])
    if kind == "unet":
        return 2
    raise ValueError(f"unknown model {kind!r}: use one of {MODELS}")


def check_input_shape(shape, ndim, grid_shape=None):
    """Raise ValueError unless ``shape`` is a network input ``(N, 1, *grid)`` with a ``ndim``-D grid (equal
    to ``grid_shape`` when given): the check both frameworks' models make at their boundary, so that a
    volume given to a 2-D model, or an image to a 3-D one, is named rather than misread."""
    shape = tuple(int(n) for n in shape)
    expected = "(N, 1, " + ", ".join("DHW"[3 - ndim:]) + ")"     # ndim in (1, 2, 3)
    if len(shape) != ndim + 2 or shape[1] != 1:
        raise ValueError(f"a {ndim}-D model takes inputs of shape {expected}, got {shape}")
    if grid_shape is not None and shape[2:] != tuple(grid_shape):
        raise ValueError(f"input of shape {shape} does not match the model's grid {tuple(grid_shape)}")


#: The defaults of :class:`RunConfig` as a dict (``out`` left out).
DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig) if f.name != "out"}
