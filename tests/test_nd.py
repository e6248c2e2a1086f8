"""1-D signals and 3-D volumes: every operator against a scipy.sparse reference assembled independently.

References: COO assembly over all grid points with ``np.ravel_multi_index``; Kronecker sums of 1-D face
matrices for the Laplacian and div(gamma grad .) (and scipy's ``LaplacianNd``); ``expm_multiply`` for the
heat equation; ``spsolve`` for implicit steps; the authors' Perona-Malik scheme written with Kronecker
backward differences. Grids include length-1 axes; both boundary conditions; float32 and float64; batches.
"""
import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import strategies as st

import ssdops
from support import (
    DIFFUSIVITIES,
    asarray,
    assert_close,
    backward_diff,
    face_diff,
    face_gamma,
    is_jax,
    property_test,
    rounded,
    scipy_laplacian,
    to_numpy,
)

THREE = ssdops.THREE_POINT
SEVEN = ssdops.SEVEN_POINT
STARS = {1: THREE, 2: ssdops.FIVE_POINT, 3: SEVEN}


def grids_nd(ndim, max_side=5):
    return st.tuples(*[st.integers(1, max_side)] * ndim)


grids_1d_3d = st.one_of(grids_nd(1, 9), grids_nd(3, 4))
JAX_GRIDS_ND = st.sampled_from([(1,), (6,), (1, 1, 1), (2, 3, 4), (3, 1, 2)])
BATCHES = st.sampled_from([((), ()), ((2,), ()), ((), (2,)), ((2, 1), (3,))])
JAX_BATCHES = st.sampled_from([((), ()), ((2,), (2,))])
OFFSETS_ND = {1: st.sampled_from([THREE, ((0,), (2,), (-3,))]),
              3: st.sampled_from([SEVEN, ssdops.TWENTY_SEVEN_POINT, ((0, 0, 2), (2, 1, 0), (-1, 0, 0), (0, 0, 0))])}


# --------------------------------------------------------------------------- references


def assemble_nd(diagonals, offsets, grid):
    """``A[p, p + o_k] = d_k(p)`` for in-grid neighbours, row-major over the grid (float64 CSR)."""
    d = np.asarray(diagonals, dtype=np.float64)
    coords = np.meshgrid(*[np.arange(n) for n in grid], indexing="ij")
    rows, cols, vals = [], [], []
    for k, o in enumerate(offsets):
        shifted = [c + s for c, s in zip(coords, o)]
        inside = np.ones(grid, dtype=bool)
        for c, n in zip(shifted, grid):
            inside &= (c >= 0) & (c < n)
        rows.append(np.ravel_multi_index([c[inside] for c in coords], grid))
        cols.append(np.ravel_multi_index([c[inside] for c in shifted], grid))
        vals.append(d[k][inside])
    n = math.prod(grid)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def axis_operator(matrix, axis, grid):
    """``matrix`` (acting along one axis) as an operator on the row-major flattened grid (Kronecker)."""
    before = sp.eye(math.prod(grid[:axis]))
    after = sp.eye(math.prod(grid[axis + 1:]))
    return sp.csr_matrix(sp.kron(sp.kron(before, matrix), after))


def ref_divergence_form_nd(gamma, bc, ghost=None):
    """div(gamma grad .) = -sum_axes D_a^T diag(g_a) D_a over the faces of every line (float64 CSR)."""
    gamma = np.asarray(gamma, dtype=np.float64)
    grid = gamma.shape
    L = sp.csr_matrix((gamma.size, gamma.size))
    for axis, n in enumerate(grid):
        D = axis_operator(face_diff(n, bc), axis, grid)
        g = face_gamma(gamma, axis, bc, ghost).ravel()
        L = L - D.T @ sp.diags(g) @ D
    return sp.csr_matrix(L)


def kronecker_laplacian(grid, bc):
    return ref_divergence_form_nd(np.ones(grid), bc)


def ref_pm_step(u, dt, lam, bc, ghost, g):
    """One step of the authors' scheme in d-D: backward differences per axis, g, div form, explicit."""
    grid = u.shape
    v = u.ravel()
    s2 = sum((axis_operator(backward_diff(n, bc), a, grid) @ v) ** 2 for a, n in enumerate(grid))
    L = ref_divergence_form_nd(DIFFUSIVITIES[g](s2, lam).reshape(grid), bc, ghost)
    return (v + dt * (L @ v)).reshape(grid)


