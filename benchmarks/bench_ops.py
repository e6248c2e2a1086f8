#!/usr/bin/env python
"""Time the ssdops kernels on every installed framework and device (the same as ``ssdops bench``).

    python benchmarks/bench_ops.py --quick                    # a tiny run, seconds
    python benchmarks/bench_ops.py --json results.json        # the full run (see benchmarks/README.md)
    python benchmarks/bench_ops.py --help

A thin wrapper around :func:`ssdops.benchmark.run` (the library function) and its command line.
"""
import os
import sys

try:
    import ssdops.benchmark  # noqa: F401
except ImportError:  # run from a checkout without installing: use the repository next to this file
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ssdops.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
