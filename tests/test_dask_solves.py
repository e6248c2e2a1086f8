"""dask operators that keep their input's chunks and Krylov solves whose graphs stay bounded (issue 19, item 4).

Every operator constructor lays its diagonals out as its input along the grid (the offset axis in one chunk),
so that one apply adds a bounded number of tasks per chunk; ``implicit_step`` by CG and BiCGSTAB persists
the image and the diagonals once and the solver's vectors every iteration: each persisted graph is one
iteration's work on persisted chunks, never the operator's construction nor the earlier iterations. Every
result is checked against NumPy on the same data.
"""
import numpy as np
import pytest

import ssdops
from ssdops import backends

da = pytest.importorskip("dask.array")

RNG = np.random.default_rng(19)
SHAPE, CHUNKS = (2, 32, 32), (1, 16, 16)  # the image: 8 chunks
#: The issue's bound on the tasks one apply of an operator adds per chunk.
TASKS_PER_CHUNK = 25


def graph(x):
    return dict(x.__dask_graph__())


def tasks_added(x, *inputs):
    """Tasks in the graph of ``x`` besides those of ``inputs``."""
    return len(set(graph(x)) - set().union(*(graph(i) for i in inputs)))


def image():
    u = RNG.random(SHAPE)
    return u, da.from_array(u, chunks=CHUNKS)


def constructors():
    """``name -> (numpy builder, dask builder)``: each builds an operator from the arrays it is given."""
    gamma = RNG.random(SHAPE) + 0.5
    zeta = RNG.random((2, 5) + SHAPE[1:])
    return {
        "divergence_form": lambda u: ssdops.divergence_form(
            gamma if isinstance(u, np.ndarray) else da.from_array(gamma, chunks=CHUNKS), bc="dirichlet"),
        "perona_malik_operator": lambda u: ssdops.perona_malik_operator(u, lam=0.3),
        "ssd_from_filters": lambda u: ssdops.ssd_from_filters(
            zeta if isinstance(u, np.ndarray) else da.from_array(zeta, chunks=(1, 5) + CHUNKS[1:]), 0.1),
        "laplacian": lambda u: ssdops.laplacian(SHAPE[1:], bc="dirichlet", like=u),
        "identity": lambda u: ssdops.identity(SHAPE[1:], like=u),
    }


@pytest.mark.parametrize("name", list(constructors()))
def test_constructors_keep_the_chunks_and_one_apply_is_bounded(name):
    build = constructors()[name]
    u, u_dask = image()
    op, op_dask = build(u), build(u_dask)
    d = op_dask.diagonals
    assert d.chunks[-3:] == ((d.shape[-3],),) + u_dask.chunks[-2:], d.chunks  # K whole, the grid as u
    y = op_dask @ u_dask
    assert y.chunks == u_dask.chunks
    assert tasks_added(y, u_dask, d) <= TASKS_PER_CHUNK * u_dask.npartitions
    np.testing.assert_allclose(y.compute(), op @ u, rtol=1e-13, atol=1e-13)


