"""Exchange with scipy.sparse: assemble the matrix from the diagonals, and recover SSD diagonals from a matrix.

Both directions go through the host (scipy.sparse is NumPy-only).

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._array import Array, chunked_like, like_namespace, to_numpy
from ._validate import check_grid_shape
from .ssd import SSD, check_operator
from .stencils import (
    FIVE_POINT,
    NINE_POINT,
    SEVEN_POINT,
    THREE_POINT,
    TWENTY_SEVEN_POINT,
    star,
)

__all__ = ["to_scipy", "from_scipy"]


#: Offset sets tried in order by :func:`from_scipy` when none are given, per grid dimension.
_KNOWN_OFFSETS = {1: (THREE_POINT,), 2: (FIVE_POINT, NINE_POINT), 3: (SEVEN_POINT, TWENTY_SEVEN_POINT)}


def _grid_coordinates(grid, offset):
    """Coordinate arrays (one per axis, ``indexing="ij"``) of the pixels whose neighbour at ``offset`` lies
    in the grid."""
    axes = [np.arange(max(0, -o), min(n, n - o)) for n, o in zip(grid, offset)]
    return np.meshgrid(*axes, indexing="ij")


def to_scipy(op: SSD, format: str = "csr") -> Any:
    r"""The operator as a scipy.sparse matrix (row-major pixels, a host copy).

    Assembled directly from the diagonals (not by applying the operator to unit vectors); stored zeros are
    dropped.

    Parameters
    ----------
    op : SSD
        The operator, batched or not, of any array library (its diagonals are copied to the host).
    format : str, default "csr"
        The scipy.sparse format of the result (``"csr"``, ``"csc"``, ``"coo"``, ``"dia"``, ...).

    Returns
    -------
    scipy.sparse.sparray
        An unbatched operator gives the ``(N, N)`` matrix, ``N`` the number of grid points (``H*W`` in 2-D,
        pixels row-major in every dimension). A batched operator (``batch_shape`` B) gives the
        block-diagonal matrix of shape ``(n*N, n*N)``, ``n = prod(B)``, over the row-major flattened batch:
        block ``b`` is the matrix of ``op[np.unravel_index(b, B)]``, so that it acts on ``u.reshape(-1)`` for
        an image batch ``u`` of shape ``B + grid``.

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`, or its diagonals are of a library NumPy cannot read (see
        :func:`to_numpy`).
    ValueError
        For a ``format`` scipy does not know.

    See Also
    --------
    from_scipy : The way back.
    aslinearoperator : The operator as a scipy LinearOperator, without forming the matrix.

    Notes
    -----
    Row :math:`p` (the row-major index of pixel :math:`p`) holds

    .. math:: A_{p,\,p + o_k} = d_k(p) \quad \text{for every } k \text{ with } p + o_k \text{ in the grid}:

    the paper's SSD matrix (Definition 2.7), non-zero only on the sub-diagonals of the offsets (in 2-D on
    an :math:`H \times W` grid, offset :math:`(dy, dx)` is the sub-diagonal :math:`dy\,W + dx`).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), Definition 2.7.

    Examples
    --------
    >>> import ssdops
    >>> ssdops.to_scipy(ssdops.laplacian((2, 2))).toarray()
    array([[-2.,  1.,  1.,  0.],
           [ 1., -2.,  0.,  1.],
           [ 1.,  0., -2.,  1.],
           [ 0.,  1.,  1., -2.]])
    >>> import numpy as np
    >>> ssdops.to_scipy(ssdops.divergence_form(np.ones((2, 3, 3)))).shape     # a batch of 2: block-diagonal
    (18, 18)
    """
    import scipy.sparse as sp

    check_operator(op)
    grid = op.grid_shape
    d = to_numpy(op.diagonals).reshape((-1, len(op.offsets)) + grid)
    n, size = d.shape[0], int(np.prod(grid, dtype=np.int64))
    starts = np.arange(n) * size  # first row of each image's block
    rows, cols, data = [], [], []
    for k, offset in enumerate(op.offsets):
        coords = _grid_coordinates(grid, offset)
        neighbours = [c + o for c, o in zip(coords, offset)]
        rows.append((starts[:, None] + np.ravel_multi_index(coords, grid).ravel()).ravel())
        cols.append((starts[:, None] + np.ravel_multi_index(neighbours, grid).ravel()).ravel())
        data.append(d[(slice(None), k) + tuple(coords)].reshape(n, -1).ravel())
    values, row_index, col_index = (np.concatenate(a) for a in (data, rows, cols))
    stored = values != 0
    return sp.coo_array(
        (values[stored], (row_index[stored], col_index[stored])), shape=(n * size, n * size)
    ).asformat(format)


def _infer_offsets(found, ndim):
    for candidate in _KNOWN_OFFSETS[ndim]:
        if found <= set(candidate):
            return candidate
    return star(ndim) + tuple(sorted(found - set(star(ndim))))


def from_scipy(A: Any, grid_shape: Sequence[int], offsets: Sequence[Sequence[int]] | None = None, *,
               radius: int = 1, batch_shape: Sequence[int] = (), like: Array | None = None) -> SSD:
    r"""The SSD operator of a sparse (or dense) matrix on ``grid_shape`` (1, 2 or 3 axes).

    Parameters
    ----------
    A : scipy.sparse matrix or array, or numpy.ndarray
        The square matrix, rows and columns the row-major pixels (of every image of the batch).
    grid_shape : sequence of int
        The grid, 1, 2 or 3 integers >= 1.
    offsets : sequence of d-tuples, optional
        The offsets of the result. ``None`` infers them from the non-zero entries: in 2-D
        :data:`FIVE_POINT` when they fit, else :data:`NINE_POINT`, else FIVE_POINT followed by the other
        offsets found (sorted); in 1-D :data:`THREE_POINT`, in 3-D :data:`SEVEN_POINT` or
        :data:`TWENTY_SEVEN_POINT`, likewise.
    radius : int, default 1
        The largest distance, along any axis, of an entry's column pixel from its row pixel.
    batch_shape : tuple of int, default ()
        B: read a block-diagonal matrix of ``prod(B)`` blocks of ``(N, N)`` over the row-major flattened batch
        (the layout :func:`to_scipy` writes) as a batched operator with diagonals ``B + (K, *grid)``.
    like : array, optional
        An array whose namespace, dtype and device the result takes (default: NumPy with the matrix's dtype,
        which must then be floating).

    Returns
    -------
    SSD
        The operator with diagonals ``B + (K, *grid)``, zero outside the grid (canonical).

    Raises
    ------
    TypeError
        If ``grid_shape`` is not a sequence of integers; if the matrix's dtype is not floating and ``like`` is
        not given.
    ValueError
        If ``grid_shape`` has not 1, 2 or 3 entries or one below 1; if the matrix's shape does not fit the
        grid and batch shape; for an entry coupling two images of the batch; for an entry further than
        ``radius`` pixels from its row's pixel along any axis (a wrap-around, for example the flat +1
        diagonal crossing the end of an image row, or a periodic boundary: not a local stencil entry); with
        explicit ``offsets``, for a non-zero entry on none of them.

    See Also
    --------
    to_scipy : The way there.
    SSD : The operator class.

    Notes
    -----
    The inverse of :func:`to_scipy` on its image: an entry :math:`A_{pq} \ne 0` goes to the diagonal of the
    offset :math:`o = q - p` (pixel coordinates) at pixel :math:`p`,

    .. math:: d_o(p) = A_{p,\,p + o},

    which is possible exactly for the SSD matrices of the paper's Definition 2.7 (entries only within the
    local neighbourhood of each pixel).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), Definition 2.7.

    Examples
    --------
    >>> import numpy as np, scipy.sparse.linalg as sl, ssdops
    >>> A = sl.LaplacianNd((3, 4), boundary_conditions="dirichlet", dtype=np.float64).tosparse()
    >>> ssdops.from_scipy(A, (3, 4)).offsets == ssdops.FIVE_POINT
    True
    >>> ssdops.from_scipy(np.diag([1.0, 2.0, 3.0]), (3,)).diagonal((0,))
    array([1., 2., 3.])
    """
    import scipy.sparse as sp

    grid = check_grid_shape(grid_shape, ndim=(1, 2, 3))
    batch_shape = tuple(int(b) for b in batch_shape)
    n, size = int(np.prod(batch_shape, dtype=np.int64)), int(np.prod(grid, dtype=np.int64))
    coo = sp.coo_array(A)
    if coo.shape != (n * size, n * size):
        raise ValueError(
            f"matrix of shape {coo.shape} does not fit the grid {grid} and batch shape {batch_shape}: "
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
    row_at: tuple[Any, ...] = np.unravel_index(r, grid)
    col_at: tuple[Any, ...] = np.unravel_index(c, grid)
    steps = [ca - ra for ra, ca in zip(row_at, col_at)]
    far = np.zeros(r.shape, dtype=bool)
    for step in steps:
        far |= np.abs(step) > radius
    if np.any(far):
        e = int(np.flatnonzero(far)[0])
        raise ValueError(
            f"entry ({rows[e]}, {cols[e]}) couples pixel {tuple(int(a[e]) for a in row_at)} with pixel "
            f"{tuple(int(a[e]) for a in col_at)}, outside its local neighbourhood (radius {radius}): not an "
            "SSD matrix on this grid (a wrap-around?)"
        )
    entry_offsets = list(zip(*(step.tolist() for step in steps)))
    found = set(entry_offsets)
    if offsets is None:
        offsets = _infer_offsets(found, len(grid))
    else:
        offsets = tuple(tuple(int(a) for a in o) for o in offsets)
        missing = found - set(offsets)
        if missing:
            raise ValueError(f"matrix has entries on offsets {sorted(missing)} not among {offsets}")
    index = {o: k for k, o in enumerate(offsets)}
    k = np.array([index[o] for o in entry_offsets], dtype=np.intp)
    d = np.zeros((n, len(offsets)) + grid, dtype=coo.dtype if like is None else np.float64)
    d[(image, k) + tuple(row_at)] = v
    d = d.reshape(batch_shape + (len(offsets),) + grid)
    if like is None:
        return SSD(d, offsets)
    xp, dtype, dev = like_namespace(like)
    return SSD(chunked_like(xp.asarray(d, dtype=dtype, device=dev), like, len(grid)), offsets)
