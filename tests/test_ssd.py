"""SSD operators against sparse matrices assembled independently of ssdops.

The reference for every check is ``support.assemble``: a scipy.sparse COO assembly of
A[p, p + o_k] = d_k(p) for in-grid neighbours, p = i*W + j (row-major), in float64 from
the (already rounded) inputs. The code under test runs in the namespace given by ``xp``.
"""
import re

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import strategies as st

import ssdops
import strategies as sst
from support import (
    FIVE,
    NINE,
    WIDE,
    asarray,
    assemble,
    assert_close,
    check_like,
    in_grid_mask,
    ref_apply,
    rounded,
    to_numpy,
    tolerance,
)
from support import property_test as shared_property_test

JAX_SPACE = {
    "grid": sst.JAX_GRIDS,
    "offsets": sst.JAX_OFFSETS,
    "off1": sst.JAX_OFFSETS,
    "off2": sst.JAX_OFFSETS,
    "batches": sst.JAX_BATCH_PAIRS,
}


def property_test(jax_space=None, **strategies):
    """``support.property_test`` with this file's fixed JAX shapes (``JAX_SPACE``, then ``jax_space``)."""
    return shared_property_test({**JAX_SPACE, **(jax_space or {})}, **strategies)


# --------------------------------------------------------------------------- references


def assemble_loop(diags, offsets, grid_shape):
    """A second, plain-loop assembly (used once to cross-check ``assemble`` itself)."""
    H, W = grid_shape
    A = np.zeros((H * W, H * W))
    for k, (dy, dx) in enumerate(offsets):
        for i in range(H):
            for j in range(W):
                if 0 <= i + dy < H and 0 <= j + dx < W:
                    A[i * W + j, (i + dy) * W + (j + dx)] += diags[k, i, j]
    return A


def assert_dense_equal(A, B, dtype_name="float64", scale=1.0):
    A = A.toarray() if sp.issparse(A) else np.asarray(A)
    B = B.toarray() if sp.issparse(B) else np.asarray(B)
    assert A.shape == B.shape
    rtol, atol = tolerance(dtype_name)
    np.testing.assert_allclose(A.astype(np.float64), B.astype(np.float64), rtol=rtol, atol=atol * scale)


def _names_shape(msg, shape):
    """Does the message name the shape, as a tuple '(3, 4)' or a list '[3, 4]'?"""
    inner = r",\s*".join(str(s) for s in shape)
    return re.search(r"[\(\[]" + inner + r"[\)\]]", msg) is not None


# --------------------------------------------------------------------------- cases


def make_case(xp, grid, offsets, dtype_name, seed, dbatch=(), ubatch=()):
    """Random diagonals (non-zero also where the neighbour is outside the grid) and u."""
    rng = np.random.default_rng(seed)
    K = len(offsets)
    d = rounded(rng.uniform(-1, 1, dbatch + (K,) + tuple(grid)), dtype_name)
    u = rounded(rng.uniform(-1, 1, ubatch + tuple(grid)), dtype_name)
    op = ssdops.SSD(asarray(xp, d, dtype_name), offsets)
    return op, d, asarray(xp, u, dtype_name), u


# --------------------------------------------------------------------------- the reference itself


def test_reference_assembly_agrees_with_plain_loop():
    rng = np.random.default_rng(0)
    for grid, offsets in [((3, 4), NINE), ((1, 5), FIVE), ((5, 1), ((0, 2), (2, 0), (-1, 1)))]:
        d = rng.uniform(-1, 1, (len(offsets),) + grid)
        np.testing.assert_array_equal(assemble(d, offsets, grid).toarray(), assemble_loop(d, offsets, grid))
    # and the textbook 5-point Laplacian with Dirichlet rows is scipy's
    d = np.ones((5, 4, 3))
    d[4] = -4.0
    np.testing.assert_array_equal(
        assemble(d, FIVE, (4, 3)).toarray(),
        spla.LaplacianNd((4, 3), boundary_conditions="dirichlet", dtype=np.float64).toarray(),
    )


def test_constants():
    assert tuple(map(tuple, ssdops.FIVE_POINT)) == FIVE
    assert tuple(map(tuple, ssdops.NINE_POINT)) == NINE


# --------------------------------------------------------------------------- apply


