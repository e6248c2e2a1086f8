"""Array-API plumbing shared by every module: namespaces, devices, dtypes and zero-filled shifts.

Public functions take arrays from any library; they call :func:`namespace` once at the boundary and pass
``xp`` to private helpers. Nothing here copies data to the host except :func:`to_numpy`, which says so.
"""
from __future__ import annotations

import sys

import numpy as np
from array_api_compat import array_namespace, device, is_cupy_array, is_torch_array

__all__ = ["namespace", "to_numpy"]


def namespace(*arrays):
    """The common array namespace of ``arrays`` (``None`` entries ignored).

    Raises TypeError when the arrays come from different libraries, or are not floating point; ValueError
    when they live on different devices; TypeError when their floating dtypes differ (no silent promotion:
    build operators with ``like=`` to match an image's dtype).
    """
    arrays = [a for a in arrays if a is not None]
    try:
        xp = array_namespace(*arrays)
    except TypeError as err:
        libs = sorted({type(a).__module__.split(".")[0] + "." + type(a).__name__ for a in arrays})
        raise TypeError(f"mixed array libraries in one call: {', '.join(libs)} ({err})") from None
    first = arrays[0]
    for a in arrays:
        if not xp.isdtype(a.dtype, "real floating"):
            raise TypeError(f"expected a real floating-point array, got dtype {a.dtype}")
    for a in arrays[1:]:
        # A traced JAX value has no device (None): nothing to compare.
        if None not in (device(a), device(first)) and device(a) != device(first):
            raise ValueError(f"arrays on different devices: {device(first)} and {device(a)}")
        if a.dtype != first.dtype:
            raise TypeError(
                f"mixed floating dtypes {first.dtype} and {a.dtype}; cast one, or build the operator "
                "with like=<image> so that it takes the image's dtype"
            )
    return xp


def like_namespace(like):
    """(xp, dtype, device) of ``like``; NumPy float64 on the CPU for ``None``."""
    if like is None:
        like = np.empty(0, dtype=np.float64)
    xp = namespace(like)
    return xp, like.dtype, device(like)


def to_numpy(x):
    """Copy ``x`` to a NumPy array on the host (explicitly a host round-trip: for export and analysis)."""
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x)
    if is_torch_array(x):
        return x.detach().cpu().numpy()
    if is_cupy_array(x):
        return x.get()
    return np.from_dlpack(x)


def is_traced(x) -> bool:
    """True for a JAX tracer: its values are unknown, so value checks must be skipped."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.core.Tracer)


def fast_path(name, xp):
    """The kernel registered in ``backends`` for operation ``name`` on ``xp``, or ``None``.

    The core never needs it: without the ``backends`` package every operation runs the generic code.
    """
    try:
        from backends import lookup
    except ImportError:
        return None
    return lookup(name, xp)


def zeros(xp, shape, like):
    return xp.zeros(shape, dtype=like.dtype, device=device(like))


def shift_axis(xp, x, step, axis):
    """``y[..., i, ...] = x[..., i + step, ...]`` along ``axis`` (-1 or -2), zero outside the array."""
    n = x.shape[axis]
    if step == 0:
        return x
    pad_shape = list(x.shape)
    pad_shape[axis] = min(abs(step), n)
    pad = zeros(xp, tuple(pad_shape), x)
    if abs(step) >= n:
        return pad
    if axis == -2:
        kept = x[..., step:, :] if step > 0 else x[..., :step, :]
    else:
        kept = x[..., step:] if step > 0 else x[..., :step]
    parts = [kept, pad] if step > 0 else [pad, kept]
    return xp.concat(parts, axis=axis)


def shift(xp, x, offset):
    """``y[..., i, j] = x[..., i + dy, j + dx]``, zero where that pixel is outside the grid."""
    dy, dx = offset
    return shift_axis(xp, shift_axis(xp, x, dy, -2), dx, -1)


def in_grid_mask(xp, grid_shape, offset, like):
    """1 where pixel (i, j) has its neighbour (i + dy, j + dx) inside the grid, else 0 (dtype of like)."""
    ones = xp.ones(grid_shape, dtype=like.dtype, device=device(like))
    return shift(xp, ones, offset)


def sum_over_grid(xp, x):
    """Sum over the last two (grid) axes."""
    return xp.sum(x, axis=(-2, -1))
