"""Adding an array library is one adapter and one row of the library table (issue 24).

A toy library (``tests/toyarray.py``: NumPy arrays in a wrapper with a namespace module of their own, which
no adapter of ssdops recognises) is added with :func:`ssdops.backends.add_library` and one
:class:`ssdops.backends.Adapter`; every public function of ssdops then runs on its arrays, through the
generic array-API code, and equals the same call on NumPy arrays.
"""
import numpy as np
import pytest

import ssdops
import toyarray
from ssdops import backends

GRID = (5, 6)
rng = np.random.default_rng(24)
U = rng.random((2,) + GRID)
GAMMA = 1.0 + rng.random(GRID)
ZETA = 0.1 * rng.random((5,) + GRID)


class ToyAdapter(backends.Adapter):
    """All the toy library needs: its host read (DLPack would do too; this one counts the reads)."""

    reads = 0

    def to_numpy(self, x):
        ToyAdapter.reads += 1
        return np.array(x._a)


@pytest.fixture
def toy():
    """The toy library added to the table for one test, removed afterwards."""
    adapter = ToyAdapter("toy")
    backends.add_library(backends.Library("toy", "toyarray", toyarray.is_toy_namespace, toyarray.is_toy_array,
                                          adapter=adapter))
    try:
        yield adapter
    finally:
        backends.remove_library("toy")


def T(a):
    return toyarray.asarray(np.asarray(a, dtype=np.float64))


def _host(x):
    if isinstance(x, toyarray.ToyArray):
        return np.asarray(x._a)
    if isinstance(x, ssdops.SSD):
        return ssdops.to_scipy(ssdops.SSD(_host(x.diagonals), x.offsets)).toarray()
    if isinstance(x, tuple):
        return tuple(_host(v) for v in x)
    return x


def _op(like):
    return ssdops.divergence_form(like(GAMMA), bc="dirichlet", ghost_gamma=0.5)


