r"""CuPy fast paths: one CUDA thread per output pixel (``cupy.ElementwiseKernel``).

The operations (``o_k = (dy_k, dx_k)``, products only over in-grid neighbours):

- ``ssd_apply``: :math:`(A u)[p] = \sum_k d_k[p]\, u[p + o_k]`;
- ``ssd_apply_transpose``: :math:`(A^T u)[q] = \sum_k d_k[q - o_k]\, u[q - o_k]`;
- ``filter_step``: :math:`u + dt\,(\sum_{k<5} z_k[p]\, u[p + o_k] - z_5[p]\, u[p])` (FIVE_POINT);
- ``perona_malik_step``: :math:`u + dt \sum_{faces} F\,(u_{neighbour} - u)` with face diffusivities
  :math:`F` the mean of the two pixels' :math:`\gamma = g(|\nabla_{back} u|^2, \lambda)`, boundary faces by
  ``bc`` / ``ghost_gamma``, zero ghosts.

Why this is fast: each thread reads its K diagonal values and K neighbours and writes one value, so the
whole operation is a single pass over memory with no temporaries (neighbour reads are coalesced and hit
the cache of the adjacent threads); the in-grid test per offset is a register comparison, and a
diagonal value pointing outside is never loaded. The Perona-Malik thread recomputes gamma at its four
neighbours instead of storing a gamma image: arithmetic is cheaper than a second pass over memory.
Batch axes broadcast through a per-argument batch stride (0 for a shared operator or image); only unusual
broadcasting (a broadcast axis next to a real one) materialises a copy. No gradients: CuPy has no
autograd.
"""
from __future__ import annotations

import math

import cupy

from . import register

__all__ = ["ssd_apply", "ssd_apply_transpose", "filter_step", "perona_malik_step"]

_FIVE_POINT = ((-1, 0), (0, -1), (1, 0), (0, 1), (0, 0))

_APPLY = cupy.ElementwiseKernel(
    "raw T d, raw T u, raw int32 oy, raw int32 ox, int32 K, int32 H, int32 W, int64 dbs, int64 ubs, "
    "int32 transpose",
    "T out",
    """
    const long long hw = (long long)H * W;
    const long long n = i / hw;
    const int r = (int)((i % hw) / W), c = (int)(i % W);
    T acc = 0;
    for (int k = 0; k < K; ++k) {
        // The product's pixel: the output pixel for A, the source pixel q - o_k for A^T.
        const int pr = transpose ? r - oy[k] : r, pc = transpose ? c - ox[k] : c;
        const int nr = pr + oy[k], nc = pc + ox[k];
        if (pr < 0 || pr >= H || pc < 0 || pc >= W || nr < 0 || nr >= H || nc < 0 || nc >= W) continue;
        const T dk = d[n * dbs + k * hw + (long long)pr * W + pc];
        acc += dk * u[n * ubs + (long long)(transpose ? pr : nr) * W + (transpose ? pc : nc)];
    }
    out = acc;
    """,
    "ssdops_ssd_apply",
)

_FILTER = cupy.ElementwiseKernel(
    "raw T u, raw T z, raw T dt, int32 H, int32 W, int64 zbs, int64 ubs",
    "T out",
    """
    const long long hw = (long long)H * W;
    const long long n = i / hw;
    const int r = (int)((i % hw) / W), c = (int)(i % W);
    const T* un = &u[n * ubs];
    const T* zn = &z[n * zbs];
    const long long p = (long long)r * W + c;
    const T centre = un[p];
    T s = -zn[4 * hw + p] * centre;
    if (r > 0) s += zn[p] * un[p - W];
    if (c > 0) s += zn[hw + p] * un[p - 1];
    if (r < H - 1) s += zn[2 * hw + p] * un[p + W];
    if (c < W - 1) s += zn[3 * hw + p] * un[p + 1];
    out = centre + dt[0] * s;
    """,
    "ssdops_filter_step",
)

