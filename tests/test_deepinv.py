"""deepinv adapters: ssdops.as_deepinv, heat_physics, perona_malik_physics and diffnet_torch.as_deepinv, checked
with deepinv's own tests (adjointness_test, compute_norm, deepinv.test) and against dense matrices."""
import numpy as np
import pytest
import scipy.linalg

torch = pytest.importorskip("torch")

import ssdops  # noqa: E402
from ssdops.diffnet.data import PAPER_PM_ARGS, make_task  # noqa: E402
from ssdops.interop._deepinv import import_deepinv  # noqa: E402

try:
    deepinv = import_deepinv()
except ImportError:
    pytest.skip("deepinv is not installed (pip install ssdops[deepinv])", allow_module_level=True)

# With the CPU torch wheel, torchvision's compiled extension does not load: import_deepinv says so once.
pytestmark = pytest.mark.filterwarnings("ignore:torchvision's compiled extension:UserWarning")

DTYPES = [(torch.float32, 1e-5), (torch.float64, 1e-12)]


def _dense(op):
    """The dense matrix of an unbatched operator (an independent reference: scipy's sparse assembly)."""
    return ssdops.to_scipy(ssdops.SSD(np.asarray(op.diagonals), op.offsets)).toarray()


def _gammas(shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).uniform(0.2, 2.0, shape))


def _images(shape, seed=1):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape))


