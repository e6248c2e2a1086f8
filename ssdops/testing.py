"""Helpers for users testing their own operators.

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
"""
from __future__ import annotations

from collections.abc import Callable

from ._array import Array, namespace, to_numpy
from ._validate import half_precision

__all__ = ["dot_test"]


def dot_test(forward: Callable[[Array], Array], adjoint: Callable[[Array], Array], x: Array, y: Array, *,
             rtol: float | None = None) -> float:
    r"""Check that ``adjoint`` is the adjoint of ``forward``: :math:`\langle Fx, y\rangle = \langle x, F^\top y\rangle`.

    Inner products are summed in at least float32 (a float16 sum overflows and rounds away the answer).

    Parameters
    ----------
    forward : callable
        The linear map :math:`F`, applied to ``x``.
    adjoint : callable
        Its claimed adjoint :math:`F^\top`, applied to ``y``.
    x : array
        A test array in the domain of ``forward`` (draw it at random).
    y : array
        A test array in the range of ``forward``, of ``x``'s library and dtype.
    rtol : float, optional
        The largest relative discrepancy accepted. The default scales with the dtype's precision: 1e-10 in
        float64, 1e-4 in float32, 64 epsilons in float16 and bfloat16 (0.06 and 0.5: a half-precision dot
        test only catches gross errors).

    Returns
    -------
    float
        The relative discrepancy :math:`|a - b| / \max(|a|, |b|)` (0.0 when both are 0).

    Raises
    ------
    AssertionError
        If the discrepancy is above ``rtol`` (the message gives both inner products).
    TypeError
        If ``x`` and ``y`` are not real floating-point arrays of one library and dtype.

    See Also
    --------
    as_pylops : PyLops' ``dottest`` applies to the operator as well.
    gradient : With :func:`divergence`, a pair that passes (``-divergence`` is the adjoint).

    Notes
    -----
    With :math:`a = \langle F x, y \rangle` and :math:`b = \langle x, F^\top y \rangle`,

    .. math:: \frac{|a - b|}{\max(|a|, |b|)} \le \mathrm{rtol}.

    The paper's learned operators are applied with their transposes in the adjoint solves of
    :func:`implicit_step`; this is the test of such a pair.

    References
    ----------
    .. [1] J. F. Claerbout, "Earth Soundings Analysis: Processing versus Inversion", Blackwell, 1992
           (the dot-product test).
    .. [2] Arridge and Hauptmann (2019), eq. (2.11) (the implicit step whose derivative is an adjoint solve).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> rng = np.random.default_rng(0)
    >>> u, p = rng.random((5, 6)), rng.random((2, 5, 6))
    >>> err = ssdops.dot_test(ssdops.gradient, lambda q: -ssdops.divergence(q), u, p)
    >>> err < 1e-12
    True
    >>> try:
    ...     ssdops.dot_test(ssdops.gradient, ssdops.divergence, u, p)    # the sign is wrong
    ... except AssertionError as failure:
    ...     print(str(failure)[:16])
    dot test failed:
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
