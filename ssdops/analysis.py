r"""Analysis of SSD operators: row sums, the paper's split :math:`W = L + S`, symmetry and spectra.

:func:`row_sums`, :func:`split_zero_mean`, :func:`smoothing_level` and :func:`is_symmetric` run in the
operator's own namespace; :func:`spectrum` and :func:`spectral_radius` export the matrix to scipy.sparse
(a host copy) and call ARPACK.

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
"""
from __future__ import annotations

import numpy as np
from array_api_compat import device

from ._array import Array, namespace, to_numpy
from ._kernels import component, transpose_diagonals, zero_outside
from .ssd import SSD, check_operator
from .stencils import centre

__all__ = ["row_sums", "split_zero_mean", "smoothing_level", "is_symmetric", "spectrum", "spectral_radius"]


def row_sums(op: SSD) -> Array:
    r"""The row sums :math:`A\mathbf{1}` as an image ``(..., *grid)``; zero for a Neumann diffusion operator.

    Parameters
    ----------
    op : SSD
        The operator, batched or not.

    Returns
    -------
    array
        ``(*batch_shape, *grid)``: the sum of row :math:`p` of the matrix at pixel :math:`p`, in the
        operator's library, dtype and device.

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`.

    See Also
    --------
    split_zero_mean : The split of an operator by its row sums.
    smoothing_level : The mean absolute row sum.

    Notes
    -----
    .. math:: (A\mathbf{1})_p = \sum_{k \,:\, p + o_k \in \text{grid}} d_k(p).

    Zero everywhere for ``divergence_form`` with Neumann boundaries (it redistributes, conserving the mean);
    negative at the boundary with Dirichlet (mass leaves through the zero ghosts).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 2.3 (the zero-mean part, :math:`L\mathbf{1} = 0`).

    Examples
    --------
    >>> import ssdops
    >>> float(abs(ssdops.row_sums(ssdops.laplacian((4, 4)))).max())
    0.0
    >>> ssdops.row_sums(ssdops.laplacian((3, 3), bc="dirichlet"))
    array([[-2., -1., -2.],
           [-1.,  0., -1.],
           [-2., -1., -2.]])
    """
    check_operator(op)
    xp = namespace(op.diagonals)
    ones = xp.ones(op.grid_shape, dtype=op.dtype, device=device(op.diagonals))
    return op @ ones


def split_zero_mean(op: SSD) -> tuple[SSD, SSD]:
    r"""The paper's split :math:`W = L + S` (section 2.3): ``L`` with zero row sums, ``S`` diagonal.

    :math:`S = \operatorname{diag}(W\mathbf{1})` is the part of the operator that changes the mean (the
    smoothing, or with negative sign sharpening, part); :math:`L = W - S` redistributes without changing it.

    Parameters
    ----------
    op : SSD
        The operator :math:`W`, batched or not.

    Returns
    -------
    L : SSD
        The zero-mean part :math:`W - S`, with the offsets of ``op`` (the centre included).
    S : SSD
        The diagonal part, the single centre offset (``(0, 0)`` in 2-D), tagged symmetric.

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`.

    See Also
    --------
    row_sums : The diagonal of ``S``.
    smoothing_level : The mean of :math:`|S|`.
    ssd_from_filters : The learned operator this analyses.

    Notes
    -----
    .. math::

       W = L + S, \qquad S = \operatorname{diag}(W\mathbf{1}), \qquad L\mathbf{1} = 0.

    For DiffNet's :math:`W_{dt}(\zeta)` (eq. 4.7) in 2-D, :math:`S = \Delta t\,\operatorname{diag}(\sum_{i=1}^4
    \zeta_i - \zeta_5)` (away from the boundary), the smoothing part the paper shows in Fig. 11.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), Definition 2.7, section 2.3 and section 6.2 (Fig. 11).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> L, S = ssdops.split_zero_mean(ssdops.laplacian((3, 3), bc="dirichlet"))
    >>> S.diagonal((0, 0))
    array([[-2., -1., -2.],
           [-1.,  0., -1.],
           [-2., -1., -2.]])
    >>> float(abs(ssdops.row_sums(L)).max())
    0.0
    """
    rs = row_sums(op)
    xp = namespace(rs)
    S = SSD(xp.expand_dims(rs, axis=-op.ndim - 1), (centre(op.ndim),), symmetric=True)
    return op - S, S


