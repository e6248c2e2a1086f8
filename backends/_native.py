"""The native CPU kernels: ``native/cpu.cpp`` (the arithmetic of the per-pixel functions of
``cuda/stencil.cuh``, the code the GPU runs, evaluated over whole rows split over threads: the same bits as
the host build of the GPU code, tests/test_native.py), built at install by setup.py into the shared library
``_native_kernels*.so`` next to this module and loaded here with ctypes. ``_numpy.NATIVE_OPERATIONS`` lists
the operations whose NumPy kernel uses them (also run by PyTorch's CPU and dask's kernels).

The library is optional. :data:`AVAILABLE` says whether it loaded and :data:`REASON` why not (no compiler at
install, a failed build, ``SSDOPS_NO_NATIVE=1``, a stale library). The NumPy kernels (``_numpy.py``) call the
functions below first; each returns ``NotImplemented`` for a case it does not take (another dtype, mixed
dtypes, a grid of 2^31 pixels or more, a diffusivity without a code, the library absent), and the NumPy
kernel then runs its own blocked code. ctypes releases the GIL for the duration of a call; the rows of the
output are split over ``THREADS`` threads when the output has at least ``PARALLEL_MIN_ELEMENTS`` elements.
"""
from __future__ import annotations

import ctypes
import math
import os
import pathlib
import sysconfig
from typing import Any

import numpy as np

__all__ = ["AVAILABLE", "LIBRARY", "REASON", "THREADS", "apply", "filter_step", "perona_malik_step"]

#: The calling convention this module speaks (``ssdops_native_abi()`` of the library).
ABI = 1

#: Threads over rows (``SSDOPS_NUM_THREADS``, default the cores this process may use, as in ``_numpy.py``).
THREADS = int(os.environ.get("SSDOPS_NUM_THREADS", 0)) or len(os.sched_getaffinity(0))

#: Below this many output elements one thread does all rows: starting threads costs more than it saves.
PARALLEL_MIN_ELEMENTS = 1 << 18

#: Diffusivity name -> ``enum Diffusivity`` of ``cuda/stencil.cuh``.
DIFFUSIVITY_CODES = {"perona_malik": 0, "perona_malik_exp": 1, "charbonnier": 2, "total_variation": 3,
                     "linear": 4}
_NEUMANN, _DIRICHLET_EDGE, _DIRICHLET_GHOST = 0, 1, 2  # enum Boundary of cuda/stencil.cuh

_SUFFIXES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
_CTYPES = {"f32": ctypes.c_float, "f64": ctypes.c_double}


def _find() -> pathlib.Path | None:
    here = pathlib.Path(__file__).resolve().parent
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    exact = here / f"_native_kernels{suffix}"
    if exact.is_file():
        return exact
    return next(iter(sorted(here.glob("_native_kernels*.so"))), None)


def _load() -> tuple[Any, pathlib.Path | None, str | None]:
    """(library, its path, None), or (None, path or None, the reason it is not used)."""
    if os.environ.get("SSDOPS_NO_NATIVE", "") not in ("", "0"):
        return None, None, "SSDOPS_NO_NATIVE is set"
    path = _find()
    if path is None:
        return None, None, ("the library _native_kernels was not built (no C++17 compiler at install, or the build "
                            "failed: see the install's output)")
    try:
        lib = ctypes.CDLL(str(path))
        abi = lib.ssdops_native_abi()
    except (OSError, AttributeError) as error:
        return None, path, f"{path.name} does not load: {error}"
    if abi != ABI:
        return None, path, f"{path.name} speaks version {abi} of the calling convention, not {ABI}: reinstall ssdops"
    i32, i64, p = ctypes.c_int, ctypes.c_longlong, ctypes.c_void_p
    for suffix, real in _CTYPES.items():
        f = getattr(lib, f"ssdops_native_apply_{suffix}")
        f.argtypes = [p, p, p, p, p, i32, i32, i32, i32, i64, i64, i64, i32, p, i32]
        f.restype = None
        f = getattr(lib, f"ssdops_native_filter_step_{suffix}")
        f.argtypes = [p, p, real, i32, i32, i32, i32, i64, i64, i64, p, i32]
        f.restype = None
        f = getattr(lib, f"ssdops_native_perona_malik_step_{suffix}")
        f.argtypes = [p, real, real, real, i32, i32, i32, i32, i64, i32, i32, p, i32]
        f.restype = ctypes.c_int  # 1: a gamma buffer could not be allocated
    return lib, path, None


