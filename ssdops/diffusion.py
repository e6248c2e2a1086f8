r"""Diffusion processes: the heat equation and Perona-Malik, explicit, implicit and exact."""
from __future__ import annotations

import math

import numpy as np

from . import backends
from ._array import is_traced, to_numpy
from ._kernels import perona_malik_diagonals
from ._validate import check_bc, check_image, check_time, is_concrete, plain_scalar, read_scalars
from .diffusivity import name_of, resolve
from .explicit import explicit_step
from .implicit import implicit_step
from .operators import laplacian
from .ssd import SSD
from .stencils import FIVE_POINT
from .spectral import apply_laplacian_function

__all__ = ["heat", "perona_malik", "perona_malik_operator", "perona_malik_step"]

HEAT_METHODS = ("exact", "explicit", "implicit")
PM_SCHEMES = ("explicit", "semi-implicit")


def heat(u0, T, *, bc="neumann", method="exact", steps=None):
    r"""The heat equation :math:`u_t = \Delta u` with the 5-point Laplacian, from :math:`u_0` to time ``T``.

    ``method="exact"``: :math:`\exp(T L)\,u_0` with :math:`L` = ``laplacian(bc=bc)`` (the matrix exponential,
    by a DCT for Neumann and a DST for Dirichlet; exact to rounding, any T). ``"explicit"`` / ``"implicit"``:
    ``steps`` forward / backward Euler steps of ``T / steps``; an explicit step above the stability limit 1/4
    raises ValueError. Default steps: ``ceil(8 T)`` explicit (dt at most 1/8, half the limit, so that every
    mode is damped: at dt = 1/4 the checkerboard mode keeps its amplitude), ``ceil(4 T)`` implicit.
    ``T`` must be finite and >= 0 (ValueError; not checked when traced). The result has ``u0``'s dtype,
    float16 and bfloat16 included (transformed in float32).

    Link to Gaussian smoothing (paper section 2.1): the continuous heat equation maps :math:`u_0` to its
    convolution with a Gaussian of standard deviation :math:`\sqrt{2T}`. On the grid, far from the
    boundary, :math:`\exp(T L)` is the convolution with the *discrete* Gaussian kernel
    :math:`e^{-2T} I_n(2T)` per axis (:math:`I_n` modified Bessel functions), whose variance is exactly
    :math:`2T`, and which tends to the sampled Gaussian of std :math:`\sqrt{2T}` as T grows.

    >>> import numpy as np, ssdops
    >>> u = np.zeros((65, 65)); u[32, 32] = 1.0
    >>> v = ssdops.heat(u, 2.0, bc="neumann")
    >>> y = np.arange(65) - 32
    >>> round(float((v.sum(axis=1) * y**2).sum()), 10)      # variance along an axis: 2T
    4.0
    """
    xp = check_image(u0, "u0")
    check_bc(bc)
    if method not in HEAT_METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {HEAT_METHODS}")
    T = plain_scalar(T)
    if steps is not None and (isinstance(steps, bool) or int(steps) != steps or steps < 1):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if is_concrete(T):
        reading = read_scalars(xp, T)[0]
        check_time(T, "T", reading=reading)
    if method == "exact":
        return apply_laplacian_function(u0, lambda lam: xp.exp(T * lam), bc=bc)
    if steps is None:
        if not is_concrete(T):
            raise TypeError("heat with a traced T needs steps= (the default step count depends on T's value)")
        # explicit: dt <= 1/8, half the stability limit 1/4, so that the checkerboard mode (eigenvalue
        # near -8, factor 1 + 8 dt) is damped and not merely kept bounded
        steps = max(1, math.ceil((8 if method == "explicit" else 4) * reading[1]))
    op = laplacian(tuple(u0.shape[-2:]), bc=bc, like=u0)
    dt = T / int(steps)
    u = u0
    for _ in range(int(steps)):
        if method == "explicit":
            u = explicit_step(u, op, dt, check_stable=True)
        else:
            u = implicit_step(u, op, dt)
    return u


