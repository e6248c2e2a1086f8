"""The native CPU kernels (``backends/native/cpu.cpp`` built by setup.py, loaded by ``backends/_native.py``)
against the generic array-API code, and the fallback when the library is absent.

- ``_native.apply`` (A u and A^T u) on 1-, 2- and 3-D grids (single pixels, length-1 axes, odd sizes), both
  dtypes, broadcast and strided batches, non-contiguous operands, ``out=`` (contiguous, strided, aliasing the
  input), NaN and inf; the same through ``op @ u`` (the NumPy kernel's native path) against ``use_generic``.
- ``_native.filter_step`` and ``_native.perona_malik_step`` (every diffusivity, both boundary conditions,
  ``ghost_gamma``) against the generic steps.
- Declined cases return NotImplemented; with the library reported absent every NumPy kernel still agrees
  with the generic code; a build with no working compiler installs, says why, and imports (slow).
"""
import os
import shutil
import subprocess
import sys
import zlib

import array_api_compat
import numpy as np
import pytest

import ssdops
from ssdops import backends
from ssdops import diffusivity as diffusivities
from ssdops._kernels import apply_generic, apply_transpose_generic, filter_step_generic, perona_malik_step_generic
from ssdops.backends import _native, _numpy
from ssdops.stencils import FIVE_POINT, NINE_POINT, SEVEN_POINT, TWENTY_SEVEN_POINT, star

XP = array_api_compat.array_namespace(np.empty(0))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

needs_library = pytest.mark.skipif(not _native.AVAILABLE, reason=f"no native kernels: {_native.REASON}")

WIDE = ((0, 0), (-2, 3), (4, -1), (0, -6), (3, 3), (-1, -5))
WIDE_3D = ((0, 0, 0), (-2, 1, 3), (1, -3, -1), (0, 0, -5), (3, 2, 0), (-1, -4, 2), (0, 1, 1))
WIDE_1D = ((0,), (-3,), (2,), (7,))
OFFSETS = {"three": star(1), "wide_1d": WIDE_1D, "five": FIVE_POINT, "nine": NINE_POINT, "wide": WIDE,
           "seven": SEVEN_POINT, "twenty_seven": TWENTY_SEVEN_POINT, "wide_3d": WIDE_3D}
GRIDS = {1: [(1,), (2,), (9,)], 2: [(1, 1), (1, 9), (9, 1), (7, 5)],
         3: [(1, 1, 1), (1, 3, 4), (3, 1, 5), (4, 5, 1), (4, 5, 6)]}
# Grids over several of the native Perona-Malik step's bands of 16 rows (the last one partial), with more
# planes than its ring of three.
PM_GRIDS = [(37, 3), (40, 1), (5, 35, 6), (7, 17, 1)]
APPLY_CASES = [(name, grid) for name, offsets in OFFSETS.items() for grid in GRIDS[len(offsets[0])]]
DTYPES = ["float32", "float64"]
# (operator batch, image batch): none, shared image, shared operator, both, broadcast next to real, size-1.
BATCHES = [((), ()), ((3,), ()), ((), (3,)), ((2, 3), (2, 3)), ((2, 1), (1, 3)), ((1,), (2, 3))]
BOUNDARIES = [("neumann", None), ("dirichlet", None), ("dirichlet", 0.0), ("dirichlet", 0.7)]
DIFFUSIVITIES = sorted(n for n in diffusivities.__all__ if diffusivities.name_of(getattr(diffusivities, n)) == n)


def rng(*case):
    return np.random.default_rng(zlib.crc32(repr(case).encode()))


def tolerance(dtype):
    return {"rtol": 2e-6, "atol": 2e-6} if dtype == "float32" else {"rtol": 1e-13, "atol": 1e-13}


def close(actual, expected, dtype, case=""):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, (case, actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, equal_nan=True, err_msg=case, **tolerance(dtype))