#: Public function -> a call of it on arrays made by ``a`` (NumPy's ``np.asarray`` or the toy's ``T``).
CALLS = {
    "SSD": lambda a: ssdops.SSD(a(np.stack([GAMMA] * 5))) @ a(U),
    "SSD.T / rmatvec / algebra": lambda a: ((_op(a).T + 2.0 * _op(a)
                                             - ssdops.divergence_form(a(np.stack([GAMMA] * 3)))[1]).rmatvec(a(U)),
                                            (ssdops.SSD(a(ZETA)).T @ a(U))),
    "Tags": lambda a: (_op(a) + ssdops.laplacian(GRID, like=a(U))).tags == ssdops.Tags(symmetric=True),
    "divergence_form": lambda a: _op(a) @ a(U),
    "laplacian": lambda a: ssdops.laplacian(GRID, bc="dirichlet", like=a(U)) @ a(U),
    "identity": lambda a: ssdops.identity(GRID, like=a(U)) @ a(U),
    "gradient": lambda a: ssdops.gradient(a(U), bc="dirichlet"),
    "divergence": lambda a: ssdops.divergence(a(np.stack([U, 2 * U], axis=-3))),
    "ssd_from_filters": lambda a: ssdops.ssd_from_filters(a(ZETA), 0.1) @ a(U),
    "filter_step": lambda a: ssdops.filter_step(a(U), a(ZETA), 0.1),
    "explicit_step": lambda a: ssdops.explicit_step(a(U), _op(a), 0.05),
    "stable_dt": lambda a: ssdops.stable_dt(_op(a)),
    "implicit_step": lambda a: (ssdops.implicit_step(a(U), _op(a), 0.5, tol=1e-12),
                                ssdops.implicit_step(a(U), ssdops.SSD(a(ZETA)), 0.5, tol=1e-12),
                                ssdops.implicit_step(a(U), ssdops.laplacian(GRID, like=a(U)), 0.5)),
    "select_method": lambda a: ssdops.select_method(ssdops.SSD(a(ZETA))),
    "heat": lambda a: (ssdops.heat(a(U), 0.5), ssdops.heat(a(U), 0.5, method="implicit", steps=3),
                       ssdops.heat(a(U), 0.5, method="explicit", steps=20)),
    "perona_malik_operator": lambda a: ssdops.perona_malik_operator(a(U), lam=0.2) @ a(U),
    "perona_malik_step": lambda a: ssdops.perona_malik_step(a(U), dt=0.1, lam=0.2, bc="dirichlet", ghost_gamma=0.0),
    "perona_malik": lambda a: ssdops.perona_malik(a(U), steps=3, dt=0.1, lam=0.2, diffusivity="charbonnier"),
    "diffusivity": lambda a: ssdops.diffusivity.perona_malik(a(U), 0.2),
    "row_sums": lambda a: ssdops.row_sums(_op(a)),
    "split_zero_mean": lambda a: ssdops.split_zero_mean(ssdops.SSD(a(ZETA))),
    "smoothing_level": lambda a: ssdops.smoothing_level(_op(a)),
    "is_symmetric": lambda a: (ssdops.is_symmetric(_op(a)), ssdops.is_symmetric(ssdops.SSD(a(ZETA)))),
    "spectrum": lambda a: ssdops.spectrum(_op(a), k=3),
    "spectral_radius": lambda a: ssdops.spectral_radius(_op(a)),
    "to_scipy": lambda a: ssdops.to_scipy(_op(a)).toarray(),
    "from_scipy": lambda a: ssdops.from_scipy(ssdops.to_scipy(ssdops.laplacian(GRID)), GRID, like=a(U)) @ a(U),
    "to_numpy": lambda a: ssdops.to_numpy(a(U)),
    "psnr": lambda a: ssdops.psnr(a(U), a(U + 0.01)),
    "relative_l2": lambda a: ssdops.relative_l2(a(U), a(U + 0.01)),
    "add_noise": lambda a: ssdops.add_noise(a(U), 0.1, rng=0),
    "dot_test": lambda a: ssdops.dot_test(_op(a).matvec, _op(a).rmatvec, a(U), a(2 * U)),
}

#: Public names that take no arrays of a library (constants, types, modules) or adapt to another one.
NOT_ARRAY_FUNCTIONS = {"FIVE_POINT", "NINE_POINT", "SEVEN_POINT", "THREE_POINT", "TWENTY_SEVEN_POINT",
                       "ConvergenceError", "ConvergenceWarning", "backends",
                       # Adapters to host libraries (SciPy, PyLops' NumPy engine): NumPy diagonals only, a
                       # clear TypeError otherwise (below); tested in test_interop.
                       "as_pylops", "aslinearoperator",
                       # deepinv adapters (PyTorch only, deepinv's physics): tested in test_deepinv.
                       "as_deepinv", "heat_physics", "perona_malik_physics",
                       # lineax (JAX) and ODL adapters: tested in test_lineax and test_odl.
                       "as_lineax", "as_odl"}


def test_every_public_function_is_called():
    covered = {name.split(" ")[0].split(".")[0] for name in CALLS}
    assert set(ssdops.__all__) - NOT_ARRAY_FUNCTIONS <= covered | {"SSD"}, sorted(
        set(ssdops.__all__) - NOT_ARRAY_FUNCTIONS - covered)


@pytest.mark.parametrize("name", list(CALLS))
def test_the_toy_library_runs_every_public_operation_like_numpy(toy, name):
    assert backends.adapter_for(T(U)) is toy and backends.library_of(toyarray) == "toy"
    _compare(CALLS[name](T), CALLS[name](np.asarray), name)


def _compare(got, expected, name):
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected), name
        for g, e in zip(got, expected, strict=True):
            _compare(g, e, name)
        return
    if isinstance(expected, (str, bool)):
        assert got == expected, name
        return
    np.testing.assert_allclose(np.asarray(_host(got), dtype=float), np.asarray(_host(expected), dtype=float),
                               rtol=1e-10, atol=1e-12, err_msg=name)


