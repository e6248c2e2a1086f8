r"""The sparse sub-diagonal (SSD) operator: one matrix diagonal per stencil offset, stored as images.

An SSD operator on an :math:`H \times W` grid with offsets :math:`o_k = (dy_k, dx_k)` is the
:math:`HW \times HW` matrix (row-major, pixel :math:`p = (i, j) \mapsto iW + j`)

.. math:: A[p, p + o_k] = d_k(p) \quad \text{for every } p \text{ whose neighbour } p + o_k
          \text{ lies in the grid},

and zero elsewhere: the paper's Definition 2.7. The diagonals :math:`d_k` are stored as an array of shape
``(..., K, H, W)``; leading axes are batch axes (one operator per image) and broadcast against the image.
Values of :math:`d_k` at pixels whose neighbour is outside the grid are ignored (never multiplied into a
result); :attr:`SSD.T` and the constructors of this package produce zeros there (the canonical form).

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
"""
from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from array_api_compat import device

from . import _tags, backends
from ._array import Array, chunked_like, like_namespace, namespace
from ._kernels import (
    apply_generic,
    apply_transpose_generic,
    component,
    transpose_diagonals,
)
from ._validate import check_grid, check_grid_shape
from .stencils import FIVE_POINT, GRID_LETTERS, centre

__all__ = ["SSD", "Tags", "check_operator", "identity"]


@dataclasses.dataclass(frozen=True)
class Tags:
    r"""Structure an operator is known to have, carried through the operator algebra (frozen).

    Set at construction and carried through ``+``, ``-``, ``*`` and ``.T``; it drives
    :func:`ssdops.select_method` without inspecting values.

    Parameters
    ----------
    symmetric : bool or None, default None
        ``True``: the matrix is symmetric; ``False``: known not to be; ``None``: unknown.
    laplacian : tuple of (str, float) or None, default None
        ``(bc, c)`` when the operator is ``c * laplacian(grid, bc=bc)`` (diagonalised by a DCT or DST,
        see :func:`ssdops.implicit_step`'s ``"spectral"`` method).
    definiteness : str or None, default None
        ``"positive_definite"``, ``"positive_semidefinite"``, ``"negative_definite"``,
        ``"negative_semidefinite"`` (of :math:`x^\top A x`) or ``None`` (unknown); derived from ``laplacian``
        when not given (the Laplacian is negative semidefinite, definite for Dirichlet). :func:`as_lineax`
        hands it to lineax, whose ``CG`` needs it.

    Raises
    ------
    dataclasses.FrozenInstanceError
        On assigning to a field: tags are immutable (build new ones, or pass ``tags=`` to :class:`SSD`).
    ValueError
        If ``definiteness`` is not one of the values above.

    See Also
    --------
    SSD : The operator that carries the tags (``op.tags``).
    select_method : The solver chosen from the tags.
    laplacian : The constructor that sets ``laplacian=(bc, 1.0)``.

    Notes
    -----
    The constructors set the tags (``divergence_form``, ``perona_malik_operator``, ``identity``:
    symmetric; ``laplacian``: symmetric with ``laplacian=(bc, 1.0)``); the algebra combines them without
    reading values:

    .. math::

       \operatorname{tags}(A + B) &= \bigl(\mathrm{sym}_A \wedge \mathrm{sym}_B,\;
       (bc, c_A + c_B)\bigr) \quad \text{(Laplacian part only for one } bc\text{)}, \\
       \operatorname{tags}(s A) &= \bigl(\mathrm{sym}_A,\; (bc, s\,c_A)\bigr)
       \quad \text{(Laplacian part only for a Python number } s\text{)},

    and :math:`A^\top` keeps the tags of :math:`A`. A sum with an operator of unknown symmetry is of unknown
    symmetry (``None``), never ``False``. Definiteness follows the rule table of ``ssdops._tags``
    (``identity``: positive definite; ``c * L``, ``c > 0``: negative semidefinite, definite for Dirichlet;
    ``divergence_form``: negative semidefinite, for its diffusivity ``gamma >= 0``; a sum of two of one sign
    keeps it; a negative number flips it; so :math:`I - \Delta t\,L` is positive definite); an operator made
    by a transform (a gradient, a tangent, a vmapped copy) carries no tags at all.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (2.11) (the implicit step the tags select a solver for).

    Examples
    --------
    >>> import ssdops
    >>> (2.0 * ssdops.laplacian((4, 4), bc="dirichlet")).tags
    Tags(symmetric=True, laplacian=('dirichlet', 2.0), definiteness='negative_definite')
    >>> (ssdops.identity((4, 4)) - 0.1 * ssdops.laplacian((4, 4))).tags.definiteness
    'positive_definite'
    >>> ssdops.SSD(ssdops.identity((2, 2)).diagonals, ((0, 0),)).tags
    Tags(symmetric=None, laplacian=None, definiteness=None)
    """

    symmetric: bool | None = None
    laplacian: tuple | None = None
    definiteness: str | None = None

    def __post_init__(self):
        _tags.check(self.definiteness)
        if self.definiteness is None:  # a frozen dataclass sets its derived field through object
            object.__setattr__(self, "definiteness", _tags.from_laplacian(self.laplacian))

    def __add__(self, other):
        lap = None
        if self.laplacian and other.laplacian and self.laplacian[0] == other.laplacian[0]:
            lap = (self.laplacian[0], self.laplacian[1] + other.laplacian[1])
        return Tags(symmetric=True if (self.symmetric and other.symmetric) else None, laplacian=lap,
                    definiteness=_tags.add(self.definiteness, other.definiteness))

    def scaled(self, scalar):
        """The tags of ``scalar * op``: symmetry kept; a Laplacian scale only for a Python number."""
        number = isinstance(scalar, numbers.Real)
        lap = (self.laplacian[0], self.laplacian[1] * float(scalar)) if number and self.laplacian else None
        return Tags(symmetric=self.symmetric, laplacian=lap,
                    definiteness=_tags.scale(self.definiteness, scalar))


