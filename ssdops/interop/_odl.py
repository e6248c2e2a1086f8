r"""SSD operators as ODL operators, for ODL's solvers, functionals and diagnostics.

ODL is imported only when :func:`as_odl` is called: ``pip install ssdops[odl]``.
"""
from __future__ import annotations

import math

import numpy as np

from .._array import to_numpy
from ..ssd import SSD

__all__ = ["as_odl"]

_SCALES = (None, "cell")
_CLASS = None


def import_odl():
    """``odl``, imported with NumPy's print options kept: ODL's import sets ``legacy="1.13"`` globally, which
    would change how every array prints afterwards in the caller's process."""
    with np.printoptions():
        import odl
    return odl


def _operator_class():
    """The ``odl.Operator`` subclass, built once on first use (ODL loads only then)."""
    global _CLASS
    if _CLASS is None:
        odl = import_odl()

        class SSDOperator(odl.Operator):
            """``x -> factor * (op @ x)`` on one ODL space; its adjoint applies ``op.T``."""

            def __init__(self, op, space, factor, scale):
                super().__init__(space, space, linear=True)
                self.ssd, self.factor, self.scale = op, factor, scale
                like = space.zero().data  # the space's library, dtype and device
                from array_api_compat import array_namespace, device

                xp = array_namespace(like)
                diagonals = xp.asarray(to_numpy(op.diagonals) * factor, dtype=like.dtype, device=device(like))
                self._applied = SSD(diagonals, op.offsets, tags=op.tags)

            def _call(self, x):
                return self._applied @ x.data

            @property
            def adjoint(self):
                # Equal constant weights on domain and range (checked in as_odl): the adjoint is the transpose.
                return SSDOperator(self.ssd.T, self.domain, self.factor, self.scale)

            def __repr__(self):
                return f"ssdops.as_odl({self.ssd!r}, {self.domain!r}, scale={self.scale!r})"

        _CLASS = SSDOperator
    return _CLASS


def as_odl(op, space, *, scale=None):
    r"""The operator as a linear :class:`odl.Operator` from ``space`` to ``space``, with its adjoint.

    ``A(x)`` is ``op @ x.data`` (times :math:`1/h^2` for ``scale="cell"``), computed in the space's own
    library, dtype and device (NumPy and PyTorch spaces: ``impl="numpy"`` / ``impl="pytorch"``);
    ``A.adjoint`` applies ``op.T``.

    Parameters
    ----------
    op : SSD
        An unbatched operator (``batch_shape == ()``) whose grid is the space's shape; its diagonals may be of
        any library (they are copied to the space's).
    space : odl.DiscretizedSpace or odl tensor space
        The domain and range, real, with a constant weighting (as ``odl.uniform_discr`` and ``odl.rn``
        give): with equal weights on both sides the adjoint in ODL's inner product is the matrix transpose.
    scale : {None, "cell"}, default None
        ``None``: the operator's own matrix (ssdops' stencils are per pixel, grid spacing 1). ``"cell"``:
        divided by :math:`h^2`, the squared cell side of the space's uniform square (cubic) cells, the
        scaling of a second-order operator such as :func:`laplacian` or :func:`divergence_form` on a grid of
        spacing :math:`h` (ODL's own :class:`odl.Laplacian` convention).

    Returns
    -------
    odl.Operator
        Linear, ``domain == range == space``, with ``adjoint``.

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD` or ``space`` not an ODL linear space.
    ValueError
        If ``op`` is batched, if ``space.shape`` is not ``op.grid_shape`` (both named), if the space is complex
        or its weighting not constant, for an unknown ``scale``, or for ``scale="cell"`` on a space without
        cells or with cells of unequal sides.
    ImportError
        If ODL is not installed.

    See Also
    --------
    aslinearoperator : The operator for scipy.
    as_pylops : The operator for PyLops.
    as_lineax : The operator for lineax (JAX).

    Notes
    -----
    With ``scale="cell"``, :func:`laplacian` matches ``odl.Laplacian(space, pad_mode=...)`` exactly (checked
    in the tests on NumPy spaces): ``bc="dirichlet"`` is ``pad_mode="constant"`` (``pad_const=0``: a ghost
    value 0 one pixel outside the grid, the 5-point centre :math:`-4/h^2` on every row) and ``bc="neumann"``
    is ``pad_mode="symmetric"`` (the edge pixel mirrored: ghost value = edge value, centre :math:`-3/h^2` on
    an edge, :math:`-2/h^2` in a corner). ODL's other pad modes (``"periodic"``, ``"order0"``, ``"order1"``)
    have no SSD counterpart.

    Examples
    --------
    >>> import odl, ssdops  # doctest: +SKIP
    >>> space = odl.uniform_discr([0, 0], [1, 1], (32, 32))  # doctest: +SKIP
    >>> A = ssdops.as_odl(ssdops.laplacian((32, 32), bc="dirichlet"), space, scale="cell")  # doctest: +SKIP
    >>> x = odl.core.phantom.shepp_logan(space)  # doctest: +SKIP
    >>> bool(odl.allclose(A(x), odl.Laplacian(space, pad_mode="constant")(x)))  # doctest: +SKIP
    True
    """
    if not isinstance(op, SSD):
        raise TypeError(f"as_odl takes an ssdops.SSD, got {type(op).__name__}")
    if scale not in _SCALES:
        raise ValueError(f"scale must be one of {_SCALES}, got {scale!r}")
    odl = import_odl()

    if not isinstance(space, odl.LinearSpace):
        raise TypeError(f"space must be an ODL linear space (odl.uniform_discr, odl.rn), got {type(space).__name__}")
    if op.batch_shape:
        raise ValueError(f"as_odl takes an unbatched operator (one per space), got batch shape {op.batch_shape}")
    if tuple(space.shape) != op.grid_shape:
        raise ValueError(f"the space's shape {tuple(space.shape)} is not the operator's grid {op.grid_shape}")
    if not getattr(space, "is_real", False):
        raise ValueError(f"as_odl needs a real space, got {space!r}")
    if not hasattr(getattr(space, "weighting", None), "const"):
        raise ValueError(
            f"as_odl needs a space with a constant weighting (its adjoint is then the transpose), got "
            f"{getattr(space, 'weighting', None)!r}"
        )
    factor = 1.0
    if scale == "cell":
        sides = getattr(space, "cell_sides", None)
        if sides is None:
            raise ValueError(f"scale='cell' needs a discretized space with cells (odl.uniform_discr), got {space!r}")
        sides = [float(s) for s in np.asarray(sides).ravel()]
        if not all(math.isclose(s, sides[0], rel_tol=1e-12) for s in sides):
            raise ValueError(
                f"scale='cell' needs square (cubic) cells, got cell sides {tuple(sides)}: a stencil scaled by "
                "1/h^2 per axis is not defined for a general SSD"
            )
        factor = 1.0 / sides[0] ** 2
    return _operator_class()(op, space, factor, scale)
