r"""Analysis of SSD operators: row sums, the paper's split :math:`W = L + S`, symmetry and spectra.

:func:`row_sums`, :func:`split_zero_mean`, :func:`smoothing_level` and :func:`is_symmetric` run in the
operator's own namespace; :func:`spectrum` and :func:`spectral_radius` export the matrix to scipy.sparse
(a host copy) and call ARPACK.
"""
from __future__ import annotations

import numpy as np
from array_api_compat import device

from ._array import namespace, to_numpy
from ._kernels import transpose_diagonals, zero_outside
from ._validate import check_operator
from .ssd import SSD
from .stencils import CENTRE

__all__ = ["row_sums", "split_zero_mean", "smoothing_level", "is_symmetric", "spectrum", "spectral_radius"]


def row_sums(op):
    r"""The row sums :math:`A\mathbf{1}` as an image ``(..., H, W)``; zero for a Neumann diffusion operator.

    >>> import ssdops
    >>> float(abs(ssdops.row_sums(ssdops.laplacian((4, 4)))).max())
    0.0
    """
    check_operator(op)
    xp = namespace(op.diagonals)
    ones = xp.ones(op.grid_shape, dtype=op.dtype, device=device(op.diagonals))
    return op @ ones


def split_zero_mean(op):
    r"""The paper's split :math:`W = L + S` (section 2.3): ``L`` with zero row sums, ``S`` diagonal.

    :math:`S = \operatorname{diag}(W\mathbf{1})` is the part of the operator that changes the mean (the
    smoothing, or with negative sign sharpening, part); :math:`L = W - S` redistributes without changing
    it. Returns ``(L, S)`` as SSD operators; ``S`` has the single offset ``(0, 0)``.

    >>> import numpy as np, ssdops
    >>> L, S = ssdops.split_zero_mean(ssdops.laplacian((3, 3), bc="dirichlet"))
    >>> S.diagonal((0, 0))
    array([[-2., -1., -2.],
           [-1.,  0., -1.],
           [-2., -1., -2.]])
    """
    rs = row_sums(op)
    S = SSD(rs[..., None, :, :], (CENTRE,), symmetric=True)
    return op - S, S


def smoothing_level(op):
    r"""The paper's smoothing level :math:`\alpha = \operatorname{mean}_p |(W\mathbf{1})_p|` (section 6.2),
    per operator: an array of the batch shape."""
    check_operator(op)
    xp = namespace(op.diagonals)
    return xp.mean(xp.abs(row_sums(op)), axis=(-2, -1))


def _canonical(xp, diagonals, offsets):
    """Offset -> diagonal with the entries that point outside the grid set to 0 (they are not in A)."""
    return {
        o: zero_outside(xp, diagonals[..., k, :, :], o)
        for k, o in enumerate(offsets)
    }


def is_symmetric(op, *, rtol=None, atol=0.0):
    """Whether the matrix equals its transpose (every operator of a batch), judged from the values.

    Entries agree when ``|a - b| <= atol + rtol * max|A|``; ``rtol`` defaults to 100 machine epsilons of
    the dtype. The structural tag ``op.symmetric`` is not consulted. Reads one boolean on the host.
    """
    check_operator(op)
    xp = namespace(op.diagonals)
    if rtol is None:
        rtol = 100 * float(np.finfo(to_numpy(xp.zeros(1, dtype=op.dtype)).dtype).eps)
    mine = _canonical(xp, op.diagonals, op.offsets)
    t_diagonals, t_offsets = transpose_diagonals(xp, op.diagonals, op.offsets)
    theirs = dict(zip(t_offsets, (t_diagonals[..., k, :, :] for k in range(len(t_offsets)))))
    scale = xp.max(xp.abs(xp.stack(list(mine.values())))) if op.diagonals.size else 0.0
    worst = None
    for o in set(mine) | set(theirs):
        a, b = mine.get(o), theirs.get(o)
        diff = xp.abs(a - b) if a is not None and b is not None else xp.abs(a if a is not None else b)
        m = xp.max(diff)
        worst = m if worst is None else xp.maximum(worst, m)
    return bool(to_numpy(worst <= atol + rtol * scale))


_WHICH = ("LM", "SM", "LR", "SR")


def _select(values, k, which):
    key = {"LM": -np.abs(values), "SM": np.abs(values), "LR": -values.real, "SR": values.real}[which]
    return values[np.argsort(key, kind="stable")[:k]]


def spectrum(op, k=6, *, which="LM"):
    r"""``k`` eigenvalues of an unbatched operator, via ``scipy.sparse.linalg`` (a host copy).

    ``which``: ``"LM"`` / ``"SM"`` largest / smallest magnitude, ``"LR"`` / ``"SR"`` largest / smallest
    real part; the result is a NumPy array ordered that way (real for a symmetric matrix, complex
    otherwise). ARPACK (``eigsh`` for symmetric matrices, ``eigs`` otherwise) is used when ``k`` is small
    against the size; small matrices are solved densely.

    >>> import numpy as np, ssdops
    >>> np.round(ssdops.spectrum(ssdops.laplacian((1, 4), bc="dirichlet"), k=2, which="LM"), 6)
    array([-5.618034, -4.618034])
    """
    from scipy.sparse.linalg import eigs, eigsh

    from .sparse import to_scipy

    check_operator(op)
    if which not in _WHICH:
        raise ValueError(f"which must be one of {_WHICH}, got {which!r}")
    A = to_scipy(op, format="csr")
    n = A.shape[0]
    k = int(k)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the matrix size {n}, got {k}")
    symmetric = is_symmetric(op)
    if n <= 64 or k >= n - 1:
        dense = A.toarray()
        values = np.linalg.eigvalsh(dense) if symmetric else np.linalg.eigvals(dense)
    elif symmetric:
        values = eigsh(A, k=k, which={"LR": "LA", "SR": "SA"}.get(which, which), return_eigenvectors=False)
    else:
        values = eigs(A, k=k, which=which, return_eigenvectors=False)
    return _select(values, k, which)


def spectral_radius(op):
    r""":math:`\max |\lambda|` of an unbatched operator (a Python float), via :func:`spectrum`.

    >>> import ssdops
    >>> round(ssdops.spectral_radius(ssdops.laplacian((16, 16))), 6)     # 8 sin^2 ... -> close to 8
    7.923141
    """
    return float(np.abs(spectrum(op, k=1, which="LM")[0]))
