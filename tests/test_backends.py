"""Every fast path in ``ssdops.backends`` against the generic array-API code (the reference).

Kernels are fetched through the registry (``backends.lookup``) on the namespace of their arrays, and
compared with ``ssdops._kernels.apply_generic`` / ``apply_transpose_generic`` or with the public function run
under ``backends.use_generic()``. JAX compiles per shape, so its cases reuse a few shapes.
"""
import os
import subprocess
import sys

import array_api_compat
import numpy as np
import pytest

import ssdops
from ssdops import backends
from ssdops._kernels import apply_generic, apply_transpose_generic
from support import to_numpy

FIVE = ssdops.FIVE_POINT
NINE = ssdops.NINE_POINT
WIDE = ((0, 3), (-3, 0), (2, -2), (0, 0), (1, 5))
OFFSETS = {"five": FIVE, "nine": NINE, "wide": WIDE}
GRIDS = [(1, 1), (1, 6), (6, 1), (5, 7)]
# (diagonals batch, image batch): the common cases and a broadcast one that needs a fallback.
BATCHES = [((), ()), ((), (2, 3)), ((2,), (2,)), ((2, 1), (3,)), ((2, 1), (2, 3))]
DIFFUSIVITIES = ["perona_malik", "perona_malik_exp", "charbonnier", "total_variation", "linear"]
BOUNDARIES = [("neumann", None), ("dirichlet", None), ("dirichlet", 0.0), ("dirichlet", 0.7)]
FRAMEWORKS = ["numpy", "torch", "jax"]


def framework(name):
    """(namespace, array constructor from NumPy) of a framework; skips when it is not installed."""
    if name == "numpy":
        return array_api_compat.array_namespace(np.empty(0)), np.asarray
    if name == "torch":
        torch = pytest.importorskip("torch")
        return array_api_compat.array_namespace(torch.empty(0)), torch.from_numpy
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jnp, jnp.asarray


def kernel(name, xp):
    fast = backends.lookup(name, xp)
    assert fast is not None, f"no fast path {name} for {xp.__name__}"
    return fast


def assert_close(fast, reference, dtype):
    fast, reference = to_numpy(fast), to_numpy(reference)
    assert fast.shape == reference.shape and fast.dtype == reference.dtype
    rtol = 1e-5 if dtype == "float32" else 1e-12
    scale = max(1.0, float(np.max(np.abs(reference), initial=0.0)))
    np.testing.assert_allclose(fast, reference, rtol=rtol, atol=rtol * scale)


def cases(fw):
    """(grid, offsets name, batches) combinations; JAX gets a few fixed shapes (one compile each)."""
    if fw == "jax":
        return [((1, 1), "five", ((), ())), ((1, 6), "wide", ((2, 1), (3,))),
                ((5, 7), "nine", ((2,), (2,))), ((6, 1), "five", ((), (2, 3)))]
    return [(g, o, b) for g in GRIDS for o in OFFSETS for b in BATCHES]


# --------------------------------------------------------------------------- registry and switch


def _run_python(code, tmp_path, env=None):
    """Run ``code`` in a fresh interpreter started in ``tmp_path`` (not the repository: the installed
    package is what is tested)."""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=env)


def test_import_is_cheap_and_lazy(tmp_path):
    _run_python(
        "import sys, numpy, ssdops; "
        "assert not {'torch', 'jax', 'cupy', 'dask'} & set(sys.modules), 'framework imported'; "
        "assert not [m for m in sys.modules if m.startswith('ssdops.backends._')], 'backend imported'; "
        "assert ssdops.backends.lookup('ssd_apply', numpy) is not None; "
        "assert 'ssdops.backends._numpy' in sys.modules and 'torch' not in sys.modules",
        tmp_path,
    )


def test_environment_switch_forces_generic(tmp_path):
    _run_python(
        "import numpy, ssdops; "
        "assert ssdops.backends.is_generic() and ssdops.backends.lookup('ssd_apply', numpy) is None",
        tmp_path, env={**os.environ, "SSDOPS_GENERIC": "1"},
    )


