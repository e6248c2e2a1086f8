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
import sys

from ssdops import training

from .train import DEFAULTS, MODELS


def _devices_argument(p):
    p.add_argument("--devices", type=int, default=None, help="data parallel over the first N devices "
                   "(default: all devices of the platform)")


def _train_parser(sub):
    p = sub.add_parser("train", help="train a model; writes config.json, metrics.csv, checkpoint, weights, summary")
    training.add_train_arguments(p, models=MODELS, batch_help="per device",
                                 device_help="auto (JAX's default platform), cpu, gpu/cuda, tpu",
                                 threads_help="accepted for compatibility with diffnet-torch; "
                                 "XLA chooses its own CPU threads", extra=_devices_argument)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="diffnet-jax", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    training.add_evaluate_arguments(sub.add_parser("evaluate", help="mean / std test PSNR of a run's best weights"),
                                    device="auto")
    args = parser.parse_args(argv)

    if args.command == "train":
        from .train import train

        return training.train_command(args, DEFAULTS, train)
    if args.command == "evaluate":
        from .train import evaluate_run

        return training.evaluate_command(args, evaluate_run)
    return 1


if __name__ == "__main__":
    sys.exit(main())
