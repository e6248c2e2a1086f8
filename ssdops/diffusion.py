r"""Diffusion processes: the heat equation and Perona-Malik, explicit, implicit and exact.

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
"""
from __future__ import annotations

import math

import numpy as np

from . import backends
from ._array import is_traced, to_numpy
from ._kernels import perona_malik_diagonals
from ._validate import (
    check_bc,
    check_image,
    check_time,
    is_concrete,
    plain_scalar,
    read_scalars,
)
from .diffusivity import name_of, resolve
from .explicit import explicit_step
from .implicit import implicit_step
from .operators import laplacian
from .spectral import apply_laplacian_function
from .ssd import SSD
from .stencils import star

__all__ = ["heat", "perona_malik", "perona_malik_operator", "perona_malik_step"]

HEAT_METHODS = ("exact", "explicit", "implicit")
PM_SCHEMES = ("explicit", "semi-implicit")


def heat(u0, T, *, ndim=2, bc="neumann", method="exact", steps=None):
    r"""The heat equation :math:`u_t = \Delta u` from :math:`u_0` to time ``T``, on the last ``ndim`` axes.

    The Laplacian is the star stencil (3-, 5- or 7-point) of :func:`laplacian`. The result has ``u0``'s dtype,
    float16 and bfloat16 included (transformed in float32).

    Parameters
    ----------
    u0 : array ``(..., *grid)``
        The initial images, real floating point.
    T : float or 0-d array
        The final time, finite and >= 0 (not checked when traced).
    ndim : {1, 2, 3}, default 2
        The grid dimension: the last ``ndim`` axes of ``u0``.
    bc : {"neumann", "dirichlet"}, default "neumann"
        The boundary condition of the Laplacian.
    method : {"exact", "explicit", "implicit"}, default "exact"
        ``"exact"``: :math:`\exp(T L)\,u_0` by a d-D DCT (Neumann) or DST (Dirichlet), exact to rounding
        for any T. ``"explicit"`` / ``"implicit"``: ``steps`` forward / backward Euler steps of
        ``T / steps``.
    steps : int, optional
        The number of steps of the explicit and implicit methods. Default: ``ceil(4 d T)`` explicit (dt at
        most :math:`1 / (4d)`, half the stability limit, so that every mode is damped: at the limit the
        checkerboard mode keeps its amplitude; ``ceil(8 T)`` in 2-D), ``ceil(4 T)`` implicit.

    Returns
    -------
    array
        :math:`u(T)`, of ``u0``'s shape, library, dtype and device.

    Raises
    ------
    TypeError
        If ``u0`` is not a real floating-point array or ``ndim`` not an integer; if ``T`` is traced and
        ``steps`` not given for an explicit or implicit method (the default count depends on T's value).
    ValueError
        If ``u0`` has fewer than ``ndim`` axes or a zero-length grid axis; for an unknown ``bc`` or
        ``method``; a ``steps`` that is not a positive integer; a ``T`` that is not finite or negative; an
        explicit step ``T / steps`` above the stability limit :math:`1 / (2d)`; a dask image whose grid is
        split over chunks (``"exact"``).

    See Also
    --------
    laplacian : The operator :math:`L`.
    explicit_step : One step of the explicit method.
    implicit_step : One step of the implicit method.
    perona_malik : Nonlinear diffusion.

    Notes
    -----
    The exact method applies the matrix exponential

    .. math:: u(T) = \exp(T L)\,u_0 = \sum_k e^{T \lambda_k} \langle \phi_k, u_0 \rangle\, \phi_k,

    with :math:`(\lambda_k, \phi_k)` the eigenpairs of :math:`L` (cosine / sine modes); the explicit and
    implicit methods compose ``steps`` times :math:`(I + \Delta t L)` (eq. 2.10) or
    :math:`(I - \Delta t L)^{-1}` (eq. 2.11), :math:`\Delta t = T / \mathrm{steps}` (Lemma 2.4: the steps
    compose to time T).

    Link to Gaussian smoothing (paper section 2.1): the continuous heat equation maps :math:`u_0` to its
    convolution with a Gaussian of standard deviation :math:`\sqrt{2T}`. On the grid, far from the
    boundary, :math:`\exp(T L)` is the convolution with the *discrete* Gaussian kernel
    :math:`e^{-2T} I_n(2T)` per axis (:math:`I_n` modified Bessel functions), whose variance is exactly
    :math:`2T`, and which tends to the sampled Gaussian of std :math:`\sqrt{2T}` as T grows.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 2.1, Lemma 2.4, eqs. (2.10) and (2.11), and section 5.1
           (the heat equation with T = 1 as the forward problem).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> u = np.zeros((65, 65)); u[32, 32] = 1.0
    >>> v = ssdops.heat(u, 2.0, bc="neumann")
    >>> y = np.arange(65) - 32
    >>> round(float((v.sum(axis=1) * y**2).sum()), 10)      # variance along an axis: 2T
    4.0
    >>> s = np.zeros(9); s[4] = 1.0
    >>> np.round(ssdops.heat(s, 1.0, ndim=1)[3:6], 4)
    array([0.2153, 0.3085, 0.2153])
    """
    xp = check_image(u0, "u0", ndim)
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
        return apply_laplacian_function(u0, lambda lam: xp.exp(T * lam), bc=bc, ndim=ndim)
    if steps is None:
        if not is_concrete(T):
            raise TypeError("heat with a traced T needs steps= (the default step count depends on T's value)")
        # explicit: dt <= 1/(4d), half the stability limit 1/(2d), so that the checkerboard mode (eigenvalue
        # near -4d, factor 1 - 4d dt) is damped and not merely kept bounded
        steps = max(1, math.ceil((4 * ndim if method == "explicit" else 4) * reading[1]))
    op = laplacian(tuple(u0.shape[-ndim:]), bc=bc, like=u0)
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
    ndim=2,
    bc="neumann",
    ghost_gamma=None,
    scheme="explicit",
    check_finite=True,
    check_stable=True,
    tol=None,
    maxiter=None,
):
    r"""Perona-Malik diffusion :math:`u_t = \nabla\cdot(g(|\nabla u|^2)\nabla u)`, ``steps`` time steps.

    Each step computes per pixel :math:`\gamma = g(|\nabla u|^2, \lambda)` by backward differences, builds
    :math:`L(\gamma)` = ``divergence_form(gamma, ndim=ndim, bc=bc, ghost_gamma=ghost_gamma)`` and takes an
    explicit or a semi-implicit step. The authors' STL-10 data generator (``AnisoDiff2d.m``) is exactly
    ``perona_malik(u, steps=4, dt=0.1, lam=0.2, bc="dirichlet", ghost_gamma=0.0)``: zero Dirichlet ghosts
    that also carry zero diffusivity. ``ghost_gamma=None`` (default) is the textbook Dirichlet operator.

    Parameters
    ----------
    u0 : array ``(..., *grid)``
        The initial images, real floating point. A ``(D, H, W)`` array with the default ``ndim=2`` is a batch
        of D images, not a volume.
    steps : int
        The number of time steps, >= 0.
    dt : float or 0-d array
        The time step, finite and >= 0 (a NumPy scalar is taken as a Python float: a float32 image stays
        float32).
    lam : float or 0-d array
        The contrast parameter :math:`\lambda > 0` of the diffusivity.
    diffusivity : str or callable, default "perona_malik"
        A name from :mod:`ssdops.diffusivity` or any ``g(s2, lam)``.
    ndim : {1, 2, 3}, default 2
        The grid dimension: the last ``ndim`` axes of ``u0``.
    bc : {"neumann", "dirichlet"}, default "neumann"
        The boundary condition (see :func:`divergence_form`).
    ghost_gamma : float or None, default None
        Dirichlet only: the ghost pixels' diffusivity (``0.0`` for the authors' generator).
    scheme : {"explicit", "semi-implicit"}, default "explicit"
        ``"explicit"``: :math:`u \leftarrow u + \Delta t\,L(\gamma) u`; ``"semi-implicit"``:
        :math:`u \leftarrow (I - \Delta t\,L(\gamma))^{-1} u`, the diffusivity lagged (conjugate gradients),
        stable for every :math:`\Delta t`.
    check_finite : bool, default True
        Raise ValueError for NaN / inf in ``u0`` (one host read; skipped under ``jax.jit``). The
        semi-implicit scheme's solves check their input in any case (:func:`implicit_step`).
    check_stable : bool, default True
        Explicit scheme: raise ValueError for a step above the stability limit :func:`stable_dt` of its
        operator.
    tol : float, optional
        Semi-implicit scheme: the solver tolerance, as in :func:`implicit_step`.
    maxiter : int, optional
        Semi-implicit scheme: the solver's iteration limit, as in :func:`implicit_step`.

    Returns
    -------
    array
        :math:`u` after ``steps`` steps, of ``u0``'s shape, library and dtype.

    Raises
    ------
    TypeError
        If ``u0`` is not a real floating-point array, ``ndim`` not an integer, or ``ghost_gamma`` neither a
        number nor None.
    ValueError
        If ``u0`` has fewer than ``ndim`` axes or a zero-length grid axis; for an unknown ``bc``, ``scheme``
        or ``diffusivity`` name; ``ghost_gamma`` with Neumann, or not finite and >= 0; ``steps`` not a
        non-negative integer; ``dt`` not finite or negative, or ``lam <= 0`` (whatever ``check_stable``; not
        checked when traced); NaN or inf in ``u0`` (``check_finite``); an explicit step above the stability
        limit (``check_stable``).
    ConvergenceError
        Semi-implicit scheme: when a solve does not reach ``tol`` within ``maxiter`` iterations.

    See Also
    --------
    perona_malik_step : One explicit step.
    perona_malik_operator : The operator :math:`L(\gamma)` of a step.
    ssdops.diffusivity.perona_malik : The default diffusivity.
    heat : Linear diffusion.

    Notes
    -----
    With backward differences (across the boundary 0 for Neumann, taken against the zero ghost for
    Dirichlet),

    .. math::

       |\nabla u|^2_{ij} = (u_{ij} - u_{i-1,j})^2 + (u_{ij} - u_{i,j-1})^2, \qquad
       \gamma_{ij} = g(|\nabla u|^2_{ij}, \lambda),

    and the steps

    .. math::

       u \leftarrow (I + \Delta t\,L(\gamma))\,u \quad\text{(explicit, eq. 2.10)}, \qquad
       u \leftarrow (I - \Delta t\,L(\gamma))^{-1} u \quad\text{(semi-implicit, eq. 2.11)},

    with :math:`\gamma` recomputed from the current :math:`u` at every step. The default diffusivity is
    :math:`g(s^2, \lambda) = 1 / (1 + s^2/\lambda^2)` (eq. 5.1). On a d-dimensional grid, one backward
    difference per axis and the star-stencil :math:`L(\gamma)`.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eqs. (2.10), (2.11), (5.1) and section 5.2 (the forward model:
           4 explicit steps, dt = 0.1, lambda = 0.2).
    .. [2] P. Perona and J. Malik, "Scale-space and edge detection using anisotropic diffusion",
           IEEE Trans. Pattern Anal. Mach. Intell. 12(7), 629-639, 1990.

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> u = np.zeros((16, 16)); u[4:12, 4:12] = 1.0
    >>> v = ssdops.perona_malik(u, steps=4, dt=0.1, lam=0.2, bc="dirichlet", ghost_gamma=0.0)
    >>> bool(v.min() >= 0.0 and v.max() <= 1.0)       # a stable explicit scheme keeps the range
    True
    >>> w = ssdops.perona_malik(u, steps=4, dt=1.0, lam=0.2, scheme="semi-implicit")
    >>> round(float(w.sum()), 9)                      # Neumann: the mean is kept
    64.0
    """
    xp = check_image(u0, "u0", ndim)
    check_bc(bc, ghost_gamma)
    g = resolve(diffusivity)
    if scheme not in PM_SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}: use one of {PM_SCHEMES}")
    lam = plain_scalar(lam)
    _check_lam(lam, xp, u0.dtype, diffusivity)
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps}")
    dt = plain_scalar(dt)
    if is_concrete(dt):
        check_time(dt, "dt", reading=read_scalars(xp, dt)[0])
    if check_finite and not is_traced(u0) and not backends.adapter_for(u0).is_all_finite(u0):
        raise ValueError("u0 contains NaN or inf (pass check_finite=False to skip this check)")
    # Checked once above: every step runs unchecked, the diffusivity resolved once.
    name = name_of(g)
    u = u0
    for _ in range(int(steps)):
        if scheme == "explicit":
            u = _explicit_step(xp, u, dt=dt, lam=lam, g=g, name=name, ndim=ndim, bc=bc, ghost_gamma=ghost_gamma,
                               check_stable=check_stable)
        else:
            op = _operator(xp, u, lam=lam, g=g, ndim=ndim, bc=bc, ghost_gamma=ghost_gamma)
            u = implicit_step(u, op, dt, method="cg", tol=tol, maxiter=maxiter)
    return u