def test_a_folder_named_backends_on_the_path_changes_nothing(tmp_path):
    """A user's own ``backends`` package first on ``sys.path`` neither hides nor replaces the fast paths."""
    (tmp_path / "backends").mkdir()
    (tmp_path / "backends" / "__init__.py").write_text("raise ImportError('the wrong backends package')\n")
    _run_python(
        "import sys; sys.path.insert(0, '.'); import numpy, ssdops; "
        "from ssdops.backends import _numpy; "
        "assert ssdops.backends.lookup('ssd_apply', numpy) is _numpy.ssd_apply; "
        "assert 'backends' not in sys.modules",
        tmp_path,
    )


def test_wheel_installs_no_top_level_backends(tmp_path):
    """``pip wheel`` of the repository: the import names are ssdops, diffnet_torch and diffnet_jax only, and
    the backends (with their CUDA sources) live under ssdops/backends/."""
    import zipfile

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), repo], check=True)
    (wheel,) = tmp_path.glob("ssdops-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert top == {"ssdops", "diffnet_torch", "diffnet_jax"}, top
    assert "ssdops/backends/__init__.py" in names and "ssdops/backends/_numpy.py" in names


def test_registry_keys_are_libraries():
    import array_api_compat as compat

    assert backends.library_of(np) == backends.library_of(compat.array_namespace(np.empty(0))) == "numpy"
    with pytest.raises(ValueError, match="unknown operation"):
        backends.register("fft", "numpy", print)
    with pytest.raises(ValueError, match="unknown library"):
        backends.register("ssd_apply", "numpy.linalg", print)
    fast = kernel("ssd_apply", np)
    with pytest.raises(ValueError, match="already has a kernel"):
        backends.register("ssd_apply", "numpy", print)
    record = backends.declarations("numpy")[("ssd_apply", "numpy")]
    with pytest.raises(ValueError, match="declared otherwise"):   # it would drop what the record says
        backends.register("ssd_apply", "numpy", fast, ndims=(2,), native=record.native)
    backends.register("ssd_apply", "numpy", fast, native=record.native)  # the same kernel and declaration: fine
    assert backends.declarations("numpy")[("ssd_apply", "numpy")] == record


def test_use_generic_is_a_context_manager_per_thread():
    import threading

    assert not backends.is_generic()
    seen = {}
    with backends.use_generic():
        assert backends.is_generic()
        worker = threading.Thread(target=lambda: seen.update(other=backends.is_generic()))
        worker.start()
        worker.join()
    assert not backends.is_generic()
    assert seen["other"] is False  # the switch holds in this thread only


def test_a_backend_that_fails_to_import_warns(monkeypatch):
    """A failure other than the framework being absent is reported, never swallowed."""
    real = backends._import

    def failing(library):
        if library != "numpy":
            return real(library)
        raise RuntimeError("broken build")

    monkeypatch.setattr(backends, "_import", failing)
    monkeypatch.setattr(backends, "_LOADED", set())
    monkeypatch.setattr(backends, "_ADAPTERS", {})
    monkeypatch.setattr(backends, "_ACTIVE", [])
    monkeypatch.setattr(backends, "_REGISTRY", {})
    with pytest.warns(backends.BackendImportWarning, match="numpy backend failed to import.*broken build"):
        assert backends.lookup("ssd_apply", np) is None

    def absent(library):
        if library != "numpy":
            return real(library)
        raise ModuleNotFoundError("No module named 'numpy'", name="numpy")

    monkeypatch.setattr(backends, "_import", absent)
    monkeypatch.setattr(backends, "_LOADED", set())
    monkeypatch.setattr(backends, "_ADAPTERS", {})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backends.lookup("ssd_apply", np) is None  # an absent framework: silent, by design
    assert backends.adapter_for(np.ones(1)) is backends.GENERIC  # and the generic adapter serves its arrays


def test_every_kernel_follows_its_protocol():
    """Each registered kernel takes exactly the keyword arguments of its operation's protocol."""
    import inspect

    for fw in FRAMEWORKS:
        framework(fw)
    for (operation, library), fn in backends.registered().items():
        protocol = inspect.signature(backends.OPERATIONS[operation].__call__)
        expected = [n for n in protocol.parameters if n != "self"]
        params = inspect.signature(inspect.unwrap(fn)).parameters
        assert list(params) == expected, (operation, library, list(params))
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values()), (operation, library)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_use_generic_routes_to_generic_code(fw, monkeypatch):
    """Under ``use_generic`` a kernel that would fail is never called; outside it, it is."""
    xp, asarray = framework(fw)
    kernel("ssd_apply", xp)

    def broken(**kwargs):
        raise AssertionError("fast path called")

    library = backends.library_of(xp)
    monkeypatch.setitem(backends._REGISTRY, ("ssd_apply", library), backends.Kernel("ssd_apply", library, broken))
    op = ssdops.laplacian((3, 4), like=asarray(np.zeros((1,))))
    u = asarray(np.ones((3, 4)))
    with backends.use_generic():
        assert backends.lookup("ssd_apply", xp) is None
        assert float(to_numpy(op @ u).sum()) == 0.0
    with pytest.raises(AssertionError, match="fast path called"):
        op @ u


