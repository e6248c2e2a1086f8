"""Analysis helpers and metrics against NumPy / scipy.sparse references built in this file."""
import numpy as np
import pytest
from hypothesis import strategies as st

import ssdops
import strategies as sst
from support import (
    FIVE,
    NINE,
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
    "offsets": st.sampled_from([FIVE, NINE, ((0, 2), (-2, 0), (1, -1), (0, 0))]),
    "batch": sst.JAX_BATCHES,
}


def property_test(jax_space=None, **strategies):
    """``support.property_test`` with this file's fixed JAX shapes (``JAX_SPACE``, then ``jax_space``)."""
    return shared_property_test({**JAX_SPACE, **(jax_space or {})}, **strategies)


# --------------------------------------------------------------------------- references


def dense(op):
    """The matrix of an unbatched operator through ssdops' own scipy export (float64)."""
    return np.asarray(ssdops.to_scipy(op).toarray(), dtype=np.float64)


def make_op(xp, grid, offsets, dtype_name, seed, batch=(), low=-1.0, high=1.0):
    rng = np.random.default_rng(seed)
    d = rounded(rng.uniform(low, high, batch + (len(offsets),) + tuple(grid)), dtype_name)
    return ssdops.SSD(asarray(xp, d, dtype_name), offsets), d


def ref_row_sums(d, offsets, grid):
    """A @ 1 per batch index of the diagonals d (..., K, H, W)."""
    return ref_apply(d, offsets, np.ones(tuple(grid)))


# this file's grids and stencils (smaller than test_ssd's: no wide stencils)
GRIDS = sst.grids(1, 6)
OFFSETS = sst.offsets(small_max_size=7, wide=False)


# --------------------------------------------------------------------------- row sums / split


@property_test(grid=GRIDS, offsets=OFFSETS, dtype_name=sst.dtype_names, seed=sst.seeds,
               batch=sst.batches)
def test_row_sums_is_A_times_ones(xp, grid, offsets, dtype_name, seed, batch):
    op, d = make_op(xp, grid, offsets, dtype_name, seed, batch)
    rs = ssdops.row_sums(op)
    assert_close(rs, ref_row_sums(d, offsets, grid), op.diagonals, scale=len(offsets))
    # and it is op @ 1
    ones = xp.ones(tuple(grid), dtype=op.diagonals.dtype)
    assert_close(rs, to_numpy(op @ ones).astype(np.float64), op.diagonals, scale=len(offsets))


@property_test(grid=GRIDS, offsets=OFFSETS, dtype_name=sst.dtype_names, seed=sst.seeds)
def test_split_zero_mean_unbatched(xp, grid, offsets, dtype_name, seed):
    op, d = make_op(xp, grid, offsets, dtype_name, seed)
    A = assemble(d, offsets, grid).toarray()
    L, S = ssdops.split_zero_mean(op)
    assert isinstance(L, ssdops.SSD) and isinstance(S, ssdops.SSD)
    check_like(L.diagonals, op.diagonals)
    check_like(S.diagonals, op.diagonals)
    DL, DS = dense(L), dense(S)
    scale = len(offsets)
    # L has zero row sums
    np.testing.assert_allclose(DL.sum(axis=1), 0.0, atol=tolerance(dtype_name)[1] * 10 * scale)
    # S is diagonal, carrying the row sums of op
    np.testing.assert_array_equal(DS - np.diag(np.diag(DS)), 0.0)
    np.testing.assert_allclose(np.diag(DS), A.sum(axis=1), rtol=tolerance(dtype_name)[0],
                               atol=tolerance(dtype_name)[1] * scale)
    # W = L + S
    np.testing.assert_allclose(DL + DS, A, rtol=tolerance(dtype_name)[0],
                               atol=tolerance(dtype_name)[1] * scale)