class SSD:
    r"""Sparse sub-diagonal operator acting on images ``(..., *grid)`` of a d-dimensional grid (d = 1, 2, 3).

    The grid dimension d is the length of the offsets: ``(dx,)`` on signals, ``(dy, dx)`` on images,
    ``(dz, dy, dx)`` on volumes. ``op @ u`` (:meth:`matvec`), ``op.T``, ``op + op2``, ``op - op2``,
    ``c * op`` (``c`` a Python number or a 0-d array) and batch indexing ``op[i]`` are defined; the
    diagonals keep their library, dtype and device.

    Parameters
    ----------
    diagonals : array, shape ``(..., K, *grid)``
        ``diagonals[..., k, p]`` multiplies ``u[..., p + o_k]`` in row ``p`` (2-D: ``diagonals[..., k, i, j]``
        multiplies ``u[..., i + dy_k, j + dx_k]``). Leading axes are batch axes: one operator per image.
    offsets : sequence of K d-tuples, default :data:`ssdops.FIVE_POINT`
        Distinct offsets, any size (3-, 5-, 7-, 9-, 27-point, wider), all of one length d.
    symmetric : bool or None, default None
        Shorthand for ``tags=Tags(symmetric=...)``: ``True`` when the caller knows the matrix is symmetric
        (constructors such as :func:`ssdops.divergence_form` set it). It lets :func:`ssdops.implicit_step`
        pick conjugate gradients without inspecting values. ``None`` means unknown.
    tags : Tags, optional
        The structure tags (see :class:`Tags`); exclusive with ``symmetric``.

    Raises
    ------
    TypeError
        If both ``symmetric`` and ``tags`` are given, if ``tags`` is not a :class:`Tags`, or if
        ``diagonals`` is not a real floating-point array of an array-API library. Later, ``c * op`` with a
        ``c`` that is neither a number nor a 0-d array, and a batch index that is not an integer or slice.
    ValueError
        If ``offsets`` is empty, not all d-tuples of one length d in (1, 2, 3), or not distinct; if
        ``diagonals`` does not have shape ``(..., K, *grid)``; if a grid axis has length 0. Later,
        ``op @ u`` with an image whose last d axes are not the grid, and ``op + op2`` on different grids.
    IndexError
        For ``op[...]`` with more indices than batch axes, or an integer out of range.

    See Also
    --------
    Tags : The structure carried by the operator.
    divergence_form : The diffusion operator :math:`\nabla\cdot(\gamma\nabla u)` as an SSD.
    ssd_from_filters : DiffNet's learned operator as an SSD.
    to_scipy : The same matrix as a scipy.sparse matrix.

    Notes
    -----
    On a grid of N points (pixel :math:`p` is row :math:`p` of the matrix, row-major) with offsets
    :math:`o_1, \dots, o_K`, the operator is the :math:`N \times N` matrix

    .. math::

       (A u)_p = \sum_{k=1}^{K} d_k(p)\, u_{p + o_k}, \qquad
       (A^\top u)_q = \sum_{k=1}^{K} d_k(q - o_k)\, u_{q - o_k},

    where terms whose neighbour lies outside the grid are left out: the entries at such pixels are
    ignored (the canonical form, produced by ``.T`` and every constructor, holds zeros there). In 2-D
    with the 5-point stencil this is the paper's Definition 2.7: non-zeros only on the sub-diagonals
    :math:`0, \pm 1, \pm W` of the local neighbourhood. The diagonals broadcast against the image's
    batch axes. ``op.T`` of an operator tagged symmetric is the operator itself.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), Definition 2.7 (SSD matrix) and section 4.3.1 (filters as images
           multiplied pointwise with shifted copies).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> d = np.zeros((5, 3, 4)); d[4] = 2.0          # 2 * identity, in the centre diagonal
    >>> op = ssdops.SSD(d)
    >>> (op @ np.ones((3, 4)))[0, 0]
    np.float64(2.0)
    >>> (op + 0.5 * op).diagonal((0, 0))[0]
    array([3., 3., 3., 3.])
    >>> ops = ssdops.divergence_form(np.ones((4, 3, 4)))   # a batch of 4 operators
    >>> ops.batch_shape, ops[0].batch_shape, ops.T.offsets == ops.offsets
    ((4,), (), True)
    """

    __slots__ = ("_diagonals", "_offsets", "_tags", "_xp")

    def __init__(self, diagonals, offsets=FIVE_POINT, *, symmetric=None, tags=None):
        if tags is not None and symmetric is not None:
            raise TypeError("pass either symmetric= or tags=, not both")
        if tags is None:
            tags = Tags(symmetric=symmetric)
        elif not isinstance(tags, Tags):
            raise TypeError(f"tags must be an ssdops.Tags, got {type(tags).__name__}")
        offsets = tuple(tuple(int(c) for c in o) for o in offsets)
        if not offsets:
            raise ValueError("an SSD needs at least one offset")
        ndim = len(offsets[0])
        if ndim not in (1, 2, 3) or any(len(o) != ndim for o in offsets):
            raise ValueError(f"offsets must all be d-tuples of one length d in (1, 2, 3), got {offsets}")
        if len(set(offsets)) != len(offsets):
            raise ValueError(f"offsets must be distinct, got {offsets}")
        xp = namespace(diagonals)
        if diagonals.ndim < ndim + 1 or diagonals.shape[-ndim - 1] != len(offsets):
            raise ValueError(
                f"diagonals of shape {tuple(diagonals.shape)} do not match {len(offsets)} offsets of a "
                f"{ndim}-D grid: expected shape (..., {len(offsets)}, {GRID_LETTERS[ndim]})"
            )
        check_grid(tuple(diagonals.shape[-ndim:]), f"diagonals of shape {tuple(diagonals.shape)}")
        self._xp = xp
        self._diagonals = diagonals
        self._offsets = offsets
        self._tags = tags
        backends.load_imported()  # the imported frameworks' adapters make SSD a pytree there

    # --- shape and type -------------------------------------------------------------------------
    @property
    def diagonals(self):
        """The diagonal images, ``(..., K, H, W)``."""
        return self._diagonals

    @property
    def offsets(self):
        """The K ``(dy, dx)`` offsets, in the order of the diagonals."""
        return self._offsets

    @property
    def tags(self):
        """The structure tags (:class:`Tags`)."""
        return self._tags

    @property
    def symmetric(self):
        """``tags.symmetric``."""
        return self._tags.symmetric

    @property
    def ndim(self):
        """The grid dimension d (1, 2 or 3): the length of the offsets."""
        return len(self._offsets[0])

    @property
    def grid_shape(self):
        """The last d axes of the diagonals: ``(H, W)`` in 2-D, ``(D, H, W)`` in 3-D."""
        return tuple(self.diagonals.shape[-self.ndim:])

    @property
    def batch_shape(self):
        """Leading batch axes of the diagonals (``()`` for a single operator)."""
        return tuple(self.diagonals.shape[:-self.ndim - 1])

    @property
    def dtype(self):
        return self.diagonals.dtype

    @property
    def device(self):
        return device(self.diagonals)

    @property
    def xp(self):
        """The array namespace of the diagonals."""
        if self._xp is None:  # an operator rebuilt by a transform (see _unflatten)
            self._xp = namespace(self._diagonals)
        return self._xp

    def diagonal(self, offset):
        """The diagonal image ``(..., *grid)`` of ``offset``."""
        return component(self.diagonals, self.offsets.index(tuple(offset)), self.ndim)

    def _check_image(self, u):
        xp = namespace(self.diagonals, u)
        if u.ndim < self.ndim or tuple(u.shape[-self.ndim:]) != self.grid_shape:
            raise ValueError(
                f"image of shape {tuple(u.shape)} does not match the operator's grid {self.grid_shape} "
                f"(diagonals of shape {tuple(self.diagonals.shape)})"
            )
        return xp

    # --- application ----------------------------------------------------------------------------
    def matvec(self, u, *, out=None):
        r"""``(A u)[..., p] = sum_k d_k[..., p] u[..., p + o_k]`` (zero outside the grid).

        ``out``: an array of the result's shape and dtype, of ``u``'s library, sharing no memory with ``u``
        or the diagonals, that receives the result (returned), so that a loop allocates nothing (NumPy,
        PyTorch without autograd recording, CuPy; TypeError for JAX and dask, whose arrays are immutable
        or lazy, and for PyTorch while autograd records).
        """
        return self._apply("ssd_apply", apply_generic, u, out)

    def rmatvec(self, u, *, out=None):
        r"""``A^T u``: ``sum_k shift(d_k u, -o_k)``, without forming the transposed diagonals (``out`` as in
        :meth:`matvec`)."""
        return self._apply("ssd_apply_transpose", apply_transpose_generic, u, out)

    def _apply(self, name, generic, u, out=None):
        """Operation ``name`` (``A u`` or ``A^T u``) by :func:`ssdops.backends.dispatch`, ``out`` checked once
        here and written by the library's adapter when the generic code ran."""
        xp = self._check_image(u)
        adapter = None if out is None else self._check_out(u, out)

        def run_generic():
            result = generic(xp, self.diagonals, self.offsets, u)
            return result if adapter is None else adapter.write(out, result)

        arguments = dict(diagonals=self.diagonals, offsets=self.offsets, u=u, out=out)
        result = backends.dispatch(name, xp, run_generic, arguments, ndim=self.ndim, dtype=u.dtype)
        return result if out is None else out

    def _check_out(self, u, out):
        """The adapter of ``out`` after checking it (library, shape, dtype, writable, no shared memory)."""
        namespace(u, out)
        shape = np.broadcast_shapes(self.batch_shape, tuple(u.shape[:-self.ndim])) + self.grid_shape
        if tuple(out.shape) != shape:
            raise ValueError(f"out has shape {tuple(out.shape)}, the result has shape {shape}")
        adapter = backends.adapter_for(out)
        adapter.check_out(out)
        if adapter.shares_memory(out, u) or adapter.shares_memory(out, self.diagonals):
            raise ValueError("out shares memory with the image or the diagonals: the product would read what "
                             "it overwrites")
        return adapter

    def __matmul__(self, u):
        if isinstance(u, SSD):
            return NotImplemented
        return self.matvec(u)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        """``op @ u`` inside ``torch.compile``: the product, computed by :meth:`matvec`.

        Dynamo (torch 2.13) does not call ``__matmul__`` of a Python object; it hands ``op @ u`` to the
        ``__torch_function__`` of the non-tensor operand as ``Tensor.matmul(u, op)``, with the operands
        swapped. Only that form is answered, and only while compiling; everything else, eager ``u @ op``
        included, is ``NotImplemented`` (a TypeError, as for any other non-tensor). Compiled code cannot
        tell ``u @ op`` from ``op @ u`` here, so inside ``torch.compile`` ``u @ op`` also means ``A u``.
        """
        if (
            getattr(func, "__name__", None) in ("matmul", "__matmul__")
            and not kwargs
            and len(args) == 2
            and isinstance(args[1], SSD)
            and not isinstance(args[0], SSD)
            and backends.compiling()
        ):
            return args[1].matvec(args[0])
        return NotImplemented

    @property
    def T(self):
        """The transpose, again an SSD with offsets ``-o_k`` (in the original order when the offset set is
        symmetric, as for FIVE_POINT and NINE_POINT) and canonical diagonals."""
        if self.symmetric:
            return self
        diagonals, offsets = transpose_diagonals(self.xp, self.diagonals, self.offsets)
        return SSD(diagonals, offsets, tags=self.tags)

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
        return SSD(xp.stack(terms, axis=-self.ndim - 1), offsets, tags=self.tags + other.tags)

    def __mul__(self, scalar):
        if isinstance(scalar, SSD):
            return NotImplemented
        if not isinstance(scalar, numbers.Real) and getattr(scalar, "ndim", None) != 0:
            raise TypeError(
                f"an SSD can be multiplied by a scalar only (a Python number or a 0-d array), got "
                f"{type(scalar).__name__} of shape {getattr(scalar, 'shape', None)}"
            )
        return SSD(self.diagonals * scalar, self.offsets, tags=self.tags.scaled(scalar))

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        if not isinstance(other, SSD):
            return NotImplemented
        return self + (-other)

    # --- batch indexing -------------------------------------------------------------------------
    def __getitem__(self, index):
        """The operators of part of the batch: integer and slice indices over :attr:`batch_shape` only.

        ``op[i]``, ``op[1:3]``, ``op[1, 2]``, ``op[:, 1]`` index the batch axes as NumPy indexes an array of
        shape ``batch_shape`` and return an SSD with the same offsets and tags. The offset and grid axes
        are never indexed: more indices than batch axes raise IndexError, as does an integer out of range.

        >>> import numpy as np, ssdops
        >>> op = ssdops.divergence_form(np.ones((3, 4, 5, 5)))
        >>> op[1].batch_shape, op[1:3].batch_shape, op[1, 2].batch_shape, op[:, 1].batch_shape
        ((4,), (2, 4), (), (3,))
        """
        index = index if isinstance(index, tuple) else (index,)
        batch = self.batch_shape
        if len(index) > len(batch):
            raise IndexError(
                f"{len(index)} indices for an SSD with batch shape {batch}: only the batch axes can be "
                "indexed (an operator's offset and grid axes are not indexable)"
            )
        for axis, (i, n) in enumerate(zip(index, batch)):
            if isinstance(i, slice):
                continue
            if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                raise TypeError(
                    f"an SSD's batch axes take integer and slice indices only, got {type(i).__name__} "
                    f"{i!r} for batch axis {axis}"
                )
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of range for batch axis {axis} of length {n}")
        return SSD(self.diagonals[index + (...,)], self.offsets, tags=self.tags)

    def __repr__(self):
        return (
            f"SSD(grid_shape={self.grid_shape}, batch_shape={self.batch_shape}, "
            f"offsets={self.offsets}, dtype={self.dtype}, device={self.device})"
        )


