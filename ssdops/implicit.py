r"""Implicit (backward Euler) diffusion steps: solve :math:`(I - \Delta t\,A)\,x = u` (paper eq. 2.11).

Methods
-------
``"spectral"``  exact, by a DCT (Neumann) or DST (Dirichlet), for ``c * laplacian(bc)``, c a number.
``"cg"``        conjugate gradients: for symmetric :math:`A` with :math:`I - \Delta t A` positive definite
                (every ``divergence_form`` with non-negative gamma and :math:`\Delta t > 0`).
``"bicgstab"``  BiCGSTAB for non-symmetric :math:`A`.
``"auto"``      the first that applies, in that order (:func:`select_method` says which).

Differentiation: in PyTorch and JAX the derivative is an adjoint solve, never a backward pass through the
iterations. With :math:`x = (I - \Delta t A)^{-1} u` and an output cotangent :math:`\bar x`, solve
:math:`(I - \Delta t A^\top) w = \bar x`; then :math:`\bar u = w` and the cotangent of every parameter
:math:`\theta` of :math:`\Delta t A` (diagonals, :math:`\Delta t`) is
:math:`w^\top \partial_\theta(\Delta t A(\theta)) x` (only at the stencil's non-zeros).
"""
from __future__ import annotations

import warnings

import numpy as np

from ._array import is_traced, namespace, to_numpy
from .analysis import is_symmetric
from .solvers import bicgstab, cg
from .spectral import apply_laplacian_function
from .ssd import apply_generic, apply_transpose_generic

__all__ = ["ConvergenceError", "ConvergenceWarning", "implicit_step", "select_method"]

METHODS = ("auto", "spectral", "cg", "bicgstab")
_KRYLOV = {"cg": cg, "bicgstab": bicgstab}


class ConvergenceError(RuntimeError):
    """An iterative solve stopped before reaching its tolerance."""


class ConvergenceWarning(RuntimeWarning):
    """Issued instead of :class:`ConvergenceError` with ``on_failure="warn"``."""


def select_method(op):
    """The method ``implicit_step(..., method="auto")`` uses for ``op``.

    ``"spectral"`` for a (scaled) :func:`ssdops.laplacian`; ``"cg"`` for an operator tagged symmetric, or
    found symmetric by :func:`ssdops.is_symmetric` when untagged (one value check on the host, skipped under
    ``jax.jit``, where an untagged operator gets ``"bicgstab"``); ``"bicgstab"`` otherwise.

    >>> import numpy as np, ssdops
    >>> ssdops.select_method(ssdops.divergence_form(np.ones((4, 4))))
    'cg'
    """
    if op._laplacian is not None:
        return "spectral"
    if op.symmetric is not None:
        return "cg" if op.symmetric else "bicgstab"
    if is_traced(op.diagonals):
        return "bicgstab"
    return "cg" if is_symmetric(op) else "bicgstab"


def _default_tol(xp, dtype):
    return 1e-6 if dtype == xp.float32 else 1e-12


def _relative_residual(xp, x, u, diagonals, offsets, dt, transpose=False):
    """max over images of ||u - (x - dt A x)|| / ||u|| (a Python float; 0 for u = 0 and x = 0)."""
    apply = apply_transpose_generic if transpose else apply_generic
    r = u - (x - dt * apply(xp, diagonals, offsets, x))
    rn = xp.sqrt(xp.sum(r * r, axis=(-2, -1)))
    un = xp.sqrt(xp.sum(u * u, axis=(-2, -1)))
    ratio = xp.where(un > 0, rn / xp.where(un > 0, un, xp.ones_like(un)), rn)
    return float(to_numpy(xp.max(ratio)))


def _report(method, residual, tol, iterations, on_failure):
    message = (
        f"implicit_step did not converge: {method} reached a relative residual of {residual:.3g} "
        f"(tol {tol:g}) after {iterations} iterations; raise maxiter, loosen tol or reduce dt"
    )
    if on_failure == "raise":
        raise ConvergenceError(message)
    warnings.warn(message, ConvergenceWarning, stacklevel=3)


def _krylov_solve(xp, u, diagonals, offsets, dt, settings, transpose=False):
    """Generic batched solve of (I - dt A) x = u (or with A^T); u and diagonals share the batch shape."""
    method, tol, maxiter, on_failure, x0 = settings
    apply = apply_transpose_generic if transpose else apply_generic

    def matvec(x):
        return x - dt * apply(xp, diagonals, offsets, x)

    x0 = xp.zeros_like(u) if x0 is None else x0 + xp.zeros_like(u)
    x, info = _KRYLOV[method](xp, matvec, u, x0, tol=tol, maxiter=maxiter)
    if not info.converged:
        residual = _relative_residual(xp, x, u, diagonals, offsets, dt, transpose)
        _report(method, residual, tol, info.iterations, on_failure)
    return x


