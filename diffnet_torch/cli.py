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
import json
import os
import sys

from .train import DEFAULTS


def _train_parser(sub):
    p = sub.add_parser("train", help="train a model; writes config.json, metrics.csv, checkpoint, weights, summary")
    p.add_argument("--model", choices=("diffnet", "linear", "unet"), default=DEFAULTS["model"])
    p.add_argument("--task", choices=("deconvolution", "pm-forward", "pm-inverse"), default=DEFAULTS["task"])
    p.add_argument("--data", choices=("disks", "natural", "stl10"), default=DEFAULTS["data"])
    p.add_argument("--data-path", default=None, help="the stl10_binary directory (for --data stl10)")
    p.add_argument("--noise", type=float, default=DEFAULTS["noise"], help="noise level: 0.01 is the paper's 1%%")
    p.add_argument("--train-size", type=int, default=DEFAULTS["train_size"])
    p.add_argument("--test-size", type=int, default=DEFAULTS["test_size"])
    p.add_argument("--image-size", type=int, default=None, help="default: 64 for disks, 96 otherwise")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="per process")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--lr-final", type=float, default=DEFAULTS["lr_final"])
    p.add_argument("--layers", type=int, default=DEFAULTS["layers"])
    p.add_argument("--depth", type=int, default=DEFAULTS["depth"], help="conv layers per filter estimator (K)")
    p.add_argument("--width", type=int, default=DEFAULTS["width"])
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patience", type=int, default=None, help="early stop after this many epochs without a "
                   "better test loss")
    p.add_argument("--time-budget", type=float, default=None, help="seconds; no epoch starts that would end later")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--cache-dir", default=None, help="cache the generated data sets here (.npz)")
    p.add_argument("--exclude", nargs="*", default=[], help="natural data: photographs to hold out (e.g. camera)")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this epoch as if interrupted "
                   "(the schedule still spans --epochs; continue with --resume)")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="diffnet-torch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    p = sub.add_parser("evaluate", help="mean / std test PSNR of a run's best weights")
    p.add_argument("run")
    p.add_argument("--data-path", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
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

        cfg = {k: getattr(args, k) for k in DEFAULTS if hasattr(args, k)}
        cfg["progress"] = not args.quiet
        cfg["out"] = args.out
        summary = train(cfg, resume=args.resume, stop_after=args.stop_after)
        if summary.get("final_test_psnr") is not None and os.environ.get("RANK", "0") == "0":
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
