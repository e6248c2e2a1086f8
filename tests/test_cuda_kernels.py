"""The GPU code paths of ssdops, proven on a machine without a GPU.

- ``backends/cuda/kernels.cu`` compiles with nvcc (``--ptx``, sm_80 and sm_90, float and double, every
  warning an error) into every kernel, with the parameter lists of the host emulation's build of the same
  source; every emulated launch checks its arguments against those lists (what CuPy packs).
- The same ``__host__ __device__`` thread functions, built by g++ into a ctypes library
  (``backends/cuda/emulate.cpp``: loops over blocks and threads with the CUDA index arithmetic), run the
  launch plans of ``backends/_cupy.py`` on NumPy arrays and agree with the generic array-API code
  (``ssdops._kernels``) for every operation, offset set, boundary condition, ``ghost_gamma``, diffusivity,
  batch broadcast, dtype and odd or degenerate grid, on 2-D and 3-D grids. Every array argument sits between
  NaN guard bands and the output starts as NaN: an out-of-bounds read, an unwritten pixel or a stray write
  fails a test.
- The functional forms of ``backends/_torch.py`` that inductor compiles on CUDA, compiled by
  ``torch.compile`` (inductor) for the CPU, agree with the generic code (slow: inductor compiles C++).
- On a machine with a GPU and CuPy, the GPU runs the same launches and agrees with the emulation.

Build products go to a temporary folder per session, never into the repository.
"""
import ctypes
import itertools
import math
import re
import shutil
import subprocess
import zlib

import array_api_compat
import numpy as np
import pytest

from ssdops import diffusivity as diffusivities
from ssdops._kernels import (
    apply_generic,
    apply_transpose_generic,
    filter_step_generic,
    perona_malik_step_generic,
)
from ssdops.backends import _cupy
from ssdops.stencils import FIVE_POINT, NINE_POINT, SEVEN_POINT, TWENTY_SEVEN_POINT, star

pytestmark = pytest.mark.cuda_cpu

XP = array_api_compat.array_namespace(np.empty(0))
# Asymmetric, reaching further than the small grids (whole rows or columns of products vanish).
WIDE = ((0, 0), (-2, 3), (4, -1), (0, -6), (3, 3), (-1, -5))
WIDE_3D = ((0, 0, 0), (-2, 1, 3), (1, -3, -1), (0, 0, -5), (3, 2, 0), (-1, -4, 2), (0, 1, 1))
OFFSETS = {"five": FIVE_POINT, "nine": NINE_POINT, "wide": WIDE,
           "seven": SEVEN_POINT, "twenty_seven": TWENTY_SEVEN_POINT, "wide_3d": WIDE_3D}
# Per grid dimension: single pixels, length-1 axes, odd sizes.
GRIDS = {2: [(1, 1), (1, 9), (9, 1), (7, 5), (12, 17)], 3: [(1, 1, 1), (1, 3, 4), (3, 1, 5), (4, 5, 6)]}
EVERY_GRID = GRIDS[2] + GRIDS[3]
# (offset set, grid) pairs of the same dimension.
APPLY_CASES = [(name, grid) for name, stencil in OFFSETS.items() for grid in GRIDS[len(stencil[0])]]
DTYPES = ["float32", "float64"]
# (operator batch, image batch): none, a shared image, a shared operator, both batched, a broadcast axis
# next to a real one (a copy), size-1 axes only (stride 0).
BATCHES = [((), ()), ((3,), ()), ((), (3,)), ((2, 3), (2, 3)), ((2, 1), (1, 3)), ((1,), (2, 3))]
BOUNDARIES = [("neumann", None), ("dirichlet", None), ("dirichlet", 0.0), ("dirichlet", 0.7)]
# Every built-in diffusivity of ssdops (a new one fails these tests until it has a kernel).
DIFFUSIVITIES = sorted(n for n in diffusivities.__all__ if diffusivities.name_of(getattr(diffusivities, n)) == n)
GUARD = 16
OUT_GUARD_VALUE = -12345.0


