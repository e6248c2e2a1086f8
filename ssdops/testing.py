"""Helpers for users testing their own operators."""
from __future__ import annotations

from ._array import namespace, to_numpy
from ._validate import half_precision

__all__ = ["dot_test"]


def dot_test(forward, adjoint, x, y, *, rtol=None):
    r"""Check that ``adjoint`` is the adjoint of ``forward``: :math:`\langle F x, y\rangle = \langle x, F^\top y\rangle`.

    ``x`` and ``y`` are test arrays in the domain and range of ``forward`` (draw them at random). Returns
    the relative discrepancy :math:`|a - b| / \max(|a|, |b|)` and raises AssertionError above ``rtol``.
    The default scales with the dtype's precision: 1e-10 in float64, 1e-4 in float32, 64 epsilons in
    float16 and bfloat16 (0.06 and 0.5: a half-precision dot test only catches gross errors). Inner
    products are summed in at least float32 (a float16 sum overflows and rounds away the answer).

    >>> import numpy as np, ssdops
    >>> rng = np.random.default_rng(0)
    >>> u, p = rng.random((5, 6)), rng.random((2, 5, 6))
    >>> err = ssdops.dot_test(ssdops.gradient, lambda q: -ssdops.divergence(q), u, p)
    >>> err < 1e-12
    True
    """
    xp = namespace(x, y)

    def inner(a, b):
        if half_precision(xp, a.dtype):
            a, b = xp.astype(a, xp.float32), xp.astype(b, xp.float32)
        return float(to_numpy(xp.sum(a * b)))

    a = inner(forward(x), y)
    b = inner(x, adjoint(y))
    if rtol is None:
        eps = float(xp.finfo(x.dtype).eps)
        rtol = 1e-10 if eps < 1e-10 else max(1e-4, 64 * eps)
    scale = max(abs(a), abs(b))
    err = abs(a - b) / scale if scale > 0 else 0.0
    if not err <= rtol:
        raise AssertionError(
            f"dot test failed: <F x, y> = {a!r}, <x, F^T y> = {b!r}, relative error {err:.3g} > {rtol:g}"
        )
    return err
