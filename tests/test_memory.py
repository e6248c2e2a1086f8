"""Peak temporary memory of the NumPy paths (issue #23, item 4), measured with tracemalloc on small grids, and
the memory-light NumPy code checked against the generic code (``backends.use_generic()``).

Small grids: the blocked kernels' per-block scratch (``BLOCK_BYTES``, 1 MiB), the 3-D Perona-Malik step's
smallest slab (``PM3_SLAB_BYTES``) and the spectral path's slab of eigenvalues are shrunk here so that they
stay small against a 256² image, as they are against the 2048² and 4096² images of ``benchmarks/memory.py``.
"""
import gc
import importlib
import tracemalloc
import warnings

import numpy as np
import pytest

import ssdops
from ssdops import backends, spectral
from ssdops._kernels import krylov_solve
from ssdops.spectral import apply_laplacian_function
from ssdops.stencils import star

numpy_backend = importlib.import_module("ssdops.backends._numpy")

SHAPES = {2: (256, 256), 3: (48, 48, 48)}


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(numpy_backend, "BLOCK_BYTES", 16 * 1024)
    monkeypatch.setattr(numpy_backend, "PM3_SLAB_BYTES", 0)
    monkeypatch.setattr(spectral, "_SLAB_ELEMENTS", 4096)


def peak(fn, image_bytes):
    """``(result, peak traced bytes during fn() above those before it / image_bytes)``; fn runs once before
    (imports, caches)."""
    fn()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = fn()
        ratio = (tracemalloc.get_traced_memory()[1] - before) / image_bytes
    finally:
        tracemalloc.stop()
    return result, ratio


def owns_its_memory(a):
    """No result may keep a larger buffer alive (a crop view of an extension, say)."""
    return a.base is None or a.base.nbytes <= a.nbytes


def image(ndim, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random(SHAPES[ndim]).astype(dtype)


@pytest.mark.parametrize("ndim", [2, 3])
def test_peak_memory_of_the_numpy_paths(ndim, small_blocks):
    u = image(ndim)
    gamma = 0.5 + image(ndim, seed=1)
    A = ssdops.divergence_form(gamma, ndim=ndim)
    L = ssdops.laplacian(u.shape, like=u)
    exact = 4 if ndim == 2 else 8
    k = 2 * ndim + 1
    cases = {
        "heat": (lambda: ssdops.heat(u, 2.0, ndim=ndim), exact),
        "spectral solve": (lambda: ssdops.implicit_step(u, L, 0.5, method="spectral"), exact),
        "perona_malik_step": (lambda: ssdops.perona_malik_step(u, dt=0.1, lam=0.2, ndim=ndim), 4),
        "laplacian": (lambda: ssdops.laplacian(u.shape, like=u).diagonals, k + 1),
        "divergence_form": (lambda: ssdops.divergence_form(gamma, ndim=ndim).diagonals, k + 1),
        "op @ u": (lambda: A @ u, 1.5),
    }
    for method, vectors in (("cg", 4), ("bicgstab", 7)):
        def solve(method=method):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ssdops.ConvergenceWarning)
                return krylov_solve(np, u=u, diagonals=A.diagonals, offsets=A.offsets, dt=0.5, method=method,
                                    tol=1e-3, maxiter=6, on_failure="warn", x0=None)
        cases[method] = (solve, vectors + 2)

        def step(method=method):  # end to end: the checks of implicit_step add no image-sized buffers
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ssdops.ConvergenceWarning)
                return ssdops.implicit_step(u, A, 0.5, method=method, tol=1e-3, maxiter=6, on_failure="warn")
        cases[f"implicit_step {method}"] = (step, vectors + 2)
    for name, (fn, target) in cases.items():
        result, ratio = peak(fn, u.nbytes)
        assert ratio <= target, f"{name}: peak {ratio:.2f} images, target {target}"
        assert owns_its_memory(result), name


def test_the_old_generic_paths_are_over_the_targets():
    """The measure can fail: the generic code (the reference) holds far more than the targets."""
    u = image(2)
    with backends.use_generic():
        _, ratio = peak(lambda: ssdops.divergence_form(u), u.nbytes)
    assert ratio > 6


# --- the memory-light NumPy code against the generic code -------------------------------------------------
GRIDS = {1: [(1,), (2,), (7,), (3, 6)], 2: [(1, 1), (1, 6), (6, 1), (5, 7), (2, 3, 4, 5)],
         3: [(1, 1, 1), (1, 4, 1), (3, 4, 5), (2, 3, 1, 4)]}
CASES = [(ndim, shape) for ndim, shapes in GRIDS.items() for shape in shapes]


def generic(fn):
    with backends.use_generic():
        return fn()