@property_test(grid=sst.grids(), offsets=sst.offsets(), dtype_name=sst.dtype_names, seed=sst.seeds,
       batches=sst.batch_pairs)
def test_apply_matches_sparse_matrix(xp, grid, offsets, dtype_name, seed, batches):
    dbatch, ubatch = batches
    op, d, u_x, u = make_case(xp, grid, offsets, dtype_name, seed, dbatch, ubatch)
    assert op.grid_shape == tuple(grid)
    assert tuple(op.batch_shape) == dbatch
    assert tuple(map(tuple, op.offsets)) == tuple(offsets)
    assert tuple(op.diagonals.shape) == dbatch + (len(offsets),) + tuple(grid)
    expected = ref_apply(d, offsets, u)
    got = op @ u_x
    assert_close(got, expected, u_x, scale=len(offsets))
    assert_close(op.matvec(u_x), expected, u_x, scale=len(offsets))


# (grids and offsets shared with JAX_SPACE: eager JAX reuses the compiled shapes)
@pytest.mark.parametrize("grid", [(1, 1), (1, 5), (5, 1), (2, 2), (3, 4)])
@pytest.mark.parametrize("offsets", [FIVE, NINE, WIDE],
                         ids=["five", "nine", "wide"])
def test_apply_and_transpose_degenerate_grids(xp, dtype_name, grid, offsets):
    op, d, u_x, u = make_case(xp, grid, offsets, dtype_name, seed=hash((grid, offsets)) % 2**32)
    A = assemble(d, offsets, grid)
    assert_close(op @ u_x, (A @ u.ravel()).reshape(grid), u_x, scale=len(offsets))
    assert_close(op.T @ u_x, (A.T @ u.ravel()).reshape(grid), u_x, scale=len(offsets))
    assert_close(op.rmatvec(u_x), (A.T @ u.ravel()).reshape(grid), u_x, scale=len(offsets))


def test_apply_ignores_values_pointing_outside_the_grid(xp):
    # Only out-of-grid entries are non-zero: the operator is the zero matrix.
    grid = (4, 5)
    mask = in_grid_mask(NINE, grid)
    d = np.where(mask, 0.0, 7.0)
    op = ssdops.SSD(asarray(xp, d), NINE)
    u = np.random.default_rng(1).uniform(-1, 1, grid)
    out = to_numpy(op @ asarray(xp, u))
    np.testing.assert_array_equal(out, np.zeros(grid))
    assert sp.csr_matrix(ssdops.to_scipy(op)).count_nonzero() == 0


@pytest.mark.parametrize("garbage", [np.inf, np.nan], ids=["inf", "nan"])
def test_apply_ignores_non_finite_values_pointing_outside_the_grid(xp, garbage):
    # "Values of a diagonal at pixels whose neighbour is outside the grid are IGNORED by apply":
    # to_scipy drops them, so apply must agree with that matrix even when they are not finite
    # (e.g. a filter network's output that overflowed on the border).
    grid = (3, 4)
    rng = np.random.default_rng(2)
    d = rng.uniform(-1, 1, (9,) + grid)
    d = np.where(in_grid_mask(NINE, grid), d, garbage)
    op = ssdops.SSD(asarray(xp, d), NINE)
    u = rng.uniform(-1, 1, grid)
    u_x = asarray(xp, u)
    A = assemble(np.where(in_grid_mask(NINE, grid), d, 0.0), NINE, grid)
    assert_dense_equal(ssdops.to_scipy(op), A)
    assert_close(op @ u_x, (A @ u.ravel()).reshape(grid), u_x, scale=9)
    assert_close(op.T @ u_x, (A.T @ u.ravel()).reshape(grid), u_x, scale=9)


def test_apply_known_laplacian(xp):
    # Interior pixel of the 5-point Laplacian on u = i^2 + j^2 gives exactly 4.
    H, W = 5, 6
    d = np.ones((5, H, W))
    d[4] = -4.0
    i, j = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    u = (i**2 + j**2).astype(np.float64)
    out = to_numpy(ssdops.SSD(asarray(xp, d)) @ asarray(xp, u))
    np.testing.assert_array_equal(out[1:-1, 1:-1], 4.0)
    # corner (0, 0): u[1,0] + u[0,1] - 4*u[0,0] = 2
    assert out[0, 0] == 2.0


# --------------------------------------------------------------------------- transpose