_LIB, LIBRARY, REASON = _load()
#: Whether the native kernels are in use (else :data:`REASON` says why not).
AVAILABLE = _LIB is not None


def _suffix(*arrays: Any) -> str | None:
    """The kernels' suffix for arrays of one native-order float32 / float64 dtype, else None."""
    dtype = arrays[0].dtype
    if any(a.dtype != dtype for a in arrays) or not dtype.isnative:
        return None
    return _SUFFIXES.get(dtype)


def _grid(shape: tuple[int, ...], ndim: int) -> tuple[int, int, int] | None:
    """(D, H, W) of the last ``ndim`` axes (1-D: D = H = 1), or None past the kernels' 32-bit extents."""
    grid = (1,) * (3 - ndim) + tuple(int(n) for n in shape[len(shape) - ndim :])
    return grid if math.prod(grid) < 2**31 else None  # type: ignore[return-value]


def _operand(x: np.ndarray, batch: tuple[int, ...], core_ndim: int) -> tuple[np.ndarray, int]:
    """(array whose first element is image 0, image stride in elements) of ``x`` broadcast over ``batch``:
    a view when every core is C-contiguous and the images lie one stride apart (0: shared or broadcast),
    else a contiguous (broadcast) copy."""
    core = x.shape[x.ndim - core_ndim :]
    xb = np.broadcast_to(x, batch + core)
    item = xb.itemsize
    expected = item
    contiguous = True
    for n, s in zip(reversed(core), reversed(xb.strides[len(batch) :])):
        if n > 1 and s != expected:
            contiguous = False
        expected *= n
    if contiguous and xb.size > 0:
        # One stride s between consecutive images: axis j of the batch steps s * (images after it), or 0
        # for every axis (one image read by all).
        strides = [s for n, s in zip(batch, xb.strides[: len(batch)]) if n > 1]
        sizes = [n for n in batch if n > 1]
        if all(s == 0 for s in strides):
            return xb, 0
        inner = strides[-1]
        if inner % item == 0 and all(s == inner * math.prod(sizes[j + 1 :]) for j, s in enumerate(strides)):
            return xb, inner // item
    return np.ascontiguousarray(xb), math.prod(core)


def _ptr(x: np.ndarray) -> int:
    return x.__array_interface__["data"][0]


def _threads(size: int) -> int:
    return THREADS if size >= PARALLEL_MIN_ELEMENTS else 1


