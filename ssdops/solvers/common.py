"""What the Krylov solvers share: per-image inner products, safe division, the result record."""
from __future__ import annotations

from dataclasses import dataclass

from array_api_compat import is_dask_namespace

from .._array import to_numpy


@dataclass(frozen=True)
class SolveInfo:
    """Outcome of an iterative solve: iterations run, whether every image converged (``None``: not
    checked, the solve ran without host reads)."""

    iterations: int
    converged: bool | None


def inner(xp, a, b):
    """Per-image inner product, shape ``(..., 1, 1)`` so that it broadcasts against images."""
    return xp.sum(a * b, axis=(-2, -1), keepdims=True)


def safe_divide(xp, num, den):
    """``num / den`` where ``den != 0``, else 0 (a converged or broken-down image takes no step)."""
    nonzero = den != 0
    return xp.where(nonzero, num / xp.where(nonzero, den, xp.ones_like(den)), xp.zeros_like(num))


def settle(xp, *arrays):
    """``arrays`` with a dask graph computed and kept in (distributed) memory (``dask.persist``), so that
    the next iteration's host read does not recompute every earlier iteration; other libraries' arrays
    unchanged. One call per iteration, before the convergence read."""
    if not is_dask_namespace(xp):
        return arrays
    import dask

    return dask.persist(*arrays)


def all_true(xp, mask) -> bool:
    return bool(to_numpy(xp.all(mask)))