def test_unknown_namespace_has_no_fast_path():
    xps = pytest.importorskip("array_api_strict")
    assert backends.lookup("ssd_apply", xps) is None


# --------------------------------------------------------------------------- forward values


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_apply_and_transpose_match_generic(fw, dtype):
    xp, asarray = framework(fw)
    rng = np.random.default_rng(0)
    for grid, name, (dbatch, ubatch) in cases(fw):
        offsets = OFFSETS[name]
        d = asarray(rng.standard_normal(dbatch + (len(offsets),) + grid).astype(dtype))
        u = asarray(rng.standard_normal(ubatch + grid).astype(dtype))
        assert_close(kernel("ssd_apply", xp)(diagonals=d, offsets=offsets, u=u), apply_generic(xp, d, offsets, u),
                     dtype)
        assert_close(kernel("ssd_apply_transpose", xp)(diagonals=d, offsets=offsets, u=u),
                     apply_transpose_generic(xp, d, offsets, u), dtype)


ND_CASES = [
    # (offsets, grid, diagonals batch, image batch)
    (ssdops.THREE_POINT, (1,), (), ()),
    (ssdops.THREE_POINT, (9,), (2, 1), (3,)),
    (((0,), (2,), (-3,)), (7,), (), (2,)),
    (ssdops.SEVEN_POINT, (1, 1, 1), (), ()),
    (ssdops.SEVEN_POINT, (4, 5, 6), (2,), (2,)),
    (ssdops.SEVEN_POINT, (1, 3, 4), (), (2, 1)),
    (ssdops.TWENTY_SEVEN_POINT, (3, 1, 5), (2, 1), (3,)),
    (((0, 0, 2), (2, 1, 0), (-1, 0, 0)), (4, 3, 5), (), ()),
]


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_apply_and_transpose_in_1d_and_3d_match_generic(fw):
    """1-D and 3-D grids: the public apply (a fast path where the library has one for that dimension)
    equals the generic code, batches broadcasting."""
    xp, asarray = framework(fw)
    rng = np.random.default_rng(11)
    cases_here = ND_CASES if fw != "jax" else ND_CASES[1:2] + ND_CASES[4:5]
    for offsets, grid, dbatch, ubatch in cases_here:
        d = asarray(rng.standard_normal(dbatch + (len(offsets),) + grid))
        u = asarray(rng.standard_normal(ubatch + grid))
        op = ssdops.SSD(d, offsets)
        assert_close(op @ u, apply_generic(xp, d, offsets, u), "float64")
        assert_close(op.rmatvec(u), apply_transpose_generic(xp, d, offsets, u), "float64")


