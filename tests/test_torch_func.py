"""torch.func transforms (grad, vmap, jvp, jacrev, jacfwd, functional_call) over every public function on
the PyTorch fast path, for the image and for the operator's diagonals / gamma / dt; higher derivatives of
``implicit_step``; float16 / bfloat16.

References, all computed with plain ``torch.autograd`` (no functorch) on an independent formulation:
the generic array-API path (``backends.use_generic()``) for the explicit operations; a dense solve of
``I - dt A`` (``torch.linalg.solve``, A assembled from unit images) for ``implicit_step``; a dense matrix
exponential for ``heat``. Second derivatives are checked by ``gradgradcheck`` (finite differences) and
against JAX's ``jax.hessian`` on the same problem.
"""
import numpy as np
import pytest

import ssdops
from ssdops import backends
from ssdops._array import is_traced
from ssdops._kernels import apply_generic, perona_malik_diagonals, resolve
from support import FIVE, NINE

torch = pytest.importorskip("torch")
func = torch.func
xp_torch = pytest.importorskip("array_api_compat").array_namespace(torch.empty(0))

GRID = (3, 4)
F64 = torch.float64


def _tensor(a):
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=F64)


def _dense(diagonals, offsets):
    """The matrix of the SSD operator (differentiable in ``diagonals``): its columns are ``A e_j``."""
    H, W = diagonals.shape[-2:]
    basis = torch.eye(H * W, dtype=diagonals.dtype).reshape(H * W, H, W)
    columns = apply_generic(xp_torch, diagonals[..., None, :, :, :], offsets, basis)
    return columns.reshape(columns.shape[:-2] + (H * W,)).transpose(-1, -2)


def _dense_solve(u, diagonals, offsets, dt):
    """``(I - dt A)^{-1} u`` by ``torch.linalg.solve``."""
    H, W = u.shape[-2:]
    M = torch.eye(H * W, dtype=u.dtype) - dt * _dense(diagonals, offsets)
    return torch.linalg.solve(M, u.reshape(u.shape[:-2] + (H * W, 1))).reshape(u.shape)


def _generic(fn):
    def reference(*args):
        with backends.use_generic():
            return fn(*args)
    return reference


def _laplacian_diagonals(bc):
    return ssdops.laplacian(GRID, bc=bc, like=torch.empty(0, dtype=F64)).diagonals


def _divergence_diagonals(gamma):
    with backends.use_generic():
        return ssdops.divergence_form(gamma).diagonals


def _pm_step(u, dt):
    return ssdops.perona_malik_step(u, dt=dt, lam=0.2, bc="dirichlet", ghost_gamma=0.0)


def _pm_explicit_reference(u, dt, steps=1):
    """Perona-Malik steps built here from the generic diagonals and a dense product."""
    for _ in range(steps):
        d = perona_malik_diagonals(xp_torch, u, 0.2, resolve("perona_malik"), "dirichlet", 0.0)
        u = u + dt * (_dense(d, FIVE) @ u.reshape(-1)).reshape(u.shape)
    return u


def _heat_reference(u, T):
    L = _dense(_laplacian_diagonals("neumann"), FIVE)
    return (torch.linalg.matrix_exp(T * L) @ u.reshape(-1)).reshape(u.shape)


rng = np.random.default_rng(12)