def _into(result: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return result
    np.copyto(out, result)
    return out


def _fresh_out(out: np.ndarray | None, shape: tuple[int, ...], dtype: Any, *inputs: np.ndarray) -> np.ndarray:
    """``out`` itself when the kernel can write it (C-contiguous, writable, the dtype, sharing no memory with
    the inputs), else a new array (copied into ``out`` afterwards)."""
    if (out is not None and out.flags.c_contiguous and out.flags.writeable and out.dtype == dtype
            and tuple(out.shape) == shape and not any(np.may_share_memory(out, a) for a in inputs)):
        return out
    return np.empty(shape, dtype=dtype)


def apply(diagonals: Any, offsets: tuple, u: Any, transpose: bool, out: Any = None) -> Any:
    """``A u`` or ``A^T u`` (``transpose``) on a 1-, 2- or 3-D grid (the length of the offsets), into ``out``
    when given; ``NotImplemented`` for a case the library does not take."""
    if _LIB is None or not isinstance(diagonals, np.ndarray) or not isinstance(u, np.ndarray):
        return NotImplemented
    suffix = _suffix(diagonals, u)
    ndim = len(offsets[0]) if offsets else 0
    if suffix is None or ndim not in (1, 2, 3) or (out is not None and not isinstance(out, np.ndarray)):
        return NotImplemented
    grid = _grid(u.shape, ndim)
    if grid is None:
        return NotImplemented
    batch = np.broadcast_shapes(diagonals.shape[: diagonals.ndim - ndim - 1], u.shape[: u.ndim - ndim])
    d, d_stride = _operand(diagonals, batch, ndim + 1)
    v, u_stride = _operand(u, batch, ndim)
    shape = batch + u.shape[u.ndim - ndim :]
    result = _fresh_out(out, shape, u.dtype, diagonals, u)
    columns = list(zip(*((0,) * (3 - ndim) + tuple(int(c) for c in o) for o in offsets)))
    oz, oy, ox = (np.ascontiguousarray(c, dtype=np.int32) for c in columns)
    images = math.prod(batch)
    if result.size:
        getattr(_LIB, f"ssdops_native_apply_{suffix}")(
            _ptr(d), _ptr(v), _ptr(oz), _ptr(oy), _ptr(ox), len(offsets), *grid, images, d_stride, u_stride,
            int(bool(transpose)), _ptr(result), _threads(result.size))
    return result if result is out else _into(result, out)


def _number(value: Any, dtype: np.dtype) -> float | None:
    """``value`` (a Python number, or a NumPy scalar or 0-d array of ``dtype``) as a float, else None (another
    dtype would change the generic code's promotion)."""
    if isinstance(value, (np.ndarray, np.generic)):  # np.float64 is a float, but not a weak scalar
        return float(value) if value.shape == () and value.dtype == dtype else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def filter_step(u: Any, zeta: Any, dt: Any, ndim: int) -> Any:
    """``u + W_dt(zeta) u`` on the last ``ndim`` axes; ``NotImplemented`` for a case the library does not take."""
    if _LIB is None or not isinstance(u, np.ndarray) or not isinstance(zeta, np.ndarray) or ndim not in (1, 2, 3):
        return NotImplemented
    suffix = _suffix(u, zeta)
    step = None if suffix is None else _number(dt, u.dtype)
    grid = _grid(u.shape, ndim)
    if step is None or grid is None:
        return NotImplemented
    batch = np.broadcast_shapes(zeta.shape[: zeta.ndim - ndim - 1], u.shape[: u.ndim - ndim])
    z, z_stride = _operand(zeta, batch, ndim + 1)
    v, u_stride = _operand(u, batch, ndim)
    out = np.empty(batch + u.shape[u.ndim - ndim :], dtype=u.dtype)
    if out.size:
        getattr(_LIB, f"ssdops_native_filter_step_{suffix}")(
            _ptr(z), _ptr(v), step, ndim, *grid, math.prod(batch), z_stride, u_stride, _ptr(out),
            _threads(out.size))
    return out


def perona_malik_step(u: Any, dt: Any, lam: Any, diffusivity: Any, bc: str, ghost_gamma: Any, ndim: int) -> Any:
    """One explicit Perona-Malik step on the last ``ndim`` axes; ``NotImplemented`` for a case the library does
    not take (a diffusivity other than the named built-ins among them)."""
    if (_LIB is None or not isinstance(u, np.ndarray) or ndim not in (1, 2, 3) or not isinstance(diffusivity, str)
            or diffusivity not in DIFFUSIVITY_CODES or bc not in ("neumann", "dirichlet")):
        return NotImplemented
    suffix = _suffix(u)
    grid = _grid(u.shape, ndim)
    numbers = [_number(x, u.dtype) for x in (dt, lam, 0.0 if ghost_gamma is None else ghost_gamma)]
    if suffix is None or grid is None or any(x is None for x in numbers):
        return NotImplemented
    mode = _NEUMANN if bc == "neumann" else _DIRICHLET_EDGE if ghost_gamma is None else _DIRICHLET_GHOST
    v = np.ascontiguousarray(u)
    out = np.empty(u.shape, dtype=u.dtype)
    if out.size and getattr(_LIB, f"ssdops_native_perona_malik_step_{suffix}")(
            _ptr(v), *numbers, ndim, *grid, math.prod(u.shape[: u.ndim - ndim]), DIFFUSIVITY_CODES[diffusivity],
            mode, _ptr(out), _threads(out.size)):
        raise MemoryError("ssdops' native Perona-Malik step could not allocate its gamma buffers")
    return out
