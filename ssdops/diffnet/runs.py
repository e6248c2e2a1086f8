"""Run-directory utilities shared by the DiffNet trainers (PyTorch and JAX); NumPy only.

A run directory holds

- ``config.json``   the run's configuration (:func:`write_config` / :func:`read_config`);
- ``metrics.csv``   one row per epoch, columns :data:`METRIC_COLUMNS` (:class:`MetricsLog`);
- ``summary.json``  the final numbers (:func:`write_summary`);
- ``checkpoint.safetensors``, ``weights.safetensors`` (:mod:`ssdops.diffnet.format`) and ``figures/``.

:func:`open_run` decides what happens to a directory: a new run needs one that holds none of
:data:`RUN_FILES` (``overwrite`` removes them first); ``resume`` continues the run stored there and refuses
settings that differ from its ``config.json`` (except :data:`~ssdops.diffnet.config.RUNTIME_KEYS` and a
larger ``epochs``, which extends the run: its learning-rate decay is stretched over the new total).

Every file is written atomically (a temporary file in the same directory, then ``os.replace``), so an
interrupted run never leaves a half-written file behind and ``--resume`` can trust what it finds.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import tempfile

import numpy as np

from .config import COMMAND_LINE_ONLY, RUNTIME_KEYS, RunConfig

__all__ = [
    "CHECKPOINT_FILE",
    "METRIC_COLUMNS",
    "RUN_FILES",
    "WEIGHTS_FILE",
    "EarlyStopping",
    "MetricsLog",
    "atomic_write_bytes",
    "atomic_write_text",
    "lr_at",
    "mean_std_psnr",
    "open_run",
    "RunDirectoryError",
    "check_run_files",
    "read_config",
    "read_summary",
    "write_config",
    "write_summary",
]

METRIC_COLUMNS = ("epoch", "train_loss", "test_loss", "train_psnr", "test_psnr", "lr", "seconds")
CHECKPOINT_FILE = "checkpoint.safetensors"
WEIGHTS_FILE = "weights.safetensors"
#: What a run writes into its directory: any of them marks the directory as holding a run.
RUN_FILES = ("config.json", "metrics.csv", "summary.json", CHECKPOINT_FILE, WEIGHTS_FILE, "figures")


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same directory, then ``os.replace``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def lr_at(step, total_steps, lr, lr_final, *, halve_every=None):
    r"""The learning rate of step ``step`` (from 0). By default an exponential decay from ``lr`` (step 0) to
    ``lr_final`` (step ``total_steps``): :math:`\mathrm{lr}\,(\mathrm{lr_{final}}/\mathrm{lr})^{\mathrm{step}/
    \mathrm{total}}`. With ``halve_every`` the step schedule of the DiffNet authors' code:
    :math:`\max(\mathrm{lr}\,2^{-\lfloor \mathrm{step}/\mathrm{halve\_every}\rfloor}, \mathrm{lr_{final}})`.

    >>> lr_at(0, 100, 1e-2, 1e-4), round(lr_at(50, 100, 1e-2, 1e-4), 12), round(lr_at(100, 100, 1e-2, 1e-4), 12)
    (0.01, 0.001, 0.0001)
    >>> [lr_at(s, 100, 4e-3, 1e-3, halve_every=10) for s in (0, 9, 10, 25, 99)]
    [0.004, 0.004, 0.002, 0.001, 0.001]
    """
    if halve_every is not None:
        return max(float(lr) * 0.5 ** (step // halve_every), float(lr_final))
    if total_steps <= 0:
        return float(lr)
    frac = min(max(step / total_steps, 0.0), 1.0)
    return float(lr) * (float(lr_final) / float(lr)) ** frac


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _dump(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def write_config(run_dir, config: dict) -> None:
    """Write ``config.json`` (atomic)."""
    atomic_write_text(os.path.join(run_dir, "config.json"), _dump(config))


class RunDirectoryError(ValueError):
    """A run directory that is not what a run writes: a ``config.json`` that is unreadable, incomplete, of
    the wrong types or out of range; run files that are links or of the wrong kind."""


def read_config(run_dir, runtime=None) -> dict:
    """The settings of ``config.json``, checked as the command line checks its flags
    (:meth:`~ssdops.diffnet.config.RunConfig.from_stored`): :class:`RunDirectoryError` naming the file
    otherwise; FileNotFoundError naming the directory if there is none. ``runtime`` (settings of
    :data:`~ssdops.diffnet.config.RUNTIME_KEYS` given on a command line) replaces the stored ones first, so
    that ``--threads 2`` resumes a run stored with more threads than this machine has."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.json)")
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
        if isinstance(values, dict):
            values.update({k: v for k, v in (runtime or {}).items()
                           if k in RUNTIME_KEYS and k in values and k not in COMMAND_LINE_ONLY})
        return RunConfig.from_stored(values, path).to_dict()
    except ValueError as err:   # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        message = str(err) if str(err).startswith(path) else f"{path}: {err}"
        raise RunDirectoryError(message) from None


