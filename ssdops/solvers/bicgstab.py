r"""BiCGSTAB (van der Vorst 1992) for general non-singular systems, batched per image."""
from __future__ import annotations

import itertools

from .common import SolveInfo, add_scaled, all_true, inner, safe_divide, scale_add, settle


def bicgstab(xp, matvec, b, x0, *, tol, maxiter, host_reads=True, inplace=False):
    r"""Solve :math:`A x = b` for a non-symmetric :math:`A` with the stabilised bi-conjugate gradient method.

    Shadow residual :math:`\hat r = r_0`; each iteration takes a BiCG step :math:`\alpha p` and a
    minimal-residual step :math:`\omega s`. Images below ``tol * ||b||`` take zero steps from then on.

    ``inplace=True`` (writable NumPy-like arrays only; ``x0`` is overwritten and ``matvec`` must return a
    fresh array) updates the work vectors in place (``s`` in ``r``'s buffer, the products the scratch of
    the updates that consume them): the solve then holds six vectors and at most one temporary.
    """
    x = x0
    r = b - matvec(x)
    r_hat = xp.asarray(r, copy=True) if inplace else r
    one = xp.ones_like(inner(xp, r, r, inplace))
    rho, alpha, omega = one, one, one
    v = xp.zeros_like(r)
    p = xp.zeros_like(r)
    threshold = (tol * tol) * inner(xp, b, b, inplace)
    for it in itertools.count():
        x, r, p, v, rho, alpha, omega = settle(xp, x, r, p, v, rho, alpha, omega)
        active = inner(xp, r, r, inplace) > threshold
        done = all_true(xp, ~active) if host_reads else None
        if done or it == maxiter:
            return x, SolveInfo(iterations=it, converged=done)
        rho_new = inner(xp, r_hat, r, inplace)
        beta = safe_divide(xp, rho_new, rho) * safe_divide(xp, alpha, omega)
        p = scale_add(xp, add_scaled(xp, p, -omega, v, inplace, scratch=v), beta, r, inplace)
        v = None  # frees the previous product before the next is allocated
        v = matvec(p)
        alpha = xp.where(active, safe_divide(xp, rho_new, inner(xp, r_hat, v, inplace)), xp.zeros_like(one))
        s = add_scaled(xp, r, -alpha, v, inplace)
        r = None
        t = matvec(s)
        omega = xp.where(active, safe_divide(xp, inner(xp, t, s, inplace), inner(xp, t, t, inplace)),
                         xp.zeros_like(one))
        x = add_scaled(xp, add_scaled(xp, x, alpha, p, inplace), omega, s, inplace)
        r = add_scaled(xp, s, -omega, t, inplace, scratch=t)
        t = s = None
        rho = rho_new
