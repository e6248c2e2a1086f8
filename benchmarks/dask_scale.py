"""Perona-Malik on an image larger than a worker's memory, on a dask.distributed cluster, next to NumPy.

    python benchmarks/dask_scale.py                       # 16384^2 float32 (1 GiB), 4 steps, 2 workers
    python benchmarks/dask_scale.py --size 1024 --chunk 256 --threads      # a quick run
    python benchmarks/dask_scale.py --solve cg --size 8192                  # an implicit step by CG

With ``--solve cg`` (or ``bicgstab``) the run is one implicit step instead, ``implicit_step(u,
divergence_form(gamma, bc="dirichlet"), dt)`` at ``--tol``, where ``gamma`` is ``0.5 + pattern / 2`` (made
chunk by chunk like the image): the operator's five diagonals alone are 5x the image, so at 8192² (256 MiB
float32) the state does not fit one worker.

The image is generated chunk by chunk on the workers (a deterministic pattern: a checkerboard of 256-pixel
squares plus a hashed noise, the same function NumPy evaluates on the whole grid), so no worker ever holds
it whole: each worker's memory limit (``--memory-limit``, default 900 MiB) is below the image's size at
full size. ``ssdops.perona_malik`` runs the authors' generator (dt 0.1, lam 0.2, Dirichlet, ghost gamma
0) on the dask array: one ``map_overlap`` task group per step, chunks kept. The run computes the sum of
the result and sampled windows (the four corners, windows across chunk edges and corners, random ones)
in one pass, then closes the cluster and runs NumPy on the whole image, and prints, as JSON: wall times,
the task count of the graph, the peak resident memory of each worker, and the largest difference on the
windows and of the sums. Exit status 1 when dask and NumPy disagree.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np

import ssdops

PM = dict(dt=0.1, lam=0.2, bc="dirichlet", ghost_gamma=0.0)


def pattern(rows, cols):
    """The test image on pixel rows ``rows`` and columns ``cols`` (1-D index arrays), float32."""
    i, j = np.meshgrid(rows.astype(np.int64), cols.astype(np.int64), indexing="ij")
    squares = ((i // 256 + j // 256) % 2).astype(np.float32)
    noise = ((i * 7919 + j * 104729) % 1009).astype(np.float32) / 1009.0
    return squares + np.float32(0.05) * noise


def _pattern_block(block_info=None):
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    return pattern(np.arange(r0, r1), np.arange(c0, c1))


def windows(size, chunk, width, count, seed=0):
    """``(row, col)`` corners of sampled ``width``-square windows: the grid's four corners, windows across
    a chunk edge and a chunk corner, and ``count`` random ones."""
    last = size - width
    middle = min(chunk, last) - width // 2
    fixed = [(0, 0), (0, last), (last, 0), (last, last), (middle, 0), (0, middle), (middle, middle)]
    rng = np.random.default_rng(seed)
    return [(max(0, min(r, last)), max(0, min(c, last))) for r, c in fixed] + [
        tuple(int(v) for v in rng.integers(0, last + 1, 2)) for _ in range(count)
    ]


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def forward(u, args):
    """The computation under test on image ``u`` (NumPy or dask), and its diffusivity's maker."""
    if args.solve is None:
        return ssdops.perona_malik(u, steps=args.steps, check_finite=False, **PM)
    gamma = 0.5 + u / 2  # the pattern in [0, 1.05]: gamma in [0.5, 1.03], chunked like u
    op = ssdops.divergence_form(gamma, bc="dirichlet")
    return ssdops.implicit_step(u, op, args.dt, method=args.solve, tol=args.tol)


def run_dask(args, corners):
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=args.workers, threads_per_worker=args.threads_per_worker,
                      processes=not args.threads, memory_limit=args.memory_limit,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        u = da.map_blocks(_pattern_block, dtype=np.float32, meta=np.empty((0, 0), np.float32),
                          chunks=da.core.normalize_chunks(args.chunk, (args.size, args.size)))
        start = time.perf_counter()
        v = forward(u, args)
        build = time.perf_counter() - start
        w = args.window
        wanted = [v.sum(dtype=np.float64)] + [v[r : r + w, c : c + w] for r, c in corners]
        tasks = len(set().union(*(x.__dask_graph__().keys() for x in wanted)))
        start = time.perf_counter()
        total, *found = dask.compute(*wanted)
        wall = time.perf_counter() - start
        peaks = client.run(_peak_rss_mib)
    return dict(
        # The call builds the graph (and, for a solve, runs the iterations: each persists its vectors).
        call_s=round(build, 3), compute_s=round(wall, 3), wall_s=round(build + wall, 3),
        tasks_final_graph=len(v.__dask_graph__()), tasks_computed=tasks, chunks=v.numblocks, chunk=args.chunk,
        peak_worker_rss_mib={k: round(m, 1) for k, m in peaks.items()},
        memory_limit_per_worker=args.memory_limit,
    ), float(total), found


def run_numpy(args):
    u = pattern(np.arange(args.size), np.arange(args.size))
    start = time.perf_counter()
    v = forward(u, args)
    wall = time.perf_counter() - start
    return dict(wall_s=round(wall, 3), peak_rss_mib=round(_peak_rss_mib(), 1)), v


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384, help="image side (default 16384: 1 GiB float32)")
    parser.add_argument("--chunk", type=int, default=2048, help="chunk side (default 2048)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--memory-limit", default="900MiB", help="per worker (default 900MiB < 1 GiB)")
    parser.add_argument("--threads", action="store_true",
                        help="workers as threads of this process (processes=False; faster to start)")
    parser.add_argument("--solve", choices=["cg", "bicgstab"], default=None,
                        help="one implicit step by this Krylov solver instead of the Perona-Malik steps")
    parser.add_argument("--dt", type=float, default=0.5, help="the implicit step's dt (with --solve)")
    parser.add_argument("--tol", type=float, default=1e-6, help="the solver's tolerance (with --solve)")
    parser.add_argument("--window", type=int, default=64, help="side of the sampled windows")
    parser.add_argument("--samples", type=int, default=8, help="random windows besides the fixed ones")
    args = parser.parse_args(argv)

    corners = windows(args.size, args.chunk, min(args.window, args.size), args.samples)
    dask_report, dask_sum, dask_windows = run_dask(args, corners)
    numpy_report, v = run_numpy(args)
    w = args.window
    window_diff = max(float(np.max(np.abs(found - v[r : r + w, c : c + w])))
                      for (r, c), found in zip(corners, dask_windows))
    numpy_sum = float(np.sum(v, dtype=np.float64))
    report = dict(
        size=args.size, dtype="float32", image_mib=args.size * args.size * 4 / 2**20,
        computation=f"implicit_step by {args.solve}, dt {args.dt}, tol {args.tol}" if args.solve
        else f"perona_malik, {args.steps} steps",
        workers=args.workers, dask=dask_report, numpy=numpy_report, windows=len(corners),
        max_abs_diff_windows=window_diff, sum_rel_diff=abs(dask_sum - numpy_sum) / abs(numpy_sum),
    )
    # Both run the same float32 NumPy kernel on every pixel: equal to rounding of the sums. A solve's two runs
    # differ by the reductions' order, within the tolerance.
    bound = 1e-6 if args.solve is None else 10 * args.tol
    report["agree"] = window_diff <= bound and report["sum_rel_diff"] <= bound
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    sys.exit(0 if main()["agree"] else 1)
