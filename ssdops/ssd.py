r"""The sparse sub-diagonal (SSD) operator: one matrix diagonal per stencil offset, stored as images.

An SSD operator on an :math:`H \times W` grid with offsets :math:`o_k = (dy_k, dx_k)` is the
:math:`HW \times HW` matrix (row-major, pixel :math:`p = (i, j) \mapsto iW + j`)

.. math:: A[p, p + o_k] = d_k(p) \quad \text{for every } p \text{ whose neighbour } p + o_k
          \text{ lies in the grid},

and zero elsewhere: the paper's Definition 2.7. The diagonals :math:`d_k` are stored as an array of shape
``(..., K, H, W)``; leading axes are batch axes (one operator per image) and broadcast against the image.
Values of :math:`d_k` at pixels whose neighbour is outside the grid are ignored (never multiplied into a
result); :attr:`SSD.T` and the constructors of this package produce zeros there (the canonical form).
"""
from __future__ import annotations

import numbers

from array_api_compat import device

from ._array import embed, fast_path, namespace, neighbour_window, shift, shifted_product
from .stencils import FIVE_POINT

__all__ = ["SSD", "identity"]


class SSD:
    """Sparse sub-diagonal operator acting on images ``(..., H, W)``.

    Parameters
    ----------
    diagonals : array, shape ``(..., K, H, W)``
        ``diagonals[..., k, i, j]`` multiplies ``u[..., i + dy_k, j + dx_k]`` in row ``(i, j)``.
    offsets : sequence of K ``(dy, dx)`` pairs, default :data:`ssdops.FIVE_POINT`
        Distinct offsets, any size (5-point, 9-point, wider).
    symmetric : bool or None
        A structural tag: ``True`` when the caller knows the matrix is symmetric (constructors such as
        :func:`ssdops.divergence_form` set it). It lets :func:`ssdops.implicit_step` pick conjugate
        gradients without inspecting values. ``None`` means unknown.

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> d = np.zeros((5, 3, 4)); d[4] = 2.0          # 2 * identity, in the centre diagonal
    >>> op = ssdops.SSD(d)
    >>> (op @ np.ones((3, 4)))[0, 0]
    np.float64(2.0)
    """

    def __init__(self, diagonals, offsets=FIVE_POINT, *, symmetric=None):
        offsets = tuple((int(dy), int(dx)) for dy, dx in offsets)
        if len(set(offsets)) != len(offsets):
            raise ValueError(f"offsets must be distinct, got {offsets}")
        xp = namespace(diagonals)
        if diagonals.ndim < 3 or diagonals.shape[-3] != len(offsets):
            raise ValueError(
                f"diagonals of shape {tuple(diagonals.shape)} do not match {len(offsets)} offsets: "
                f"expected shape (..., {len(offsets)}, H, W)"
            )
        self._xp = xp
        self.diagonals = diagonals
        self.offsets = offsets
        self.symmetric = symmetric
        # (bc, scale) when this is scale * laplacian(bc): diagonalised by a DCT/DST, see ssdops.spectral.
        self._laplacian = None

    # --- shape and type -------------------------------------------------------------------------
    @property
    def grid_shape(self):
        """``(H, W)``."""
        return tuple(self.diagonals.shape[-2:])

    @property
    def batch_shape(self):
        """Leading batch axes of the diagonals (``()`` for a single operator)."""
        return tuple(self.diagonals.shape[:-3])

    @property
    def dtype(self):
        return self.diagonals.dtype

    @property
    def device(self):
        return device(self.diagonals)

    @property
    def xp(self):
        """The array namespace of the diagonals."""
        return self._xp

    def diagonal(self, offset):
        """The diagonal image ``(..., H, W)`` of ``offset``."""
        return self.diagonals[..., self.offsets.index(tuple(offset)), :, :]

    def _check_image(self, u):
        xp = namespace(self.diagonals, u)
        if u.ndim < 2 or tuple(u.shape[-2:]) != self.grid_shape:
            raise ValueError(
                f"image of shape {tuple(u.shape)} does not match the operator's grid {self.grid_shape} "
                f"(diagonals of shape {tuple(self.diagonals.shape)})"
            )
        return xp

    # --- application ----------------------------------------------------------------------------
    def matvec(self, u):
        r"""``(A u)[..., i, j] = sum_k d_k[..., i, j] u[..., i + dy_k, j + dx_k]`` (zero outside)."""
        return self._apply("ssd_apply", apply_generic, u)

    def rmatvec(self, u):
        r"""``A^T u``: ``sum_k shift(d_k u, -o_k)``, without forming the transposed diagonals."""
        return self._apply("ssd_apply_transpose", apply_transpose_generic, u)

    def _apply(self, name, generic, u):
        """The backend's kernel ``name`` for ``u``'s namespace where one is registered, else ``generic``."""
        xp = self._check_image(u)
        fast = fast_path(name, xp)
        if fast is not None:
            return fast(self.diagonals, self.offsets, u)
        return generic(xp, self.diagonals, self.offsets, u)

    def __matmul__(self, u):
        if isinstance(u, SSD):
            return NotImplemented
        return self.matvec(u)

    @property
    def T(self):
        """The transpose, again an SSD with offsets ``-o_k`` (in the original order when the offset set is
        symmetric, as for FIVE_POINT and NINE_POINT) and canonical diagonals."""
        if self.symmetric:
            return self
        diagonals, offsets = transpose_diagonals(self._xp, self.diagonals, self.offsets)
        out = SSD(diagonals, offsets, symmetric=self.symmetric)
        out._laplacian = self._laplacian
        return out

    # --- algebra --------------------------------------------------------------------------------
    def __add__(self, other):
        if not isinstance(other, SSD):
            return NotImplemented
        xp = namespace(self.diagonals, other.diagonals)
        if self.grid_shape != other.grid_shape:
            raise ValueError(f"grids differ: {self.grid_shape} and {other.grid_shape}")
        offsets = self.offsets + tuple(o for o in other.offsets if o not in self.offsets)
        terms = []
        for o in offsets:
            parts = [op.diagonal(o) for op in (self, other) if o in op.offsets]
            terms.append(parts[0] + parts[1] if len(parts) == 2 else parts[0])
        terms = xp.broadcast_arrays(*terms)
        symmetric = True if (self.symmetric and other.symmetric) else None
        out = SSD(xp.stack(terms, axis=-3), offsets, symmetric=symmetric)
        if self._laplacian and other._laplacian and self._laplacian[0] == other._laplacian[0]:
            out._laplacian = (self._laplacian[0], self._laplacian[1] + other._laplacian[1])
        return out

    def __mul__(self, scalar):
        if isinstance(scalar, SSD):
            return NotImplemented
        is_number = isinstance(scalar, numbers.Real)
        if not is_number and getattr(scalar, "ndim", None) != 0:
            raise TypeError(
                f"an SSD can be multiplied by a scalar only (a Python number or a 0-d array), got "
                f"{type(scalar).__name__} of shape {getattr(scalar, 'shape', None)}"
            )
        out = SSD(self.diagonals * scalar, self.offsets, symmetric=self.symmetric)
        if is_number and self._laplacian:
            out._laplacian = (self._laplacian[0], self._laplacian[1] * float(scalar))
        return out

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        if not isinstance(other, SSD):
            return NotImplemented
        return self + (-other)

    def __repr__(self):
        return (
            f"SSD(grid_shape={self.grid_shape}, batch_shape={self.batch_shape}, "
            f"offsets={self.offsets}, dtype={self.dtype}, device={self.device})"
        )