# g codes follow _DIFFUSIVITY_CODES; bc: 0 neumann, 1 dirichlet with the edge's own gamma on the ghost,
# 2 dirichlet with ghost diffusivity gg.
_PERONA_MALIK = cupy.ElementwiseKernel(
    "raw T u, raw T dt, raw T lam, raw T gg, int32 H, int32 W, int32 g, int32 bc",
    "T out",
    """
    const long long hw = (long long)H * W;
    const T* un = &u[(i / hw) * hw];
    const int r = (int)((i % hw) / W), c = (int)(i % W);
    // u at (rr, cc), 0 on a ghost: the dirichlet ghost; under neumann the boundary faces are 0 anyway.
    #define U(rr, cc) ((rr) >= 0 && (rr) < H && (cc) >= 0 && (cc) < W ? un[(long long)(rr) * W + (cc)] : 0)
    #define GAMMA(rr, cc) gamma_at(un, rr, cc, H, W, bc, g, lam[0])
    const T centre = un[(long long)r * W + c];
    const T gc = GAMMA(r, c);
    const T ghost = gg[0];
    T f_up, f_down, f_left, f_right;
    #define BOUNDARY (bc == 0 ? (T)0 : bc == 1 ? gc : (gc + ghost) / 2)
    f_up = r > 0 ? (GAMMA(r - 1, c) + gc) / 2 : BOUNDARY;
    f_down = r < H - 1 ? (gc + GAMMA(r + 1, c)) / 2 : BOUNDARY;
    f_left = c > 0 ? (GAMMA(r, c - 1) + gc) / 2 : BOUNDARY;
    f_right = c < W - 1 ? (gc + GAMMA(r, c + 1)) / 2 : BOUNDARY;
    const T lu = f_up * (U(r - 1, c) - centre) + f_down * (U(r + 1, c) - centre)
               + f_left * (U(r, c - 1) - centre) + f_right * (U(r, c + 1) - centre);
    out = centre + dt[0] * lu;
    #undef U
    #undef GAMMA
    #undef BOUNDARY
    """,
    "ssdops_perona_malik_step",
    preamble="""
    template <typename F>
    __device__ F gamma_at(const F* un, int r, int c, int H, int W, int bc, int g, F lam) {
        const F centre = un[(long long)r * W + c];
        // Backward differences; across the boundary 0 (neumann) or against the zero ghost (dirichlet).
        const F up = r > 0 ? un[(long long)(r - 1) * W + c] : (bc == 0 ? centre : (F)0);
        const F left = c > 0 ? un[(long long)r * W + c - 1] : (bc == 0 ? centre : (F)0);
        const F dy = centre - up, dx = centre - left;
        const F s2 = dy * dy + dx * dx;
        switch (g) {
            case 0: return (F)1 / ((F)1 + s2 / (lam * lam));
            case 1: return exp(-s2 / (lam * lam));
            case 2: return (F)1 / sqrt((F)1 + s2 / (lam * lam));
            case 3: return (F)1 / sqrt(s2 + lam * lam);
            default: return (F)1;
        }
    }
    """,
)

_DIFFUSIVITY_CODES = {
    "perona_malik": 0,
    "perona_malik_exp": 1,
    "charbonnier": 2,
    "total_variation": 3,
    "linear": 4,
}


def _batch_stride(x, batch, core_ndim):
    """(array, batch stride in elements) for ``x`` broadcast over ``batch``: stride 0 when ``x`` has no
    real batch axes, one image per batch index when its batch is ``batch``; else a broadcast copy."""
    core = math.prod(x.shape[-core_ndim:])
    if math.prod(x.shape[:-core_ndim]) == 1:
        return cupy.ascontiguousarray(x), 0
    if tuple(x.shape[:-core_ndim]) != tuple(batch):
        x = cupy.broadcast_to(x, tuple(batch) + tuple(x.shape[-core_ndim:]))
    return cupy.ascontiguousarray(x), core


def _scalar(value, dtype):
    """A one-element device array (a 0-d array stays on the device: no host read)."""
    return cupy.asarray(value, dtype=dtype).reshape(1)


def _apply(diagonals, offsets, u, transpose):
    H, W = u.shape[-2:]
    batch = cupy.broadcast_shapes(diagonals.shape[:-3], u.shape[:-2])
    d, dbs = _batch_stride(diagonals, batch, 3)
    v, ubs = _batch_stride(u, batch, 2)
    oy = cupy.asarray([o[0] for o in offsets], dtype=cupy.int32)
    ox = cupy.asarray([o[1] for o in offsets], dtype=cupy.int32)
    out = cupy.empty(tuple(batch) + (H, W), dtype=u.dtype)
    return _APPLY(d, v, oy, ox, len(offsets), H, W, dbs, ubs, int(transpose), out)


def ssd_apply(diagonals, offsets, u):
    """``A u`` (see the module docstring)."""
    return _apply(diagonals, offsets, u, False)


def ssd_apply_transpose(diagonals, offsets, u):
    """``A^T u`` (see the module docstring)."""
    return _apply(diagonals, offsets, u, True)


def filter_step(u, zeta, dt):
    """``u + W_dt(zeta) u`` (see the module docstring)."""
    H, W = u.shape[-2:]
    batch = cupy.broadcast_shapes(zeta.shape[:-3], u.shape[:-2])
    z, zbs = _batch_stride(zeta, batch, 3)
    v, ubs = _batch_stride(u, batch, 2)
    out = cupy.empty(tuple(batch) + (H, W), dtype=u.dtype)
    return _FILTER(v, z, _scalar(dt, u.dtype), H, W, zbs, ubs, out)


def perona_malik_step(u, dt, lam, name, bc, ghost_gamma):
    """One explicit Perona-Malik step (see the module docstring)."""
    H, W = u.shape[-2:]
    mode = 0 if bc == "neumann" else 1 if ghost_gamma is None else 2
    gg = _scalar(0.0 if ghost_gamma is None else ghost_gamma, u.dtype)
    out = cupy.empty(u.shape, dtype=u.dtype)
    return _PERONA_MALIK(
        cupy.ascontiguousarray(u), _scalar(dt, u.dtype), _scalar(lam, u.dtype), gg, H, W,
        _DIFFUSIVITY_CODES[name], mode, out,
    )


for _xp_name in ("cupy", "array_api_compat.cupy"):
    register("ssd_apply", _xp_name, ssd_apply)
    register("ssd_apply_transpose", _xp_name, ssd_apply_transpose)
    register("filter_step", _xp_name, filter_step)
    register("perona_malik_step", _xp_name, perona_malik_step)
