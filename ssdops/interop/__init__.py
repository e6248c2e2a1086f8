r"""SSD operators as the linear operators of scipy and PyLops, for their iterative solvers and tests.

Both act on *flattened* images: an operator on the grid ``(H, W)`` with batch shape ``B`` is the
block-diagonal matrix of :func:`ssdops.to_scipy` (size ``n H W``, ``n = prod(B)``, row-major over batch and
pixels), applied without forming it.

- :func:`aslinearoperator`: a :class:`scipy.sparse.linalg.LinearOperator` (NumPy operators), for ``cg``,
  ``gmres``, ``lsqr``, ``eigsh`` and the rest of ``scipy.sparse.linalg``.
- :func:`as_pylops`: a :class:`pylops.LinearOperator` with ``dims = dimsd = B + (H, W)``, for PyLops'
  solvers, ``dottest`` and operator algebra. PyLops is optional: ``pip install ssdops[pylops]``.

deepinv (PyTorch) acts on ``(B, C, H, W)`` images instead: :func:`as_deepinv` (any SSD, its batch paired with the
images' leading axes), :func:`heat_physics` (the exact heat equation with exact pseudo-inverse, proximal operator
and norm) and :func:`perona_malik_physics` (the paper's forward model), in :mod:`ssdops.interop._deepinv`;
``pip install ssdops[deepinv]``.

lineax (JAX) and ODL act on unflattened arrays: :func:`as_lineax` (structure ``batch_shape + grid``, tags from
:class:`ssdops.Tags`, in :mod:`ssdops.interop._lineax`) and :func:`as_odl` (an ``odl.Operator`` on a space of the
grid's shape, in :mod:`ssdops.interop._odl`); ``pip install ssdops[lineax]`` / ``ssdops[odl]``.

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..ssd import SSD
from ._deepinv import as_deepinv, heat_physics, perona_malik_physics
from ._lineax import as_lineax
from ._odl import as_odl

__all__ = ["as_deepinv", "as_lineax", "as_odl", "as_pylops", "aslinearoperator", "heat_physics", "perona_malik_physics"]


def _check_ssd(op, caller):
    if not isinstance(op, SSD):
        raise TypeError(f"{caller} takes an ssdops.SSD, got {type(op).__name__}")


def _dims(op):
    return op.batch_shape + op.grid_shape


def _flat_apply(op, apply, v):
    """``apply`` (``op.matvec`` or ``op.rmatvec``) on a flat vector or an ``(n, 1)`` column, in the
    operator's dtype; a complex vector as its real and imaginary parts (the operator is real)."""
    v = np.asarray(v)
    if np.iscomplexobj(v):
        return _flat_apply(op, apply, v.real) + 1j * _flat_apply(op, apply, v.imag)
    u = v.astype(op.dtype, copy=False).reshape(_dims(op))
    return apply(u).reshape(v.shape)


def aslinearoperator(op):
    r"""The operator as a :class:`scipy.sparse.linalg.LinearOperator` on flattened images.

    ``matvec`` / ``rmatvec`` reshape the vector to ``batch_shape + grid``, apply the operator (its fast
    paths included), and flatten; vectors are taken in the operator's ``dtype`` (complex vectors, as
    ``eigs`` may pass, part by part).

    Parameters
    ----------
    op : SSD
        The operator, batched or not, with NumPy diagonals: scipy's solvers compute on the host (use
        :func:`as_pylops` for CuPy).

    Returns
    -------
    scipy.sparse.linalg.LinearOperator
        ``shape = (N, N)`` with ``N = prod(batch_shape) * prod(grid_shape)``, ``dtype = op.dtype``; a batched
        operator acts block-diagonally on the row-major flattened batch (the matrix of :func:`to_scipy`).

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`, or its diagonals are not NumPy arrays.

    See Also
    --------
    as_pylops : The operator for PyLops (NumPy and CuPy).
    to_scipy : The assembled sparse matrix.
    identity : For :math:`I - \Delta t\,A`.

    Notes
    -----
    For a flat vector :math:`v` of length N,

    .. math:: \mathtt{matvec}(v) = \operatorname{vec}(A\,\operatorname{unvec}(v)), \qquad
              \mathtt{rmatvec}(v) = \operatorname{vec}(A^\top \operatorname{unvec}(v)),

    so scipy's ``cg`` on ``aslinearoperator(identity(grid) - dt * A)`` solves the implicit step (eq. 2.11).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (2.11).

    Examples
    --------
    >>> import numpy as np, scipy.sparse.linalg as sl, ssdops
    >>> L = ssdops.laplacian((8, 8), bc="dirichlet")
    >>> A = ssdops.aslinearoperator(ssdops.identity((8, 8)) - 0.5 * L)     # I - dt L, SPD
    >>> u = np.random.default_rng(0).random(64)
    >>> x, info = sl.cg(A, u, rtol=1e-12)
    >>> bool(info == 0 and np.allclose(x, ssdops.implicit_step(u.reshape(8, 8), L, 0.5).ravel()))
    True
    """
    from scipy.sparse.linalg import LinearOperator

    _check_ssd(op, "ssdops.aslinearoperator")
    if not isinstance(op.diagonals, np.ndarray):
        raise TypeError(
            "ssdops.aslinearoperator needs an operator with NumPy diagonals (scipy.sparse.linalg computes "
            f"on the host), got {type(op.diagonals).__module__}.{type(op.diagonals).__name__}: build it with "
            "like=<numpy array>, or use ssdops.as_pylops for CuPy"
        )
    n = math.prod(_dims(op))
    return LinearOperator(
        (n, n),
        matvec=functools.partial(_flat_apply, op, op.matvec),
        rmatvec=functools.partial(_flat_apply, op, op.rmatvec),
        dtype=op.dtype,
    )


