"""Shared fixtures: one ``xp`` fixture over every installed array library.

References are always built in NumPy / scipy.sparse (float64); the code under test runs in
the namespace given by ``xp``. ``to_numpy`` brings results back for comparison.
"""
import os

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

settings.register_profile(
    "dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


NAMESPACES = ("numpy", "array_api_strict", "torch", "jax")


def _load(name):
    import array_api_compat

    if name == "numpy":
        import numpy

        return array_api_compat.array_namespace(numpy.empty(0))
    if name == "array_api_strict":
        xps = pytest.importorskip("array_api_strict")
        return xps
    if name == "torch":
        torch = pytest.importorskip("torch")
        return array_api_compat.array_namespace(torch.empty(0))
    if name == "jax":
        jax = pytest.importorskip("jax")
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        return jnp
    raise ValueError(name)


@pytest.fixture(params=NAMESPACES)
def xp(request):
    """The array namespace under test (numpy, array_api_strict, torch, jax with x64)."""
    return _load(request.param)


@pytest.fixture(params=["float32", "float64"])
def dtype_name(request):
    return request.param


def to_numpy(x):
    """Any supported array -> NumPy (host copy; for comparisons in tests only)."""
    if hasattr(x, "detach"):  # torch
        return x.detach().cpu().numpy()
    if hasattr(x, "get") and type(x).__module__.startswith("cupy"):
        return x.get()
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x)
    return np.from_dlpack(x)


def asarray(xp, a, dtype_name="float64"):
    """NumPy array -> namespace ``xp`` with the named dtype."""
    return xp.asarray(np.asarray(a, dtype=dtype_name))


def tolerance(dtype_name):
    """(rtol, atol) suited to the dtype, for results of O(1) magnitude."""
    return (1e-5, 1e-5) if dtype_name == "float32" else (1e-11, 1e-12)


def is_jax(xp):
    return "jax" in getattr(xp, "__name__", "")


def run_property(xp, strategy, body, *, jax_strategy=None):
    """Run ``body(example)`` over hypothesis examples of ``strategy`` (the loaded profile's count).

    Eager JAX compiles every operation anew for each new shape (about 0.5 s an example against
    milliseconds once cached), so under JAX ``jax_strategy`` (the same values over a small fixed set
    of shapes) replaces ``strategy`` when given, and a third of the examples run.
    """
    n = settings.default.max_examples
    if is_jax(xp):
        n = max(4, n // 3)
        strategy = strategy if jax_strategy is None else jax_strategy

    @settings(max_examples=n, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(strategy)
    def run(example):
        body(example)

    run()


def property_check(xp, *strategies, fixed=()):
    """Decorator: run the body now as a property over ``st.tuples(*strategies)``; under JAX over the
    argument tuples ``fixed`` (when given)."""

    def deco(body):
        run_property(xp, st.tuples(*strategies), lambda args: body(*args),
                     jax_strategy=st.sampled_from(fixed) if fixed else None)
        return body

    return deco


def property_test(jax_space, **strategies):
    """Decorator: a test ``(xp)`` running ``body(xp, **example)`` over the keyword ``strategies``; under
    JAX the keywords present in ``jax_space`` draw from it instead (a few fixed shapes)."""

    def decorate(body):
        def test(xp):
            jax_space_here = {**strategies, **{k: v for k, v in jax_space.items() if k in strategies}}
            run_property(xp, st.fixed_dictionaries(strategies), lambda kw: body(xp, **kw),
                         jax_strategy=st.fixed_dictionaries(jax_space_here))

        test.__name__ = test.__qualname__ = body.__name__
        test.__module__ = body.__module__
        test.__doc__ = body.__doc__
        return test

    return decorate


def assemble(diagonals, offsets, grid_shape):
    """Independent COO assembly of one unbatched SSD, diagonals ``(K, H, W)``: the CSR matrix with
    ``A[p, p + o_k] = d_k(p)`` for in-grid neighbours, ``p = i*W + j`` (float64)."""
    H, W = grid_shape
    d = np.asarray(diagonals, dtype=np.float64)
    assert d.shape == (len(offsets), H, W), (d.shape, offsets, grid_shape)
    I, J = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    rows, cols, vals = [np.zeros(0, dtype=int)], [np.zeros(0, dtype=int)], [np.zeros(0)]
    for k, (dy, dx) in enumerate(offsets):
        ii, jj = I + dy, J + dx
        m = (ii >= 0) & (ii < H) & (jj >= 0) & (jj < W)
        rows.append((I * W + J)[m])
        cols.append((ii * W + jj)[m])
        vals.append(d[k][m])
    n = H * W
    return sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsr()
