"""``diffnet-jax``: train and evaluate DiffNet in JAX (flags, outputs and files as ``diffnet-torch``).

    diffnet-jax train --model diffnet --task pm-inverse --data natural --noise 0.01 --epochs 5 --out runs/a
    diffnet-jax train --out runs/a --resume
    diffnet-jax train ... --devices 2            # data parallel over 2 devices (batch sharded, params replicated)
    diffnet-jax evaluate runs/a [--json]

A run directory written by ``diffnet-jax`` has the same files as one written by ``diffnet-torch``; its
``weights.safetensors`` loads in either package.
"""
from __future__ import annotations

import argparse
import json
import sys

from .train import DEFAULTS


def _train_parser(sub):
    p = sub.add_parser("train", help="train a model; writes config.json, metrics.csv, checkpoint, weights, summary")
    p.add_argument("--model", choices=("diffnet", "linear"), default=DEFAULTS["model"])
    p.add_argument("--task", choices=("deconvolution", "pm-forward", "pm-inverse"), default=DEFAULTS["task"])
    p.add_argument("--data", choices=("disks", "natural", "stl10"), default=DEFAULTS["data"])
    p.add_argument("--data-path", default=None, help="the stl10_binary directory (for --data stl10)")
    p.add_argument("--noise", type=float, default=DEFAULTS["noise"], help="noise level: 0.01 is the paper's 1%%")
    p.add_argument("--train-size", type=int, default=DEFAULTS["train_size"])
    p.add_argument("--test-size", type=int, default=DEFAULTS["test_size"])
    p.add_argument("--image-size", type=int, default=None, help="default: 64 for disks, 96 otherwise")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="per device")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--lr-final", type=float, default=DEFAULTS["lr_final"])
    p.add_argument("--layers", type=int, default=DEFAULTS["layers"])
    p.add_argument("--depth", type=int, default=DEFAULTS["depth"], help="conv layers per filter estimator (K)")
    p.add_argument("--width", type=int, default=DEFAULTS["width"])
    p.add_argument("--device", default="auto", help="auto (JAX's default platform), cpu, gpu/cuda, tpu")
    p.add_argument("--devices", type=int, default=None, help="data parallel over the first N devices "
                   "(default: all devices of the platform)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patience", type=int, default=None, help="early stop after this many epochs without a "
                   "better test loss")
    p.add_argument("--time-budget", type=float, default=None, help="seconds; no epoch starts that would end later")
    p.add_argument("--threads", type=int, default=None, help="accepted for compatibility with diffnet-torch; "
                   "XLA chooses its own CPU threads")
    p.add_argument("--cache-dir", default=None, help="cache the generated data sets here (.npz)")
    p.add_argument("--exclude", nargs="*", default=[], help="natural data: photographs to hold out (e.g. camera)")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this epoch as if interrupted "
                   "(the schedule still spans --epochs; continue with --resume)")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="diffnet-jax", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    p = sub.add_parser("evaluate", help="mean / std test PSNR of a run's best weights")
    p.add_argument("run")
    p.add_argument("--data-path", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    if args.command == "train":
        from .train import train

        cfg = {k: getattr(args, k) for k in DEFAULTS if hasattr(args, k)}
        cfg["progress"] = not args.quiet
        cfg["out"] = args.out
        summary = train(cfg, resume=args.resume, stop_after=args.stop_after)
        if summary.get("final_test_psnr") is not None:
            print(f"best test PSNR {summary['best_test_psnr']:.2f} dB, final {summary['final_test_psnr']:.2f} dB, "
                  f"{summary['epochs']} epochs, {summary['seconds']:.1f} s ({summary['stopped']})")
        return 0
    if args.command == "evaluate":
        from ssdops.runs import mean_std_psnr

        from .train import evaluate_run

        values = evaluate_run(args.run, data_path=args.data_path, device=args.device)
        mean, std = mean_std_psnr(values)
        if args.json:
            print(json.dumps({"mean_psnr": mean, "std_psnr": std, "n": int(len(values))}))
        else:
            print(f"test PSNR {mean:.2f} +- {std:.2f} dB over {len(values)} images")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
