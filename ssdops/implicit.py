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

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
"""
from __future__ import annotations

import math

import numpy as np

from . import backends
from ._array import Array, Scalar, is_traced, namespace
from ._errors import ConvergenceError, ConvergenceWarning
from ._kernels import component, krylov_solve, zero_outside
from ._validate import (
    check_time,
    half_precision,
    is_concrete,
    plain_scalar,
    read_scalars,
)
from .analysis import is_symmetric
from .spectral import apply_laplacian_function, laplacian_eigenvalue_range
from .ssd import SSD, check_operator

__all__ = ["ConvergenceError", "ConvergenceWarning", "implicit_step", "select_method"]

METHODS = ("auto", "spectral", "cg", "bicgstab")


def select_method(op: SSD) -> str:
    r"""The method ``implicit_step(..., method="auto")`` uses for ``op``.

    Parameters
    ----------
    op : SSD
        The operator :math:`A` of the step.

    Returns
    -------
    str
        ``"spectral"`` for a (scaled) :func:`ssdops.laplacian`; ``"cg"`` for an operator tagged symmetric, or
        found symmetric by :func:`ssdops.is_symmetric` when untagged (one value check on the host, skipped under
        ``jax.jit``, where an untagged operator gets ``"bicgstab"``); ``"bicgstab"`` otherwise.

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`.

    See Also
    --------
    implicit_step : The step that uses the method.
    Tags : The structure the choice is read from.

    Notes
    -----
    The system :math:`(I - \Delta t\,A)\,x = u` is solved exactly by a DCT / DST when :math:`A = c L` with
    :math:`L` the constant-coefficient Laplacian (its eigenvectors are the cosine / sine modes); by conjugate
    gradients when :math:`A` is symmetric (then :math:`I - \Delta t A` is symmetric, and positive definite
    for ``divergence_form`` with :math:`\gamma \ge 0` and :math:`\Delta t \ge 0`); by BiCGSTAB otherwise.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (2.11) (the implicit step).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> ssdops.select_method(ssdops.divergence_form(np.ones((4, 4))))
    'cg'
    >>> ssdops.select_method(2.0 * ssdops.laplacian((4, 4)))
    'spectral'
    >>> ssdops.select_method(ssdops.ssd_from_filters(np.random.default_rng(0).random((5, 4, 4))))
    'bicgstab'
    """
    check_operator(op)
    if op.tags.laplacian is not None:
        return "spectral"
    if op.symmetric is not None:
        return "cg" if op.symmetric else "bicgstab"
    if is_traced(op.diagonals):
        return "bicgstab"
    return "cg" if is_symmetric(op) else "bicgstab"


#: An explicit ``tol`` below this many machine epsilons of the working dtype raises ValueError: a relative
#: residual computed in that dtype cannot resolve it (its own rounding is several epsilons).
TOL_FLOOR_EPS = 4


def _default_tol(xp, dtype):
    """1e-12 in float64, 1e-6 in float32, the dtype's epsilon for float16 / bfloat16 (solved in float32)."""
    bits = xp.finfo(dtype).bits
    return 1e-12 if bits >= 64 else 1e-6 if bits == 32 else xp.finfo(dtype).eps


def _row_abs_sums(xp, diagonals, offsets):
    """Per pixel the sum of |entries| of its row of A (in-grid entries only: NaN or inf exactly when an
    in-grid entry is non-finite); its maximum is the infinity norm of A."""
    ndim = len(offsets[0])
    # One offset at a time: |A| 1 by a product would hold |diagonals| (K images) at once.
    total = None
    for k, offset in enumerate(offsets):
        term = zero_outside(xp, xp.abs(component(diagonals, k, ndim)), offset)
        total = term if total is None else total + term
    return total


def _check_values(xp, u, x0, row_sums, dt):
    """ValueError for NaN / inf in ``u``, ``x0`` or the operator, or a non-finite or negative ``dt``: one
    host read. Returns the infinity norm of the operator (``None`` without ``row_sums``) and ``dt`` as read."""
    flags = [xp.all(xp.isfinite(a)) for a in (u, x0) if a is not None]
    reading = read_scalars(xp, xp.all(xp.stack(flags)), *(() if row_sums is None else (xp.max(row_sums),)), dt)
    if reading[0][0] != 1:
        raise ValueError(
            "u (or x0) contains NaN or inf: implicit_step solves only for finite images (a Krylov solver "
            "would stop at once and report convergence of garbage)"
        )
    norm = None
    if row_sums is not None:
        norm = reading[1][1]
        if not math.isfinite(norm):
            raise ValueError("the operator has NaN or inf entries: (I - dt A) x = u has no meaningful solution")
    check_time(dt, "dt", reading=reading[-1])
    return norm, reading[-1][1]


def _valid_images(xp, u, row_sums, dt, ndim):
    """Per image: finite image and operator, finite ``dt >= 0`` (for traced values, where a check cannot
    raise: the solution of an invalid image is replaced by NaN, never left as the solver's zeros)."""
    axes = tuple(range(-ndim, 0))
    ok = xp.all(xp.isfinite(u), axis=axes) & xp.all(xp.isfinite(row_sums), axis=axes)
    if not isinstance(dt, (int, float)):
        ok = ok & xp.isfinite(dt) & (dt >= 0)
    return ok


def implicit_step(u: Array, op: SSD, dt: Scalar, *, method: str = "auto", tol: float | None = None,
                  maxiter: int | None = None, on_failure: str = "raise", x0: Array | None = None) -> Array:
    r"""One backward-Euler step: the solution :math:`x` of :math:`(I - \Delta t\,A)\,x = u`, per image.

    Parameters
    ----------
    u : array ``(..., *grid)``
        The images (right-hand sides), real floating point of the operator's library and dtype.
    op : SSD
        The operator :math:`A`; its batch axes broadcast against ``u``'s.
    dt : float or 0-d array
        A time step >= 0 (a NumPy scalar is taken as a Python float: it does not promote ``u``'s dtype).
    method : {"auto", "spectral", "cg", "bicgstab"}, default "auto"
        See the module documentation and :func:`select_method`; ``"spectral"`` needs a (scaled)
        :func:`ssdops.laplacian`.
    tol : float, optional
        Relative residual :math:`\|u - (I - \Delta t A)x\| / \|u\|` per image, judged on the true
        residual of the returned :math:`x` (one product after the iterations, not the solver's recurrence);
        default 1e-12 in float64, 1e-6 in float32, the dtype's epsilon in float16 / bfloat16 (which are
        solved in float32 and rounded back). A ``tol`` below ``TOL_FLOOR_EPS = 4`` epsilons of the working
        dtype (4.8e-7 in float32) raises ValueError: that dtype cannot measure it.
    maxiter : int, optional
        Iterations in all (restarts included); default ``max(100, min(2 N, 20000))``, N the grid's points.
    on_failure : {"raise", "warn"}, default "raise"
        Non-convergence raises :class:`ConvergenceError` (or warns :class:`ConvergenceWarning` and returns
        the last iterate), naming the true residual reached.
    x0 : array, optional
        Initial guess (default zero; PyTorch gradients and JAX ignore it).

    Returns
    -------
    array
        The solution :math:`x`, of the broadcast batch shape of ``u`` and ``op`` and of the operator's dtype.

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`, or ``u`` (or ``x0``) is not a real floating-point array of the
        operator's library and dtype.
    ValueError
        If the last axes of ``u`` are not the operator's grid, ``x0`` does not broadcast with ``u``; for an
        unknown ``method`` or ``on_failure``, a ``maxiter`` that is not a positive integer, or
        ``method="spectral"`` with an operator that is not a scaled Laplacian. For NaN or inf in ``u``,
        ``x0``, the operator's entries or ``dt``; for ``dt < 0``; for a singular or indefinite spectral system
        (:math:`1 - \Delta t\,c\,\lambda \le 0` for an eigenvalue :math:`\lambda` of the Laplacian, in closed
        form); for a ``tol`` below the floor above. One host read per call; skipped for traced values, see the
        notes.
    ConvergenceError
        With ``on_failure="raise"``, when the true residual is above ``tol`` after ``maxiter`` iterations.

    See Also
    --------
    explicit_step : The forward-Euler step (eq. 2.10).
    select_method : The method ``"auto"`` picks.
    heat : Many implicit steps of the heat equation, or its exact solution.
    perona_malik : Semi-implicit Perona-Malik steps.

    Notes
    -----
    The update of eq. (2.11),

    .. math:: x = (I - \Delta t\,A)^{-1} u,

    the backward-Euler discretisation of :math:`u_t = A u`: unconditionally stable for a diffusion operator.

    The Krylov loops run in the array's own namespace and device; each iteration reads one boolean (all
    images converged?) on the host. When the recurrence claims convergence but the true residual is above
    ``tol`` (rounding drift, typical in float32 on large grids), the loop restarts from the iterate. In
    float32 the attainable residual is about :math:`\epsilon (1 + \Delta t \|A\|_\infty)`
    :math:`\|x\| / \|u\|`: for very large steps even the default 1e-6 can be out of reach, which
    :class:`ConvergenceError` reports (use float64).

    In PyTorch and JAX the derivative is an adjoint solve, never a backward pass through the iterations:
    with an output cotangent :math:`\bar x`, solve :math:`(I - \Delta t A^\top) w = \bar x`; then
    :math:`\bar u = w` and the cotangent of a parameter :math:`\theta` of :math:`\Delta t A` is
    :math:`w^\top \partial_\theta(\Delta t A(\theta))\,x`.

    Traced JAX values (under ``jit``, ``grad``, ``vmap``) are solved by ``jax.scipy.sparse.linalg.cg`` /
    ``bicgstab`` under ``jax.lax.custom_linear_solve``, vmapped over the batch; there no check can raise
    (values are unknown while tracing): an image whose input is not finite, or with ``dt`` not finite or
    negative, comes back as NaN (never as zeros), a singular or indefinite spectral system as NaN, and no
    convergence check runs, so check a result eagerly, or its residual, when it matters.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (2.11).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> u = np.random.default_rng(0).random((8, 8))
    >>> L = ssdops.laplacian((8, 8))
    >>> x = ssdops.implicit_step(u, L, 0.5)
    >>> bool(np.allclose(x - 0.5 * (L @ x), u))
    True
    >>> A = ssdops.divergence_form(np.ones((8, 8)))       # the same matrix, solved by conjugate gradients
    >>> bool(np.allclose(ssdops.implicit_step(u, A, 0.5, method="cg"), x))
    True
    """
    check_operator(op)
    xp = op._check_image(u)
    dt = plain_scalar(dt)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
    if on_failure not in ("raise", "warn"):
        raise ValueError(f"on_failure must be 'raise' or 'warn', got {on_failure!r}")
    if maxiter is not None and (isinstance(maxiter, bool) or int(maxiter) != maxiter or maxiter < 1):
        raise ValueError(f"maxiter must be a positive integer, got {maxiter!r}")
    if x0 is not None:
        namespace(u, x0)
        np.broadcast_shapes(tuple(x0.shape), tuple(u.shape))
    if method == "auto":
        method = select_method(op)
    concrete = is_concrete(u, op.diagonals, dt, x0)
    if method == "spectral":
        return _spectral_step(xp, u, op, dt, x0, concrete)

    grid, ndim = op.grid_shape, op.ndim
    working = xp.float32 if half_precision(xp, u.dtype) else u.dtype
    tol = _check_tol(xp, tol, u.dtype, working)
    maxiter = max(100, min(2 * math.prod(grid), 20_000)) if maxiter is None else int(maxiter)
    batch = np.broadcast_shapes(tuple(u.shape[:-ndim]), op.batch_shape)
    diagonals = op.diagonals
    if working != u.dtype:
        u, diagonals = xp.astype(u, working), xp.astype(diagonals, working)
        x0 = None if x0 is None else xp.astype(x0, working)
    row_sums = _row_abs_sums(xp, diagonals, op.offsets)
    if concrete:
        _check_values(xp, u, x0, row_sums, dt)
        row_sums = None  # read: not held through the solve (one image less at its peak)
    elif isinstance(dt, (int, float)):
        check_time(dt, "dt")
    u_b = xp.broadcast_to(u, batch + grid)
    settings = dict(u=u_b, diagonals=xp.broadcast_to(diagonals, batch + tuple(diagonals.shape[-ndim - 1:])),
                    offsets=op.offsets, dt=dt, method=method, tol=tol, maxiter=maxiter, on_failure=on_failure,
                    x0=x0)
    x = backends.dispatch("implicit_solve", xp, lambda: krylov_solve(xp, **settings), settings, ndim=ndim,
                          dtype=u_b.dtype)
    if not concrete:
        valid = _valid_images(xp, u_b, xp.broadcast_to(row_sums, batch + grid), dt, ndim)
        x = xp.where(xp.reshape(valid, tuple(valid.shape) + (1,) * ndim), x, xp.full_like(x, math.nan))
    return xp.astype(x, op.dtype) if x.dtype != op.dtype else x


def _check_tol(xp, tol, dtype, working):
    if tol is None:
        return _default_tol(xp, dtype)
    tol = float(tol)
    floor = TOL_FLOOR_EPS * float(xp.finfo(working).eps)
    if not tol >= floor:
        raise ValueError(
            f"tol={tol:g} is below what a {working} solve can measure ({TOL_FLOOR_EPS} eps = {floor:.2g}): "
            "loosen tol, or solve in float64"
        )
    return tol


def _spectral_step(xp, u, op, dt, x0, concrete):
    """``(I - dt c L)^{-1} u`` by a DCT / DST; ValueError (eager) or NaN (traced) for an invalid system."""
    if op.tags.laplacian is None:
        raise ValueError(
            "method='spectral' solves only with ssdops.laplacian(...) (times a number); "
            "use 'cg' or 'bicgstab' for this operator"
        )
    bc, scale = op.tags.laplacian
    if concrete:
        _, dt_value = _check_values(xp, u, x0, None, dt)
        s = dt_value * scale
        lowest, highest = laplacian_eigenvalue_range(op.grid_shape, bc)
        if max(s * lowest, s * highest) >= 1:
            raise ValueError(
                f"singular or indefinite system: 1 - dt*c*lambda <= 0 for an eigenvalue lambda in "
                f"[{lowest:.4g}, {highest:.4g}] of the Laplacian (dt*c = {s:g}); a backward-Euler step needs "
                "I - dt*A positive definite"
            )
    elif isinstance(dt, (int, float)):
        check_time(dt, "dt")

    def inverse(lam):
        den = 1.0 - (dt * scale) * lam
        # Traced values cannot raise: a non-positive factor makes the image NaN (finite garbage otherwise).
        return xp.where(den > 0, 1.0 / den, xp.full_like(den, math.nan))

    return apply_laplacian_function(u, inverse, bc=bc, ndim=op.ndim)
