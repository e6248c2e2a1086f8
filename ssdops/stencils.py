"""Offset sets of the stencils: (dy, dx) with the neighbour of pixel (i, j) at (i + dy, j + dx)."""

#: up, left, down, right, centre: the order of the paper's filters zeta_1..zeta_5.
FIVE_POINT = ((-1, 0), (0, -1), (1, 0), (0, 1), (0, 0))

#: FIVE_POINT followed by the diagonal neighbours up-left, up-right, down-left, down-right.
NINE_POINT = FIVE_POINT + ((-1, -1), (-1, 1), (1, -1), (1, 1))

CENTRE = (0, 0)