def generic_apply(d, offsets, u, transpose):
    return (apply_transpose_generic if transpose else apply_generic)(XP, d, offsets, u)


def native_apply(d, offsets, u, transpose, out=None):
    result = _native.apply(d, offsets, u, transpose, out)
    assert result is not NotImplemented
    return result


@needs_library
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("name, grid", APPLY_CASES)
def test_apply_matches_generic(name, grid, transpose, dtype):
    offsets = OFFSETS[name]
    for d_batch, u_batch in BATCHES:
        r = rng(name, grid, transpose, dtype, d_batch, u_batch)
        d = r.standard_normal(d_batch + (len(offsets),) + grid).astype(dtype)
        u = r.standard_normal(u_batch + grid).astype(dtype)
        close(native_apply(d, offsets, u, transpose), generic_apply(d, offsets, u, transpose), dtype)


@needs_library
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_apply_strided_and_broadcast_operands(ndim, dtype):
    offsets = {1: WIDE_1D, 2: WIDE, 3: WIDE_3D}[ndim]
    grid = {1: (11,), 2: (6, 9), 3: (3, 4, 5)}[ndim]
    r = rng("strided", ndim, dtype)
    K = len(offsets)
    big_d = r.standard_normal((4, K) + tuple(2 * n for n in grid)).astype(dtype)
    big_u = r.standard_normal((3, 4) + tuple(2 * n for n in grid)).astype(dtype)
    every_other = (slice(None), slice(None)) + (slice(None, None, 2),) * ndim
    core = tuple(slice(n) for n in grid)
    all_ = slice(None)
    d0, u0 = big_d[(all_, all_) + core], big_u[(all_, all_) + core]

    def transposed(x):  # the same values, the grid's first and last axes swapped in memory
        return np.swapaxes(np.ascontiguousarray(np.swapaxes(x, -1, -ndim)), -1, -ndim)

    cases = {
        "strided cores": (big_d[every_other], big_u[every_other]),
        "reversed batch": (d0[::-1], u0[:, ::-1]),
        "every other image": (d0[::2], u0[::2, ::2]),
        "broadcast_to": (np.broadcast_to(d0[:1], (5, K) + grid), np.broadcast_to(u0[0, 0], (5,) + grid)),
        "transposed grid": (transposed(d0), transposed(u0)),
    }
    for case, (d, u) in cases.items():
        for transpose in (False, True):
            expected = generic_apply(d, offsets, u, transpose)
            close(native_apply(d, offsets, u, transpose), expected, dtype, f"{case}, transpose={transpose}")


@needs_library
@pytest.mark.parametrize("dtype", DTYPES)
def test_apply_out_contiguous_strided_and_aliasing(dtype):
    r = rng("out", dtype)
    d = r.standard_normal((2, len(WIDE), 7, 8)).astype(dtype)
    u = r.standard_normal((2, 7, 8)).astype(dtype)
    for transpose in (False, True):
        expected = generic_apply(d, WIDE, u, transpose)
        out = np.full(expected.shape, np.nan, dtype=dtype)
        assert native_apply(d, WIDE, u, transpose, out) is out
        close(out, expected, dtype)
        strided = np.full((2, 7, 16), np.nan, dtype=dtype)[..., ::2]
        assert native_apply(d, WIDE, u, transpose, strided) is strided
        close(strided, expected, dtype)
        fortran = np.asfortranarray(np.full(expected.shape, np.nan, dtype=dtype))
        assert native_apply(d, WIDE, u, transpose, fortran) is fortran
        close(fortran, expected, dtype)
        # out aliasing the image or the diagonals: the result is computed aside, then copied.
        alias = u.copy()
        assert native_apply(d, WIDE, alias, transpose, alias) is alias
        close(alias, expected, dtype)
        diagonals = d.copy()
        assert native_apply(diagonals, WIDE, u, transpose, diagonals[:, 2]) is not None
        close(diagonals[:, 2], expected, dtype)


