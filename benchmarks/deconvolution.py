"""Section 5.1 of the DiffNet paper, deconvolution of disks, as resumable runs: one per learning-rate
schedule (issue 22). 1024 disks 64² for training, 128 for testing, the heat-equation blur at T = 1, no noise,
3 DiffNet layers, batch 16, 1000 epochs (64,000 Adam steps):

- ``text`` (``benchmarks/runs/disks_deconvolution``): the paper's text, Adam 4e-4 decaying exponentially to 1e-6;
- ``code`` (``benchmarks/runs/disks_deconvolution_code_schedule``): the authors' code, Adam 4e-3 halved every
  10,000 iterations (``--lr-halve-every 10000``; 6.25e-5 at the end, above the floor 1e-6).

Each call trains the chosen run for at most ``--budget`` seconds with one thread (``--threads`` more; start it
with ``nice -n 19``) and continues it where the last call stopped (the checkpoint of every epoch; ``--resume``
is exact)::

    nohup nice -n 19 python benchmarks/deconvolution.py code --budget 10000 > deconvolution.log 2>&1 &
    python benchmarks/deconvolution.py code --dry-run     # the command; trains nothing

``python benchmarks/reproduce.py`` draws both curves; ``benchmarks/ship_weights.py deconvolution`` ships the
``text`` run's weights.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import study  # noqa: E402

RUNS_DIR = os.path.join("benchmarks", "runs")
#: The protocol of section 5.1, the same for every schedule.
PROTOCOL = ["--model", "diffnet", "--task", "deconvolution", "--data", "disks", "--train-size", "1024",
            "--test-size", "128", "--image-size", "64", "--layers", "3", "--epochs", "1000", "--batch-size", "16",
            "--seed", "0"]
#: Run directory name and learning-rate flags per schedule.
SCHEDULES = {
    "text": ("disks_deconvolution", ["--lr", "4e-4", "--lr-final", "1e-6"]),
    "code": ("disks_deconvolution_code_schedule", ["--lr", "4e-3", "--lr-halve-every", "10000", "--lr-final", "1e-6"]),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("schedule", choices=tuple(SCHEDULES), help="the learning-rate schedule (see above)")
    p.add_argument("--budget", type=float, default=30000.0, help="wall-clock seconds of this call (default 30000)")
    p.add_argument("--out", default=RUNS_DIR, help=f"the directory of the run directories (default {RUNS_DIR})")
    p.add_argument("--threads", type=int, default=1, help="threads of the run (default 1)")
    p.add_argument("--dry-run", action="store_true", help="print the command; train nothing")
    args = p.parse_args(argv)
    if args.budget <= 0:
        p.error(f"--budget {args.budget:g} must be > 0")
    if args.threads < 1:
        p.error(f"--threads {args.threads} must be >= 1")
    name, rates = SCHEDULES[args.schedule]
    run_dir = os.path.join(args.out, name)
    now = study.state(run_dir)
    if now == "finished":
        print(f"{run_dir}: finished")
        return 0
    cmd = study.command(PROTOCOL + rates, run_dir, seconds_left=args.budget, resume=now == "partial",
                        threads=args.threads)
    print(f"{run_dir}: {now}\n    {shlex.join(cmd)}", flush=True)
    if args.dry_run:
        return 0
    return study.run_training(cmd, args.threads)


if __name__ == "__main__":
    sys.exit(main())
