r"""CuPy fast paths: CUDA kernels from ``backends/cuda/`` (``cupy.RawModule``), one thread per output pixel.

The operations on 2-D (H x W) and 3-D (D x H x W) grids (offsets ``o_k`` of the grid's dimension, products
only over in-grid neighbours):

- ``ssd_apply``: :math:`(A u)[p] = \sum_k d_k[p]\, u[p + o_k]`;
- ``ssd_apply_transpose``: :math:`(A^T u)[q] = \sum_k d_k[q - o_k]\, u[q - o_k]`;
- ``filter_step``: :math:`u + dt\,(\sum_{k<2d} z_k[p]\, u[p + o_k] - z_{2d}[p]\, u[p])` (``star(d)``:
  FIVE_POINT, SEVEN_POINT);
- ``perona_malik_step``: :math:`u + dt\,L(\gamma)\,u` with :math:`L` = ``divergence_form(gamma, bc,
  ghost_gamma)`` and :math:`\gamma = g(|\nabla_{back} u|^2, \lambda)`, zero Dirichlet ghosts.

The CUDA code lives in ``cuda/stencil.cuh`` (the work of one thread as ``__host__ __device__`` functions,
float and double) and ``cuda/kernels.cu`` (the ``extern "C" __global__`` entry points
``ssdops_<operation>_<f32|f64>``). NVRTC compiles them (:func:`kernel_source`: one text, the header inlined)
once per process and device; CuPy caches the binary on disk.
The tests compile the same files with nvcc and run them on the host through ``cuda/emulate.cpp``, which
calls the thread functions from loops over blocks and threads: see ``tests/test_cuda_kernels.py``.

This module splits each operation into a *launch plan* (:func:`plan_apply`, :func:`plan_filter_step`,
:func:`plan_perona_malik_step`: array preparation, argument tuple and grid, written for any NumPy-like
namespace ``xp``) and the launch itself. The tests run the very plans that the GPU receives through the
host emulation with ``xp = numpy``, so the module imports without CuPy; its kernels are registered only
when CuPy is installed.

Why this is fast: each thread reads its K diagonal values and K neighbours and writes one value, so the
whole operation is a single pass over memory with no temporaries (neighbour reads are coalesced and hit
the cache of the adjacent threads); the in-grid test per offset is a register comparison, and a diagonal
value pointing outside is never loaded. The Perona-Malik thread recomputes gamma at its 2d neighbours
instead of storing a gamma image: arithmetic is cheaper than a second pass over memory. Batch axes
broadcast through a per-operand batch stride (0 for a shared operator or image); only unusual broadcasting
(a broadcast axis next to a real one) materialises a copy. No gradients: CuPy has no autograd.
"""
from __future__ import annotations

import functools
import math
import pathlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ssdops._kernels import maps_ndim

from . import Adapter, register

try:
    import cupy
except ModuleNotFoundError:  # the launch plans still import (the tests run them on the host)
    cupy = None

__all__ = [
    "ADAPTER",
    "CUDA_DIR",
    "kernel_source",
    "KERNEL_OPERATIONS",
    "Launch",
    "filter_step",
    "perona_malik_step",
    "plan_apply",
    "plan_filter_step",
    "plan_perona_malik_step",
    "ssd_apply",
    "ssd_apply_transpose",
]

#: The folder of the CUDA sources (package data of ``ssdops.backends``).
CUDA_DIR = pathlib.Path(__file__).resolve().with_name("cuda")

#: The operations with a kernel in ``cuda/kernels.cu`` (``SSDOPS_KERNELS`` in ``cuda/stencil.cuh``).
KERNEL_OPERATIONS = ("ssd_apply", "filter_step", "perona_malik_step")

#: Threads per block.
BLOCK = 256

#: Element type -> suffix of the kernel names.
SUFFIXES = {"float32": "f32", "float64": "f64"}

#: Diffusivity name (``ssdops.diffusivity``) -> ``enum Diffusivity`` of ``cuda/stencil.cuh``.
DIFFUSIVITY_CODES = {
    "perona_malik": 0,
    "perona_malik_exp": 1,
    "charbonnier": 2,
    "total_variation": 3,
    "linear": 4,
}

# enum Boundary of cuda/stencil.cuh.
_NEUMANN, _DIRICHLET_EDGE, _DIRICHLET_GHOST = 0, 1, 2


@dataclass(frozen=True)
class Launch:
    """One kernel launch: ``kernel`` (``ssdops_<operation>_<suffix>``) on ``grid`` blocks of ``block``
    threads with the arguments ``args`` (arrays of the plan's namespace, ``numpy.int32`` /
    ``numpy.int64`` scalars, in the order of ``SSDOPS_KERNELS``); ``out`` is the result it writes."""

    operation: str
    suffix: str
    grid: int
    block: int
    args: tuple
    out: Any

    @property
    def kernel(self):
        return f"ssdops_{self.operation}_{self.suffix}"


