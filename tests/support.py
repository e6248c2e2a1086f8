"""References and helpers shared by the test files.

References are built independently of ssdops, in NumPy / scipy.sparse (float64); the code under
test runs in the namespace given by the ``xp`` fixture (tests/conftest.py), and ``to_numpy`` brings
its results back for comparison. ``assert_close`` compares values and also checks that a result
kept the namespace, dtype and device of the input it was computed from.
"""
import importlib.util
import os
import sys

import array_api_compat
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIVE = ((-1, 0), (0, -1), (1, 0), (0, 1), (0, 0))
NINE = FIVE + ((-1, -1), (-1, 1), (1, -1), (1, 1))
# a non-standard stencil reaching 3 pixels: most of it points outside grids of side <= 3
WIDE = ((0, 3), (-3, 0), (2, -2), (0, 0))
BCS = ("neumann", "dirichlet")


BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def load_benchmark(name):
    """The script ``benchmarks/<name>.py`` (not a package module) imported as the module ``name``: registered
    in ``sys.modules`` (dataclasses look their module up there), with ``benchmarks/`` on ``sys.path`` while it
    loads (scripts import each other by name: reproduce imports study)."""
    sys.path.insert(0, BENCHMARKS)
    try:
        spec = importlib.util.spec_from_file_location(name, os.path.join(BENCHMARKS, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(BENCHMARKS)


# --------------------------------------------------------------------------- arrays


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


def rounded(a, dtype_name):
    """The float64 values the code under test actually sees after casting to ``dtype_name``."""
    return np.asarray(a, dtype=dtype_name).astype(np.float64)


def is_jax(xp):
    return "jax" in getattr(xp, "__name__", "")


def dtype_name_of(x):
    """'float32' or 'float64': the floating dtype of array ``x`` in its own namespace."""
    xp = array_api_compat.array_namespace(x)
    for name in ("float32", "float64"):
        if x.dtype == getattr(xp, name):
            return name
    raise TypeError(f"expected a float32 or float64 array, got dtype {x.dtype}")


def tolerance(dtype_name):
    """(rtol, atol) suited to the dtype, for results of O(1) magnitude."""
    return (1e-5, 1e-5) if dtype_name == "float32" else (1e-11, 1e-12)


def rel_err(x, ref):
    """||x - ref|| / ||ref|| in float64 (Frobenius norm over all axes)."""
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return np.linalg.norm(x - ref) / max(np.linalg.norm(ref), 1e-300)


def check_like(result, like, shape=None):
    """``result`` keeps the namespace, array type, dtype and device of ``like`` (and has ``shape``
    when given)."""
    assert array_api_compat.array_namespace(result) is array_api_compat.array_namespace(like)
    # a JAX result may be a different concrete array class (a tracer's output, a committed array);
    # NumPy gives a scalar (np.generic) for a full reduction where the standard has a 0-D array
    assert (type(result) is type(like) or array_api_compat.is_jax_array(result)
            or (isinstance(result, np.generic) and isinstance(like, np.ndarray))), (type(result), type(like))
    assert result.dtype == like.dtype, (result.dtype, like.dtype)
    assert array_api_compat.device(result) == array_api_compat.device(like)
    if shape is not None:
        assert tuple(result.shape) == tuple(shape), (tuple(result.shape), tuple(shape))


def assert_close(got, expected, like, *, scale=1.0):
    """``got`` has the namespace, dtype and device of ``like`` and the shape of ``expected``, and its
    values match ``expected`` (float64) within ``tolerance`` of like's dtype, the absolute part
    times ``scale`` (the number of terms summed, for example)."""
    check_like(got, like)
    rtol, atol = tolerance(dtype_name_of(like))
    got = to_numpy(got).astype(np.float64)
    assert got.shape == np.shape(expected), (got.shape, np.shape(expected))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * scale)


# --------------------------------------------------------------------------- SSD references


def in_grid_mask(offsets, grid_shape):
    """(K, H, W) booleans: is pixel (i, j)'s neighbour (i + dy_k, j + dx_k) inside the grid?"""
    H, W = grid_shape
    I, J = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    return np.stack(
        [((I + dy >= 0) & (I + dy < H) & (J + dx >= 0) & (J + dx < W)) for dy, dx in offsets]
    )


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


def ref_apply(diagonals, offsets, u, transpose=False):
    """Batched reference: per broadcast batch index, ``A_b @ u_b`` (or ``A_b.T @ u_b``), float64;
    diagonals ``(..., K, H, W)``, u ``(..., H, W)``."""
    diagonals = np.asarray(diagonals, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    K, H, W = diagonals.shape[-3:]
    batch = np.broadcast_shapes(diagonals.shape[:-3], u.shape[:-2])
    d = np.broadcast_to(diagonals, batch + (K, H, W))
    uu = np.broadcast_to(u, batch + (H, W))
    out = np.empty(batch + (H, W))
    for idx in np.ndindex(*batch):
        A = assemble(d[idx], offsets, (H, W))
        if transpose:
            A = A.T
        out[idx] = (A @ uu[idx].reshape(-1)).reshape(H, W)
    return out


def random_nonsymmetric(rng, offsets, grid_shape, batch=()):
    """Random non-symmetric SSD diagonals with I - dt*op strictly diagonally dominant (rows and
    columns) for every dt > 0, including garbage values at out-of-grid positions (which apply
    must ignore, so their derivative is 0)."""
    K = len(offsets)
    d = rng.uniform(-1.0, 1.0, size=batch + (K,) + tuple(grid_shape))
    c = [tuple(o) for o in offsets].index((0, 0))
    # centre <= -(K - 1) - 0.5 <= -(sum of |off-diagonals| in its row or column) - 0.5
    d[..., c, :, :] = -(K - 1) - 0.5 - rng.uniform(0.0, 1.0, size=batch + tuple(grid_shape))
    return d


# --------------------------------------------------------------------------- diffusion references
# The contract of issues #2 and #7: face-difference matrices D over the faces of each line, face
# diffusivity = mean of the two neighbouring pixels' gamma, L = -(Dy' diag(gy) Dy + Dx' diag(gx) Dx),
# row-major flattening.


def scipy_laplacian(shape, bc):
    """scipy's LaplacianNd as a float64 CSR matrix."""
    return sp.csr_matrix(spla.LaplacianNd(shape, boundary_conditions=bc, dtype=np.float64).tosparse())


def face_diff(n, bc):
    """Face differences of one line of n pixels (row f: u[right of f] - u[left of f]).

    neumann: the n-1 interior faces; dirichlet: n+1 faces, the first and last against a ghost u = 0.
    """
    if bc == "neumann":
        if n == 1:
            return sp.csr_matrix((0, 1))
        return sp.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n), format="csr")
    return sp.diags([-np.ones(n), np.ones(n)], [-1, 0], shape=(n + 1, n), format="csr")


