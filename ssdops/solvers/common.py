"""What the Krylov solvers share: per-image inner products, safe division, the result record."""
from __future__ import annotations

from dataclasses import dataclass

from .. import backends
from .._array import to_numpy


@dataclass(frozen=True)
class SolveInfo:
    """Outcome of an iterative solve: iterations run, whether every image converged (``None``: not
    checked, the solve ran without host reads)."""

    iterations: int
    converged: bool | None


#: Elements of the product of one slab of rows in :func:`inner` with ``inplace`` (no image-sized temporary).
INNER_SLAB_ELEMENTS = 1 << 16


def inner(xp, a, b, inplace=False):
    """Per-image inner product, shape ``(..., 1, 1)`` so that it broadcasts against images; with ``inplace``
    (NumPy-like arrays) summed over slabs of rows, so that the products never make an image-sized temporary."""
    if not inplace:
        return xp.sum(a * b, axis=(-2, -1), keepdims=True)
    n = a.shape[-2] * a.shape[-1]
    batch = tuple(a.shape[:-2])
    # Flat images (a view where each image's two axes merge, as for the solvers' own arrays): the 3-D and 1-D
    # solves hand the solvers one row per image.
    a, b = xp.reshape(a, batch + (n,)), xp.reshape(b, tuple(b.shape[:-2]) + (n,))
    step = max(1, INNER_SLAB_ELEMENTS // max(1, a.size // max(1, n)))
    total = None
    for i in range(0, n, step):
        part = xp.sum(a[..., i : i + step] * b[..., i : i + step], axis=-1)
        total = part if total is None else total + part
    return xp.reshape(total, tuple(total.shape) + (1, 1))


def safe_divide(xp, num, den):
    """``num / den`` where ``den != 0``, else 0 (a converged or broken-down image takes no step)."""
    nonzero = den != 0
    return xp.where(nonzero, num / xp.where(nonzero, den, xp.ones_like(den)), xp.zeros_like(num))


def add_scaled(xp, y, a, x, inplace, scratch=None):
    """``y + a * x``; with ``inplace`` written into ``y`` (a writable NumPy-like array), ``a * x`` formed in
    ``scratch`` when given (an array of ``x``'s shape that may be overwritten; ``x`` itself included), else in
    one temporary."""
    if not inplace:
        return y + a * x
    if scratch is None:
        y += a * x
        return y
    if scratch is not x:
        scratch[...] = x
    scratch *= a
    y += scratch
    return y


def scale_add(xp, y, a, x, inplace):
    """``x + a * y``; with ``inplace`` written into ``y`` (no temporary)."""
    if not inplace:
        return x + a * y
    y *= a
    y += x
    return y


def settle(xp, *arrays):
    """``arrays`` computed and kept in (distributed) memory by their library's adapter
    (:meth:`ssdops.backends.Adapter.persist`: dask's ``persist``; the arrays themselves elsewhere), so that
    the next iteration's graph starts from values, not from every earlier iteration's graph. One call per
    iteration, before the convergence read."""
    return backends.adapter_for(arrays[0]).persist(*arrays)


def all_true(xp, mask) -> bool:
    return bool(to_numpy(xp.all(mask)))
