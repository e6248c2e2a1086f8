r"""Conjugate gradients for symmetric positive definite systems (Hestenes-Stiefel), batched per image."""
from __future__ import annotations

import itertools

from .common import SolveInfo, all_true, inner, safe_divide, settle


def cg(xp, matvec, b, x0, *, tol, maxiter, host_reads=True):
    r"""Solve :math:`A x = b` with :math:`A` symmetric positive definite.

    Per image: :math:`\alpha = r^\top r / p^\top A p`, :math:`x \mathrel{+}= \alpha p`,
    :math:`r \mathrel{-}= \alpha A p`, :math:`p = r + (r_{new}^\top r_{new} / r^\top r) p`.
    Images whose residual is below ``tol * ||b||`` take zero steps from then on.
    """
    x = x0
    r = b - matvec(x)
    p = r
    rr = inner(xp, r, r)
    threshold = (tol * tol) * inner(xp, b, b)
    for it in itertools.count():
        x, r, p, rr = settle(xp, x, r, p, rr)
        active = rr > threshold
        done = all_true(xp, ~active) if host_reads else None
        if done or it == maxiter:
            return x, SolveInfo(iterations=it, converged=done)
        Ap = matvec(p)
        alpha = xp.where(active, safe_divide(xp, rr, inner(xp, p, Ap)), xp.zeros_like(rr))
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = inner(xp, r, r)
        p = r + safe_divide(xp, rr_new, rr) * p
        rr = rr_new
