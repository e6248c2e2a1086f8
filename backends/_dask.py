r"""dask fast paths: every stencil operation chunk by chunk, through :func:`dask.array.map_overlap`.

The pattern of dask-image's filters (``dask_image/ndfilters``): each chunk is extended by a halo of
``depth`` pixels from its neighbours along every grid axis that has more than one chunk,
``boundary="none"`` (no halo beyond the grid), the NumPy kernel of ``ssdops.backends._numpy`` runs on the
extended block, and the halo is cropped. A kernel applies its boundary condition at the edges of the block
it is given; that is the operator's own boundary exactly where the block edge is an outer grid edge (no
halo was added there), and an edge that was wrong is inside the cropped halo elsewhere, because ``depth``
is at least the reach of the stencil:

=====================  =========================================================================
operation              depth along an axis
=====================  =========================================================================
ssd_apply (transpose)  the largest ``|dy|`` (``|dx|``) of the offsets
filter_step            1 (FIVE_POINT)
perona_malik_step      2: the new value at ``i`` reads gamma at ``i - 1``, which reads ``u`` at ``i - 2``
=====================  =========================================================================

So the output has the chunks of the input, one apply on an ``n``-chunk image adds ``O(n)`` tasks (halo
slices, one kernel call and one crop per chunk), and chained steps never rechunk. Diagonals (``zeta``) are
rechunked to the image's chunks along the grid and shared batch axes (nothing to do when they were built
chunked like it) and carry their offset axis in one chunk. Every chunk of a split grid axis must be at
least ``depth`` long (ValueError otherwise: rechunk). ``dt`` and ``lam`` given as dask arrays are computed
(one host read each).

Krylov solves (``implicit_solve``: ``implicit_step`` by CG or BiCGSTAB) run the generic loop
(:func:`ssdops._kernels.krylov_solve`) with the products above, on state kept bounded: the image and the
diagonals (chunked like the image, the offset axis whole) are persisted once, before the loop, and the
solvers persist their vectors every iteration (:meth:`DaskAdapter.persist`), so each iteration's graph is
one product and a few reductions on persisted chunks, never the history of the solve. Under
:func:`ssdops.backends.use_generic` the kernel declines (the generic products run). The spectral solves
are not registered here: see the README section "Images beyond one machine".
"""
from __future__ import annotations

import dask
import dask.array as da
import numpy as np
from array_api_compat import is_dask_array

from . import Adapter, _numpy_kernel, is_generic, register

__all__ = ["ADAPTER", "filter_step", "implicit_solve", "perona_malik_step", "ssd_apply", "ssd_apply_transpose"]

#: The reach of one Perona-Malik step along each axis (see the module docstring).
PERONA_MALIK_DEPTH = 2


def _host_value(v):
    """A number or NumPy value for ``v`` (a dask scalar is computed: blocks cannot read dask arrays)."""
    return v.compute() if is_dask_array(v) else v


def _depth(chunks, reach, ndim):
    """map_overlap depth: ``reach`` along each grid axis split in several chunks (0 elsewhere, so that a
    single chunk needs no halo and may be shorter than ``reach``)."""
    depth = {axis: 0 for axis in range(ndim)}
    for axis, (n_chunks, r) in zip((ndim - 2, ndim - 1), zip((len(c) for c in chunks[-2:]), reach)):
        if n_chunks > 1 and r > 0:
            smallest = min(chunks[axis])
            if smallest < r:
                raise ValueError(
                    f"dask chunks {chunks[axis]} along grid axis {axis - ndim} are shorter than the stencil's "
                    f"reach {r}: every chunk must be at least {r} pixels (rechunk the image)"
                )
            depth[axis] = r
    return depth


def _aligned(u, coefficients):
    """``u`` as ``(..., 1, H, W)`` and ``coefficients`` ``(..., K, H, W)`` with the same number of axes,
    the coefficients chunked like ``u`` along the grid axes and the batch axes both have (their own
    chunks where ``u`` broadcasts), the offset axis in one chunk."""
    ndim = max(u.ndim + 1, coefficients.ndim)
    u = u.reshape((1,) * (ndim - 1 - u.ndim) + tuple(u.shape[:-2]) + (1,) + tuple(u.shape[-2:]))
    coefficients = coefficients.reshape((1,) * (ndim - coefficients.ndim) + tuple(coefficients.shape))
    batch_chunks = tuple(
        (1,) if n_c == 1 else (c_u if n_u == n_c else c_c)
        for c_u, c_c, n_u, n_c in zip(u.chunks, coefficients.chunks, u.shape, coefficients.shape[:-3])
    )
    return u, coefficients.rechunk(batch_chunks + ((coefficients.shape[-3],),) + u.chunks[-2:])


