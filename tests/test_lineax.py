"""ssdops.as_lineax: lineax's own solves and gradients against ssdops' implicit step (issue 20, item 1)."""
import numpy as np
import pytest

import ssdops

lx = pytest.importorskip("lineax")
jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)  # as tests/conftest.py does for the JAX namespace
jnp = jax.numpy

GRID = (6, 7)
DT = 0.3


def _u(shape=GRID, dtype=np.float64, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype=dtype)


def _gamma(shape=GRID, seed=1):
    return jnp.asarray(0.5 + np.random.default_rng(seed).random(shape))


def _cg(tol):
    return lx.CG(rtol=tol, atol=tol, max_steps=500)


@pytest.mark.parametrize("bc, dtype, tol", [("neumann", np.float64, 1e-8), ("dirichlet", np.float64, 1e-8),
                                             ("neumann", np.float32, 1e-4)])
def test_cg_solves_the_implicit_step_with_no_tag_added_by_hand(bc, dtype, tol):
    L = ssdops.laplacian(GRID, bc=bc, like=jnp.zeros(1, dtype=dtype))
    A = ssdops.as_lineax(ssdops.identity(GRID, like=jnp.zeros(1, dtype=dtype)) - DT * L)
    assert lx.is_symmetric(A) and lx.is_positive_semidefinite(A) and not lx.is_negative_semidefinite(A)
    u = _u(dtype=dtype)
    x = lx.linear_solve(A, u, _cg(1e-10 if dtype == np.float64 else 1e-6)).value
    assert x.dtype == dtype and x.shape == GRID
    reference = ssdops.implicit_step(np.asarray(u), ssdops.laplacian(GRID, bc=bc, like=np.zeros(1, dtype)), DT)
    np.testing.assert_allclose(x, reference, rtol=tol, atol=tol)
    np.testing.assert_allclose(A.mv(x), u, rtol=tol, atol=tol)  # the system itself, independently of ssdops


def test_structure_is_the_array_shape_batch_included():
    op = ssdops.divergence_form(_gamma((3, 2) + GRID))
    A = ssdops.as_lineax(op)
    assert A.in_structure() == A.out_structure() == jax.ShapeDtypeStruct((3, 2) + GRID, jnp.float64)
    u = _u((3, 2) + GRID)
    np.testing.assert_allclose(A.mv(u), op @ u, rtol=0, atol=0)
    # the matrix lineax materialises is ssdops' own block-diagonal sparse matrix
    np.testing.assert_allclose(A.as_matrix(), ssdops.to_scipy(ssdops.SSD(np.asarray(op.diagonals))).toarray(),
                               atol=1e-14)


def test_a_batch_of_operators_is_solved_at_once():
    gamma = _gamma((2,) + GRID)
    op = ssdops.divergence_form(gamma, bc="dirichlet")
    u = _u((2,) + GRID)
    x = lx.linear_solve(ssdops.as_lineax(ssdops.identity(GRID, like=u) - DT * op), u, _cg(1e-10)).value
    reference = ssdops.implicit_step(np.asarray(u), ssdops.divergence_form(np.asarray(gamma), bc="dirichlet"), DT,
                                     tol=1e-12)
    np.testing.assert_allclose(x, reference, rtol=1e-8, atol=1e-8)


def test_tags_follow_ssd_tags():
    L = ssdops.laplacian(GRID, like=jnp.zeros(1))
    assert lx.is_negative_semidefinite(ssdops.as_lineax(L)) and not lx.is_positive_semidefinite(ssdops.as_lineax(L))
    assert lx.is_positive_semidefinite(ssdops.as_lineax(-2.0 * L))
    G = ssdops.divergence_form(_gamma())
    assert G.tags.definiteness == "negative_semidefinite" and lx.is_negative_semidefinite(ssdops.as_lineax(G))
    general = ssdops.SSD(jnp.asarray(np.random.default_rng(2).standard_normal((5,) + GRID)))
    A = ssdops.as_lineax(general)
    assert not (lx.is_symmetric(A) or lx.is_positive_semidefinite(A) or lx.is_negative_semidefinite(A))


