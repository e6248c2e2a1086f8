"""Diffusion operators: laplacian, divergence_form, gradient / divergence, diffusivities.

Every reference here is assembled independently with scipy.sparse (float64) from the contract of
issues #2 and #7: face-difference matrices D over the faces of each line, face diffusivity = mean of
the two neighbouring pixels' gamma, L = -(Dy' diag(gy) Dy + Dx' diag(gx) Dx), row-major flattening.
The operators under test are read back through their own apply (``op @ u``) on a batch of unit
images, so the comparison never goes through ssdops' own scipy export.
"""
import array_api_compat
import numpy as np
import pytest
import scipy.sparse as sp

import ssdops
import strategies as sst
from support import BCS, DIFFUSIVITIES, asarray, pm_reference, ref_divergence_form, scipy_laplacian, to_numpy, tolerance


# ----------------------------------------------------------------------------------------------
# independent references (NumPy / scipy.sparse, float64; the divergence form is support's)
# ----------------------------------------------------------------------------------------------
def forward_diff(n, bc):
    """Forward differences u[i+1] - u[i]; last row 0 (neumann) or 0 - u[n-1] (dirichlet)."""
    G = sp.diags([-np.ones(n), np.ones(n - 1)], [0, 1], shape=(n, n), format="lil")
    if bc == "neumann":
        G[n - 1, n - 1] = 0.0
    return sp.csr_matrix(G)


def ref_gradient_matrices(shape, bc):
    H, W = shape
    Gy = sp.kron(forward_diff(H, bc), sp.eye(W), format="csr")
    Gx = sp.kron(sp.eye(H), forward_diff(W, bc), format="csr")
    return Gy, Gx


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------
def dense_of(op, shape, xp, dtype_name="float64"):
    """The matrix of an unbatched operator, read through its apply on all unit images."""
    H, W = shape
    N = H * W
    E = asarray(xp, np.eye(N).reshape(N, H, W), dtype_name)
    cols = to_numpy(op @ E).reshape(N, N)  # cols[k] = A e_k
    return cols.T.astype(np.float64)


def random_gamma(rng, shape, lo=0.1, hi=2.0):
    return rng.uniform(lo, hi, size=shape)


# ----------------------------------------------------------------------------------------------
# laplacian
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bc", BCS)
def test_laplacian_equals_scipy_laplaciannd(xp, bc, property_check):
    @property_check(xp, sst.grids(2, 7), sst.dtype_names, fixed=[((3, 4), "float64"), ((2, 5), "float32")])
    def _(shape, dtype_name):
        like = asarray(xp, np.zeros((1, 1)), dtype_name)
        op = ssdops.laplacian(shape, bc=bc, like=like)
        assert op.grid_shape == tuple(shape)
        assert op.dtype == like.dtype
        assert array_api_compat.array_namespace(op.diagonals) is array_api_compat.array_namespace(like)
        A = dense_of(op, shape, xp, dtype_name)
        # integer entries: exact in both dtypes
        np.testing.assert_array_equal(A, scipy_laplacian(shape, bc).toarray())


@pytest.mark.parametrize("bc", BCS)
def test_laplacian_default_is_numpy_float64(bc):
    op = ssdops.laplacian((3, 4), bc=bc)
    assert isinstance(op.diagonals, np.ndarray)
    assert op.diagonals.dtype == np.float64
    np.testing.assert_array_equal(dense_of(op, (3, 4), np), scipy_laplacian((3, 4), bc).toarray())


@pytest.mark.parametrize("bc", BCS)
def test_laplacian_to_scipy_matches_laplaciannd(bc, property_check):
    @property_check(np, sst.grids(2, 7))
    def _(shape):
        A = ssdops.to_scipy(ssdops.laplacian(shape, bc=bc))
        np.testing.assert_array_equal(A.toarray(), scipy_laplacian(shape, bc).toarray())


@pytest.mark.parametrize("bc", BCS)
def test_laplacian_equals_divergence_form_of_ones(xp, bc, property_check):
    @property_check(xp, sst.grids(), fixed=[((3, 4),), ((1, 5),)])
    def _(shape):
        ones = asarray(xp, np.ones(shape))
        A = dense_of(ssdops.laplacian(shape, bc=bc, like=ones), shape, xp)
        B = dense_of(ssdops.divergence_form(ones, bc=bc), shape, xp)
        np.testing.assert_allclose(A, B, rtol=0, atol=1e-14)
        # and both equal the independently assembled divergence form of gamma = 1
        np.testing.assert_allclose(A, ref_divergence_form(np.ones(shape), bc).toarray(), rtol=0, atol=1e-14)