@property_test(grid=sst.grids(), offsets=sst.offsets(), dtype_name=sst.dtype_names, seed=sst.seeds,
       batches=sst.batch_pairs)
def test_transpose_matches_sparse_transpose(xp, grid, offsets, dtype_name, seed, batches):
    dbatch, ubatch = batches
    op, d, v_x, v = make_case(xp, grid, offsets, dtype_name, seed, dbatch, ubatch)
    expected = ref_apply(d, offsets, v, transpose=True)
    opT = op.T
    assert isinstance(opT, ssdops.SSD)
    assert opT.grid_shape == tuple(grid)
    assert tuple(opT.batch_shape) == dbatch
    got = opT @ v_x
    assert_close(got, expected, v_x, scale=len(offsets))
    assert_close(op.rmatvec(v_x), expected, v_x, scale=len(offsets))
    # canonical diagonals: zero wherever the neighbour is outside the grid
    dT = to_numpy(opT.diagonals)
    mask = in_grid_mask(opT.offsets, grid)
    assert np.all(dT[..., ~mask] == 0)
    # the transpose of the transpose is the operator again (as a matrix)
    assert_close(opT.T @ v_x, ref_apply(d, offsets, v), v_x, scale=len(offsets))
    if not dbatch:
        assert_dense_equal(ssdops.to_scipy(opT), assemble(d, offsets, grid).T, dtype_name)


@pytest.mark.parametrize("offsets", [FIVE, NINE], ids=["five", "nine"])
def test_transpose_keeps_standard_offsets(xp, offsets):
    op, *_ = make_case(xp, (3, 4), offsets, "float64", seed=3)
    assert tuple(map(tuple, op.T.offsets)) == offsets


# --------------------------------------------------------------------------- to_scipy / from_scipy


@property_test(grid=sst.grids(), offsets=sst.offsets(), dtype_name=sst.dtype_names, seed=sst.seeds)
def test_to_scipy_and_round_trip(xp, grid, offsets, dtype_name, seed):
    op, d, u_x, u = make_case(xp, grid, offsets, dtype_name, seed)
    A = assemble(d, offsets, grid)
    S = ssdops.to_scipy(op)
    assert sp.issparse(S) and S.format == "csr"
    assert S.dtype == np.dtype(dtype_name)
    assert S.shape == (grid[0] * grid[1],) * 2
    assert_dense_equal(S, A, dtype_name)
    assert ssdops.to_scipy(op, format="coo").format == "coo"
    # round trip with the offsets given: same matrix, same offsets, namespace of like=
    radius = max(1, max(max(abs(dy), abs(dx)) for dy, dx in offsets))
    back = ssdops.from_scipy(S, grid, offsets, radius=radius, like=u_x)
    assert tuple(map(tuple, back.offsets)) == tuple(offsets)
    check_like(back.diagonals, u_x)
    assert_dense_equal(ssdops.to_scipy(back), A, dtype_name)
    assert_close(back @ u_x, (A @ u.ravel()).reshape(grid), u_x, scale=len(offsets))
    # round trip with inferred offsets (radius large enough for every offset present)
    inferred = ssdops.from_scipy(S, grid, radius=radius)
    assert isinstance(inferred.diagonals, np.ndarray)
    assert inferred.dtype == np.dtype(dtype_name)
    assert_dense_equal(ssdops.to_scipy(inferred), A, dtype_name)


@pytest.mark.parametrize("grid", [(1, 1), (1, 5), (5, 1), (3, 3), (4, 6)])
@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
def test_from_scipy_laplaciannd(grid, bc):
    A = spla.LaplacianNd(grid, boundary_conditions=bc, dtype=np.float64).tosparse()
    op = ssdops.from_scipy(A, grid)
    assert tuple(map(tuple, op.offsets)) == FIVE
    assert op.grid_shape == grid
    assert op.dtype == np.float64
    assert_dense_equal(ssdops.to_scipy(op), A)
    u = np.random.default_rng(0).uniform(-1, 1, grid)
    np.testing.assert_allclose(op @ u, (A @ u.ravel()).reshape(grid), rtol=1e-13, atol=1e-13)


