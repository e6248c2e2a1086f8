"""``diffnet-torch``: train, evaluate, figures, demo.

    diffnet-torch train --model diffnet --task pm-inverse --data natural --noise 0.01 --epochs 5 --out runs/a
    diffnet-torch train --out runs/a --resume
    diffnet-torch train --ndim 3 --data balls --task deconvolution --out runs/volumes     # 3-D: Conv3d, 7 maps
    torchrun --standalone --nproc_per_node 2 -m diffnet_torch.cli train ...      # DistributedDataParallel (gloo on CPU)
    diffnet-torch evaluate runs/a
    diffnet-torch figures runs/a
    diffnet-torch demo --out demo/
"""
from __future__ import annotations

import os
import sys

from ssdops.diffnet import cli_common
from ssdops.diffnet.config import image_side, nonnegative_float, nonnegative_int

from .trainer import MODELS


def build_parser():
    """The ``diffnet-torch`` parser; returns ``(parser, train sub-parser, evaluate sub-parser)``."""
    parser, sub, train, evaluate = cli_common.build_parser("diffnet-torch", __doc__, models=MODELS,
                                                           evaluate_device="cpu", skip=("devices",))
    fmt = cli_common.FORMATTER
    p = sub.add_parser("figures", formatter_class=fmt,
                       help="PNG figures of a run: outputs, residuals, |FFT| per layer, zeta, smoothing")
    p.add_argument("run", type=cli_common.run_directory, help="a run directory written by train")
    p.add_argument("--out", default=None, help="where to write the PNGs (None: RUN/figures)")
    p.add_argument("--index", type=nonnegative_int, default=0, help="which test image")
    p.add_argument("--data-path", default=None, help="STL-10 data directory, if not the run's")
    p = sub.add_parser("demo", formatter_class=fmt,
                       help="invert Perona-Malik on a photograph with the shipped weights (< 1 min)")
    p.add_argument("--out", default="diffnet-demo", help="where to write demo.png")
    p.add_argument("--size", type=image_side, default=256, help="side of the photograph in pixels")
    p.add_argument("--noise", type=nonnegative_float, default=0.01, help="input noise relative to the max")
    p.add_argument("--weights", default=None, help="a weights file (None: the shipped natural_pm_inverse weights)")
    return parser, train, evaluate


def main(argv=None):
    parser, train_parser, evaluate_parser = build_parser()
    args = parser.parse_args(argv)

    if args.command == "train":
        from .trainer import TorchTrainer

        rank0 = os.environ.get("RANK", "0") == "0"
        return cli_common.train_command(train_parser, args, TorchTrainer, main=rank0, show=rank0)
    if args.command == "evaluate":
        from .trainer import evaluate_run

        return cli_common.evaluate_command(evaluate_parser, args, evaluate_run)
    if args.command == "figures":
        from .figures import run_figures

        def figures():
            for path in run_figures(args.run, out=args.out, index=args.index, data_path=args.data_path):
                print(path)
            return 0

        return cli_common.run_command(parser, figures)
    if args.command == "demo":
        from .demo import demo

        def run_demo():
            demo(out=args.out, size=args.size, noise=args.noise, weights=args.weights)
            return 0

        return cli_common.run_command(parser, run_demo)
    return 1


if __name__ == "__main__":
    sys.exit(main())
