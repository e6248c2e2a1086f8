"""Explicit (forward Euler) diffusion steps and their stability limit.

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
"""
from __future__ import annotations

import math

from . import backends
from ._array import Array, Scalar, namespace
from ._kernels import component, filter_step_generic, maps_ndim, zero_outside
from ._validate import check_grid, check_time, is_concrete, plain_scalar, read_scalars
from .ssd import SSD, check_operator
from .stencils import centre

__all__ = ["explicit_step", "filter_step", "stable_dt", "check_stable_dt"]


def stable_dt(op: SSD) -> float:
    r"""The largest :math:`\Delta t` for which :math:`I + \Delta t\,A` has no negative entries.

    A non-negative iteration matrix with unit row sums is a maximum-principle-preserving explicit scheme.
    Over a batch of operators, the smallest limit. This reads the values on the host (once).

    Parameters
    ----------
    op : SSD
        The operator :math:`A`, batched or not.

    Returns
    -------
    float
        The limit, a Python float: ``inf`` when no in-grid centre coefficient is negative, ``0.0`` when an
        in-grid off-diagonal entry is negative (no positive step keeps the matrix non-negative).

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`.
    ValueError
        If an in-grid entry is NaN or inf (no step is stable, and the bound would be NaN).

    See Also
    --------
    explicit_step : Checks its step against this limit with ``check_stable=True``.
    perona_malik : Checks every step against it.

    Notes
    -----
    Entries outside the grid are ignored. With the centre diagonal :math:`d_0` and in-grid off-diagonal
    entries all >= 0,

    .. math::

       \Delta t_{\max} = \min_{p \,:\, d_0(p) < 0} \frac{1}{-d_0(p)},

    so :math:`1 / (2d)` for the star Laplacian on a d-dimensional grid (1/4 in 2-D, the classical limit of
    the 5-point scheme) and at least :math:`1 / (2 d \max \gamma)` for ``divergence_form(gamma)``.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (2.10) (the explicit step).

    Examples
    --------
    >>> import ssdops
    >>> ssdops.stable_dt(ssdops.laplacian((8, 8)))
    0.25
    >>> ssdops.stable_dt(ssdops.laplacian((4,))), ssdops.stable_dt(ssdops.identity((3, 3)))
    (0.5, inf)
    """
    check_operator(op)
    xp = namespace(op.diagonals)
    zero = centre(op.ndim)
    canonical = [zero_outside(xp, component(op.diagonals, k, op.ndim), o) for k, o in enumerate(op.offsets)]
    finite = xp.all(xp.stack([xp.all(xp.isfinite(d)) for d in canonical]))
    off_diagonal = [xp.min(d) for d, o in zip(canonical, op.offsets) if o != zero]
    centre_minima = [xp.min(d) for d, o in zip(canonical, op.offsets) if o == zero]
    (ok, _), *bounds = read_scalars(xp, finite, *off_diagonal, *centre_minima)
    if ok != 1:
        raise ValueError("the operator has NaN or inf entries: no explicit step with it is stable")
    if any(lo < 0 for lo, _ in bounds[: len(off_diagonal)]):
        return 0.0
    if not centre_minima:
        return math.inf
    most_negative = bounds[-1][0]
    return math.inf if most_negative >= 0 else 1.0 / -most_negative


def check_stable_dt(op: SSD, dt: Scalar) -> None:
    """Raise ValueError when ``dt`` is negative, not finite, or exceeds :func:`stable_dt` (skipped for traced
    values)."""
    if not is_concrete(op.diagonals, dt):
        return
    xp = namespace(op.diagonals)
    reading = read_scalars(xp, dt)[0]
    check_time(dt, "dt", reading=reading)
    dt = reading[1]
    limit = stable_dt(op)
    if dt > limit:
        raise ValueError(
            f"unstable explicit step: dt={dt:g} exceeds the stability limit {limit:g} of this operator "
            "(I + dt*op would have negative entries); take a smaller dt or more steps, use an implicit "
            "scheme, or pass check_stable=False to override"
        )


