"""DiffNet on volumes (issue #13): 3-D models in both frameworks against independent references, torch <-> JAX
equality with shared weights, the weight files' ndim, the balls data set and the 3-D tasks, and the
``train --ndim 3`` command lines (tiny volumes: 8^3, 1-2 layers, 2 epochs)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
eqx = pytest.importorskip("equinox")
pytest.importorskip("optax")
pytest.importorskip("safetensors")
scipy_linalg = pytest.importorskip("scipy.sparse.linalg")

import jax.numpy as jnp  # noqa: E402

import diffnet_jax  # noqa: E402
import diffnet_torch  # noqa: E402
import ssdops  # noqa: E402
from ssdops.diffnet import data, format, runs  # noqa: E402
from ssdops.diffnet.config import RunConfig  # noqa: E402

torch.set_num_threads(1)

#: The seven offsets of the 3-D star, written out here (not taken from ssdops): -e1, -e2, -e3, +e1, +e2,
#: +e3, then the centre.
STAR_3D = ((-1, 0, 0), (0, -1, 0), (0, 0, -1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 0))
SMALL = dict(n_layers=2, depth=3, width=4)
GRID = (5, 6, 7)


def _rand(shape, seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _shift(u, offset):
    """v[..., x] = u[..., x + offset] on the last len(offset) axes, zero outside the grid (NumPy)."""
    d = len(offset)
    padded = np.pad(u, [(0, 0)] * (u.ndim - d) + [(1, 1)] * d)
    index = tuple(slice(1 + o, 1 + o + n) for o, n in zip(offset, u.shape[-d:]))
    return padded[(Ellipsis,) + index]


def _conv_reference(x, weight, bias):
    """Cross-correlation with zero padding, kernel 3 per axis, by explicit shifts: ``(N, C, *grid)``."""
    d = weight.ndim - 2
    out = np.zeros((x.shape[0], weight.shape[0]) + x.shape[2:]) + bias.reshape((-1,) + (1,) * d)
    for kernel_index in np.ndindex(*(3,) * d):
        shifted = _shift(x, tuple(k - 1 for k in kernel_index))
        out = out + np.einsum("oi,ni...->no...", weight[(slice(None), slice(None)) + kernel_index], shifted)
    return out


def _star_step(u, zeta, dt, offsets):
    """u + dt (sum_k zeta_k u(. + o_k) - zeta_c u), the last offset the centre (independent of ssdops)."""
    w = -zeta[:, -1] * u
    for k, offset in enumerate(offsets[:-1]):
        w = w + zeta[:, k] * _shift(u, offset)
    return u + dt * w


def _laplacian_nd(grid):
    """The Neumann Laplacian of ``grid`` from scipy (row-major index, as ssdops)."""
    return scipy_linalg.LaplacianNd(grid, boundary_conditions="neumann").tosparse().astype(np.float64)


@pytest.fixture(scope="module")
def jax_model():
    """One initialised JAX 3-D DiffNet (``SMALL``) with dt moved off its initial value, one of them negative."""
    model = diffnet_jax.DiffNet(**SMALL, ndim=3, key=jax.random.PRNGKey(7))
    return eqx.tree_at(lambda m: [layer.dt for layer in m.layers], model,
                       [jnp.asarray(v, jnp.float32) for v in (-0.1, 0.27)])


def _torch_estimator_weights(estimator):
    return [(c.weight.detach().double().numpy(), c.bias.detach().double().numpy()) for c in estimator.convs]


def _jax_estimator_weights(estimator):
    return [(np.asarray(c.weight, np.float64), np.asarray(c.bias, np.float64)) for c in estimator.convs]


# --------------------------------------------------------------------------------------------------
# models


def _estimator_parameters(depth, width, ndim):
    """The parameter count of one filter estimator and dt, from the architecture (3^d kernels, biases)."""
    chans = [1] + [width] * (depth - 1) + [2 * ndim + 1]
    return sum(a * b * 3**ndim + b for a, b in zip(chans[:-1], chans[1:])) + 1


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_parameter_counts_and_shapes(ndim):
    key = jax.random.PRNGKey(0)
    expected = 5 * _estimator_parameters(4, 32, ndim)
    tmodel = diffnet_torch.DiffNet(ndim=ndim)
    jmodel = eqx.filter_eval_shape(diffnet_jax.DiffNet, ndim=ndim, key=key)
    assert diffnet_torch.count_parameters(tmodel) == diffnet_jax.count_parameters(jmodel) == expected
    kernel = (3,) * ndim
    tshapes = {k: tuple(v.shape) for k, v in tmodel.state_dict().items()}
    jshapes = {k: tuple(v.shape) for k, v in diffnet_jax.models.named_leaves(jmodel)}
    assert tshapes == jshapes
    assert tshapes["layers.0.estimator.convs.0.weight"] == (32, 1) + kernel
    assert tshapes["layers.4.estimator.convs.3.weight"] == (2 * ndim + 1, 32) + kernel
    assert tmodel.config["ndim"] == jmodel.config["ndim"] == ndim
    if ndim == 3:
        assert expected == 311_560
    lin_t = diffnet_torch.LinearDiffusionNet(GRID[3 - ndim:], n_layers=3)
    lin_j = eqx.filter_eval_shape(diffnet_jax.LinearDiffusionNet, GRID[3 - ndim:], n_layers=3)
    per_layer = (2 * ndim + 1) * int(np.prod(GRID[3 - ndim:])) + 1
    assert diffnet_torch.count_parameters(lin_t) == diffnet_jax.count_parameters(lin_j) == 3 * per_layer
    assert lin_t.ndim == lin_j.ndim == ndim


def test_torch_diffnet_3d_layers_match_an_independent_computation():
    torch.manual_seed(0)
    model = diffnet_torch.DiffNet(**SMALL, ndim=3).double()
    with torch.no_grad():
        for k, layer in enumerate(model.layers):
            layer.dt.fill_(0.1 + 0.1 * k)
    u0 = torch.rand((2, 1) + GRID, dtype=torch.float64)
    records = model.trace(u0)
    u = u0.numpy()
    for layer, rec in zip(model.layers, records):
        x = u
        weights = _torch_estimator_weights(layer.estimator)
        for j, (w, b) in enumerate(weights):
            x = _conv_reference(x, w, b)
            x = np.maximum(x, 0.0) if j < len(weights) - 1 else x
        assert rec["zeta"].shape == (2, 7) + GRID
        np.testing.assert_allclose(rec["zeta"].detach().numpy(), x, rtol=1e-10, atol=1e-12)
        expected = _star_step(u[:, 0], x, float(layer.dt.detach()), STAR_3D)[:, None]
        np.testing.assert_allclose(rec["output"].detach().numpy(), expected, rtol=1e-10, atol=1e-12)
        u = expected
    np.testing.assert_allclose(model(u0).detach().numpy(), np.maximum(u, 0.0), rtol=1e-10, atol=1e-12)


def test_jax_diffnet_3d_layers_match_an_independent_computation(jax_model):
    model = jax_model
    u0 = _rand((2, 1) + GRID, seed=1)
    records = eqx.filter_jit(lambda m, x: m.trace(x))(model, jnp.asarray(u0))
    u = u0.astype(np.float64)
    for layer, rec in zip(model.layers, records):
        x = u
        weights = _jax_estimator_weights(layer.estimator)
        for j, (w, b) in enumerate(weights):
            x = _conv_reference(x, w, b)
            x = np.maximum(x, 0.0) if j < len(weights) - 1 else x
        np.testing.assert_allclose(rec["zeta"], x, rtol=1e-5, atol=1e-5)
        expected = _star_step(u[:, 0], x, float(layer.dt), STAR_3D)[:, None]
        np.testing.assert_allclose(rec["output"], expected, rtol=1e-5, atol=1e-5)
        u = np.asarray(rec["output"], np.float64)    # carry the model's own float32 state forward


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_linear_net_3d_starts_as_a_neumann_laplacian_step(framework):
    u = _rand((3, 1) + GRID, seed=3)
    if framework == "torch":
        out = diffnet_torch.LinearDiffusionNet(GRID, n_layers=2)(torch.from_numpy(u)).detach().numpy()
    else:
        out = np.asarray(diffnet_jax.LinearDiffusionNet(GRID, n_layers=2)(jnp.asarray(u)))
    L = _laplacian_nd(GRID)
    v = u.reshape(3, -1).astype(np.float64).T
    for _ in range(2):
        v = v + 0.2 * (L @ v)
    np.testing.assert_allclose(out.reshape(3, -1), v.T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_inputs_of_the_wrong_dimension_are_named(framework):
    if framework == "torch":
        planar, volumetric = diffnet_torch.DiffNet(**SMALL), diffnet_torch.DiffNet(**SMALL, ndim=3)
        linear = diffnet_torch.LinearDiffusionNet(GRID, n_layers=1)
        wrap = torch.from_numpy
    else:   # shapes only: the check comes before any arithmetic
        key = jax.random.PRNGKey(0)
        planar = eqx.filter_eval_shape(diffnet_jax.DiffNet, **SMALL, key=key)
        volumetric = eqx.filter_eval_shape(diffnet_jax.DiffNet, **SMALL, ndim=3, key=key)
        linear = eqx.filter_eval_shape(diffnet_jax.LinearDiffusionNet, GRID, n_layers=1)
        wrap = jnp.asarray
    with pytest.raises(ValueError, match=r"a 2-D model takes inputs of shape \(N, 1, H, W\), got \(2, 1, 5, 6, 7\)"):
        planar(wrap(_rand((2, 1) + GRID)))
    with pytest.raises(ValueError, match=r"a 3-D model takes inputs of shape \(N, 1, D, H, W\), got \(2, 1, 6, 7\)"):
        volumetric(wrap(_rand((2, 1, 6, 7))))
    with pytest.raises(ValueError, match=r"does not match the model's grid \(5, 6, 7\)"):
        linear(wrap(_rand((2, 1, 5, 6, 8))))


# --------------------------------------------------------------------------------------------------
# weight files: ndim recorded, torch <-> JAX equality in 3-D


def _metadata(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return f.metadata()


def _perturbed_torch_model(kind):
    torch.manual_seed(0)
    model = (diffnet_torch.DiffNet(**SMALL, ndim=3) if kind == "diffnet"
             else diffnet_torch.LinearDiffusionNet(GRID, n_layers=2))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("dt"):
                p.uniform_(0.05, 0.3)
            elif name.endswith("diagonals"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def _perturbed_linear_jax_model():
    model = diffnet_jax.LinearDiffusionNet(GRID, n_layers=2)
    rng = np.random.default_rng(3)
    return eqx.tree_at(lambda m: [layer.diagonals for layer in m.layers], model,
                       [layer.diagonals + jnp.asarray(0.1 * rng.standard_normal((7,) + GRID), jnp.float32)
                        for layer in model.layers])


def _assert_equivalent(tmodel, jmodel):
    """Outputs within 1e-5 relative, the loss and every gradient close (float32 in both)."""
    x, y = _rand((2, 1) + GRID, seed=11), _rand((2, 1) + GRID, seed=12)
    tmodel.zero_grad()
    out_t = tmodel(torch.from_numpy(x))
    loss_t = torch.mean((out_t - torch.from_numpy(y)) ** 2)
    loss_t.backward()
    grads_t = {n: p.grad.numpy() for n, p in tmodel.named_parameters()}

    def loss_fn(m):
        out = m(jnp.asarray(x))
        return jnp.mean((out - jnp.asarray(y)) ** 2), out

    (loss_j, out_j), grads = eqx.filter_jit(eqx.filter_value_and_grad(loss_fn, has_aux=True))(jmodel)
    ref = out_t.detach().numpy()
    np.testing.assert_allclose(np.asarray(out_j), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    assert float(loss_j) == pytest.approx(float(loss_t.detach()), rel=1e-5)
    grads_j = diffnet_jax.state_dict(grads)
    assert set(grads_j) == set(grads_t)
    for name, gt in grads_t.items():
        rel = np.linalg.norm(grads_j[name] - gt) / max(np.linalg.norm(gt), 1e-30)
        assert rel < 1e-4, (name, rel)


@pytest.mark.parametrize("kind", ["diffnet", "linear"])
@pytest.mark.parametrize("direction", ["torch-to-jax", "jax-to-torch"])
def test_3d_weights_are_interchangeable(tmp_path, kind, direction, jax_model):
    path = tmp_path / "w.safetensors"
    if direction == "torch-to-jax":
        tmodel = _perturbed_torch_model(kind)
        diffnet_torch.save_weights(tmodel, path)
        jmodel = diffnet_jax.load_weights(path)
    else:
        jmodel = jax_model if kind == "diffnet" else _perturbed_linear_jax_model()
        diffnet_jax.save_weights(jmodel, path)
        tmodel = diffnet_torch.load_weights(path)
    meta = _metadata(path)
    assert meta["ndim"] == "3" and json.loads(meta["config"]) == tmodel.config == jmodel.config
    assert type(jmodel).__name__ == type(tmodel).__name__
    _assert_equivalent(tmodel, jmodel)


def test_ndim_metadata_must_agree_with_the_config(tmp_path):
    from safetensors.numpy import save_file

    model = diffnet_torch.DiffNet(n_layers=1, depth=2, width=2, ndim=3)
    tensors = diffnet_torch.models.state_tensors(model)
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    diffnet_torch.save_weights(model, good)
    assert _metadata(good)["ndim"] == "3"
    save_file(tensors, str(bad), metadata={"format": format.WEIGHTS_FORMAT, "config": json.dumps(model.config),
                                           "ndim": "2"})
    for load in (diffnet_torch.load_weights, diffnet_jax.load_weights):
        with pytest.raises(format.CorruptFileError, match="metadata ndim '2' contradicts the config"):
            load(bad)
        assert load(good).config["ndim"] == 3
    # a 2-D file of before 3-D (no ndim anywhere) still loads as 2-D
    planar = diffnet_torch.DiffNet(n_layers=1, depth=2, width=2)
    old_config = {k: v for k, v in planar.config.items() if k != "ndim"}
    save_file(diffnet_torch.models.state_tensors(planar), str(tmp_path / "old.safetensors"),
              metadata={"format": format.WEIGHTS_FORMAT, "config": json.dumps(old_config)})
    assert diffnet_jax.load_weights(tmp_path / "old.safetensors").ndim == 2


# --------------------------------------------------------------------------------------------------
# data: balls and the 3-D tasks


def test_balls_follow_their_documented_law():
    n, size, seed = 4, 12, 5
    volumes = data.balls(n, size, seed=seed, per_image=2)
    assert volumes.shape == (n, size, size, size) and volumes.dtype == np.float32
    np.testing.assert_array_equal(volumes, data.balls(n, size, seed=seed, per_image=2))
    assert not np.array_equal(volumes, data.balls(n, size, seed=seed + 1, per_image=2))
    # the law, drawn here by hand: radius in [3, min(0.3 size, size / 2 - 1)], a centre that keeps the ball
    # inside, a contrast in [0.1, 1]; overlapping balls add up
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[:size, :size, :size]
    r_hi = max(min(0.3 * size, size / 2 - 1), 3.0)
    for volume in volumes:
        expected = np.zeros((size,) * 3)
        for _ in range(2):
            r = rng.uniform(3.0, r_hi)
            cz, cy, cx = rng.uniform(r, size - 1 - r, size=3)
            expected += rng.uniform(0.1, 1.0) * ((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= r * r)
        np.testing.assert_allclose(volume, expected, rtol=1e-6)
        assert volume.max() > 0
    faces = np.concatenate([volumes[:, [0, -1]].ravel(), volumes[:, :, [0, -1]].ravel(),
                            volumes[:, :, :, [0, -1]].ravel()])
    assert not faces.any()


def test_3d_deconvolution_is_the_heat_equation_on_the_volume():
    volumes = data.balls(2, 8, seed=0)
    inp, tgt = data.make_task("deconvolution", volumes)
    assert inp.shape == tgt.shape == (2, 1, 8, 8, 8) and inp.dtype == np.float32
    np.testing.assert_array_equal(tgt[:, 0], volumes)
    blurred = scipy_linalg.expm_multiply(_laplacian_nd((8, 8, 8)), volumes.reshape(2, -1).T.astype(np.float64))
    np.testing.assert_allclose(inp.reshape(2, -1), blurred.T, atol=2e-6)


def test_3d_perona_malik_tasks_and_per_volume_noise():
    volumes = data.balls(3, 8, seed=1)
    pm = ssdops.perona_malik(volumes.astype(np.float64), ndim=3, **data.PAPER_PM_ARGS)
    as_planes = ssdops.perona_malik(volumes.astype(np.float64), **data.PAPER_PM_ARGS)   # a batch of slices
    assert np.abs(pm - as_planes).max() > 1e-3     # so the check below tells the two readings apart
    inp, tgt = data.make_task("pm-forward", volumes)
    np.testing.assert_array_equal(inp[:, 0], volumes)
    np.testing.assert_allclose(tgt[:, 0], pm, atol=1e-6)
    inp, tgt = data.make_task("pm-inverse", volumes)
    np.testing.assert_allclose(inp[:, 0], pm, atol=1e-6)
    # noise of std level * max|input| per volume: slices of zeros get noise of the volume's scale too
    noisy, _ = data.make_task("pm-forward", volumes, noise=0.05, seed=3)
    noise = (noisy[:, 0] - volumes.astype(np.float64)) / volumes.max(axis=(1, 2, 3), keepdims=True)
    assert not volumes[:, 0].any()     # the first slice of each volume is background
    for v in noise:
        assert abs(v.std() - 0.05) < 0.01 and abs(v[0].std() - 0.05) < 0.02


def test_run_config_ndim_checks():
    assert RunConfig(ndim=3, data="balls").ndim == 3 and RunConfig().ndim == 2
    with pytest.raises(ValueError, match="ndim 3 needs 3-D data: data balls"):
        RunConfig(ndim=3)
    with pytest.raises(ValueError, match=r"data balls is 3-D: set ndim 3 \(--ndim 3\)"):
        RunConfig(data="balls")
    with pytest.raises(ValueError, match="model unet is 2-D only"):
        RunConfig(model="unet", ndim=3, data="balls")
    with pytest.raises(ValueError, match=r"ndim: 4 is not one of \(2, 3\)"):
        RunConfig(ndim=4)
    # a run directory of before 3-D (no ndim in config.json) reads as 2-D
    assert RunConfig.from_dict({k: v for k, v in RunConfig().to_dict().items() if k != "ndim"}).ndim == 2


# --------------------------------------------------------------------------------------------------
# command lines

TINY = ["--ndim", "3", "--data", "balls", "--task", "deconvolution", "--image-size", "8", "--train-size", "6",
        "--test-size", "3", "--epochs", "2", "--batch-size", "3", "--layers", "1", "--depth", "2", "--width", "4",
        "--lr", "1e-2", "--lr-final", "1e-3", "--quiet"]


def _per_volume_psnr(model_output, target):
    """PSNR of each volume by its definition: range of the target volume, MSE over all its voxels."""
    mse = ((model_output - target) ** 2).reshape(len(target), -1).mean(axis=1)
    value_range = target.reshape(len(target), -1).max(axis=1) - target.reshape(len(target), -1).min(axis=1)
    return 10 * np.log10(value_range**2 / mse)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_cli_train_resume_evaluate_3d(tmp_path, capsys, framework):
    if framework == "torch":
        from diffnet_torch.cli import main
        from diffnet_torch.trainer import evaluate_run
        extra = ["--threads", "1"]
    else:
        from diffnet_jax.cli import main
        from diffnet_jax.trainer import evaluate_run
        extra = []
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", *TINY, *extra, "--out", str(full)]) == 0
    summary = runs.read_summary(full)
    assert summary["epochs"] == 2 and summary["config"]["ndim"] == 3
    assert summary["parameters"] == _estimator_parameters(2, 4, 3)
    assert _metadata(full / runs.WEIGHTS_FILE)["ndim"] == "3"
    # interrupted after epoch 1, then resumed without flags: the same numbers
    assert main(["train", *TINY, *extra, "--out", str(part), "--stop-after", "1"]) == 0
    assert main(["train", "--out", str(part), "--resume", "--quiet"]) == 0
    for a, b in zip(runs.MetricsLog(full).rows, runs.MetricsLog(part).rows):
        for column in ("train_loss", "test_loss", "test_psnr", "lr"):
            assert a[column] == pytest.approx(b[column], rel=1e-5), column
    # evaluate: the per-volume PSNR of the best weights, recomputed here by its definition
    values = np.asarray(evaluate_run(str(full), device="cpu"))
    x, y = data.load_run_test_set(str(full))
    assert x.shape == (3, 1, 8, 8, 8)
    with torch.no_grad():
        out = diffnet_torch.load_weights(full / runs.WEIGHTS_FILE)(torch.from_numpy(x)).double().numpy()
    np.testing.assert_allclose(values, _per_volume_psnr(out, y.astype(np.float64)), rtol=1e-4)
    capsys.readouterr()
    assert main(["evaluate", str(full), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 3 and result["mean_psnr"] == pytest.approx(summary["best_test_psnr"], rel=1e-4)
    if framework == "torch":   # figures of a 3-D run: the central slices, seven zeta maps
        assert main(["figures", str(full)]) == 0
        for name in ("results.png", "fft.png", "zeta.png", "smoothing.png"):
            assert (full / "figures" / name).stat().st_size > 1000


def test_cli_3d_linear_model_and_figures(tmp_path):
    from diffnet_torch.cli import main

    out = tmp_path / "lin"
    assert main(["train", *TINY, "--model", "linear", "--epochs", "1", "--threads", "1", "--out", str(out)]) == 0
    model = diffnet_jax.load_weights(out / runs.WEIGHTS_FILE)      # written by torch, read by JAX
    assert isinstance(model, diffnet_jax.LinearDiffusionNet) and model.grid_shape == (8, 8, 8)
    assert runs.read_summary(out)["parameters"] == 7 * 8**3 + 1
    assert main(["figures", str(out)]) == 0
    for name in ("results.png", "fft.png", "zeta.png", "smoothing.png"):
        assert (out / "figures" / name).stat().st_size > 1000


@pytest.mark.parametrize("flags,message", [
    (["--ndim", "3"], "error: ndim 3 needs 3-D data: data balls (--data); data natural is 2-D"),
    (["--ndim", "3", "--data", "natural"], "error: ndim 3 needs 3-D data"),
    (["--data", "balls"], "error: data balls is 3-D: set ndim 3 (--ndim 3)"),
    (["--model", "unet", "--ndim", "3", "--data", "balls"], "error: model unet is 2-D only"),
    (["--ndim", "1"], "error: argument --ndim: invalid choice: 1 (choose from 2, 3)"),
])
def test_impossible_3d_combinations_exit_2_and_write_nothing(tmp_path, capsys, flags, message):
    from diffnet_torch.cli import main

    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *flags, "--out", str(out), "--quiet"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not out.exists()


def test_resume_checks_ndim_against_the_run(tmp_path, capsys):
    from diffnet_jax.cli import main

    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--out", str(out), "--resume", "--ndim", "2", "--data", "disks", "--quiet"])
    assert exit_info.value.code == 2
    assert "--ndim 2 (the run has 3)" in capsys.readouterr().err
    # the run's own dimension, given alone, completes the stored settings (not the default 2-D data set)
    assert main(["train", "--out", str(out), "--resume", "--ndim", "3", "--epochs", "2", "--quiet"]) == 0
    assert runs.read_summary(out)["epochs"] == 2