def test_from_scipy_float32_matrix_keeps_float32():
    A = spla.LaplacianNd((3, 4), boundary_conditions="neumann", dtype=np.float32).tosparse()
    op = ssdops.from_scipy(A, (3, 4))
    assert op.dtype == np.float32
    assert ssdops.to_scipy(op).dtype == np.float32
    assert_dense_equal(ssdops.to_scipy(op), A, "float32")


def _tridiag(n, rng):
    if n == 1:
        return sp.csr_matrix(rng.uniform(0.5, 1, (1, 1)))
    return sp.diags(
        [rng.uniform(-1, 1, n - 1), rng.uniform(-1, 1, n), rng.uniform(-1, 1, n - 1)], [-1, 0, 1]
    )


@pytest.mark.parametrize("grid", [(1, 4), (4, 1), (2, 2), (3, 5)])
def test_from_scipy_kron_operators(xp, grid):
    rng = np.random.default_rng(7)
    H, W = grid
    TH, TW = _tridiag(H, rng), _tridiag(W, rng)
    # kron sum: a (non-symmetric) 5-point operator
    A5 = (sp.kron(TH, sp.eye(W)) + sp.kron(sp.eye(H), TW)).tocsr()
    op5 = ssdops.from_scipy(A5, grid)
    assert tuple(map(tuple, op5.offsets)) == FIVE
    assert_dense_equal(ssdops.to_scipy(op5), A5)
    # kron product: a 9-point operator (diagonal neighbours present when both sides >= 2)
    A9 = sp.kron(TH, TW).tocsr()
    like = asarray(xp, np.zeros(1))
    op9 = ssdops.from_scipy(A9, grid, like=like)
    expected_offsets = NINE if min(grid) >= 2 else FIVE
    assert tuple(map(tuple, op9.offsets)) == expected_offsets
    check_like(op9.diagonals, like)
    u = rng.uniform(-1, 1, grid)
    u_x = asarray(xp, u)
    assert_close(op9 @ u_x, (A9 @ u.ravel()).reshape(grid), u_x, scale=9)
    assert_close(op9.T @ u_x, (A9.T @ u.ravel()).reshape(grid), u_x, scale=9)


def test_from_scipy_identity_infers_five_point():
    op = ssdops.from_scipy(sp.eye(12, format="csr"), (3, 4))
    assert tuple(map(tuple, op.offsets)) == FIVE
    assert_dense_equal(ssdops.to_scipy(op), np.eye(12))


def test_from_scipy_infers_extra_offsets_with_radius():
    grid = (4, 5)
    offsets = FIVE + ((0, 2), (-2, 1), (2, 0))
    d = np.random.default_rng(2).uniform(0.5, 1.0, (len(offsets),) + grid)
    A = assemble(d, offsets, grid)
    with pytest.raises(ValueError):
        ssdops.from_scipy(A, grid)  # radius=1: (0, 2) etc. are outside the neighbourhood
    op = ssdops.from_scipy(A, grid, radius=2)
    offs = tuple(map(tuple, op.offsets))
    assert offs[:5] == FIVE
    assert list(offs[5:]) == sorted(offs[5:])
    assert len(set(offs)) == len(offs)
    assert {(0, 2), (-2, 1), (2, 0)} <= set(offs)
    assert all(max(abs(dy), abs(dx)) <= 2 for dy, dx in offs)
    assert_dense_equal(ssdops.to_scipy(op), A)


@pytest.mark.parametrize("grid", [(1, 3), (2, 3), (4, 5)])
def test_from_scipy_rejects_row_wraparound(grid):
    # the flat +1 diagonal crosses every row end: (i, W-1) -> (i+1, 0) is not local for W >= 3
    n = grid[0] * grid[1]
    A = sp.diags([np.full(n, -2.0), np.ones(n - 1), np.ones(n - 1)], [0, 1, -1], format="csr")
    if grid[0] == 1:
        # a single row has no row end to cross: this is a valid 1 x W operator
        op = ssdops.from_scipy(A, grid)
        assert_dense_equal(ssdops.to_scipy(op), A)
    else:
        with pytest.raises(ValueError):
            ssdops.from_scipy(A, grid)


@pytest.mark.parametrize("grid", [(3, 3), (4, 5), (1, 4), (4, 1)])
def test_from_scipy_rejects_periodic(grid):
    A = spla.LaplacianNd(grid, boundary_conditions="periodic", dtype=np.float64).tosparse()
    with pytest.raises(ValueError):
        ssdops.from_scipy(A, grid)