def transpose_diagonals(xp, diagonals, offsets):
    """Diagonals and offsets of the transpose: offset ``-o`` carries ``shift(d_o, -o)`` (canonical).

    ``A^T[q, q - o] = A[q - o, q] = d_o(q - o)``. When the negated offsets are the same set, the original
    order is kept, so that a transposed FIVE_POINT operator is again in FIVE_POINT order.
    """
    negated = [(-dy, -dx) for dy, dx in offsets]
    order = tuple(offsets) if set(negated) == set(offsets) else tuple(negated)
    columns = {neg: shift(xp, diagonals[..., k, :, :], neg) for k, neg in enumerate(negated)}
    return xp.stack([columns[o] for o in order], axis=-3), order


def apply_generic(xp, diagonals, offsets, u):
    """Reference apply: ``sum_k d_k(p) u(p + o_k)`` over in-grid neighbours, one product per offset.

    Products are formed only where the neighbour is in the grid, so values of ``d_k`` that point outside
    (not entries of the matrix) never reach the result, even when they are not finite.
    """
    out = None
    for k, o in enumerate(offsets):
        term = shifted_product(xp, diagonals[..., k, :, :], u, o)
        out = term if out is None else out + term
    return out


def apply_transpose_generic(xp, diagonals, offsets, u):
    """Reference transposed apply: ``y(q) = sum_k d_k(q - o_k) u(q - o_k)`` over in-grid ``q - o_k``."""
    out = None
    for k, (dy, dx) in enumerate(offsets):
        _, sources, pads = neighbour_window(tuple(u.shape[-2:]), (-dy, -dx))
        term = embed(xp, diagonals[..., k, :, :][sources] * u[sources], pads)
        out = term if out is None else out + term
    return out


def identity(grid_shape, *, like=None):
    """The identity on ``grid_shape`` as an SSD with the single offset ``(0, 0)``.

    ``like`` is an array whose namespace, dtype and device the result takes (default NumPy float64).

    >>> import ssdops
    >>> ssdops.identity((2, 3)).offsets
    ((0, 0),)
    """
    from ._array import like_namespace

    xp, dtype, dev = like_namespace(like)
    H, W = grid_shape
    return SSD(xp.ones((1, H, W), dtype=dtype, device=dev), ((0, 0),), symmetric=True)