def perona_malik_operator(u, *, lam, diffusivity="perona_malik", ndim=2, bc="neumann", ghost_gamma=None):
    r"""The operator :math:`L(\gamma)` of one Perona-Malik step at ``u``.

    ``divergence_form(gamma, ndim=ndim, bc=bc, ghost_gamma=ghost_gamma)`` with
    :math:`\gamma = g(|\nabla u|^2, \lambda)` by backward differences along each grid axis.

    Parameters
    ----------
    u : array ``(..., *grid)``
        The images the diffusivity is computed from.
    lam : float or 0-d array
        The contrast parameter :math:`\lambda > 0`.
    diffusivity : str or callable, default "perona_malik"
        A name from :mod:`ssdops.diffusivity` or any ``g(s2, lam)``.
    ndim : {1, 2, 3}, default 2
        The grid dimension.
    bc : {"neumann", "dirichlet"}, default "neumann"
        The boundary condition (see :func:`divergence_form`).
    ghost_gamma : float or None, default None
        Dirichlet only: the ghost pixels' diffusivity.

    Returns
    -------
    SSD
        :math:`L(\gamma)`, star offsets, of ``u``'s library and dtype, one operator per image, tagged
        symmetric.

    Raises
    ------
    TypeError
        If ``u`` is not a real floating-point array, ``ndim`` not an integer, or ``ghost_gamma`` neither a
        number nor None.
    ValueError
        If ``u`` has fewer than ``ndim`` axes or a zero-length grid axis; for an unknown ``bc`` or
        ``diffusivity`` name; ``ghost_gamma`` with Neumann, or not finite and >= 0; ``lam <= 0`` (not checked
        when traced).

    See Also
    --------
    perona_malik : Many steps.
    perona_malik_step : One explicit step.
    divergence_form : The operator of a given diffusivity.

    Notes
    -----
    .. math::

       L(\gamma)\,u = \nabla\cdot(\gamma\,\nabla u), \qquad \gamma_{ij} = g\bigl((u_{ij} - u_{i-1,j})^2 +
       (u_{ij} - u_{i,j-1})^2, \lambda\bigr),

    the differences across the boundary 0 (Neumann) or against the zero ghost (Dirichlet); in the paper's
    stencil (4.4), :math:`g_1 .. g_4` are the face means of :math:`\gamma`.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eqs. (4.4) and (5.1).
    .. [2] P. Perona and J. Malik, "Scale-space and edge detection using anisotropic diffusion",
           IEEE Trans. Pattern Anal. Mach. Intell. 12(7), 629-639, 1990.

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> u = np.zeros((4, 4)); u[1:3, 1:3] = 1.0
    >>> L = ssdops.perona_malik_operator(u, lam=0.2)
    >>> bool(np.allclose(u + 0.1 * (L @ u), ssdops.perona_malik_step(u, dt=0.1, lam=0.2)))
    True
    >>> ssdops.perona_malik_operator(np.zeros((3, 3)), lam=0.2).diagonal((0, 0))   # g(0) = 1: the Laplacian
    array([[-2., -3., -2.],
           [-3., -4., -3.],
           [-2., -3., -2.]])
    """
    xp = check_image(u, "u", ndim)
    check_bc(bc, ghost_gamma)
    lam = plain_scalar(lam)
    _check_lam(lam, xp, u.dtype, diffusivity)
    return _operator(xp, u, lam=lam, g=resolve(diffusivity), ndim=ndim, bc=bc, ghost_gamma=ghost_gamma)


