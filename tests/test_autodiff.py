"""Derivatives of ssdops in PyTorch (autograd) and JAX (jax.grad / vjp / jit / vmap).

The ``torch`` and ``jax`` fixtures (tests/conftest.py) give the framework modules, JAX with x64.
References: torch.autograd.gradcheck and jax.test_util.check_grads (finite differences), and a dense
solve (torch.linalg.solve / jnp.linalg.solve) of I - dt*A with A scattered here, differentiably,
from the diagonals: A[p, p + dy*W + dx] = d_k(p) for in-grid neighbours only.
"""
import numpy as np
import pytest

import ssdops
from support import FIVE, NINE, in_grid_mask, random_nonsymmetric

GRID = (3, 4)
B = 2


# --------------------------------------------------------------------------- helpers
def dense_index(offsets, grid_shape):
    """(sel, flatpos): entry sel of the flattened (K*N) diagonals goes to entry flatpos of the
    flattened (N*N) matrix; out-of-grid neighbours are left out."""
    H, W = grid_shape
    N = H * W
    ii, jj = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    sel, pos = [], []
    for k, (dy, dx) in enumerate(offsets):
        ni, nj = ii + dy, jj + dx
        m = (ni >= 0) & (ni < H) & (nj >= 0) & (nj < W)
        p = (ii * W + jj)[m]
        q = (ni * W + nj)[m]
        sel.append(k * N + p)
        pos.append(p * N + q)
    return np.concatenate(sel), np.concatenate(pos)


# =========================================================================== torch
def t64(torch, a, grad=True):
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64, requires_grad=grad)


def torch_dense_solve(torch, d, offsets, u, dt):
    """x = (I - dt A)^{-1} u per image with a dense, differentiable A assembled from d."""
    K, H, W = d.shape[-3:]
    N = H * W
    sel, pos = dense_index(offsets, (H, W))
    batch = torch.broadcast_shapes(d.shape[:-3], u.shape[:-2])
    dd = d.expand(batch + (K, H, W)).reshape(-1, K * N)
    uu = u.expand(batch + (H, W)).reshape(-1, N)
    A = torch.zeros(dd.shape[0], N * N, dtype=d.dtype).index_add(
        1, torch.as_tensor(pos), dd[:, torch.as_tensor(sel)]
    ).reshape(-1, N, N)
    M = torch.eye(N, dtype=d.dtype) - dt * A
    return torch.linalg.solve(M, uu.unsqueeze(-1)).squeeze(-1).reshape(batch + (H, W))


def graph_size(t):
    seen, stack = set(), [t.grad_fn]
    while stack:
        n = stack.pop()
        if n is None or n in seen:
            continue
        seen.add(n)
        stack.extend(f for f, _ in n.next_functions)
    return len(seen)


@pytest.mark.parametrize("offsets", [FIVE, NINE], ids=["five", "nine"])
def test_torch_gradcheck_apply(torch, offsets):
    rng = np.random.default_rng(0)
    u = t64(torch, rng.standard_normal((B,) + GRID))
    d = t64(torch, rng.standard_normal((B, len(offsets)) + GRID))
    assert torch.autograd.gradcheck(lambda u, d: ssdops.SSD(d, offsets) @ u, (u, d))
    assert torch.autograd.gradcheck(lambda u, d: ssdops.SSD(d, offsets).matvec(u), (u, d))


@pytest.mark.parametrize("offsets", [FIVE, NINE], ids=["five", "nine"])
def test_torch_gradcheck_transpose(torch, offsets):
    rng = np.random.default_rng(1)
    u = t64(torch, rng.standard_normal((B,) + GRID))
    d = t64(torch, rng.standard_normal((B, len(offsets)) + GRID))
    assert torch.autograd.gradcheck(lambda u, d: ssdops.SSD(d, offsets).T @ u, (u, d))
    assert torch.autograd.gradcheck(lambda u, d: ssdops.SSD(d, offsets).rmatvec(u), (u, d))


def test_torch_apply_garbage_diagonals_get_zero_gradient(torch):
    rng = np.random.default_rng(2)
    u = t64(torch, rng.standard_normal(GRID))
    d = t64(torch, rng.standard_normal((len(NINE),) + GRID))
    (ssdops.SSD(d, NINE) @ u).sum().backward()
    g = d.grad.numpy()
    mask = ~in_grid_mask(NINE, GRID)
    np.testing.assert_array_equal(g[mask], 0.0)
    assert np.all(g[~mask] != 0.0)