def _torch_solve(u, diagonals, offsets, dt, settings):
    import torch
    from torch.autograd.function import once_differentiable

    xp = namespace(u)

    class ImplicitSolve(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u, diagonals, dt):
            x = _krylov_solve(xp, u, diagonals, offsets, dt, settings)
            ctx.save_for_backward(x, diagonals, dt)
            return x

        @staticmethod
        @once_differentiable
        def backward(ctx, grad_x):
            x, diagonals, dt = ctx.saved_tensors
            adjoint_settings = settings[:4] + (None,)
            w = _krylov_solve(xp, grad_x, diagonals, offsets, dt, adjoint_settings, transpose=True)
            wanted = ctx.needs_input_grad[1:]
            grads = [None, None]
            if any(wanted):
                with torch.enable_grad():
                    d = diagonals.detach().requires_grad_(wanted[0])
                    t = dt.detach().requires_grad_(wanted[1])
                    r = t * apply_generic(xp, d, offsets, x)
                    inputs = [v for v, want in zip((d, t), wanted) if want]
                    found = iter(torch.autograd.grad(r, inputs, w))
                    grads = [next(found) if want else None for want in wanted]
            return (w, *grads)

    if not isinstance(dt, torch.Tensor):
        dt = torch.tensor(dt, dtype=u.dtype, device=u.device)
    return ImplicitSolve.apply(u, diagonals, dt)


def _jax_solve(u, diagonals, offsets, dt, settings):
    import jax
    import jax.numpy as jnp
    from jax.scipy.sparse.linalg import bicgstab as jax_bicgstab
    from jax.scipy.sparse.linalg import cg as jax_cg

    method, tol, maxiter, on_failure, x0 = settings
    symmetric = method == "cg"
    solver = jax_cg if symmetric else jax_bicgstab

    def solve(matvec, b):
        return solver(matvec, b, tol=tol, atol=0.0, maxiter=maxiter)[0]

    def solve_one(u1, d1, dt):
        def matvec(x):
            return x - dt * apply_generic(jnp, d1, offsets, x)

        return jax.lax.custom_linear_solve(
            matvec, u1, solve, transpose_solve=None if symmetric else solve, symmetric=symmetric
        )

    shape = u.shape
    K, H, W = diagonals.shape[-3:]
    x = jax.vmap(solve_one, in_axes=(0, 0, None))(
        jnp.reshape(u, (-1, H, W)), jnp.reshape(diagonals, (-1, K, H, W)), dt
    )
    return jnp.reshape(x, shape)


def implicit_step(u, op, dt, *, method="auto", tol=None, maxiter=None, on_failure="raise", x0=None):
    r"""One backward-Euler step: the solution :math:`x` of :math:`(I - \Delta t\,A)\,x = u`, per image.

    Parameters
    ----------
    u : array ``(..., H, W)``
    op : SSD
        The operator :math:`A`; its batch axes broadcast against ``u``'s.
    dt : float or 0-d array
    method : {"auto", "spectral", "cg", "bicgstab"}
        See the module documentation; ``"spectral"`` needs a (scaled) :func:`ssdops.laplacian`.
    tol : float, optional
        Relative residual :math:`\|u - (I - \Delta t A)x\| / \|u\|` per image; default 1e-6 in float32,
        1e-12 in float64.
    maxiter : int, optional
        Default ``max(100, min(2 H W, 20000))``.
    on_failure : {"raise", "warn"}
        Non-convergence raises :class:`ConvergenceError` (or warns :class:`ConvergenceWarning` and returns
        the last iterate), naming the residual reached.
    x0 : array, optional
        Initial guess (default zero; PyTorch gradients and JAX ignore it).

    Notes
    -----
    The Krylov loops run in the array's own namespace and device; each iteration reads one boolean (all
    images converged?) on the host. Traced JAX values (under ``jit``, ``grad``, ``vmap``) are solved by
    ``jax.scipy.sparse.linalg.cg`` / ``bicgstab`` under ``jax.lax.custom_linear_solve``, vmapped over the
    batch; there no convergence check is possible (values are unknown while tracing), so check
    a result eagerly, or its residual, when it matters.

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> u = np.random.default_rng(0).random((8, 8))
    >>> L = ssdops.laplacian((8, 8))
    >>> x = ssdops.implicit_step(u, L, 0.5)
    >>> bool(np.allclose(x - 0.5 * (L @ x), u))
    True
    """
    from array_api_compat import is_torch_array

    xp = op._check_image(u)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
    if on_failure not in ("raise", "warn"):
        raise ValueError(f"on_failure must be 'raise' or 'warn', got {on_failure!r}")
    if method == "auto":
        method = select_method(op)
    if method == "spectral":
        if op._laplacian is None:
            raise ValueError(
                "method='spectral' solves only with ssdops.laplacian(...) (times a number); "
                "use 'cg' or 'bicgstab' for this operator"
            )
        bc, scale = op._laplacian
        return apply_laplacian_function(u, lambda lam: 1.0 / (1.0 - (dt * scale) * lam), bc=bc)

    H, W = op.grid_shape
    tol = _default_tol(xp, u.dtype) if tol is None else float(tol)
    maxiter = max(100, min(2 * H * W, 20_000)) if maxiter is None else int(maxiter)
    batch = np.broadcast_shapes(tuple(u.shape[:-2]), op.batch_shape)
    u = xp.broadcast_to(u, batch + (H, W))
    diagonals = xp.broadcast_to(op.diagonals, batch + tuple(op.diagonals.shape[-3:]))
    settings = (method, tol, maxiter, on_failure, x0)
    if any(is_traced(a) for a in (u, diagonals, dt)):
        return _jax_solve(u, diagonals, op.offsets, dt, settings)
    if is_torch_array(u):
        import torch

        if torch.is_grad_enabled() and any(
            getattr(a, "requires_grad", False) for a in (u, diagonals, dt)
        ):
            return _torch_solve(u, diagonals, op.offsets, dt, settings)
    return _krylov_solve(xp, u, diagonals, op.offsets, dt, settings)
