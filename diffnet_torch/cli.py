"""``diffnet-torch``: train, evaluate, figures, demo.

    diffnet-torch train --model diffnet --task pm-inverse --data natural --noise 0.01 --epochs 5 --out runs/a
    diffnet-torch train --out runs/a --resume
    torchrun --standalone --nproc_per_node 2 -m diffnet_torch.cli train ...      # DistributedDataParallel (gloo on CPU)
    diffnet-torch evaluate runs/a
    diffnet-torch figures runs/a
    diffnet-torch demo --out demo/
"""
from __future__ import annotations

import argparse
import os
import sys

from ssdops import training

from .train import DEFAULTS


def _train_parser(sub):
    p = sub.add_parser("train", help="train a model; writes config.json, metrics.csv, checkpoint, weights, summary")
    training.add_train_arguments(p, batch_help="per process", threads_help="torch threads per process")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="diffnet-torch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    training.add_evaluate_arguments(sub.add_parser("evaluate", help="mean / std test PSNR of a run's best weights"),
                                    device="cpu")
    p = sub.add_parser("figures", help="PNG figures of a run: outputs, residuals, |FFT| per layer, zeta, smoothing")
    p.add_argument("run")
    p.add_argument("--out", default=None, help="default: RUN/figures")
    p.add_argument("--index", type=int, default=0, help="which test image")
    p.add_argument("--data-path", default=None)
    p = sub.add_parser("demo", help="invert Perona-Malik on a photograph with the shipped weights (< 1 min)")
    p.add_argument("--out", default="diffnet-demo")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--noise", type=float, default=0.01)
    p.add_argument("--weights", default=None, help="default: the shipped natural_pm_inverse weights")
    args = parser.parse_args(argv)

    if args.command == "train":
        from .train import train

        return training.train_command(args, DEFAULTS, train, show=os.environ.get("RANK", "0") == "0")
    if args.command == "evaluate":
        from .train import evaluate_run

        return training.evaluate_command(args, evaluate_run)
    if args.command == "figures":
        from .figures import run_figures

        for path in run_figures(args.run, out=args.out, index=args.index, data_path=args.data_path):
            print(path)
        return 0
    if args.command == "demo":
        from .demo import demo

        demo(out=args.out, size=args.size, noise=args.noise, weights=args.weights)
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
