"""The dask backend (``backends/_dask.py``): chunk-by-chunk kernels through ``map_overlap``.

Every dask kernel is checked against NumPy on the same data, over chunkings that put block edges
everywhere (uneven chunks, chunks exactly the stencil's reach, one chunk along an axis), batch
broadcasting both ways, and every boundary condition; then the graph: output chunks equal to the input
chunks, a task count linear in the number of chunks, chained steps without rechunking.
"""
import numpy as np
import pytest

import ssdops
from ssdops import backends

da = pytest.importorskip("dask.array")

from support import FIVE, NINE, WIDE  # noqa: E402

RNG = np.random.default_rng(14)

# Chunkings of a 12 x 13 grid: block edges at many positions, a chunk exactly 3 (the widest reach
# tested), a single chunk along one axis, and along both.
CHUNKINGS = [((4, 3, 5), (6, 7)), ((3, 3, 3, 3), (13,)), ((12,), (5, 3, 5)), ((12,), (13,))]
GRID = (12, 13)


def chunked(a, grid_chunks, batch_axes=1):
    """``a`` as a dask array: ``grid_chunks`` along the last two axes, the ``batch_axes`` leading axes
    in chunks of 1, any axis in between (offsets) in one chunk."""
    return da.from_array(a, chunks=(1,) * batch_axes + a.shape[batch_axes:-2] + tuple(grid_chunks))


def graph_tasks(x, *inputs):
    """Tasks the graph of ``x`` adds to those of ``inputs``."""
    return len(x.__dask_graph__()) - sum(len(i.__dask_graph__()) for i in inputs)


def test_dask_kernels_are_registered_with_their_protocols():
    import inspect

    registered = backends.registered("dask")
    assert {op for op, _ in registered} == {
        "ssd_apply", "ssd_apply_transpose", "filter_step", "perona_malik_step", "implicit_solve"
    }
    for (operation, _), kernel in registered.items():
        protocol = inspect.signature(backends.OPERATIONS[operation].__call__)
        assert list(inspect.signature(kernel).parameters) == [n for n in protocol.parameters if n != "self"]