def test_neumann_laplacian_zero_row_sums_all_grids(xp, property_check):
    @property_check(xp, sst.grids(), fixed=[((3, 4),), ((1, 5),)])
    def _(shape):
        ones = asarray(xp, np.ones(shape))
        op = ssdops.laplacian(shape, bc="neumann", like=ones)
        np.testing.assert_array_equal(to_numpy(op @ ones), np.zeros(shape))


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1), (1, 2), (2, 1)])
def test_neumann_zero_row_sums_thin_grids(xp, shape):
    rng = np.random.default_rng(0)
    ones = asarray(xp, np.ones(shape))
    np.testing.assert_array_equal(to_numpy(ssdops.laplacian(shape, like=ones) @ ones), np.zeros(shape))
    gamma = asarray(xp, random_gamma(rng, shape))
    rs = to_numpy(ssdops.divergence_form(gamma, bc="neumann") @ ones)
    np.testing.assert_allclose(rs, 0.0, atol=1e-14)
    # the thin-grid operator is the 1-D Neumann operator (a 1x1 Neumann operator is zero)
    A = dense_of(ssdops.divergence_form(gamma, bc="neumann"), shape, xp)
    np.testing.assert_allclose(A, ref_divergence_form(to_numpy(gamma), "neumann").toarray(), rtol=1e-13, atol=1e-14)
    if shape == (1, 1):
        assert A[0, 0] == 0.0


def test_neumann_divergence_form_zero_row_sums_random_gamma(xp, property_check):
    rng = np.random.default_rng(1)

    @property_check(xp, sst.grids(), sst.dtype_names, fixed=[((3, 4), "float64"), ((1, 5), "float32")])
    def _(shape, dtype_name):
        gamma = asarray(xp, random_gamma(rng, (2,) + tuple(shape)), dtype_name)
        ones = asarray(xp, np.ones(shape), dtype_name)
        rs = to_numpy(ssdops.divergence_form(gamma, bc="neumann") @ ones)
        assert rs.shape == (2,) + tuple(shape)
        atol = 1e-5 if dtype_name == "float32" else 1e-14
        np.testing.assert_allclose(rs, 0.0, atol=atol)


def test_dirichlet_row_sums_are_minus_boundary_faces():
    """Non-trivial check of the ghost faces: row sum = -(sum of boundary-face diffusivities)."""
    shape = (3, 4)
    A = dense_of(ssdops.laplacian(shape, bc="dirichlet"), shape, np)
    n_boundary_faces = np.zeros(shape)
    n_boundary_faces[0, :] += 1
    n_boundary_faces[-1, :] += 1
    n_boundary_faces[:, 0] += 1
    n_boundary_faces[:, -1] += 1
    np.testing.assert_array_equal(A.sum(axis=1), -n_boundary_faces.ravel())


def test_neumann_length_one_axis_differs_from_scipy_by_identity(property_check):
    """Documented difference: scipy's Neumann LaplacianNd on a length-1 axis puts -1 on the
    diagonal (rows do not sum to zero); ours keeps zero row sums, i.e. ours = scipy + k I with k the
    number of length-1 axes."""

    @property_check(np, sst.grids())
    def _(shape):
        k = sum(1 for n in shape if n == 1)
        A = dense_of(ssdops.laplacian(shape, bc="neumann"), shape, np)
        S = scipy_laplacian(shape, "neumann").toarray()
        np.testing.assert_array_equal(A, S + k * np.eye(A.shape[0]))
        np.testing.assert_array_equal(A.sum(axis=1), 0.0)


def test_dirichlet_length_one_axis_still_equals_scipy(property_check):
    @property_check(np, sst.grids())
    def _(shape):
        A = dense_of(ssdops.laplacian(shape, bc="dirichlet"), shape, np)
        np.testing.assert_array_equal(A, scipy_laplacian(shape, "dirichlet").toarray())


@pytest.mark.parametrize("bad", ["periodic", "Neumann", "", None])
def test_laplacian_bad_bc(bad):
    with pytest.raises(ValueError, match="(?s)(neumann.*dirichlet|dirichlet.*neumann)"):
        ssdops.laplacian((3, 3), bc=bad)