def per_image(batch, fn, *arrays):
    """``fn`` over every index of ``batch`` (arrays already broadcast to it), stacked."""
    out = [fn(*(a[idx] for a in arrays)) for idx in np.ndindex(*batch)]
    return np.stack(out).reshape(batch + np.shape(out[0])) if out else np.zeros(batch)


# --------------------------------------------------------------------------- the type and its apply


@property_test({"grid": JAX_GRIDS_ND, "batches": JAX_BATCHES}, grid=grids_1d_3d, batches=BATCHES,
               dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**16), data=st.data())
def test_apply_and_transpose_equal_the_assembled_matrix(xp, grid, batches, dtype, seed, data):
    ndim = len(grid)
    offsets = data.draw(OFFSETS_ND[ndim])
    dbatch, ubatch = batches
    rng = np.random.default_rng(seed)
    d = rng.standard_normal(dbatch + (len(offsets),) + grid)
    u = rng.standard_normal(ubatch + grid)
    op = ssdops.SSD(asarray(xp, d, dtype), offsets)
    ux = asarray(xp, u, dtype)
    batch = np.broadcast_shapes(dbatch, ubatch)
    db = np.broadcast_to(rounded(d, dtype), batch + d.shape[len(dbatch):])
    ub = np.broadcast_to(rounded(u, dtype), batch + grid)
    want = per_image(batch, lambda dd, uu: (assemble_nd(dd, offsets, grid) @ uu.ravel()).reshape(grid), db, ub)
    want_t = per_image(batch, lambda dd, uu: (assemble_nd(dd, offsets, grid).T @ uu.ravel()).reshape(grid), db, ub)
    assert op.ndim == ndim and op.grid_shape == grid
    assert_close(op @ ux, want, ux, scale=len(offsets))
    assert_close(op.T @ ux, want_t, ux, scale=len(offsets))
    assert_close(op.rmatvec(ux), want_t, ux, scale=len(offsets))


@pytest.mark.parametrize("grid", [(1,), (7,), (1, 1, 1), (2, 3, 4), (1, 4, 1), (3, 1, 2)])
@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
def test_laplacian_equals_laplaciannd_and_the_kronecker_sum(xp, grid, bc):
    L = ssdops.laplacian(grid, bc=bc, like=asarray(xp, np.zeros(1)))
    assert L.offsets == STARS[len(grid)] and L.tags.laplacian == (bc, 1.0)
    A = ssdops.to_scipy(L).toarray()
    np.testing.assert_array_equal(A, kronecker_laplacian(grid, bc).toarray())
    if min(grid) >= 2:
        np.testing.assert_array_equal(A, scipy_laplacian(grid, bc).toarray())
    assert ssdops.from_scipy(ssdops.to_scipy(L), grid).offsets == STARS[len(grid)]


@property_test({"grid": JAX_GRIDS_ND}, grid=grids_1d_3d, bc=st.sampled_from(["neumann", "dirichlet"]),
               ghost=st.sampled_from([None, 0.0, 0.6]), dtype=st.sampled_from(["float32", "float64"]),
               seed=st.integers(0, 2**16))
def test_divergence_form_equals_the_kronecker_reference(xp, grid, bc, ghost, dtype, seed):
    ghost = None if bc == "neumann" else ghost
    rng = np.random.default_rng(seed)
    gamma = 0.2 + rng.random((2,) + grid)
    u = rng.standard_normal((2,) + grid)
    op = ssdops.divergence_form(asarray(xp, gamma, dtype), ndim=len(grid), bc=bc, ghost_gamma=ghost)
    ux = asarray(xp, u, dtype)
    want = np.stack([(ref_divergence_form_nd(rounded(gamma[b], dtype), bc, ghost) @ rounded(u[b], dtype).ravel())
                     .reshape(grid) for b in range(2)])
    assert op.symmetric and op.offsets == STARS[len(grid)]
    assert_close(op @ ux, want, ux, scale=8)


