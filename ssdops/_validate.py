"""Argument checks, run once at the public boundary before any dispatch, so that the generic code and every
backend answer a bad call with the same exception.

Value checks (finite, non-negative, stable) read the host at most once per call, and are skipped for traced
values (:func:`ssdops._array.is_traced`): under ``jax.jit`` a bad value gives NaN instead (documented where
it applies).
"""
from __future__ import annotations

import math
import numbers

import numpy as np
from array_api_compat import array_namespace

from ._array import is_traced, namespace, to_numpy
from .stencils import GRID_LETTERS

__all__ = [
    "BOUNDARY_CONDITIONS",
    "check_bc",
    "check_grid",
    "check_grid_shape",
    "check_image",
    "check_ndim",
    "check_time",
    "half_precision",
    "is_concrete",
    "plain_scalar",
    "read_scalars",
]

BOUNDARY_CONDITIONS = ("neumann", "dirichlet")


def check_bc(bc, ghost_gamma=None):
    """ValueError for an unknown boundary condition, ``ghost_gamma`` with Neumann, or a ``ghost_gamma`` that
    is not a finite number >= 0 (a diffusivity)."""
    if not isinstance(bc, str) or bc not in BOUNDARY_CONDITIONS:
        raise ValueError(
            f"unknown boundary condition {bc!r}: supported are {BOUNDARY_CONDITIONS} "
            "(periodic is out of scope: an SSD matrix has no wrap-around)"
        )
    if ghost_gamma is None:
        return
    if bc == "neumann":
        raise ValueError(
            "ghost_gamma is meaningful only with bc='dirichlet': a Neumann boundary has no boundary face"
        )
    value = plain_scalar(ghost_gamma)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"ghost_gamma must be a number or None, got {type(ghost_gamma).__name__}")
    if is_traced(value):  # torch.compile: a symbolic number, whose value a check would bake into the graph
        return
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"ghost_gamma must be a finite diffusivity >= 0, got {ghost_gamma}")


def check_grid(grid, what):
    """ValueError when a grid (``(H, W)``, or any number of axes) has a zero-length axis (``what`` names the
    argument)."""
    if min(grid) < 1:
        raise ValueError(f"{what} has a zero-length grid axis {tuple(grid)}: every grid axis needs length >= 1")


def check_grid_shape(grid_shape, ndim=2):
    """``grid_shape`` as a tuple of Python ints: TypeError unless it is a sequence of integers, ValueError
    unless it has ``ndim`` of them (an int, or a tuple of the allowed counts), all >= 1."""
    try:
        pair = tuple(grid_shape)
    except TypeError:
        raise TypeError(f"grid_shape must be a sequence of {ndim} integers, got {grid_shape!r}") from None
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if len(pair) not in allowed:
        counts = " or ".join(map(str, allowed))
        raise ValueError(f"grid_shape must have {counts} axes, got {len(pair)}: {pair!r}")
    for n in pair:
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral):
            raise TypeError(f"grid_shape must hold integers, got {pair!r} (no silent truncation of {n!r})")
    grid = tuple(int(n) for n in pair)
    check_grid(grid, "grid_shape")
    return grid


def check_ndim(ndim):
    """``ndim`` as an int: TypeError unless an integer, ValueError unless 1, 2 or 3."""
    if isinstance(ndim, (bool, np.bool_)) or not isinstance(ndim, numbers.Integral):
        raise TypeError(f"ndim must be an integer (1, 2 or 3), got {ndim!r}")
    if ndim not in (1, 2, 3):
        raise ValueError(f"ndim must be 1, 2 or 3 (signals, images, volumes), got {ndim}")
    return int(ndim)


def check_image(u, name="u", ndim=2):
    """The namespace of ``u``; ValueError unless ``u`` has shape ``(..., *grid)`` with ``ndim`` grid axes,
    each of length >= 1 (2-D: ``(..., H, W)``)."""
    xp = namespace(u)
    ndim = check_ndim(ndim)
    if u.ndim < ndim:
        raise ValueError(f"{name} must have shape (..., {GRID_LETTERS[ndim]}), got {tuple(u.shape)}")
    check_grid(tuple(u.shape[-ndim:]), f"{name} of shape {tuple(u.shape)}")
    return xp


def half_precision(xp, dtype) -> bool:
    """Whether ``dtype`` has fewer than 32 bits (float16, bfloat16): FFTs and Krylov reductions then run in
    float32 (PyTorch has no half-precision FFT on the CPU, and sums of squares overflow float16)."""
    return xp.finfo(dtype).bits < 32


def plain_scalar(x):
    """A NumPy scalar or 0-d NumPy array as a Python number, anything else unchanged.

    NumPy 2 promotes ``float32_image * np.float64(0.1)`` to float64 (NEP 50); a Python float takes the
    image's dtype. Arrays of other libraries are left alone (they may carry gradients).
    """
    if isinstance(x, np.generic) or (isinstance(x, np.ndarray) and x.ndim == 0):
        return x.item()
    return x


def read_scalars(xp, *values):
    """``(min, max)`` of each of ``values`` (Python numbers or arrays) as Python floats, with at most one
    host read (NaN propagates).

    Arrays
    of namespace ``xp`` are stacked into one array and read together; arrays of another library are read
    on their own (mixed libraries are rare: a NumPy ``dt`` has already become a Python float).
    """
    out = [None] * len(values)
    mine = []
    for i, v in enumerate(values):
        if isinstance(v, numbers.Real) and not hasattr(v, "shape"):
            out[i] = (float(v), float(v))
        elif array_namespace(v) is xp:
            mine.append(i)
        else:
            host = np.asarray(to_numpy(v), dtype=np.float64)
            out[i] = (float(np.min(host)), float(np.max(host)))
    if mine:
        floats = [values[i].dtype for i in mine if not xp.isdtype(values[i].dtype, "bool")]
        dtype = xp.result_type(*floats) if floats else xp.float32
        parts = []
        for i in mine:
            v = xp.astype(values[i], dtype)
            parts += [xp.min(v), xp.max(v)]
        host = to_numpy(xp.stack(parts))
        for k, i in enumerate(mine):
            out[i] = (float(host[2 * k]), float(host[2 * k + 1]))
    return out


def check_time(value, name, *, reading=None):
    """ValueError unless the concrete time step or span ``value`` is finite and >= 0.

    ``reading`` is ``value``'s ``(min, max)`` as read by :func:`read_scalars`; without it ``value`` must be
    a Python number. Traced values are not checked (the caller skips them).
    """
    if reading is None and is_traced(value):  # torch.compile: a symbolic number (see check_bc)
        return
    lo, hi = reading if reading is not None else (float(value), float(value))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be finite, got {_show(value)}")
    if lo < 0:
        raise ValueError(f"{name} must be >= 0, got {_show(value)}")


def is_concrete(*values) -> bool:
    """Whether no value is traced (its value can be read)."""
    return not any(is_traced(v) for v in values)


def _show(value):
    if isinstance(value, numbers.Real):
        return repr(value)
    try:
        host = to_numpy(value)
    except TypeError:
        return repr(value)
    return repr(host.item()) if host.ndim == 0 else f"an array with values in [{host.min()}, {host.max()}]"