def check_run_files(out) -> None:
    """:class:`RunDirectoryError` unless each of :data:`RUN_FILES` in ``out`` is what a run writes there: a
    regular file (``figures`` a directory), not a link. Checked before ``--overwrite`` deletes anything."""
    for name in RUN_FILES:
        target = os.path.join(out, name)
        if not os.path.lexists(target):
            continue
        if os.path.islink(target):
            raise RunDirectoryError(f"{target} is a link: a run writes none; remove it by hand (nothing was "
                                    "deleted)")
        kind_ok = os.path.isdir(target) if name == "figures" else os.path.isfile(target)
        if not kind_ok:
            raise RunDirectoryError(f"{target} is not a {'directory' if name == 'figures' else 'regular file'} "
                                    "as a run writes it; remove it by hand (nothing was deleted)")
        if name == "figures":
            for root, dirs, found in os.walk(target):
                for entry in dirs + found:
                    if os.path.islink(os.path.join(root, entry)):
                        raise RunDirectoryError(f"{os.path.join(root, entry)} is a link: a run writes none; "
                                                "remove it by hand (nothing was deleted)")


def write_summary(run_dir, summary: dict) -> None:
    """Write ``summary.json`` (atomic). Non-finite floats are written as JSON ``Infinity`` / ``NaN``."""
    atomic_write_text(os.path.join(run_dir, "summary.json"), _dump(summary))


def read_summary(run_dir) -> dict:
    with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as f:
        return json.load(f)


def open_run(config, *, resume=False, overwrite=False, given=(), main=True):
    """The config of the run in ``config.out``, its directory made ready; writes nothing on error.

    ``resume``: the directory must hold a checkpoint; the stored ``config.json`` wins, and each setting in
    ``given`` (those set explicitly) must equal the stored one, except the runtime keys and ``epochs``,
    which may grow (ValueError naming every differing flag). Otherwise (on the ``main`` process) the
    directory must hold none of :data:`RUN_FILES` (:class:`FileExistsError`), or ``overwrite`` removes
    them; ``config.json`` is written.
    """
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    out = os.fspath(config.out)
    if resume:
        ckpt_path = os.path.join(out, CHECKPOINT_FILE)
        if not os.path.isfile(ckpt_path):
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        stored = RunConfig.from_dict(read_config(out, {k: getattr(config, k) for k in RUNTIME_KEYS}))
        check_run_files(out)
        MetricsLog(out)    # read back and extended by the resumed run: checked before anything is written
        kept = set(RUNTIME_KEYS) | {"epochs"}
        differing = [k for k in given if k not in kept and getattr(config, k) != getattr(stored, k)]
        if differing:
            listed = ", ".join(f"--{k.replace('_', '-')} {getattr(config, k)!r} (the run has "
                               f"{getattr(stored, k)!r})" for k in differing)
            raise ValueError(f"--resume: {listed}; leave these flags out to continue the run as it was set up")
        runtime = {k: getattr(config, k) for k in kept if k in given or k in RUNTIME_KEYS}
        return stored.replace(**runtime)
    if main:
        present = [name for name in RUN_FILES if os.path.lexists(os.path.join(out, name))]
        if present and not overwrite:
            raise FileExistsError(f"{out} holds a run ({', '.join(present)}): use --resume to continue it, "
                                  "--overwrite to replace it, or another --out")
        if present:
            check_run_files(out)
        for name in present:
            target = os.path.join(out, name)
            shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
        os.makedirs(out, exist_ok=True)
        write_config(out, config.to_dict())
    return config