def _operator(xp, u, *, lam, g, ndim, bc, ghost_gamma):
    """:func:`perona_malik_operator` of checked arguments, ``g`` the diffusivity function."""
    return SSD(perona_malik_diagonals(xp, u, lam, g, bc, ghost_gamma, ndim), star(ndim), symmetric=True)


def perona_malik_step(u, *, dt, lam, diffusivity="perona_malik", ndim=2, bc="neumann", ghost_gamma=None,
                      check_stable=True):
    r"""One explicit Perona-Malik step :math:`u + \Delta t\,L(g(|\nabla u|^2))\,u`.

    :func:`perona_malik` checks its arguments once and calls this ``steps`` times. A backend may fuse the
    step into one kernel for a named diffusivity.

    Parameters
    ----------
    u : array ``(..., *grid)``
        The images.
    dt : float or 0-d array
        The time step.
    lam : float or 0-d array
        The contrast parameter :math:`\lambda > 0`.
    diffusivity : str or callable, default "perona_malik"
        A name from :mod:`ssdops.diffusivity` or any ``g(s2, lam)`` (a callable is never fused).
    ndim : {1, 2, 3}, default 2
        The grid dimension.
    bc : {"neumann", "dirichlet"}, default "neumann"
        The boundary condition (see :func:`divergence_form`).
    ghost_gamma : float or None, default None
        Dirichlet only: the ghost pixels' diffusivity.
    check_stable : bool, default True
        Raise ValueError for a ``dt`` that is negative, not finite or above :func:`stable_dt` of this step's
        operator (skipped for traced values).

    Returns
    -------
    array
        The images after the step, of ``u``'s shape, library and dtype.

    Raises
    ------
    TypeError
        If ``u`` is not a real floating-point array, ``ndim`` not an integer, or ``ghost_gamma`` neither a
        number nor None.
    ValueError
        If ``u`` has fewer than ``ndim`` axes or a zero-length grid axis; for an unknown ``bc`` or
        ``diffusivity`` name; ``ghost_gamma`` with Neumann, or not finite and >= 0; ``lam <= 0``; with
        ``check_stable``, a ``dt`` that is negative, not finite or above the stability limit.

    See Also
    --------
    perona_malik : Many steps, checked once.
    perona_malik_operator : The operator of the step.
    explicit_step : The step with any operator.

    Notes
    -----
    .. math:: u \leftarrow (I + \Delta t\,L(\gamma))\,u, \qquad \gamma = g(|\nabla u|^2, \lambda)

    (eq. 2.10 with the operator of :func:`perona_malik_operator`). When ``dt`` is below the
    data-independent bound :math:`1 / (2 d \max(g(0), \gamma_{ghost}))` (every named diffusivity decreases
    in :math:`s^2`) the stability check cannot fail and the operator is never formed.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eqs. (2.10) and (5.1).
    .. [2] P. Perona and J. Malik, "Scale-space and edge detection using anisotropic diffusion",
           IEEE Trans. Pattern Anal. Mach. Intell. 12(7), 629-639, 1990.

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> u = np.zeros((4, 4)); u[1:3, 1:3] = 1.0
    >>> v = ssdops.perona_malik_step(u, dt=0.1, lam=0.2)
    >>> bool(np.allclose(v, ssdops.perona_malik(u, steps=1, dt=0.1, lam=0.2)))
    True
    """
    xp = check_image(u, "u", ndim)
    check_bc(bc, ghost_gamma)
    lam, dt = plain_scalar(lam), plain_scalar(dt)
    _check_lam(lam, xp, u.dtype, diffusivity)
    g = resolve(diffusivity)
    return _explicit_step(xp, u, dt=dt, lam=lam, g=g, name=name_of(g), ndim=ndim, bc=bc, ghost_gamma=ghost_gamma,
                          check_stable=check_stable)


