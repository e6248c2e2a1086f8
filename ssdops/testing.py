"""Helpers for users testing their own operators."""
from __future__ import annotations

from ._array import namespace, to_numpy

__all__ = ["dot_test"]


def dot_test(forward, adjoint, x, y, *, rtol=None):
    r"""Check that ``adjoint`` is the adjoint of ``forward``: :math:`\langle F x, y\rangle = \langle x, F^\top y\rangle`.

    ``x`` and ``y`` are test arrays in the domain and range of ``forward`` (draw them at random). Returns
    the relative discrepancy :math:`|a - b| / \max(|a|, |b|)` and raises AssertionError above ``rtol``
    (default 1e-4 in float32, 1e-10 in float64).

    >>> import numpy as np, ssdops
    >>> rng = np.random.default_rng(0)
    >>> u, p = rng.random((5, 6)), rng.random((2, 5, 6))
    >>> err = ssdops.dot_test(ssdops.gradient, lambda q: -ssdops.divergence(q), u, p)
    >>> err < 1e-12
    True
    """
    xp = namespace(x, y)
    a = float(to_numpy(xp.sum(forward(x) * y)))
    b = float(to_numpy(xp.sum(x * adjoint(y))))
    if rtol is None:
        rtol = 1e-4 if x.dtype == xp.float32 else 1e-10
    scale = max(abs(a), abs(b))
    err = abs(a - b) / scale if scale > 0 else 0.0
    if err > rtol:
        raise AssertionError(f"dot test failed: <F x, y> = {a!r}, <x, F^T y> = {b!r}, relative error {err:.3g} > {rtol:g}")
    return err
