"""Cross-framework agreement: the library behind ``ssdops compare``.

:func:`run` computes the same problems in every installed framework (NumPy, ``array_api_strict``,
PyTorch, JAX eager and under ``jax.jit``, CuPy) on every device, in float32 and float64, and compares
each result with a float64 NumPy reference computed *without* ssdops where possible:

=====================  =========================================================================
operation              reference (float64, host)
=====================  =========================================================================
ssd_apply              ``ssdops.to_scipy(op) @ u`` per image (scipy.sparse CSR)
ssd_transpose_apply    ``A.T @ u`` for ``op.T @ u``
ssd_rmatvec            ``A.T @ u`` for ``op.rmatvec(u)``
filter_step            ``u + W @ u``, W the CSR matrix of ``ssd_from_filters(zeta, 0.1)``
perona_malik           an independent NumPy implementation of the authors' generator
                       (4 steps, dt 0.1, lam 0.2, Dirichlet, ghost_gamma 0: ``np.pad`` stencils)
implicit_step          ``scipy.sparse.linalg.spsolve(I - dt A, u)``, A = divergence_form(gamma)
heat_dirichlet/neumann ``scipy.sparse.linalg.expm_multiply(T L, u)``, L = scipy ``LaplacianNd``
=====================  =========================================================================

Inputs are drawn in float64 and rounded to float32 first, so both precisions solve exactly the same
problem and a float32 difference measures float32 arithmetic only. The relative difference is
``max|x - ref| / max|ref|``. A float64 result more than 1e-10 (relative) away from the reference, a
float32 result more than 1e-4 away, a non-finite value or an exception fails the comparison.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings

import numpy as np

from .. import backends as registry
from ..diffnet.data import PAPER_PM_ARGS
from .bench import machine_info, name_list, targets, write_text

__all__ = ["FRAMEWORKS", "OPERATIONS", "TOLERANCES", "run", "format_table", "main"]

#: The frameworks ``ssdops compare`` runs: the ``compared`` names of the one library table.
FRAMEWORKS = tuple(name for library in registry.LIBRARIES.values() for name in library.compared)
OPERATIONS = ("ssd_apply", "ssd_transpose_apply", "ssd_rmatvec", "filter_step", "perona_malik",
              "implicit_step", "heat_dirichlet", "heat_neumann")
TOLERANCES = {"float64": 1e-10, "float32": 1e-4}
DTYPES = ("float32", "float64")
BATCH = 2
FILTER_DT = 0.1
IMPLICIT_DT = 1.0
HEAT_T = 1.0


# --- problems ---------------------------------------------------------------------------------------
def _data(size, seed):
    """Float64 inputs, exactly representable in float32."""
    rng = np.random.default_rng(seed)

    def f32(a):
        return a.astype(np.float32).astype(np.float64)

    return {
        "d": f32(rng.standard_normal((BATCH, 5, size, size))),
        "u": f32(rng.random((BATCH, size, size))),
        "gamma": f32(0.5 + rng.random((BATCH, size, size))),
    }


def _function(name):
    """The ssdops computation of ``name`` (array arguments only, so that it can be jitted)."""
    import ssdops

    if name == "ssd_apply":
        return lambda d, u: ssdops.SSD(d) @ u
    if name == "ssd_transpose_apply":
        return lambda d, u: ssdops.SSD(d).T @ u
    if name == "ssd_rmatvec":
        return lambda d, u: ssdops.SSD(d).rmatvec(u)
    if name == "filter_step":
        return lambda d, u: ssdops.filter_step(u, d, FILTER_DT)
    if name == "perona_malik":
        return lambda u: ssdops.perona_malik(u, **PAPER_PM_ARGS)
    if name == "implicit_step":
        return lambda gamma, u: ssdops.implicit_step(u, ssdops.divergence_form(gamma, bc="neumann"), IMPLICIT_DT,
                                                     method="cg")
    if name.startswith("heat_"):
        bc = name.removeprefix("heat_")
        return lambda u: ssdops.heat(u, HEAT_T, bc=bc, method="exact")
    raise ValueError(f"unknown operation {name!r}: use some of {OPERATIONS}")


def _arguments(name, data):
    if name in ("ssd_apply", "ssd_transpose_apply", "ssd_rmatvec", "filter_step"):
        return data["d"], data["u"]
    if name == "implicit_step":
        return data["gamma"], data["u"]
    return (data["u"],)


def _perona_malik_reference(u, *, steps, dt, lam, bc, ghost_gamma):
    """The authors' generator in plain NumPy: backward-difference |grad u|^2 against zero ghosts, rational
    diffusivity, face diffusivity the mean of the two pixels' (ghosts: ``ghost_gamma``), explicit steps."""
    assert bc == "dirichlet"
    axes = [(0, 0)] * (u.ndim - 2)
    for _ in range(steps):
        up = np.pad(u, axes + [(1, 1), (1, 1)])  # zero Dirichlet ghosts
        c = up[..., 1:-1, 1:-1]
        s2 = (c - up[..., :-2, 1:-1]) ** 2 + (c - up[..., 1:-1, :-2]) ** 2
        gamma = 1.0 / (1.0 + s2 / lam**2)
        gp = np.pad(gamma, axes + [(1, 1), (1, 1)], constant_values=ghost_gamma)
        g_c = gp[..., 1:-1, 1:-1]
        flux = 0.0
        for (sy, sx) in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            g_n = gp[..., 1 + sy:gp.shape[-2] - 1 + sy, 1 + sx:gp.shape[-1] - 1 + sx]
            u_n = up[..., 1 + sy:up.shape[-2] - 1 + sy, 1 + sx:up.shape[-1] - 1 + sx]
            flux = flux + 0.5 * (g_c + g_n) * (u_n - c)
        u = c + dt * flux
    return u