@needs_library
def test_apply_through_the_operator_matches_use_generic():
    """``op @ u`` and ``rmatvec`` (the NumPy kernel, native path) agree with the generic code; ``out=`` sharing
    memory with the image is refused by the core either way."""
    r = rng("operator")
    for shape in [(1, 1), (1, 7), (7, 1), (2, 9, 10), (1, 1, 1), (3, 1, 4), (2, 3, 4, 5)]:
        ndim = 3 if len(shape) == 4 or shape in [(1, 1, 1), (3, 1, 4)] else 2
        u = r.standard_normal(shape).astype(np.float32)
        L = ssdops.divergence_form(np.abs(u) + 0.5, ndim=ndim, bc="dirichlet")
        fast, fast_t = L @ u, L.rmatvec(u)
        with backends.use_generic():
            slow, slow_t = L @ u, L.rmatvec(u)
        close(fast, slow, "float32")
        close(fast_t, slow_t, "float32")
        with pytest.raises(ValueError, match="shares memory"):
            L.matvec(u, out=u)


@needs_library
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_apply_propagates_nan_and_inf(ndim, dtype):
    offsets = {1: WIDE_1D, 2: NINE_POINT, 3: WIDE_3D}[ndim]
    grid = {1: (12,), 2: (6, 7), 3: (3, 4, 5)}[ndim]
    r = rng("nonfinite", ndim, dtype)
    d = r.standard_normal((len(offsets),) + grid).astype(dtype)
    u = r.standard_normal(grid).astype(dtype)
    flat_u, flat_d = u.reshape(-1), d.reshape(len(offsets), -1)
    flat_u[[0, flat_u.size // 2]] = [np.nan, np.inf]
    flat_d[1, [1, -1]] = [-np.inf, np.nan]
    for transpose in (False, True):
        expected = generic_apply(d, offsets, u, transpose)
        assert not np.isfinite(expected).all()
        actual = native_apply(d, offsets, u, transpose)
        np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
        np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected))
        close(actual, expected, dtype)


@needs_library
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grid", GRIDS[1] + GRIDS[2] + GRIDS[3])
def test_filter_step_matches_generic(grid, dtype):
    ndim = len(grid)
    for z_batch, u_batch in BATCHES:
        r = rng("filter", grid, dtype, z_batch, u_batch)
        zeta = r.standard_normal(z_batch + (2 * ndim + 1,) + grid).astype(dtype)
        u = r.standard_normal(u_batch + grid).astype(dtype)
        if u.size >= 8:  # NaN and inf in the image and in a filter propagate as in the generic code
            u.flat[r.choice(u.size, 2, replace=False)] = [np.nan, np.inf]
            zeta.flat[r.choice(zeta.size, 1)] = -np.inf
        actual = _native.filter_step(u, zeta, 0.3, ndim)
        assert actual is not NotImplemented
        with np.errstate(invalid="ignore"):
            expected = filter_step_generic(XP, u, zeta, 0.3)
        close(actual, expected, dtype)


@needs_library
def test_filter_step_through_ssdops_matches_use_generic():
    r = rng("filter public")
    for shape, ndim in [((1, 1), 2), ((2, 7, 6), 2), ((9,), 1), ((3, 4, 5), 3), ((1, 1, 1), 3)]:
        u = r.standard_normal(shape)
        zeta = r.standard_normal(shape[: len(shape) - ndim] + (2 * ndim + 1,) + shape[len(shape) - ndim :])
        fast = ssdops.filter_step(u, zeta, 0.2)
        with backends.use_generic():
            slow = ssdops.filter_step(u, zeta, 0.2)
        close(fast, slow, "float64")