def test_split_zero_mean_batched(xp, dtype_name):
    grid = (4, 5)
    op, d = make_op(xp, grid, NINE, dtype_name, seed=3, batch=(2, 3))
    L, S = ssdops.split_zero_mean(op)
    u = rounded(np.random.default_rng(4).uniform(-1, 1, grid), dtype_name)
    ux = asarray(xp, u, dtype_name)
    rs = ref_row_sums(d, NINE, grid)
    assert_close(ssdops.row_sums(L), np.zeros((2, 3) + grid), op.diagonals, scale=10)
    assert_close(S @ ux, rs * u, ux, scale=10)
    assert_close((L + S) @ ux, to_numpy(op @ ux).astype(np.float64), ux, scale=10)


# --------------------------------------------------------------------------- smoothing level


@property_test(grid=GRIDS, offsets=OFFSETS, dtype_name=sst.dtype_names, seed=sst.seeds,
               batch=sst.batches)
def test_smoothing_level(xp, grid, offsets, dtype_name, seed, batch):
    op, d = make_op(xp, grid, offsets, dtype_name, seed, batch)
    expected = np.abs(ref_row_sums(d, offsets, grid)).mean(axis=(-2, -1))
    got = ssdops.smoothing_level(op)
    got_np = np.asarray(to_numpy(got) if not np.isscalar(got) else got, dtype=np.float64)
    assert got_np.shape == batch
    np.testing.assert_allclose(got_np, expected, rtol=tolerance(dtype_name)[0],
                               atol=tolerance(dtype_name)[1] * len(offsets))


def test_smoothing_level_zero_for_neumann_laplacian(xp):
    like = asarray(xp, np.zeros(1))
    lap = ssdops.laplacian((5, 6), bc="neumann", like=like)
    assert float(to_numpy(ssdops.smoothing_level(lap))) < 1e-14
    # the textbook Dirichlet Laplacian loses mass on the boundary: (2*5 + 2*6) / 30 per pixel
    lapd = ssdops.laplacian((5, 6), bc="dirichlet", like=like)
    np.testing.assert_allclose(float(to_numpy(ssdops.smoothing_level(lapd))), 22 / 30, rtol=1e-12)


# --------------------------------------------------------------------------- symmetry


@pytest.mark.parametrize("grid", [(1, 1), (1, 5), (5, 1), (3, 4)])
@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
def test_is_symmetric_true_for_diffusion_operators(xp, dtype_name, grid, bc):
    like = asarray(xp, np.zeros(1), dtype_name)
    assert ssdops.is_symmetric(ssdops.laplacian(grid, bc=bc, like=like)) is True
    gamma = asarray(xp, np.random.default_rng(0).uniform(0.1, 2.0, grid), dtype_name)
    assert ssdops.is_symmetric(ssdops.divergence_form(gamma, bc=bc)) is True
    if bc == "dirichlet":
        for g in (0.0, 0.7):
            assert ssdops.is_symmetric(ssdops.divergence_form(gamma, bc=bc, ghost_gamma=g)) is True


@property_test(jax_space={"grid": st.sampled_from([(2, 2), (3, 4)]), "offsets": st.sampled_from([FIVE, NINE])},
               grid=sst.grids(2, 6), offsets=st.sampled_from([FIVE, NINE]),
       dtype_name=sst.dtype_names, seed=sst.seeds)
def test_is_symmetric_random(xp, grid, offsets, dtype_name, seed):
    op, d = make_op(xp, grid, offsets, dtype_name, seed, low=0.5, high=1.0)
    A = assemble(d, offsets, grid).toarray()
    assert np.abs(A - A.T).max() > 1e-3  # the reference really is non-symmetric
    assert ssdops.is_symmetric(op) is False
    sym = op + op.T
    assert ssdops.is_symmetric(sym) is True
    # garbage in diagonal entries that point outside the grid does not matter
    mask = in_grid_mask(sym.offsets, grid)
    ds = to_numpy(sym.diagonals).astype(np.float64)
    garbage = np.where(mask, ds, 5.0 + np.arange(ds.size).reshape(ds.shape))
    noisy = ssdops.SSD(asarray(xp, garbage, dtype_name), sym.offsets)
    assert ssdops.is_symmetric(noisy) is True
    # a small asymmetric perturbation of one entry is detected
    B = assemble(garbage, sym.offsets, grid).tolil()
    B[0, 1] = B[0, 1] + 1e-2
    assert ssdops.is_symmetric(ssdops.from_scipy(B.tocsr(), grid, sym.offsets)) is False