def seed(*case):
    """A random seed per test case, the same in every process (``hash`` of a str is not)."""
    return zlib.crc32(repr(case).encode())


# --- the host emulation ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """``backends/cuda/emulate.cpp`` built by g++ (all warnings errors) into a temporary ctypes library."""
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ is not installed: the CUDA kernels cannot run on the host")
    library = tmp_path_factory.mktemp("cuda_emulation") / "libssdops_emulate.so"
    command = [gxx, "-std=c++17", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-pedantic",
               f"-I{_cupy.CUDA_DIR}", str(_cupy.CUDA_DIR / "emulate.cpp"), "-o", str(library)]
    built = subprocess.run(command, capture_output=True, text=True)
    assert built.returncode == 0, f"g++ failed:\n{' '.join(command)}\n{built.stderr}"
    return ctypes.CDLL(str(library))


# Parameter types of SSDOPS_KERNELS: pointers (by element type) and scalars, with their ctypes.
POINTEES = {"float": np.float32, "double": np.float64, "int": np.int32}
SCALARS = {"int": (np.int32, ctypes.c_int32), "ssdops::index_t": (np.int64, ctypes.c_int64)}


def kernel_parameters(library, kernel):
    """[(C type, is pointer), ...] of ``kernel`` from the emulation's ``signature_<kernel>()``."""
    signature = getattr(library, "signature_" + kernel.removeprefix("ssdops_"))
    signature.restype = ctypes.c_char_p
    parameters = []
    for declaration in signature().decode().strip("()").split(","):
        words = declaration.replace("*", " * ").split()[:-1]  # drop the parameter's name
        words = [w for w in words if w != "const"]
        parameters.append((words[0], words[1:] == ["*"]))
    return parameters


def emulate(library, launch):
    """Run ``launch`` (a :class:`backends._cupy.Launch` on NumPy arrays) through the host emulation.

    Each argument is first checked against the kernel's parameter list (an array of the pointee's dtype
    for a pointer, a NumPy scalar of the parameter's width otherwise: what CuPy packs). Each array is
    copied into the middle of a buffer with ``GUARD`` elements either side: NaN (or the largest integer)
    around inputs, so that an out-of-bounds read that reaches the result makes it NaN; the output starts
    as NaN (every pixel must be written) between guards of ``OUT_GUARD_VALUE``, which must survive (no
    stray write). Returns the output.
    """
    parameters = kernel_parameters(library, launch.kernel)
    assert len(parameters) == len(launch.args), f"{launch.kernel}: {len(launch.args)} arguments for {parameters}"
    arguments, keep, out_buffer = [], [], None
    for position, (arg, (c_type, is_pointer)) in enumerate(zip(launch.args, parameters)):
        where = f"{launch.kernel} argument {position} ({c_type}{' *' if is_pointer else ''})"
        if is_pointer:
            assert isinstance(arg, np.ndarray) and arg.dtype == POINTEES[c_type], f"{where}: got {arg!r}"
            assert arg.flags.c_contiguous, f"{where}: not C-contiguous"
            is_out = arg is launch.out
            inputs_guard = np.nan if arg.dtype.kind == "f" else np.iinfo(arg.dtype).max
            buffer = np.full(arg.size + 2 * GUARD, OUT_GUARD_VALUE if is_out else inputs_guard, dtype=arg.dtype)
            buffer[GUARD : GUARD + arg.size] = np.nan if is_out else arg.reshape(-1)
            out_buffer = buffer if is_out else out_buffer
            keep.append(buffer)
            arguments.append(ctypes.c_void_p(buffer.ctypes.data + GUARD * arg.itemsize))
        else:
            numpy_type, c_scalar = SCALARS[c_type]
            assert type(arg) is numpy_type, f"{where}: got {arg!r} of type {type(arg).__name__}"
            arguments.append(c_scalar(int(arg)))
    assert out_buffer is not None, f"{launch.kernel}: the launch does not pass its output"
    function = getattr(library, "emulate_" + launch.kernel.removeprefix("ssdops_"))
    function.restype = None
    function(ctypes.c_int64(launch.grid), ctypes.c_int(launch.block), *arguments)
    n = launch.out.size
    guards = np.concatenate([out_buffer[:GUARD], out_buffer[GUARD + n :]])
    assert np.all(guards == OUT_GUARD_VALUE), "the kernel wrote outside its output"
    return out_buffer[GUARD : GUARD + n].reshape(launch.out.shape)


