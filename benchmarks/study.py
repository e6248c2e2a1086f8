"""The data-efficiency study of the DiffNet paper (section 6.1, Fig. 10; issue 22): DiffNet and the U-Net on the
Perona-Malik inverse task (``pm-inverse``) at 10, 100, 1,000 and 10,000 training images, without noise and with
1 % noise, 96x96 patches of scikit-image's photographs, one test set for every run.

The test set is cut from the photographs :data:`TEST_SOURCES` only (``--test-sources``), which are held out of
every training set; it is drawn with seed 1, so all runs of a noise level see the same test images (the noise
draw too). Each run trains until its test error has flattened, not for an equal wall clock: the number of
updates grows like ``300 * sqrt(n / 10)`` (300 for 10 images, 9,487 for 10,000), the learning rate decays over
them (the paper's schedules: DiffNet Adam 2e-3 -> 4e-6, U-Net 5e-4 -> 2e-5) and the run stops early when its
test loss has not improved for a fifth of its epochs (``--patience``, at least 5). The test set is evaluated
about 60 times a run (``--eval-every``: every 5th epoch at 10 images, every 2nd at 100; the DiffNet runs at
10 and 100 images, made before that setting, evaluated every epoch).

Each run is a run directory ``benchmarks/runs/study/<name>`` written by ``diffnet-torch train`` (one thread,
``--threads`` more; the study inherits its priority, start it with ``nice -n 19``). The runs go cheapest first
(estimated cost); a finished run (``summary.json`` saying it stopped for its epochs or early stopping) is
skipped, an unfinished one is continued with ``--resume``, so successive calls continue the study::

    nohup nice -n 19 python benchmarks/study.py --budget 30000 > study.log 2>&1 &
    python benchmarks/study.py --dry-run          # the plan: runs, order, commands; trains nothing

``--budget`` is the wall clock of this call in seconds (a run is not started when less is left than its
estimated epoch, which the trainer always completes); each run gets what is left (``--time-budget`` of the
trainer counts the run's seconds over all its calls, so a resumed run gets its past seconds plus what is left).
The figures and the table come from ``python benchmarks/reproduce.py``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY_DIR = os.path.join("benchmarks", "runs", "study")
SIZES = (10, 100, 1000, 10000)
NOISES = (0.0, 0.01)
MODELS = ("diffnet", "unet")
TEST_SOURCES = ("camera", "astronaut")
TEST_SIZE = 100
IMAGE_SIZE = 96
BATCH = 16
#: Adam's initial and final learning rates per model (the paper's section 5.2 schedules).
LEARNING_RATES = {"diffnet": (2e-3, 4e-6), "unet": (5e-4, 2e-5)}
#: Rough seconds per image on one thread of the development machine (training step, test evaluation); only
#: the order of the runs depends on them.
COST = {"diffnet": (0.12, 0.03), "unet": (0.5, 0.12)}
#: A run evaluates its test set about this many times (every ``epochs // EVALUATIONS`` epochs, at least every
#: epoch): on one thread the U-Net's 100 test images take 22 s, three times its 10-image epoch.
EVALUATIONS = 60
#: Runs whose summary says they stopped for one of these reasons are finished.
FINISHED = ("epochs", "early_stopping")
#: A run is not started (or continued) with less than this many seconds of the budget left.
MIN_SECONDS = 60.0


@dataclass(frozen=True)
class Run:
    """One run of the study: ``model`` on ``n`` training images at ``noise``."""

    model: str
    n: int
    noise: float

    @property
    def name(self):
        return f"{self.model}_n{self.n}_noise{self.noise:g}"

    @property
    def updates(self):
        """Optimiser steps planned: ``300 * sqrt(n / 10)``."""
        return round(300 * math.sqrt(self.n / 10))

    @property
    def steps_per_epoch(self):
        return max(1, math.ceil(self.n / BATCH))

    @property
    def epochs(self):
        return math.ceil(self.updates / self.steps_per_epoch)

    @property
    def eval_every(self):
        return max(1, self.epochs // EVALUATIONS)

    @property
    def patience(self):
        return max(5, self.epochs // 5)

    def cost(self):
        """Estimated seconds: training images seen plus test images evaluated."""
        train, test = COST[self.model]
        return self.epochs * (min(self.n, BATCH) * self.steps_per_epoch * train + TEST_SIZE * test / self.eval_every)

    def settings(self):
        """The ``diffnet-torch train`` flags that define the run (the same on ``--resume``)."""
        lr, lr_final = LEARNING_RATES[self.model]
        return ["--model", self.model, "--task", "pm-inverse", "--data", "natural", "--image-size", str(IMAGE_SIZE),
                "--train-size", str(self.n), "--test-size", str(TEST_SIZE), "--test-sources", *TEST_SOURCES,
                "--noise", f"{self.noise:g}", "--epochs", str(self.epochs), "--batch-size", str(BATCH),
                "--lr", f"{lr:g}", "--lr-final", f"{lr_final:g}", "--patience", str(self.patience),
                "--eval-every", str(self.eval_every), "--seed", "0"]


def plan(*, sizes=SIZES, noises=NOISES, models=MODELS):
    """The study's runs, cheapest first (ties: model, size, noise)."""
    runs = [Run(m, n, float(x)) for m in models for n in sizes for x in noises]
    return sorted(runs, key=lambda r: (r.cost(), r.model, r.n, r.noise))