def test_from_scipy_rejects_entry_off_given_offsets():
    grid = (3, 4)
    d = np.ones((9,) + grid)
    A = assemble(d, NINE, grid)
    with pytest.raises(ValueError):
        ssdops.from_scipy(A, grid, FIVE)
    # a single off-stencil entry is enough
    B = assemble(np.ones((5,) + grid), FIVE, grid).tolil()
    B[5, 0] = 0.5  # pixel (1, 1) -> (0, 0): offset (-1, -1)
    with pytest.raises(ValueError):
        ssdops.from_scipy(B.tocsr(), grid, FIVE)
    assert_dense_equal(ssdops.to_scipy(ssdops.from_scipy(B.tocsr(), grid, NINE)), B)


def test_from_scipy_rejects_integer_matrix():
    A = sp.csr_matrix(np.eye(6, dtype=np.int64))
    with pytest.raises(TypeError, match="int64"):
        ssdops.from_scipy(A, (2, 3))
    # with like= the integer matrix is converted to like's namespace and dtype
    like = np.zeros(1, dtype=np.float32)
    op = ssdops.from_scipy(A, (2, 3), like=like)
    assert op.dtype == np.float32
    assert_dense_equal(ssdops.to_scipy(op), np.eye(6))


def test_offsets_normalised_to_tuples():
    d = np.zeros((2, 3, 3))
    op = ssdops.SSD(d, [[-1, 0], [0, 0]])
    assert op.offsets == ((-1, 0), (0, 0))
    assert all(type(o) is tuple and all(type(c) is int for c in o) for o in op.offsets)


@pytest.mark.parametrize("shape", [(6, 6), (12, 12), (6, 7)])
def test_from_scipy_rejects_wrong_shape(shape):
    A = sp.csr_matrix(np.eye(*shape))
    with pytest.raises(ValueError):
        ssdops.from_scipy(A, (2, 4))


# --------------------------------------------------------------------------- algebra


@property_test(grid=sst.grids(), off1=sst.offsets(), off2=sst.offsets(), dtype_name=sst.dtype_names, seed=sst.seeds,
       c=st.floats(-3, 3, allow_nan=False, width=16))
def test_algebra_matches_sparse(xp, grid, off1, off2, dtype_name, seed, c):
    op1, d1, u_x, u = make_case(xp, grid, off1, dtype_name, seed)
    op2, d2, _, _ = make_case(xp, grid, off2, dtype_name, seed + 1)
    A, B = assemble(d1, off1, grid), assemble(d2, off2, grid)
    uf = u.ravel()
    scale = len(off1) + len(off2)
    cases = {
        "add": (op1 + op2, A + B),
        "sub": (op1 - op2, A - B),
        "neg": (-op1, -A),
        "rmul": (c * op1, c * A),
        "mul": (op1 * c, c * A),
    }
    for name, (op, M) in cases.items():
        assert isinstance(op, ssdops.SSD), name
        got = op @ u_x
        assert_close(got, (M @ uf).reshape(grid), u_x, scale=3 * scale)
        assert_dense_equal(ssdops.to_scipy(op), M, dtype_name, scale=3)


def test_algebra_batched(xp):
    grid = (3, 4)
    op1, d1, u_x, u = make_case(xp, grid, FIVE, "float64", 0, dbatch=(2, 1))
    op2, d2, _, _ = make_case(xp, grid, NINE, "float64", 1, dbatch=(3,))
    s = op1 + op2
    assert tuple(s.batch_shape) == (2, 3)
    # reference: stack both onto the union of offsets
    offs = FIVE + NINE
    d = np.concatenate([np.broadcast_to(d1, (2, 3, 5) + grid), np.broadcast_to(d2, (2, 3, 9) + grid)], axis=-3)
    assert_close(s @ u_x, ref_apply(d, offs, u), u_x, scale=14)