@pytest.mark.parametrize("fw", ["numpy", "torch"])
@pytest.mark.parametrize("grid", [(9,), (1,), (3, 4, 5), (1, 3, 1)])
def test_filter_and_perona_malik_kernels_in_1d_and_3d_match_generic(fw, grid):
    """The NumPy kernels (and PyTorch's, which run them on the host and the generic code under autograd) on
    signals and volumes, against the generic code; PyTorch's gradients against autograd of the generic code."""
    xp, asarray = framework(fw)
    ndim = len(grid)
    rng = np.random.default_rng(21)
    u = asarray(rng.standard_normal((2,) + grid))
    zeta = asarray(rng.standard_normal((2, 2 * ndim + 1) + grid))
    filter_kernel = backends.lookup("filter_step", xp, ndim)
    assert filter_kernel is not None and backends.lookup("perona_malik_step", xp, ndim) is not None
    with backends.use_generic():
        want_filter = ssdops.filter_step(u, zeta, 0.3)
    assert_close(filter_kernel(u=u, zeta=zeta, dt=0.3), want_filter, "float64")
    for bc, ghost in (("neumann", None), ("dirichlet", 0.0), ("dirichlet", 0.7)):
        with backends.use_generic():
            want = ssdops.perona_malik_step(u, dt=0.1, lam=0.2, ndim=ndim, bc=bc, ghost_gamma=ghost)
        got = backends.lookup("perona_malik_step", xp, ndim)(u=u, dt=0.1, lam=0.2, diffusivity="perona_malik", bc=bc,
                                                             ghost_gamma=ghost, ndim=ndim)
        assert_close(got, want, "float64")
    if fw == "torch":
        from torch.autograd import gradcheck

        leaf = u.clone().requires_grad_()
        assert gradcheck(lambda v: ssdops.perona_malik_step(v, dt=0.1, lam=0.2, ndim=ndim), (leaf,))
        assert gradcheck(lambda v, z: ssdops.filter_step(v, z, 0.3), (leaf, zeta.clone().requires_grad_()))