def _explicit_step(xp, u, *, dt, lam, g, name, ndim, bc, ghost_gamma, check_stable):
    """:func:`perona_malik_step` of checked arguments: ``g`` the diffusivity function, ``name`` its name
    (``None`` for a function of the user's)."""
    # Traced values cannot be checked (the check is skipped, as in explicit_step): straight to the kernel.
    traced = any(is_traced(v) for v in (u, dt, lam, ghost_gamma))
    if check_stable and not traced and not _surely_stable(g, name, dt, lam, ghost_gamma, ndim):
        op = _operator(xp, u, lam=lam, g=g, ndim=ndim, bc=bc, ghost_gamma=ghost_gamma)
        return explicit_step(u, op, dt, check_stable=True)

    def generic():
        return explicit_step(u, _operator(xp, u, lam=lam, g=g, ndim=ndim, bc=bc, ghost_gamma=ghost_gamma), dt)

    if name is None:  # a diffusivity function of the user's: only the generic code knows it
        return generic()
    arguments = dict(u=u, dt=dt, lam=lam, diffusivity=name, bc=bc, ghost_gamma=ghost_gamma, ndim=ndim)
    return backends.dispatch("perona_malik_step", xp, generic, arguments, ndim=ndim, dtype=u.dtype, bc=bc,
                             diffusivity=name)


