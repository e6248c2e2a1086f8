"""ssdops.as_odl: ODL's own diagnostics, its Laplacian and its solvers against ssdops (issue 20, item 3)."""
import contextlib
import io

import numpy as np
import pytest

import ssdops

with np.printoptions():   # ODL's import sets NumPy's legacy print mode globally (the doctests' output)
    odl = pytest.importorskip("odl")

GRID = (8, 9)
IMPLS = ["numpy", "pytorch"]


def _space(impl="numpy", dtype="float64", shape=GRID, max_pt=(1.0, 1.0)):
    if impl == "pytorch":
        pytest.importorskip("torch")
    return odl.uniform_discr([0.0, 0.0], list(max_pt), shape, dtype=dtype, impl=impl)


def _element(space, seed=0):
    values = np.random.default_rng(seed).standard_normal(space.shape)
    if space.impl == "pytorch":
        import torch

        values = torch.as_tensor(values)
    return space.element(values.astype(space.dtype) if space.impl == "numpy" else values.to(space.dtype))


def _general(shape=GRID, seed=1):
    return ssdops.SSD(np.random.default_rng(seed).standard_normal((5,) + shape))


def _host(x):
    return ssdops.to_numpy(x.data)


def _operator_test(A):
    """ODL's OperatorTest output; it prints ``*** FAILED n TEST CASE(S) ***`` for every failing check."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        odl.diagnostics.OperatorTest(A).run_tests()
    return out.getvalue()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_values_are_the_operators_own(impl, dtype, tol):
    space, op = _space(impl, dtype), _general()
    x = _element(space)
    A = ssdops.as_odl(op, space)
    assert A.is_linear and A.domain == A.range == space
    y = A(x)
    assert y in space and _host(y).dtype == np.dtype(dtype)
    np.testing.assert_allclose(_host(y), op @ _host(x).astype(np.float64), rtol=tol, atol=tol)
    np.testing.assert_allclose(_host(A.adjoint(x)), op.T @ _host(x).astype(np.float64), rtol=tol, atol=tol)


@pytest.mark.parametrize("impl", IMPLS)
def test_odl_operator_test_passes(impl):
    out = _operator_test(ssdops.as_odl(_general(), _space(impl)))
    assert "FAILED" not in out, out
    # the linearity checks and the two adjoint checks each report a pass
    assert out.count("Completed all test cases") == 4, out
    assert "<Ax, y> = <x, A^T y>" in out and "Ax = (A^*)^* x" in out


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bc, pad_mode", [("dirichlet", "constant"), ("neumann", "symmetric")])
def test_cell_scaled_laplacian_is_odls_laplacian(impl, bc, pad_mode):
    space = _space(impl, max_pt=(2.0, 2.25))  # cells 0.25 x 0.25: h^2 = 1/16
    x = _element(space)
    A = ssdops.as_odl(ssdops.laplacian(GRID, bc=bc), space, scale="cell")
    reference = odl.Laplacian(space, pad_mode=pad_mode)(x)
    np.testing.assert_allclose(_host(A(x)), _host(reference), rtol=1e-12, atol=1e-10)
    unscaled = ssdops.as_odl(ssdops.laplacian(GRID, bc=bc), space)(x)
    np.testing.assert_allclose(_host(unscaled) * 16.0, _host(reference), rtol=1e-12, atol=1e-10)


def test_odl_conjugate_gradient_solves_the_implicit_step():
    space, dt = _space(), 0.4
    G = ssdops.divergence_form(0.5 + np.random.default_rng(2).random(GRID), bc="dirichlet")
    A = ssdops.as_odl(ssdops.identity(GRID) - dt * G, space)
    rhs = _element(space)
    x = space.zero()
    odl.solvers.conjugate_gradient(A, x, rhs, niter=200)
    reference = ssdops.implicit_step(_host(rhs), G, dt, tol=1e-13)
    np.testing.assert_allclose(_host(x), reference, rtol=1e-8, atol=1e-8)


def test_tensor_spaces_work_too():
    space = odl.rn(GRID)
    x = space.element(np.random.default_rng(3).standard_normal(GRID))
    op = _general()
    np.testing.assert_allclose(_host(ssdops.as_odl(op, space)(x)), op @ _host(x), rtol=1e-12)
    with pytest.raises(ValueError, match="cells"):
        ssdops.as_odl(op, space, scale="cell")


def test_clear_errors():
    space = _space()
    with pytest.raises(ValueError, match=r"\(8, 9\).*\(9, 8\)"):
        ssdops.as_odl(ssdops.laplacian((9, 8)), space)
    with pytest.raises(ValueError, match="unbatched"):
        ssdops.as_odl(ssdops.divergence_form(np.ones((2,) + GRID)), space)
    with pytest.raises(ValueError, match="scale must be"):
        ssdops.as_odl(ssdops.laplacian(GRID), space, scale="pixel")
    with pytest.raises(ValueError, match="square"):
        ssdops.as_odl(ssdops.laplacian(GRID), _space(max_pt=(1.0, 2.0)), scale="cell")
    with pytest.raises(ValueError, match="real"):
        ssdops.as_odl(ssdops.laplacian(GRID), odl.uniform_discr([0, 0], [1, 1], GRID, dtype=complex))
    with pytest.raises(TypeError, match="ssdops.SSD"):
        ssdops.as_odl(np.eye(3), space)
    with pytest.raises(TypeError, match="ODL linear space"):
        ssdops.as_odl(ssdops.laplacian(GRID), np.zeros(GRID))


def test_importing_through_ssdops_keeps_numpy_print_options():
    """ODL sets ``legacy="1.13"`` at import; ssdops' import of it (``as_odl``) leaves the caller's options."""
    import subprocess
    import sys

    code = ("import numpy as np, ssdops; from ssdops.interop._odl import import_odl; import_odl(); "
            "print(np.get_printoptions()['legacy'], repr(np.array([1.0, 1.0])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False array([1., 1.])"