# --- as_deepinv ---------------------------------------------------------------------------------------------------
def test_per_image_operator_pairs_with_images_not_channels_when_B_equals_C():
    B = C = 3
    gamma = _gammas((B, 6, 7))
    op = ssdops.divergence_form(gamma)
    physics = ssdops.as_deepinv(op)
    x = _images((B, C, 6, 7))
    y, z = physics.A(x), physics.A_adjoint(x)
    for b in range(B):
        M = _dense(ssdops.divergence_form(gamma[b]))
        for c in range(C):
            np.testing.assert_allclose(y[b, c].numpy().ravel(), M @ x[b, c].numpy().ravel(), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(z[b, c].numpy().ravel(), M.T @ x[b, c].numpy().ravel(), rtol=1e-12,
                                       atol=1e-12)
    # The trailing-axes rule of op @ x pairs gamma[c] with channel c: a different (wrong) answer.
    assert not torch.allclose(op @ x, y)
    # The rule the adapter applies for the user: gamma[:, None].
    torch.testing.assert_close(ssdops.divergence_form(gamma[:, None]) @ x, y)


def test_per_channel_and_shared_operators_against_dense():
    B, C = 2, 3
    gamma = _gammas((B, C, 5, 6))
    x = _images((B, C, 5, 6))
    y = ssdops.as_deepinv(ssdops.divergence_form(gamma)).A(x)
    shared = ssdops.as_deepinv(ssdops.divergence_form(gamma[0, 0])).A_adjoint(x)
    M0 = _dense(ssdops.divergence_form(gamma[0, 0]))
    for b in range(B):
        for c in range(C):
            M = _dense(ssdops.divergence_form(gamma[b, c]))
            np.testing.assert_allclose(y[b, c].numpy().ravel(), M @ x[b, c].numpy().ravel(), atol=1e-12)
            np.testing.assert_allclose(shared[b, c].numpy().ravel(), M0.T @ x[b, c].numpy().ravel(), atol=1e-12)


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("batch", [(), (4,), (4, 2)])
def test_adjointness_test(batch, dtype, tol):
    # A non-symmetric operator (random filters), so that A_adjoint is not A.
    op = ssdops.ssd_from_filters(_images(batch + (5, 8, 9), seed=2))
    physics = ssdops.as_deepinv(op)
    x = torch.zeros((1, 2, 8, 9), dtype=dtype)  # adjointness_test draws (num_samples,) + x.shape[1:]
    error = physics.adjointness_test(x, num_samples=4)
    assert error < tol
    assert physics.A(torch.ones((4, 2, 8, 9), dtype=dtype)).dtype == dtype


def test_numpy_operator_and_bad_inputs():
    op = ssdops.divergence_form(np.ones((3, 5, 5)))
    physics = ssdops.as_deepinv(op)
    x = _images((3, 2, 5, 5))
    torch.testing.assert_close(physics.A(x), ssdops.divergence_form(torch.ones(3, 1, 5, 5, dtype=torch.float64)) @ x)
    with pytest.raises(ValueError, match=r"batch shape \(3,\).*\(2, 3, 5, 5\)"):
        physics.A(_images((2, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"\(3, 2, 6, 5\).*\(5, 5\)|\(5, 5\).*\(3, 2, 6, 5\)"):
        physics.A(_images((3, 2, 6, 5)))
    with pytest.raises(ValueError, match=r"batch shape \(3, 4\).*\(3, 2, 5, 5\)"):
        ssdops.as_deepinv(ssdops.divergence_form(np.ones((3, 4, 5, 5)))).A(x)
    with pytest.raises(TypeError, match="SSD"):
        ssdops.as_deepinv(np.eye(3))


# --- heat_physics -------------------------------------------------------------------------------------------------
def _heat_matrix(T, bc, n=(6, 7)):
    return scipy.linalg.expm(T * ssdops.to_scipy(ssdops.laplacian(n, bc=bc)).toarray())


@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_heat_physics_forward_norm_and_adjoint(bc, dtype, tol):
    T = 0.7
    physics = ssdops.heat_physics(T, bc=bc)
    M = _heat_matrix(T, bc)
    x = _images((2, 3, 6, 7)).to(dtype)
    y = physics.A(x)
    np.testing.assert_allclose(y.double().numpy().reshape(6, 42), (M @ x.double().numpy().reshape(6, 42).T).T,
                               atol=100 * tol)
    torch.testing.assert_close(y, ssdops.heat(x, T, bc=bc))
    assert physics.adjointness_test(x, num_samples=3) < 10 * tol
    exact = np.linalg.norm(M, 2)
    sqnorm = physics.compute_norm(x[0])             # deepinv's convention: ||A||^2 by default
    assert sqnorm.dtype == dtype and abs(float(sqnorm) - exact**2) < 1e-6
    assert abs(float(physics.compute_norm(x[0], squared=False)) - exact) < 1e-6
    assert abs(float(physics.compute_sqnorm(x[0])) - exact**2) < 1e-6
    if bc == "neumann":
        assert abs(float(physics.compute_norm(x[0], squared=False)) - 1.0) < 1e-4
    # deepinv's own (generic) power method estimates the same squared norm.
    estimate = deepinv.physics.LinearPhysics.compute_sqnorm(physics, x[0].double(), max_iter=500, tol=1e-7,
                                                             verbose=False)
    assert abs(float(estimate) - exact**2) < 2e-2


def flat(a):
    """Images (N, 1, H, W) as the columns of a matrix (H W, N)."""
    return a.numpy().reshape(a.shape[0], -1).T


@pytest.mark.parametrize("bc", ["neumann", "dirichlet"])
def test_heat_physics_dagger_and_prox_against_dense(bc):
    T = 1.0
    physics = ssdops.heat_physics(T, bc=bc)
    M = _heat_matrix(T, bc)
    x = _images((2, 1, 6, 7))
    # Nothing truncated at T = 1: the exact inverse.
    np.testing.assert_allclose(flat(physics.A_dagger(physics.A(x))), flat(x), atol=1e-10)
    np.testing.assert_allclose(flat(physics.A_dagger(x)), np.linalg.solve(M, flat(x)), atol=1e-9)
    # A large T: modes below rcond * sigma_max are dropped, as numpy's pinv does.
    M5 = _heat_matrix(5.0, bc)
    dagger = ssdops.heat_physics(5.0, bc=bc).A_dagger(x, rcond=1e-6, solver="CG", max_iter=3)
    np.testing.assert_allclose(flat(dagger), np.linalg.pinv(M5, rcond=1e-6) @ flat(x), atol=1e-8)
    # prox: (I + gamma M^T M)^-1 (z + gamma M^T y), one gamma or one per image.
    y, z = _images((2, 1, 6, 7), seed=3), _images((2, 1, 6, 7), seed=4)
    for gamma in (0.3, torch.tensor([0.3, 2.0], dtype=torch.float64)):
        g = np.broadcast_to(np.asarray(gamma), (2,))
        expected = np.stack([np.linalg.solve(np.eye(42) + g[i] * M.T @ M, flat(z)[:, i] + g[i] * M.T @ flat(y)[:, i])
                             for i in range(2)], axis=1)
        np.testing.assert_allclose(flat(physics.prox_l2(z, y, gamma)), expected, atol=1e-10)
    with pytest.raises(TypeError, match="unexpected keyword"):
        physics.prox_l2(z, y, 0.3, tolerance=1e-3)
    with pytest.raises(ValueError, match="gamma"):
        physics.prox_l2(z, y, torch.ones(3))


def test_heat_physics_bad_arguments():
    with pytest.raises(ValueError, match="T"):
        ssdops.heat_physics(-1.0)
    with pytest.raises(ValueError):
        ssdops.heat_physics(1.0, bc="periodic")


# --- perona_malik_physics -----------------------------------------------------------------------------------------
def test_perona_malik_physics_is_the_pm_inverse_data_generator():
    physics = ssdops.perona_malik_physics()
    assert physics.pm_args == PAPER_PM_ARGS
    images = np.random.default_rng(5).random((3, 16, 16))
    inputs, _ = make_task("pm-inverse", images)
    y = physics.A(torch.from_numpy(images)[:, None])
    np.testing.assert_array_equal(y.float().numpy(), inputs)
    x = _images((2, 2, 8, 8)).abs()
    two = ssdops.perona_malik_physics(steps=2)
    torch.testing.assert_close(two.A(x)[1, 0], ssdops.perona_malik(x[1, 0], **{**PAPER_PM_ARGS, "steps": 2}))
    with pytest.raises(TypeError, match="stepz"):
        ssdops.perona_malik_physics(stepz=2)


# --- diffnet_torch.as_deepinv -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reconstructor():
    import diffnet_torch
    from diffnet_torch.demo import SHIPPED_WEIGHTS

    return diffnet_torch.as_deepinv(diffnet_torch.load_weights(SHIPPED_WEIGHTS))


def test_reconstructor_folds_channels(reconstructor):
    assert isinstance(reconstructor, deepinv.models.Reconstructor)
    y = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        out = reconstructor(y, ssdops.perona_malik_physics())
        one = reconstructor.model(y[1, 2][None, None])[0, 0]
    assert out.shape == y.shape
    torch.testing.assert_close(out[1, 2], one)
    with pytest.raises(TypeError, match="Module"):
        import diffnet_torch

        diffnet_torch.as_deepinv(lambda y: y)


def test_shipped_weights_improve_psnr_in_deepinv_test(reconstructor, capsys):
    from diffnet_torch.demo import camera

    physics = ssdops.perona_malik_physics()
    x = torch.from_numpy(camera(64)).float()[None, None]
    y = physics(x)
    with torch.no_grad():
        direct = reconstructor(y, physics)
        data = [{"x": x[0], "y": y[0]}]          # deepinv's dataset format: a dict per sample
        scores = deepinv.test(reconstructor, torch.utils.data.DataLoader(data), physics, show_progress_bar=False,
                              no_learning_method="y")
    table = capsys.readouterr().out
    assert "PSNR no learning" in table and "PSNR:" in table
    before, after = float(ssdops.psnr(y, x)), float(ssdops.psnr(direct, x))
    assert before == pytest.approx(30.4, abs=0.5) and after > before + 3.0
    metric = deepinv.metric.PSNR()
    assert scores["PSNR"] == pytest.approx(float(metric(direct, x)), abs=1e-3)
    assert scores["PSNR no learning"] == pytest.approx(float(metric(y, x)), abs=1e-3)
    assert scores["PSNR"] > scores["PSNR no learning"] + 3.0
