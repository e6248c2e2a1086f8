"""What the Krylov solvers share: per-image inner products, safe division, the result record."""
from __future__ import annotations

from dataclasses import dataclass

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


def all_true(xp, mask) -> bool:
    return bool(to_numpy(xp.all(mask)))