def assert_matches(result, reference, dtype, what):
    """Agreement to rounding: the emulation sums the same terms in the same order as the generic code."""
    reference = np.asarray(reference)
    assert result.shape == reference.shape and result.dtype == reference.dtype == np.dtype(dtype), what
    assert np.all(np.isfinite(result)), f"{what}: non-finite values (an unwritten pixel or a guard read)"
    eps = np.finfo(dtype).eps
    scale = max(1.0, float(np.max(np.abs(reference), initial=0.0)))
    np.testing.assert_allclose(result, reference, rtol=16 * eps, atol=16 * eps * scale, err_msg=what)


def poisoned_diagonals(rng, batch, offsets, grid, dtype):
    """Random diagonals ``batch + (K, H, W)`` with NaN wherever the neighbour lies outside the grid: values
    that are no entries of the matrix, which no kernel may read."""
    d = rng.uniform(-1.0, 1.0, batch + (len(offsets),) + tuple(grid))
    coordinates = np.meshgrid(*(np.arange(n) for n in grid), indexing="ij")
    for k, offset in enumerate(offsets):
        outside = np.zeros(grid, dtype=bool)
        for at, o, n in zip(coordinates, offset, grid):
            outside |= (at + o < 0) | (at + o >= n)
        d[(..., k) + (slice(None),) * len(grid)][..., outside] = np.nan
    return d.astype(dtype)


def grid_id(grid):
    return "x".join(map(str, grid))


