"""Hypothesis strategies shared by the test files: grids, offsets, batches, dtypes, seeds.

Grids include the degenerate 1 x N, N x 1 and 1 x 1 shapes whenever ``min_side`` is 1. The
``JAX_*`` spaces are the few fixed shapes a property draws from under JAX instead (see
``support.run_property``): eager JAX compiles every operation anew for each new shape.
"""
from hypothesis import strategies as st

from support import FIVE, NINE, WIDE

dtype_names = st.sampled_from(["float32", "float64"])
seeds = st.integers(0, 2**32 - 1)


def grids(min_side=1, max_side=7):
    """(H, W) with both sides in [min_side, max_side]."""
    return st.tuples(st.integers(min_side, max_side), st.integers(min_side, max_side))


def stencil_offsets(radius, max_size):
    """A tuple of 1 to ``max_size`` distinct offsets (dy, dx) with |dy|, |dx| <= ``radius``."""
    side = st.integers(-radius, radius)
    return st.lists(st.tuples(side, side), min_size=1, max_size=max_size, unique=True).map(tuple)


def offsets(small_max_size=9, wide=True):
    """The 5- and 9-point stencils, random stencils of radius 2 (up to ``small_max_size``
    offsets) and, with ``wide``, random stencils of radius 9 (up to 6 offsets, so most of them
    point outside small grids)."""
    choices = [st.just(FIVE), st.just(NINE), stencil_offsets(2, small_max_size)]
    if wide:
        choices.append(stencil_offsets(9, 6))
    return st.one_of(*choices)


# (diagonals batch shape, u batch shape): every pair broadcasts.
BATCH_PAIRS = [
    ((), ()),
    ((), (3,)),
    ((2,), ()),
    ((2,), (2,)),
    ((2, 1), (3,)),
    ((1,), (2, 2)),
]
batch_pairs = st.sampled_from(BATCH_PAIRS)
# one batch shape (of an operator or of images)
batches = st.sampled_from([(), (2,), (2, 1)])

JAX_GRIDS = st.sampled_from([(1, 1), (1, 5), (5, 1), (3, 4)])
JAX_OFFSETS = st.sampled_from([FIVE, NINE, WIDE])
JAX_BATCH_PAIRS = st.sampled_from([((), ()), ((2, 1), (3,))])
JAX_BATCHES = st.sampled_from([(), (2,)])
