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

from ._array import namespace, zeros
from .operators import check_bc

__all__ = ["apply_laplacian_function"]


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


def apply_laplacian_function(u, f, *, bc="neumann"):
    r""":math:`f(L)\,u` for the 5-point Laplacian :math:`L` with boundary ``bc``, exactly.

    ``f`` maps an array of eigenvalues of :math:`L` (real, in :math:`[-8, 0]`) to an array of the same
    shape, written with array-API operations (e.g. ``lambda lam: xp.exp(T * lam)``).
    """
    check_bc(bc)

    xp = namespace(u)
    H, W = u.shape[-2:]
    ext = _extend(xp, _extend(xp, u, -2, bc), -1, bc)
    My, Mx = ext.shape[-2:]
    spectrum = xp.fft.rfftn(ext, axes=(-2, -1))
    lam_y = _eigenvalues(xp, My, My, u)
    lam_x = _eigenvalues(xp, Mx, Mx // 2 + 1, u)
    factor = f(lam_y[:, None] + lam_x[None, :])
    spectrum = spectrum * xp.astype(factor, spectrum.dtype)
    out = xp.fft.irfftn(spectrum, s=(My, Mx), axes=(-2, -1))
    return _crop(_crop(out, H, -2, bc), W, -1, bc)