def test_is_symmetric_ignores_magnitude_of_out_of_grid_values(xp, dtype_name):
    # Values pointing outside the grid are ignored by the operator, so they must not change the
    # verdict either (not even through a tolerance scaled by them).
    grid = (4, 4)
    rng = np.random.default_rng(5)
    d = np.ones((5,) + grid)
    d[4] = -4.0
    d[3, 1, 1] += 0.005  # entry (1,1)->(1,2) differs from (1,2)->(1,1) by 0.005: far above rounding
    d_garbage = np.where(in_grid_mask(FIVE, grid), d, 1e3 * rng.uniform(0.5, 1, d.shape))
    assert ssdops.is_symmetric(ssdops.SSD(asarray(xp, d, dtype_name))) is False
    assert ssdops.is_symmetric(ssdops.SSD(asarray(xp, d_garbage, dtype_name))) is False


# --------------------------------------------------------------------------- spectrum


def _top_by_magnitude(ev, k):
    return ev[np.argsort(-np.abs(ev), kind="stable")][:k]


@pytest.mark.parametrize("grid", [(5, 6), (9, 10)])  # dense path (n <= 64) and ARPACK
@pytest.mark.parametrize("kind", ["laplacian", "divergence", "random_symmetric", "random"])
def test_spectrum_vs_dense_eigvals(xp, grid, kind):
    rng = np.random.default_rng([grid[0], grid[1], len(kind)])
    like = asarray(xp, np.zeros(1))
    if kind == "laplacian":
        op = ssdops.laplacian(grid, bc="neumann", like=like)
    elif kind == "divergence":
        op = ssdops.divergence_form(asarray(xp, rng.uniform(0.2, 2, grid)), bc="dirichlet")
    elif kind == "random_symmetric":
        base = ssdops.SSD(asarray(xp, rng.uniform(-1, 1, (9,) + grid)), NINE)
        op = base + base.T
    else:
        op = ssdops.SSD(asarray(xp, rng.uniform(-1, 1, (5,) + grid)), FIVE)
    A = dense(op)
    ev = np.linalg.eigvals(A)
    for k in (1, 4, 6):
        got = np.asarray(ssdops.spectrum(op, k=k, which="LM"))
        assert isinstance(ssdops.spectrum(op, k=k), np.ndarray)
        assert got.shape == (k,)
        # same k largest magnitudes
        np.testing.assert_allclose(np.sort(np.abs(got)), np.sort(np.abs(_top_by_magnitude(ev, k))),
                                   rtol=1e-8, atol=1e-10)
        # and each returned value is an eigenvalue of the dense matrix
        for lam in got:
            assert np.min(np.abs(ev - lam)) < 1e-8 * max(1.0, np.abs(ev).max())
    rho = ssdops.spectral_radius(op)
    assert isinstance(rho, float)
    np.testing.assert_allclose(rho, np.abs(ev).max(), rtol=1e-8)


def test_spectral_radius_laplacian_closed_form():
    # Dirichlet 5-point Laplacian on H x W: eigenvalues -(4 sin^2(pi a/2(H+1)) + 4 sin^2(pi b/2(W+1)))
    H, W = 6, 9
    op = ssdops.laplacian((H, W), bc="dirichlet")
    rho = 4 * np.sin(np.pi * H / (2 * (H + 1))) ** 2 + 4 * np.sin(np.pi * W / (2 * (W + 1))) ** 2
    np.testing.assert_allclose(ssdops.spectral_radius(op), rho, rtol=1e-10)


