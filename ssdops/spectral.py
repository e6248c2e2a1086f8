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
"""
from __future__ import annotations

import math

from array_api_compat import device

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
    return xp.astype(out, u.dtype) if out.dtype != u.dtype else out
