r"""Exact functions of the constant-coefficient 5-point Laplacian, by fast sine/cosine transforms.

The Neumann Laplacian on :math:`n` points is the periodic Laplacian on the even extension
:math:`(u_0..u_{n-1}, u_{n-1}..u_0)` of length :math:`2n` (a DCT-II in disguise); the Dirichlet one is the
periodic Laplacian on the odd extension :math:`(0, u_0..u_{n-1}, 0, -u_{n-1}..-u_0)` of length
:math:`2n + 2` (a DST-I). Both extensions are invariant under the periodic operator, so any function
:math:`f(L)` is applied exactly by an FFT of the extension, a multiplication by
:math:`f(\lambda_{k} + \lambda_{l})` with :math:`\lambda_k = -4\sin^2(\pi k / M)`, an inverse FFT and a
crop. Written against the array API FFT extension: it runs where the image lives (no host round-trip).
"""
from __future__ import annotations

import math

from array_api_compat import device

from ._array import namespace
from ._kernels import zeros
from ._validate import check_bc, half_precision

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
    return u[..., start : start + n, :] if axis == -2 else u[..., start : start + n]


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
    r"""``(lowest, highest)`` eigenvalue of the 5-point Laplacian on ``grid_shape`` with boundary ``bc``, in
    closed form: the sum over the two axes of :math:`-4\sin^2(\pi k / 2n)`, :math:`k = 0..n-1` (Neumann) or
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


def apply_laplacian_function(u, f, *, bc="neumann"):
    r""":math:`f(L)\,u` for the 5-point Laplacian :math:`L` with boundary ``bc``, exactly.

    ``f`` maps an array of eigenvalues of :math:`L` (real, in :math:`[-8, 0]`) to an array of the same
    shape, written with array-API operations (e.g. ``lambda lam: xp.exp(T * lam)``). The result has ``u``'s
    dtype; float16 and bfloat16 images are transformed in float32 (no framework has half-precision FFTs
    everywhere, and their rounding would swamp the result) and rounded back once.
    """
    check_bc(bc)

    xp = namespace(u)
    work = xp.astype(u, xp.float32) if half_precision(xp, u.dtype) else u
    H, W = work.shape[-2:]
    ext = _extend(xp, _extend(xp, work, -2, bc), -1, bc)
    My, Mx = ext.shape[-2:]
    spectrum = xp.fft.rfftn(ext, axes=(-2, -1))
    lam_y = _eigenvalues(xp, My, My, work)
    lam_x = _eigenvalues(xp, Mx, Mx // 2 + 1, work)
    genuine = _genuine_modes(xp, H, My, bc, work)[:, None] & _genuine_modes(xp, W, Mx // 2 + 1, bc, work)[None, :]
    factor = xp.where(genuine, f(lam_y[:, None] + lam_x[None, :]), xp.zeros((), dtype=work.dtype, device=device(work)))
    spectrum = spectrum * xp.astype(factor, spectrum.dtype)
    out = xp.fft.irfftn(spectrum, s=(My, Mx), axes=(-2, -1))
    out = _crop(_crop(out, H, -2, bc), W, -1, bc)
    return xp.astype(out, u.dtype) if out.dtype != u.dtype else out