def _stencil_map(name, u, coefficients, reach, **params):
    """The NumPy kernel ``name`` chunk by chunk: ``kernel(u=block, **params)``, with
    ``coefficients = (keyword, array (..., K, H, W))`` passed blockwise as ``keyword=block`` when given.
    ``reach`` is the depth along the two grid axes."""
    kernel = _numpy_kernel(name)
    dtype = u.dtype
    if coefficients is None:
        return da.map_overlap(
            lambda block: kernel(u=block, **params), u, depth=_depth(u.chunks, reach, u.ndim),
            boundary="none", dtype=dtype, meta=np.empty((0,) * u.ndim, dtype=dtype),
        )
    keyword, values = coefficients
    u, values = _aligned(u, values)
    depth = _depth(u.chunks, reach, u.ndim)

    def block(u_block, values_block):
        return kernel(u=u_block[..., 0, :, :], **{keyword: values_block}, **params)

    # align_arrays=False: the chunks were aligned above, without touching the image's.
    return da.map_overlap(
        block, u, values, depth=[depth, depth], boundary="none", drop_axis=u.ndim - 3, dtype=dtype,
        meta=np.empty((0,) * (u.ndim - 1), dtype=dtype), align_arrays=False,
    )


def _reach(offsets):
    """The largest ``|dy|`` and ``|dx|`` of the offsets."""
    return tuple(max(abs(o[axis]) for o in offsets) for axis in (0, 1))


def ssd_apply(*, diagonals, offsets, u, out=None):
    """``A u`` chunk by chunk (see the module docstring)."""
    return _stencil_map("ssd_apply", u, ("diagonals", diagonals), _reach(offsets), offsets=offsets)


def ssd_apply_transpose(*, diagonals, offsets, u, out=None):
    """``A^T u`` chunk by chunk (see the module docstring)."""
    return _stencil_map("ssd_apply_transpose", u, ("diagonals", diagonals), _reach(offsets), offsets=offsets)


def filter_step(*, u, zeta, dt):
    """``u + W_dt(zeta) u`` chunk by chunk (see the module docstring)."""
    return _stencil_map("filter_step", u, ("zeta", zeta), (1, 1), dt=_host_value(dt))


def perona_malik_step(*, u, dt, lam, diffusivity, bc, ghost_gamma, ndim):
    """One explicit Perona-Malik step chunk by chunk (see the module docstring; 2-D grids, ``ndim=2``)."""
    return _stencil_map(
        "perona_malik_step", u, None, (PERONA_MALIK_DEPTH,) * 2, dt=_host_value(dt), lam=_host_value(lam),
        diffusivity=diffusivity, bc=bc, ghost_gamma=_host_value(ghost_gamma), ndim=ndim,
    )


def implicit_solve(*, u, diagonals, offsets, dt, method, tol, maxiter, on_failure, x0):
    """``(I - dt A)^{-1} u`` by the generic Krylov loop on persisted state (see the module docstring)."""
    if is_generic():
        return NotImplemented
    from array_api_compat import array_namespace

    from .._kernels import krylov_solve

    grid_chunks = u.chunks[-2:]
    diagonals = diagonals.rechunk(u.chunks[:-2] + ((diagonals.shape[-3],),) + grid_chunks)
    x0 = None if x0 is None else da.broadcast_to(x0, u.shape).rechunk(u.chunks)
    u, diagonals, x0 = ADAPTER.persist(u, diagonals, x0)

    def product(x):
        return ssd_apply(diagonals=diagonals, offsets=offsets, u=x)

    return krylov_solve(array_namespace(u), u=u, diagonals=diagonals, offsets=offsets, dt=_host_value(dt),
                        method=method, tol=tol, maxiter=maxiter, on_failure=on_failure, x0=x0, product=product)


class DaskAdapter(Adapter):
    """dask: lazy arrays (no ``out=``), read by computing the graph; diagonals chunked like their image;
    whole grid axes for FFTs."""

    writable = False
    why_not_writable = "the result is a lazy graph"

    def to_numpy(self, x):
        return np.asarray(x.compute())

    def chunked_like(self, x, like, ndim):
        """``x`` rechunked to ``like``'s grid chunks, the offset axis in one chunk, so that stencil kernels
        need no rechunk."""
        if not (is_dask_array(like) and is_dask_array(x)):
            return x
        chunks = {x.ndim - ndim - 1: -1}
        chunks.update({x.ndim - ndim + i: c for i, c in enumerate(like.chunks[-ndim:])})
        return x.rechunk(chunks)

    def whole_grid(self, x, ndim, what=None):
        if what is None:
            return x.rechunk({axis % x.ndim: -1 for axis in range(-ndim, 0)})
        if any(len(c) > 1 for c in x.chunks[-ndim:]):
            raise ValueError(
                f"{what} need the whole grid in one dask chunk, got chunks {x.chunks[-ndim:]}: rechunk the "
                "image (u.rechunk({-2: -1, -1: -1})) or use method=\"cg\" (implicit_step) / "
                "method=\"implicit\" (heat)"
            )
        return x

    def persist(self, *arrays):
        return dask.persist(*arrays)


ADAPTER = DaskAdapter("dask")

for _name, _kernel in (
    ("ssd_apply", ssd_apply),
    ("ssd_apply_transpose", ssd_apply_transpose),
    ("filter_step", filter_step),
    ("perona_malik_step", perona_malik_step),
    ("implicit_solve", implicit_solve),
):
    register(_name, "dask", _kernel, ndims=(2,), numpy_on_host=None if _name == "implicit_solve" else "each chunk")