@pytest.mark.parametrize("ndim,shape", CASES)
@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_spectral_numpy_path_matches_generic(ndim, shape, bc, dtype):
    u = np.random.default_rng(0).random(shape).astype(dtype)
    tol = {np.float64: 1e-13, np.float32: 1e-6, np.float16: 2e-3}[dtype]
    for f in (lambda lam: np.exp(0.7 * lam), lambda lam: 1 / (1 - 0.5 * lam)):
        fast = apply_laplacian_function(u, f, bc=bc, ndim=ndim)
        reference = generic(lambda f=f: apply_laplacian_function(u, f, bc=bc, ndim=ndim))
        assert fast.dtype == u.dtype and fast.shape == u.shape and owns_its_memory(fast)
        np.testing.assert_allclose(fast.astype(np.float64), reference.astype(np.float64), rtol=0, atol=tol)


def test_spectral_numpy_path_reads_views_and_leaves_the_input_alone():
    u = np.random.default_rng(0).random((6, 5))
    kept = u.copy()
    for view in (u.T, u[::2], np.broadcast_to(u[0], (3, 5)), np.asfortranarray(u)):
        fast = ssdops.heat(view, 0.3)
        np.testing.assert_allclose(fast, generic(lambda view=view: ssdops.heat(view, 0.3)), atol=1e-13)
    np.testing.assert_array_equal(u, kept)


@pytest.mark.parametrize("ndim,shape", CASES)
@pytest.mark.parametrize("bc,ghost", [("neumann", None), ("dirichlet", None), ("dirichlet", 0.0),
                                      ("dirichlet", 2.5)])
def test_operator_builders_match_generic(ndim, shape, bc, ghost):
    gamma = 0.5 + np.random.default_rng(0).random(shape)
    fast = ssdops.divergence_form(gamma, ndim=ndim, bc=bc, ghost_gamma=ghost)
    reference = generic(lambda: ssdops.divergence_form(gamma, ndim=ndim, bc=bc, ghost_gamma=ghost))
    assert fast.offsets == reference.offsets and fast.tags == reference.tags
    np.testing.assert_allclose(fast.diagonals, reference.diagonals, rtol=1e-15, atol=0)
    if ghost is None:
        grid = shape[-ndim:]
        for dtype in (np.float32, np.float64):
            like = np.ones(1, dtype)
            L = ssdops.laplacian(grid, bc=bc, like=like)
            L0 = generic(lambda like=like: ssdops.laplacian(grid, bc=bc, like=like))
            assert L.diagonals.dtype == dtype and L.tags == L0.tags
            np.testing.assert_array_equal(L.diagonals, L0.diagonals)


@pytest.mark.parametrize("method", ["cg", "bicgstab"])
@pytest.mark.parametrize("ndim,shape", [(1, (3, 9)), (2, (6, 7)), (2, (2, 5, 6)), (3, (4, 5, 3))])
@pytest.mark.parametrize("transpose", [False, True])
def test_in_place_krylov_solve_matches_generic(method, ndim, shape, transpose):
    rng = np.random.default_rng(0)
    u = rng.random(shape)
    d = ssdops.divergence_form(0.5 + rng.random(shape), ndim=ndim).diagonals
    x0 = rng.random(shape)
    kept = x0.copy()
    settings = dict(u=u, diagonals=d, offsets=star(ndim), dt=0.7, method=method, tol=1e-10, maxiter=500,
                    on_failure="raise", x0=x0, transpose=transpose)
    fast = krylov_solve(np, **settings)
    reference = generic(lambda: krylov_solve(np, **settings))
    np.testing.assert_allclose(fast, reference, rtol=1e-8, atol=1e-9)
    np.testing.assert_array_equal(x0, kept)  # the solve's x0 is not the caller's
    op = ssdops.SSD(d, settings["offsets"])
    apply = op.rmatvec if transpose else op.matvec
    np.testing.assert_allclose(fast - 0.7 * apply(fast), u, atol=1e-8)


@pytest.mark.parametrize("shape", [(40, 7, 6), (2, 33, 4, 5), (1, 3, 3), (5, 1, 4)])
@pytest.mark.parametrize("bc,ghost", [("neumann", None), ("dirichlet", None), ("dirichlet", 0.0)])
def test_sliced_3d_perona_malik_step_matches_generic(shape, bc, ghost, small_blocks):
    u = np.random.default_rng(0).random(shape)
    kw = dict(dt=0.05, lam=0.2, ndim=3, bc=bc, ghost_gamma=ghost)
    fast = ssdops.perona_malik_step(u, **kw)
    np.testing.assert_allclose(fast, generic(lambda: ssdops.perona_malik_step(u, **kw)), rtol=1e-13, atol=1e-14)
