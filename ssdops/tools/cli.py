"""The ``ssdops`` command: ``ssdops bench`` (timings) and ``ssdops compare`` (cross-framework agreement).

``python -m ssdops`` is the same command.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["build_parser", "main"]


def build_parser():
    """The argument parser of ``ssdops`` with its subcommands."""
    from .. import __version__
    from . import bench as benchmark
    from . import compare

    parser = argparse.ArgumentParser(
        prog="ssdops",
        description="ssdops: sparse sub-diagonal stencil operators. Benchmarks and cross-framework checks.",
    )
    parser.add_argument("--version", action="version", version=f"ssdops {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    subcommands = (
        ("bench", benchmark,
         "time SSD apply, filter_step, Perona-Malik and implicit steps per framework and device",
         "Time the ssdops kernels on every installed framework (numpy, torch, jax, cupy) and "
         "device: median ms, effective GB/s, ratio to a memory-copy floor, speed-ups over a scipy.sparse "
         "CSR baseline and over the generic array-API path. JAX functions are jitted."),
        ("compare", compare,
         "run the same problems in every framework, device and dtype and check they agree",
         "Compute the same problems in every installed framework and device, in float32 and "
         "float64, and compare them with a float64 NumPy/scipy reference. Exits with status 1 when a "
         "float64 result differs by more than 1e-10 (relative) or a float32 result by more than 1e-4."),
    )
    for name, module, help_text, description in subcommands:
        sub = commands.add_parser(name, help=help_text, description=description)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run_from_args)
    return parser


def main(argv=None):
    """Entry point of the ``ssdops`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
