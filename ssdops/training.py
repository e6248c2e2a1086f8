"""The framework-neutral parts of the DiffNet trainers (``diffnet_torch.train``, ``diffnet_jax.train``).

NumPy only: no torch or JAX import.

Both trainers read the same configuration (:data:`DEFAULTS`, flags from :func:`add_train_arguments`), the
same data (:func:`load_data`), visit the images in the same order (:func:`permutation`) and write the same
run directory (:func:`open_run`, checkpoint metadata from :func:`checkpoint_metadata`, read back with
:func:`checkpoint_state`). What differs between the frameworks is passed in: the models a package
builds, the keys that may change on ``--resume``, the extra flags.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from . import datasets, runs

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_FORMAT",
    "DEFAULTS",
    "MODELS",
    "PSNR_CAP",
    "RUNTIME_KEYS",
    "STATE_KEYS",
    "WEIGHTS_FILE",
    "add_evaluate_arguments",
    "add_train_arguments",
    "checkpoint_metadata",
    "checkpoint_state",
    "config_from_args",
    "epoch_message",
    "evaluate_command",
    "finish_epoch",
    "last_test_psnr",
    "load_data",
    "model_config",
    "open_run",
    "out_of_time",
    "permutation",
    "progress_bar",
    "report_evaluation",
    "report_final",
    "restore",
    "run_message",
    "stop_reason",
    "summary",
    "load_test_set",
    "train_command",
]

CHECKPOINT_FORMAT = "ssdops-diffnet-checkpoint/1"
CHECKPOINT_FILE = "checkpoint.safetensors"
WEIGHTS_FILE = "weights.safetensors"
PSNR_CAP = 300.0
MODELS = ("diffnet", "linear", "unet")
# JSON-encoded training state in a checkpoint's metadata
STATE_KEYS = ("epoch", "step", "early", "seconds", "best_psnr")
# keys that may differ on --resume (the run's own settings win for everything else)
RUNTIME_KEYS = ("time_budget", "out", "progress", "threads", "device")

DEFAULTS = {
    "model": "diffnet",
    "task": "pm-inverse",
    "data": "natural",
    "data_path": None,
    "noise": 0.0,
    "train_size": 1024,
    "test_size": 128,
    "image_size": None,
    "epochs": 10,
    "batch_size": 16,
    "lr": 2e-3,
    "lr_final": 4e-6,
    "layers": 5,
    "depth": 4,
    "width": 32,
    "device": "auto",
    "seed": 0,
    "patience": None,
    "time_budget": None,
    "threads": None,
    "cache_dir": None,
    "exclude": [],
    "progress": True,
}


# --- configuration and data -----------------------------------------------------------------------
def model_config(cfg, image_shape, models=MODELS, error=None):
    """The ``build_model`` config of ``cfg["model"]``, one of ``models``; ``error``: the message for
    any other model (default ``unknown model 'name'``).

    >>> model_config({"model": "linear", "layers": 3}, (8, 6))
    {'model': 'linear', 'grid_shape': [8, 6], 'n_layers': 3, 'final_relu': False}
    """
    name = cfg["model"]
    if name in models:
        if name == "diffnet":
            return {"model": "diffnet", "n_layers": cfg["layers"], "depth": cfg["depth"], "width": cfg["width"],
                    "final_relu": True}
        if name == "linear":
            return {"model": "linear", "grid_shape": list(image_shape), "n_layers": cfg["layers"],
                    "final_relu": False}
        if name == "unet":
            return {"model": "unet"}
    raise ValueError(error or f"unknown model {name!r}")


def load_data(cfg, split):
    """``(input, target)`` float32 ``(N, 1, H, W)`` NumPy arrays for ``split`` in ``("train", "test")``."""
    n = cfg["train_size"] if split == "train" else cfg["test_size"]
    seed = cfg["seed"] + (0 if split == "train" else 1)
    if cfg["data"] == "natural" and cfg.get("exclude"):
        images = datasets.natural_patches(n, cfg["image_size"] or 96, seed=seed, exclude=tuple(cfg["exclude"]))
    else:
        images = datasets.load_images(cfg["data"], n, size=cfg["image_size"], seed=seed, path=cfg["data_path"],
                                      split=split)
    return datasets.make_task(cfg["task"], images, noise=cfg["noise"], seed=seed, cache_dir=cfg["cache_dir"])


def permutation(n, seed, epoch):
    """The epoch's image order: a function of ``seed`` and ``epoch`` only (so a resumed run repeats it).

    >>> sorted(permutation(5, 0, 1)) == list(range(5)), bool((permutation(5, 0, 1) == permutation(5, 0, 1)).all())
    (True, True)
    """
    return np.random.default_rng([seed, epoch, 7919]).permutation(n)


def load_test_set(run_dir, defaults, data_path=None):
    """The test set ``(input, target)`` of the run in ``run_dir`` (``data_path`` overrides the run's)."""
    cfg = {**defaults, **runs.read_config(run_dir)}
    if data_path is not None:
        cfg["data_path"] = data_path
    return load_data(cfg, "test")


# --- the run directory ----------------------------------------------------------------------------
def open_run(cfg, *, resume, defaults, runtime_keys=RUNTIME_KEYS, main=True):
    """``(cfg, checkpoint path)`` of the run in ``cfg["out"]``.

    ``resume``: the checkpoint must exist; the saved ``config.json`` wins except for ``runtime_keys``.
    Otherwise (on the ``main`` process only) the directory is created, must not hold a checkpoint yet, and
    ``config.json`` is written.
    """
    out = os.fspath(cfg["out"])
    ckpt_path = os.path.join(out, CHECKPOINT_FILE)
    if resume:
        if not os.path.exists(ckpt_path):
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        saved = runs.read_config(out)
        cfg = {**defaults, **saved, **{k: cfg[k] for k in runtime_keys}, "out": out}
    elif main:
        os.makedirs(out, exist_ok=True)
        if os.path.exists(ckpt_path):
            raise FileExistsError(f"{out} already holds a run: use --resume or another --out")
        runs.write_config(out, {k: v for k, v in cfg.items() if k != "progress"})
    return cfg, ckpt_path


def checkpoint_metadata(state, *, weights_format, config, adam_steps, rng):
    """A checkpoint's string metadata: ``state`` (the :data:`STATE_KEYS`), the formats, the model config,
    Adam step counts per parameter and RNG state, each JSON-encoded."""
    meta = {k: json.dumps(state[k]) for k in STATE_KEYS}
    return dict(meta, format=CHECKPOINT_FORMAT, weights_format=weights_format, config=json.dumps(config),
                adam_steps=json.dumps(adam_steps), rng=json.dumps(rng))


def checkpoint_state(path, meta, kind="diffnet"):
    """The training state (:data:`STATE_KEYS`) of a checkpoint's metadata; ValueError if ``meta`` is not a
    checkpoint's (``kind`` names it in the message)."""
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a {kind} checkpoint (format {meta.get('format')!r})")
    return {k: json.loads(v) for k, v in meta.items() if k in STATE_KEYS}


def restore(state, early):
    """``(start_epoch, step, seconds_before, best_psnr)`` from a checkpoint's state; sets ``early``."""
    early.load_state(state["early"])
    return state["epoch"], state["step"], state.get("seconds", 0.0), state.get("best_psnr", -math.inf)


# --- the epoch loop -------------------------------------------------------------------------------
def out_of_time(cfg, epoch, start_epoch, elapsed, last_epoch_seconds):
    """Whether ``epoch`` would end past ``cfg["time_budget"]`` (the first epoch of a call always runs)."""
    return bool(cfg["time_budget"] and epoch > start_epoch + 1
                and elapsed + last_epoch_seconds > cfg["time_budget"])


def progress_bar(steps, epoch, cfg, show=True):
    """``range(steps)``, wrapped in a tqdm bar when ``show`` and ``cfg["progress"]``."""
    bar = range(steps)
    if show and cfg["progress"]:
        from tqdm import tqdm

        bar = tqdm(bar, desc=f"epoch {epoch}/{cfg['epochs']}", leave=False, dynamic_ncols=True)
    return bar


def run_message(cfg, n_params, x_train, x_test):
    """The start of the line a run logs first."""
    return (f"{cfg['model']}: {n_params:,} parameters; {len(x_train)} train / {len(x_test)} test images "
            f"{tuple(x_train.shape[-2:])}; task {cfg['task']}, noise {cfg['noise']}; ")


def epoch_message(epoch, train_loss, train_psnr, test_loss, test_psnr, lr, seconds):
    return (f"epoch {epoch}: train loss {train_loss:.4e} psnr {train_psnr:.2f} | "
            f"test loss {test_loss:.4e} psnr {test_psnr:.2f} | lr {lr:.2e} | {seconds:.1f} s")


def finish_epoch(out, metrics, *, epoch, step, early, best_psnr, train_loss, train_psnr, test_loss, test_psnr, lr,
                 seconds, improved, save_best, save_checkpoint, log):
    """The files and log line of an epoch: a ``metrics.csv`` row, the best weights
    (``save_best(path, extra_metadata)``) when ``improved``, the checkpoint (``save_checkpoint(state)``)."""
    metrics.append(epoch=epoch, train_loss=train_loss, test_loss=test_loss, train_psnr=train_psnr,
                   test_psnr=test_psnr, lr=lr, seconds=round(seconds, 3))
    if improved:
        save_best(os.path.join(out, WEIGHTS_FILE), {"epoch": str(epoch), "test_psnr": repr(test_psnr)})
    save_checkpoint({"epoch": epoch, "step": step, "early": early.state(), "seconds": seconds,
                     "best_psnr": best_psnr})
    log(epoch_message(epoch, train_loss, train_psnr, test_loss, test_psnr, lr, seconds))


def stop_reason(early, epoch, stop_after):
    """``"early_stopping"``, ``"stop_after"`` or None (go on) after ``epoch``."""
    if early.should_stop:
        return "early_stopping"
    if stop_after is not None and epoch >= stop_after:
        return "stop_after"
    return None


def last_test_psnr(metrics):
    """The test PSNR of the last row of ``metrics.csv`` (None if empty): for a call that trained nothing."""
    rows = metrics.rows
    return rows[-1]["test_psnr"] if rows else None


def summary(cfg, *, early, best_psnr, final_psnr, epoch, step, stopped, seconds, train_time, images_seen,
            n_params, **extra):
    """The ``summary.json`` of a run; ``extra`` (framework details) goes before ``config``."""
    return {
        "best_test_psnr": best_psnr,
        "best_test_loss": early.best,
        "best_epoch": early.best_epoch,
        "final_test_psnr": final_psnr,
        "epochs": epoch,
        "steps": step,
        "stopped": stopped,
        "seconds": seconds,
        "train_seconds_this_call": train_time,
        "parameters": n_params,
        "images_per_second": images_seen / train_time if train_time > 0 else None,
        **extra,
        "config": {k: v for k, v in cfg.items() if k != "progress"},
    }


# --- command line ---------------------------------------------------------------------------------
def add_train_arguments(p, *, models=MODELS, batch_help="per process", device_help=None, threads_help=None,
                        extra=None):
    """The flags of ``train`` (the keys of :data:`DEFAULTS` and ``--stop-after``, ``--out``, ``--resume``,
    ``--quiet``) on parser ``p``; ``extra(p)`` adds a package's own flags after ``--device``."""
    p.add_argument("--model", choices=models, default=DEFAULTS["model"])
    p.add_argument("--task", choices=("deconvolution", "pm-forward", "pm-inverse"), default=DEFAULTS["task"])
    p.add_argument("--data", choices=("disks", "natural", "stl10"), default=DEFAULTS["data"])
    p.add_argument("--data-path", default=None, help="the stl10_binary directory (for --data stl10)")
    p.add_argument("--noise", type=float, default=DEFAULTS["noise"], help="noise level: 0.01 is the paper's 1%%")
    p.add_argument("--train-size", type=int, default=DEFAULTS["train_size"])
    p.add_argument("--test-size", type=int, default=DEFAULTS["test_size"])
    p.add_argument("--image-size", type=int, default=None, help="default: 64 for disks, 96 otherwise")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help=batch_help)
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--lr-final", type=float, default=DEFAULTS["lr_final"])
    p.add_argument("--layers", type=int, default=DEFAULTS["layers"])
    p.add_argument("--depth", type=int, default=DEFAULTS["depth"], help="conv layers per filter estimator (K)")
    p.add_argument("--width", type=int, default=DEFAULTS["width"])
    p.add_argument("--device", default="auto", help=device_help)
    if extra is not None:
        extra(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patience", type=int, default=None, help="early stop after this many epochs without a "
                   "better test loss")
    p.add_argument("--time-budget", type=float, default=None, help="seconds; no epoch starts that would end later")
    p.add_argument("--threads", type=int, default=None, help=threads_help)
    p.add_argument("--cache-dir", default=None, help="cache the generated data sets here (.npz)")
    p.add_argument("--exclude", nargs="*", default=[], help="natural data: photographs to hold out (e.g. camera)")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this epoch as if interrupted "
                   "(the schedule still spans --epochs; continue with --resume)")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def add_evaluate_arguments(p, *, device="auto"):
    """The flags of ``evaluate``: the run directory, ``--data-path``, ``--device``, ``--json``."""
    p.add_argument("run")
    p.add_argument("--data-path", default=None)
    p.add_argument("--device", default=device)
    p.add_argument("--json", action="store_true")
    return p