@needs_library
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bc, ghost_gamma", BOUNDARIES)
@pytest.mark.parametrize("diffusivity", DIFFUSIVITIES)
def test_perona_malik_step_matches_generic(diffusivity, bc, ghost_gamma, dtype):
    g = diffusivities.resolve(diffusivity)
    # PM_GRIDS: several bands of rows with a partial last one, the ring of gamma planes wrapping around.
    for grid in GRIDS[1] + GRIDS[2] + GRIDS[3] + PM_GRIDS + [(2, 6, 7)]:
        ndim = len(grid) if grid != (2, 6, 7) else 2
        r = rng("pm", diffusivity, bc, ghost_gamma, dtype, grid)
        u = r.random(grid).astype(dtype)
        if u.size >= 8:  # NaN and inf propagate as in the generic code, never to zeros
            u.flat[r.choice(u.size, 2, replace=False)] = [np.nan, np.inf]
        actual = _native.perona_malik_step(u, 0.05, 0.3, diffusivity, bc, ghost_gamma, ndim)
        assert actual is not NotImplemented
        with np.errstate(invalid="ignore"):  # inf - inf in the generic code: the NaN both give
            expected = perona_malik_step_generic(XP, u, 0.05, 0.3, g, bc, ghost_gamma, ndim)
        np.testing.assert_allclose(actual, expected, rtol=2e-5 if dtype == "float32" else 1e-12,
                                   atol=2e-6 if dtype == "float32" else 1e-13, err_msg=str(grid))


@needs_library
@pytest.mark.parametrize("diffusivity", DIFFUSIVITIES)
def test_perona_malik_step_through_ssdops_matches_use_generic(diffusivity):
    """``ssdops.perona_malik_step`` (the NumPy kernel: native on the dimensions it lists, blocked elsewhere)
    against the generic code, on 1-, 2- and 3-D grids, batches and strided images."""
    r = rng("pm public", diffusivity)
    for shape, ndim in [((9,), 1), ((2, 7, 6), 2), ((1, 1, 1), 3), ((2, 3, 4, 5), 3), ((4, 1, 6), 3)]:
        u = r.random(tuple(2 * n for n in shape))[(slice(None, None, 2),) * len(shape)]
        for bc, ghost_gamma in BOUNDARIES:
            fast = ssdops.perona_malik_step(u, dt=0.05, lam=0.3, diffusivity=diffusivity, ndim=ndim, bc=bc,
                                            ghost_gamma=ghost_gamma)
            with backends.use_generic():
                slow = ssdops.perona_malik_step(u, dt=0.05, lam=0.3, diffusivity=diffusivity, ndim=ndim, bc=bc,
                                                ghost_gamma=ghost_gamma)
            close(fast, slow, "float64", f"{shape}, {bc}, {ghost_gamma}")