def test_the_toy_library_has_no_kernels_and_its_adapter_is_used(toy):
    assert backends.registered("toy") == {}
    assert all(backends.lookup(op, toyarray) is None for op in backends.OPERATIONS)
    before = ToyAdapter.reads
    assert ssdops.to_numpy(T(U)).tolist() == U.tolist() and ToyAdapter.reads == before + 1
    with pytest.raises(ValueError, match="already in ssdops.backends.LIBRARIES"):
        backends.add_library(backends.Library("toy", "toyarray", toyarray.is_toy_namespace, toyarray.is_toy_array,
                                              adapter=toy))


def test_without_its_row_the_toy_library_gets_the_generic_adapter():
    assert backends.adapter_for(T(U)) is backends.GENERIC
    np.testing.assert_allclose(_host(ssdops.laplacian(GRID, like=T(U)) @ T(U)), ssdops.laplacian(GRID) @ U)


def test_host_adapters_refuse_the_toy_library_clearly(toy):
    with pytest.raises(TypeError, match="NumPy diagonals.*toyarray.ToyArray"):
        ssdops.aslinearoperator(_op(T))


def test_a_kernel_declines_by_its_declaration_or_by_returning_not_implemented(toy):
    """The dispatch runs a kernel only for the cases it declares, and the generic code when it returns
    NotImplemented: a kernel never raises for a case it lacks."""
    calls = []

    def apply_float32_neumann(*, diagonals, offsets, u, out=None):
        calls.append("apply")
        return T(np.full(u.shape, 7.0))

    def step_declining(*, u, dt, lam, diffusivity, bc, ghost_gamma, ndim):
        calls.append("step")
        return NotImplemented

    try:
        backends.register("ssd_apply", "toy", apply_float32_neumann, ndims=(2,), dtypes=("float32",))
        backends.register("perona_malik_step", "toy", step_declining, bcs=("neumann",),
                          diffusivities=("perona_malik",))
        L = ssdops.laplacian(GRID)
        u64, u32 = T(U), toyarray.asarray(U.astype(np.float32))
        np.testing.assert_allclose(_host(ssdops.SSD(T(L.diagonals)) @ u64), L @ U)  # float64: declined
        assert calls == []
        assert np.all(_host(ssdops.SSD(toyarray.asarray(L.diagonals.astype(np.float32))) @ u32) == 7.0)
        assert calls == ["apply"]
        expected = ssdops.perona_malik_step(U, dt=0.1, lam=0.2)
        np.testing.assert_allclose(_host(ssdops.perona_malik_step(u64, dt=0.1, lam=0.2)), expected, rtol=1e-12)
        assert calls == ["apply", "step"]  # called, declined: the generic code answered
        ssdops.perona_malik_step(u64, dt=0.1, lam=0.2, bc="dirichlet")
        ssdops.perona_malik_step(u64, dt=0.1, lam=0.2, diffusivity="charbonnier")
        assert calls == ["apply", "step"]  # other bc / diffusivity: never called
        kernel = backends.declarations("toy")[("ssd_apply", "toy")]
        assert kernel.accepts(2, "float32") and not kernel.accepts(3, "float32") and not kernel.accepts(2, "float64")
    finally:
        backends._REGISTRY.pop(("ssd_apply", "toy"), None)
        backends._REGISTRY.pop(("perona_malik_step", "toy"), None)


def test_the_backends_doctests_pass():
    """backends/ is imported as ssdops.backends only, so pytest's --doctest-modules (over ssdops/ and
    tests/) does not see its docstrings: they run here."""
    import doctest
    import importlib

    for name in ("ssdops.backends", "ssdops.backends._numpy", "ssdops.backends._dask"):
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, name
    assert doctest.testmod(backends).attempted > 20