def face_gamma(gamma, axis, bc, ghost):
    """Face diffusivities along ``axis`` of a 2-D gamma: mean of the two pixels on each face.

    Under dirichlet the line is padded with a ghost pixel at each end whose gamma is ``ghost``,
    or the edge pixel's own gamma when ``ghost`` is None.
    """
    g = np.moveaxis(np.asarray(gamma, dtype=np.float64), axis, 0)
    if bc == "dirichlet":
        lo = g[:1] if ghost is None else np.full_like(g[:1], ghost)
        hi = g[-1:] if ghost is None else np.full_like(g[-1:], ghost)
        g = np.concatenate([lo, g, hi], axis=0)
    return np.moveaxis(0.5 * (g[:-1] + g[1:]), 0, axis)


def ref_divergence_form(gamma, bc, ghost=None):
    """The diffusion matrix div(gamma grad .) of a 2-D gamma, float64 CSR."""
    gamma = np.asarray(gamma, dtype=np.float64)
    H, W = gamma.shape
    Dy = sp.kron(face_diff(H, bc), sp.eye(W), format="csr")
    Dx = sp.kron(sp.eye(H), face_diff(W, bc), format="csr")
    gy = face_gamma(gamma, 0, bc, ghost).ravel()
    gx = face_gamma(gamma, 1, bc, ghost).ravel()
    return sp.csr_matrix(-(Dy.T @ sp.diags(gy) @ Dy + Dx.T @ sp.diags(gx) @ Dx))


