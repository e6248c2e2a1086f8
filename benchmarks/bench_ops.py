#!/usr/bin/env python
"""Time the ssdops kernels on every installed framework and device (the same as ``ssdops bench``).

    python benchmarks/bench_ops.py --quick                    # a tiny run, seconds
    python benchmarks/bench_ops.py --json results.json        # the full run (see benchmarks/README.md)
    python benchmarks/bench_ops.py --help

A thin wrapper around :func:`ssdops.tools.bench.run` (the library function) and its command line.
"""
import os
import sys

try:
    import ssdops.tools.bench  # noqa: F401
except ImportError:  # run from a checkout without installing: use the repository next to this file
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ssdops.tools.bench import main

if __name__ == "__main__":
    sys.exit(main())