def _flatten(op):
    """The pytree parts of an operator: the diagonals the one leaf, the offsets static."""
    return (op.diagonals,), op.offsets


def _unflatten(offsets, children):
    """An operator from its pytree parts, with no structural tags: what a transform rebuilds (a gradient, a
    cotangent, a tangent, a vmapped or traced copy) is not the matrix the tags described, so it claims no
    structure. Built without the checks of :class:`SSD`: the leaf may be anything a transform puts there
    (a tracer, a batched tensor, ``None``, ``vmap``'s integer ``in_dims``)."""
    (diagonals,) = children
    op = object.__new__(SSD)
    op._diagonals, op._offsets, op._tags, op._xp = diagonals, offsets, Tags(), None
    return op


# PyTorch and JAX take operators as arguments of their transforms (jit, grad, vmap, jvp, torch.func).
backends.register_type(SSD, _flatten, _unflatten)


def check_operator(op: Any, name: str = "op") -> None:
    """TypeError unless ``op`` is an :class:`SSD` (rather than an AttributeError deep inside)."""
    if not isinstance(op, SSD):
        raise TypeError(f"{name} must be an ssdops.SSD operator, got {type(op).__name__}")


def identity(grid_shape: Sequence[int], *, like: Array | None = None) -> SSD:
    r"""The identity on ``grid_shape`` (1, 2 or 3 axes) as an SSD with the single offset at the centre.

    Parameters
    ----------
    grid_shape : sequence of int
        The grid, 1, 2 or 3 integers >= 1; the grid dimension is ``len(grid_shape)``.
    like : array, optional
        An array whose namespace, dtype and device the result takes (default NumPy float64).

    Returns
    -------
    SSD
        The identity, diagonals ``(1, *grid_shape)`` of ones, offsets ``((0,) * d,)``, tagged symmetric
        and positive definite.

    Raises
    ------
    TypeError
        If ``grid_shape`` is not a sequence of integers, or ``like`` is not a real floating-point array.
    ValueError
        If ``grid_shape`` does not have 1, 2 or 3 entries, or one of them is below 1.

    See Also
    --------
    SSD : The operator class.
    laplacian : The other constant-coefficient operator on a grid.

    Notes
    -----
    The matrix :math:`I_N`, :math:`N = \prod_i n_i`: one diagonal :math:`d_0 \equiv 1` at offset
    :math:`0`. ``identity(grid) - dt * A`` is the matrix :math:`I - \Delta t\,A` of the implicit step
    (paper eq. 2.11), for solvers outside ssdops (:func:`aslinearoperator`).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (2.11).

    Examples
    --------
    >>> import ssdops
    >>> ssdops.identity((2, 3)).offsets, ssdops.identity((2, 3, 4)).offsets
    (((0, 0),), ((0, 0, 0),))
    >>> ssdops.to_scipy(ssdops.identity((2,))).toarray()
    array([[1., 0.],
           [0., 1.]])
    """
    xp, dtype, dev = like_namespace(like)
    grid = check_grid_shape(grid_shape, ndim=(1, 2, 3))
    diagonals = chunked_like(xp.ones((1, *grid), dtype=dtype, device=dev), like, len(grid))
    return SSD(diagonals, (centre(len(grid)),), tags=Tags(symmetric=True, definiteness="positive_definite"))