def smoothing_level(op: SSD) -> Array:
    r"""The paper's smoothing level :math:`\alpha = \operatorname{mean}_p |(W\mathbf{1})_p|`, per operator.

    Parameters
    ----------
    op : SSD
        The operator :math:`W`, batched or not.

    Returns
    -------
    array
        The level per operator: an array of the batch shape (0-d for one operator), in the operator's
        library and dtype.

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`.

    See Also
    --------
    split_zero_mean : The split whose ``S`` this averages.
    row_sums : The row sums :math:`W\mathbf{1}`.

    Notes
    -----
    .. math:: \alpha(W) = \frac{1}{N} \sum_{p=1}^{N} \Bigl| \sum_{q} W_{pq} \Bigr| = \frac{1}{N} \|S\mathbf{1}\|_1,

    over the N grid points. The paper averages it over 32 test images and finds it grows with the noise
    level of the training data (Fig. 13).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 6.2 (Figs. 11 and 13).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> round(float(ssdops.smoothing_level(ssdops.ssd_from_filters(np.ones((5, 4, 4)), 0.1))), 6)
    0.2
    >>> ssdops.smoothing_level(ssdops.divergence_form(np.ones((2, 4, 4))))     # Neumann: zero mean
    array([0., 0.])
    """
    check_operator(op)
    xp = namespace(op.diagonals)
    return xp.mean(xp.abs(row_sums(op)), axis=tuple(range(-op.ndim, 0)))


def _canonical(xp, diagonals, offsets):
    """Offset -> diagonal with the entries that point outside the grid set to 0 (they are not in A)."""
    return {
        o: zero_outside(xp, component(diagonals, k, len(o)), o)
        for k, o in enumerate(offsets)
    }


def is_symmetric(op: SSD, *, rtol: float | None = None, atol: float = 0.0) -> bool:
    r"""Whether the matrix equals its transpose (every operator of a batch), judged from the values.

    The structural tag ``op.symmetric`` is not consulted. Reads one boolean on the host.

    Parameters
    ----------
    op : SSD
        The operator, batched or not.
    rtol : float, optional
        Relative tolerance against :math:`\max |A|`; default 100 machine epsilons of the dtype.
    atol : float, default 0.0
        Absolute tolerance.

    Returns
    -------
    bool
        ``True`` when every in-grid entry agrees with its transposed entry within the tolerance.

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`.

    See Also
    --------
    select_method : Asks this for an operator without a symmetry tag.
    Tags : The structural tag.

    Notes
    -----
    Entries agree when

    .. math:: |A_{pq} - A_{qp}| \le \mathrm{atol} + \mathrm{rtol} \max_{p', q'} |A_{p'q'}|

    for every in-grid pair; the transpose is formed as diagonals (offsets :math:`-o_k`), not as a matrix.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), Definition 2.7 (a symmetric :math:`L(\gamma)`, a general
           :math:`W(\zeta)`).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> ssdops.is_symmetric(ssdops.divergence_form(np.random.default_rng(0).random((4, 4))))
    True
    >>> ssdops.is_symmetric(ssdops.ssd_from_filters(np.arange(45.0).reshape(5, 3, 3)))
    False
    """
    check_operator(op)
    xp = namespace(op.diagonals)
    if rtol is None:
        rtol = 100 * float(np.finfo(to_numpy(xp.zeros(1, dtype=op.dtype)).dtype).eps)
    mine = _canonical(xp, op.diagonals, op.offsets)
    t_diagonals, t_offsets = transpose_diagonals(xp, op.diagonals, op.offsets)
    theirs = dict(zip(t_offsets, (component(t_diagonals, k, op.ndim) for k in range(len(t_offsets)))))
    scale = xp.max(xp.abs(xp.stack(list(mine.values())))) if op.diagonals.size else 0.0
    worst: Array = None  # an array after the first offset
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


