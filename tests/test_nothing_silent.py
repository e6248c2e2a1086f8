"""Bad numbers never come back looking good (issue 11, items 2, 3, 7, 8): non-finite inputs under
tracing, convergence judged on the true residual, explicit heat that damps every mode, no dtype drift.

The argument checks themselves (the same exception in every library and backend) are in
tests/test_bad_input.py.
"""
import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import ssdops
from ssdops import _kernels
from ssdops.solvers import SolveInfo
from support import asarray, rel_err, to_numpy

GRID = (6, 7)


def _divergence_matrix(gamma):
    """(I - dt A) pieces in scipy: the 5-point divergence-form operator with Neumann faces (independent
    of ssdops: face diffusivities are the means of the two pixels' gamma)."""
    H, W = gamma.shape
    n = H * W
    A = sp.lil_matrix((n, n))
    for i in range(H):
        for j in range(W):
            p = i * W + j
            for di, dj in ((1, 0), (0, 1)):
                k, m = i + di, j + dj
                if k < H and m < W:
                    q = k * W + m
                    g = (gamma[i, j] + gamma[k, m]) / 2
                    A[p, q] += g
                    A[q, p] += g
                    A[p, p] -= g
                    A[q, q] -= g
    return A.tocsr()


def _true_residual(gamma, u, dt, x):
    """Per image ||u - (I - dt A) x|| / ||u|| in float64."""
    A = _divergence_matrix(np.asarray(gamma, np.float64))
    u2 = np.asarray(u, np.float64).reshape(-1, A.shape[0])
    x2 = np.asarray(x, np.float64).reshape(-1, A.shape[0])
    r = u2 - (x2 - dt * (A @ x2.T).T)
    return np.linalg.norm(r, axis=1) / np.linalg.norm(u2, axis=1)


# --- item 2: non-finite input under tracing gives NaN, never zeros --------------------------------
@pytest.fixture
def jit_solve(jax):
    import jax.numpy as jnp

    gamma = jnp.asarray(np.random.default_rng(1).uniform(0.5, 1.5, GRID))

    def solve(u, dt, method):
        op = ssdops.laplacian(GRID, like=u) if method == "spectral" else ssdops.divergence_form(gamma)
        return ssdops.implicit_step(u, op, dt, method=method)

    return jax.jit(solve, static_argnames="method"), jnp