def test_an_operator_of_unknown_definiteness_is_refused_by_cg():
    # I + dt * L: opposite signs, so no claim (it is in fact indefinite for large dt): lineax must refuse it
    L = ssdops.laplacian(GRID, like=jnp.zeros(1))
    op = ssdops.identity(GRID, like=jnp.zeros(1)) + 2.0 * L
    assert op.tags.definiteness is None and op.tags.symmetric
    with pytest.raises(ValueError, match="positive or negative definite"):
        lx.linear_solve(ssdops.as_lineax(op), _u(), _cg(1e-10))
    # a 0-d array time step may be traced: its sign is not read, so no claim either
    traced = ssdops.identity(GRID, like=jnp.zeros(1)) - jnp.asarray(DT) * L
    with pytest.raises(ValueError, match="positive or negative definite"):
        lx.linear_solve(ssdops.as_lineax(traced), _u(), _cg(1e-10))


def test_transpose_is_the_adapted_transpose():
    general = ssdops.SSD(jnp.asarray(np.random.default_rng(3).standard_normal((2, 5) + GRID)))
    A = ssdops.as_lineax(general)
    u, v = _u((2,) + GRID, seed=4), _u((2,) + GRID, seed=5)
    At = A.transpose()
    assert At.in_structure() == A.out_structure()
    np.testing.assert_allclose(At.mv(v), general.T @ v, rtol=1e-12, atol=1e-12)
    # <A u, v> == <u, A^T v>, and A^T as lineax's own jax.linear_transpose computes it
    np.testing.assert_allclose(jnp.vdot(A.mv(u), v), jnp.vdot(u, At.mv(v)), rtol=1e-12)
    (reference,) = jax.linear_transpose(A.mv, u)(v)
    np.testing.assert_allclose(At.mv(v), reference, rtol=1e-12, atol=1e-12)
    S = ssdops.as_lineax(ssdops.laplacian(GRID, like=jnp.zeros(1)))
    assert S.transpose() is S


def test_numpy_diagonals_are_taken_and_others_refused():
    A = ssdops.as_lineax(ssdops.laplacian(GRID))
    u = _u()
    np.testing.assert_allclose(A.mv(u), ssdops.laplacian(GRID) @ np.asarray(u), atol=1e-14)
    with pytest.raises(TypeError, match="ssdops.SSD"):
        ssdops.as_lineax(np.eye(3))
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="JAX"):
        ssdops.as_lineax(ssdops.laplacian(GRID, like=torch.zeros(1)))


def _solve(gamma, u, bc="dirichlet"):
    op = ssdops.divergence_form(gamma, bc=bc)
    A = ssdops.as_lineax(ssdops.identity(GRID, like=u) - DT * op)
    return lx.linear_solve(A, u, _cg(1e-12)).value


def test_the_solve_runs_under_jit_and_matches_implicit_step():
    gamma, u = _gamma(), _u()
    x = jax.jit(_solve)(gamma, u)
    op = ssdops.divergence_form(np.asarray(gamma), bc="dirichlet")  # the reference: ssdops' NumPy solve
    np.testing.assert_allclose(x, ssdops.implicit_step(np.asarray(u), op, DT, tol=1e-12), rtol=1e-8, atol=1e-8)


def test_the_solve_differentiates_like_finite_differences():
    gamma, u = _gamma(), _u()
    w = _u(seed=7)

    def loss(gamma, u):
        return jnp.vdot(w, _solve(gamma, u))

    g_gamma, g_u = jax.jit(jax.grad(loss, argnums=(0, 1)))(gamma, u)
    # the adjoint of the solve is the solve with the transpose (symmetric here): d/du <w, A^{-1} u> = A^{-1} w
    np.testing.assert_allclose(g_u, _solve(gamma, w), rtol=1e-8, atol=1e-8)
    # central differences along two random directions, float64 (error ~ h^2)
    h = 1e-5
    for seed in (8, 9):
        d = _u(seed=seed)
        fd = (loss(gamma + h * d, u) - loss(gamma - h * d, u)) / (2 * h)
        np.testing.assert_allclose(jnp.vdot(g_gamma, d), fd, rtol=1e-7, atol=1e-8)
