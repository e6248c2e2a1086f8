r"""Exact functions of the constant-coefficient star Laplacian (3-, 5-, 7-point), by fast sine/cosine
transforms.

The Neumann Laplacian on :math:`n` points is the periodic Laplacian on the even extension
:math:`(u_0..u_{n-1}, u_{n-1}..u_0)` of length :math:`2n` (a DCT-II in disguise); the Dirichlet one is the
periodic Laplacian on the odd extension :math:`(0, u_0..u_{n-1}, 0, -u_{n-1}..-u_0)` of length
:math:`2n + 2` (a DST-I). Both extensions are invariant under the periodic operator, so any function
:math:`f(L)` is applied exactly by an FFT of the extension, a multiplication by
:math:`f(\lambda_{k} + \lambda_{l})` with :math:`\lambda_k = -4\sin^2(\pi k / M)`, an inverse FFT and a
crop; on a d-dimensional grid the same along every axis, the eigenvalues summed over the axes. Written
against the array API FFT extension: it runs where the image lives (no host round-trip).

NumPy images take the transforms themselves instead (``scipy.fft``: a DCT-II for Neumann, a DST-I for
Dirichlet, the same eigenvectors without the extension): the spectrum is computed into one buffer of the
image's size, multiplied by :math:`f` in place one slab of the grid at a time, and transformed back in place,
so that one call holds about one image-sized buffer besides its result (the extension holds 4x, 8x in 3-D,
of complex spectrum).
"""
from __future__ import annotations

import math
import os

import numpy as np
from array_api_compat import device, is_numpy_namespace

from . import backends
from ._array import namespace
from ._kernels import along, zeros
from ._validate import check_bc, check_ndim, half_precision

__all__ = ["apply_laplacian_function", "laplacian_eigenvalue_range"]


def _extend(xp, u, axis, bc):
    flipped = xp.flip(u, axis=axis)
    if bc == "neumann":
        return xp.concat([u, flipped], axis=axis)
    shape = list(u.shape)
    shape[axis] = 1
    z = zeros(xp, tuple(shape), u)
    return xp.concat([z, u, z, -flipped], axis=axis)


def _crop(u, n, axis, bc):
    start = 0 if bc == "neumann" else 1
    return u[along(axis, slice(start, start + n))]


def _eigenvalues(xp, M, count, like):
    k = xp.arange(count, dtype=like.dtype, device=device(like))
    s = xp.sin(k * (math.pi / M))
    return -4.0 * s * s


def _genuine_modes(xp, n, count, bc, like):
    """Which of the first ``count`` frequencies of the extension of an ``n``-point line are eigenvectors of
    the ``n``-point Laplacian: the extension's coefficient of every other frequency is zero (k = n for the
    even extension, k = 0 and n + 1 for the odd one), so the function is not evaluated there (where it
    may be singular although the system is not)."""
    k = xp.arange(count, device=device(like))
    return k != n if bc == "neumann" else (k % (n + 1)) != 0


def laplacian_eigenvalue_range(grid_shape, bc):
    r"""``(lowest, highest)`` eigenvalue of the star Laplacian on ``grid_shape`` with boundary ``bc``, in
    closed form: the sum over the axes of :math:`-4\sin^2(\pi k / 2n)`, :math:`k = 0..n-1` (Neumann) or
    :math:`-4\sin^2(\pi k / (2n + 2))`, :math:`k = 1..n` (Dirichlet)."""
    lowest = highest = 0.0
    for n in grid_shape:
        if bc == "neumann":
            ks, M = (0, n - 1), 2 * n
        else:
            ks, M = (1, n), 2 * n + 2
        top, bottom = (-4.0 * math.sin(math.pi * k / M) ** 2 for k in ks)
        lowest, highest = lowest + bottom, highest + top
    return lowest, highest