def reference(name, data):
    """The float64 NumPy reference of ``name`` (see the module docstring), shape ``(BATCH, n, n)``."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spl

    import ssdops

    u = data["u"]
    n = u.shape[-1]
    out = []
    if name == "perona_malik":
        return _perona_malik_reference(u, **PAPER_PM_ARGS)
    for b in range(u.shape[0]):
        x = u[b].ravel()
        if name in ("ssd_apply", "ssd_transpose_apply", "ssd_rmatvec"):
            A = ssdops.to_scipy(ssdops.SSD(data["d"][b]))
            y = A @ x if name == "ssd_apply" else A.T @ x
        elif name == "filter_step":
            y = x + ssdops.to_scipy(ssdops.ssd_from_filters(data["d"][b], FILTER_DT)) @ x
        elif name == "implicit_step":
            A = ssdops.to_scipy(ssdops.divergence_form(data["gamma"][b], bc="neumann"))
            y = spl.spsolve((sp.identity(n * n, format="csc") - IMPLICIT_DT * A).tocsc(), x)
        elif name.startswith("heat_"):
            L = spl.LaplacianNd((n, n), boundary_conditions=name.removeprefix("heat_"), dtype=np.float64)
            y = spl.expm_multiply(HEAT_T * L.tosparse().tocsr(), x)
        else:
            raise ValueError(f"unknown operation {name!r}: use some of {OPERATIONS}")
        out.append(np.asarray(y).reshape(n, n))
    return np.stack(out)


# --- running -----------------------------------------------------------------------------------------
def _median_seconds(call, sync, repeats):
    samples = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        sync(call())
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _to_numpy(x):
    import ssdops

    return np.asarray(ssdops.to_numpy(x), dtype=np.float64)


def run(*, size=64, seed=0, frameworks=FRAMEWORKS, operations=OPERATIONS, dtypes=DTYPES, generic=False,
        repeats=3, progress=None):
    """Compare every framework and device with the float64 reference; returns a list of records.

    Each record: ``operation, framework, device, dtype, max_abs, max_rel, ms, tolerance, passed, error``.
    ``generic=True`` forces the generic array-API path (``ssdops.backends.use_generic``) for the run.
    """
    for name in operations:
        if name not in OPERATIONS:
            raise ValueError(f"unknown operation {name!r}: use some of {OPERATIONS}")
    wanted = [("jax-eager" if f == "jax" else f) for f in frameworks]
    found = targets(wanted, jax_x64="float64" in dtypes)
    data = _data(size, seed)
    records = []
    with registry.use_generic(generic or registry.is_generic()):
        for name in operations:
            ref = reference(name, data)
            scale = float(np.max(np.abs(ref)))
            args64 = _arguments(name, data)
            for target in found:
                for dtype in dtypes:
                    record = dict(operation=name, framework=target.backend, device=target.device, dtype=dtype,
                                  size=size, batch=BATCH, max_abs=None, max_rel=None, ms=None,
                                  tolerance=TOLERANCES[dtype], passed=False, error=None)
                    try:
                        args = [target.asarray(a.astype(dtype)) for a in args64]
                        fn = target.jit(_function(name))
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            result = fn(*args)  # also the warm-up (compilation under jax.jit)
                            target.sync(result)
                            seconds = _median_seconds(lambda: fn(*args), target.sync, repeats)
                        out = _to_numpy(result)
                        if out.shape != ref.shape:
                            raise ValueError(f"result of shape {out.shape}, expected {ref.shape}")
                        max_abs = float(np.max(np.abs(out - ref)))
                        record.update(max_abs=max_abs, max_rel=max_abs / scale if scale > 0 else max_abs,
                                      ms=seconds * 1e3)
                        record["passed"] = bool(np.isfinite(record["max_rel"]) and
                                                record["max_rel"] <= TOLERANCES[dtype])
                    except Exception as err:
                        record["error"] = f"{type(err).__name__}: {err}"
                    records.append(record)
                    if progress:
                        progress(record)
    return records


# --- output --------------------------------------------------------------------------------------------
def format_table(records):
    """A fixed-width table: operation, framework, device, dtype, max abs / rel difference, ms, status."""
    header = ["operation", "framework", "device", "dtype", "max abs diff", "max rel diff", "ms", "status"]
    rows = []
    for r in records:
        rows.append([
            r["operation"], r["framework"], r["device"], r["dtype"],
            "-" if r["max_abs"] is None else f"{r['max_abs']:.2e}",
            "-" if r["max_rel"] is None else f"{r['max_rel']:.2e}",
            "-" if r["ms"] is None else f"{r['ms']:.3f}",
            "ok" if r["passed"] else ("ERROR" if r["error"] else "FAIL"),
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    right = {"max abs diff", "max rel diff", "ms"}
    lines = ["  ".join(c.rjust(w) if header[i] in right else c.ljust(w) for i, (c, w) in
                       enumerate(zip(row, widths))).rstrip() for row in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary(records):
    """(passed, message): whether every result is within tolerance, and a sentence saying so."""
    failed = [r for r in records if not r["passed"]]
    if not records:
        return False, "FAILED: nothing was compared"
    if not failed:
        frameworks = sorted({r["framework"] for r in records})
        return True, (f"all {len(records)} results agree with the float64 reference "
                      f"(float64 <= {TOLERANCES['float64']:g}, float32 <= {TOLERANCES['float32']:g} relative; "
                      f"frameworks: {', '.join(frameworks)})")
    lines = [f"FAILED: {len(failed)} of {len(records)} results differ from the float64 reference beyond "
             f"tolerance (float64 {TOLERANCES['float64']:g}, float32 {TOLERANCES['float32']:g} relative):"]
    for r in failed:
        what = r["error"] or f"max rel diff {r['max_rel']:.3g} > {r['tolerance']:g}"
        lines.append(f"  {r['operation']} {r['framework']} {r['device']} {r['dtype']}: {what}")
    return False, "\n".join(lines)


def add_arguments(parser):
    """The options of ``ssdops compare``."""
    parser.add_argument("--size", type=int, default=64, help="grid side N (a batch of 2 N x N images; default 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the inputs (default 0)")
    parser.add_argument("--frameworks", type=name_list(FRAMEWORKS), default=FRAMEWORKS,
                        help="comma-separated frameworks (default: every installed one of "
                             f"{','.join(FRAMEWORKS)}; 'jax' runs eagerly, 'jax.jit' jitted)")
    parser.add_argument("--ops", type=name_list(OPERATIONS), default=OPERATIONS,
                        help=f"comma-separated operations (default: all of {','.join(OPERATIONS)})")
    parser.add_argument("--dtypes", type=name_list(DTYPES), default=DTYPES, help="default float32,float64")
    parser.add_argument("--generic", action="store_true",
                        help="force the generic array-API path (no fast paths from ssdops.backends)")
    parser.add_argument("--json", metavar="PATH", help="also write records, verdict and machine info as JSON "
                                                       "('-': stdout)")
    return parser


def run_from_args(args):
    """Run ``ssdops compare`` with parsed ``args``; prints the table and verdict; returns the exit status."""
    if args.size < 2:
        raise SystemExit("ssdops compare: --size must be at least 2")
    records = run(size=args.size, seed=args.seed, frameworks=args.frameworks, operations=args.ops,
                  dtypes=args.dtypes, generic=args.generic)
    passed, message = summary(records)
    out = sys.stderr if args.json == "-" else sys.stdout
    print(format_table(records), file=out)
    print("", file=out)
    print(message, file=out)
    if args.json:
        found = targets([("jax-eager" if f == "jax" else f) for f in args.frameworks])
        payload = {
            "machine": machine_info(found),
            "config": dict(size=args.size, seed=args.seed, batch=BATCH, frameworks=args.frameworks,
                           operations=args.ops, dtypes=args.dtypes, generic=args.generic,
                           tolerances=TOLERANCES),
            "passed": passed,
            "frameworks": sorted({r["framework"] for r in records}),
            "records": records,
        }
        write_text(args.json, json.dumps(payload, indent=2))
    return 0 if passed else 1


def main(argv=None):
    """``python -m ssdops.tools.compare``: the same as ``ssdops compare``."""
    parser = add_arguments(argparse.ArgumentParser(
        prog="ssdops compare", description="Check that every installed framework and device agrees."))
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