def test_numpy_has_3d_and_1d_apply():
    for ndim in (1, 3):
        assert backends.lookup("ssd_apply", np, ndim) is not None
        assert backends.lookup("ssd_apply_transpose", np, ndim) is not None


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_out_of_grid_values_never_reach_the_result(fw):
    """inf / NaN in diagonal entries whose neighbour is outside the grid are not matrix entries."""
    xp, asarray = framework(fw)
    rng = np.random.default_rng(1)
    H, W = 4, 5
    for offsets in (NINE, WIDE):
        d = rng.standard_normal((2, len(offsets), H, W))
        poisoned = d.copy()
        for k, (dy, dx) in enumerate(offsets):
            i, j = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
            outside = (i + dy < 0) | (i + dy >= H) | (j + dx < 0) | (j + dx >= W)
            poisoned[:, k][:, outside] = np.where(rng.random(outside.sum()) < 0.5, np.inf, np.nan)
            d[:, k][:, outside] = 0.0
        u = asarray(rng.standard_normal((2, H, W)))
        for name in ("ssd_apply", "ssd_apply_transpose"):
            got = to_numpy(kernel(name, xp)(diagonals=asarray(poisoned), offsets=offsets, u=u))
            assert np.all(np.isfinite(got))
            assert_close(got, kernel(name, xp)(diagonals=asarray(d), offsets=offsets, u=u), "float64")
    zeta = rng.standard_normal((5, H, W))
    zeta[0, 0], zeta[1, :, 0], zeta[2, -1], zeta[3, :, -1] = np.inf, np.nan, -np.inf, np.nan
    got = to_numpy(kernel("filter_step", xp)(u=asarray(rng.standard_normal((H, W))), zeta=asarray(zeta), dt=0.1))
    assert np.all(np.isfinite(got))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_filter_step_matches_generic(fw, dtype):
    xp, asarray = framework(fw)
    rng = np.random.default_rng(2)
    for grid, _, (zbatch, ubatch) in cases(fw)[:: 4 if fw != "jax" else 1]:
        zeta = asarray(rng.standard_normal(zbatch + (5,) + grid).astype(dtype))
        u = asarray(rng.standard_normal(ubatch + grid).astype(dtype))
        for dt in (0.3, asarray(np.asarray(0.2, dtype=dtype))):
            with backends.use_generic():
                reference = ssdops.filter_step(u, zeta, dt)
            assert_close(kernel("filter_step", xp)(u=u, zeta=zeta, dt=dt), reference, dtype)
            assert_close(ssdops.filter_step(u, zeta, dt), reference, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_perona_malik_step_matches_generic(fw, dtype):
    xp, asarray = framework(fw)
    rng = np.random.default_rng(3)
    grids = [(1, 6)] if fw == "jax" else GRIDS
    diffusivities = DIFFUSIVITIES[:2] if fw == "jax" else DIFFUSIVITIES
    for grid in grids:
        u = asarray(rng.random((2, 3) + grid).astype(dtype))
        for name in diffusivities:
            for bc, ghost_gamma in BOUNDARIES:
                with backends.use_generic():
                    reference = ssdops.perona_malik_step(u, dt=0.1, lam=0.2, diffusivity=name, bc=bc,
                                                         ghost_gamma=ghost_gamma, check_stable=False)
                got = kernel("perona_malik_step", xp)(u=u, dt=0.1, lam=0.2, diffusivity=name, bc=bc,
                                                       ghost_gamma=ghost_gamma, ndim=2)
                assert_close(got, reference, dtype)


@pytest.mark.parametrize("threads", [1, 3])
def test_numpy_blocks_and_fallback_batches(monkeypatch, threads):
    """Tiny blocks (several per image, partial last block), runs of blocks on several threads, and a
    batch that cannot be merged into one axis without a copy give the same values as the generic code."""
    from ssdops.backends import _numpy as numpy_backend

    monkeypatch.setattr(numpy_backend, "THREADS", threads)
    monkeypatch.setattr(numpy_backend, "PARALLEL_MIN_ELEMENTS", 0)
    rng = np.random.default_rng(4)
    d = rng.standard_normal((3, 1, 9, 13, 11))
    u = rng.standard_normal((3, 2, 13, 11))
    for block_bytes in (8, 8 * 11 * 4, 8 * 13 * 11 * 5):
        monkeypatch.setattr(numpy_backend, "BLOCK_BYTES", block_bytes)
        assert_close(numpy_backend.ssd_apply(diagonals=d, offsets=NINE, u=u), apply_generic(np, d, NINE, u), "float64")
        assert_close(numpy_backend.ssd_apply_transpose(diagonals=d, offsets=NINE, u=u),
                     apply_transpose_generic(np, d, NINE, u), "float64")
        assert_close(numpy_backend.filter_step(u=u, zeta=d[:, :, :5], dt=0.1),
                     u + ssdops.ssd_from_filters(d[:, :, :5], 0.1).matvec(u), "float64")
        with backends.use_generic():
            reference = ssdops.perona_malik_step(u, dt=0.1, lam=0.2, bc="dirichlet", ghost_gamma=0.0)
        assert_close(numpy_backend.perona_malik_step(u=u, dt=0.1, lam=0.2, diffusivity="perona_malik",
                                                     bc="dirichlet", ghost_gamma=0.0, ndim=2),
                     reference, "float64")
    # Non-contiguous planes are copied once, not misread.
    ut = np.swapaxes(rng.standard_normal((11, 13)), 0, 1)
    assert_close(numpy_backend.ssd_apply(diagonals=d[0, 0], offsets=NINE, u=ut), apply_generic(np, d[0, 0], NINE,
                                                                                               ut), "float64")


# --------------------------------------------------------------------------- PyTorch


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def test_torch_functional_form_matches(torch):
    """The functional form compiled for CUDA computes the same values (checked here on the CPU)."""
    from ssdops.backends import _torch as torch_backend

    xp = array_api_compat.array_namespace(torch.empty(0))
    rng = np.random.default_rng(5)
    for offsets in (FIVE, NINE, WIDE):
        d = torch.from_numpy(rng.standard_normal((2, 1, len(offsets), 4, 6)))
        u = torch.from_numpy(rng.standard_normal((3, 4, 6)))
        for transpose, generic in ((False, apply_generic), (True, apply_transpose_generic)):
            assert_close(torch_backend._functional(d, offsets, u, transpose), generic(xp, d, offsets, u),
                         "float64")
    zeta = torch.from_numpy(rng.standard_normal((5, 4, 6)))
    with backends.use_generic():
        reference = ssdops.filter_step(u, zeta, 0.3)
    assert_close(torch_backend._filter_functional(u, zeta, 0.3), reference, "float64")


def test_torch_gradcheck(torch):
    from torch.autograd import gradcheck, gradgradcheck

    rng = np.random.default_rng(6)

    def leaf(shape):
        return torch.from_numpy(rng.standard_normal(shape)).requires_grad_()

    d, u = leaf((2, 1, 9, 3, 4)), leaf((3, 3, 4))
    for name in ("ssd_apply", "ssd_apply_transpose"):
        fast = backends.lookup(name, array_api_compat.array_namespace(u))
        assert gradcheck(lambda d, u: fast(diagonals=d, offsets=NINE, u=u), (d, u))
    wide = leaf((len(WIDE), 3, 4))
    assert gradcheck(lambda d, u: ssdops.SSD(d, WIDE) @ u, (wide, u))
    assert gradgradcheck(lambda d, u: ssdops.SSD(d, NINE) @ u, (d, u))
    zeta, dt = leaf((2, 1, 5, 3, 4)), torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda u, z, dt: ssdops.filter_step(u, z, dt), (u, zeta, dt))
    assert gradgradcheck(lambda u, z, dt: ssdops.filter_step(u, z, dt), (u, zeta, dt))
    assert gradcheck(lambda u, z: ssdops.filter_step(u, z, 0.1), (u, zeta))
    image = torch.from_numpy(rng.random((2, 3, 4))).requires_grad_()
    for bc, ghost_gamma in BOUNDARIES[:3]:
        assert gradcheck(lambda u: ssdops.perona_malik_step(u, dt=0.1, lam=0.2, bc=bc,
                                                            ghost_gamma=ghost_gamma), (image,))