def test_torch_gradcheck_filters_explicit_step(torch):
    rng = np.random.default_rng(3)
    zeta = t64(torch, rng.uniform(0.0, 0.2, (B, 5) + GRID))
    u = t64(torch, rng.standard_normal((B,) + GRID))
    dt = t64(torch, 0.3)
    assert torch.autograd.gradcheck(
        lambda z, u, dt: ssdops.explicit_step(u, ssdops.ssd_from_filters(z), dt), (zeta, u, dt)
    )
    assert torch.autograd.gradcheck(
        lambda z, u, dt: ssdops.explicit_step(u, ssdops.ssd_from_filters(z, dt=dt), 1.0),
        (zeta, u, dt),
    )


def test_torch_filters_explicit_step_values(torch):
    """explicit_step(u, W_dt(zeta), 1) = u + dt*(z1 u_up + z2 u_left + z3 u_down + z4 u_right - z5 u)."""
    rng = np.random.default_rng(4)
    z = rng.uniform(0.0, 0.2, (5,) + GRID)
    u = rng.standard_normal(GRID)
    up, left, down, right = (np.zeros_like(u) for _ in range(4))
    up[1:], left[:, 1:], down[:-1], right[:, :-1] = u[:-1], u[:, :-1], u[1:], u[:, 1:]
    expect = u + 0.3 * (z[0] * up + z[1] * left + z[2] * down + z[3] * right - z[4] * u)
    got = ssdops.explicit_step(t64(torch, u, False), ssdops.ssd_from_filters(t64(torch, z, False), dt=0.3), 1.0)
    np.testing.assert_allclose(got.numpy(), expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
@pytest.mark.parametrize("method", ["cg", "auto"])
def test_torch_gradcheck_implicit_cg_divergence_form(torch, bc, method):
    rng = np.random.default_rng(5)
    u = t64(torch, rng.standard_normal((B,) + GRID))
    gamma = t64(torch, rng.uniform(0.5, 2.0, (B,) + GRID))
    dt = t64(torch, 0.7)

    def f(u, gamma, dt):
        return ssdops.implicit_step(u, ssdops.divergence_form(gamma, bc=bc), dt, method=method)

    assert torch.autograd.gradcheck(f, (u, gamma, dt))


@pytest.mark.parametrize("offsets", [FIVE, NINE], ids=["five", "nine"])
def test_torch_gradcheck_implicit_bicgstab(torch, offsets):
    rng = np.random.default_rng(6)
    u = t64(torch, rng.standard_normal((B,) + GRID))
    d = t64(torch, random_nonsymmetric(rng, offsets, GRID, (B,)))
    dt = t64(torch, 0.4)

    def f(u, d, dt):
        return ssdops.implicit_step(u, ssdops.SSD(d, offsets), dt, method="bicgstab")

    assert torch.autograd.gradcheck(f, (u, d, dt), fast_mode=True)


@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
def test_torch_gradcheck_implicit_spectral(torch, bc):
    rng = np.random.default_rng(7)
    u = t64(torch, rng.standard_normal((B,) + GRID))
    dt = t64(torch, 0.9)

    def f(u, dt):
        return ssdops.implicit_step(u, 2.0 * ssdops.laplacian(GRID, bc=bc, like=u), dt,
                                    method="spectral")

    assert torch.autograd.gradcheck(f, (u, dt), fast_mode=True)


@pytest.mark.parametrize("kind", ["nonsym5", "nonsym9", "div_dirichlet", "nonsym5_batched_op"])
def test_torch_adjoint_solve_identity(torch, kind):
    """d<w, x>/du = implicit_step(w, op.T, dt) for x = implicit_step(u, op, dt)."""
    rng = np.random.default_rng(8)
    grid = (4, 5)
    if kind == "div_dirichlet":
        op = ssdops.divergence_form(t64(torch, rng.uniform(0.5, 2.0, grid), False), bc="dirichlet")
    else:
        offs = NINE if kind == "nonsym9" else FIVE
        batch = (B,) if kind.endswith("batched_op") else ()
        op = ssdops.SSD(t64(torch, random_nonsymmetric(rng, offs, grid, batch), False), offs)
    u = t64(torch, rng.standard_normal((B,) + grid))
    w = t64(torch, rng.standard_normal((B,) + grid), False)
    x = ssdops.implicit_step(u, op, 1.5)
    (g,) = torch.autograd.grad((w * x).sum(), u)
    expect = ssdops.implicit_step(w, op.T, 1.5)
    np.testing.assert_allclose(g.numpy(), expect.detach().numpy(), rtol=1e-9, atol=1e-10)
    # and op.T's solve really is the transpose solve (not op's own) for a non-symmetric op
    if kind.startswith("nonsym"):
        not_expect = ssdops.implicit_step(w, op, 1.5).detach().numpy()
        assert np.abs(not_expect - g.numpy()).max() > 1e-3


@pytest.mark.parametrize("offsets", [FIVE, NINE], ids=["five", "nine"])
@pytest.mark.parametrize("op_batched", [False, True])
def test_torch_implicit_grad_matches_dense_solve_bicgstab(torch, offsets, op_batched):
    rng = np.random.default_rng(9)
    grid = (4, 3)
    batch = (B,) if op_batched else ()
    u = t64(torch, rng.standard_normal((B,) + grid))
    d = t64(torch, random_nonsymmetric(rng, offsets, grid, batch))
    dt = t64(torch, 0.8)
    w = t64(torch, rng.standard_normal((B,) + grid), False)
    x = ssdops.implicit_step(u, ssdops.SSD(d, offsets), dt, method="bicgstab")
    g = torch.autograd.grad((w * x).sum(), (u, d, dt))
    xr = torch_dense_solve(torch, d, offsets, u, dt)
    gr = torch.autograd.grad((w * xr).sum(), (u, d, dt))
    np.testing.assert_allclose(x.detach().numpy(), xr.detach().numpy(), rtol=1e-9, atol=1e-10)
    for a, b, name in zip(g, gr, ("u", "diagonals", "dt")):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-8, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
def test_torch_implicit_grad_matches_dense_solve_cg(torch, bc):
    rng = np.random.default_rng(10)
    grid = (3, 5)
    u = t64(torch, rng.standard_normal((B,) + grid))
    gamma = t64(torch, rng.uniform(0.5, 2.0, (B,) + grid))
    dt = t64(torch, 1.2)
    w = t64(torch, rng.standard_normal((B,) + grid), False)
    op = ssdops.divergence_form(gamma, bc=bc)
    x = ssdops.implicit_step(u, op, dt, method="cg")
    g = torch.autograd.grad((w * x).sum(), (u, gamma, dt))
    op = ssdops.divergence_form(gamma, bc=bc)
    xr = torch_dense_solve(torch, op.diagonals, tuple(map(tuple, op.offsets)), u, dt)
    gr = torch.autograd.grad((w * xr).sum(), (u, gamma, dt))
    for a, b, name in zip(g, gr, ("u", "gamma", "dt")):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-8, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("method", ["bicgstab", "cg"])
def test_torch_backward_does_not_unroll_iterations(torch, method):
    """The autograd graph of x has the same (small) size whether the solve took 2 or 40 iterations."""
    rng = np.random.default_rng(11)
    grid = (8, 8)
    u = t64(torch, rng.standard_normal(grid))
    if method == "cg":
        gamma = t64(torch, rng.uniform(0.5, 2.0, grid))
        make = lambda: ssdops.divergence_form(gamma, bc="dirichlet")  # noqa: E731
        leaves = (u, gamma)
    else:
        d = t64(torch, random_nonsymmetric(rng, FIVE, grid))
        make = lambda: ssdops.SSD(d, FIVE)  # noqa: E731
        leaves = (u, d)
    easy, hard = 1e-6, 20.0
    # the hard system really needs more than 5 iterations, the easy one does not
    ssdops.implicit_step(u.detach(), ssdops.SSD(make().diagonals.detach(), make().offsets), easy,
                         method=method, maxiter=5)
    with pytest.raises(ssdops.ConvergenceError):
        ssdops.implicit_step(u.detach(), ssdops.SSD(make().diagonals.detach(), make().offsets),
                             hard, method=method, maxiter=5)
    x_easy = ssdops.implicit_step(u, make(), easy, method=method)
    x_hard = ssdops.implicit_step(u, make(), hard, method=method)
    n_easy, n_hard = graph_size(x_easy), graph_size(x_hard)
    assert n_easy == n_hard, (n_easy, n_hard)
    assert n_hard <= 40, n_hard
    # and backward still works and reaches every leaf
    grads = torch.autograd.grad(x_hard.sum(), leaves)
    assert all(torch.isfinite(g).all() for g in grads)


def test_torch_no_grad_needed_for_plain_inputs(torch):
    """No requires_grad anywhere: the result carries no graph."""
    rng = np.random.default_rng(12)
    u = t64(torch, rng.standard_normal(GRID), False)
    op = ssdops.divergence_form(t64(torch, rng.uniform(0.5, 2.0, GRID), False))
    x = ssdops.implicit_step(u, op, 0.5)
    assert x.grad_fn is None and not x.requires_grad


@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
def test_torch_heat_exact_gradcheck_and_self_adjoint(torch, bc):
    rng = np.random.default_rng(13)
    u = t64(torch, rng.standard_normal((B,) + GRID))
    assert torch.autograd.gradcheck(lambda u: ssdops.heat(u, 0.6, bc=bc, method="exact"), (u,),
                                    fast_mode=True)
    # exp(T L) is symmetric: the gradient of <w, heat(u)> is heat(w)
    w = t64(torch, rng.standard_normal((B,) + GRID), False)
    (g,) = torch.autograd.grad((w * ssdops.heat(u, 0.6, bc=bc, method="exact")).sum(), u)
    np.testing.assert_allclose(g.numpy(), ssdops.heat(w, 0.6, bc=bc, method="exact").numpy(),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [dict(bc="neumann"), dict(bc="dirichlet"), dict(bc="dirichlet", ghost_gamma=0.0),
     dict(bc="neumann", diffusivity="charbonnier"),
     dict(bc="neumann", scheme="semi-implicit", dt=1.0)],
    ids=["neumann", "dirichlet", "authors", "charbonnier", "semi-implicit"],
)
def test_torch_perona_malik_gradcheck(torch, kwargs):
    rng = np.random.default_rng(14)
    u = t64(torch, rng.uniform(0.0, 1.0, (B,) + GRID))
    kw = dict(steps=2, dt=0.1, lam=0.5)
    kw.update(kwargs)
    assert torch.autograd.gradcheck(lambda u: ssdops.perona_malik(u, **kw), (u,))


# =========================================================================== jax
def j64(jax, a):
    return jax.numpy.asarray(np.asarray(a, dtype=np.float64))


def check_rev(jax, f, args):
    from jax.test_util import check_grads

    check_grads(f, args, order=1, modes=["rev"])


def jax_dense_solve(jax, d, offsets, u, dt):
    jnp = jax.numpy
    K, H, W = d.shape[-3:]
    N = H * W
    sel, pos = dense_index(offsets, (H, W))
    batch = tuple(np.broadcast_shapes(d.shape[:-3], u.shape[:-2]))
    dd = jnp.broadcast_to(d, batch + (K, H, W)).reshape(-1, K * N)
    uu = jnp.broadcast_to(u, batch + (H, W)).reshape(-1, N)
    A = jnp.zeros((dd.shape[0], N * N), d.dtype).at[:, pos].add(dd[:, sel]).reshape(-1, N, N)
    M = jnp.eye(N, dtype=d.dtype) - dt * A
    return jnp.linalg.solve(M, uu[..., None])[..., 0].reshape(batch + (H, W))


@pytest.mark.parametrize("offsets", [FIVE, NINE], ids=["five", "nine"])
def test_jax_check_grads_apply(jax, offsets):
    rng = np.random.default_rng(20)
    u = j64(jax, rng.standard_normal((B,) + GRID))
    d = j64(jax, rng.standard_normal((B, len(offsets)) + GRID))
    check_rev(jax, lambda u, d: ssdops.SSD(d, offsets) @ u, (u, d))
    check_rev(jax, lambda u, d: ssdops.SSD(d, offsets).T @ u, (u, d))
    # garbage out-of-grid diagonals get exactly zero gradient
    g = jax.grad(lambda d: (ssdops.SSD(d, offsets) @ u).sum())(d)
    np.testing.assert_array_equal(np.asarray(g)[:, ~in_grid_mask(offsets, GRID)], 0.0)


# JAX: every eager call of a Krylov solve traces and compiles (0.5-3 s), so the JAX list is shorter than
# the torch one; torch covers the parametrisations, JAX each code path once.
def test_jax_check_grads_implicit_bicgstab(jax, offsets=FIVE):
    rng = np.random.default_rng(21)
    u = j64(jax, rng.standard_normal((B,) + GRID))
    d = j64(jax, random_nonsymmetric(rng, offsets, GRID, (B,)))
    dt = j64(jax, 0.6)
    check_rev(jax, lambda u, d, dt: ssdops.implicit_step(u, ssdops.SSD(d, offsets), dt,
                                                         method="bicgstab"), (u, d, dt))


def test_jax_check_grads_implicit_cg(jax, bc="dirichlet"):
    rng = np.random.default_rng(22)
    u = j64(jax, rng.standard_normal((B,) + GRID))
    gamma = j64(jax, rng.uniform(0.5, 2.0, (B,) + GRID))
    dt = j64(jax, 0.8)
    check_rev(jax, lambda u, g, dt: ssdops.implicit_step(u, ssdops.divergence_form(g, bc=bc), dt,
                                                         method="cg"), (u, gamma, dt))


def test_jax_check_grads_implicit_spectral(jax, bc="dirichlet"):
    """The DST path (the DCT one is covered by torch and by the JAX heat tests)."""
    rng = np.random.default_rng(23)
    u = j64(jax, rng.standard_normal((B,) + GRID))
    dt = j64(jax, 0.8)
    # the operator is built from u inside f: check_grads evaluates f on NumPy copies for its
    # finite differences, and NumPy images with a JAX operator are (rightly) a mixed-library error
    check_rev(jax, lambda u, dt: ssdops.implicit_step(u, ssdops.laplacian(GRID, bc=bc, like=u), dt,
                                                      method="spectral"), (u, dt))


@pytest.mark.parametrize("kind", ["bicgstab", "cg"])
def test_jax_grad_matches_dense_solve_and_adjoint(jax, kind):
    jnp = jax.numpy
    rng = np.random.default_rng(24)
    grid = (4, 3)
    u = j64(jax, rng.standard_normal((B,) + grid))
    w = j64(jax, rng.standard_normal((B,) + grid))
    dt = j64(jax, 1.1)
    if kind == "bicgstab":
        p = j64(jax, random_nonsymmetric(rng, NINE, grid, (B,)))
        make = lambda p: ssdops.SSD(p, NINE)  # noqa: E731
    else:
        p = j64(jax, rng.uniform(0.5, 2.0, (B,) + grid))
        make = lambda p: ssdops.divergence_form(p, bc="dirichlet")  # noqa: E731

    def loss(u, p, dt):
        return jnp.sum(w * ssdops.implicit_step(u, make(p), dt, method=kind))

    def loss_dense(u, p, dt):
        op = make(p)
        return jnp.sum(w * jax_dense_solve(jax, op.diagonals, tuple(map(tuple, op.offsets)), u, dt))

    # jit(grad) (eager grad is covered by check_grads above)
    g = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(u, p, dt)
    gr = jax.grad(loss_dense, argnums=(0, 1, 2))(u, p, dt)
    for a, b, name in zip(g, gr, ("u", "params", "dt")):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-8, atol=1e-9, err_msg=name)
    # adjoint-solve identity
    op = make(p)
    np.testing.assert_allclose(np.asarray(g[0]),
                               np.asarray(ssdops.implicit_step(w, op.T, dt, method=kind)),
                               rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("method", ["bicgstab", "cg"])
def test_jax_solve_is_a_custom_linear_solve(jax, method):
    """Reverse mode comes from a custom rule (lax.custom_linear_solve per the spec, or a custom vjp),
    not from differentiating the iterations."""
    rng = np.random.default_rng(25)
    u = j64(jax, rng.standard_normal(GRID))
    if method == "cg":
        op = ssdops.divergence_form(j64(jax, rng.uniform(0.5, 2.0, GRID)))
    else:
        op = ssdops.SSD(j64(jax, random_nonsymmetric(rng, FIVE, GRID)), FIVE)
    text = str(jax.make_jaxpr(lambda u: ssdops.implicit_step(u, op, 0.5, method=method))(u))
    assert "custom_linear_solve" in text or "custom_vjp" in text, text[:2000]


@pytest.mark.parametrize("method", ["auto", "bicgstab"])
def test_jax_vmap_over_u(jax, method):
    jnp = jax.numpy
    rng = np.random.default_rng(26)
    grid = (4, 5)
    U = j64(jax, rng.standard_normal((3,) + grid))
    if method == "bicgstab":
        op = ssdops.SSD(j64(jax, random_nonsymmetric(rng, FIVE, grid)), FIVE)
    else:
        op = ssdops.divergence_form(j64(jax, rng.uniform(0.5, 2.0, grid)))
    f = lambda u: ssdops.implicit_step(u, op, 0.9, method=method)  # noqa: E731
    xv = jax.vmap(f)(U)
    ref = jax_dense_solve(jax, op.diagonals, tuple(map(tuple, op.offsets)), U, 0.9)
    np.testing.assert_allclose(np.asarray(xv), np.asarray(ref), rtol=1e-9, atol=1e-10)
    # vmap of grad: the adjoint solve per image
    W = j64(jax, rng.standard_normal((3,) + grid))
    gv = jax.vmap(jax.grad(lambda u, w: jnp.sum(w * f(u))))(U, W)
    ref_t = jax_dense_solve(jax, op.T.diagonals, tuple(map(tuple, op.T.offsets)), W, 0.9)
    np.testing.assert_allclose(np.asarray(gv), np.asarray(ref_t), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
def test_jax_heat_exact_grad(jax, bc):
    jnp = jax.numpy
    rng = np.random.default_rng(27)
    u = j64(jax, rng.standard_normal((B,) + GRID))
    if bc == "neumann":
        check_rev(jax, lambda u: ssdops.heat(u, 0.6, bc=bc, method="exact"), (u,))
    w = j64(jax, rng.standard_normal((B,) + GRID))
    g = jax.grad(lambda u: jnp.sum(w * ssdops.heat(u, 0.6, bc=bc, method="exact")))(u)
    np.testing.assert_allclose(np.asarray(g), np.asarray(ssdops.heat(w, 0.6, bc=bc, method="exact")),
                               rtol=1e-10, atol=1e-12)


def test_jax_perona_malik_grad(jax):
    """The authors' explicit scheme; the semi-implicit one is checked against torch below."""
    kwargs = dict(bc="dirichlet", ghost_gamma=0.0)
    rng = np.random.default_rng(28)
    u = j64(jax, rng.uniform(0.0, 1.0, (B,) + GRID))
    kw = dict(steps=2, dt=0.1, lam=0.5)
    kw.update(kwargs)
    check_rev(jax, lambda u: ssdops.perona_malik(u, **kw), (u,))


def test_jax_perona_malik_grad_under_jit(jax):
    """With the value checks switched off, perona_malik is jit-able end to end and its gradient
    equals the eager one."""
    jnp = jax.numpy
    rng = np.random.default_rng(29)
    u = j64(jax, rng.uniform(0.0, 1.0, (B,) + GRID))
    kw = dict(steps=2, dt=0.1, lam=0.5, bc="dirichlet", ghost_gamma=0.0, check_finite=False,
              check_stable=False)
    loss = lambda u: jnp.sum(ssdops.perona_malik(u, **kw) ** 2)  # noqa: E731
    np.testing.assert_allclose(np.asarray(jax.jit(jax.grad(loss))(u)), np.asarray(jax.grad(loss)(u)),
                               rtol=1e-12, atol=1e-13)


def test_torch_and_jax_gradients_agree(torch, jax):
    """Same implicit Perona-Malik loss, same gradient in both frameworks."""
    jnp = jax.numpy
    rng = np.random.default_rng(30)
    u0 = rng.uniform(0.0, 1.0, (B,) + GRID)
    kw = dict(steps=2, dt=0.5, lam=0.3, bc="neumann", scheme="semi-implicit")
    ut = t64(torch, u0)
    (gt,) = torch.autograd.grad((ssdops.perona_malik(ut, **kw) ** 2).sum(), ut)
    gj = jax.grad(lambda u: jnp.sum(ssdops.perona_malik(u, **kw) ** 2))(j64(jax, u0))
    np.testing.assert_allclose(gt.numpy(), np.asarray(gj), rtol=1e-8, atol=1e-10)