# --- ssd_apply, ssd_apply_transpose ----------------------------------------------------------------------
@pytest.mark.parametrize("transpose", [False, True], ids=["A", "AT"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offsets, grid", APPLY_CASES, ids=lambda v: v if isinstance(v, str) else grid_id(v))
def test_apply_matches_generic(emulator, offsets, grid, dtype, transpose):
    rng = np.random.default_rng(seed(offsets, grid, dtype, transpose))
    stencil = OFFSETS[offsets]
    generic = apply_transpose_generic if transpose else apply_generic
    for d_batch, u_batch in BATCHES:
        d = poisoned_diagonals(rng, d_batch, stencil, grid, dtype)
        u = rng.uniform(-1.0, 1.0, u_batch + grid).astype(dtype)
        out = emulate(emulator, _cupy.plan_apply(np, d, stencil, u, transpose))
        assert_matches(out, generic(XP, d, stencil, u), dtype, f"batches {d_batch} {u_batch}")


@pytest.mark.parametrize("stencil, grid", [(NINE_POINT, (7, 5)), (TWENTY_SEVEN_POINT, (3, 5, 4))], ids=["2d", "3d"])
@pytest.mark.parametrize("block", [1, 7, 32, 1024])
def test_thread_mapping_any_block_size(emulator, block, stencil, grid):
    """Grids of blocks of any size cover every pixel once: partial last blocks, blocks spanning images."""
    rng = np.random.default_rng(block)
    d = poisoned_diagonals(rng, (3,), stencil, grid, "float64")
    u = rng.standard_normal((3,) + grid)
    launch = _cupy.plan_apply(np, d, stencil, u, False, block=block)
    assert launch.grid == -(-3 * math.prod(grid) // block) and launch.block == block
    assert_matches(emulate(emulator, launch), apply_generic(XP, d, stencil, u), "float64", f"block {block}")


@pytest.mark.parametrize("transpose", [False, True], ids=["A", "AT"])
def test_2d_apply_is_3d_apply_of_one_plane(emulator, transpose):
    """One kernel for both dimensions: a 2-D launch computes, bit for bit, the 3-D launch of the grid as one
    plane (depth 1, depth offsets 0)."""
    rng = np.random.default_rng(seed("one plane", transpose))
    d = poisoned_diagonals(rng, (2,), WIDE, (7, 9), "float32")
    u = rng.uniform(-1.0, 1.0, (2, 7, 9)).astype("float32")
    planar = tuple((0,) + o for o in WIDE)
    out_2d = emulate(emulator, _cupy.plan_apply(np, d, WIDE, u, transpose))
    out_3d = emulate(emulator, _cupy.plan_apply(np, d[:, :, None], planar, u[:, None], transpose))
    np.testing.assert_array_equal(out_3d[:, 0], out_2d)


def test_other_grid_dimensions_are_refused():
    with pytest.raises(ValueError, match="2-D or 3-D grids, got 1-D"):
        _cupy.plan_apply(np, np.ones((3, 8)), ((-1,), (1,), (0,)), np.ones(8), False)


def test_empty_batch_launches_nothing():
    launch = _cupy.plan_apply(np, np.ones((5, 4, 4)), FIVE_POINT, np.ones((0, 4, 4)), False)
    assert launch.grid == 0 and launch.out.shape == (0, 4, 4)


def test_unsupported_dtype_is_named():
    with pytest.raises(TypeError, match="float16"):
        _cupy.plan_apply(np, np.ones((5, 4, 4), np.float16), FIVE_POINT, np.ones((4, 4), np.float16), False)


# --- filter_step ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grid", EVERY_GRID, ids=grid_id)
def test_filter_step_matches_generic(emulator, grid, dtype):
    """FIVE_POINT maps (..., 5, H, W) on 2-D grids, SEVEN_POINT maps (..., 7, D, H, W) on 3-D ones."""
    rng = np.random.default_rng(seed(grid, dtype))
    for z_batch, u_batch in BATCHES:
        for dt in (0.3, np.asarray(-0.7, dtype=dtype)):  # a Python number, a 0-d array
            zeta = poisoned_diagonals(rng, z_batch, star(len(grid)), grid, dtype)
            u = rng.uniform(-1.0, 1.0, u_batch + grid).astype(dtype)
            out = emulate(emulator, _cupy.plan_filter_step(np, u, zeta, dt))
            assert_matches(out, filter_step_generic(XP, u, zeta, dt), dtype, f"batches {z_batch} {u_batch}, dt {dt}")


# --- perona_malik_step ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bc, ghost_gamma", BOUNDARIES, ids=lambda v: str(v))
@pytest.mark.parametrize("name", DIFFUSIVITIES)
def test_perona_malik_step_matches_generic(emulator, name, bc, ghost_gamma, dtype):
    rng = np.random.default_rng(seed(name, bc, ghost_gamma, dtype))
    for grid in EVERY_GRID:
        ndim = len(grid)
        for batch in ((), (2, 3)):
            # lam 0.5 on values in [0, 1]: s2 / lam^2 from 0 to about 8 (2-D; 12 in 3-D), the whole range of g.
            u = rng.uniform(0.0, 1.0, batch + grid).astype(dtype)
            out = emulate(emulator, _cupy.plan_perona_malik_step(np, u, 0.1, 0.5, name, bc, ghost_gamma, ndim))
            reference = perona_malik_step_generic(XP, u, 0.1, 0.5, diffusivities.resolve(name), bc, ghost_gamma,
                                                  ndim=ndim)
            assert_matches(out, reference, dtype, f"grid {grid}, batch {batch}")


def test_perona_malik_step_takes_0d_arrays(emulator):
    """dt, lam and ghost_gamma may be 0-d arrays (a learnable dt): read on the device, never on the host."""
    rng = np.random.default_rng(3)
    u = rng.uniform(0.0, 1.0, (2, 6, 5))
    dt, lam, ghost = np.asarray(0.2), np.asarray(0.3), np.asarray(0.4)
    out = emulate(emulator, _cupy.plan_perona_malik_step(np, u, dt, lam, "charbonnier", "dirichlet", ghost))
    reference = perona_malik_step_generic(XP, u, 0.2, 0.3, diffusivities.charbonnier, "dirichlet", 0.4)
    assert_matches(out, reference, "float64", "0-d dt, lam, ghost_gamma")


def test_every_diffusivity_has_a_code():
    assert sorted(_cupy.DIFFUSIVITY_CODES) == DIFFUSIVITIES
    assert len(set(_cupy.DIFFUSIVITY_CODES.values())) == len(DIFFUSIVITIES)


# --- nvcc ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["sm_80", "sm_90"])
def ptx(request, tmp_path_factory):
    """The kernels' source as CuPy hands it to NVRTC (``_cupy.kernel_source()``), compiled by nvcc to PTX for
    one architecture, every warning an error."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    folder = tmp_path_factory.mktemp("ptx")
    source, target = folder / "ssdops_kernels.cu", folder / f"ssdops_kernels_{request.param}.ptx"
    source.write_text(_cupy.kernel_source())
    command = [nvcc, "--ptx", f"-arch={request.param}", "-std=c++17", "-Werror", "all-warnings", str(source),
               "-o", str(target)]
    built = subprocess.run(command, capture_output=True, text=True)
    assert built.returncode == 0, f"nvcc failed:\n{' '.join(command)}\n{built.stderr}"
    assert not built.stderr.strip(), f"nvcc printed diagnostics:\n{built.stderr}"
    return target.read_text()


def ptx_parameters(ptx_text):
    """{entry name: [parameter size in bytes, ...]} of the PTX's kernels."""
    entries = {}
    for name, params in re.findall(r"\.entry\s+(\w+)\s*\(([^)]*)\)", ptx_text):
        entries[name] = [int(bits) // 8 for bits in re.findall(r"\.param\s+\.[busf](\d+)", params)]
    return entries


def test_nvcc_compiles_every_kernel(ptx):
    expected = {f"ssdops_{op}_{suffix}" for op in _cupy.KERNEL_OPERATIONS for suffix in _cupy.SUFFIXES.values()}
    assert set(ptx_parameters(ptx)) == expected


def test_emulation_has_every_kernel_with_the_ptx_parameters(emulator, ptx):
    """The host emulation and the GPU build come from the same source: same kernels, same parameters."""
    sizes = {"float": 4, "double": 8, "int": 4, "ssdops::index_t": 8}
    for kernel, ptx_sizes in ptx_parameters(ptx).items():
        parameters = kernel_parameters(emulator, kernel)
        assert [8 if is_pointer else sizes[c_type] for c_type, is_pointer in parameters] == ptx_sizes, kernel


# --- the PyTorch CUDA path, compiled by inductor for the CPU ---------------------------------------------
def compiled_cases(fn, cases):
    """``[fn(*case) for case in cases]`` compiled by inductor as on CUDA (``backends._torch._compiled``:
    dynamic shapes) in one graph: one compilation for all cases (each costs seconds of C++ compiling), and a
    graph break raises instead of running Python."""
    torch = pytest.importorskip("torch")
    torch._dynamo.reset()
    tensors = [[torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in case] for case in cases]
    every_case = torch.compile(lambda *flat: [fn(*case) for case in flat], dynamic=True, fullgraph=True)
    return [out.numpy() for out in every_case(*tensors)]


@pytest.mark.slow
def test_torch_cuda_path_inductor_cpu():
    """float64 (the graphs are dtype-generic): both apply directions (FIVE_POINT, the wide set, broadcast
    batches), filter_step, and the Perona-Malik step for every diffusivity and every boundary handling (each
    diffusivity with one of them, in turn: every variant is C++ to compile)."""
    from ssdops.backends import _torch

    dtype = "float64"
    rng = np.random.default_rng(11)
    grid = (7, 9)
    cases, references = [], []
    for stencil, transpose, (d_batch, u_batch, shape) in ((FIVE_POINT, False, ((), (3,), grid)),
                                                          (WIDE, True, ((2, 1), (2, 3), (5, 4)))):
        d = poisoned_diagonals(rng, d_batch, stencil, shape, dtype)
        d = np.where(np.isnan(d), 0.0, d)  # zero-padded shifts multiply every value: no NaN here
        u = rng.uniform(-1.0, 1.0, u_batch + shape)
        cases.append((d, stencil, u, transpose))
        references.append((apply_transpose_generic if transpose else apply_generic)(XP, d, stencil, u))
    for out, reference, case in zip(compiled_cases(_torch._functional, cases), references, cases):
        assert_matches(out, reference, dtype, f"apply transpose={case[3]} {case[2].shape}")

    zeta = rng.uniform(-1.0, 1.0, (2, 5) + grid)
    u = rng.uniform(-1.0, 1.0, (2,) + grid)
    [out] = compiled_cases(_torch._filter_functional, [(u, zeta, 0.3)])
    assert_matches(out, filter_step_generic(XP, u, zeta, 0.3), dtype, "filter_step")

    u = rng.uniform(0.0, 1.0, (2,) + grid)
    cases = [(u, 0.1, 0.5, name) + BOUNDARIES[i % len(BOUNDARIES)] for i, name in enumerate(DIFFUSIVITIES)]
    assert len(DIFFUSIVITIES) >= len(BOUNDARIES)
    for out, (_, dt, lam, name, bc, ghost_gamma) in zip(compiled_cases(_torch._perona_malik, cases), cases):
        reference = perona_malik_step_generic(XP, u, dt, lam, diffusivities.resolve(name), bc, ghost_gamma)
        assert_matches(out, reference, dtype, f"perona_malik {name} {bc} {ghost_gamma}")


# --- on a GPU: the same launches through CuPy --------------------------------------------------------------
@pytest.mark.gpu
def test_gpu_agrees_with_host_emulation(emulator):
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            pytest.skip("no CUDA device")
    except cupy.cuda.runtime.CUDARuntimeError:
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(5)
    for dtype, (stencil, grid) in itertools.product(DTYPES, ((WIDE, (33, 41)), (WIDE_3D, (9, 17, 21)))):
        ndim = len(grid)
        d = poisoned_diagonals(rng, (2, 1), stencil, grid, dtype)
        u = rng.uniform(0.0, 1.0, (1, 3) + grid).astype(dtype)
        zeta = poisoned_diagonals(rng, (3,), star(ndim), grid, dtype)
        # (launch plan, its arguments, the registered kernel, its keyword arguments)
        cases = [
            (_cupy.plan_apply, (d, stencil, u, False), _cupy.ssd_apply, dict(diagonals=d, offsets=stencil, u=u)),
            (_cupy.plan_apply, (d, stencil, u, True), _cupy.ssd_apply_transpose,
             dict(diagonals=d, offsets=stencil, u=u)),
            (_cupy.plan_filter_step, (u, zeta, 0.3), _cupy.filter_step, dict(u=u, zeta=zeta, dt=0.3)),
        ] + [
            (_cupy.plan_perona_malik_step, (u, 0.1, 0.5, name, bc, gg, ndim), _cupy.perona_malik_step,
             dict(u=u, dt=0.1, lam=0.5, diffusivity=name, bc=bc, ghost_gamma=gg, ndim=ndim))
            for name in DIFFUSIVITIES for bc, gg in BOUNDARIES
        ]
        for plan, plan_args, kernel, kernel_args in cases:
            host = emulate(emulator, plan(np, *plan_args))
            on_device = {k: cupy.asarray(a) if isinstance(a, np.ndarray) else a for k, a in kernel_args.items()}
            gpu = cupy.asnumpy(kernel(**on_device))
            # The GPU fuses multiply-adds: agreement to a few roundings of the result's scale.
            eps = np.finfo(dtype).eps
            np.testing.assert_allclose(gpu, host, rtol=64 * eps, atol=64 * eps * max(1.0, float(np.abs(host).max())),
                                       err_msg=f"{kernel.__name__} {dtype} {grid} {plan_args[3:]}")