@pytest.mark.parametrize("method", ["cg", "bicgstab", "spectral"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_jit_nonfinite_image_is_nan_others_exact(jit_solve, method, bad):
    """Under jax.jit a check cannot raise: the bad image of a batch comes back all NaN (never the solver's
    zeros), and the other images equal the eager solution."""
    solve, jnp = jit_solve
    u = np.random.default_rng(2).uniform(size=(3,) + GRID)
    good = np.asarray(solve(jnp.asarray(u), 0.5, method))
    u[1, 2, 3] = bad
    x = np.asarray(solve(jnp.asarray(u), 0.5, method))
    assert np.all(np.isnan(x[1]))
    np.testing.assert_allclose(x[[0, 2]], good[[0, 2]], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="NaN or inf"):  # the same call eagerly
        ssdops.implicit_step(jnp.asarray(u), ssdops.laplacian(GRID, like=jnp.asarray(u))
                             if method == "spectral" else ssdops.divergence_form(jnp.ones(GRID)), 0.5,
                             method=method)


@pytest.mark.parametrize("method", ["cg", "bicgstab", "spectral"])
@pytest.mark.parametrize("dt", [math.nan, math.inf, -0.5])
def test_jit_bad_dt_is_nan(jit_solve, method, dt):
    solve, jnp = jit_solve
    u = jnp.asarray(np.random.default_rng(3).uniform(size=(2,) + GRID))
    x = np.asarray(solve(u, jnp.asarray(dt), method))
    assert np.all(np.isnan(x))


def test_jit_indefinite_spectral_system_is_nan(jit_solve):
    """(I - dt (-L)) is indefinite for dt > 1/|lambda_min|: NaN under jit, ValueError eagerly."""
    _, jnp = jit_solve
    import jax

    u = jnp.asarray(np.random.default_rng(4).uniform(size=GRID))
    step = jax.jit(lambda u, dt: ssdops.implicit_step(u, -1.0 * ssdops.laplacian(GRID, like=u), dt))
    assert np.all(np.isnan(np.asarray(step(u, 1.0))))
    assert not np.any(np.isnan(np.asarray(step(u, 0.05))))  # 1 - 0.05 * 8 > 0: a valid system
    with pytest.raises(ValueError, match="indefinite"):
        ssdops.implicit_step(u, -1.0 * ssdops.laplacian(GRID, like=u), 1.0)


def test_spectral_singularity_is_judged_on_true_eigenvalues():
    """c = -1, dt = 0.13: 1 - dt c lambda > 0 for every eigenvalue of the 6x7 Neumann Laplacian
    (lambda >= -7.53), though not for the -8 a naive bound would use: solvable, and correct."""
    u = np.random.default_rng(5).uniform(size=GRID)
    op = -1.0 * ssdops.laplacian(GRID)
    dt = 0.13
    x = ssdops.implicit_step(u, op, dt)
    lowest = min(np.linalg.eigvalsh(ssdops.to_scipy(ssdops.laplacian(GRID)).toarray()))
    assert 1 + dt * lowest > 0 and 1 + dt * -8 < 0
    M = np.eye(42) + dt * ssdops.to_scipy(ssdops.laplacian(GRID)).toarray()
    np.testing.assert_allclose(x.ravel(), np.linalg.solve(M, u.ravel()), rtol=1e-9)


def test_torch_autograd_nonfinite_raises(torch):
    u = np.random.default_rng(6).uniform(size=(2,) + GRID)
    u[0, 1, 1] = math.nan
    ut = torch.tensor(u, requires_grad=True)
    gamma = torch.ones(GRID, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="NaN or inf"):
        ssdops.implicit_step(ut, ssdops.divergence_form(gamma), 0.5)
    with pytest.raises(ValueError, match="finite"):
        ssdops.implicit_step(ut.detach()[1:], ssdops.divergence_form(gamma), torch.tensor(math.nan))


# --- item 3: convergence is judged on the true residual -------------------------------------------
def test_solver_claiming_convergence_is_checked(monkeypatch):
    """A Krylov loop that claims convergence without moving is caught: ConvergenceError with the true
    residual of the returned iterate (x = 0: residual 1)."""

    def lying_solver(xp, matvec, b, x0, *, tol, maxiter):
        return x0, SolveInfo(iterations=0, converged=True)

    monkeypatch.setitem(_kernels.KRYLOV, "cg", lying_solver)
    u = np.random.default_rng(7).uniform(size=GRID)
    with pytest.raises(ssdops.ConvergenceError, match=r"residual of 1 \("):
        ssdops.implicit_step(u, ssdops.divergence_form(np.ones(GRID)), 0.5, method="cg")


@pytest.mark.parametrize("method", ["cg", "bicgstab"])
def test_float32_large_step_true_residual_within_tol(method):
    """float32, 96x96, dt = 100 (||dt A|| ~ 800): the recurrence drifts from the true residual; the
    returned x meets tol by its float64 residual, or the call says it does not (never a silent miss)."""
    rng = np.random.default_rng(8)
    gamma = rng.uniform(0.5, 1.5, (96, 96))
    u = rng.standard_normal((2, 96, 96))
    op = ssdops.divergence_form(gamma.astype(np.float32))
    for tol in (1e-5, 2e-6):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            x = ssdops.implicit_step(u.astype(np.float32), op, 100.0, method=method, tol=tol, on_failure="warn")
        r = _true_residual(gamma.astype(np.float32), u.astype(np.float32), 100.0, x)
        warned = [w for w in caught if issubclass(w.category, ssdops.ConvergenceWarning)]
        assert warned or np.all(r <= 1.5 * tol), (tol, r)  # 1.5: float32 measures its residual in float32
    assert x.dtype == np.float32


def test_tol_floor():
    u = np.random.default_rng(9).uniform(size=GRID).astype(np.float32)
    op = ssdops.divergence_form(np.ones(GRID, np.float32))
    eps = float(np.finfo(np.float32).eps)
    with pytest.raises(ValueError, match="tol"):
        ssdops.implicit_step(u, op, 0.5, tol=3.9 * eps)
    x = ssdops.implicit_step(u, op, 0.5, tol=4 * eps)  # at the floor: accepted, and met
    assert np.all(_true_residual(np.ones(GRID), u, 0.5, x) <= 1.5 * 4 * eps)
    # float64 resolves far smaller residuals
    x = ssdops.implicit_step(u.astype(np.float64), ssdops.divergence_form(np.ones(GRID)), 0.5, tol=1e-14)
    assert np.all(_true_residual(np.ones(GRID), u.astype(np.float64), 0.5, x) <= 1e-14)


# --- item 7: explicit heat damps every mode -------------------------------------------------------
@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
@pytest.mark.parametrize("T", [0.1, 0.3, 1.0, 2.5])
def test_heat_explicit_default_error_bound(bc, T):
    """With its default steps n = ceil(8 T), dt = T / n <= 1/8: every eigenvalue lambda in [-8, 0] has
    an amplification 1 + dt lambda in [0, 1], and the error against exp(T L) is at most
    max_x |(1 - x)^n - exp(-n x)| over x in [0, 1] (L symmetric: per mode). At the old default
    (dt = 1/4) the checkerboard mode kept amplitude 1 and the bound was 1."""
    rng = np.random.default_rng(10)
    u0 = rng.standard_normal((3, 12, 13))
    exact = ssdops.heat(u0, T, bc=bc, method="exact")
    out = ssdops.heat(u0, T, bc=bc, method="explicit")
    n = math.ceil(8 * T)
    x = np.linspace(0.0, 1.0, 100_001)
    bound = np.max(np.abs((1 - x) ** n - np.exp(-n * x)))
    assert bound < math.exp(-1) + 1e-12
    for a, b, u in zip(out, exact, u0):
        assert np.linalg.norm(a - b) <= bound * np.linalg.norm(u) + 1e-12


def test_stable_dt_and_checks_refuse_bad_numbers():
    gamma = np.ones(GRID)
    gamma[2, 2] = math.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        ssdops.stable_dt(ssdops.divergence_form(gamma))
    u = np.random.default_rng(11).uniform(size=GRID)
    with pytest.raises(ValueError, match=">= 0"):
        ssdops.perona_malik(u, steps=50, dt=-0.2, lam=0.2)
    with pytest.raises(ValueError, match=">= 0"):
        ssdops.perona_malik(u, steps=50, dt=-0.2, lam=0.2, check_stable=False)


# --- item 8: dtypes -------------------------------------------------------------------------------
def test_numpy_scalar_dt_keeps_float32(xp):
    """np.float64(0.1) is a Python float to ssdops: it never promotes a float32 image (NEP 50)."""
    rng = np.random.default_rng(12)
    u = asarray(xp, rng.uniform(size=GRID), "float32")
    gamma = asarray(xp, rng.uniform(0.5, 1.5, GRID), "float32")
    zeta = asarray(xp, rng.uniform(size=(5,) + GRID), "float32")
    L = ssdops.laplacian(GRID, like=u)
    dt = np.float64(0.1)
    results = {
        "explicit_step": ssdops.explicit_step(u, L, dt, check_stable=True),
        "implicit_step-spectral": ssdops.implicit_step(u, L, dt),
        "filter_step": ssdops.filter_step(u, zeta, dt),
        "ssd_from_filters": ssdops.ssd_from_filters(zeta, dt).diagonals,
        "perona_malik_step": ssdops.perona_malik_step(u, dt=dt, lam=np.float64(0.2)),
        "perona_malik": ssdops.perona_malik(u, steps=2, dt=dt, lam=0.2),
        "heat-explicit": ssdops.heat(u, np.float64(0.5), method="explicit"),
        "heat-exact": ssdops.heat(u, np.float64(0.5)),
    }
    if "jax" not in xp.__name__:
        # eager JAX Krylov loops compile op by op (~10 s on a first call): the conversion of dt is the
        # same first line of implicit_step that the spectral entry above runs
        results["implicit_step-cg"] = ssdops.implicit_step(u, ssdops.divergence_form(gamma), dt)
        results["perona_malik-semi-implicit"] = ssdops.perona_malik(u, steps=2, dt=dt, lam=0.2,
                                                                    scheme="semi-implicit")
    assert {name: str(r.dtype) for name, r in results.items() if r.dtype != u.dtype} == {}


HALF = {"numpy": ["float16"], "torch": ["float16", "bfloat16"], "jax": ["float16", "bfloat16"]}


def _half_cases(slow_jax=False):
    """(library, dtype) parameters; ``slow_jax``: JAX's marked slow (eager Krylov loops compile op by op)."""
    return [pytest.param(lib, name, id=f"{lib}-{name}",
                         marks=[pytest.mark.slow] if slow_jax and lib == "jax" else [])
            for lib, names in HALF.items() for name in names]


def _half_array(library, dtype_name, a):
    """NumPy values as a ``dtype_name`` array of ``library``."""
    if library == "torch":
        torch = pytest.importorskip("torch")
        return torch.tensor(a, dtype=getattr(torch, dtype_name))
    if library == "jax":
        jnp = pytest.importorskip("jax.numpy")
        return jnp.asarray(a, dtype=getattr(jnp, dtype_name))
    return np.asarray(a, dtype=dtype_name)


def _as_float64(x):
    """Exact float64 values of a half-precision array (bfloat16 has no NumPy dtype: widen it first)."""
    if hasattr(x, "float"):  # torch
        x = x.float()
    elif "bfloat16" in str(x.dtype):  # jax
        x = x.astype("float32")
    return to_numpy(x).astype(np.float64)


@pytest.mark.parametrize("library,dtype_name", _half_cases())
@pytest.mark.parametrize("what", ["heat", "implicit-spectral"])
def test_half_precision_keeps_dtype(library, dtype_name, what):
    """Every framework, the same decision: float16 / bfloat16 in, the same dtype out, computed in float32
    (FFTs, Krylov reductions) and correct to the half dtype's precision."""
    rng = np.random.default_rng(13)
    u = _half_array(library, dtype_name, rng.uniform(size=(2,) + GRID))
    rounded = _as_float64(u)
    if what == "heat":
        out, ref = ssdops.heat(u, 0.7), ssdops.heat(rounded, 0.7)
    elif what == "implicit-spectral":
        out = ssdops.implicit_step(u, ssdops.laplacian(GRID, like=u), 0.7)
        ref = ssdops.implicit_step(rounded, ssdops.laplacian(GRID), 0.7)
    else:
        ones = _half_array(library, dtype_name, np.ones(GRID))
        out = ssdops.implicit_step(u, ssdops.divergence_form(ones), 0.7)
        ref = ssdops.implicit_step(rounded, ssdops.divergence_form(np.ones(GRID)), 0.7)
    assert out.dtype == u.dtype
    eps = {"float16": 2.0**-10, "bfloat16": 2.0**-7}[dtype_name]
    assert rel_err(_as_float64(out), ref) <= 4 * eps


@pytest.mark.parametrize("library,dtype_name", _half_cases(slow_jax=True))
def test_half_precision_krylov_keeps_dtype(library, dtype_name):
    test_half_precision_keeps_dtype(library, dtype_name, "implicit-cg")


@pytest.mark.parametrize("library,dtype_name", _half_cases())
def test_dot_test_scales_with_dtype(library, dtype_name):
    """A correct adjoint passes in half precision (inner products summed in float32, tolerance 64 eps);
    a wrong one (the operator as its own adjoint) still fails."""
    rng = np.random.default_rng(14)

    def arr(a):
        return _half_array(library, dtype_name, a)

    op = ssdops.SSD(arr(rng.standard_normal((5, 48, 48))))
    x, y = arr(rng.standard_normal((48, 48))), arr(rng.standard_normal((48, 48)))
    eps = {"float16": 2.0**-10, "bfloat16": 2.0**-7}[dtype_name]
    assert ssdops.dot_test(op.matvec, op.rmatvec, x, y) <= 64 * eps
    with pytest.raises(AssertionError, match="dot test failed"):
        ssdops.dot_test(op.matvec, op.matvec, x, y)
