r"""NumPy fast paths: cache-blocked stencil evaluation with preallocated buffers.

The operations (``o_k = (dy_k, dx_k)``, products only over in-grid neighbours):

- ``ssd_apply``: :math:`(A u)[p] = \sum_k d_k[p]\, u[p + o_k]`;
- ``ssd_apply_transpose``: :math:`(A^T u)[q] = \sum_k d_k[q - o_k]\, u[q - o_k]`;
- ``filter_step``: :math:`u + dt\,(\sum_{k<5} z_k[p]\, u[p + o_k] - z_5[p]\, u[p])` (FIVE_POINT);
- ``perona_malik_step``: :math:`u + dt\,\nabla\cdot(\gamma \nabla u)` with
  :math:`\gamma = g(|\nabla_{back} u|^2, \lambda)`, in flux form: face diffusivities :math:`F` (mean of the
  two pixels' gamma, boundary faces by ``bc`` / ``ghost_gamma``), face fluxes
  :math:`f = F\,(u[i] - u[i-1])` against zero ghosts, and :math:`L u = f[i+1] - f[i]` per axis.

Why this is fast: the generic code builds every term as a full image (a product, zero padding by
concatenation, a sum), several image-sized temporaries per offset, each pass through main memory. Here the
output is produced one block at a time: a few rows of one image, or a few whole images when they are
small, about ``BLOCK_BYTES`` per buffer so that the block, its scratch buffer and the rows of ``u`` it reads
stay in the L2 cache while all K terms are multiplied (``np.multiply(..., out=scratch)``) and accumulated
(``np.add(..., out=block)``). Main memory then sees every input read once and the output written once.
Broadcast batch axes are views with zero strides, never materialised. Large outputs are split into
contiguous runs of blocks, one per CPU core (NumPy's loops release the GIL), each with its own scratch.
``SSDOPS_NUM_THREADS`` sets the number of threads (default: the cores this process may use).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ssdops._kernels import (
    FIVE_POINT,
    boundary_face,
    maps_ndim,
    perona_malik_diagonals,
    resolve,
    star,
)

from . import Adapter, _native, register

__all__ = ["ADAPTER", "ssd_apply", "ssd_apply_transpose", "filter_step", "perona_malik_step"]

#: Size of one block buffer. Smaller blocks stay in L2 but pay NumPy's per-call overhead (~1 us a ufunc
#: call) more often: on the development machine (AMD EPYC, 1 MiB L2 per core, 32 MiB L3, 2 threads) the
#: 2048² float32 apply took 8.4 / 5.7 / 5.1 / 4.7 ms with 256 KiB / 512 KiB / 1 MiB / 2 MiB blocks.
BLOCK_BYTES = 1024 * 1024

#: Below this many output elements one thread does all blocks: a thread hand-off costs more than it saves.
PARALLEL_MIN_ELEMENTS = 1 << 20
THREADS = int(os.environ.get("SSDOPS_NUM_THREADS", 0)) or len(os.sched_getaffinity(0))
_POOL = None

_FIVE_NEIGHBOURS = FIVE_POINT[:4]


def _window(H, W, offset):
    """Rows and columns of the pixels ``p`` whose neighbour ``p + offset`` lies in the grid."""
    dy, dx = offset
    return (max(0, -dy), min(H, H - dy)), (max(0, -dx), min(W, W - dx))


def _merged_batch(a, nb):
    """``a`` with its ``nb`` leading (batch) axes merged into one, as a view, or ``None`` if that needs a
    copy (a broadcast axis next to a real one)."""
    n = int(np.prod(a.shape[:nb], dtype=np.int64))
    try:
        return np.reshape(a, (n,) + a.shape[nb:], copy=False)
    except (TypeError, ValueError):  # a copy would be needed (TypeError: NumPy < 2.1 has no copy=)
        return None


def _batch_views(batch, *arrays):
    """Views of ``arrays`` (already broadcast to ``batch`` + own core shape) with one leading batch axis:
    all batch axes merged when that is a view, else one group per index of the outer batch axes."""
    nb = len(batch)
    merged = [_merged_batch(a, nb) for a in arrays]
    if all(m is not None for m in merged):
        yield merged
        return
    for index in np.ndindex(*batch[:-1]):
        yield [a[index] for a in arrays]


def _plan(H, W, itemsize):
    """(images per block, rows per block): row blocks of one image, or several small whole images."""
    per_block = max(1, BLOCK_BYTES // itemsize)
    if H * W >= per_block:
        return 1, max(1, per_block // W)
    return per_block // (H * W), H


def _blocks(N, H, images, rows):
    for b0 in range(0, N, images):
        for r0 in range(0, H, rows):
            yield slice(b0, min(b0 + images, N)), r0, min(r0 + rows, H)


def _run_blocks(blocks, size, work):
    """``work(run)`` over contiguous runs of ``blocks``: one run per thread when the output has ``size`` >=
    PARALLEL_MIN_ELEMENTS elements, else a single run on this thread."""
    global _POOL
    blocks = list(blocks)
    threads = min(THREADS, len(blocks)) if size >= PARALLEL_MIN_ELEMENTS else 1
    if threads <= 1:
        work(blocks)
        return
    if _POOL is None:
        _POOL = ThreadPoolExecutor(THREADS, thread_name_prefix="ssdops-numpy")
    step = -(-len(blocks) // threads)
    for f in [_POOL.submit(work, blocks[i : i + step]) for i in range(0, len(blocks), step)]:
        f.result()


def _plane_contiguous(x):
    """``x`` itself when each of its (H, W) planes is C-contiguous (then a plane is a flat 1-D run), else a
    contiguous copy."""
    if x.strides[-1] == x.itemsize and (x.shape[-2] == 1 or x.strides[-2] == x.shape[-1] * x.itemsize):
        return x
    return np.ascontiguousarray(x)


def _accumulate(out, terms, W, images, rows, *, combine=np.add, epilogue=None, accumulate=False):
    """``out[b, p] = term_0 (combine) term_1 (combine) ...`` block by block, on flattened planes.

    ``out`` and the factors are ``(N, H*W)``. A term ``(A, sa, B, sb, ((r_lo, r_hi), (c_lo, c_hi)))``
    contributes ``A[b, p + sa] * B[b, p + sb]`` (flat shifts ``dy * W + dx``) at the pixels of rows
    ``[r_lo, r_hi)`` and columns ``[c_lo, c_hi)``, nothing elsewhere. Each product runs over whole rows as
    one contiguous 1-D range (NumPy's fast loops; a column-sliced 2-D view is several times slower), and
    the few products that wrapped around a row end are overwritten with zeros before they are added, so
    a non-finite value there never reaches the result. ``epilogue(block, batch slice, f0, f1)`` finishes
    a block (flat range ``[f0, f1)``) while it is still in cache. With ``accumulate`` every term is
    combined into what ``out`` already holds.
    """
    N, HW = out.shape
    _run_blocks(_blocks(N, HW // W, images, rows), out.size,
                lambda run: _accumulate_run(out, terms, W, images, rows, run, combine, epilogue, accumulate))
    return out


def _accumulate_run(out, terms, W, images, rows, run, combine, epilogue, accumulate):
    N, HW = out.shape
    scratch = np.empty((min(images, N), rows * W), dtype=out.dtype)
    for bs, r0, r1 in run:
        block = out[bs, r0 * W : r1 * W]
        m = block.shape[0]
        started = accumulate
        for A, sa, B, sb, ((rlo, rhi), (clo, chi)) in terms:
            lo, hi = max(rlo, r0), min(rhi, r1)
            if lo >= hi or clo >= chi:
                continue
            f0, f1 = lo * W, hi * W
            if not started and (lo, hi, clo, chi) == (r0, r1, 0, W):
                np.multiply(A[bs, f0 + sa : f1 + sa], B[bs, f0 + sb : f1 + sb], out=block)
                started = True
                continue
            if not started:
                block.fill(0)
                started = True
            # Pixels whose flat source falls off the plane lie in out-of-window columns: skipped here,
            # zeroed below with the rest of those columns.
            g0, g1 = max(f0, -sa, -sb), min(f1, HW - sa, HW - sb)
            tmp = scratch[:m, : f1 - f0]
            np.multiply(A[bs, g0 + sa : g1 + sa], B[bs, g0 + sb : g1 + sb], out=tmp[:, g0 - f0 : g1 - f0])
            grid = tmp.reshape(m, hi - lo, W)
            if clo > 0:
                grid[:, :, :clo] = 0
            if chi < W:
                grid[:, :, chi:] = 0
            target = block[:, f0 - r0 * W : f1 - r0 * W]
            combine(target, tmp, out=target)
        if not started:
            block.fill(0)
        if epilogue is not None:
            epilogue(block, bs, r0 * W, r1 * W)


def _apply(diagonals, offsets, u, transpose, out=None):
    """``A u`` or ``A^T u`` on a 1-, 2- or 3-D grid (the grid dimension is the length of the offsets), into
    ``out`` when given."""
    ndim = len(offsets[0])
    if ndim == 1:  # a signal is an image of one row: a view, no copy
        offsets2 = tuple((0, dx) for (dx,) in offsets)
        out2 = None if out is None else out[..., None, :]
        return _apply2(diagonals[..., None, :], offsets2, u[..., None, :], transpose, out=out2)[..., 0, :]
    if out is not None and _plane_contiguous(out) is not out:
        # The blocked loops write planes as flat runs: an ``out`` whose planes are not C-contiguous (Fortran
        # order, a transposed view) receives a copy of the result, as on the generic path.
        np.copyto(out, _apply(diagonals, offsets, u, transpose))
        return out
    if ndim == 3:
        return _apply3(diagonals, offsets, u, transpose, out)
    return _apply2(diagonals, offsets, u, transpose, out=out)


def _apply3(diagonals, offsets, u, transpose, out=None):
    """A volume as a batch of planes: the offsets are grouped by their plane step ``dz``; each group is a
    blocked 2-D apply over the planes whose neighbour plane lies in the grid, the group with ``dz = 0``
    writing the whole output and the others adding into their window of planes."""
    D, H, W = u.shape[-3:]
    batch = np.broadcast_shapes(diagonals.shape[:-4], u.shape[:-3])
    if out is None:
        out = np.empty(batch + (D, H, W), dtype=np.result_type(diagonals, u))
    groups = {}
    for k, (dz, _, _) in enumerate(offsets):
        groups.setdefault(dz, []).append(k)
    if 0 not in groups:
        out.fill(0)
    for dz in sorted(groups, key=lambda dz: dz != 0):
        ks = groups[dz]
        if transpose:  # output plane q reads d and u at the source plane q - dz
            planes = slice(max(0, dz), min(D, D + dz))
            source = slice(planes.start - dz, planes.stop - dz)
            d_planes, u_planes = source, source
        else:  # output plane z reads d at z and u at z + dz
            planes = slice(max(0, -dz), min(D, D - dz))
            d_planes, u_planes = planes, slice(planes.start + dz, planes.stop + dz)
        if planes.start >= planes.stop:
            continue
        columns = [diagonals[..., k, d_planes, :, :] for k in ks]  # (..., planes, H, W): views, no copy
        _apply2(columns, tuple(offsets[k][1:] for k in ks), u[..., u_planes, :, :], transpose,
                out=out[..., planes, :, :], accumulate=dz != 0 or 0 not in groups)
    return out


def _apply2(columns, offsets, u, transpose, out=None, accumulate=False):
    """The 2-D blocked apply of the diagonal images ``columns`` (one ``(..., H, W)`` array per offset, or
    the stacked ``(..., K, H, W)``); into ``out`` (adding to it with ``accumulate``) when given."""
    H, W = u.shape[-2:]
    if not isinstance(columns, list):
        columns = [columns[..., k, :, :] for k in range(len(offsets))]
    batch = np.broadcast_shapes(*(c.shape[:-2] for c in columns), u.shape[:-2])
    if out is None:
        out = np.empty(batch + (H * W,), dtype=np.result_type(columns[0], u))
    else:
        out = np.reshape(out, batch + (H * W,), copy=False)
    d_b = [np.broadcast_to(_plane_contiguous(c), batch + (H, W)) for c in columns]
    u_b = np.broadcast_to(_plane_contiguous(u), batch + (H, W))
    images, rows = _plan(H, W, out.itemsize)
    for *d3, u3, o2 in _batch_views(batch, *d_b, u_b, out):
        N = o2.shape[0]
        u2 = u3.reshape(N, H * W)
        terms = []
        for k, (dy, dx) in enumerate(offsets):
            dk = d3[k].reshape(N, H * W)
            if transpose:  # both factors are read at the source pixel q - o_k
                s = -(dy * W + dx)
                terms.append((dk, s, u2, s, _window(H, W, (-dy, -dx))))
            else:
                terms.append((dk, 0, u2, dy * W + dx, _window(H, W, (dy, dx))))
        terms.sort(key=lambda t: t[-1] != ((0, H), (0, W)))
        _accumulate(o2, terms, W, images, rows, accumulate=accumulate)
    return out.reshape(batch + (H, W))


#: The operations whose NumPy kernel first tries the native CPU kernel (``_native.py``: the compiled
#: ``native/cpu.cpp``, when it was built), then runs the blocked code above for the cases it declines.
NATIVE_OPERATIONS = ("ssd_apply", "ssd_apply_transpose", "filter_step", "perona_malik_step")


def _native_apply(diagonals, offsets, u, transpose, out):
    if ("ssd_apply_transpose" if transpose else "ssd_apply") not in NATIVE_OPERATIONS:
        return NotImplemented
    return _native.apply(diagonals, offsets, u, transpose, out)


def ssd_apply(*, diagonals, offsets, u, out=None):
    """``A u`` (see the module docstring)."""
    result = _native_apply(diagonals, offsets, u, False, out)
    return _apply(diagonals, offsets, u, False, out) if result is NotImplemented else result


def ssd_apply_transpose(*, diagonals, offsets, u, out=None):
    """``A^T u`` (see the module docstring)."""
    result = _native_apply(diagonals, offsets, u, True, out)
    return _apply(diagonals, offsets, u, True, out) if result is NotImplemented else result


def _update(u, dt, product, centre=None):
    """``u + dt (product - centre * u)`` written over ``product`` (a fresh array of the broadcast shape)."""
    if centre is not None:
        np.subtract(product, np.multiply(centre, u), out=product)
    np.multiply(product, dt, out=product)
    np.add(product, u, out=product)
    return product


def filter_step(*, u, zeta, dt):
    """``u + W_dt(zeta) u``; on images in one blocked pass (below), on signals and volumes as the blocked
    apply of the 2d neighbour maps followed by the centre term and the update."""
    ndim = maps_ndim(zeta, u)
    if "filter_step" in NATIVE_OPERATIONS:
        result = _native.filter_step(u, zeta, dt, ndim)
        if result is not NotImplemented:
            return result
    if ndim != 2:
        neighbours = _apply(zeta[(..., slice(0, 2 * ndim)) + (slice(None),) * ndim], star(ndim)[:-1], u, False)
        return _update(u, dt, neighbours, centre=zeta[(..., 2 * ndim) + (slice(None),) * ndim])
    return _filter_step2(u, zeta, dt)


def _filter_step2(u, zeta, dt):
    """The 2-D filter step in one blocked pass: the block holds ``z5 u - sum_k z_k u(. + o_k)`` (the centre
    first covers it), then becomes ``u - dt * block``."""
    H, W = u.shape[-2:]
    batch = np.broadcast_shapes(zeta.shape[:-3], u.shape[:-2])
    out = np.empty(batch + (H * W,), dtype=np.result_type(zeta, u))
    z_b = np.broadcast_to(_plane_contiguous(zeta), batch + (5, H, W))
    u_b = np.broadcast_to(_plane_contiguous(u), batch + (H, W))
    images, rows = _plan(H, W, out.itemsize)
    for z4, u3, o2 in _batch_views(batch, z_b, u_b, out):
        N = o2.shape[0]
        u2 = u3.reshape(N, H * W)
        z = [z4[:, k].reshape(N, H * W) for k in range(5)]
        terms = [(z[4], 0, u2, 0, ((0, H), (0, W)))]
        terms += [(z[k], 0, u2, dy * W + dx, _window(H, W, (dy, dx)))
                  for k, (dy, dx) in enumerate(_FIVE_NEIGHBOURS)]

        def finish(block, bs, f0, f1, u2=u2):
            np.multiply(block, dt, out=block)
            np.subtract(u2[bs, f0:f1], block, out=block)

        _accumulate(o2, terms, W, images, rows, combine=np.subtract, epilogue=finish)
    return out.reshape(batch + (H, W))


def _boundary_face(edge, bc, ghost_gamma, out):
    """``out`` = the boundary face's diffusivity (``ssdops._kernels.boundary_face``: the one rule)."""
    np.copyto(out, boundary_face(np, edge, bc, ghost_gamma))


def perona_malik_step(*, u, dt, lam, diffusivity, bc, ghost_gamma, ndim):
    """One explicit Perona-Malik step: on images the blocked flux-form kernel below; on signals and volumes
    the step's diagonals (the generic code) and the blocked apply, updated in place."""
    if "perona_malik_step" in NATIVE_OPERATIONS:
        result = _native.perona_malik_step(u, dt, lam, diffusivity, bc, ghost_gamma, ndim)
        if result is not NotImplemented:
            return result
    if ndim == 3:
        return _perona_malik_step3(u, dt, lam, resolve(diffusivity), bc, ghost_gamma)
    if ndim != 2:
        diagonals = perona_malik_diagonals(np, u, lam, resolve(diffusivity), bc, ghost_gamma, ndim)
        return _update(u, dt, _apply(diagonals, star(ndim), u, False))
    return _perona_malik_step2(u, dt, lam, diffusivity, bc, ghost_gamma)


#: The 3-D Perona-Malik step runs on slabs of at least this many bytes of planes (and at most about a twelfth
#: of the volume), so that its temporaries (the slab's seven diagonals and their makings, about 18 slabs) stay
#: below two volumes while small volumes take one pass.
PM3_SLAB_BYTES = 1 << 19


def _perona_malik_step3(u, dt, lam, g, bc, ghost_gamma):
    """The 3-D step slab by slab: output planes ``[z0, z1)`` from the generic diagonals and the blocked apply
    on planes ``[z0 - 2, z1 + 1)`` (gamma at plane z needs ``u`` at z - 1, the faces around z gamma at z - 1
    and z + 1), whose halo planes, wrong at the slab's false boundary, are dropped."""
    D = u.shape[-3]
    plane_bytes = max(1, u.size // D * u.itemsize)
    planes = max(-(-D // 12) - 3, PM3_SLAB_BYTES // plane_bytes, 1)
    out = np.empty(u.shape, dtype=u.dtype)
    for z0 in range(0, D, planes):
        z1 = min(z0 + planes, D)
        a, b = max(z0 - 2, 0), min(z1 + 1, D)
        sub = u[..., a:b, :, :]
        diagonals = perona_malik_diagonals(np, sub, lam, g, bc, ghost_gamma, 3)
        step = _update(sub, dt, _apply(diagonals, star(3), sub, False))
        diagonals = None
        out[..., z0:z1, :, :] = step[..., z0 - a : z1 - a, :, :]
    return out


def _perona_malik_step2(u, dt, lam, diffusivity, bc, ghost_gamma):
    """One explicit Perona-Malik step, block by block in flux form (see the module docstring).

    A block of rows ``[r0, r1)`` reads ``u`` on rows ``r0 - 2 .. r1`` into a padded buffer with one ghost
    column each side: zero ghosts (dirichlet), or copies of the edge (neumann, so that the backward
    difference across the boundary is 0 as in the generic code; the boundary faces carry no diffusivity,
    so the ghost never enters a flux). gamma is computed on rows ``r0 - 1 .. r1`` (two halo rows per block).
    """
    H, W = u.shape[-2:]
    u3 = np.reshape(u, (-1, H, W))
    out = np.empty(u3.shape, dtype=u.dtype)
    images, n = _plan(H, W, out.itemsize)
    images = min(images, u3.shape[0])
    _run_blocks(_blocks(u3.shape[0], H, images, n), out.size,
                lambda run: _perona_malik_run(u3, out, dt, lam, resolve(diffusivity), bc, ghost_gamma, images, n, run))
    return np.reshape(out, u.shape)


def _perona_malik_run(u3, out, dt, lam, g, bc, ghost_gamma, images, n, run):
    H, W = u3.shape[-2:]
    P = np.empty((images, n + 3, W + 2), dtype=u3.dtype)  # u, rows r0-2 .. r1, columns -1 .. W
    Fy = np.empty((images, n + 1, W), dtype=u3.dtype)  # faces above rows r0 .. r1
    Fx = np.empty((images, n, W + 1), dtype=u3.dtype)  # faces left of columns 0 .. W
    S = np.empty((images, n + 2, W), dtype=u3.dtype)  # |grad u|^2 on rows r0-1 .. r1
    T = np.empty((images, n + 2, W + 1), dtype=u3.dtype)  # differences
    for bs, r0, r1 in run:
        m, h = bs.stop - bs.start, r1 - r0
        p, fy, fx = P[:m, : h + 3], Fy[:m, : h + 1], Fx[:m, :h]
        # Rows r0-2 .. r1 of u (clipped to the grid), then ghost rows and columns.
        a, b = max(r0 - 2, 0), min(r1 + 1, H)
        p[:, a - r0 + 2 : b - r0 + 2, 1 : W + 1] = u3[bs, a:b]
        for t in range(h + 3):
            i = r0 - 2 + t
            if 0 <= i < H:
                continue
            if bc == "neumann":
                p[:, t, 1 : W + 1] = u3[bs, min(max(i, 0), H - 1)]
            else:
                p[:, t, 1 : W + 1] = 0
        if bc == "neumann":
            p[:, :, 0], p[:, :, W + 1] = p[:, :, 1], p[:, :, W]
        else:
            p[:, :, 0] = p[:, :, W + 1] = 0
        # |grad u|^2 by backward differences and gamma, on rows r0-1 .. r1.
        centre = p[:, 1 : h + 3, 1 : W + 1]
        s2, dx = S[:m, : h + 2], T[:m, : h + 2, :W]
        np.subtract(centre, p[:, 0 : h + 2, 1 : W + 1], out=s2)
        np.multiply(s2, s2, out=s2)
        np.subtract(centre, p[:, 1 : h + 3, 0:W], out=dx)
        np.multiply(dx, dx, out=dx)
        np.add(s2, dx, out=s2)
        gamma = np.asarray(g(s2, lam), dtype=u3.dtype)
        # Face diffusivities: interior faces the mean of the two pixels' gamma, boundary faces by bc.
        np.add(gamma[:, : h + 1], gamma[:, 1 : h + 2], out=fy)
        np.multiply(fy, 0.5, out=fy)
        if r0 == 0:
            _boundary_face(gamma[:, 1], bc, ghost_gamma, fy[:, 0])
        if r1 == H:
            _boundary_face(gamma[:, h], bc, ghost_gamma, fy[:, h])
        rows = gamma[:, 1 : h + 1]
        np.add(rows[:, :, : W - 1], rows[:, :, 1:], out=fx[:, :, 1:W])
        np.multiply(fx[:, :, 1:W], 0.5, out=fx[:, :, 1:W])
        _boundary_face(rows[:, :, 0], bc, ghost_gamma, fx[:, :, 0])
        _boundary_face(rows[:, :, W - 1], bc, ghost_gamma, fx[:, :, W])
        # Fluxes through the faces, then their differences: L u.
        np.subtract(p[:, 2 : h + 3, 1 : W + 1], p[:, 1 : h + 2, 1 : W + 1], out=T[:m, : h + 1, :W])
        np.multiply(fy, T[:m, : h + 1, :W], out=fy)
        np.subtract(p[:, 2 : h + 2, 1 : W + 2], p[:, 2 : h + 2, 0 : W + 1], out=T[:m, :h, : W + 1])
        np.multiply(fx, T[:m, :h, : W + 1], out=fx)
        block = out[bs, r0:r1]
        np.subtract(fy[:, 1:], fy[:, :-1], out=block)
        np.add(block, fx[:, :, 1:], out=block)
        np.subtract(block, fx[:, :, :-1], out=block)
        np.multiply(block, dt, out=block)
        np.add(block, u3[bs, r0:r1], out=block)


class NumpyAdapter(Adapter):
    """NumPy: host arrays read as they are; ``out=`` written; aliasing by ``numpy.may_share_memory``."""

    def to_numpy(self, x):
        return np.asarray(x)

    def shares_memory(self, a, b):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and bool(np.may_share_memory(a, b))


ADAPTER = NumpyAdapter("numpy")

for _name, _kernel in (("ssd_apply", ssd_apply), ("ssd_apply_transpose", ssd_apply_transpose),
                      ("filter_step", filter_step), ("perona_malik_step", perona_malik_step)):
    # ``_native.REASON`` says why the compiled kernels are absent when they are
    register(_name, "numpy", _kernel, native=_native.AVAILABLE and _name in NATIVE_OPERATIONS)