@pytest.mark.parametrize("grid", [(1, 1), (1, 4), (3, 2)])
def test_identity(xp, dtype_name, grid):
    u = asarray(xp, np.random.default_rng(0).uniform(-1, 1, (2,) + grid), dtype_name)
    eye = ssdops.identity(grid, like=u)
    assert eye.grid_shape == grid
    got = eye @ u
    check_like(got, u)
    np.testing.assert_array_equal(to_numpy(got), to_numpy(u))
    assert_dense_equal(ssdops.to_scipy(eye), np.eye(grid[0] * grid[1]))
    default = ssdops.identity(grid)
    assert isinstance(default.diagonals, np.ndarray) and default.dtype == np.float64
    # op + (-1) * identity shifts the spectrum / diagonal by -1
    op, d, _, _ = make_case(xp, grid, FIVE, dtype_name, 5)
    assert_dense_equal(
        ssdops.to_scipy(op - eye), assemble(d, FIVE, grid) - sp.eye(grid[0] * grid[1]), dtype_name
    )


# --------------------------------------------------------------------------- adjoint / dot test


@property_test(grid=sst.grids(), offsets=sst.offsets(), dtype_name=sst.dtype_names, seed=sst.seeds)
def test_dot_test_adjoint_identity(xp, grid, offsets, dtype_name, seed):
    op, d, u_x, u = make_case(xp, grid, offsets, dtype_name, seed)
    A = assemble(d, offsets, grid)
    Au = A @ u.ravel()
    # v correlated with A u, so <A u, v> is far from zero and float32 rounding stays relative
    noise = np.random.default_rng(seed + 7).uniform(-0.3, 0.3, grid)
    v = rounded(Au.reshape(grid) + noise, dtype_name)
    v_x = asarray(xp, v, dtype_name)
    lhs, rhs = float(Au @ v.ravel()), float(u.ravel() @ (A.T @ v.ravel()))
    mag = float(abs(A) @ abs(u.ravel()) @ abs(v.ravel()))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, mag)  # the reference agrees with itself
    if max(abs(lhs), abs(rhs)) < 0.05 * mag:
        return  # (near-)zero operator on this grid: the relative discrepancy is 0/0
    limit = 1e-4 if dtype_name == "float32" else 1e-10
    disc = ssdops.dot_test(op.matvec, op.rmatvec, u_x, v_x)
    assert 0.0 <= float(disc) < limit
    disc = ssdops.dot_test(lambda x: op @ x, lambda y: op.T @ y, u_x, v_x)
    assert 0.0 <= float(disc) < limit


def test_dot_test_detects_wrong_adjoint_and_reports_discrepancy(xp):
    grid = (4, 5)
    rng = np.random.default_rng(11)
    d = rng.uniform(-1, 1, (5,) + grid)
    op = ssdops.SSD(asarray(xp, d))
    u, v = rng.uniform(-1, 1, grid), rng.uniform(-1, 1, grid)
    A = assemble(d, FIVE, grid)
    a = float((A @ u.ravel()) @ v.ravel())
    b = float(u.ravel() @ (A @ v.ravel()))  # op used as its own "adjoint": wrong, A is not symmetric
    expected = abs(a - b) / max(abs(a), abs(b))
    assert expected > 1e-3
    with pytest.raises(AssertionError):
        ssdops.dot_test(op.matvec, op.matvec, asarray(xp, u), asarray(xp, v))
    got = ssdops.dot_test(op.matvec, op.matvec, asarray(xp, u), asarray(xp, v), rtol=1e6)
    np.testing.assert_allclose(float(got), expected, rtol=1e-9)


# --------------------------------------------------------------------------- authors' filters


def _shift_up(u):  # out[i, j] = u[i-1, j], zero fill
    out = np.zeros_like(u)
    out[..., 1:, :] = u[..., :-1, :]
    return out


def _shift_down(u):  # out[i, j] = u[i+1, j]
    out = np.zeros_like(u)
    out[..., :-1, :] = u[..., 1:, :]
    return out


def _shift_left(u):  # out[i, j] = u[i, j-1]
    out = np.zeros_like(u)
    out[..., :, 1:] = u[..., :, :-1]
    return out


def _shift_right(u):  # out[i, j] = u[i, j+1]
    out = np.zeros_like(u)
    out[..., :, :-1] = u[..., :, 1:]
    return out


def authors_step(u, zeta, dt):
    z1, z2, z3, z4, z5 = (zeta[..., k, :, :] for k in range(5))
    return u + dt * (
        z1 * _shift_up(u) + z2 * _shift_left(u) + z3 * _shift_down(u) + z4 * _shift_right(u) - z5 * u
    )