def perona_malik(
    u0,
    *,
    steps,
    dt,
    lam,
    diffusivity="perona_malik",
    bc="neumann",
    ghost_gamma=None,
    scheme="explicit",
    check_finite=True,
    check_stable=True,
    tol=None,
    maxiter=None,
):
    r"""Perona-Malik diffusion :math:`u_t = \nabla\cdot(g(|\nabla u|^2)\nabla u)`, ``steps`` time steps.

    Each step computes per pixel :math:`\gamma = g(|\nabla u|^2, \lambda)` with backward differences
    :math:`|\nabla u|^2 = (u_{ij}-u_{i-1,j})^2 + (u_{ij}-u_{i,j-1})^2` (across the boundary 0 for Neumann,
    taken against the zero ghost for Dirichlet), builds :math:`L(\gamma)` = ``divergence_form(gamma, bc=bc,
    ghost_gamma=ghost_gamma)`` and takes

    - ``scheme="explicit"``: :math:`u \leftarrow u + \Delta t\,L(\gamma) u` (ValueError above the
      stability limit :func:`ssdops.stable_dt`, unless ``check_stable=False``);
    - ``scheme="semi-implicit"``: :math:`u \leftarrow (I - \Delta t\,L(\gamma))^{-1} u`, the diffusivity
      lagged (conjugate gradients, ``tol`` / ``maxiter`` as in :func:`ssdops.implicit_step`), stable for
      every :math:`\Delta t`.

    The authors' STL-10 data generator (``AnisoDiff2d.m``) is exactly
    ``perona_malik(u, steps=4, dt=0.1, lam=0.2, bc="dirichlet", ghost_gamma=0.0)``: zero Dirichlet ghosts
    that also carry zero diffusivity. ``ghost_gamma=None`` (default) is the textbook Dirichlet operator.

    Parameters
    ----------
    diffusivity : str or callable
        A name from :mod:`ssdops.diffusivity` or any ``g(s2, lam)``.
    check_finite : bool
        Raise ValueError for NaN / inf in ``u0`` (one host read; skipped under ``jax.jit``). The
        semi-implicit scheme's solves check their input in any case (:func:`ssdops.implicit_step`).

    ``dt`` must be finite and >= 0 and ``lam`` > 0 (ValueError, whatever ``check_stable``; not checked
    when traced). NumPy scalars are taken as Python floats (a float32 image stays float32).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> u = np.zeros((16, 16)); u[4:12, 4:12] = 1.0
    >>> v = ssdops.perona_malik(u, steps=4, dt=0.1, lam=0.2, bc="dirichlet", ghost_gamma=0.0)
    >>> bool(v.min() >= 0.0 and v.max() <= 1.0)       # a stable explicit scheme keeps the range
    True
    """
    xp = check_image(u0, "u0")
    check_bc(bc, ghost_gamma)
    g = resolve(diffusivity)
    if scheme not in PM_SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}: use one of {PM_SCHEMES}")
    lam = plain_scalar(lam)
    _check_lam(lam)
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps}")
    dt = plain_scalar(dt)
    if is_concrete(dt):
        check_time(dt, "dt", reading=read_scalars(xp, dt)[0])
    if check_finite and not is_traced(u0) and not bool(to_numpy(xp.all(xp.isfinite(u0)))):
        raise ValueError("u0 contains NaN or inf (pass check_finite=False to skip this check)")
    step = perona_malik_step if scheme == "explicit" else _semi_implicit_step
    options = dict(check_stable=check_stable) if scheme == "explicit" else dict(tol=tol, maxiter=maxiter)
    u = u0
    for _ in range(int(steps)):
        u = step(u, dt=dt, lam=lam, diffusivity=g, bc=bc, ghost_gamma=ghost_gamma, **options)
    return u