def test_spectrum_float32(xp):
    grid = (5, 5)
    like = asarray(xp, np.zeros(1), "float32")
    op = ssdops.divergence_form(asarray(xp, np.random.default_rng(1).uniform(0.2, 2, grid), "float32"))
    assert op.dtype == like.dtype
    ev = np.linalg.eigvalsh(dense(op))
    got = np.asarray(ssdops.spectrum(op, k=3))
    np.testing.assert_allclose(np.sort(np.abs(got)), np.sort(np.abs(ev))[-3:], rtol=1e-4)
    np.testing.assert_allclose(ssdops.spectral_radius(op), np.abs(ev).max(), rtol=1e-4)


# --------------------------------------------------------------------------- metrics


def np_psnr(x, ref, data_range=None):
    x = np.asarray(x, np.float64)
    ref = np.asarray(ref, np.float64)
    mse = ((x - ref) ** 2).mean(axis=(-2, -1))
    if data_range is None:
        data_range = ref.max(axis=(-2, -1)) - ref.min(axis=(-2, -1))
    return 10 * np.log10(data_range**2 / mse)


@property_test(shape=st.sampled_from([(4, 5), (3, 4, 5), (2, 3, 6, 4), (1, 1, 7)]),
       dtype_name=sst.dtype_names, seed=sst.seeds, noise=st.sampled_from([1e-3, 1e-2, 0.3]))
def test_psnr_vs_numpy(xp, shape, dtype_name, seed, noise):
    rng = np.random.default_rng(seed)
    ref = rounded(rng.uniform(-1, 3, shape), dtype_name)
    ref = ref * rounded(rng.uniform(0.5, 2, shape[:-2] + (1, 1)), dtype_name)  # per-image range
    ref = rounded(ref, dtype_name)
    x = rounded(ref + noise * rng.standard_normal(shape), dtype_name)
    xr, rr = asarray(xp, x, dtype_name), asarray(xp, ref, dtype_name)
    got = ssdops.psnr(xr, rr)
    check_like(got, xr)
    assert tuple(got.shape) == shape[:-2]
    # float32: mse is computed from float32 differences; 1e-3 relative on the mse = 4e-3 dB
    atol = 1e-3 if dtype_name == "float32" else 1e-9
    np.testing.assert_allclose(to_numpy(got), np_psnr(x, ref), rtol=0, atol=atol)
    got = ssdops.psnr(xr, rr, data_range=2.0)
    np.testing.assert_allclose(to_numpy(got), np_psnr(x, ref, 2.0), rtol=0, atol=atol)
    dr = rounded(rng.uniform(0.5, 3, shape[:-2]), dtype_name)
    got = ssdops.psnr(xr, rr, data_range=asarray(xp, dr, dtype_name))
    np.testing.assert_allclose(to_numpy(got), np_psnr(x, ref, dr), rtol=0, atol=atol)


def test_psnr_identical_images_give_inf(xp, dtype_name):
    # documented: inf where x == ref (per image; the other images are unaffected)
    rng = np.random.default_rng(2)
    ref = rounded(rng.uniform(0, 1, (3, 5, 5)), dtype_name)
    x = ref.copy()
    x[1] += 0.1
    got = ssdops.psnr(asarray(xp, x, dtype_name), asarray(xp, ref, dtype_name))
    got = to_numpy(got).astype(np.float64)
    assert got[0] == np.inf and got[2] == np.inf
    np.testing.assert_allclose(got[1], np_psnr(x[1], ref[1]), atol=1e-3)


