"""The one epoch loop of DiffNet training, :func:`fit`, written against the :class:`Trainer` protocol that
``diffnet_torch.trainer.TorchTrainer`` and ``diffnet_jax.trainer.JaxTrainer`` implement. NumPy only.

The loop owns what both frameworks share: the data (:func:`ssdops.diffnet.data.load_data`), the epoch order
(:func:`ssdops.diffnet.data.permutation`, split over ``trainer.world_size`` processes), the learning-rate
schedule (:func:`ssdops.diffnet.runs.lr_at`), early stopping, the time budget, ``stop_after``, the files of
the run directory (``metrics.csv``, best weights, checkpoint after every test evaluation - every ``eval_every``
epochs and after the last -, ``summary.json``; written by the ``trainer.is_main`` process only) and resume.
A trainer owns its model, optimiser, devices and processes.

Nothing non-finite passes silently: a step whose loss, gradients or updated parameters are not finite, or
a test evaluation whose loss is not finite, raises :class:`NonFiniteError` naming the epoch and step before
anything of that epoch is written, so the last checkpoint and weights on disk are the last good ones.
"""
from __future__ import annotations

import math
import os
import time
from typing import Protocol

import numpy as np

from . import data, format, runs
from .config import RunConfig
from .runs import CHECKPOINT_FILE, WEIGHTS_FILE

__all__ = ["PSNR_CAP", "NonFiniteError", "Trainer", "fit", "prepare", "report_final", "steps_per_epoch", "train"]

#: Per-image PSNR cap in the training and test means (an exact image has PSNR +inf; a NaN stays NaN).
PSNR_CAP = 300.0


class NonFiniteError(FloatingPointError):
    """Training produced a non-finite loss, gradient or parameter (``epoch``, ``step``: where)."""

    def __init__(self, message, *, epoch, step):
        super().__init__(message)
        self.epoch, self.step = epoch, step


class Trainer(Protocol):
    """What :func:`fit` needs from a framework.

    ``world_size`` processes share an epoch (``rank`` is this one; ``is_main`` writes the files);
    ``batch_images`` is the number of images one process takes per step. ``models`` lists the model names
    the trainer can build.
    """

    models: tuple
    world_size: int

    @classmethod
    def check(cls, config) -> None:
        """Raise (ValueError) now what the constructor would raise for ``config`` (devices), before a run
        writes anything."""

    rank: int
    is_main: bool
    batch_images: int

    def start(self, config, model_config: dict, total_steps: int) -> int:
        """Build the model and optimiser (learning rate :func:`runs.lr_at` over ``total_steps``); returns
        the number of parameters."""

    def warm_up(self, x, y) -> float | None:
        """Compile ahead of the timed loop; the seconds it took (None: nothing to compile)."""

    def step(self, x, y, lr: float):
        """One optimiser step on this process's images ``x, y`` (NumPy, ``(n, 1, *grid)``) at learning rate
        ``lr``: ``(mean loss, sum of per-image PSNRs, finite)``, where ``finite`` tells (on every process
        alike) whether the loss, the gradients and the updated parameters are all finite. Values may be
        device scalars (the loop converts them to floats)."""

    def all_reduce(self, values: list) -> list:
        """Sums of ``values`` over the processes."""

    def evaluate(self, x, y) -> tuple:
        """``(mean MSE, mean PSNR)`` per image over the whole test set ``x, y`` (PSNR capped at
        :data:`PSNR_CAP`)."""

    def weights(self) -> tuple:
        """``(model config, {name: NumPy float32 array})`` of the model."""

    def checkpoint(self) -> tuple:
        """``(tensors, adam_steps, rng)``: model and ``adam.*`` tensors, Adam step counts, RNG state."""

    def restore(self, tensors, metadata) -> None:
        """Set the model, optimiser and RNG state from a checkpoint's tensors and metadata."""

    def describe(self) -> str:
        """The devices and processes, for the first log line."""

    def summary_extra(self) -> dict:
        """Framework details for ``summary.json``."""

    def finish(self, ok: bool) -> None:
        """Release the other processes (``ok``: after waiting for them; otherwise at once)."""