def apply_laplacian_function(u, f, *, bc="neumann", ndim=2):
    r""":math:`f(L)\,u` for the star Laplacian :math:`L` on the last ``ndim`` axes with boundary ``bc``, exactly.

    ``f`` maps an array of eigenvalues of :math:`L` (real, in :math:`[-4 d, 0]`) to an array of the same
    shape, written with array-API operations (e.g. ``lambda lam: xp.exp(T * lam)``). The result has ``u``'s
    dtype; float16 and bfloat16 images are transformed in float32 (no framework has half-precision FFTs
    everywhere, and their rounding would swamp the result) and rounded back once.

    A dask image must hold its grid in one chunk (ValueError otherwise: rechunk it, or use an iterative
    method): an FFT needs the whole axis.
    """
    check_bc(bc)
    ndim = check_ndim(ndim)
    xp = namespace(u)
    if is_numpy_namespace(xp) and not backends.is_generic():
        return _apply_numpy(u, f, bc, ndim)
    axes = tuple(range(-ndim, 0))
    adapter = backends.adapter_for(u)
    adapter.whole_grid(u, ndim, "exact (spectral) solves")
    work = xp.astype(u, xp.float32) if half_precision(xp, u.dtype) else u
    grid = tuple(work.shape[-ndim:])
    ext = work
    for axis in axes:
        ext = _extend(xp, ext, axis, bc)
    ext = adapter.whole_grid(ext, ndim)  # the extensions concatenate chunks
    sizes = tuple(ext.shape[-ndim:])
    spectrum = xp.fft.rfftn(ext, axes=axes)
    lam = genuine = None
    for i, (n, M) in enumerate(zip(grid, sizes)):
        count = M if i < ndim - 1 else M // 2 + 1  # rfftn halves the last axis
        shape = tuple(count if j == i else 1 for j in range(ndim))
        lam_i = xp.reshape(_eigenvalues(xp, M, count, work), shape)
        genuine_i = xp.reshape(_genuine_modes(xp, n, count, bc, work), shape)
        lam = lam_i if lam is None else lam + lam_i
        genuine = genuine_i if genuine is None else genuine & genuine_i
    factor = xp.where(genuine, f(lam), xp.zeros((), dtype=work.dtype, device=device(work)))
    spectrum = spectrum * xp.astype(factor, spectrum.dtype)
    out = xp.fft.irfftn(spectrum, s=sizes, axes=axes)
    for axis, n in zip(axes, grid):
        out = _crop(out, n, axis, bc)
    # A copy: the crop is a view that would keep the whole extension (4x, 3-D 8x, the image) alive.
    return xp.astype(out, u.dtype) if out.dtype != u.dtype else xp.asarray(out, copy=True)


#: Elements of one slab of eigenvalues (and of each temporary of ``f``) in the NumPy path.
_SLAB_ELEMENTS = 1 << 16


def _workers():
    """Threads of the NumPy path's transforms: ``SSDOPS_NUM_THREADS`` as for the NumPy kernels, else the cores
    this process may use."""
    if os.environ.get("SSDOPS_NUM_THREADS"):
        return max(1, int(os.environ["SSDOPS_NUM_THREADS"]))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _apply_numpy(u, f, bc, ndim):
    """:func:`apply_laplacian_function` of a NumPy image by ``scipy.fft``'s DCT-II (Neumann) or DST-I
    (Dirichlet) along the grid axes, ``f`` applied in place slab by slab (see the module docstring)."""
    import scipy.fft

    axes = tuple(range(-ndim, 0))
    # float16 is transformed in float32, into a copy of the image's own that the transform may overwrite.
    work = u.astype(np.float32) if u.dtype == np.float16 else u
    if bc == "neumann":
        forward, inverse, kind = scipy.fft.dctn, scipy.fft.idctn, 2
    else:
        forward, inverse, kind = scipy.fft.dstn, scipy.fft.idstn, 1
    spectrum = forward(work, type=kind, axes=axes, overwrite_x=work is not u, workers=_workers())
    grid = tuple(work.shape[-ndim:])
    # The eigenvalue of mode k along an axis of n points: -4 sin^2(pi k / M), as in the generic path (the
    # extension of length M = 2n, k = 0..n-1; M = 2n + 2, k = 1..n), computed in the working dtype.
    per_axis = []
    for i, n in enumerate(grid):
        M, k0 = (2 * n, 0) if bc == "neumann" else (2 * n + 2, 1)
        k = np.arange(k0, k0 + n, dtype=work.dtype)
        s = np.sin(k * work.dtype.type(math.pi / M))
        shape = tuple(n if j == i else 1 for j in range(ndim))
        per_axis.append(np.reshape(work.dtype.type(-4.0) * s * s, shape))
    rows = max(1, _SLAB_ELEMENTS // max(1, math.prod(grid[1:])))
    for r0 in range(0, grid[0], rows):
        slab = slice(r0, min(r0 + rows, grid[0]))
        lam = per_axis[0][slab]
        for lam_i in per_axis[1:]:
            lam = lam + lam_i
        index = (Ellipsis, slab) + (slice(None),) * (ndim - 1)
        np.multiply(spectrum[index], np.asarray(f(lam), dtype=spectrum.dtype), out=spectrum[index])
    out = inverse(spectrum, type=kind, axes=axes, overwrite_x=True, workers=_workers())
    return out.astype(u.dtype) if out.dtype != u.dtype else out