def test_gradient_and_divergence_keep_the_chunks():
    u, u_dask = image()
    grad = ssdops.gradient(u_dask, bc="dirichlet")
    assert grad.chunks == u_dask.chunks[:-2] + ((2,),) + u_dask.chunks[-2:]
    div = ssdops.divergence(grad)
    assert div.chunks == u_dask.chunks
    np.testing.assert_allclose(grad.compute(), ssdops.gradient(u, bc="dirichlet"), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(div.compute(), ssdops.divergence(ssdops.gradient(u, bc="dirichlet")),
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("method", ["cg", "bicgstab"])
def test_krylov_solve_persists_once_and_keeps_each_iteration_bounded(method, monkeypatch):
    """The issue's solve: ``implicit_step(u, divergence_form(g), 0.1)`` on a (2, 32, 32) image in 8 chunks at
    tol 1e-10. Every persist (once before the loop, then once per iteration) is recorded with the tasks it
    computes: none after the first computes a task of the operator's construction, and the iterations'
    graphs do not grow."""
    adapter = backends.adapter_for(da.zeros(1))
    sizes, construction_seen = [], []
    gamma = RNG.random(SHAPE) + 0.5
    u, u_dask = image()
    op_dask = ssdops.divergence_form(da.from_array(gamma, chunks=CHUNKS))
    construction = set(graph(op_dask.diagonals)) - set(graph(u_dask))
    persist = adapter.persist

    def recording(*arrays):
        entries = {}
        for a in arrays:
            entries.update(graph(a) if a is not None else {})
        # A persisted array keeps its keys, its chunks then stored as values: what is still to compute is the
        # entries that are not data.
        tasks = {k for k, v in entries.items() if not isinstance(v, (np.ndarray, np.generic, float, int))}
        sizes.append(len(tasks))
        construction_seen.append(bool(tasks & construction))
        return persist(*arrays)

    monkeypatch.setattr(adapter, "persist", recording)
    got = ssdops.implicit_step(u_dask, op_dask, 0.1, method=method, tol=1e-10)
    monkeypatch.undo()
    want = ssdops.implicit_step(u, ssdops.divergence_form(gamma), 0.1, method=method, tol=1e-10)
    np.testing.assert_allclose(got.compute(), want, rtol=1e-8, atol=1e-10)
    iterations = sizes[1:]
    assert len(iterations) >= 5, sizes  # a real solve: several iterations were persisted
    assert construction_seen[0] and not any(construction_seen[1:]), construction_seen
    # Bounded: each iteration is a few products and reductions on persisted chunks (the first ones start
    # from the initial state, simpler), so no later iteration is larger than the largest of the first three.
    assert max(iterations) <= 40 * TASKS_PER_CHUNK * u_dask.npartitions, sizes
    assert max(iterations[3:]) <= max(iterations[:3]), sizes


def test_krylov_solve_with_a_batch_broadcast_operator_and_x0():
    """One operator for both images (its batch broadcast by the solve) and a dask starting guess."""
    gamma, (u, u_dask) = RNG.random(SHAPE[1:]) + 0.5, image()
    x0 = RNG.random(SHAPE[1:])
    op, op_dask = ssdops.divergence_form(gamma), ssdops.divergence_form(da.from_array(gamma, chunks=16))
    got = ssdops.implicit_step(u_dask, op_dask, 0.5, method="cg", tol=1e-10, x0=da.from_array(x0, chunks=16))
    want = ssdops.implicit_step(u, op, 0.5, method="cg", tol=1e-10, x0=x0)
    np.testing.assert_allclose(got.compute(), want, rtol=1e-8, atol=1e-10)


def test_the_generic_switch_keeps_the_generic_solve():
    """Under ``use_generic`` the dask solve kernel declines: the generic products run, to the same answer (on
    an 8 x 8 image in 4 chunks: the generic loop rebuilds the operator's graph every iteration)."""
    gamma, u = RNG.random((8, 8)) + 0.5, RNG.random((2, 8, 8))
    u_dask = da.from_array(u, chunks=(1, 4, 4))
    op_dask = ssdops.divergence_form(da.from_array(gamma, chunks=4))
    kernel = backends.lookup("implicit_solve", da, 2)
    assert kernel is not None
    with backends.use_generic():
        assert kernel(u=u_dask, diagonals=op_dask.diagonals, offsets=op_dask.offsets, dt=0.5, method="cg",
                      tol=1e-8, maxiter=100, on_failure="raise", x0=None) is NotImplemented
        got = ssdops.implicit_step(u_dask[0], op_dask, 0.1, method="cg", tol=1e-6)
    want = ssdops.implicit_step(u[0], ssdops.divergence_form(gamma), 0.1, method="cg", tol=1e-6)
    np.testing.assert_allclose(got.compute(), want, rtol=1e-6, atol=1e-8)