def test_ndim_2_keeps_a_volume_a_batch():
    """The documented rule: a (D, H, W) array with the default ndim=2 is a batch of D images."""
    rng = np.random.default_rng(3)
    gamma = 0.5 + rng.random((3, 4, 5))
    as_batch = ssdops.divergence_form(gamma)
    assert as_batch.grid_shape == (4, 5) and as_batch.batch_shape == (3,)
    assert ssdops.divergence_form(gamma, ndim=3).grid_shape == (3, 4, 5)
    u = rng.random((3, 4, 5))
    slices = np.stack([ssdops.perona_malik_step(u[i], dt=0.1, lam=0.2) for i in range(3)])
    np.testing.assert_allclose(ssdops.perona_malik_step(u, dt=0.1, lam=0.2), slices, rtol=1e-12)
    assert np.abs(ssdops.perona_malik_step(u, dt=0.1, lam=0.2, ndim=3) - slices).max() > 1e-3


@pytest.mark.parametrize("ndim", [1, 3])
@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
def test_gradient_and_divergence_are_negative_adjoints(xp, ndim, bc):
    grid = (7,) if ndim == 1 else (3, 4, 2)
    rng = np.random.default_rng(5)
    u = asarray(xp, rng.standard_normal((2,) + grid))
    p = asarray(xp, rng.standard_normal((2, ndim) + grid))
    g = ssdops.gradient(u, ndim=ndim, bc=bc)
    assert tuple(g.shape) == (2, ndim) + grid
    lhs = float(np.sum(to_numpy(g) * to_numpy(p)))
    rhs = -float(np.sum(to_numpy(u) * to_numpy(ssdops.divergence(p, ndim=ndim, bc=bc))))
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))
    if bc == "neumann":
        want = (kronecker_laplacian(grid, "neumann") @ to_numpy(u).reshape(2, -1).T).T.reshape(u.shape)
        assert_close(ssdops.divergence(ssdops.gradient(u, ndim=ndim), ndim=ndim), want, u)


# --------------------------------------------------------------------------- time stepping


@pytest.mark.parametrize("grid", [(9,), (1,), (3, 4, 5), (1, 3, 1)])
@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
def test_heat_exact_equals_expm_multiply(xp, grid, bc):
    if is_jax(xp) and grid == (1, 3, 1):
        pytest.skip("one more eager JAX compile; (3, 4, 5) covers the 3-D path")
    rng = np.random.default_rng(7)
    u = rng.random((2,) + grid)
    ux = asarray(xp, u)
    L = kronecker_laplacian(grid, bc)
    want = np.stack([spla.expm_multiply(0.8 * L, u[b].ravel()).reshape(grid) for b in range(2)])
    assert_close(ssdops.heat(ux, 0.8, ndim=len(grid), bc=bc), want, ux)
    for method, tol in (("explicit", 0.1), ("implicit", 0.1)):  # first order, dt <= 1/(4d)
        got = to_numpy(ssdops.heat(ux, 0.8, ndim=len(grid), bc=bc, method=method))
        assert np.abs(got - want).max() <= tol, method


@pytest.mark.parametrize("grid", [(8,), (3, 4, 5), (1, 4, 3)])
@pytest.mark.parametrize("bc, ghost", [("neumann", None), ("dirichlet", None), ("dirichlet", 0.0)])
@pytest.mark.parametrize("diffusivity", sorted(DIFFUSIVITIES))
def test_perona_malik_step_equals_the_kronecker_scheme(grid, bc, ghost, diffusivity):
    rng = np.random.default_rng(9)
    u = rng.random((2,) + grid)
    want = np.stack([ref_pm_step(u[b], 0.1, 0.3, bc, ghost, diffusivity) for b in range(2)])
    got = ssdops.perona_malik_step(u, dt=0.1, lam=0.3, diffusivity=diffusivity, ndim=len(grid), bc=bc,
                                   ghost_gamma=ghost, check_stable=diffusivity != "total_variation")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    op = ssdops.perona_malik_operator(u, lam=0.3, diffusivity=diffusivity, ndim=len(grid), bc=bc, ghost_gamma=ghost)
    np.testing.assert_allclose(u + 0.1 * (op @ u), want, rtol=1e-12, atol=1e-13)