#: The diffusivities that divide by (or add) ``lam**2``: a ``lam**2`` below the dtype's smallest normal number
#: is flushed to zero by some libraries (and is zero in NumPy below its smallest subnormal), and then
#: ``g(0) = 0 / 0`` is NaN on every flat region.
_LAM_SQUARED = ("perona_malik", "perona_malik_exp", "charbonnier", "total_variation")


def _check_lam(lam, xp=None, dtype=None, diffusivity=None):
    """ValueError unless ``lam > 0``, and (given the image's namespace and dtype and the diffusivity) unless
    ``lam**2`` stays a normal number of that dtype (skipped for traced values)."""
    if is_traced(lam):
        return
    value = float(to_numpy(lam) if hasattr(lam, "shape") else lam)
    if not value > 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    if dtype is None or name_of(diffusivity) not in _LAM_SQUARED:
        return
    tiny = float(xp.finfo(dtype).smallest_normal)
    if not value * value >= tiny:
        raise ValueError(
            f"lam={value:g} underflows in {dtype}: lam**2 = {value * value:.3g} is below the smallest normal "
            f"{dtype} ({tiny:.3g}), so the {name_of(diffusivity)} diffusivity would be 0/0 = NaN on flat regions; "
            f"use lam >= {tiny ** 0.5:.3g} (rescale the image), or a wider dtype"
        )


def _surely_stable(g, name, dt, lam, ghost_gamma, ndim):
    """Whether ``dt`` is below the stability limit of every operator the named diffusivity ``g`` can give."""
    if name is None or any(is_traced(v) for v in (dt, lam, ghost_gamma)):
        return False
    largest = g(np.zeros(1), float(to_numpy(lam) if hasattr(lam, "shape") else lam))[0]
    if ghost_gamma is not None:
        largest = max(largest, float(ghost_gamma))
    dt = float(to_numpy(dt)) if hasattr(dt, "shape") else float(dt)
    # A negative or NaN dt is not "surely stable": the full check rejects it.
    return 0.0 <= 2.0 * ndim * dt * largest <= 1.0
