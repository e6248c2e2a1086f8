"""Numbers at the edges of the float range (issue #23, item 5): metrics that neither overflow nor underflow in
float32, a ``lam`` that underflows, an overflow inside a Krylov solve, and ``out=`` of any memory layout."""
import numpy as np
import pytest

import ssdops
from ssdops import backends


def reference_psnr(x, ref):
    """PSNR in float64 of the same (float32) values: the independent reference."""
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    mse = np.mean((x - ref) ** 2)
    return 10 * np.log10((ref.max() - ref.min()) ** 2 / mse)


def reference_relative_l2(x, ref):
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    return np.linalg.norm(x - ref) / np.linalg.norm(ref)


@pytest.mark.parametrize("scale,error", [(1e20, 1e-4), (1e-30, 1e-2), (1.0, 1e-2), (3e37, 1e-3), (1e-37, 0.1)])
def test_float32_metrics_are_finite_where_float64_is(scale, error):
    rng = np.random.default_rng(0)
    ref64 = scale * rng.random((2, 32, 32))
    ref = ref64.astype(np.float32)
    x = (ref64 * (1 + error * rng.standard_normal(ref64.shape))).astype(np.float32)
    p, e = ssdops.psnr(x, ref), ssdops.relative_l2(x, ref)
    assert p.dtype == np.float32 and e.dtype == np.float32
    expected_p = [reference_psnr(x[i], ref[i]) for i in range(2)]
    expected_e = [reference_relative_l2(x[i], ref[i]) for i in range(2)]
    assert np.all(np.isfinite(expected_p))
    np.testing.assert_allclose(p, expected_p, rtol=1e-5)
    np.testing.assert_allclose(e, expected_e, rtol=1e-5)


def test_float32_metrics_of_the_issue():
    """The issue's cases, with the float64 answers it quotes (84.6 and 44.6 dB, of its own images)."""
    rng = np.random.default_rng(1)
    for scale, error in ((1e20, 1e-4), (1e-30, 1e-2)):
        ref = (scale * rng.random((64, 64))).astype(np.float32)
        x = (ref.astype(np.float64) * (1 + error * rng.standard_normal(ref.shape))).astype(np.float32)
        p = float(ssdops.psnr(x, ref))
        assert np.isfinite(p) and p == pytest.approx(reference_psnr(x, ref), abs=1e-3)
        assert float(ssdops.relative_l2(x, ref)) == pytest.approx(reference_relative_l2(x, ref), rel=1e-5)


def test_metrics_keep_nan_inf_exact_and_data_range():
    ref = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    bad = ref.copy()
    bad[1, 2] = np.nan
    assert np.isnan(ssdops.psnr(bad, ref)) and np.isnan(ssdops.psnr(ref, bad))
    assert np.isnan(ssdops.relative_l2(bad, ref))
    bad[1, 2] = np.inf
    assert np.isnan(ssdops.psnr(bad, ref))
    assert ssdops.psnr(ref, ref) == np.inf
    assert float(ssdops.psnr(ref + 0.01, ref, data_range=2.0)) == pytest.approx(10 * np.log10(4 / 1e-4), abs=1e-3)
    batch = ssdops.psnr(np.stack([ref + 0.01, ref + 0.1]), ref, data_range=np.array([1.0, 1.0], np.float32))
    np.testing.assert_allclose(batch, [40.0, 20.0], atol=1e-3)
    with np.errstate(divide="ignore"):
        assert float(ssdops.relative_l2(ref, np.zeros_like(ref))) == np.inf


def test_metrics_in_torch_float32():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    ref = (1e20 * rng.random((16, 16))).astype(np.float32)
    x = (ref.astype(np.float64) * (1 + 1e-4 * rng.standard_normal(ref.shape))).astype(np.float32)
    p = ssdops.psnr(torch.from_numpy(x), torch.from_numpy(ref))
    assert float(p) == pytest.approx(reference_psnr(x, ref), abs=1e-3)


@pytest.mark.parametrize("step", ["perona_malik_step", "perona_malik_operator", "perona_malik"])
def test_lam_that_underflows_is_an_error(step):
    u = np.zeros((8, 8), np.float32)
    u[4:] = 1
    call = {
        "perona_malik_step": lambda v, lam, **kw: ssdops.perona_malik_step(v, dt=0.1, lam=lam, **kw),
        "perona_malik_operator": lambda v, lam, **kw: ssdops.perona_malik_operator(v, lam=lam, **kw).diagonals,
        "perona_malik": lambda v, lam, **kw: ssdops.perona_malik(v, steps=1, dt=0.1, lam=lam, **kw),
    }[step]
    with pytest.raises(ValueError, match="underflows in float32"):
        call(u, 1e-20)
    # Without the check this gives NaN on the flat regions (the bug): the same lam is fine in float64, and so
    # is the smallest lam float32 allows, and a diffusivity without lam**2.
    with np.errstate(over="ignore"):
        assert np.all(np.isfinite(call(u.astype(np.float64), 1e-20)))
        assert np.all(np.isfinite(call(u, 1.1e-19)))
    assert np.all(np.isfinite(call(u, 1e-30, diffusivity="linear")))


def test_krylov_overflow_is_an_error_that_says_so():
    u = (1e18 * np.random.default_rng(0).random((64, 64))).astype(np.float32)
    A = ssdops.divergence_form(np.ones((64, 64), np.float32))
    for method in ("cg", "bicgstab"):
        with np.errstate(over="ignore", invalid="ignore"), pytest.raises(FloatingPointError, match="overflow"):
            ssdops.implicit_step(u, A, 0.5, method=method)
    # The same image scaled down solves (the message's advice), and equals the float64 solve.
    x = ssdops.implicit_step(u / np.float32(1e18), A, 0.5, method="cg") * np.float32(1e18)
    x64 = ssdops.implicit_step(u.astype(np.float64), ssdops.divergence_form(np.ones((64, 64))), 0.5, method="cg")
    np.testing.assert_allclose(x, x64, rtol=1e-4)


def layouts(shape):
    yield np.empty(shape, order="F")
    yield np.empty(shape[::-1]).T
    yield np.empty(shape[:-1] + (2 * shape[-1],))[..., ::2]
    yield np.empty(shape)


@pytest.mark.parametrize("ndim,shape", [(1, (3, 9)), (2, (8, 9)), (2, (3, 8, 9)), (3, (4, 5, 6)), (3, (2, 4, 5, 6))])
def test_out_of_any_layout_behaves_the_same_on_every_path(ndim, shape):
    rng = np.random.default_rng(0)
    A = ssdops.divergence_form(0.5 + rng.random(shape[-ndim:]), ndim=ndim)
    u = rng.random(shape)
    for name in ("matvec", "rmatvec"):
        expected = getattr(A, name)(u)
        for fast in (True, False):
            for out in layouts(shape):
                if fast:
                    result = getattr(A, name)(u, out=out)
                else:
                    with backends.use_generic():
                        result = getattr(A, name)(u, out=out)
                assert result is out
                np.testing.assert_allclose(out, expected, rtol=1e-14, atol=1e-14)