def steps_per_epoch(n_train, trainer):
    return max(1, math.ceil((n_train // trainer.world_size) / trainer.batch_images))


def _progress(steps, epoch, config, show):
    bar = range(steps)
    if show and config.progress:
        from tqdm import tqdm

        bar = tqdm(bar, desc=f"epoch {epoch}/{config.epochs}", leave=False, dynamic_ncols=True)
    return bar


def _epoch_message(epoch, train_loss, train_psnr, test_loss, test_psnr, lr, seconds):
    return (f"epoch {epoch}: train loss {train_loss:.4e} psnr {train_psnr:.2f} | "
            f"test loss {test_loss:.4e} psnr {test_psnr:.2f} | lr {lr:.2e} | {seconds:.1f} s")


def fit(config, trainer, *, resume=False, stop_after=None, log=print):
    """Train ``trainer`` as ``config`` (a :class:`~ssdops.diffnet.config.RunConfig` from :func:`prepare`)
    says; returns the summary dict (also ``summary.json``).

    ``resume`` continues from the run's checkpoint; ``stop_after`` stops after that epoch as if
    interrupted (the schedule still spans ``config.epochs``). Raises :class:`NonFiniteError` at the first
    non-finite step or test loss; the process group is released in every case.
    """
    _check_model(config, trainer.models)
    ok = False
    try:
        summary = _fit(config, trainer, resume=resume, stop_after=stop_after, log=log)
        ok = True
        return summary
    finally:
        trainer.finish(ok)


def _check_model(config, models):
    if config.model not in models:
        raise ValueError(f"model {config.model!r} is not available here: use one of {models}")


def prepare(config, trainer_class, *, resume=False, overwrite=False, given=(), main=True):
    """Check ``config`` against ``trainer_class`` (its ``models`` and :meth:`Trainer.check`) and its data
    source, then open its run directory (:func:`ssdops.diffnet.runs.open_run`): every check that can fail
    runs before anything is written. Returns the run's config (on resume: the stored one)."""
    models = trainer_class.models
    _check_model(config, models)
    if resume:   # reads the stored config and the checkpoint (verified); writes nothing
        config = runs.open_run(config, resume=True, given=given, main=main)
        _check_model(config, models)
        done = format.read_checkpoint(os.path.join(config.out, CHECKPOINT_FILE))[2]["epoch"]
        if config.epochs < done:
            raise ValueError(f"--epochs {config.epochs}: the run in {config.out} has trained {done} epochs already")
    trainer_class.check(config)
    data.check_source(config)
    if not resume:
        config = runs.open_run(config, overwrite=overwrite, main=main)
    return config


def train(settings, trainer_class, *, main=True, resume=False, overwrite=False, stop_after=None, log=print):
    """:func:`prepare` and :func:`fit` for a dict of ``settings`` (keys of
    :class:`~ssdops.diffnet.config.RunConfig`, including ``out``); on ``resume`` the keys given must match
    the stored run (see :func:`~ssdops.diffnet.runs.open_run`). ``trainer_class(config)`` builds the trainer
    once the run directory is ready. Returns the summary dict."""
    config = prepare(RunConfig.from_dict(settings), trainer_class, resume=resume, overwrite=overwrite,
                     given=tuple(k for k in settings if k not in ("out", "progress")), main=main)
    return fit(config, trainer_class(config), resume=resume, stop_after=stop_after, log=log)


def _fit(config, trainer, *, resume, stop_after, log):
    out = os.fspath(config.out)
    main, world, rank = trainer.is_main, trainer.world_size, trainer.rank
    ckpt_path = os.path.join(out, CHECKPOINT_FILE)
    x_train, y_train = data.load_data(config, "train")
    x_test, y_test = data.load_data(config, "test")
    per_rank = len(x_train) // world
    steps = steps_per_epoch(len(x_train), trainer)
    total_steps = steps * config.epochs
    n_params = trainer.start(config, config.model_config(x_train.shape[2:]), total_steps)

    early = runs.EarlyStopping(config.patience)
    start_epoch, step, seconds_before, best_psnr = 0, 0, 0.0, -math.inf
    if resume:
        tensors, metadata, state = format.read_checkpoint(ckpt_path)
        trainer.restore(tensors, metadata)
        early.load_state(state["early"])
        start_epoch, step = state["epoch"], state["step"]
        seconds_before, best_psnr = state.get("seconds", 0.0), state.get("best_psnr", -math.inf)
        if main:
            runs.write_config(out, config.to_dict())     # a larger --epochs is recorded
    metrics = runs.MetricsLog(out) if main else None
    if main and resume:
        metrics.truncate(start_epoch)
    if main:
        log(f"{config.model}: {n_params:,} parameters; {len(x_train)} train / {len(x_test)} test images "
            f"{tuple(x_train.shape[2:])}; task {config.task}, noise {config.noise}; {trainer.describe()}")
    compile_seconds = trainer.warm_up(x_train, y_train)

    t_start = time.perf_counter()
    train_time = 0.0
    images_seen = 0
    stopped = "epochs"
    last_round_seconds = 0.0
    epoch = saved_epoch = start_epoch
    final_psnr = None

    def lr_of(step):
        return runs.lr_at(step, total_steps, config.lr, config.lr_final, halve_every=config.lr_halve_every)

    lr = lr_of(step)
    bs = trainer.batch_images
    # A round is the epochs up to the next test evaluation (every eval_every-th epoch and the last): the
    # files are written and the run may stop only at the end of a round, so a checkpoint is a round's end.
    round_start, round_results, evaluated_epoch = None, [], start_epoch
    for epoch in range(start_epoch + 1, config.epochs + 1):
        if round_start is None:
            elapsed = seconds_before + time.perf_counter() - t_start
            if config.time_budget and epoch > start_epoch + 1 and elapsed + last_round_seconds > config.time_budget:
                stopped, epoch = "time_budget", epoch - 1
                break
            round_start, round_results = time.perf_counter(), []
        t0 = time.perf_counter()
        perm = data.permutation(len(x_train), config.seed, epoch)[rank : per_rank * world : world]
        for b in _progress(steps, epoch, config, show=main):
            idx = np.sort(perm[b * bs : (b + 1) * bs])
            lr = lr_of(step)
            loss, psnr_sum, finite = trainer.step(x_train[idx], y_train[idx], lr)
            step += 1
            if not bool(finite):
                raise NonFiniteError(f"training diverged at epoch {epoch}, step {step}: non-finite loss, "
                                     f"gradient or parameter (learning rate {lr:.3g}); the run directory "
                                     f"keeps the checkpoint and weights of epoch {saved_epoch}",
                                     epoch=epoch, step=step)
            round_results.append((loss, psnr_sum, len(idx)))
            images_seen += len(idx) * world
        train_time += time.perf_counter() - t0
        if epoch % config.eval_every and epoch != config.epochs:
            continue
        loss_sum = sum(float(loss) * n for loss, _, n in round_results)
        psnr_sum = sum(float(p) for _, p, _ in round_results)
        images = sum(n for _, _, n in round_results)
        train_loss, train_psnr, train_n = trainer.all_reduce([loss_sum, psnr_sum, float(images)])
        test_loss, test_psnr = trainer.evaluate(x_test, y_test)
        if not (math.isfinite(test_loss) and math.isfinite(test_psnr)):
            raise NonFiniteError(f"non-finite test loss {test_loss} / PSNR {test_psnr} after epoch {epoch} "
                                 f"(step {step}); the run directory keeps the checkpoint and weights of epoch "
                                 f"{saved_epoch}", epoch=epoch, step=step)
        final_psnr = test_psnr
        improved = early.update(test_loss, epoch, epochs=epoch - evaluated_epoch)
        evaluated_epoch = epoch
        if improved:
            best_psnr = test_psnr
        last_round_seconds, round_start = time.perf_counter() - round_start, None
        seconds = seconds_before + time.perf_counter() - t_start
        if main:
            metrics.append(epoch=epoch, train_loss=train_loss / train_n, test_loss=test_loss,
                           train_psnr=train_psnr / train_n, test_psnr=test_psnr, lr=lr, seconds=round(seconds, 3))
            if improved:
                model_config, tensors = trainer.weights()
                format.write_weights(os.path.join(out, WEIGHTS_FILE), model_config, tensors,
                                     {"epoch": str(epoch), "test_psnr": repr(test_psnr)})
            tensors, adam_steps, rng = trainer.checkpoint()
            format.write_checkpoint(ckpt_path, tensors, config=trainer.weights()[0], adam_steps=adam_steps,
                                    rng=rng, state={"epoch": epoch, "step": step, "early": early.state(),
                                                    "seconds": seconds, "best_psnr": best_psnr})
            saved_epoch = epoch
            log(_epoch_message(epoch, train_loss / train_n, train_psnr / train_n, test_loss, test_psnr, lr,
                               seconds))
        if early.should_stop:
            stopped = "early_stopping"
            break
        if stop_after is not None and epoch >= stop_after:
            stopped = "stop_after"
            break
    seconds = seconds_before + time.perf_counter() - t_start
    if final_psnr is None and main:   # nothing trained in this call: report from the log
        final_psnr = metrics.rows[-1]["test_psnr"] if metrics.rows else None
    extra = trainer.summary_extra()
    if compile_seconds is not None:
        extra = {"compile_seconds": compile_seconds, **extra}
    summary = {
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
        "config": config.to_dict(),
    }
    if main:
        runs.write_summary(out, summary)
    return summary


def report_final(summary):
    """The line printed after training (None when nothing was evaluated)."""
    if summary.get("final_test_psnr") is None:
        return None
    return (f"best test PSNR {summary['best_test_psnr']:.2f} dB, final {summary['final_test_psnr']:.2f} dB, "
            f"{summary['epochs']} epochs, {summary['seconds']:.1f} s ({summary['stopped']})")