def test_perona_malik_fast_paths_equal_the_generic_code_in_3d(xp):
    rng = np.random.default_rng(10)
    u = asarray(xp, rng.random((2, 3, 4, 5)))
    got = ssdops.perona_malik(u, steps=3, dt=0.1, lam=0.2, ndim=3, bc="dirichlet", ghost_gamma=0.0)
    with ssdops.backends.use_generic():
        want = ssdops.perona_malik(u, steps=3, dt=0.1, lam=0.2, ndim=3, bc="dirichlet", ghost_gamma=0.0)
    assert_close(got, to_numpy(want), u)


@pytest.mark.parametrize("grid", [(7,), (2, 3, 4), (1, 3, 2)])
@pytest.mark.parametrize("method", ["spectral", "cg", "bicgstab"])
@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
def test_implicit_step_equals_spsolve(grid, method, bc):
    rng = np.random.default_rng(11)
    u = rng.random((2,) + grid)
    if method == "spectral":
        op = 1.5 * ssdops.laplacian(grid, bc=bc)
    else:
        op = ssdops.divergence_form(0.3 + rng.random(grid), ndim=len(grid), bc=bc)
    A = sp.eye(math.prod(grid)) - 0.7 * ssdops.to_scipy(op)
    want = np.stack([spla.spsolve(sp.csc_matrix(A), u[b].ravel()).reshape(grid) for b in range(2)])
    got = ssdops.implicit_step(u, op, 0.7, method=method)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("ndim", [1, 3])
def test_filter_step_reads_the_dimension_off_the_maps(xp, ndim):
    grid = (6,) if ndim == 1 else (2, 3, 4)
    rng = np.random.default_rng(12)
    zeta = asarray(xp, rng.standard_normal((2, 2 * ndim + 1) + grid))
    u = asarray(xp, rng.standard_normal((2,) + grid))
    want = ssdops.explicit_step(u, ssdops.ssd_from_filters(zeta, ndim=ndim), 0.3)
    assert_close(ssdops.filter_step(u, zeta, 0.3), to_numpy(want), u)
    with pytest.raises(ValueError, match="shape"):
        ssdops.filter_step(u, zeta[:, 1:, ...], 0.3)


def test_stable_dt_and_explicit_step_in_3d():
    L = ssdops.laplacian((3, 4, 5))
    assert ssdops.stable_dt(L) == pytest.approx(1 / 6)
    u = np.random.default_rng(13).random((3, 4, 5))
    ssdops.explicit_step(u, L, 1 / 6, check_stable=True)
    with pytest.raises(ValueError, match="unstable"):
        ssdops.explicit_step(u, L, 0.2, check_stable=True)


# --------------------------------------------------------------------------- exchange and analysis


@pytest.mark.parametrize("grid, offsets", [((6,), THREE), ((2, 3, 4), SEVEN), ((3, 2, 3), ssdops.TWENTY_SEVEN_POINT)])
def test_scipy_round_trip_and_analysis(grid, offsets):
    rng = np.random.default_rng(14)
    op = ssdops.SSD(rng.standard_normal((2, len(offsets)) + grid), offsets)
    A = ssdops.to_scipy(op)  # block-diagonal over the batch
    n = math.prod(grid)
    for b in range(2):
        np.testing.assert_array_equal(A[b * n:(b + 1) * n, b * n:(b + 1) * n].toarray(),
                                      assemble_nd(to_numpy(op.diagonals)[b], offsets, grid).toarray())
    back = ssdops.from_scipy(A, grid, offsets, batch_shape=(2,))
    u = rng.standard_normal((2,) + grid)
    np.testing.assert_allclose(back @ u, op @ u, rtol=1e-13)
    Lo, S = ssdops.split_zero_mean(op)
    np.testing.assert_allclose(ssdops.row_sums(Lo), 0.0, atol=1e-12)
    image_axes = tuple(range(1, len(grid) + 1))
    np.testing.assert_allclose(ssdops.smoothing_level(op), np.mean(np.abs(ssdops.row_sums(op)), axis=image_axes))
    sym = ssdops.divergence_form(0.5 + rng.random(grid), ndim=len(grid))
    assert ssdops.is_symmetric(sym) and not ssdops.is_symmetric(op[0])
    dense = np.linalg.eigvalsh(ssdops.to_scipy(sym).toarray())
    np.testing.assert_allclose(np.sort(ssdops.spectrum(sym, k=2, which="SR").real), dense[:2], rtol=1e-8, atol=1e-10)