@functools.cache
def _pylops_class():
    """The PyLops operator class, defined on first use (PyLops is imported only then)."""
    try:
        import pylops
    except ImportError as err:
        raise ImportError(
            "ssdops.as_pylops needs PyLops, an optional dependency: pip install ssdops[pylops]"
        ) from err

    class SSDOperator(pylops.LinearOperator):
        """An :class:`ssdops.SSD` as a PyLops operator with ``dims = dimsd = batch_shape + (H, W)``."""

        def __init__(self, op, name="S"):
            self.ssd = op
            super().__init__(dtype=np.dtype(str(op.dtype).rsplit(".", 1)[-1]), dims=_dims(op),
                             dimsd=_dims(op), name=name)

        def _matvec(self, x):
            return self.ssd.matvec(x.reshape(self.dims)).reshape(-1)

        def _rmatvec(self, x):
            return self.ssd.rmatvec(x.reshape(self.dimsd)).reshape(-1)

    return SSDOperator


def as_pylops(op, *, name="S"):
    r"""The operator as a :class:`pylops.LinearOperator` with ``dims = dimsd = batch_shape + grid_shape``.

    ``matvec`` / ``rmatvec`` apply the SSD and its transpose (fast paths included) on the array they are
    given, in its own library: NumPy, and CuPy arrays for an operator with CuPy diagonals (PyLops' CuPy
    backend). For JAX, wrap the result in ``pylops.JaxOperator`` (PyLops' JAX support; the SSD applies are
    written in ``jax.numpy`` and trace). Passes ``pylops.utils.dottest``.

    Parameters
    ----------
    op : SSD
        The operator, batched or not.
    name : str, default "S"
        The PyLops operator's name (shown in its ``repr`` and in operator algebra).

    Returns
    -------
    pylops.LinearOperator
        The operator, shape ``(N, N)`` with ``N = prod(dims)``, of the operator's dtype; its ``ssd``
        attribute is ``op``.

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`.
    ImportError
        If PyLops, an optional dependency, is not installed (``pip install ssdops[pylops]``).

    See Also
    --------
    aslinearoperator : The operator for scipy.sparse.linalg.
    dot_test : The adjoint check for any pair of functions.

    Notes
    -----
    PyLops reshapes its model vector to ``dims`` and calls

    .. math:: y = A\,x \quad (\texttt{matvec}), \qquad x = A^\top y \quad (\texttt{rmatvec}),

    on images of shape ``batch_shape + grid_shape``; for a batched operator the matrix is the block-diagonal
    one of :func:`to_scipy`.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), Definition 2.7 (the SSD matrix).
    .. [2] M. Ravasi and I. Vasconcelos, "PyLops: a linear-operator Python library for scalable algebra
           and optimization", SoftwareX 11, 100361, 2020.

    Examples
    --------
    >>> import numpy as np, pylops, ssdops
    >>> Op = ssdops.as_pylops(ssdops.divergence_form(np.ones((2, 6, 5))))
    >>> Op.dims, Op.shape
    ((2, 6, 5), (60, 60))
    >>> bool(pylops.utils.dottest(Op))
    True
    """
    _check_ssd(op, "ssdops.as_pylops")
    return _pylops_class()(op, name=name)
