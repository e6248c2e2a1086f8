r"""Offset sets of the stencils on d-dimensional grids (d = 1, 2, 3).

An offset is a d-tuple: the neighbour of pixel :math:`p` is :math:`p + o`; in 2-D ``(dy, dx)``, in 3-D
``(dz, dy, dx)``. The star stencils list the backward neighbours :math:`-e_1 \dots -e_d`, then the forward
ones :math:`+e_1 \dots +e_d`, then the centre: the order of the paper's filters in 2-D (up, left, down, right,
centre) and of DiffNet's filter maps in every dimension.
"""
from __future__ import annotations

import itertools

__all__ = ["FIVE_POINT", "GRID_LETTERS", "NINE_POINT", "SEVEN_POINT", "THREE_POINT", "TWENTY_SEVEN_POINT", "centre",
           "star"]


def star(ndim: int) -> tuple[tuple[int, ...], ...]:
    """The (2 ndim + 1)-point star: ``-e_1 .. -e_d, +e_1 .. +e_d, 0``.

    >>> star(1)
    ((-1,), (1,), (0,))
    """
    units = [tuple(int(i == axis) for i in range(ndim)) for axis in range(ndim)]
    return tuple(tuple(-c for c in e) for e in units) + tuple(units) + (centre(ndim),)


def centre(ndim: int) -> tuple[int, ...]:
    """The zero offset of a ``ndim``-dimensional grid."""
    return (0,) * ndim


#: left, right, centre (1-D signals).
THREE_POINT = star(1)

#: up, left, down, right, centre: the order of the paper's filters zeta_1..zeta_5.
FIVE_POINT = star(2)

#: FIVE_POINT followed by the diagonal neighbours up-left, up-right, down-left, down-right.
NINE_POINT = FIVE_POINT + ((-1, -1), (-1, 1), (1, -1), (1, 1))

#: The 3-D star: the backward neighbours along z, y, x, the forward ones, the centre.
SEVEN_POINT = star(3)

#: All 27 offsets of the 3x3x3 neighbourhood, row-major, the centre last.
TWENTY_SEVEN_POINT = tuple(o for o in itertools.product((-1, 0, 1), repeat=3) if o != (0, 0, 0)) + ((0, 0, 0),)

#: The names of the grid axes of a d-dimensional grid, for shapes in messages: ``(..., H, W)`` in 2-D.
GRID_LETTERS = {1: "W", 2: "H, W", 3: "D, H, W"}
