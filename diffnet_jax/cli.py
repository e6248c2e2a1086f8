"""``diffnet-jax``: train and evaluate DiffNet in JAX (the flags, outputs and files of ``diffnet-torch``,
except ``--model unet``, which only ``diffnet-torch`` has, and ``--devices``, which only this one has).

    diffnet-jax train --model diffnet --task pm-inverse --data natural --noise 0.01 --epochs 5 --out runs/a
    diffnet-jax train --out runs/a --resume
    diffnet-jax train --ndim 3 --data balls --task deconvolution --out runs/volumes     # 3-D: Conv3d, 7 maps
    diffnet-jax train ... --devices 2            # data parallel over 2 devices (batch sharded, params replicated)
    diffnet-jax evaluate runs/a [--json]

A run directory written by ``diffnet-jax`` has the same files as one written by ``diffnet-torch``; its
``weights.safetensors`` loads in either package.
"""
from __future__ import annotations

import sys

from ssdops.diffnet import cli_common

from .trainer import MODELS


def build_parser():
    """The ``diffnet-jax`` parser; returns ``(parser, train sub-parser, evaluate sub-parser)``."""
    parser, _, train, evaluate = cli_common.build_parser("diffnet-jax", __doc__, models=MODELS,
                                                         evaluate_device="auto")
    return parser, train, evaluate


def main(argv=None):
    parser, train_parser, evaluate_parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        from .trainer import JaxTrainer

        return cli_common.train_command(train_parser, args, JaxTrainer)
    if args.command == "evaluate":
        from .trainer import evaluate_run

        return cli_common.evaluate_command(evaluate_parser, args, evaluate_run)
    return 1


if __name__ == "__main__":
    sys.exit(main())
