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


def _axis_window(n, step):
    """Along an axis of length ``n``: the slice of pixels ``i`` whose neighbour ``i + step`` is inside,
    the slice of those neighbours, and how many pixels lie before and after the first slice."""
    lo = min(max(0, -step), n)
    hi = max(n - max(0, step), lo)
    return slice(lo, hi), slice(lo + step, hi + step) if hi > lo else slice(0, 0), (lo, n - hi)


def embed(xp, values, pads):
    """Surround ``values`` with zeros: ``pads = ((before, after) rows, (before, after) columns)``."""
    for axis, (before, after) in zip((-2, -1), pads):
        parts = []
        for count in (before, after):
            shape = list(values.shape)
            shape[axis] = count
            parts.append(zeros(xp, tuple(shape), values) if count else None)
        if parts[0] is not None or parts[1] is not None:
            values = xp.concat([p for p in (parts[0], values, parts[1]) if p is not None], axis=axis)
    return values


def neighbour_window(grid_shape, offset):
    """Index tuples ``(pixels, neighbours)`` over the pixels whose neighbour at ``offset`` is in the grid,
    and the zero padding that puts an image of those pixels back on the grid (for :func:`embed`).

    Working on these windows, never on out-of-grid products, keeps a value that points outside the grid
    out of every result, even an inf or NaN (``inf * 0`` would be NaN).
    """
    (rows, rows_n, pad_rows), (cols, cols_n, pad_cols) = (
        _axis_window(n, step) for n, step in zip(grid_shape, offset)
    )
    return (..., rows, cols), (..., rows_n, cols_n), (pad_rows, pad_cols)


def shift(xp, x, offset):
    """``y[..., i, j] = x[..., i + dy, j + dx]``, zero where that pixel is outside the grid."""
    _, neighbours, pads = neighbour_window(tuple(x.shape[-2:]), offset)
    return embed(xp, x[neighbours], pads)


def zero_outside(xp, x, offset):
    """``x`` where the pixel's neighbour at ``offset`` is inside the grid, exactly 0 elsewhere."""
    pixels, _, pads = neighbour_window(tuple(x.shape[-2:]), offset)
    return embed(xp, x[pixels], pads)


def shifted_product(xp, d, u, offset):
    """``y[..., p] = d[..., p] * u[..., p + offset]`` for in-grid neighbours, 0 elsewhere (broadcasting)."""
    pixels, neighbours, pads = neighbour_window(tuple(u.shape[-2:]), offset)
    return embed(xp, d[pixels] * u[neighbours], pads)


def sum_over_grid(xp, x):
    """Sum over the last two (grid) axes."""
    return xp.sum(x, axis=(-2, -1))