# ----------------------------------------------------------------------------------------------
# divergence_form
# ----------------------------------------------------------------------------------------------
GHOSTS = [None, 0.0, 0.7]


@pytest.mark.parametrize("ghost", GHOSTS)
def test_divergence_form_dirichlet_against_assembly(xp, ghost, property_check):
    rng = np.random.default_rng(2)

    @property_check(xp, sst.grids(), fixed=[((3, 4),), ((1, 5),)])
    def _(shape):
        g = random_gamma(rng, shape)
        op = ssdops.divergence_form(asarray(xp, g), bc="dirichlet", ghost_gamma=ghost)
        A = dense_of(op, shape, xp)
        R = ref_divergence_form(g, "dirichlet", ghost).toarray()
        np.testing.assert_allclose(A, R, rtol=1e-13, atol=1e-14)


def test_divergence_form_neumann_against_assembly(xp, property_check):
    rng = np.random.default_rng(3)

    @property_check(xp, sst.grids(), fixed=[((3, 4),), ((1, 5),)])
    def _(shape):
        g = random_gamma(rng, shape)
        A = dense_of(ssdops.divergence_form(asarray(xp, g), bc="neumann"), shape, xp)
        R = ref_divergence_form(g, "neumann").toarray()
        np.testing.assert_allclose(A, R, rtol=1e-13, atol=1e-14)


def test_divergence_form_ghost_conventions_explicit_values():
    """Hand-checked corner / edge centres on a 3x3 grid with gamma = 1 everywhere:
    textbook (ghost None): -4 everywhere; authors (ghost 0): -3 corners, -3.5 edges, -4 inside;
    ghost 0.5: boundary face 0.75."""
    ones = np.ones((3, 3))
    c = lambda ghost: np.diag(dense_of(ssdops.divergence_form(ones, bc="dirichlet", ghost_gamma=ghost), (3, 3),
                                       np)).reshape(3, 3)
    np.testing.assert_array_equal(c(None), np.full((3, 3), -4.0))
    np.testing.assert_array_equal(c(0.0), np.array([[-3, -3.5, -3], [-3.5, -4, -3.5], [-3, -3.5, -3]]))
    np.testing.assert_array_equal(c(0.5), np.array([[-3.5, -3.75, -3.5], [-3.75, -4, -3.75], [-3.5, -3.75, -3.5]]))


@pytest.mark.parametrize("bc,ghost", [("neumann", None), ("dirichlet", None), ("dirichlet", 0.0), ("dirichlet", 0.7)])
def test_divergence_form_symmetric(xp, bc, ghost):
    rng = np.random.default_rng(4)
    shape = (3, 4)
    g = asarray(xp, random_gamma(rng, shape))
    kw = {} if bc == "neumann" else {"ghost_gamma": ghost}
    op = ssdops.divergence_form(g, bc=bc, **kw)
    A = dense_of(op, shape, xp)
    np.testing.assert_allclose(A, A.T, rtol=0, atol=1e-15)
    np.testing.assert_allclose(dense_of(op.T, shape, xp), A, rtol=0, atol=1e-15)
    # negative semi-definite (a diffusion operator), definite under dirichlet
    ev = np.linalg.eigvalsh(A)
    assert ev.max() <= 1e-12
    if bc == "dirichlet":
        assert ev.max() < -1e-8


@pytest.mark.parametrize("bc,ghost", [("neumann", None), ("dirichlet", None), ("dirichlet", 0.0), ("dirichlet", 0.3)])
def test_divergence_form_batched(xp, dtype_name, bc, ghost):
    rng = np.random.default_rng(5)
    shape = (3, 4)
    g = random_gamma(rng, (3,) + shape)
    u = rng.standard_normal((3,) + shape)
    kw = {} if bc == "neumann" else {"ghost_gamma": ghost}
    op = ssdops.divergence_form(asarray(xp, g, dtype_name), bc=bc, **kw)
    assert tuple(op.batch_shape) == (3,)
    assert op.grid_shape == shape
    out = op @ asarray(xp, u, dtype_name)
    assert out.dtype == asarray(xp, u, dtype_name).dtype
    out = to_numpy(out)
    assert out.shape == (3,) + shape
    rtol, atol = tolerance(dtype_name)
    for b in range(3):
        ref = ref_divergence_form(g[b], bc, ghost) @ u[b].ravel()
        np.testing.assert_allclose(out[b].ravel(), ref, rtol=rtol, atol=10 * atol)