@pytest.fixture(scope="module")
def gpu_code(tmp_path_factory):
    """The GPU's per-pixel code run on the host: ``backends/cuda/emulate.cpp`` built by g++ (as in
    tests/test_cuda_kernels.py)."""
    import ctypes

    from ssdops.backends import _cupy

    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ is not installed: the CUDA kernels cannot run on the host")
    library = tmp_path_factory.mktemp("native_vs_cuda") / "libssdops_emulate.so"
    command = [gxx, "-std=c++17", "-O2", "-shared", "-fPIC", f"-I{_cupy.CUDA_DIR}",
               str(_cupy.CUDA_DIR / "emulate.cpp"), "-o", str(library)]
    built = subprocess.run(command, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return ctypes.CDLL(str(library))


@needs_library
@pytest.mark.parametrize("dtype", DTYPES)
def test_native_equals_the_gpu_per_pixel_code_bit_for_bit(gpu_code, dtype):
    """One arithmetic for CPU and GPU: the native kernels and the CUDA thread functions of stencil.cuh (run
    by the host emulation) give the same bits, for apply, A^T, the filter step and Perona-Malik steps."""
    from ssdops.backends import _cupy
    from test_cuda_kernels import emulate

    for offsets, grid in [(WIDE, (7, 9)), (WIDE_3D, (4, 5, 6)), (NINE_POINT, (1, 5)), (FIVE_POINT, PM_GRIDS[0]),
                          (SEVEN_POINT, PM_GRIDS[2])]:
        r = rng("bits", grid, dtype)
        d = r.standard_normal((2, len(offsets)) + grid).astype(dtype)
        u = r.standard_normal((2,) + grid).astype(dtype)
        for transpose in (False, True):
            expected = emulate(gpu_code, _cupy.plan_apply(np, d, offsets, u, transpose))
            np.testing.assert_array_equal(native_apply(d, offsets, u, transpose), expected)
        ndim = len(grid)
        zeta = r.standard_normal((2 * ndim + 1,) + grid).astype(dtype)
        expected = emulate(gpu_code, _cupy.plan_filter_step(np, u, zeta, 0.3))
        np.testing.assert_array_equal(_native.filter_step(u, zeta, 0.3, ndim), expected)
        for diffusivity in DIFFUSIVITIES:
            for bc, ghost_gamma in BOUNDARIES:
                launch = _cupy.plan_perona_malik_step(np, u, 0.05, 0.3, diffusivity, bc, ghost_gamma, ndim)
                np.testing.assert_array_equal(
                    _native.perona_malik_step(u, 0.05, 0.3, diffusivity, bc, ghost_gamma, ndim),
                    emulate(gpu_code, launch), err_msg=f"{diffusivity}, {bc}, {ghost_gamma}")


@needs_library
def test_declined_cases_return_not_implemented():
    d64, u32 = np.ones((5, 4, 4)), np.ones((4, 4), dtype=np.float32)
    assert _native.apply(d64, FIVE_POINT, u32, False) is NotImplemented  # mixed dtypes
    assert _native.apply(d64.astype(np.int64), FIVE_POINT, u32.astype(np.int64), False) is NotImplemented
    assert _native.apply(d64.astype(">f8"), FIVE_POINT, u32.astype(">f8"), False) is NotImplemented
    assert _native.perona_malik_step(u32, 0.1, 0.2, lambda s2, lam: 1 + 0 * s2, "neumann", None, 2) is NotImplemented
    assert _native.perona_malik_step(u32, np.float64(0.1), 0.2, "linear", "neumann", None, 2) is NotImplemented
    assert _native.filter_step(u32, np.ones((5, 4, 4)), 0.1, 2) is NotImplemented
    # The NumPy kernel runs its blocked code for them, with the generic result.
    L = ssdops.divergence_form(np.ones((4, 4)))
    assert np.array_equal(_numpy.ssd_apply(diagonals=L.diagonals, offsets=L.offsets, u=np.ones((4, 4))),
                          np.zeros((4, 4)))


def test_fallback_without_the_library(monkeypatch):
    """With the library reported absent the native functions decline and every NumPy kernel still agrees
    with the generic code."""
    monkeypatch.setattr(_native, "_LIB", None)
    monkeypatch.setattr(_native, "AVAILABLE", False)
    r = rng("fallback")
    u = r.random((2, 9, 8))
    d = r.standard_normal((len(WIDE), 9, 8))
    assert _native.apply(d, WIDE, u, False) is NotImplemented
    assert _native.perona_malik_step(u, 0.1, 0.3, "perona_malik", "neumann", None, 2) is NotImplemented
    assert _native.filter_step(u, np.ones((2, 5, 9, 8)), 0.1, 2) is NotImplemented
    zeta = r.standard_normal((5, 9, 8))
    close(_numpy.filter_step(u=u, zeta=zeta, dt=0.2), filter_step_generic(XP, u, zeta, 0.2), "float64")
    for transpose, kernel in ((False, _numpy.ssd_apply), (True, _numpy.ssd_apply_transpose)):
        close(kernel(diagonals=d, offsets=WIDE, u=u), generic_apply(d, WIDE, u, transpose), "float64")
    for ndim in (2, 3):
        fast = ssdops.perona_malik_step(u, dt=0.1, lam=0.3, ndim=ndim)
        with backends.use_generic():
            slow = ssdops.perona_malik_step(u, dt=0.1, lam=0.3, ndim=ndim)
        close(fast, slow, "float64")


def test_library_state_is_reported():
    """Either the library is loaded (and found next to the module) or the reason is given; the registry's
    NumPy kernels say whether they run it."""
    if _native.AVAILABLE:
        assert _native.REASON is None and _native.LIBRARY is not None and _native.LIBRARY.is_file()
    else:
        assert isinstance(_native.REASON, str) and _native.REASON
    kernels = backends.declarations("numpy")
    for operation in ("ssd_apply", "ssd_apply_transpose", "filter_step", "perona_malik_step"):
        expected = _native.AVAILABLE and operation in _numpy.NATIVE_OPERATIONS
        assert kernels[(operation, "numpy")].native is expected, operation


def test_bench_reports_the_libraries_that_run_the_native_kernels():
    """``ssdops bench`` names the kernels that run compiled C++: NumPy's, and PyTorch's and dask's where they
    hand NumPy's kernel their memory; none where the library is absent."""
    pytest.importorskip("torch")
    pytest.importorskip("dask")
    from ssdops.backends import _dask, _torch  # noqa: F401 - registers their kernels
    from ssdops.tools.bench import kernels_in_use

    found = kernels_in_use()
    compiled = "compiled C++" if _native.AVAILABLE else "array library"
    assert found["ssd_apply[numpy]"] == compiled
    assert found["perona_malik_step[torch]"] == ("compiled C++ (CPU tensors without autograd)" if _native.AVAILABLE
                                                 else "array library")
    assert found["filter_step[dask]"] == ("compiled C++ (each chunk)" if _native.AVAILABLE else "array library")
    assert found["implicit_solve[torch]"] == "array library"


@pytest.mark.slow
def test_install_without_a_compiler(tmp_path):
    """``pip install`` with a compiler that fails: the install succeeds with the message, and the installed
    package imports, reports why, and computes with the pure-Python fast paths."""
    # A copy of the sources without build products (the repository's build/ would hold an up-to-date library).
    source = tmp_path / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info", "build")
    for name in ("ssdops", "backends", "diffnet_torch", "diffnet_jax"):
        shutil.copytree(os.path.join(REPO, name), source / name, ignore=skip)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(os.path.join(REPO, name), source / name)
    env = dict(os.environ, CC="false", CXX="false", LDSHARED="false", LDCXXSHARED="false")
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-v",
                           "--target", str(target), str(source)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "the native CPU kernels were not built" in done.stdout + done.stderr
    assert not list((target / "ssdops" / "backends").glob("_native_kernels*"))
    check = ("import numpy as np, ssdops; from ssdops.backends import _native; "
             "assert not _native.AVAILABLE and 'not built' in _native.REASON, _native.REASON; "
             "assert ssdops.__file__.startswith(%r), ssdops.__file__; "
             "u = np.random.default_rng(0).random((5, 6)); L = ssdops.divergence_form(u + 1); "
             "fast = L @ u\nwith ssdops.backends.use_generic(): slow = L @ u\n"
             "assert np.allclose(fast, slow)" % str(target))
    ran = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=str(target)))
    assert ran.returncode == 0, ran.stderr
    # The core tests on that install: -P keeps the repository (the working directory) off sys.path, so the
    # installed copy, first on PYTHONPATH, is the one imported.
    env = dict(os.environ, PYTHONPATH=str(target))
    where = subprocess.run([sys.executable, "-P", "-c", "import ssdops; print(ssdops.__file__)"], cwd=REPO,
                           capture_output=True, text=True, env=env)
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr
    core = ["tests/test_ssd.py", "tests/test_operators.py", "tests/test_diffusion.py", "tests/test_nd.py",
            "tests/test_edges.py"]
    tested = subprocess.run([sys.executable, "-P", "-m", "pytest", "-q", "-x", "-m", "not slow", "-p",
                             "no:cacheprovider", *core], cwd=REPO, capture_output=True, text=True, env=env)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