#: name -> (function under test, independent reference, arguments, which arguments to differentiate).
#: Every argument is a float64 tensor; argument 0 is the image.
CASES = {
    "op @ u": (lambda u, d: ssdops.SSD(d, NINE) @ u, _generic(lambda u, d: ssdops.SSD(d, NINE) @ u),
               (rng.standard_normal(GRID), rng.standard_normal((9,) + GRID)), (0, 1)),
    "op.T @ u": (lambda u, d: ssdops.SSD(d, NINE).T @ u,
                 lambda u, d: (_dense(d, NINE).T @ u.reshape(-1)).reshape(u.shape),
                 (rng.standard_normal(GRID), rng.standard_normal((9,) + GRID)), (0, 1)),
    "matvec": (lambda u, d: ssdops.SSD(d, NINE).matvec(u),
               lambda u, d: (_dense(d, NINE) @ u.reshape(-1)).reshape(u.shape),
               (rng.standard_normal(GRID), rng.standard_normal((9,) + GRID)), (0, 1)),
    "rmatvec": (lambda u, d: ssdops.SSD(d, NINE).rmatvec(u),
                _generic(lambda u, d: ssdops.SSD(d, NINE).rmatvec(u)),
                (rng.standard_normal(GRID), rng.standard_normal((9,) + GRID)), (0, 1)),
    "filter_step": (ssdops.filter_step, _generic(ssdops.filter_step),
                    (rng.standard_normal(GRID), rng.uniform(0, 0.2, (5,) + GRID), 0.3), (0, 1, 2)),
    "explicit_step": (lambda u, d, dt: ssdops.explicit_step(u, ssdops.SSD(d), dt),
                      lambda u, d, dt: u + dt * (_dense(d, FIVE) @ u.reshape(-1)).reshape(u.shape),
                      (rng.standard_normal(GRID), rng.standard_normal((5,) + GRID), 0.1), (0, 1, 2)),
    "perona_malik_step": (_pm_step, _pm_explicit_reference, (rng.random(GRID), 0.1), (0, 1)),
    "perona_malik": (lambda u, dt: ssdops.perona_malik(u, steps=2, dt=dt, lam=0.2, bc="dirichlet",
                                                       ghost_gamma=0.0),
                     lambda u, dt: _pm_explicit_reference(u, dt, steps=2), (rng.random(GRID), 0.1), (0, 1)),
    "heat": (lambda u, T: ssdops.heat(u, T), _heat_reference, (rng.standard_normal(GRID), 0.4), (0, 1)),
    "implicit_step spectral": (
        lambda u, dt: ssdops.implicit_step(u, ssdops.laplacian(GRID, bc="dirichlet", like=u), dt,
                                           method="spectral"),
        lambda u, dt: _dense_solve(u, _laplacian_diagonals("dirichlet"), FIVE, dt),
        (rng.standard_normal(GRID), 0.7), (0, 1)),
    "implicit_step cg": (
        lambda u, gamma, dt: ssdops.implicit_step(u, ssdops.divergence_form(gamma), dt, method="cg"),
        lambda u, gamma, dt: _dense_solve(u, _divergence_diagonals(gamma), FIVE, dt),
        (rng.standard_normal(GRID), rng.uniform(0.5, 2.0, GRID), 0.7), (0, 1, 2)),
    "implicit_step bicgstab": (
        lambda u, d, dt: ssdops.implicit_step(u, ssdops.SSD(d, NINE), dt, method="bicgstab"),
        lambda u, d, dt: _dense_solve(u, d, NINE, dt),
        (rng.standard_normal(GRID), 0.1 * rng.standard_normal((9,) + GRID), 0.7), (0, 1, 2)),
}

DIFFERENTIATED = [(name, argnum) for name, case in CASES.items() for argnum in case[3]]


def _case(name):
    fn, reference, args, argnums = CASES[name]
    return fn, reference, tuple(_tensor(a) for a in args)


def _replace(args, argnum, value):
    return args[:argnum] + (value,) + args[argnum + 1:]


def _reference_jacobian(reference, args, argnum):
    return torch.autograd.functional.jacobian(lambda x: reference(*_replace(args, argnum, x)), args[argnum])


def _contract(jacobian, tangent, out_ndim):
    """``J t`` for a Jacobian of shape ``out.shape + x.shape``."""
    return torch.tensordot(jacobian, tangent, dims=jacobian.ndim - out_ndim)


def _close(got, want):
    torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name,argnum", DIFFERENTIATED)
def test_grad(name, argnum):
    fn, reference, args = _case(name)
    weight = _tensor(rng.standard_normal(GRID))
    got = func.grad(lambda *a: (fn(*a) * weight).sum(), argnums=argnum)(*args)
    leaves = _replace(args, argnum, args[argnum].clone().requires_grad_())
    (want,) = torch.autograd.grad((reference(*leaves) * weight).sum(), leaves[argnum])
    _close(got, want)


