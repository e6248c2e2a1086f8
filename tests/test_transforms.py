"""Operators inside every framework's transforms (issue 19, items 1-3).

- ``SSD`` is a pytree in PyTorch and JAX: ``jit``, ``grad``, ``vmap``, ``jvp``, ``jacfwd`` (``torch.func``:
  ``grad``, ``vmap``, ``jvp``) take operators and equal the eager results and central finite differences;
  an Equinox module holding an operator compiles once for every operator of one shape and gets an SSD
  gradient.
- An operator made by a transform (gradient, cotangent, tangent, vmapped or unflattened copy) carries no
  structural tags, so every reader of the tags (``select_method``, ``.T``, ``+``, ``-``, ``*``,
  ``implicit_step``) answers for the matrix it holds: checked against dense SciPy references.
- ``torch.compile(fullgraph=True, dynamic=True)`` of the public functions that compile, with every
  documented argument type (Python numbers, 0-d tensors, None) and the paper's Perona-Malik arguments: no
  graph break.
"""
import warnings

import numpy as np
import pytest
import scipy.sparse.linalg

import ssdops

GRID = (5, 6)
DT = 0.1
rng = np.random.default_rng(19)
U = rng.standard_normal(GRID)
V = rng.standard_normal((5,) + GRID)  # a direction in the space of FIVE_POINT diagonals


def _dense(op):
    return ssdops.to_scipy(op).toarray()


def _objective_np(diagonals):
    """f(A) = sum((A u)^2) on NumPy diagonals: the reference for gradients by finite differences."""
    return float(np.sum((ssdops.SSD(diagonals) @ U) ** 2))


def _central_difference(diagonals, direction, eps=1e-6):
    return (_objective_np(diagonals + eps * direction) - _objective_np(diagonals - eps * direction)) / (2 * eps)


def _implicit_reference(op, u, dt):
    """(I - dt A)^{-1} u by SciPy's sparse LU on the operator's own matrix."""
    n = u.size
    A = ssdops.to_scipy(op).tocsc()
    return scipy.sparse.linalg.spsolve(scipy.sparse.identity(n, format="csc") - dt * A, u.ravel()).reshape(u.shape)


def _check_tag_readers(g, to_np, L_np):
    """Every reader of the tags on ``g`` (an operator made by a transform, of library arrays) and on the
    SGD step ``L - 0.1 g``, against dense references built from their values alone."""
    assert g.tags == ssdops.Tags()
    assert ssdops.select_method(g) != "spectral"
    g_np = ssdops.SSD(to_np(g.diagonals), g.offsets)
    np.testing.assert_allclose(_dense(ssdops.SSD(to_np(g.T.diagonals), g.T.offsets)), _dense(g_np).T, atol=1e-12)
    step = ssdops.laplacian(GRID, bc="dirichlet", like=g.diagonals) - 0.1 * g
    assert step.tags.laplacian is None and ssdops.select_method(step) != "spectral"
    combo = (2.0 * g) + g
    assert combo.tags == ssdops.Tags()
    step_np = L_np - 0.1 * g_np
    u = rng.standard_normal(GRID)
    like = g.diagonals
    x = ssdops.implicit_step(_as(like, u), step, DT, tol=1e-12)
    np.testing.assert_allclose(to_np(x), _implicit_reference(step_np, u, DT), atol=1e-8)
    x = ssdops.implicit_step(_as(like, u), g, 0.01, tol=1e-12)
    np.testing.assert_allclose(to_np(x), _implicit_reference(g_np, u, 0.01), atol=1e-8)


def _as(like, a):
    """NumPy ``a`` as an array of ``like``'s library and dtype."""
    xp = ssdops.SSD(like).xp
    return xp.asarray(a, dtype=like.dtype)


# --- JAX ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