@pytest.mark.parametrize("bc", BCS)
def test_divergence_form_float32(xp, bc):
    rng = np.random.default_rng(6)
    shape = (3, 4)
    g = random_gamma(rng, shape)
    op = ssdops.divergence_form(asarray(xp, g, "float32"), bc=bc)
    assert op.dtype == asarray(xp, g, "float32").dtype
    A = dense_of(op, shape, xp, "float32")
    np.testing.assert_allclose(A, ref_divergence_form(g, bc).toarray(), rtol=1e-6, atol=1e-6)


def test_divergence_form_ghost_with_neumann_raises():
    g = np.ones((3, 3))
    for ghost in (0.0, 0.5):
        with pytest.raises(ValueError):
            ssdops.divergence_form(g, bc="neumann", ghost_gamma=ghost)


@pytest.mark.parametrize("bad", ["periodic", "reflect", "Dirichlet"])
def test_divergence_form_bad_bc_names_supported(bad):
    with pytest.raises(ValueError, match="(?s)(neumann.*dirichlet|dirichlet.*neumann)"):
        ssdops.divergence_form(np.ones((3, 3)), bc=bad)


# ----------------------------------------------------------------------------------------------
# gradient / divergence
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bc", BCS)
def test_gradient_against_forward_differences(xp, bc, property_check):
    rng = np.random.default_rng(7)

    @property_check(xp, sst.grids(), fixed=[((3, 4),), ((1, 5),)])
    def _(shape):
        u = rng.standard_normal((2,) + tuple(shape))
        g = to_numpy(ssdops.gradient(asarray(xp, u), bc=bc))
        assert g.shape == (2, 2) + tuple(shape)
        Gy, Gx = ref_gradient_matrices(shape, bc)
        for b in range(2):
            np.testing.assert_allclose(g[b, 0].ravel(), Gy @ u[b].ravel(), rtol=1e-14, atol=1e-14)
            np.testing.assert_allclose(g[b, 1].ravel(), Gx @ u[b].ravel(), rtol=1e-14, atol=1e-14)


def test_gradient_explicit_small_case():
    u = np.array([[1.0, 2.0, 4.0], [7.0, 11.0, 16.0]])
    gn = ssdops.gradient(u, bc="neumann")
    np.testing.assert_array_equal(gn[0], [[6, 9, 12], [0, 0, 0]])
    np.testing.assert_array_equal(gn[1], [[1, 2, 0], [4, 5, 0]])
    gd = ssdops.gradient(u, bc="dirichlet")
    np.testing.assert_array_equal(gd[0], [[6, 9, 12], [-7, -11, -16]])
    np.testing.assert_array_equal(gd[1], [[1, 2, -4], [4, 5, -16]])


@pytest.mark.parametrize("bc", BCS)
def test_divergence_against_minus_gradient_transpose(xp, bc, property_check):
    rng = np.random.default_rng(8)

    @property_check(xp, sst.grids(), fixed=[((3, 4),), ((1, 5),)])
    def _(shape):
        p = rng.standard_normal((2,) + tuple(shape))
        d = to_numpy(ssdops.divergence(asarray(xp, p), bc=bc))
        assert d.shape == tuple(shape)
        Gy, Gx = ref_gradient_matrices(shape, bc)
        ref = -(Gy.T @ p[0].ravel() + Gx.T @ p[1].ravel())
        np.testing.assert_allclose(d.ravel(), ref, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("bc", BCS)
def test_divergence_gradient_dot_test(xp, dtype_name, bc):
    rng = np.random.default_rng(9)
    shape = (3, 4)
    x = asarray(xp, rng.standard_normal(shape), dtype_name)
    y = asarray(xp, rng.standard_normal((2,) + shape), dtype_name)
    forward = lambda u: ssdops.gradient(u, bc=bc)
    adjoint = lambda p: -ssdops.divergence(p, bc=bc)
    rel = float(ssdops.dot_test(forward, adjoint, x, y))
    # float32: the inner products of a 12-pixel grid cancel; 1e-4 is dot_test's own float32 default
    assert 0.0 <= rel <= (1e-4 if dtype_name == "float32" else 1e-12)
    # the same identity, computed here without dot_test
    lhs = np.vdot(to_numpy(forward(x)).astype(np.float64), to_numpy(y).astype(np.float64))
    rhs = np.vdot(to_numpy(x).astype(np.float64), to_numpy(adjoint(y)).astype(np.float64))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4 if dtype_name == "float32" else 1e-12)


