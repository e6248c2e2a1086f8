"""Explicit (forward Euler) diffusion steps and their stability limit."""
from __future__ import annotations

import math

from ._array import fast_path, is_traced, namespace, shifted_product, to_numpy, zero_outside
from .stencils import CENTRE, FIVE_POINT

__all__ = ["explicit_step", "filter_step", "stable_dt", "check_stable_dt"]


def stable_dt(op):
    r"""The largest :math:`\Delta t` for which :math:`I + \Delta t\,A` has no negative entries.

    That is :math:`\min_p 1/(-A_{pp})` over pixels with a negative centre coefficient (``inf`` when there is
    none), and ``0.0`` when an in-grid off-diagonal entry is negative (no positive step keeps the matrix
    non-negative). A non-negative iteration matrix with unit row sums is a maximum-principle-preserving
    explicit scheme. Over a batch of operators, the smallest limit. Returns a Python float: this reads the
    values on the host (one scalar).

    >>> import ssdops
    >>> ssdops.stable_dt(ssdops.laplacian((8, 8)))
    0.25
    """
    xp = namespace(op.diagonals)
    worst_offdiag = None
    for k, o in enumerate(op.offsets):
        if o == CENTRE:
            continue
        d = zero_outside(xp, op.diagonals[..., k, :, :], o)
        m = xp.min(d)
        worst_offdiag = m if worst_offdiag is None else xp.minimum(worst_offdiag, m)
    if worst_offdiag is not None and float(to_numpy(worst_offdiag)) < 0:
        return 0.0
    if CENTRE not in op.offsets:
        return math.inf
    most_negative = float(to_numpy(xp.min(op.diagonal(CENTRE))))
    return math.inf if most_negative >= 0 else 1.0 / -most_negative


def check_stable_dt(op, dt):
    """Raise ValueError when ``dt`` exceeds :func:`stable_dt` (skipped for traced JAX values)."""
    if is_traced(op.diagonals) or is_traced(dt):
        return
    dt = float(to_numpy(dt)) if not isinstance(dt, (int, float)) else float(dt)
    limit = stable_dt(op)
    if dt > limit:
        raise ValueError(
            f"unstable explicit step: dt={dt:g} exceeds the stability limit {limit:g} of this operator "
            "(I + dt*op would have negative entries); take a smaller dt or more steps, use an implicit "
            "scheme, or pass check_stable=False to override"
        )


def explicit_step(u, op, dt, *, check_stable=False):
    r"""One forward-Euler step :math:`u + \Delta t\,A u` (paper eq. 2.10).

    ``dt`` may be a Python number or a 0-d array (learnable). With ``check_stable=True`` a step above
    :func:`stable_dt` raises ValueError (this reads one scalar on the host; off by default because learned
    operators, such as DiffNet's, need not be non-negative).

    >>> import numpy as np, ssdops
    >>> u = np.zeros((3, 3)); u[1, 1] = 1.0
    >>> ssdops.explicit_step(u, ssdops.laplacian((3, 3)), 0.25)[1]
    array([0.25, 0.  , 0.25])
    """
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
    if zeta.ndim < 3 or zeta.shape[-3] != 5:
        raise ValueError(f"zeta must have shape (..., 5, H, W), got {tuple(zeta.shape)}")
    if u.ndim < 2 or tuple(u.shape[-2:]) != tuple(zeta.shape[-2:]):
        raise ValueError(
            f"image of shape {tuple(u.shape)} does not match the operator's grid {tuple(zeta.shape[-2:])} "
            f"(zeta of shape {tuple(zeta.shape)})"
        )
    fast = fast_path("filter_step", xp)
    if fast is not None:
        return fast(u, zeta, dt)
    return filter_step_generic(xp, u, zeta, dt)


def filter_step_generic(xp, u, zeta, dt):
    """Reference :func:`filter_step`: ``u + dt (sum_{k<5} z_k u(. + o_k) - z_5 u)``, products only over
    in-grid neighbours; the diagonals ``dt * zeta`` are never formed."""
    s = -zeta[..., 4, :, :] * u
    for k, offset in enumerate(FIVE_POINT[:4]):
        s = s + shifted_product(xp, zeta[..., k, :, :], u, offset)
    return u + dt * s
