r"""Conjugate gradients for symmetric positive definite systems (Hestenes-Stiefel), batched per image."""
from __future__ import annotations

import itertools

from .common import SolveInfo, add_scaled, all_true, inner, safe_divide, scale_add, settle


def cg(xp, matvec, b, x0, *, tol, maxiter, host_reads=True, inplace=False):
    r"""Solve :math:`A x = b` with :math:`A` symmetric positive definite.

    Per image: :math:`\alpha = r^\top r / p^\top A p`, :math:`x \mathrel{+}= \alpha p`,
    :math:`r \mathrel{-}= \alpha A p`, :math:`p = r + (r_{new}^\top r_{new} / r^\top r) p`.
    Images whose residual is below ``tol * ||b||`` take zero steps from then on.

    ``inplace=True`` (writable NumPy-like arrays only; ``x0`` is overwritten and ``matvec`` must return a
    fresh array) updates the work vectors in place: the solve then holds its four vectors (the product
    ``A p`` is the scratch of the updates) and slabs of products.
    """
    x = x0
    r = b - matvec(x)
    p = xp.asarray(r, copy=True) if inplace else r
    rr = inner(xp, r, r, inplace)
    threshold = (tol * tol) * inner(xp, b, b)
    for it in itertools.count():
        x, r, p, rr = settle(xp, x, r, p, rr)
        active = rr > threshold
        done = all_true(xp, ~active) if host_reads else None
        if done or it == maxiter:
            return x, SolveInfo(iterations=it, converged=done)
        Ap = None  # frees the previous product before the next is allocated
        Ap = matvec(p)
        alpha = xp.where(active, safe_divide(xp, rr, inner(xp, p, Ap, inplace)), xp.zeros_like(rr))
        r = add_scaled(xp, r, -alpha, Ap, inplace, scratch=Ap)  # A p is not needed after these two
        x = add_scaled(xp, x, alpha, p, inplace, scratch=Ap)
        rr_new = inner(xp, r, r, inplace)
        p = scale_add(xp, p, safe_divide(xp, rr_new, rr), r, inplace)
        rr = rr_new
