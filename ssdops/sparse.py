"""Exchange with scipy.sparse: assemble the matrix from the diagonals, and recover SSD diagonals from a matrix.

Both directions go through the host (scipy.sparse is NumPy-only).
"""
from __future__ import annotations

import numpy as np

from ._array import like_namespace, to_numpy
from .ssd import SSD
from .stencils import FIVE_POINT, NINE_POINT

__all__ = ["to_scipy", "from_scipy"]


def _grid_coordinates(H, W, offset):
    """Rows (i, j) whose neighbour (i + dy, j + dx) lies in the grid."""
    dy, dx = offset
    i = np.arange(max(0, -dy), min(H, H - dy))
    j = np.arange(max(0, -dx), min(W, W - dx))
    return np.meshgrid(i, j, indexing="ij")


def to_scipy(op, format="csr"):
    """The operator as a scipy.sparse matrix (row-major pixels, a host copy).

    An unbatched operator gives the ``(H*W, H*W)`` matrix. A batched operator (``batch_shape`` B) gives the
    block-diagonal matrix of shape ``(n*H*W, n*H*W)``, ``n = prod(B)``, over the row-major flattened batch:
    block ``b`` is the matrix of ``op[np.unravel_index(b, B)]``, so that it acts on ``u.reshape(-1)`` for an
    image batch ``u`` of shape ``B + (H, W)``; :func:`from_scipy` with ``batch_shape=B`` gives the batch
    back. Assembled directly from the diagonals (not by applying the operator to unit vectors); stored
    zeros are dropped.

    >>> import ssdops
    >>> ssdops.to_scipy(ssdops.laplacian((2, 2))).toarray()
    array([[-2.,  1.,  1.,  0.],
           [ 1., -2.,  0.,  1.],
           [ 1.,  0., -2.,  1.],
           [ 0.,  1.,  1., -2.]])
    """
    import scipy.sparse as sp

    H, W = op.grid_shape
    d = to_numpy(op.diagonals).reshape((-1, len(op.offsets), H, W))
    n, size = d.shape[0], H * W
    starts = np.arange(n) * size  # first row of each image's block
    rows, cols, data = [], [], []
    for k, (dy, dx) in enumerate(op.offsets):
        ii, jj = _grid_coordinates(H, W, (dy, dx))
        rows.append((starts[:, None] + (ii * W + jj).ravel()).ravel())
        cols.append((starts[:, None] + ((ii + dy) * W + (jj + dx)).ravel()).ravel())
        data.append(d[:, k, ii, jj].reshape(n, -1).ravel())
    data, rows, cols = (np.concatenate(a) for a in (data, rows, cols))
    stored = data != 0
    return sp.coo_array(
        (data[stored], (rows[stored], cols[stored])), shape=(n * size, n * size)
    ).asformat(format)


def _infer_offsets(found):
    for candidate in (FIVE_POINT, NINE_POINT):
        if found <= set(candidate):
            return candidate
    return FIVE_POINT + tuple(sorted(found - set(FIVE_POINT)))


def from_scipy(A, grid_shape, offsets=None, *, radius=1, batch_shape=(), like=None):
    """The SSD operator of a sparse (or dense) matrix on ``grid_shape``.

    ``offsets=None`` infers them from the non-zero entries: FIVE_POINT when they fit, else NINE_POINT, else
    FIVE_POINT followed by the other offsets found (sorted). An entry further than ``radius`` pixels from
    its row's pixel along either axis (a wrap-around, for example the flat +1 diagonal crossing the end of
    an image row, or a periodic boundary) is not a local stencil entry: ValueError. With explicit
    ``offsets``, every non-zero entry must lie on one of them (ValueError otherwise).

    ``batch_shape`` B reads a block-diagonal matrix of ``prod(B)`` blocks of ``(H*W, H*W)`` over the
    row-major flattened batch (the layout :func:`to_scipy` writes) as a batched operator with diagonals
    ``B + (K, H, W)``; an entry coupling two images raises ValueError.

    ``like`` is an array whose namespace, dtype and device the result takes (default: NumPy with the
    matrix's dtype, which must then be floating: TypeError otherwise).

    >>> import numpy as np, scipy.sparse.linalg as sl, ssdops
    >>> A = sl.LaplacianNd((3, 4), boundary_conditions="dirichlet", dtype=np.float64).tosparse()
    >>> ssdops.from_scipy(A, (3, 4)).offsets == ssdops.FIVE_POINT
    True
    """
    import scipy.sparse as sp

    H, W = (int(n) for n in grid_shape)
    batch_shape = tuple(int(b) for b in batch_shape)
    n, size = int(np.prod(batch_shape, dtype=np.int64)), H * W
    coo = sp.coo_array(A)
    if coo.shape != (n * size, n * size):
        raise ValueError(
            f"matrix of shape {coo.shape} does not fit the grid {(H, W)} and batch shape {batch_shape}: "
            f"expected {(n * size, n * size)}"
        )
    if like is None and not np.issubdtype(coo.dtype, np.floating):
        raise TypeError(f"matrix has non-floating dtype {coo.dtype}: convert it, or pass like=<float array>")
    coo.sum_duplicates()
    keep = coo.data != 0
    rows, cols, v = coo.row[keep], coo.col[keep], coo.data[keep]
    image, r = np.divmod(rows, size)
    image_c, c = np.divmod(cols, size)
    across = image != image_c
    if np.any(across):
        e = int(np.flatnonzero(across)[0])
        raise ValueError(
            f"entry ({rows[e]}, {cols[e]}) couples image {int(image[e])} with image {int(image_c[e])}: a "
            f"batched SSD matrix is block-diagonal over the batch shape {batch_shape}"
        )
    ri, rj = np.divmod(r, W)
    ci, cj = np.divmod(c, W)
    dy, dx = ci - ri, cj - rj
    far = (np.abs(dy) > radius) | (np.abs(dx) > radius)
    if np.any(far):
        e = int(np.flatnonzero(far)[0])
        raise ValueError(
            f"entry ({rows[e]}, {cols[e]}) couples pixel {(int(ri[e]), int(rj[e]))} with pixel "
            f"{(int(ci[e]), int(cj[e]))}, outside its local neighbourhood (radius {radius}): not an SSD "
            "matrix on this grid (a wrap-around?)"
        )
    found = set(zip(dy.tolist(), dx.tolist()))
    if offsets is None:
        offsets = _infer_offsets(found)
    else:
        offsets = tuple((int(a), int(b)) for a, b in offsets)
        missing = found - set(offsets)
        if missing:
            raise ValueError(f"matrix has entries on offsets {sorted(missing)} not among {offsets}")
    index = {o: k for k, o in enumerate(offsets)}
    k = np.array([index[o] for o in zip(dy.tolist(), dx.tolist())], dtype=np.intp)
    d = np.zeros((n, len(offsets), H, W), dtype=coo.dtype if like is None else np.float64)
    d[image, k, ri, rj] = v
    d = d.reshape(batch_shape + (len(offsets), H, W))
    if like is None:
        return SSD(d, offsets)
    xp, dtype, dev = like_namespace(like)
    return SSD(xp.asarray(d, dtype=dtype, device=dev), offsets)