def _last_seconds(run_dir):
    """The run's training seconds so far (last row of ``metrics.csv``; 0 without one)."""
    path = os.path.join(run_dir, "metrics.csv")
    if not os.path.isfile(path):
        return 0.0
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["seconds"]) if rows else 0.0


def state(run_dir):
    """``"finished"``, ``"partial"`` (a checkpoint to resume) or ``"new"``."""
    summary = os.path.join(run_dir, "summary.json")
    if os.path.isfile(summary):
        with open(summary) as f:
            if json.load(f).get("stopped") in FINISHED:
                return "finished"
    if os.path.isfile(os.path.join(run_dir, "checkpoint.safetensors")):
        return "partial"
    return "new"


def command(settings, run_dir, *, seconds_left, resume, threads=1, python=sys.executable):
    """The training command of the run with the flags ``settings`` in ``run_dir``, with ``seconds_left`` of
    the budget: ``threads`` threads, ``--resume`` when ``resume``; a run directory without a checkpoint
    restarts."""
    budget = _last_seconds(run_dir) + seconds_left if resume else seconds_left
    cmd = [python, "-m", "diffnet_torch.cli", "train", *settings, "--threads", str(threads), "--quiet",
           "--time-budget", f"{max(budget, 1.0):.0f}", "--out", run_dir]
    if resume:
        return cmd + ["--resume"]
    # A run directory without a checkpoint (the U-Net runs' weight files are not committed: hundreds of MB)
    # starts again: --overwrite removes its config and metrics first.
    return cmd + (["--overwrite"] if os.path.isfile(os.path.join(run_dir, "config.json")) else [])


def run_training(cmd, threads):
    """Run the training command ``cmd`` from the repository root with ``threads`` OpenMP and MKL threads;
    returns its exit status."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.run(cmd, cwd=ROOT, env=env).returncode


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=float, default=30000.0, help="wall-clock seconds of this call (default 30000)")
    p.add_argument("--out", default=STUDY_DIR, help=f"the study's directory (default {STUDY_DIR})")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="training-set sizes, comma-separated")
    p.add_argument("--noises", default=",".join(f"{x:g}" for x in NOISES), help="noise levels, comma-separated")
    p.add_argument("--models", default=",".join(MODELS), help="models, comma-separated")
    p.add_argument("--threads", type=int, default=1,
                   help="threads per run (default 1; 2 runs the U-Net at 100 images within a session here)")
    p.add_argument("--dry-run", action="store_true", help="print the plan (runs, state, commands); train nothing")
    args = p.parse_args(argv)
    if args.budget <= 0:
        p.error(f"--budget {args.budget:g} must be > 0")
    if args.threads < 1:
        p.error(f"--threads {args.threads} must be >= 1")
    try:
        sizes = tuple(int(s) for s in args.sizes.split(","))
        noises = tuple(float(s) for s in args.noises.split(","))
    except ValueError as err:
        p.error(f"--sizes / --noises: {err}")
    models = tuple(args.models.split(","))
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        p.error(f"--models: unknown {unknown}; use {MODELS}")
    if any(n < 1 for n in sizes) or any(x < 0 for x in noises):
        p.error("--sizes must be >= 1 and --noises >= 0")

    runs = plan(sizes=sizes, noises=noises, models=models)
    t0 = time.monotonic()
    for i, run in enumerate(runs, 1):
        run_dir = os.path.join(args.out, run.name)
        now = state(run_dir)
        left = args.budget - (time.monotonic() - t0)
        head = (f"[{i}/{len(runs)}] {run.name}: {now}; {run.updates} updates = {run.epochs} epochs, patience "
                f"{run.patience}, estimated {run.cost():.0f} s")
        if now == "finished":
            print(head, flush=True)
            continue
        cmd = command(run.settings(), run_dir, seconds_left=left, resume=now == "partial", threads=args.threads)
        if args.dry_run:
            print(head + "\n    " + shlex.join(cmd), flush=True)
            continue
        # a run's first epoch in a call always runs (the trainer's rule): do not start one that would overrun
        if left < max(MIN_SECONDS, run.cost() / run.epochs):
            print(f"budget spent ({left:.0f} s left, an epoch of {run.name} takes about {run.cost() / run.epochs:.0f}"
                  " s): it and the runs after it wait for the next call", flush=True)
            return 0
        print(head + f"; {left:.0f} s of the budget left\n    " + shlex.join(cmd), flush=True)
        rc = run_training(cmd, args.threads)
        print(f"{run.name}: exit status {rc}, now {state(run_dir)}", flush=True)
        if rc != 0:    # a run that fails is reported and the study goes on with the others
            print(f"{run.name} FAILED (exit status {rc}); see the log above", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
