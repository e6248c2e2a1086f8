r"""BiCGSTAB (van der Vorst 1992) for general non-singular systems, batched per image."""
from __future__ import annotations

import itertools

from .common import SolveInfo, all_true, inner, safe_divide, settle


def bicgstab(xp, matvec, b, x0, *, tol, maxiter, host_reads=True):
    r"""Solve :math:`A x = b` for a non-symmetric :math:`A` with the stabilised bi-conjugate gradient method.

    Shadow residual :math:`\hat r = r_0`; each iteration takes a BiCG step :math:`\alpha p` and a
    minimal-residual step :math:`\omega s`. Images below ``tol * ||b||`` take zero steps from then on.
    """
    x = x0
    r = b - matvec(x)
    r_hat = r
    one = xp.ones_like(inner(xp, r, r))
    rho, alpha, omega = one, one, one
    v = xp.zeros_like(r)
    p = xp.zeros_like(r)
    threshold = (tol * tol) * inner(xp, b, b)
    for it in itertools.count():
        x, r, p, v, rho, alpha, omega = settle(xp, x, r, p, v, rho, alpha, omega)
        active = inner(xp, r, r) > threshold
        done = all_true(xp, ~active) if host_reads else None
        if done or it == maxiter:
            return x, SolveInfo(iterations=it, converged=done)
        rho_new = inner(xp, r_hat, r)
        beta = safe_divide(xp, rho_new, rho) * safe_divide(xp, alpha, omega)
        p = r + beta * (p - omega * v)
        v = matvec(p)
        alpha = xp.where(active, safe_divide(xp, rho_new, inner(xp, r_hat, v)), xp.zeros_like(one))
        s = r - alpha * v
        t = matvec(s)
        omega = xp.where(active, safe_divide(xp, inner(xp, t, s), inner(xp, t, t)), xp.zeros_like(one))
        x = x + alpha * p + omega * s
        r = s - omega * t
        rho = rho_new