@property_test(grid=sst.grids(), dtype_name=sst.dtype_names, seed=sst.seeds,
       dt=st.sampled_from([1.0, 0.2, 0.05]), batches=sst.batch_pairs)
def test_ssd_from_filters_matches_authors_shift_code(xp, grid, dtype_name, seed, dt, batches):
    zbatch, ubatch = batches
    rng = np.random.default_rng(seed)
    zeta = rounded(rng.uniform(-1, 1, zbatch + (5,) + tuple(grid)), dtype_name)
    u = rounded(rng.uniform(-1, 1, ubatch + tuple(grid)), dtype_name)
    u_x = asarray(xp, u, dtype_name)
    op = ssdops.ssd_from_filters(asarray(xp, zeta, dtype_name), dt=dt)
    assert tuple(map(tuple, op.offsets)) == FIVE
    check_like(op.diagonals, u_x)
    # diagonals dt * (z1, z2, z3, z4, -z5) wherever the neighbour is in the grid
    sign = np.array([1, 1, 1, 1, -1.0])[:, None, None]
    mask = np.broadcast_to(in_grid_mask(FIVE, grid), np.shape(to_numpy(op.diagonals)))
    diag_ref = np.broadcast_to(dt * sign * zeta, mask.shape)
    rtol, atol = tolerance(dtype_name)
    np.testing.assert_allclose(to_numpy(op.diagonals)[mask].astype(np.float64), diag_ref[mask],
                               rtol=rtol, atol=atol)
    expected = authors_step(u, zeta, dt)
    assert_close(ssdops.explicit_step(u_x, op, 1.0), expected, u_x, scale=5)
    assert_close(op @ u_x, expected - u, u_x, scale=5)


@property_test(grid=sst.grids(), dtype_name=sst.dtype_names, seed=sst.seeds, dt=st.sampled_from([0.1, 0.2, 1.0]),
               batches=sst.batch_pairs, dt_array=st.booleans())
def test_filter_step_matches_authors_shift_code(xp, grid, dtype_name, seed, dt, batches, dt_array):
    zbatch, ubatch = batches
    rng = np.random.default_rng(seed)
    zeta = rounded(rng.uniform(-1, 1, zbatch + (5,) + tuple(grid)), dtype_name)
    u = rounded(rng.uniform(-1, 1, ubatch + tuple(grid)), dtype_name)
    u_x = asarray(xp, u, dtype_name)
    step = asarray(xp, np.asarray(dt), dtype_name) if dt_array else dt
    got = ssdops.filter_step(u_x, asarray(xp, zeta, dtype_name), step)
    assert_close(got, authors_step(u, zeta, dt), u_x, scale=5)


def test_filter_step_rejects_bad_shapes(xp):
    u = asarray(xp, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"zeta must have shape \(\.\.\., 5, H, W\)"):
        ssdops.filter_step(u, asarray(xp, np.zeros((4, 3, 4))), 0.1)
    with pytest.raises(ValueError, match="does not match the operator's grid"):
        ssdops.filter_step(u, asarray(xp, np.zeros((5, 4, 3))), 0.1)
    with pytest.raises(TypeError, match="mixed"):
        ssdops.filter_step(u, asarray(xp, np.zeros((5, 3, 4)), "float32"), 0.1)


# --------------------------------------------------------------------------- explicit_step


@property_test(grid=sst.grids(), offsets=sst.offsets(), dtype_name=sst.dtype_names, seed=sst.seeds,
       dt=st.sampled_from([0.1, 0.25, 1.0]), batches=sst.batch_pairs)
def test_explicit_step(xp, grid, offsets, dtype_name, seed, dt, batches):
    dbatch, ubatch = batches
    op, d, u_x, u = make_case(xp, grid, offsets, dtype_name, seed, dbatch, ubatch)
    expected = np.broadcast_to(u, np.broadcast_shapes(dbatch, ubatch) + tuple(grid)) \
        + dt * ref_apply(d, offsets, u)
    assert_close(ssdops.explicit_step(u_x, op, dt), expected, u_x, scale=len(offsets))