def _suffix(dtype):
    name = np.dtype(str(dtype)).name
    try:
        return SUFFIXES[name]
    except KeyError:
        raise TypeError(
            f"the CuPy kernels of ssdops take float32 or float64 arrays, got {name}; cast the arrays, or "
            "run the generic code with ssdops.backends.use_generic()"
        ) from None


def _grid(shape, ndim):
    """(D, H, W) of the last ``ndim`` (2 or 3) axes of ``shape``: a 2-D grid is one plane, D = 1."""
    if ndim not in (2, 3):
        raise ValueError(f"the CuPy kernels of ssdops take 2-D or 3-D grids, got {ndim}-D")
    return (1,) * (3 - ndim) + tuple(int(n) for n in shape[len(shape) - ndim :])


def _geometry(images, grid, block):
    """(images, grid extents as int32 scalars, number of blocks) for one thread per pixel of ``images``
    images on the grid (D, H, W)."""
    if math.prod(grid) >= 2**31:
        raise ValueError(f"the CuPy kernels of ssdops take grids of fewer than 2^31 pixels, got {grid}")
    return np.int64(images), tuple(np.int32(n) for n in grid), -(-images * math.prod(grid) // block)


def _batch_operand(xp, x, batch, core_ndim):
    """(contiguous array, batch stride in elements) of ``x`` broadcast over ``batch``: stride 0 when ``x``
    has no real batch axes, one core per batch index when its batch axes are ``batch``; otherwise (a
    broadcast axis next to a real one) a broadcast copy."""
    core = tuple(x.shape[x.ndim - core_ndim :])
    if math.prod(x.shape[: x.ndim - core_ndim]) == 1:
        return xp.ascontiguousarray(xp.reshape(x, core)), 0
    if tuple(x.shape[: x.ndim - core_ndim]) != tuple(batch):
        x = xp.broadcast_to(x, tuple(batch) + core)
    return xp.ascontiguousarray(x), math.prod(core)


def _scalar(xp, value, dtype):
    """A one-element array of ``value`` (a number or a 0-d array of ``xp``, which stays on its device)."""
    return xp.reshape(xp.asarray(value, dtype=dtype), (1,))


def plan_apply(xp, diagonals, offsets, u, transpose, *, block=BLOCK, out=None):
    """The launch of ``A u`` (``transpose=False``) or ``A^T u`` on a 2-D or 3-D grid (the length of the
    offsets); ``diagonals`` ``(..., K, *grid)``, ``u`` ``(..., *grid)``, batch axes broadcast."""
    ndim = len(offsets[0])
    grid = _grid(u.shape, ndim)
    batch = np.broadcast_shapes(tuple(diagonals.shape[: diagonals.ndim - ndim - 1]),
                                tuple(u.shape[: u.ndim - ndim]))
    d, d_stride = _batch_operand(xp, diagonals, batch, ndim + 1)
    v, u_stride = _batch_operand(xp, u, batch, ndim)
    # Offsets as (depth, row, column) columns: a 2-D offset has depth 0.
    oz, oy, ox = (xp.asarray([int(c) for c in column], dtype=xp.int32)
                  for column in zip(*((0,) * (3 - ndim) + tuple(o) for o in offsets)))
    images, (D, H, W), blocks = _geometry(math.prod(batch), grid, block)
    shape = tuple(batch) + tuple(u.shape[u.ndim - ndim :])
    if out is None or not out.flags.c_contiguous:
        out = xp.empty(shape, dtype=u.dtype)
    args = (d, v, oz, oy, ox, np.int32(len(offsets)), D, H, W, images, np.int64(d_stride), np.int64(u_stride),
            np.int32(bool(transpose)), out)
    return Launch("ssd_apply", _suffix(u.dtype), blocks, block, args, out)


def plan_filter_step(xp, u, zeta, dt, *, block=BLOCK):
    """The launch of ``u + W_dt(zeta) u``; ``zeta`` ``(..., 2d + 1, *grid)`` (d = 2: ``(..., 5, H, W)``, d = 3:
    ``(..., 7, D, H, W)``, in ``star(d)`` order), ``u`` ``(..., *grid)``, ``dt`` a number or a 0-d array."""
    ndim = maps_ndim(zeta, u)
    grid = _grid(u.shape, ndim)
    batch = np.broadcast_shapes(tuple(zeta.shape[: zeta.ndim - ndim - 1]), tuple(u.shape[: u.ndim - ndim]))
    z, z_stride = _batch_operand(xp, zeta, batch, ndim + 1)
    v, u_stride = _batch_operand(xp, u, batch, ndim)
    images, (D, H, W), blocks = _geometry(math.prod(batch), grid, block)
    out = xp.empty(tuple(batch) + tuple(u.shape[u.ndim - ndim :]), dtype=u.dtype)
    args = (z, v, _scalar(xp, dt, u.dtype), np.int32(ndim), D, H, W, images, np.int64(z_stride),
            np.int64(u_stride), out)
    return Launch("filter_step", _suffix(u.dtype), blocks, block, args, out)


def plan_perona_malik_step(xp, u, dt, lam, diffusivity, bc, ghost_gamma, ndim=2, *, block=BLOCK):
    """The launch of one explicit Perona-Malik step of ``u`` ``(..., *grid)`` (``ndim`` grid axes, 2 or 3)
    with the named diffusivity."""
    # Arguments were validated by the core: a built-in diffusivity, bc "neumann" or "dirichlet".
    mode = _NEUMANN if bc == "neumann" else _DIRICHLET_EDGE if ghost_gamma is None else _DIRICHLET_GHOST
    grid = _grid(u.shape, ndim)
    images, (D, H, W), blocks = _geometry(math.prod(u.shape[: u.ndim - ndim]), grid, block)
    out = xp.empty(tuple(u.shape), dtype=u.dtype)
    ghost = 0.0 if ghost_gamma is None else ghost_gamma
    args = (xp.ascontiguousarray(u), _scalar(xp, dt, u.dtype), _scalar(xp, lam, u.dtype),
            _scalar(xp, ghost, u.dtype), np.int32(ndim), D, H, W, images,
            np.int32(DIFFUSIVITY_CODES[diffusivity]), np.int32(mode), out)
    return Launch("perona_malik_step", _suffix(u.dtype), blocks, block, args, out)


# --- the launches on the GPU ------------------------------------------------------------------------------
def kernel_source():
    """``cuda/kernels.cu`` with its ``#include "..."`` of the folder's headers inlined: CuPy's on-disk cache
    of compiled modules is keyed by this text, so a changed header must change it (an include path would
    not)."""
    lines = []
    for line in (CUDA_DIR / "kernels.cu").read_text().splitlines():
        header = line.strip().removeprefix('#include "').removesuffix('"')
        lines.append((CUDA_DIR / header).read_text() if line.startswith('#include "') else line)
    return "\n".join(lines) + "\n"


@functools.cache
def _module(device_id):
    """The compiled kernels, per device (the cache key): a CUDA module is loaded into one device's context."""
    return cupy.RawModule(code=kernel_source(), options=("-std=c++17",))


def _launch(launch):
    if launch.grid > 0:
        kernel = _module(cupy.cuda.Device().id).get_function(launch.kernel)
        kernel((launch.grid,), (launch.block,), launch.args)
    return launch.out


def _into(result, out):
    """``out`` holding ``result`` (the kernel wrote into ``out`` itself when it was C-contiguous)."""
    if out is not None and result is not out:
        out[...] = result
        return out
    return result


def ssd_apply(*, diagonals, offsets, u, out=None):
    """``A u`` (see the module docstring)."""
    return _into(_launch(plan_apply(cupy, diagonals, offsets, u, False, out=out)), out)


def ssd_apply_transpose(*, diagonals, offsets, u, out=None):
    """``A^T u`` (see the module docstring)."""
    return _into(_launch(plan_apply(cupy, diagonals, offsets, u, True, out=out)), out)


def filter_step(*, u, zeta, dt):
    """``u + W_dt(zeta) u`` (see the module docstring)."""
    return _launch(plan_filter_step(cupy, u, zeta, dt))


def perona_malik_step(*, u, dt, lam, diffusivity, bc, ghost_gamma, ndim):
    """One explicit Perona-Malik step on the last ``ndim`` (2 or 3) axes (see the module docstring)."""
    return _launch(plan_perona_malik_step(cupy, u, dt, lam, diffusivity, bc, ghost_gamma, ndim))


class CupyAdapter(Adapter):
    """CuPy: host reads by ``.get()``; ``out=`` written; aliasing by ``cupy.may_share_memory``."""

    def to_numpy(self, x):
        return x.get()

    def shares_memory(self, a, b):
        return bool(cupy.may_share_memory(a, b))


ADAPTER = CupyAdapter("cupy")

if cupy is not None:
    # 2-D and 3-D grids of float32 / float64 with the built-in diffusivities (the CUDA kernels' cases): for
    # any other case the registry answers None and the generic code runs.
    for _operation, _kernel in (("ssd_apply", ssd_apply), ("ssd_apply_transpose", ssd_apply_transpose),
                                ("filter_step", filter_step), ("perona_malik_step", perona_malik_step)):
        register(_operation, "cupy", _kernel, ndims=(2, 3), dtypes=tuple(SUFFIXES),
                 diffusivities=tuple(DIFFUSIVITY_CODES) if _operation == "perona_malik_step" else None)