@pytest.mark.parametrize("transform", ["jacrev", "jacfwd"])
@pytest.mark.parametrize("name,argnum", DIFFERENTIATED)
def test_jacobian(name, argnum, transform):
    fn, reference, args = _case(name)
    got = getattr(func, transform)(fn, argnums=argnum)(*args)
    _close(got, _reference_jacobian(reference, args, argnum))


@pytest.mark.parametrize("name,argnum", DIFFERENTIATED)
def test_jvp(name, argnum):
    fn, reference, args = _case(name)
    tangent = _tensor(rng.standard_normal(args[argnum].shape))
    out, out_tangent = func.jvp(lambda x: fn(*_replace(args, argnum, x)), (args[argnum],), (tangent,))
    _close(out, reference(*args))
    _close(out_tangent, _contract(_reference_jacobian(reference, args, argnum), tangent, out.ndim))


@pytest.mark.parametrize("name,argnum", DIFFERENTIATED)
def test_vmap(name, argnum):
    """vmap over any one argument (the image, the diagonals / gamma, dt) equals a loop of references."""
    fn, reference, args = _case(name)
    batch = torch.stack([args[argnum], 1.1 * args[argnum] + 0.01, 0.9 * args[argnum]])
    got = func.vmap(lambda x: fn(*_replace(args, argnum, x)))(batch)
    _close(got, torch.stack([reference(*_replace(args, argnum, x)) for x in batch]))


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if len(case[2]) > 1])
def test_functional_call(name):
    """A module holding the operator's parameters, differentiated by functional_call + grad."""
    fn, reference, args = _case(name)

    class Model(torch.nn.Module):
        def __init__(self, parameters):
            super().__init__()
            self.theta = torch.nn.ParameterList(parameters)

        def forward(self, u):
            return fn(u, *self.theta)

    model = Model([torch.nn.Parameter(a) for a in args[1:]])
    params = {k: v.detach() for k, v in model.named_parameters()}
    weight = _tensor(rng.standard_normal(GRID))
    got = func.grad(lambda p: (func.functional_call(model, p, (args[0],)) * weight).sum())(params)
    leaves = tuple(a.clone().requires_grad_() for a in args[1:])
    want = torch.autograd.grad((reference(args[0], *leaves) * weight).sum(), leaves)
    for (_, value), expected in zip(sorted(got.items(), key=lambda kv: int(kv[0].split(".")[-1])), want):
        _close(value, expected)


def test_the_operator_is_a_pytree():
    """torch.func takes an SSD as an argument: the gradient is an SSD of the same offsets and no structural
    tags (a gradient is not the matrix the tags described), and vmap maps over its diagonals."""
    u = _tensor(rng.standard_normal(GRID))
    op = ssdops.SSD(_tensor(rng.standard_normal((9,) + GRID)), NINE, symmetric=False)
    g = func.grad(lambda op: (op @ u).square().sum())(op)
    assert isinstance(g, ssdops.SSD) and g.offsets == op.offsets and g.tags == ssdops.Tags()
    d = op.diagonals.clone().requires_grad_()
    (want,) = torch.autograd.grad(_generic(lambda d: (ssdops.SSD(d, NINE) @ u).square().sum())(d), d)
    _close(g.diagonals, want)
    ops = ssdops.SSD(torch.stack([op.diagonals, -op.diagonals]), NINE)
    _close(func.vmap(lambda o: o @ u)(ops), torch.stack([op @ u, -(op @ u)]))


def test_is_traced_sees_functorch_wrappers_only():
    x = torch.ones(GRID, dtype=F64)
    seen = []
    func.vmap(lambda v: seen.append(is_traced(v)) or v)(x)
    func.grad(lambda v: seen.append(is_traced(v)) or v.sum())(x)
    func.jvp(lambda v: seen.append(is_traced(v)) or v, (x,), (x,))
    assert seen == [True, True, True]
    assert not is_traced(x) and not is_traced(x.clone().requires_grad_()) and not is_traced(0.5)