def _jax_operator(jax, diagonals=None, **kwargs):
    jnp = jax.numpy
    if diagonals is None:
        return ssdops.laplacian(GRID, bc="dirichlet", like=jnp.zeros(1, dtype=jnp.float64))
    return ssdops.SSD(jnp.asarray(diagonals), **kwargs)


def test_jax_jit_takes_an_operator(jax):
    L = _jax_operator(jax)
    u = jax.numpy.asarray(U)
    got = jax.jit(lambda op, v: op @ v)(L, u)
    np.testing.assert_allclose(np.asarray(got), np.asarray(L @ u), atol=1e-14)
    np.testing.assert_allclose(np.asarray(got), (_dense(ssdops.laplacian(GRID, bc="dirichlet")) @ U.ravel())
                               .reshape(GRID), atol=1e-12)
    assert jax.tree_util.tree_structure(L).num_leaves == 1
    # an operator of NumPy arrays too, once JAX is imported: jit makes its diagonals JAX arrays
    L_np = ssdops.laplacian(GRID, bc="dirichlet")
    np.testing.assert_allclose(np.asarray(jax.jit(lambda op, v: op @ v)(L_np, u)), L_np @ U, atol=1e-12)


def test_jax_grad_is_an_untagged_operator_equal_to_finite_differences(jax):
    L = _jax_operator(jax)
    u = jax.numpy.asarray(U)
    g = jax.grad(lambda op: jax.numpy.sum((op @ u) ** 2))(L)
    assert isinstance(g, ssdops.SSD) and g.offsets == L.offsets and g.tags == ssdops.Tags()
    L_np = ssdops.laplacian(GRID, bc="dirichlet")
    expected = _central_difference(L_np.diagonals, V)
    assert float(np.sum(np.asarray(g.diagonals) * V)) == pytest.approx(expected, rel=1e-7)
    # under jit too
    g_jit = jax.jit(jax.grad(lambda op: jax.numpy.sum((op @ u) ** 2)))(L)
    np.testing.assert_allclose(np.asarray(g_jit.diagonals), np.asarray(g.diagonals), atol=1e-12)
    _check_tag_readers(g, np.asarray, L_np)


def test_jax_vmap_over_operators(jax):
    jnp = jax.numpy
    batch = rng.standard_normal((3, 5) + GRID)
    ops = _jax_operator(jax, batch)
    us = jnp.asarray(rng.standard_normal((3,) + GRID))
    got = jax.vmap(lambda op, v: op @ v)(ops, us)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ops @ us), atol=1e-13)
    # a vmapped copy seen inside the function has no tags, and a vmapped result operator neither
    seen = []
    scaled = jax.vmap(lambda op: (seen.append(op.tags), 2.0 * op)[1])(ssdops.SSD(jnp.asarray(batch), symmetric=True))
    assert seen == [ssdops.Tags()] and scaled.tags == ssdops.Tags()
    np.testing.assert_allclose(np.asarray(scaled.diagonals), 2.0 * batch)


def test_jax_jvp_and_jacfwd_over_an_operator(jax):
    jnp = jax.numpy
    L = _jax_operator(jax)
    u = jnp.asarray(U)
    tangent = _jax_operator(jax, V)
    primal, out_tangent = jax.jvp(lambda op: op @ u, (L,), (tangent,))
    np.testing.assert_allclose(np.asarray(primal), np.asarray(L @ u), atol=1e-14)
    np.testing.assert_allclose(np.asarray(out_tangent), np.asarray(tangent @ u), atol=1e-13)  # linear in A
    J = jax.jacfwd(lambda op: op @ u)(L)
    assert isinstance(J, ssdops.SSD) and J.tags == ssdops.Tags()
    contracted = np.tensordot(np.asarray(J.diagonals), V, axes=V.ndim)  # J applied to the direction V
    np.testing.assert_allclose(contracted, np.asarray(tangent @ u), atol=1e-12)