def perona_malik_operator(u, *, lam, diffusivity="perona_malik", bc="neumann", ghost_gamma=None):
    r"""The operator of one Perona-Malik step at ``u``: :math:`L(\gamma)` = ``divergence_form(gamma, bc=bc,
    ghost_gamma=ghost_gamma)`` with :math:`\gamma = g(|\nabla u|^2, \lambda)` by backward differences.

    >>> import numpy as np, ssdops
    >>> u = np.zeros((4, 4)); u[1:3, 1:3] = 1.0
    >>> L = ssdops.perona_malik_operator(u, lam=0.2)
    >>> bool(np.allclose(u + 0.1 * (L @ u), ssdops.perona_malik_step(u, dt=0.1, lam=0.2)))
    True
    """
    xp = check_image(u)
    check_bc(bc, ghost_gamma)
    lam = plain_scalar(lam)
    _check_lam(lam)
    g = resolve(diffusivity)
    return SSD(perona_malik_diagonals(xp, u, lam, g, bc, ghost_gamma), FIVE_POINT, symmetric=True)


def _semi_implicit_step(u, *, dt, lam, diffusivity, bc, ghost_gamma, tol, maxiter):
    op = perona_malik_operator(u, lam=lam, diffusivity=diffusivity, bc=bc, ghost_gamma=ghost_gamma)
    return implicit_step(u, op, dt, method="cg", tol=tol, maxiter=maxiter)


def perona_malik_step(u, *, dt, lam, diffusivity="perona_malik", bc="neumann", ghost_gamma=None,
                      check_stable=True):
    r"""One explicit Perona-Malik step :math:`u + \Delta t\,L(g(|\nabla u|^2))\,u` (see :func:`perona_malik`,
    which checks its arguments once and calls this ``steps`` times).

    A backend may fuse the step into one kernel for a named diffusivity. With ``check_stable`` the step
    raises ValueError above :func:`ssdops.stable_dt` of this step's operator; when ``dt`` is below the
    data-independent bound :math:`1 / (4 \max(g(0), \gamma_{ghost}))` (every named diffusivity decreases
    in :math:`s^2`) that check cannot fail and the operator is never formed.

    >>> import numpy as np, ssdops
    >>> u = np.zeros((4, 4)); u[1:3, 1:3] = 1.0
    >>> v = ssdops.perona_malik_step(u, dt=0.1, lam=0.2)
    >>> bool(np.allclose(v, ssdops.perona_malik(u, steps=1, dt=0.1, lam=0.2)))
    True
    """
    xp = check_image(u)
    check_bc(bc, ghost_gamma)
    lam, dt = plain_scalar(lam), plain_scalar(dt)
    _check_lam(lam)
    name = name_of(diffusivity)
    # Traced values cannot be checked (the check is skipped, as in explicit_step): straight to the kernel.
    traced = any(is_traced(v) for v in (u, dt, lam, ghost_gamma))
    if check_stable and not traced and not _surely_stable(name, dt, lam, ghost_gamma):
        op = perona_malik_operator(u, lam=lam, diffusivity=diffusivity, bc=bc, ghost_gamma=ghost_gamma)
        return explicit_step(u, op, dt, check_stable=True)
    fast = backends.lookup("perona_malik_step", xp) if name is not None else None
    if fast is not None:
        return fast(u=u, dt=dt, lam=lam, diffusivity=name, bc=bc, ghost_gamma=ghost_gamma, ndim=2)
    op = perona_malik_operator(u, lam=lam, diffusivity=diffusivity, bc=bc, ghost_gamma=ghost_gamma)
    return explicit_step(u, op, dt)


def _check_lam(lam):
    """ValueError unless ``lam > 0`` (skipped for traced values)."""
    if not is_traced(lam) and not float(to_numpy(lam) if hasattr(lam, "shape") else lam) > 0:
        raise ValueError(f"lam must be > 0, got {lam}")


def _surely_stable(name, dt, lam, ghost_gamma):
    """Whether ``dt`` is below the stability limit of every operator the named diffusivity can give."""
    if name is None or any(is_traced(v) for v in (dt, lam, ghost_gamma)):
        return False
    largest = resolve(name)(np.zeros(1), float(to_numpy(lam) if hasattr(lam, "shape") else lam))[0]
    if ghost_gamma is not None:
        largest = max(largest, float(ghost_gamma))
    dt = float(to_numpy(dt)) if hasattr(dt, "shape") else float(dt)
    # A negative or NaN dt is not "surely stable": the full check rejects it.
    return 0.0 <= 4.0 * dt * largest <= 1.0