def test_torch_gradients_reduce_over_broadcast_axes(torch):
    d = torch.randn(9, 4, 5, dtype=torch.float64, requires_grad=True)
    u = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    (ssdops.SSD(d, NINE) @ u).sum().backward()
    d_ref, u_ref = d.detach().clone().requires_grad_(), u.detach().clone().requires_grad_()
    with backends.use_generic():
        (ssdops.SSD(d_ref, NINE) @ u_ref).sum().backward()
    assert_close(d.grad, d_ref.grad, "float64")
    assert_close(u.grad, u_ref.grad, "float64")


@pytest.mark.slow
def test_torch_compile_fullgraph(torch):
    """``filter_step`` (forward and backward), an SSD product and a DiffNet layer compile without graph
    breaks.

    ``SSD @ u`` itself cannot: torch 2.13's dynamo has no ``@`` between a user class and a tensor
    (pytorch PR #189585 adds it), so the product is compiled as ``op.matvec(u)``.
    """
    u = torch.randn(2, 6, 7)
    zeta = torch.randn(2, 5, 6, 7, requires_grad=True)
    dt = torch.tensor(0.1, requires_grad=True)
    step = torch.compile(lambda u, z, dt: ssdops.filter_step(u, z, dt), fullgraph=True)
    out = step(u, zeta, dt)
    out.square().sum().backward()
    with backends.use_generic():
        reference = ssdops.filter_step(u, zeta.detach(), dt.detach())
    assert_close(out, reference, "float32")
    assert zeta.grad.shape == zeta.shape and dt.grad.shape == ()
    product = torch.compile(lambda d, u: ssdops.SSD(d, NINE).matvec(u), fullgraph=True)
    d = torch.randn(9, 6, 7)
    assert_close(product(d, u), apply_generic(array_api_compat.array_namespace(u), d, NINE, u), "float32")
    # A whole DiffNet layer (filter estimator + update) compiles in one graph, forward and backward.
    diffnet_torch = pytest.importorskip("diffnet_torch")
    layer = diffnet_torch.DiffusionLayer()
    image = torch.rand(2, 1, 6, 7)
    compiled = torch.compile(layer, fullgraph=True)(image)
    compiled.sum().backward()
    assert_close(compiled, layer(image), "float32")
    assert layer.dt.grad is not None


@pytest.mark.gpu
def test_torch_cuda_kernels_match_generic(torch):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    xp = array_api_compat.array_namespace(torch.empty(0))
    d = torch.randn(2, 9, 33, 40, dtype=torch.float64, device="cuda")
    u = torch.randn(2, 33, 40, dtype=torch.float64, device="cuda")
    assert_close(ssdops.SSD(d, NINE) @ u, apply_generic(xp, d, NINE, u), "float64")
    assert_close(ssdops.SSD(d, NINE).rmatvec(u), apply_transpose_generic(xp, d, NINE, u), "float64")
    with backends.use_generic():
        filtered = ssdops.filter_step(u, d[:, :5], 0.2)
        smoothed = ssdops.perona_malik_step(u, dt=0.1, lam=0.2, bc="dirichlet", ghost_gamma=0.0)
    assert_close(ssdops.filter_step(u, d[:, :5], 0.2), filtered, "float64")
    assert_close(ssdops.perona_malik_step(u, dt=0.1, lam=0.2, bc="dirichlet", ghost_gamma=0.0), smoothed,
                 "float64")


# --------------------------------------------------------------------------- JAX


