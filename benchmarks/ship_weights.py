"""Ship a run's best weights with the package, and measure them on newly drawn data (issue 22).

    python benchmarks/ship_weights.py deconvolution     # benchmarks/runs/disks_deconvolution
    python benchmarks/ship_weights.py pm-inverse         # the study's finished DiffNet run at 1 % noise
                                                         # with the most training images
    python benchmarks/ship_weights.py deconvolution --check    # measure the shipped file only, copy nothing

The run's ``weights.safetensors`` (its best epoch; loaded, so checked, before anything is written) is copied
atomically to ``diffnet_torch/weights/<name>.safetensors``. Then the shipped file is evaluated by
:func:`diffnet_torch.trainer.evaluate_weights` on ``--count`` images of the run's data set and task drawn with
seed ``--seed`` (neither the training seed nor the test seed of any committed run), and the mean per-image
PSNR is printed: the figure benchmarks/RESULTS.md states, which tests/test_shipped_weights.py recomputes.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import study  # noqa: E402

REPO = os.path.dirname(HERE)
WEIGHTS_DIR = os.path.join(REPO, "diffnet_torch", "weights")
RUNS = os.path.join(HERE, "runs")
STUDY_RUNS = os.path.join(RUNS, "study")


def largest_finished_study_run(model="diffnet", noise=0.01, *, study_dir=STUDY_RUNS):
    """The directory of the study's finished ``model`` run at ``noise`` with the most training images: a run
    still training (or never started) is passed over, so its partial weights are never shipped."""
    finished = [run for run in (study.Run(model, n, noise) for n in study.SIZES)
                if study.state(os.path.join(study_dir, run.name)) == "finished"]
    if not finished:
        raise FileNotFoundError(f"no finished {model} run at noise {noise:g} in {study_dir}")
    return os.path.join(study_dir, max(finished, key=lambda run: run.n).name)


#: Shipped name -> the function that gives the directory of the run it comes from.
SHIPPED = {
    "deconvolution": ("disks_deconvolution", lambda: os.path.join(RUNS, "disks_deconvolution")),
    "pm-inverse": ("natural_pm_inverse", largest_finished_study_run),
}


def source_run(which):
    """The shipped file's name and the directory of the run ``which`` ships from."""
    name, run_dir = SHIPPED[which]
    return name, run_dir()


#: The seed of the newly drawn evaluation data.
SEED = 20_261_204
COUNT = 512


def newly_drawn(run_dir, *, count=COUNT, seed=SEED):
    """``(input, target)`` of ``count`` images of the run's data set and task, drawn with ``seed``."""
    from ssdops.diffnet.config import RunConfig
    from ssdops.diffnet.data import load_images, make_task
    from ssdops.diffnet.runs import read_config

    config = RunConfig.from_dict(read_config(run_dir))
    images = load_images(config.data, count, size=config.image_size, seed=seed, path=config.data_path)
    return make_task(config.task, images, noise=config.noise, seed=seed)


def shipped_psnr(which, *, count=COUNT, seed=SEED):
    """Mean per-image PSNR (dB) of the shipped weights ``which`` on newly drawn data of their run."""
    from diffnet_torch.trainer import evaluate_weights

    name, run_dir = source_run(which)
    x, y = newly_drawn(run_dir, count=count, seed=seed)
    return float(np.mean(evaluate_weights(os.path.join(WEIGHTS_DIR, f"{name}.safetensors"), x, y)))


def ship(which):
    """Copy the run's best weights to the package, atomically, after loading them. Returns the shipped file and
    the run it came from."""
    from diffnet_torch import load_weights
    from ssdops.diffnet import runs

    name, run_dir = source_run(which)
    source = os.path.join(run_dir, runs.WEIGHTS_FILE)
    load_weights(source)  # checksum, header and shapes verified: a corrupt file stops here
    target = os.path.join(WEIGHTS_DIR, f"{name}.safetensors")
    with open(source, "rb") as f:
        runs.atomic_write_bytes(target, f.read())
    return target, run_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=sorted(SHIPPED))
    parser.add_argument("--check", action="store_true", help="measure the shipped file only; copy nothing")
    parser.add_argument("--count", type=int, default=COUNT, help=f"images drawn (default {COUNT})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"their seed (default {SEED})")
    args = parser.parse_args(argv)
    if not args.check:
        target, run_dir = ship(args.which)
        print(f"shipped {target} from {run_dir}")
    psnr = shipped_psnr(args.which, count=args.count, seed=args.seed)
    print(f"{SHIPPED[args.which][0]}: {psnr:.2f} dB mean PSNR on {args.count} newly drawn images (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