def explicit_step(u: Array, op: SSD, dt: Scalar, *, check_stable: bool = False) -> Array:
    r"""One forward-Euler step :math:`u + \Delta t\,A u` (paper eq. 2.10).

    No stability check by default, because learned operators, such as DiffNet's, need not be non-negative.

    Parameters
    ----------
    u : array ``(..., *grid)``
        The images; batch axes broadcast against the operator's.
    op : SSD
        The operator :math:`A`, of ``u``'s library and dtype.
    dt : float or 0-d array
        The time step: a Python number or a 0-d array (learnable); a NumPy scalar is taken as a Python float,
        so that it keeps ``u``'s dtype.
    check_stable : bool, default False
        Check that ``dt`` is finite, >= 0 and at most :func:`stable_dt` (reads the host; skipped for traced
        values).

    Returns
    -------
    array
        :math:`u + \Delta t\,A u`, of the broadcast batch shape and ``u``'s dtype.

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`, or ``u`` and the operator are of different libraries or dtypes.
    ValueError
        If the last axes of ``u`` are not the operator's grid. With ``check_stable=True``: a ``dt`` that is
        negative, not finite or above :func:`stable_dt`, or an operator with NaN or inf entries.

    See Also
    --------
    stable_dt : The stability limit.
    implicit_step : The backward-Euler step, stable for every ``dt``.
    filter_step : The same step with DiffNet's filters, fused.

    Notes
    -----
    The update of eq. (2.10),

    .. math:: u \leftarrow (I + \Delta t\,A)\,u,

    is the forward-Euler discretisation of :math:`u_t = A u`. For a diffusion operator
    :math:`A = L(\gamma)` it keeps the range of :math:`u` (a maximum principle) when
    :math:`\Delta t \le` ``stable_dt(A)``.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (2.10).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> u = np.zeros((3, 3)); u[1, 1] = 1.0
    >>> ssdops.explicit_step(u, ssdops.laplacian((3, 3)), 0.25)[1]
    array([0.25, 0.  , 0.25])
    >>> ssdops.explicit_step(np.array([0., 1., 0.]), ssdops.laplacian((3,)), 0.5)
    array([0.5, 0. , 0.5])
    """
    check_operator(op)
    dt = plain_scalar(dt)
    if check_stable:
        check_stable_dt(op, dt)
    return u + dt * (op @ u)


def filter_step(u: Array, zeta: Array, dt: Scalar) -> Array:
    r"""DiffNet's update :math:`u + W_{dt}(\zeta)\,u` (paper eq. 4.7), fused where a backend has a kernel.

    Equal to ``explicit_step(u, ssd_from_filters(zeta, dt, ndim=d), 1.0)`` without forming the operator.
    No stability check: a learned operator need not be non-negative.

    Parameters
    ----------
    u : array ``(..., *grid)``
        The images.
    zeta : array ``(..., 2d+1, *grid)``
        The ``2 d + 1`` filter maps of a d-dimensional grid in the star order (2-D: ``(..., 5, H, W)`` in the
        paper's order up, left, down, right, centre; 3-D: 7 maps in :data:`ssdops.SEVEN_POINT` order; 1-D: 3
        maps), the centre last; d is read off the number of maps. Batch axes broadcast against ``u``'s.
    dt : float or 0-d array
        The time step, a Python number or a 0-d array (learnable).

    Returns
    -------
    array
        :math:`u + W_{dt}(\zeta)\,u`, of the broadcast batch shape and ``u``'s dtype.

    Raises
    ------
    TypeError
        If ``u`` and ``zeta`` are not real floating-point arrays of one library and dtype.
    ValueError
        If ``zeta`` does not hold ``2 d + 1`` maps over ``u``'s grid for any d in (1, 2, 3) (the message
        names the shapes), or has a zero-length grid axis.

    See Also
    --------
    ssd_from_filters : The operator :math:`W_{dt}(\zeta)` itself.
    explicit_step : The step with any operator.

    Notes
    -----
    In 2-D, with :math:`\zeta_1 .. \zeta_5` the maps (up, left, down, right, centre),

    .. math::

       u_{ij} \leftarrow u_{ij} + \Delta t\,\bigl(\zeta_1 u_{i-1,j} + \zeta_2 u_{i,j-1} + \zeta_3 u_{i+1,j}
       + \zeta_4 u_{i,j+1} - \zeta_5 u_{ij}\bigr),

    with :math:`\zeta_k` evaluated at :math:`(i, j)` and neighbours outside the grid taken as zero (the
    authors' zero-filled shifts). This is one DiffNet layer's update :math:`F_k = F_{k-1} +
    W_{dt}(\zeta^{(k)}) F_{k-1}`.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (4.7) and section 4.3.1.

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> u = np.arange(6.0).reshape(2, 3); zeta = np.ones((5, 2, 3))
    >>> bool(np.allclose(ssdops.filter_step(u, zeta, 0.1),
    ...                  ssdops.explicit_step(u, ssdops.ssd_from_filters(zeta), 0.1)))
    True
    >>> ssdops.filter_step(np.array([0., 1., 0.]), np.ones((3, 3)), 0.5)     # 1-D: left, right, centre
    array([0.5, 0.5, 0.5])
    """
    xp = namespace(zeta, u)
    dt = plain_scalar(dt)
    ndim = maps_ndim(zeta, u)
    check_grid(tuple(zeta.shape[-ndim:]), f"zeta of shape {tuple(zeta.shape)}")
    return backends.dispatch("filter_step", xp, lambda: filter_step_generic(xp, u, zeta, dt),
                             dict(u=u, zeta=zeta, dt=dt), ndim=ndim, dtype=u.dtype)