def test_explicit_step_check_stable(xp):
    grid = (5, 5)
    d = np.ones((5,) + grid)
    d[4] = -4.0  # textbook Dirichlet Laplacian: stable up to dt = 1/4
    op = ssdops.SSD(asarray(xp, d))
    u_np = np.random.default_rng(0).uniform(0, 1, grid)
    u = asarray(xp, u_np)
    with pytest.raises(ValueError):
        ssdops.explicit_step(u, op, 0.3, check_stable=True)
    got = ssdops.explicit_step(u, op, 0.2, check_stable=True)
    A = assemble(d, FIVE, grid)
    assert_close(got, u_np + 0.2 * (A @ u_np.ravel()).reshape(grid), u, scale=5)


# --------------------------------------------------------------------------- errors


def test_error_K_mismatch(xp):
    d = asarray(xp, np.zeros((3, 6, 7)))
    with pytest.raises(ValueError) as e:
        ssdops.SSD(d, FIVE)
    msg = str(e.value)
    assert _names_shape(msg, (3, 6, 7)) and "5" in msg, msg
    with pytest.raises(ValueError):
        ssdops.SSD(asarray(xp, np.zeros((5, 6, 7))), NINE)


def test_error_grid_mismatch(xp):
    op, *_ = make_case(xp, (3, 4), FIVE, "float64", 0)
    u = asarray(xp, np.zeros((4, 3)))
    for f in (lambda: op @ u, lambda: op.T @ u, lambda: op.rmatvec(u),
              lambda: ssdops.explicit_step(u, op, 0.1)):
        with pytest.raises(ValueError) as e:
            f()
        msg = str(e.value)
        assert _names_shape(msg, (3, 4)) and _names_shape(msg, (4, 3)), msg


def test_error_grid_mismatch_between_operators(xp):
    op1, *_ = make_case(xp, (3, 4), FIVE, "float64", 0)
    op2, *_ = make_case(xp, (4, 3), FIVE, "float64", 0)
    with pytest.raises(ValueError):
        op1 + op2


@pytest.mark.parametrize("int_dtype", ["int64", "int32", "bool"])
def test_error_integer_input(xp, int_dtype):
    op, *_ = make_case(xp, (3, 4), FIVE, "float64", 0)
    u = xp.asarray(np.ones((3, 4), dtype=int_dtype))
    with pytest.raises(TypeError, match=int_dtype):
        op @ u
    with pytest.raises(TypeError, match=int_dtype):
        ssdops.SSD(xp.asarray(np.ones((5, 3, 4), dtype=int_dtype)))


def test_error_mixed_float_dtypes(xp):
    op32, *_ = make_case(xp, (3, 4), FIVE, "float32", 0)
    u64 = asarray(xp, np.ones((3, 4)), "float64")
    with pytest.raises(TypeError) as e:
        op32 @ u64
    assert "float32" in str(e.value) and "float64" in str(e.value)
    op64, *_ = make_case(xp, (3, 4), FIVE, "float64", 0)
    u32 = asarray(xp, np.ones((3, 4)), "float32")
    with pytest.raises(TypeError) as e:
        op64 @ u32
    assert "float32" in str(e.value) and "float64" in str(e.value)


def test_error_mixed_libraries():
    torch = pytest.importorskip("torch")
    d = np.random.default_rng(0).uniform(-1, 1, (5, 3, 4))
    op_np = ssdops.SSD(d)
    op_t = ssdops.SSD(torch.asarray(d))
    for f in (lambda: op_np @ torch.ones((3, 4), dtype=torch.float64),
              lambda: op_t @ np.ones((3, 4)),
              lambda: op_np + op_t):
        with pytest.raises(TypeError) as e:
            f()
        assert "numpy" in str(e.value) and "torch" in str(e.value), str(e.value)


def test_error_mixed_devices():
    xps = pytest.importorskip("array_api_strict")
    d = np.random.default_rng(0).uniform(-1, 1, (5, 3, 4))
    op_cpu = ssdops.SSD(xps.asarray(d))
    u_dev1 = xps.asarray(np.ones((3, 4)), device=xps.Device("device1"))
    with pytest.raises(ValueError) as e:
        op_cpu @ u_dev1
    assert "device1" in str(e.value) and "CPU_DEVICE" in str(e.value), str(e.value)
    op_dev1 = ssdops.SSD(xps.asarray(d, device=xps.Device("device1")))
    with pytest.raises(ValueError):
        op_dev1 @ xps.asarray(np.ones((3, 4)))
    # same device: works, and the result stays on device1
    out = op_dev1 @ u_dev1
    assert out.device == xps.Device("device1")