def test_host_checks_are_skipped_under_transforms():
    """Eagerly, perona_malik rejects a NaN and an unstable explicit step; under vmap those checks cannot
    read values and are skipped (documented), so the computation goes through."""
    u = _tensor(rng.random(GRID))
    bad = u.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ssdops.perona_malik(bad, steps=1, dt=0.1, lam=0.2)
    out = func.vmap(lambda v: ssdops.perona_malik(v, steps=1, dt=0.1, lam=0.2))(torch.stack([u, bad]))
    assert torch.isnan(out[1]).any() and torch.isfinite(out[0]).all()
    op = ssdops.laplacian(GRID, like=u)
    with pytest.raises(ValueError, match="unstable"):
        ssdops.explicit_step(u, op, 0.3, check_stable=True)
    func.vmap(lambda v: ssdops.explicit_step(v, op, 0.3, check_stable=True))(u[None])


def test_krylov_under_vmap_runs_maxiter_iterations_without_a_convergence_check():
    """Eagerly a solve with too few iterations raises; under vmap it cannot tell and returns the iterate
    after exactly maxiter iterations, the same as an eager solve that only warns."""
    u = _tensor(rng.standard_normal((2,) + GRID))
    op = ssdops.divergence_form(_tensor(rng.uniform(0.5, 2.0, GRID)))
    with pytest.raises(ssdops.ConvergenceError):
        ssdops.implicit_step(u, op, 5.0, method="cg", maxiter=2)
    got = func.vmap(lambda v: ssdops.implicit_step(v, op, 5.0, method="cg", maxiter=2))(u)
    with pytest.warns(ssdops.ConvergenceWarning):
        want = ssdops.implicit_step(u, op, 5.0, method="cg", maxiter=2, on_failure="warn")
    _close(got, want)


# --------------------------------------------------------------------------- higher derivatives


IMPLICIT = ["implicit_step spectral", "implicit_step cg", "implicit_step bicgstab"]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if "bicgstab" in n else n
                                  for n in IMPLICIT])
def test_implicit_step_gradgradcheck(name):
    """Second derivatives for the image, the diagonals (gamma for CG) and dt, by finite differences."""
    fn, _, args = _case(name)
    leaves = tuple(a.clone().requires_grad_() for a in args)
    assert torch.autograd.gradgradcheck(fn, leaves)


@pytest.mark.parametrize("name", IMPLICIT)
def test_implicit_step_hessian_matches_dense(name):
    fn, reference, args = _case(name)
    weight = _tensor(rng.standard_normal(GRID))

    def loss(f):
        return lambda *a: (f(*a).square() * weight).sum()

    got = torch.autograd.functional.hessian(loss(fn), args)
    want = torch.autograd.functional.hessian(loss(reference), args)
    for got_row, want_row in zip(got, want):
        for g, w in zip(got_row, want_row):
            _close(g, w)


def test_implicit_step_second_derivatives_match_jax():
    """Hessian-vector products (grad of grad) through the CG solve, for the image, gamma and dt together,
    in PyTorch and in JAX (x64) on the same problem."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    args = (rng.standard_normal(GRID), rng.uniform(0.5, 2.0, GRID), 0.7)
    direction = (rng.standard_normal(GRID), rng.standard_normal(GRID), 0.3)
    weight = rng.standard_normal(GRID)

    def loss(xp):
        return lambda u, gamma, dt: xp.sum(
            ssdops.implicit_step(u, ssdops.divergence_form(gamma), dt, method="cg") ** 2 * xp.asarray(weight))

    as_jax = [jnp.asarray(a) for a in args]
    _, want = jax.jvp(jax.grad(loss(jnp), argnums=(0, 1, 2)), as_jax, [jnp.asarray(v) for v in direction])
    _, got = torch.autograd.functional.hvp(loss(torch), tuple(_tensor(a) for a in args),
                                           tuple(_tensor(v) for v in direction))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), np.asarray(w), rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------- float16 / bfloat16


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", list(CASES))
def test_half_precision_returns_the_input_dtype(name, dtype):
    """Every function runs in float16 and bfloat16 and returns that dtype, within a few units of its
    rounding of the float64 result."""
    fn, _, args = _case(name)
    half = getattr(torch, dtype)
    args = (args[0], *args[1:])
    got = fn(*(a.to(half) for a in args))
    want = fn(*(a.to(half).double() for a in args))
    assert got.dtype == half
    eps = torch.finfo(half).eps
    scale = float(want.abs().max())
    assert float((got.double() - want).abs().max()) <= 16 * eps * scale
