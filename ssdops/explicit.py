"""Explicit (forward Euler) diffusion steps and their stability limit."""
from __future__ import annotations

import math

from . import backends
from ._array import namespace
from ._kernels import filter_step_generic, zero_outside
from ._validate import check_grid, check_operator, check_time, is_concrete, plain_scalar, read_scalars
from .stencils import CENTRE

__all__ = ["explicit_step", "filter_step", "stable_dt", "check_stable_dt"]


def stable_dt(op):
    r"""The largest :math:`\Delta t` for which :math:`I + \Delta t\,A` has no negative entries.

    That is :math:`\min_p 1/(-A_{pp})` over pixels with a negative centre coefficient (``inf`` when there is
    none), and ``0.0`` when an in-grid off-diagonal entry is negative (no positive step keeps the matrix
    non-negative). A non-negative iteration matrix with unit row sums is a maximum-principle-preserving
    explicit scheme. Over a batch of operators, the smallest limit. Returns a Python float: this reads the
    values on the host (once). ValueError when an in-grid entry is NaN or inf (no step is stable, and the
    bound would be NaN).

    >>> import ssdops
    >>> ssdops.stable_dt(ssdops.laplacian((8, 8)))
    0.25
    """
    check_operator(op)
    xp = namespace(op.diagonals)
    canonical = [zero_outside(xp, op.diagonals[..., k, :, :], o) for k, o in enumerate(op.offsets)]
    finite = xp.all(xp.stack([xp.all(xp.isfinite(d)) for d in canonical]))
    off_diagonal = [xp.min(d) for d, o in zip(canonical, op.offsets) if o != CENTRE]
    centre = [xp.min(d) for d, o in zip(canonical, op.offsets) if o == CENTRE]
    (ok, _), *bounds = read_scalars(xp, finite, *off_diagonal, *centre)
    if ok != 1:
        raise ValueError("the operator has NaN or inf entries: no explicit step with it is stable")
    if any(lo < 0 for lo, _ in bounds[: len(off_diagonal)]):
        return 0.0
    if not centre:
        return math.inf
    most_negative = bounds[-1][0]
    return math.inf if most_negative >= 0 else 1.0 / -most_negative


def check_stable_dt(op, dt):
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


def explicit_step(u, op, dt, *, check_stable=False):
    r"""One forward-Euler step :math:`u + \Delta t\,A u` (paper eq. 2.10).

    ``dt`` may be a Python number or a 0-d array (learnable); a NumPy scalar is taken as a Python float, so
    that it keeps ``u``'s dtype. With ``check_stable=True`` a step that is negative, not finite or above
    :func:`stable_dt` raises ValueError (this reads the host; off by default because learned operators,
    such as DiffNet's, need not be non-negative).

    >>> import numpy as np, ssdops
    >>> u = np.zeros((3, 3)); u[1, 1] = 1.0
    >>> ssdops.explicit_step(u, ssdops.laplacian((3, 3)), 0.25)[1]
    array([0.25, 0.  , 0.25])
    """
    check_operator(op)
    dt = plain_scalar(dt)
    if check_stable:
        check_stable_dt(op, dt)
    return u + dt * (op @ u)


def filter_step(u, zeta, dt):
    r"""DiffNet's update :math:`u + W_{dt}(\zeta)\,u` (paper eq. 4.7), fused where a backend has a kernel.

    Equal to ``explicit_step(u, ssd_from_filters(zeta), dt)``: ``zeta`` is ``(..., 5, H, W)`` in the paper's
    order (up, left, down, right, centre), ``u`` is ``(..., H, W)`` and ``dt`` a Python number or a 0-d array
    (learnable). No stability check: a learned operator need not be non-negative.

    >>> import numpy as np, ssdops
    >>> u = np.arange(6.0).reshape(2, 3); zeta = np.ones((5, 2, 3))
    >>> bool(np.allclose(ssdops.filter_step(u, zeta, 0.1),
    ...                  ssdops.explicit_step(u, ssdops.ssd_from_filters(zeta), 0.1)))
    True
    """
    xp = namespace(zeta, u)
    dt = plain_scalar(dt)
    if zeta.ndim < 3 or zeta.shape[-3] != 5:
        raise ValueError(f"zeta must have shape (..., 5, H, W), got {tuple(zeta.shape)}")
    check_grid(tuple(zeta.shape[-2:]), f"zeta of shape {tuple(zeta.shape)}")
    if u.ndim < 2 or tuple(u.shape[-2:]) != tuple(zeta.shape[-2:]):
        raise ValueError(
            f"image of shape {tuple(u.shape)} does not match the operator's grid {tuple(zeta.shape[-2:])} "
            f"(zeta of shape {tuple(zeta.shape)})"
        )
    fast = backends.lookup("filter_step", xp)
    if fast is not None:
        return fast(u=u, zeta=zeta, dt=dt)
    return filter_step_generic(xp, u, zeta, dt)