def spectrum(op: SSD, k: int = 6, *, which: str = "LM") -> np.ndarray:
    r"""``k`` eigenvalues of an unbatched operator, via ``scipy.sparse.linalg`` (a host copy).

    ARPACK (``eigsh`` for symmetric matrices, ``eigs`` otherwise) is used when ``k`` is small against the
    size; small matrices (N <= 64, or ``k >= N - 1``) are solved densely.

    Parameters
    ----------
    op : SSD
        The operator (a batched one gives the eigenvalues of its block-diagonal matrix, :func:`to_scipy`).
    k : int, default 6
        The number of eigenvalues, between 1 and the matrix size N.
    which : {"LM", "SM", "LR", "SR"}, default "LM"
        ``"LM"`` / ``"SM"`` largest / smallest magnitude, ``"LR"`` / ``"SR"`` largest / smallest real part.

    Returns
    -------
    numpy.ndarray
        The ``k`` eigenvalues, ordered by ``which``: real for a symmetric matrix (:func:`is_symmetric`),
        complex otherwise.

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`.
    ValueError
        If ``which`` is not one of the four, or ``k`` is not between 1 and N.

    See Also
    --------
    spectral_radius : The largest magnitude.
    stable_dt : The stability limit, from the entries.
    to_scipy : The matrix whose eigenvalues these are.

    Notes
    -----
    The eigenvalues :math:`\lambda` of :math:`A` decide the steps: :math:`I + \Delta t A` (eq. 2.10) has
    eigenvalues :math:`1 + \Delta t \lambda`, :math:`(I - \Delta t A)^{-1}` (eq. 2.11) has
    :math:`1 / (1 - \Delta t \lambda)`. For the 1-D Dirichlet Laplacian on n points,
    :math:`\lambda_k = -4 \sin^2(\pi k / (2n + 2))`, :math:`k = 1..n`.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eqs. (2.10) and (2.11).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> np.round(ssdops.spectrum(ssdops.laplacian((1, 4), bc="dirichlet"), k=2, which="LM"), 6)
    array([-5.618034, -4.618034])
    >>> np.round(ssdops.spectrum(ssdops.laplacian((3,), bc="dirichlet"), k=3, which="SM"), 6)
    array([-0.585786, -2.      , -3.414214])
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


def spectral_radius(op: SSD) -> float:
    r""":math:`\max |\lambda|` of an unbatched operator (a Python float), via :func:`spectrum`.

    Parameters
    ----------
    op : SSD
        The operator (a host copy is made).

    Returns
    -------
    float
        The largest eigenvalue magnitude.

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`.

    See Also
    --------
    spectrum : Several eigenvalues.
    stable_dt : The stability limit of the explicit step.

    Notes
    -----
    .. math:: \rho(A) = \max_k |\lambda_k(A)|.

    For a symmetric :math:`A` with eigenvalues in :math:`[-\rho, 0]`, no mode grows under the explicit
    step (eq. 2.10), :math:`|1 + \Delta t \lambda| \le 1`, when :math:`\Delta t \le 2 / \rho`; the 2-D
    Laplacian has :math:`\rho < 8`.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (2.10).

    Examples
    --------
    >>> import ssdops
    >>> round(ssdops.spectral_radius(ssdops.laplacian((16, 16))), 6)     # 8 sin^2 ... -> close to 8
    7.923141
    >>> round(ssdops.spectral_radius(ssdops.laplacian((3,), bc="dirichlet")), 6)     # 2 + sqrt(2)
    3.414214
    """
    return float(np.abs(spectrum(op, k=1, which="LM")[0]))