def test_equinox_compiles_once_per_shape_and_gets_an_operator_gradient(jax):
    eqx = pytest.importorskip("equinox")
    jnp = jax.numpy

    class Model(eqx.Module):
        op: ssdops.SSD

        def __call__(self, u):
            return self.op @ u

    traces = []

    @eqx.filter_jit
    def apply(model, u):
        traces.append(1)
        return model(u)

    u = jnp.asarray(U)
    operators = [_jax_operator(jax), _jax_operator(jax, V), ssdops.divergence_form(jnp.asarray(1.0 + U ** 2))]
    for op in operators:
        np.testing.assert_allclose(np.asarray(apply(Model(op), u)), np.asarray(op @ u), atol=1e-13)
    assert len(traces) == 1

    grads = eqx.filter_grad(lambda model: jnp.sum(model(u) ** 2))(Model(operators[0]))
    assert isinstance(grads.op, ssdops.SSD) and grads.op.tags == ssdops.Tags()
    expected = _central_difference(ssdops.laplacian(GRID, bc="dirichlet").diagonals, V)
    assert float(np.sum(np.asarray(grads.op.diagonals) * V)) == pytest.approx(expected, rel=1e-7)


def test_jax_implicit_step_and_heat_under_transforms_equal_eager(jax):
    jnp = jax.numpy
    L = _jax_operator(jax)
    u = jnp.asarray(U)
    eager = ssdops.implicit_step(u, L, DT)  # spectral: tagged
    inside = jax.jit(lambda op, v: ssdops.implicit_step(v, op, DT))(L, u)  # untagged inside: a Krylov solve
    np.testing.assert_allclose(np.asarray(inside), np.asarray(eager), atol=1e-6)
    for method in ("exact", "implicit"):
        heat_eager = ssdops.heat(u, 0.5, method=method, steps=4 if method == "implicit" else None)
        heat_jit = jax.jit(lambda v, m=method: ssdops.heat(v, 0.5, method=m, steps=4 if m == "implicit" else None))(u)
        np.testing.assert_allclose(np.asarray(heat_jit), np.asarray(heat_eager), atol=1e-8)


# --- PyTorch --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _torch_np(x):
    return x.detach().cpu().numpy()


def test_torch_func_grad_is_untagged_and_every_tag_reader_answers_for_its_values(torch):
    """The issue's case: grad of a Dirichlet Laplacian used to keep ``symmetric=True,
    laplacian=("dirichlet", 1.0)``, so implicit_step took the spectral solve and ``g.T`` was ``g``."""
    L = ssdops.laplacian(GRID, bc="dirichlet", like=torch.zeros(1, dtype=torch.float64))
    u = torch.from_numpy(U)
    g = torch.func.grad(lambda op: ((op @ u) ** 2).sum())(L)
    assert isinstance(g, ssdops.SSD) and g.tags == ssdops.Tags()
    L_np = ssdops.laplacian(GRID, bc="dirichlet")
    expected = _central_difference(L_np.diagonals, V)
    assert float(np.sum(_torch_np(g.diagonals) * V)) == pytest.approx(expected, rel=1e-7)
    _check_tag_readers(g, _torch_np, L_np)


def test_torch_func_vmap_and_jvp_over_operators(torch):
    batch = torch.from_numpy(rng.standard_normal((3, 5) + GRID))
    ops = ssdops.SSD(batch, symmetric=True)
    us = torch.from_numpy(rng.standard_normal((3,) + GRID))
    got = torch.func.vmap(lambda op, v: op @ v)(ops, us)
    torch.testing.assert_close(got, ops @ us)
    seen = []
    scaled = torch.func.vmap(lambda op: (seen.append(op.tags), op * 2.0)[1])(ops)
    assert seen == [ssdops.Tags()] and scaled.tags == ssdops.Tags()
    torch.testing.assert_close(scaled.diagonals, 2.0 * batch)

    L = ssdops.laplacian(GRID, bc="dirichlet", like=torch.zeros(1, dtype=torch.float64))
    tangent = ssdops.SSD(torch.from_numpy(V))
    u = torch.from_numpy(U)
    primal, out = torch.func.jvp(lambda op: op @ u, (L,), (tangent,))
    torch.testing.assert_close(primal, L @ u)
    torch.testing.assert_close(out, tangent @ u)
    # an operator-valued jvp: the tangent operator carries no tags
    _, op_tangent = torch.func.jvp(lambda op: 3.0 * op, (L,), (tangent,))
    assert op_tangent.tags == ssdops.Tags()
    torch.testing.assert_close(op_tangent.diagonals, 3.0 * tangent.diagonals)