def test_jax_transformations():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.test_util import check_grads

    rng = np.random.default_rng(7)
    d = jnp.asarray(rng.standard_normal((9, 4, 5)))
    u = jnp.asarray(rng.standard_normal((2, 4, 5)))
    check_grads(lambda d, u: ssdops.SSD(d, NINE) @ u, (d, u), order=1, modes=("rev", "fwd"))
    check_grads(lambda d, u: ssdops.SSD(d, NINE).rmatvec(u), (d, u), order=1, modes=("rev", "fwd"))
    check_grads(lambda u, z, dt: ssdops.filter_step(u, z, dt), (u, d[:5], 0.3), order=1,
                modes=("rev", "fwd"))
    pm = jax.jit(lambda u, dt, lam: ssdops.perona_malik_step(u, dt=dt, lam=lam, bc="dirichlet",
                                                             ghost_gamma=0.0))
    check_grads(pm, (jnp.abs(u), 0.1, 0.2), order=1, modes=("rev", "fwd"))
    # vmap over a traced dt, and over images against the unbatched kernel.
    per_dt = jax.jit(jax.vmap(lambda dt: ssdops.filter_step(u, d[:5], dt)))(jnp.asarray([0.1, 0.2]))
    assert_close(per_dt[1], ssdops.filter_step(u, d[:5], 0.2), "float64")
    per_image = jax.vmap(lambda v: ssdops.SSD(d, NINE) @ v)(u)
    assert_close(per_image, ssdops.SSD(d, NINE) @ u, "float64")


# --------------------------------------------------------------------------- CuPy


@pytest.mark.gpu
def test_cupy_kernels_match_generic():
    cupy = pytest.importorskip("cupy")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:
        pytest.skip("no CUDA device")
    xp = array_api_compat.array_namespace(cupy.empty(0))
    rng = np.random.default_rng(8)
    for dtype in ("float32", "float64"):
        for grid, name, (dbatch, ubatch) in cases("numpy")[::3]:
            offsets = OFFSETS[name]
            d = cupy.asarray(rng.standard_normal(dbatch + (len(offsets),) + grid).astype(dtype))
            u = cupy.asarray(rng.standard_normal(ubatch + grid).astype(dtype))
            assert_close(kernel("ssd_apply", xp)(diagonals=d, offsets=offsets, u=u), apply_generic(xp, d, offsets,
                                                                                                   u), dtype)
            assert_close(kernel("ssd_apply_transpose", xp)(diagonals=d, offsets=offsets, u=u),
                         apply_transpose_generic(xp, d, offsets, u), dtype)
            if name == "five":
                with backends.use_generic():
                    reference = ssdops.filter_step(u, d, 0.3)
                assert_close(kernel("filter_step", xp)(u=u, zeta=d, dt=0.3), reference, dtype)
        image = cupy.asarray(rng.random((2, 5, 7)).astype(dtype))
        for diffusivity in DIFFUSIVITIES:
            for bc, ghost_gamma in BOUNDARIES:
                with backends.use_generic():
                    reference = ssdops.perona_malik_step(image, dt=0.1, lam=0.2, diffusivity=diffusivity,
                                                         bc=bc, ghost_gamma=ghost_gamma, check_stable=False)
                assert_close(kernel("perona_malik_step", xp)(u=image, dt=0.1, lam=0.2, diffusivity=diffusivity, bc=bc,
                                                                ghost_gamma=ghost_gamma, ndim=2),
                             reference, dtype)


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_is_all_finite_answers_like_numpy(xp, dtype_name):
    """Each adapter's finite check (one reduction) against NumPy's elementwise test: NaN, +inf and -inf
    anywhere, and finite values whose sum overflows (the case the reduction alone would call non-finite)."""
    from support import asarray

    big = float(np.finfo(dtype_name).max) / 2
    cases = {"finite": np.arange(12.0).reshape(3, 4), "overflowing sum": np.full((3, 4), big),
             "one element": np.array([[2.0]])}
    for where in [(0, 0), (2, 3)]:
        for bad in [np.nan, np.inf, -np.inf]:
            a = np.ones((3, 4))
            a[where] = bad
            cases[f"{bad} at {where}"] = a
    for name, a in cases.items():
        x = asarray(xp, a, dtype_name)
        assert backends.adapter_for(x).is_all_finite(x) == bool(np.isfinite(a).all()), name