@pytest.mark.parametrize("grid_chunks", CHUNKINGS)
@pytest.mark.parametrize("offsets", [FIVE, NINE, WIDE], ids=["five", "nine", "wide"])
@pytest.mark.parametrize("transpose", [False, True], ids=["apply", "transpose"])
def test_ssd_apply_equals_numpy(grid_chunks, offsets, transpose):
    d = RNG.standard_normal((2, len(offsets)) + GRID)
    u = RNG.standard_normal((2,) + GRID)
    op, op_dask = ssdops.SSD(d, offsets), ssdops.SSD(chunked(d, grid_chunks), offsets)
    u_dask = chunked(u, grid_chunks)
    got = op_dask.rmatvec(u_dask) if transpose else op_dask @ u_dask
    want = op.rmatvec(u) if transpose else op @ u
    assert got.chunks == u_dask.chunks
    np.testing.assert_allclose(got.compute(), want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("d_batch, u_batch", [((3,), ()), ((), (3,)), ((3, 1), (1, 2)), ((1,), (2,))])
def test_ssd_apply_broadcasts_batches(d_batch, u_batch):
    """Batch axes broadcast as in NumPy; the diagonals follow the image's chunks where both have an axis
    (here chunked differently on purpose) and keep their own where the image broadcasts."""
    d = RNG.standard_normal(d_batch + (5,) + GRID)
    u = RNG.standard_normal(u_batch + GRID)
    d_dask = da.from_array(d, chunks=(1,) * len(d_batch) + (5, 6, 13))
    u_dask = da.from_array(u, chunks=(1,) * len(u_batch) + (4, 5))
    got = ssdops.SSD(d_dask) @ u_dask
    np.testing.assert_allclose(got.compute(), ssdops.SSD(d) @ u, rtol=1e-13, atol=1e-13)
    assert got.chunks[-2:] == u_dask.chunks[-2:]
    assert got.shape == np.broadcast_shapes(d_batch, u_batch) + GRID


@pytest.mark.parametrize("grid_chunks", CHUNKINGS)
def test_filter_step_equals_numpy(grid_chunks):
    zeta = RNG.random((2, 5) + GRID)
    u = RNG.standard_normal((2,) + GRID)
    u_dask = chunked(u, grid_chunks)
    got = ssdops.filter_step(u_dask, chunked(zeta, grid_chunks), 0.1)
    assert got.chunks == u_dask.chunks
    np.testing.assert_allclose(got.compute(), ssdops.filter_step(u, zeta, 0.1), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("grid_chunks", CHUNKINGS[:2] + [((2, 5, 5), (2, 9, 2))])
@pytest.mark.parametrize("bc, ghost_gamma", [("neumann", None), ("dirichlet", None), ("dirichlet", 0.0),
                                             ("dirichlet", 0.7)])
@pytest.mark.parametrize("diffusivity", ["perona_malik", "charbonnier"])
def test_perona_malik_step_equals_numpy(grid_chunks, bc, ghost_gamma, diffusivity):
    """Chunks of 2 (the step's reach) included: each block's halo comes from its neighbours only."""
    u = RNG.random((2,) + GRID)
    u_dask = chunked(u, grid_chunks)
    kwargs = dict(dt=0.1, lam=0.2, diffusivity=diffusivity, bc=bc, ghost_gamma=ghost_gamma)
    got = ssdops.perona_malik_step(u_dask, **kwargs)
    assert got.chunks == u_dask.chunks
    np.testing.assert_allclose(got.compute(), ssdops.perona_malik_step(u, **kwargs), rtol=1e-13, atol=1e-13)


def test_perona_malik_chains_steps_without_rechunking():
    u = RNG.random((2, 32, 32)).astype(np.float32)
    u_dask = da.from_array(u, chunks=(1, 8, 16))
    kwargs = dict(dt=0.1, lam=0.2, bc="dirichlet", ghost_gamma=0.0)
    one = ssdops.perona_malik(u_dask, steps=1, **kwargs)
    four = ssdops.perona_malik(u_dask, steps=4, **kwargs)
    assert four.chunks == u_dask.chunks and four.dtype == np.float32
    assert not any("rechunk" in name for name in four.__dask_graph__().layers)
    # O(k n): four steps add four times the tasks of one.
    assert graph_tasks(four, u_dask) == 4 * graph_tasks(one, u_dask)
    np.testing.assert_allclose(four.compute(), ssdops.perona_malik(u, steps=4, **kwargs), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("operation", ["apply", "transpose", "filter_step", "perona_malik_step"])
def test_task_count_is_linear_in_chunks(operation):
    """One apply on an n-chunk image: a bounded number of tasks per chunk (halo slices from at most 8
    neighbours, the kernel, the crop). Edge chunks have fewer neighbours, so tasks per chunk rise with n
    towards the interior's count and level off (measured: 13, 17.5, 20.1, 21.5 for an apply on 4, 16, 64,
    256 chunks)."""
    u = RNG.random((64, 64))
    d = RNG.random((5, 64, 64))
    per_chunk = []
    for side in (32, 16, 8, 4):  # 4, 16, 64, 256 chunks
        u_dask, d_dask = da.from_array(u, chunks=side), da.from_array(d, chunks=(5, side, side))
        out = {
            "apply": lambda: ssdops.SSD(d_dask) @ u_dask,
            "transpose": lambda: ssdops.SSD(d_dask).rmatvec(u_dask),
            "filter_step": lambda: ssdops.filter_step(u_dask, d_dask, 0.1),
            "perona_malik_step": lambda: ssdops.perona_malik_step(u_dask, dt=0.1, lam=0.2),
        }[operation]()
        inputs = (u_dask,) if operation == "perona_malik_step" else (u_dask, d_dask)
        per_chunk.append(graph_tasks(out, *inputs) / u_dask.npartitions)
    assert all(1 <= c <= 25 for c in per_chunk), per_chunk
    assert per_chunk[-1] <= 1.1 * per_chunk[-2], per_chunk


def test_chunks_shorter_than_the_reach_raise():
    u_dask = da.from_array(RNG.random(GRID), chunks=((11, 1), (13,)))
    with pytest.raises(ValueError, match="rechunk"):
        ssdops.perona_malik_step(u_dask, dt=0.1, lam=0.2)
    d_dask = da.from_array(RNG.random((4,) + GRID), chunks=(4, (11, 1), 13))
    with pytest.raises(ValueError, match="at least 3 pixels"):
        ssdops.SSD(d_dask, WIDE) @ u_dask


def test_dask_scalar_parameters():
    """dt and lam given as 0-d dask arrays (computed once: blocks cannot read dask arrays)."""
    u = RNG.random(GRID)
    u_dask = da.from_array(u, chunks=(6, 7))
    got = ssdops.perona_malik_step(u_dask, dt=da.asarray(0.1), lam=da.asarray(0.2))
    np.testing.assert_allclose(got.compute(), ssdops.perona_malik_step(u, dt=0.1, lam=0.2), rtol=1e-13)


def test_host_read_of_a_dask_array_computes():
    u = RNG.random(GRID)
    assert float(ssdops.to_numpy(da.from_array(u, chunks=5).sum())) == pytest.approx(u.sum())
    u[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ssdops.perona_malik(da.from_array(u, chunks=5), steps=1, dt=0.1, lam=0.2)


@pytest.mark.parametrize("method", ["cg", "bicgstab"])
def test_implicit_step_krylov_on_dask(method):
    """The Krylov loops run on dask arrays (dask reductions; one host read per iteration, the state
    persisted each iteration so that a read does not recompute the earlier iterations)."""
    gamma, u = RNG.random((8, 8)) + 0.5, RNG.random((8, 8))
    op = ssdops.divergence_form(gamma, bc="dirichlet")
    op_dask = ssdops.SSD(da.from_array(op.diagonals, chunks=(5, 4, 4)), op.offsets, tags=op.tags)
    got = ssdops.implicit_step(da.from_array(u, chunks=4), op_dask, 0.5, method=method, tol=1e-10)
    want = ssdops.implicit_step(u, op, 0.5, method=method, tol=1e-10)
    np.testing.assert_allclose(ssdops.to_numpy(got), want, rtol=1e-8, atol=1e-10)


def test_spectral_solves_on_a_single_chunk():
    u = RNG.random((2, 9, 10))
    u_dask = da.from_array(u, chunks=(1, 9, 10))
    np.testing.assert_allclose(ssdops.heat(u_dask, 1.5).compute(), ssdops.heat(u, 1.5), rtol=1e-12, atol=1e-12)


def test_spectral_solves_on_several_chunks_raise():
    u_dask = da.from_array(RNG.random((16, 16)), chunks=8)
    with pytest.raises(ValueError, match="rechunk.*cg|cg.*rechunk"):
        ssdops.heat(u_dask, 1.0)
    with pytest.raises(ValueError, match="rechunk.*cg|cg.*rechunk"):
        ssdops.implicit_step(u_dask, ssdops.laplacian((16, 16), like=u_dask), 0.5, method="spectral")


def test_operators_built_like_a_dask_image_are_chunked_like_it():
    u_dask = da.from_array(RNG.random((2, 16, 12)), chunks=(1, 8, 6))
    L = ssdops.laplacian((16, 12), like=u_dask)
    assert L.diagonals.chunks[-2:] == u_dask.chunks[-2:]
    assert (L @ u_dask).chunks == u_dask.chunks


@pytest.mark.parametrize("solve", [[], ["--solve", "cg"]], ids=["perona_malik", "cg"])
def test_scale_benchmark_agrees_with_numpy_at_a_small_size(solve):
    """benchmarks/dask_scale.py end to end on a LocalCluster of threads (a 256² image in 16 chunks), in a
    fresh interpreter as a user runs it (a cluster started inside a process that already runs torch and
    JAX thread pools can stall): the Perona-Malik steps, equal to NumPy exactly, and an implicit step by CG,
    equal within its tolerance."""
    import json
    import pathlib
    import subprocess
    import sys

    pytest.importorskip("distributed")
    path = pathlib.Path(__file__).parents[1] / "benchmarks" / "dask_scale.py"
    run = subprocess.run([sys.executable, str(path), "--size", "256", "--chunk", "64", "--threads", "--samples", "2",
                          "--window", "16", *solve], capture_output=True, text=True, timeout=600, check=True)
    report = json.loads(run.stdout)
    assert report["agree"] and report["max_abs_diff_windows"] <= (1e-5 if solve else 0.0)
    assert tuple(report["dask"]["chunks"]) == (4, 4)
    # The final graph: the Perona-Malik steps' tasks; a solve's persisted result, one task per chunk.
    assert report["dask"]["tasks_final_graph"] == 16 if solve else report["dask"]["tasks_final_graph"] > 4 * 16
