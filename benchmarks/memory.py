"""Peak temporary memory of ssdops' NumPy paths, in input-image sizes (issue #23, item 4).

Each case runs once under :mod:`tracemalloc` (NumPy reports its array buffers to it); the figure is the peak
of traced memory during the call above what was allocated before it, divided by the bytes of one input image
(the result counts: ``op @ u`` is 1.0x). The memory that the call's result keeps alive is reported too:
``result.base`` must be ``None`` or no larger than the result (no crop view of a bigger buffer). Buffers that
C/C++ code allocates outside NumPy (pocketfft's scratch inside ``scipy.fft``) are not traced.

    python benchmarks/memory.py                   # 2048² and 128³ float32, about a minute
    python benchmarks/memory.py --size2 4096 --size3 160 --markdown
"""
from __future__ import annotations

import argparse
import gc
import platform
import sys
import tracemalloc

import numpy as np

import ssdops
from ssdops._kernels import krylov_solve

# (name, target ratio as a function of the grid dimension)
# (case: target ratio per grid dimension). The Krylov targets are the solver's work vectors plus two; "op @ u"
# is its result plus the blocked kernel's per-thread scratch (1 MiB a thread, 0.03 of a 4096² image).
TARGETS = {
    "heat (exact)": {2: 4, 3: 8},
    "implicit_step spectral": {2: 4, 3: 8},
    "CG solve (krylov_solve)": {2: 6, 3: 6},
    "BiCGSTAB solve (krylov_solve)": {2: 9, 3: 9},
    "implicit_step cg": {2: 6, 3: 6},
    "implicit_step bicgstab": {2: 9, 3: 9},
    "perona_malik_step": {2: 4, 3: 4},
    "laplacian": {2: 6, 3: 8},
    "divergence_form": {2: 6, 3: 8},
    "op @ u": {2: 1.5, 3: 1.5},
}


def measure(fn, image_bytes):
    """``(peak ratio, retained ratio, base ratio)`` of one call of ``fn``: the traced peak during the call and
    the traced memory still held after it (the result included), in units of ``image_bytes``, and the size of
    the result's base buffer relative to the result (0 when it owns its memory)."""
    gc.collect()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        if started:
            tracemalloc.stop()
    arrays = result.diagonals if isinstance(result, ssdops.SSD) else result
    base = 0.0 if arrays.base is None else arrays.base.nbytes / arrays.nbytes
    return (peak - before) / image_bytes, (current - before) / image_bytes, base


def cases(u, ndim):
    """``(name, function)`` of every case on the image or volume ``u``."""
    grid = u.shape
    rng = np.random.default_rng(1)
    gamma = (0.5 + rng.random(grid)).astype(u.dtype)
    A = ssdops.divergence_form(gamma, ndim=ndim)
    L = ssdops.laplacian(grid, like=u)
    # A fixed number of iterations (warn, not raise): the memory of a solve does not grow with iterations.
    krylov = dict(tol=1e-3, maxiter=8, on_failure="warn")

    def solve(method):
        # The solve alone, as implicit_step dispatches it on NumPy (without its checks of the operator).
        return krylov_solve(np, u=u, diagonals=A.diagonals, offsets=A.offsets, dt=0.5, method=method, x0=None,
                            **krylov)

    return [
        ("CG solve (krylov_solve)", lambda: solve("cg")),
        ("BiCGSTAB solve (krylov_solve)", lambda: solve("bicgstab")),
        ("heat (exact)", lambda: ssdops.heat(u, 2.0, ndim=ndim)),
        ("implicit_step spectral", lambda: ssdops.implicit_step(u, L, 0.5, method="spectral")),
        ("implicit_step cg", lambda: ssdops.implicit_step(u, A, 0.5, method="cg", **krylov)),
        ("implicit_step bicgstab", lambda: ssdops.implicit_step(u, A, 0.5, method="bicgstab", **krylov)),
        ("perona_malik_step", lambda: ssdops.perona_malik_step(u, dt=0.1, lam=0.2, ndim=ndim)),
        ("laplacian", lambda: ssdops.laplacian(grid, like=u)),
        ("divergence_form", lambda: ssdops.divergence_form(gamma, ndim=ndim)),
        ("op @ u", lambda: A @ u),
    ]


def run(size2=2048, size3=128, dtype="float32"):
    """One record per case and grid dimension: ``dict(case, ndim, shape, peak, retained, base, target)``."""
    import warnings

    records = []
    for ndim, shape in ((2, (size2, size2)), (3, (size3,) * 3)):
        u = np.random.default_rng(0).random(shape).astype(dtype)
        for name, fn in cases(u, ndim):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ssdops.ConvergenceWarning)
                fn()  # warm-up: imports and caches of the first call are not temporaries
                peak, retained, base = measure(fn, u.nbytes)
            records.append(dict(case=name, ndim=ndim, shape=shape, peak=peak, retained=retained, base=base,
                                target=TARGETS[name][ndim]))
    return records


def machine():
    import scipy

    return (f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
            f"NumPy {np.__version__}, SciPy {scipy.__version__}, ssdops {ssdops.__version__}")


def table(records):
    lines = ["| case | grid | peak (images) | target | result holds (images) | result.base / result |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in records:
        grid = "x".join(map(str, r["shape"]))
        flag = "" if r["peak"] <= r["target"] else " (over)"
        lines.append(f"| {r['case']} | {grid} | {r['peak']:.2f}{flag} | {r['target']} | {r['retained']:.2f} | "
                     f"{r['base']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size2", type=int, default=2048, help="side of the 2-D image (default 2048)")
    parser.add_argument("--size3", type=int, default=128, help="side of the 3-D volume (default 128)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--markdown", action="store_true", help="print the machine line too")
    args = parser.parse_args(argv)
    records = run(args.size2, args.size3, args.dtype)
    if args.markdown:
        print(f"Machine: {machine()}\n")
    print(table(records))
    over = [r for r in records if r["peak"] > r["target"] or r["base"] > 1]
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