def config_from_args(args, defaults):
    """The ``train`` config of parsed ``args`` (the keys of ``defaults``, ``progress``, ``out``)."""
    cfg = {k: getattr(args, k) for k in defaults if hasattr(args, k)}
    cfg["progress"] = not args.quiet
    cfg["out"] = args.out
    return cfg


def train_command(args, defaults, train, show=True):
    """``train`` with the config of parsed ``args``; prints :func:`report_final` when ``show``. Returns 0."""
    line = report_final(train(config_from_args(args, defaults), resume=args.resume, stop_after=args.stop_after))
    if line is not None and show:
        print(line)
    return 0


def evaluate_command(args, evaluate_run):
    """Prints :func:`report_evaluation` of ``evaluate_run`` on the run of parsed ``args``. Returns 0."""
    values = evaluate_run(args.run, data_path=args.data_path, device=args.device)
    print(report_evaluation(values, args.json))
    return 0


def report_final(summary):
    """The line printed after training (None when nothing was evaluated)."""
    if summary.get("final_test_psnr") is None:
        return None
    return (f"best test PSNR {summary['best_test_psnr']:.2f} dB, final {summary['final_test_psnr']:.2f} dB, "
            f"{summary['epochs']} epochs, {summary['seconds']:.1f} s ({summary['stopped']})")


def report_evaluation(values, as_json=False):
    """The line ``evaluate`` prints for per-image PSNRs ``values``."""
    mean, std = runs.mean_std_psnr(values)
    if as_json:
        return json.dumps({"mean_psnr": mean, "std_psnr": std, "n": int(len(values))})
    return f"test PSNR {mean:.2f} +- {std:.2f} dB over {len(values)} images"