def backward_diff(n, bc):
    """u[i] - u[i-1]; at i = 0 against the zero ghost (dirichlet) or 0 (neumann)."""
    B = sp.diags([np.ones(n), -np.ones(n - 1)], [0, -1], shape=(n, n), format="lil")
    if bc == "neumann":
        B[0, 0] = 0.0
    return sp.csr_matrix(B)


# g(|grad u|^2, lambda) of each built-in diffusivity, written out
DIFFUSIVITIES = {
    "perona_malik": lambda s2, lam: 1.0 / (1.0 + s2 / lam**2),
    "perona_malik_exp": lambda s2, lam: np.exp(-s2 / lam**2),
    "charbonnier": lambda s2, lam: 1.0 / np.sqrt(1.0 + s2 / lam**2),
    "total_variation": lambda s2, lam: 1.0 / np.sqrt(s2 + lam**2),
    "linear": lambda s2, lam: np.ones_like(s2),
}


def pm_reference(u0, *, steps, dt, lam, bc, ghost_gamma, g="perona_malik", scheme="explicit"):
    """Perona-Malik (the authors' data generator AnisoDiff2d.m) per step: backward differences
    (the ghost counts under dirichlet), gamma = g(s2), L(gamma) over the faces, then
    u <- u + dt L u (explicit) or solve (I - dt L) x = u (semi-implicit). ``g`` is a name of
    ``DIFFUSIVITIES`` or a callable g(s2, lam)."""
    g = DIFFUSIVITIES[g] if isinstance(g, str) else g
    u0 = np.asarray(u0, dtype=np.float64)
    H, W = u0.shape
    By = sp.kron(backward_diff(H, bc), sp.eye(W), format="csr")
    Bx = sp.kron(sp.eye(H), backward_diff(W, bc), format="csr")
    I = sp.eye(H * W, format="csc")
    u = u0.ravel().copy()
    for _ in range(steps):
        s2 = (By @ u) ** 2 + (Bx @ u) ** 2
        L = ref_divergence_form(g(s2, lam).reshape(H, W), bc, ghost_gamma)
        if scheme == "explicit":
            u = u + dt * (L @ u)
        else:
            u = spla.spsolve(sp.csc_matrix(I - dt * L), u)
    return u.reshape(H, W)


# --------------------------------------------------------------------------- properties


def run_property(node_id, xp, strategy, body, *, jax_strategy=None):
    """Run ``body(example)`` over Hypothesis examples of ``strategy`` (the loaded profile's count),
    with an example database key of its own: ``node_id``, the pytest node id of the calling test.

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

    # Hypothesis keys its example database by a digest of the test function's source, which is this
    # same `run` for every property: a saved failure would replay into every other property. The
    # digest takes `_hypothesis_internal_add_digest` in as well; Hypothesis' own pytest plugin sets
    # it to the node id for parametrized tests, and so do we.
    run.hypothesis.inner_test._hypothesis_internal_add_digest = node_id.encode()
    run()


def property_check(node_id, xp, *strategies, fixed=()):
    """Decorator: run the body now as a property over ``st.tuples(*strategies)``; under JAX over the
    argument tuples ``fixed`` (when given). Used through the ``property_check`` fixture, which
    supplies ``node_id``."""

    def deco(body):
        run_property(node_id, xp, st.tuples(*strategies), lambda args: body(*args),
                     jax_strategy=st.sampled_from(fixed) if fixed else None)
        return body

    return deco


def property_test(jax_space, **strategies):
    """Decorator: a test ``(xp)`` running ``body(xp, **example)`` over the keyword ``strategies``; under
    JAX the keywords present in ``jax_space`` draw from it instead (a few fixed shapes)."""

    def decorate(body):
        def test(xp, request):
            jax_space_here = {**strategies, **{k: v for k, v in jax_space.items() if k in strategies}}
            run_property(request.node.nodeid, xp, st.fixed_dictionaries(strategies),
                         lambda kw: body(xp, **kw), jax_strategy=st.fixed_dictionaries(jax_space_here))

        test.__name__ = test.__qualname__ = body.__name__
        test.__module__ = body.__module__
        test.__doc__ = body.__doc__
        return test

    return decorate