def test_psnr_known_value(xp):
    ref = np.zeros((2, 4, 4))
    ref[:, 0, 0] = 1.0  # range 1
    x = ref + np.array([0.1, 0.01])[:, None, None]  # mse 1e-2, 1e-4
    got = to_numpy(ssdops.psnr(asarray(xp, x), asarray(xp, ref)))
    np.testing.assert_allclose(got, [20.0, 40.0], rtol=1e-12)


@property_test(shape=st.sampled_from([(4, 5), (3, 4, 5), (2, 3, 6, 4)]), dtype_name=sst.dtype_names, seed=sst.seeds)
def test_relative_l2_vs_numpy(xp, shape, dtype_name, seed):
    rng = np.random.default_rng(seed)
    ref = rounded(rng.uniform(-1, 1, shape), dtype_name)
    x = rounded(ref + 0.1 * rng.standard_normal(shape), dtype_name)
    xr, rr = asarray(xp, x, dtype_name), asarray(xp, ref, dtype_name)
    got = ssdops.relative_l2(xr, rr)
    expected = np.sqrt(((x - ref) ** 2).sum(axis=(-2, -1)) / (ref**2).sum(axis=(-2, -1)))
    check_like(got, xr)
    assert tuple(got.shape) == shape[:-2]
    np.testing.assert_allclose(to_numpy(got), expected, rtol=tolerance(dtype_name)[0] * 10)


# --------------------------------------------------------------------------- add_noise


def test_add_noise_std_per_image(xp, dtype_name):
    rng = np.random.default_rng(0)
    n = 256
    y = rng.uniform(0, 1, (3, n, n))
    y[1] *= -4.0  # max|y| comes from negative values here
    y[2] *= 0.01
    y = rounded(y, dtype_name)
    yx = asarray(xp, y, dtype_name)
    level = 0.05
    out = ssdops.add_noise(yx, level, rng=123)
    check_like(out, yx)
    assert tuple(out.shape) == y.shape
    noise = to_numpy(out).astype(np.float64) - y
    target = level * np.abs(y).max(axis=(-2, -1))
    std = noise.std(axis=(-2, -1))
    np.testing.assert_allclose(std, target, rtol=0.02)  # 1/sqrt(2 n^2) = 0.3% sampling error
    # zero mean, Gaussian (about 68.3% within one standard deviation), independent of y
    assert np.all(np.abs(noise.mean(axis=(-2, -1))) < 5 * target / n)
    within = (np.abs(noise) < target[:, None, None]).mean(axis=(-2, -1))
    np.testing.assert_allclose(within, 0.6827, atol=0.01)
    assert abs(np.corrcoef(noise[0].ravel(), y[0].ravel())[0, 1]) < 0.02


def test_add_noise_deterministic_with_seed(xp):
    y = asarray(xp, np.random.default_rng(1).uniform(0, 1, (2, 16, 16)))
    a = to_numpy(ssdops.add_noise(y, 0.01, rng=7))
    b = to_numpy(ssdops.add_noise(y, 0.01, rng=7))
    c = to_numpy(ssdops.add_noise(y, 0.01, rng=8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    g1 = to_numpy(ssdops.add_noise(y, 0.01, rng=np.random.default_rng(7)))
    g2 = to_numpy(ssdops.add_noise(y, 0.01, rng=np.random.default_rng(7)))
    np.testing.assert_array_equal(g1, g2)
    assert not np.array_equal(g1, to_numpy(y))
    # a Generator advances: two draws from one generator differ
    gen = np.random.default_rng(3)
    assert not np.array_equal(to_numpy(ssdops.add_noise(y, 0.01, rng=gen)),
                              to_numpy(ssdops.add_noise(y, 0.01, rng=gen)))


def test_add_noise_level_zero_is_identity(xp, dtype_name):
    y = asarray(xp, np.random.default_rng(1).uniform(0, 1, (8, 8)), dtype_name)
    out = ssdops.add_noise(y, 0.0, rng=0)
    check_like(out, y)
    np.testing.assert_array_equal(to_numpy(out), to_numpy(y))