def test_unflattened_copies_carry_no_tags(torch):
    pytree = torch.utils._pytree
    L = ssdops.laplacian(GRID, bc="dirichlet", like=torch.zeros(1, dtype=torch.float64))
    copy = pytree.tree_map(lambda d: d + 0.0, L)
    assert isinstance(copy, ssdops.SSD) and copy.tags == ssdops.Tags() and L.tags.laplacian == ("dirichlet", 1.0)
    torch.testing.assert_close(copy @ torch.from_numpy(U), L @ torch.from_numpy(U))


# --- torch.compile: every documented argument type, the paper's arguments ---------------------------------
def _compiled_calls(torch):
    """(name, function, arguments, keywords): each public function that compiles, called with each argument
    type it documents (Python numbers, 0-d tensors, None), the numbers passed in, as users call it (with
    ``dynamic=True`` Dynamo makes them symbolic)."""
    u = torch.from_numpy(rng.random((2,) + GRID))
    zeta = torch.from_numpy(0.1 * rng.random((5,) + GRID))
    d = torch.from_numpy(0.1 * rng.standard_normal((5,) + GRID))
    dt_tensor, lam_tensor = torch.tensor(0.1, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64)
    paper = dict(dt=0.1, lam=0.2, bc="dirichlet", ghost_gamma=0.0)  # the authors' Perona-Malik generator
    return [
        ("perona_malik_step paper", ssdops.perona_malik_step, (u,), paper),
        ("perona_malik_step ghost None", ssdops.perona_malik_step, (u,), {**paper, "ghost_gamma": None}),
        ("perona_malik_step tensors", ssdops.perona_malik_step, (u,), dict(dt=dt_tensor, lam=lam_tensor)),
        ("perona_malik paper", ssdops.perona_malik, (u,), dict(steps=4, **paper)),
        ("filter_step number", ssdops.filter_step, (u, zeta, 0.1), {}),
        ("filter_step tensor", ssdops.filter_step, (u, zeta, dt_tensor), {}),
        ("explicit_step number", lambda u, d, dt: ssdops.explicit_step(u, ssdops.SSD(d), dt), (u, d, 0.1), {}),
        ("explicit_step tensor", lambda u, d, dt: ssdops.explicit_step(u, ssdops.SSD(d), dt), (u, d, dt_tensor), {}),
        ("divergence_form paper", lambda u, bc, ghost: ssdops.divergence_form(1.0 + u ** 2, bc=bc, ghost_gamma=ghost)
         @ u, (u, "dirichlet", 0.0), {}),
        ("heat number", ssdops.heat, (u, 0.5), {}),
        ("heat tensor", ssdops.heat, (u, dt_tensor), {}),
        ("implicit_step spectral", lambda u, dt: ssdops.implicit_step(
            u, ssdops.laplacian(GRID, bc="dirichlet", like=u), dt, method="spectral"), (u, 0.1), {}),
    ]


@pytest.mark.parametrize("index", range(12))
def test_compiled_public_functions_have_no_graph_break(torch, index):
    name, fn, args, kwargs = _compiled_calls(torch)[index]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch._dynamo.reset()
        compiled = torch.compile(fn, fullgraph=True, dynamic=True, backend="aot_eager")  # a break raises
        torch.testing.assert_close(compiled(*args, **kwargs), fn(*args, **kwargs), msg=name)
