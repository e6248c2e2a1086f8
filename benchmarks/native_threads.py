"""How the native CPU kernels scale with threads (issue #21: two threads at least 1.6x faster than one).

    python benchmarks/native_threads.py                      # 2048^2 images, 256^3 volumes, float32
    python benchmarks/native_threads.py --size 1024 --size-3d 128 --repeats 5

Each operation runs through ssdops' public functions on NumPy arrays (the NumPy kernels, which run the
compiled ``backends/native/cpu.cpp``; PyTorch's CPU tensors and dask's chunks go through the same kernels)
with the kernels' thread count (``SSDOPS_NUM_THREADS``, ``ssdops.backends._native.THREADS``) set to each of
``--threads`` in turn, interleaved, best of ``--repeats`` after a warm-up. Prints the times and the
speed-up over one thread; exits with status 2 when the native kernels are not built.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import ssdops
from ssdops.backends import _native


def operations(size, size_3d):
    """``name -> call`` of the timed operations on random float32 inputs."""
    rng = np.random.default_rng(0)
    u2 = rng.random((size, size), dtype=np.float32)
    u3 = rng.random((size_3d,) * 3, dtype=np.float32)
    A2 = ssdops.SSD(rng.random((5, size, size), dtype=np.float32), ssdops.FIVE_POINT)
    A3 = ssdops.SSD(rng.random((7,) + u3.shape, dtype=np.float32), ssdops.SEVEN_POINT)
    zeta = rng.random((5, size, size), dtype=np.float32)
    pm = dict(dt=0.1, lam=0.2, bc="neumann")
    return {
        f"ssd_apply {size}^2": lambda: A2 @ u2,
        f"filter_step {size}^2": lambda: ssdops.filter_step(u2, zeta, 0.1),
        f"perona_malik_step {size}^2": lambda: ssdops.perona_malik_step(u2, **pm),
        f"ssd_apply {size_3d}^3": lambda: A3 @ u3,
        f"perona_malik_step {size_3d}^3": lambda: ssdops.perona_malik_step(u3, ndim=3, **pm),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="side of the images (default 2048)")
    parser.add_argument("--size-3d", type=int, default=256, help="side of the volumes (default 256)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--repeats", type=int, default=9, help="timed samples per thread count (default 9)")
    args = parser.parse_args(argv)
    if not _native.AVAILABLE:
        print(f"no native kernels: {_native.REASON}", file=sys.stderr)
        return 2
    default = _native.THREADS
    print(f"{'operation':<28}" + "".join(f"{f'{n} thr ms':>11}" for n in args.threads)
          + "".join(f"{f'x{n}/1':>8}" for n in args.threads[1:]))
    try:
        for name, call in operations(args.size, args.size_3d).items():
            best = {n: float("inf") for n in args.threads}
            for n in args.threads:  # warm-up
                _native.THREADS = n
                call()
            for _ in range(args.repeats):
                for n in args.threads:
                    _native.THREADS = n
                    start = time.perf_counter()
                    call()
                    best[n] = min(best[n], time.perf_counter() - start)
            base = best[args.threads[0]]
            print(f"{name:<28}" + "".join(f"{best[n] * 1e3:>11.2f}" for n in args.threads)
                  + "".join(f"{base / best[n]:>8.2f}" for n in args.threads[1:]), flush=True)
    finally:
        _native.THREADS = default
    return 0


if __name__ == "__main__":
    sys.exit(main())