def test_dot_test_detects_wrong_adjoint():
    """dot_test must not be a rubber stamp: divergence (without the minus) is not the adjoint."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 4))
    y = rng.standard_normal((2, 4, 4))
    with pytest.raises(AssertionError):
        ssdops.dot_test(lambda u: ssdops.gradient(u), lambda p: ssdops.divergence(p), x, y)


def test_divergence_of_gradient_is_neumann_laplacian(xp, property_check):
    rng = np.random.default_rng(11)

    @property_check(xp, sst.grids(), fixed=[((3, 4),), ((1, 5),)])
    def _(shape):
        u = rng.standard_normal((3,) + tuple(shape))
        ux = asarray(xp, u)
        dg = to_numpy(ssdops.divergence(ssdops.gradient(ux, bc="neumann"), bc="neumann"))
        lap = to_numpy(ssdops.laplacian(shape, bc="neumann", like=ux) @ ux)
        np.testing.assert_allclose(dg, lap, rtol=1e-13, atol=1e-13)
        A = ref_divergence_form(np.ones(shape), "neumann")
        for b in range(3):
            np.testing.assert_allclose(dg[b].ravel(), A @ u[b].ravel(), rtol=1e-13, atol=1e-13)


# ----------------------------------------------------------------------------------------------
# diffusivities
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(DIFFUSIVITIES))
def test_diffusivity_closed_forms(xp, dtype_name, name):
    rng = np.random.default_rng(12)
    s2 = rng.uniform(0.0, 2.0, size=(2, 3, 4))
    s2[0, 0, 0] = 0.0
    f = getattr(ssdops.diffusivity, name)
    for lam in (0.2, 1.0, 3.5):
        x = asarray(xp, s2, dtype_name)
        out = f(x, lam)
        assert out.shape == x.shape
        assert out.dtype == x.dtype
        assert array_api_compat.array_namespace(out) is array_api_compat.array_namespace(x)
        ref = DIFFUSIVITIES[name](s2, lam)
        # float32: the rounding of s2 / lam^2 is amplified by exp(-x) in relative terms by x
        rtol = 1e-6 * (1.0 + s2 / lam**2) if dtype_name == "float32" else 1e-14
        assert np.all(np.abs(to_numpy(out) - ref) <= rtol * np.abs(ref)), name


def test_diffusivity_values_at_zero_gradient():
    z = np.zeros(3)
    np.testing.assert_array_equal(ssdops.diffusivity.perona_malik(z, 0.2), 1.0)
    np.testing.assert_array_equal(ssdops.diffusivity.perona_malik_exp(z, 0.2), 1.0)
    np.testing.assert_array_equal(ssdops.diffusivity.charbonnier(z, 0.2), 1.0)
    np.testing.assert_allclose(ssdops.diffusivity.total_variation(z, 0.2), 5.0, rtol=1e-15)


def test_perona_malik_accepts_callable_diffusivity(xp):
    rng = np.random.default_rng(13)
    u = rng.uniform(0, 1, size=(6, 7))
    calls = []

    def g(s2, lam):
        calls.append(1)
        return 1.0 / (1.0 + (s2 / lam**2) ** 2)  # not one of the built-ins

    ux = asarray(xp, u)
    out = to_numpy(ssdops.perona_malik(ux, steps=3, dt=0.1, lam=0.3, diffusivity=g, bc="neumann"))
    assert calls, "the callable diffusivity was never called"
    ref = pm_reference(u, steps=3, dt=0.1, lam=0.3, bc="neumann", ghost_gamma=None,
                       g=lambda s2, lam: 1.0 / (1.0 + (s2 / lam**2) ** 2))
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-13)
    # a callable equal to a built-in gives the built-in's result
    a = to_numpy(ssdops.perona_malik(ux, steps=2, dt=0.1, lam=0.3, diffusivity=ssdops.diffusivity.charbonnier))
    b = to_numpy(ssdops.perona_malik(ux, steps=2, dt=0.1, lam=0.3, diffusivity="charbonnier"))
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)