class MetricsLog:
    """``metrics.csv`` with the columns :data:`METRIC_COLUMNS`, one row per epoch, resume-safe.

    Rows are kept in memory and the whole file is rewritten atomically on every :meth:`append`; on
    construction the existing file is read back, and :meth:`truncate` drops rows past a checkpoint's
    epoch (so a resumed run that crashed after logging but before checkpointing logs each epoch once).

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> log = MetricsLog(d); log.append(epoch=1, train_loss=0.5, test_loss=0.6, lr=1e-3)
    >>> MetricsLog(d).rows[0]["test_loss"]
    0.6
    """

    def __init__(self, run_dir, filename="metrics.csv"):
        self.path = os.path.join(run_dir, filename)
        self.rows: list[dict] = []
        if os.path.exists(self.path):
            try:
                with open(self.path, newline="", encoding="utf-8") as f:
                    for row in csv.DictReader(f):
                        self.rows.append(_check_row({k: _parse(row.get(k, "")) for k in METRIC_COLUMNS}))
            except (ValueError, csv.Error) as err:    # UnicodeDecodeError is a ValueError
                raise RunDirectoryError(f"{self.path}: not a metrics log that a run writes ({err})") from None

    def truncate(self, last_epoch: int) -> None:
        """Keep only the rows with ``epoch <= last_epoch`` (and rewrite the file)."""
        self.rows = [r for r in self.rows if r["epoch"] is not None and r["epoch"] <= last_epoch]
        self._write()

    def append(self, **values) -> None:
        unknown = set(values) - set(METRIC_COLUMNS)
        if unknown:
            raise ValueError(f"unknown metric columns {sorted(unknown)}; use {METRIC_COLUMNS}")
        self.rows.append({k: values.get(k) for k in METRIC_COLUMNS})
        self._write()

    def _write(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        atomic_write_text(self.path, buf.getvalue())


def _check_row(row):
    """``row`` of ``metrics.csv`` if an epoch (a positive integer) and numbers or blanks: ValueError otherwise
    (what :meth:`MetricsLog.truncate` compares and a resumed run extends)."""
    epoch = row["epoch"]
    if type(epoch) is not int or epoch < 1:
        raise ValueError(f"epoch {epoch!r:.40} is not a positive integer")
    for name, value in row.items():
        if value is not None and type(value) not in (int, float):
            raise ValueError(f"{name} {value!r:.40} is not a number")
    return row


def _parse(s):
    if s is None or s == "":
        return None
    try:
        f = float(s)
    except ValueError:
        return s
    return int(f) if f.is_integer() and "." not in s and "e" not in s.lower() else f


class EarlyStopping:
    """Stop when the monitored loss has not improved for ``patience`` consecutive epochs.

    ``patience=None`` or ``<= 0`` never stops. :meth:`update` returns True when the loss is a new best.
    ``state()`` / ``load_state()`` round-trip through JSON for checkpoints.

    >>> es = EarlyStopping(2)
    >>> [es.update(x) for x in (3.0, 2.0, 2.5, 2.4)], es.should_stop
    ([True, True, False, False], True)
    """

    def __init__(self, patience=None, min_delta=0.0):
        self.patience = patience
        self.min_delta = float(min_delta)
        self.best = math.inf
        self.best_epoch = None
        self.bad_epochs = 0

    def update(self, loss, epoch=None, *, epochs=1) -> bool:
        """Record the test ``loss`` after ``epoch``, measured ``epochs`` epochs after the previous one."""
        loss = float(loss)
        if loss < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = loss, epoch, 0
            return True
        self.bad_epochs += epochs
        return False

    @property
    def should_stop(self) -> bool:
        return bool(self.patience) and self.patience > 0 and self.bad_epochs >= self.patience

    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def load_state(self, state: dict) -> None:
        self.best = float(state["best"])
        self.best_epoch = state["best_epoch"]
        self.bad_epochs = int(state["bad_epochs"])


def mean_std_psnr(values):
    """Mean and (population) standard deviation of per-image PSNRs, ignoring ``inf`` (exact images).

    Returns ``(mean, std)`` as Python floats; ``(inf, 0.0)`` if every image is exact.

    >>> mean_std_psnr([30.0, 32.0, float("inf")])
    (31.0, 1.0)
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return (math.inf, 0.0) if v.size else (math.nan, math.nan)
    return float(finite.mean()), float(finite.std())
