"""Interop: scipy and PyLops operators, batch indexing, batched scipy.sparse exchange, host reads and the
array API version check.

References: scipy.sparse matrices (``to_scipy``, itself tested against hand-built matrices in
test_ssd.py), ``scipy.sparse.block_diag``, NumPy indexing of the diagonals, and the package's own solvers
(``implicit_step``) and ``spectrum``.
"""
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sl

import ssdops
from support import FIVE, NINE, asarray, to_numpy

RNG = np.random.default_rng(14)


def random_ssd(batch=(), grid=(5, 6), offsets=FIVE, dtype=np.float64):
    return ssdops.SSD(RNG.standard_normal(batch + (len(offsets),) + grid).astype(dtype), offsets)


def spd_system(batch=(), grid=(6, 7), dt=0.5):
    """``I - dt L(gamma)``, symmetric positive definite (gamma > 0), with L."""
    L = ssdops.divergence_form(RNG.random(batch + grid) + 0.5, bc="dirichlet")
    return ssdops.identity(grid) - dt * L, L


# --------------------------------------------------------------------------- scipy LinearOperator
@pytest.mark.parametrize("batch", [(), (2,), (2, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_aslinearoperator_is_the_block_diagonal_matrix(batch, dtype):
    op = random_ssd(batch, offsets=NINE, dtype=dtype)
    A, M = ssdops.aslinearoperator(op), ssdops.to_scipy(op)
    n = int(np.prod(batch, dtype=int)) * 30
    assert A.shape == (n, n) and A.dtype == dtype
    v = RNG.standard_normal(n).astype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(A.matvec(v), M @ v, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(A.rmatvec(v), M.T @ v, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(A.matvec(v[:, None]), (M @ v)[:, None], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(A.matmat(np.stack([v, 2 * v], 1)), M @ np.stack([v, 2 * v], 1),
                               rtol=rtol, atol=rtol)


def test_aslinearoperator_complex_vectors():
    op = random_ssd()
    v = RNG.standard_normal(30) + 1j * RNG.standard_normal(30)
    np.testing.assert_allclose(ssdops.aslinearoperator(op).matvec(v), ssdops.to_scipy(op) @ v, rtol=1e-12)


@pytest.mark.parametrize("batch", [(), (3,)])
def test_cg_on_aslinearoperator_equals_implicit_step(batch):
    A, L = spd_system(batch)
    u = RNG.random(batch + (6, 7))
    x, info = sl.cg(ssdops.aslinearoperator(A), u.ravel(), rtol=1e-12, atol=0.0)
    assert info == 0
    np.testing.assert_allclose(x.reshape(u.shape), ssdops.implicit_step(u, L, 0.5, tol=1e-13), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("solver", ["gmres", "lsqr"])
def test_nonsymmetric_solvers_on_aslinearoperator_equal_implicit_step(solver):
    W = 0.1 * random_ssd(grid=(5, 4), offsets=NINE)  # (I - W) is well conditioned
    u = RNG.random((5, 4))
    A = ssdops.aslinearoperator(ssdops.identity((5, 4)) - W)
    if solver == "gmres":
        x, info = sl.gmres(A, u.ravel(), rtol=1e-12, atol=0.0, restart=20, maxiter=200)
        assert info == 0
    else:
        x = sl.lsqr(A, u.ravel(), atol=1e-14, btol=1e-14)[0]
    want = ssdops.implicit_step(u, W, 1.0, method="bicgstab", tol=1e-13)
    np.testing.assert_allclose(x.reshape(u.shape), want, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
def test_eigsh_on_aslinearoperator_equals_spectrum(bc):
    L = ssdops.laplacian((9, 10), bc=bc)
    got = sl.eigsh(ssdops.aslinearoperator(L), k=4, which="LM", return_eigenvectors=False)
    np.testing.assert_allclose(np.sort(got), np.sort(ssdops.spectrum(L, k=4, which="LM")), rtol=1e-9)


def test_aslinearoperator_needs_numpy_and_an_ssd():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="NumPy diagonals"):
        ssdops.aslinearoperator(ssdops.laplacian((4, 4), like=torch.ones(1, dtype=torch.float64)))
    with pytest.raises(TypeError, match="ssdops.SSD"):
        ssdops.aslinearoperator(np.eye(4))


# --------------------------------------------------------------------------- PyLops
@pytest.mark.parametrize("batch", [(), (2,)])
@pytest.mark.parametrize("symmetric", [True, False], ids=["symmetric", "nonsymmetric"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_as_pylops_dottest(batch, symmetric, dtype):
    pylops = pytest.importorskip("pylops")
    if symmetric:
        op = ssdops.divergence_form(RNG.random(batch + (6, 5)).astype(dtype) + 0.5, bc="neumann")
    else:
        op = random_ssd(batch, grid=(6, 5), offsets=NINE, dtype=dtype)
    Op = ssdops.as_pylops(op)
    assert Op.dims == Op.dimsd == batch + (6, 5) and Op.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert pylops.utils.dottest(Op, rtol=tol)
    v = RNG.standard_normal(Op.shape[1]).astype(dtype)
    np.testing.assert_allclose(Op @ v, ssdops.to_scipy(op) @ v, rtol=tol, atol=tol)
    np.testing.assert_allclose(Op.H @ v, ssdops.to_scipy(op).T @ v, rtol=tol, atol=tol)


def test_pylops_solver_equals_implicit_step():
    pylops = pytest.importorskip("pylops")
    A, L = spd_system((2,))
    u = RNG.random((2, 6, 7))
    x = pylops.optimization.basic.cg(ssdops.as_pylops(A), u.ravel(), niter=500, tol=1e-24)[0]  # tol on ||r||^2
    np.testing.assert_allclose(x.reshape(u.shape), ssdops.implicit_step(u, L, 0.5, tol=1e-13), rtol=1e-8, atol=1e-9)


def test_as_pylops_without_pylops_says_how_to_install(monkeypatch):
    from ssdops import interop

    monkeypatch.setitem(__import__("sys").modules, "pylops", None)
    interop._pylops_class.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install ssdops\[pylops\]"):
            ssdops.as_pylops(ssdops.laplacian((3, 3)))
    finally:
        interop._pylops_class.cache_clear()


# --------------------------------------------------------------------------- batch indexing
@pytest.mark.parametrize("index", [1, -1, slice(1, 3), (1, 2), (slice(None), 1), (slice(None, None, 2),),
                                   (0, slice(1, None))])
def test_batch_indexing_equals_numpy_indexing(xp, index):
    d = RNG.standard_normal((3, 4, 5, 3, 3))
    op = ssdops.SSD(asarray(xp, d), symmetric=False)
    sub = op[index]
    want = d[index if isinstance(index, tuple) else (index,)]
    assert isinstance(sub, ssdops.SSD) and sub.offsets == op.offsets and sub.tags == op.tags
    np.testing.assert_array_equal(to_numpy(sub.diagonals), want)
    u = RNG.standard_normal(want.shape[:-3] + (3, 3))
    np.testing.assert_allclose(to_numpy(sub @ asarray(xp, u)), ssdops.SSD(want) @ u, rtol=1e-12)


def test_batch_indexing_keeps_laplacian_tags():
    L = ssdops.laplacian((4, 4), bc="dirichlet")
    batched = ssdops.SSD(np.stack([L.diagonals] * 3), tags=L.tags)
    assert batched[1].tags == L.tags and ssdops.select_method(batched[0]) == "spectral"


@pytest.mark.parametrize("index, error, message", [
    ((0, 0, 0), IndexError, "only the batch axes"),    # would reach the offset axis
    ((0, 1), IndexError, "only the batch axes"),       # one batch axis only
    (2, IndexError, "out of range"),
    (-3, IndexError, "out of range"),
    (1.0, TypeError, "integer and slice"),
    (Ellipsis, TypeError, "integer and slice"),
    (True, TypeError, "integer and slice"),
])
def test_batch_indexing_errors(xp, index, error, message):
    op = ssdops.SSD(asarray(xp, RNG.standard_normal((2, 5, 3, 3))))
    with pytest.raises(error, match=message):
        op[index]


def test_unbatched_operator_has_nothing_to_index():
    with pytest.raises(IndexError, match=r"batch shape \(\)"):
        ssdops.laplacian((3, 3))[0]


# --------------------------------------------------------------------------- batched scipy exchange
@pytest.mark.parametrize("batch", [(2,), (2, 3)])
def test_batched_to_scipy_is_block_diagonal_and_round_trips(batch):
    op = random_ssd(batch, grid=(4, 5), offsets=NINE)
    A = ssdops.to_scipy(op)
    blocks = [ssdops.to_scipy(op[np.unravel_index(b, batch)]) for b in range(int(np.prod(batch)))]
    assert (A != sp.block_diag(blocks)).nnz == 0
    u = RNG.standard_normal(batch + (4, 5))
    np.testing.assert_allclose(A @ u.ravel(), (op @ u).ravel(), rtol=1e-12)
    back = ssdops.from_scipy(A, (4, 5), batch_shape=batch)
    assert back.batch_shape == batch and back.offsets == NINE
    # canonical diagonals: entries pointing outside the grid are zero in the round trip
    np.testing.assert_array_equal(back.diagonals, ssdops.SSD(back.diagonals, NINE).T.T.diagonals)
    assert (ssdops.to_scipy(back) != A).nnz == 0


def test_from_scipy_rejects_coupled_images_and_wrong_sizes():
    A = ssdops.to_scipy(random_ssd((2,), grid=(3, 3))).tolil()
    A[0, 9] = 1.0  # image 0's first pixel coupled with image 1's first pixel
    with pytest.raises(ValueError, match="couples image 0 with image 1"):
        ssdops.from_scipy(A, (3, 3), batch_shape=(2,))
    with pytest.raises(ValueError, match=r"batch shape \(3,\)"):
        ssdops.from_scipy(A, (3, 3), batch_shape=(3,))


# --------------------------------------------------------------------------- host reads, API version
class NoDLPack:
    """An array-like without ``__dlpack__`` (as dask, ndonnx, ... arrays)."""

    shape = (2,)


def test_to_numpy_without_dlpack_names_library_and_function():
    with pytest.raises(TypeError, match=r"ssdops.to_numpy needs to read a test_interop array.*DLPack"):
        ssdops.to_numpy(NoDLPack())


def test_to_numpy_reads_torch_bfloat16():
    torch = pytest.importorskip("torch")
    x = torch.tensor([1.5, -2.25], dtype=torch.bfloat16)
    np.testing.assert_array_equal(ssdops.to_numpy(x), [1.5, -2.25])


def test_old_array_api_version_is_refused():
    xps = pytest.importorskip("array_api_strict")
    try:
        xps.set_array_api_strict_flags(api_version="2022.12")
        with pytest.raises(TypeError, match=r"2023\.12 or later.*implements 2022\.12"):
            ssdops.laplacian((3, 3), like=xps.ones(1, dtype=xps.float64))
    finally:
        xps.reset_array_api_strict_flags()
    assert ssdops.laplacian((3, 3), like=xps.ones(1, dtype=xps.float64)).grid_shape == (3, 3)
