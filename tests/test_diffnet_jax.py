"""diffnet_jax: models, the shared weight format, equivalence with diffnet_torch, training and the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

jax = pytest.importorskip("jax")
eqx = pytest.importorskip("equinox")
pytest.importorskip("optax")
pytest.importorskip("safetensors")

import jax.numpy as jnp  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

import diffnet_jax  # noqa: E402
import ssdops  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


SMALL = dict(n_layers=2, depth=3, width=8)       # one small configuration: compiled once for all tests
_apply = eqx.filter_jit(lambda m, x: m(x))
_trace = eqx.filter_jit(lambda m, x: m.trace(x))


def _rand(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float64).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# models


def test_parameter_counts():
    key = jax.random.PRNGKey(0)
    shapes = eqx.filter_eval_shape   # the constructor, traced for shapes only (no initialisation cost)
    assert diffnet_jax.count_parameters(shapes(diffnet_jax.DiffNet, key=key)) == 101_310
    assert diffnet_jax.count_parameters(shapes(diffnet_jax.DiffNet, n_layers=3, key=key)) == 60_786
    assert diffnet_jax.count_parameters(diffnet_jax.DiffNet(**SMALL,
                                                            key=key)) == 2 * (9 * (8 + 8 * 8 + 8 * 5) + 16 + 5 + 1)
    # the paper's per-layer formula: 9(32 + 32*5 + 32^2 (K-2)) + 32(K-1) + 5 + 1
    for K in (2, 3, 5):
        per_layer = 9 * (32 + 32 * 5 + 32 * 32 * (K - 2)) + 32 * (K - 1) + 5 + 1
        model = eqx.filter_eval_shape(diffnet_jax.DiffNet, n_layers=2, depth=K, key=key)  # shapes only
        assert diffnet_jax.count_parameters(model) == 2 * per_layer
    lin = diffnet_jax.LinearDiffusionNet((7, 9), n_layers=3, key=key)
    assert diffnet_jax.count_parameters(lin) == 3 * (5 * 7 * 9 + 1)


def test_parameters_are_float32_even_with_x64():
    jax.config.update("jax_enable_x64", True)
    try:
        model = eqx.filter_eval_shape(diffnet_jax.DiffNet, **SMALL, key=jax.random.PRNGKey(0))
        lin = eqx.filter_eval_shape(diffnet_jax.LinearDiffusionNet, (6, 6), n_layers=2)
        leaves = jax.tree_util.tree_leaves((model, lin))
        assert leaves and all(leaf.dtype == jnp.float32 for leaf in leaves if hasattr(leaf, "dtype"))
        x = jax.ShapeDtypeStruct((2, 1, 6, 6), jnp.float64)   # cast at the boundary
        assert jax.eval_shape(lambda m, u: m(u), model, x).dtype == jnp.float32
        assert jax.eval_shape(lambda m, u: m(u), lin, x).dtype == jnp.float32
    finally:
        jax.config.update("jax_enable_x64", False)


def _shift0(u, dy, dx):
    """v[..., i, j] = u[..., i + dy, j + dx], zero outside (explicit zero-filled shift)."""
    H, W = u.shape[-2:]
    p = jnp.pad(u, [(0, 0)] * (u.ndim - 2) + [(1, 1), (1, 1)])
    return p[..., 1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]


def _conv_ref(x, w, b):
    """Cross-correlation with zero padding by explicit shifts:
    out[o] = b[o] + sum_{c,a,b} w[o,c,a,b] x[c, i+a-1, j+b-1]."""
    out = jnp.zeros((x.shape[0], w.shape[0]) + x.shape[2:], jnp.float32) + b[None, :, None, None]
    for a in range(3):
        for c in range(3):
            xs = _shift0(x, a - 1, c - 1)
            out = out + jnp.einsum("oi,nihw->nohw", w[:, :, a, c], xs, precision="highest")
    return out


def test_trace_matches_independent_computation():
    model = diffnet_jax.DiffNet(**SMALL, key=jax.random.PRNGKey(3))
    # non-trivial dt per layer
    model = eqx.tree_at(lambda m: [l.dt for l in m.layers], model,
                        [jnp.asarray(v, jnp.float32) for v in (-0.1, 0.35)])
    u0 = jnp.asarray(_rand((3, 1, 12, 10), seed=1))
    records = _trace(model, u0)
    assert len(records) == 2
    u = u0
    for layer, rec in zip(model.layers, records):
        assert set(rec) == {"input", "zeta", "dt", "output"}
        np.testing.assert_array_equal(rec["input"], u)
        x = u
        convs = layer.estimator.convs
        for j, conv in enumerate(convs):
            x = _conv_ref(x, conv.weight, conv.bias)
            if j < len(convs) - 1:
                x = jnp.maximum(x, 0.0)
        zeta = x
        np.testing.assert_allclose(rec["zeta"], zeta, rtol=1e-5, atol=1e-5)
        v = u[:, 0]
        z = zeta
        # paper order: up, left, down, right, centre; W_dt = dt [z1 up; z2 left, -z5, z4 right; z3 down]
        Wu = (z[:, 0] * _shift0(v, -1, 0) + z[:, 1] * _shift0(v, 0, -1) + z[:, 2] * _shift0(v, 1, 0)
              + z[:, 3] * _shift0(v, 0, 1) - z[:, 4] * v)
        out = (v + layer.dt * Wu)[:, None]
        assert float(rec["dt"]) == float(layer.dt)
        np.testing.assert_allclose(rec["output"], out, rtol=1e-5, atol=1e-5)
        u = rec["output"]
    np.testing.assert_allclose(_apply(model, u0), jnp.maximum(u, 0.0), rtol=1e-6, atol=1e-7)
    no_relu = diffnet_jax.DiffNet(**SMALL, final_relu=False, key=jax.random.PRNGKey(3))
    np.testing.assert_allclose(_apply(no_relu, u0), _trace(no_relu, u0)[-1]["output"])
    # eager (un-jitted) execution: the same numbers
    np.testing.assert_allclose(model.trace(u0)[-1]["output"], records[-1]["output"], rtol=1e-6, atol=1e-7)


def test_conv_is_torch_cross_correlation():
    torch = pytest.importorskip("torch")
    conv = diffnet_jax.Conv(3, 4, 3, key=jax.random.PRNGKey(0))
    x = _rand((2, 3, 7, 5))
    tconv = torch.nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        tconv.weight.copy_(torch.tensor(np.asarray(conv.weight)))
        tconv.bias.copy_(torch.tensor(np.asarray(conv.bias)))
        ref = tconv(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(conv(jnp.asarray(x)), ref, rtol=1e-5, atol=1e-6)
    # initialisation law of torch.nn.Conv2d: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    big = diffnet_jax.Conv(8, 8, 3, key=jax.random.PRNGKey(1))   # the shape of SMALL's hidden convs
    bound = 1 / np.sqrt(8 * 9)
    assert float(jnp.max(jnp.abs(big.weight))) <= bound and float(jnp.max(jnp.abs(big.weight))) > 0.9 * bound


def test_linear_network_semantics():
    grid = (6, 7)
    model = diffnet_jax.LinearDiffusionNet(grid, n_layers=2)
    lap = ssdops.divergence_form(np.ones(grid), bc="neumann").diagonals
    for layer in model.layers:
        np.testing.assert_array_equal(layer.diagonals, lap.astype(np.float32))
        assert float(layer.dt) == pytest.approx(0.2)
    u = _rand((3, 1) + grid, seed=2)
    A = ssdops.to_scipy(ssdops.laplacian(grid, bc="neumann")).toarray()
    v = u.reshape(3, -1).astype(np.float64).T
    for _ in range(2):
        v = v + 0.2 * A @ v
    np.testing.assert_allclose(np.asarray(_apply(model, jnp.asarray(u))).reshape(3, -1), v.T, rtol=1e-5, atol=1e-6)


def test_jit_and_grad():
    model = diffnet_jax.DiffNet(**SMALL, key=jax.random.PRNGKey(0))
    x = jnp.asarray(_rand((3, 1, 12, 10)))

    @eqx.filter_jit
    @eqx.filter_grad
    def g(m):
        return jnp.mean(m(x) ** 2)

    grads = g(model)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(grads))
    assert float(jnp.abs(grads.layers[0].dt)) > 0


# --------------------------------------------------------------------------------------------------
# weights


def _expected_names(n_layers, depth):
    names = set()
    for k in range(n_layers):
        names.add(f"layers.{k}.dt")
        for j in range(depth):
            names |= {f"layers.{k}.estimator.convs.{j}.weight", f"layers.{k}.estimator.convs.{j}.bias"}
    return names


def test_state_dict_names_and_shapes():
    from diffnet_jax.models import named_leaves

    skeleton = eqx.filter_eval_shape(diffnet_jax.DiffNet, n_layers=2, depth=4, width=32, key=jax.random.PRNGKey(0))
    sd = dict(named_leaves(skeleton))
    assert set(sd) == _expected_names(2, 4)
    assert sd["layers.1.dt"].shape == () and sd["layers.1.dt"].dtype == np.float32
    real = diffnet_jax.state_dict(diffnet_jax.DiffNet(**SMALL, key=jax.random.PRNGKey(0)))
    assert set(real) == _expected_names(2, 3) and real["layers.0.dt"].shape == ()
    assert sd["layers.0.estimator.convs.0.weight"].shape == (32, 1, 3, 3)
    assert sd["layers.0.estimator.convs.1.weight"].shape == (32, 32, 3, 3)
    assert sd["layers.0.estimator.convs.3.weight"].shape == (5, 32, 3, 3)
    assert sd["layers.0.estimator.convs.3.bias"].shape == (5,)
    lin = diffnet_jax.state_dict(diffnet_jax.LinearDiffusionNet((4, 5), n_layers=2))
    assert set(lin) == {"layers.0.diagonals", "layers.0.dt", "layers.1.diagonals", "layers.1.dt"}
    assert lin["layers.0.diagonals"].shape == (5, 4, 5)


@pytest.mark.parametrize("kind", ["diffnet", "linear"])
def test_save_load_round_trip(tmp_path, kind):
    if kind == "diffnet":
        model = diffnet_jax.DiffNet(**SMALL, final_relu=False, key=jax.random.PRNGKey(5))
    else:
        model = diffnet_jax.LinearDiffusionNet((12, 10), n_layers=2)
        model = eqx.tree_at(lambda m: m.layers[1].diagonals, model,
                            jnp.asarray(_rand((5, 12, 10), seed=9)))
    path = tmp_path / "w.safetensors"
    diffnet_jax.save_weights(model, path)
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == "ssdops-diffnet/1"
    assert json.loads(meta["config"]) == model.config
    loaded = diffnet_jax.load_weights(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    x = jnp.asarray(_rand((3, 1, 12, 10), seed=4))
    np.testing.assert_array_equal(_apply(loaded, x), _apply(model, x))
    for (a, b) in zip(jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)),
                      jax.tree_util.tree_leaves(eqx.filter(loaded, eqx.is_array))):
        np.testing.assert_array_equal(a, b)


def test_load_hand_written_file(tmp_path):
    """A file written with safetensors.numpy directly, by the documented names (what diffnet_torch writes)."""
    rng = np.random.default_rng(0)
    n_layers, depth, width = SMALL["n_layers"], SMALL["depth"], SMALL["width"]
    chans = [1] + [width] * (depth - 1) + [5]
    tensors = {}
    for k in range(n_layers):
        tensors[f"layers.{k}.dt"] = np.asarray(0.1 * (k + 1), np.float32)
        for j in range(depth):
            tensors[f"layers.{k}.estimator.convs.{j}.weight"] = rng.standard_normal(
                (chans[j + 1], chans[j], 3, 3)).astype(np.float32) * 0.1
            tensors[f"layers.{k}.estimator.convs.{j}.bias"] = rng.standard_normal(chans[j + 1]).astype(np.float32) * 0.1
    config = {"model": "diffnet", "n_layers": n_layers, "depth": depth, "width": width, "final_relu": True}
    path = tmp_path / "hand.safetensors"
    save_file(tensors, str(path), metadata={"format": "ssdops-diffnet/1", "config": json.dumps(config)})
    with pytest.warns(UserWarning, match="no checksum"):     # loaded, said to be unverified
        model = diffnet_jax.load_weights(path)
    assert model.config == {**config, "ndim": 2}    # a config without ndim is a 2-D model
    sd = diffnet_jax.state_dict(model)
    assert set(sd) == set(tensors)
    for name, value in tensors.items():
        np.testing.assert_array_equal(sd[name], value)
    assert float(model.layers[1].dt) == pytest.approx(0.2)
    # wrong format, missing tensor
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={"format": "other", "config": json.dumps(config)})
    with pytest.raises(ValueError, match="format"):
        diffnet_jax.load_weights(tmp_path / "bad.safetensors")
    del tensors["layers.1.dt"]
    save_file(tensors, str(tmp_path / "miss.safetensors"),
              metadata={"format": "ssdops-diffnet/1", "config": json.dumps(config)})
    with pytest.raises(ValueError, match=r"miss.safetensors: .* missing \['layers.1.dt'\]"):
        diffnet_jax.load_weights(tmp_path / "miss.safetensors")


# --------------------------------------------------------------------------------------------------
# equivalence with diffnet_torch (same weight files, same outputs, same gradients)


def _torch_or_skip():
    torch = pytest.importorskip("torch")
    try:
        import diffnet_torch
    except ImportError:
        pytest.skip("diffnet_torch is not available")
    return torch, diffnet_torch


def _torch_model(diffnet_torch, torch, kind):
    torch.manual_seed(0)
    if kind == "diffnet":
        model = diffnet_torch.DiffNet(**SMALL)
    else:
        model = diffnet_torch.LinearDiffusionNet((12, 10), n_layers=3)
    with torch.no_grad():   # move away from the initial values (dt, and the linear diagonals)
        for name, p in model.named_parameters():
            if name.endswith("dt"):
                p.uniform_(0.05, 0.3)
            elif name.endswith("diagonals"):
                p.add_(0.1 * torch.randn_like(p))
    return model


def _jax_model(kind):
    if kind == "diffnet":
        model = diffnet_jax.DiffNet(**SMALL, key=jax.random.PRNGKey(7))
        return eqx.tree_at(lambda m: [l.dt for l in m.layers], model,
                           [jnp.asarray(v, jnp.float32) for v in (0.13, 0.27)])
    model = diffnet_jax.LinearDiffusionNet((12, 10), n_layers=3)
    rng = np.random.default_rng(3)
    return eqx.tree_at(lambda m: [l.diagonals for l in m.layers], model,
                       [l.diagonals + jnp.asarray(0.1 * rng.standard_normal((5, 12, 10)), jnp.float32)
                        for l in model.layers])


def _compare_outputs(torch_model, jax_model, torch):
    x = _rand((3, 1, 12, 10), seed=11)
    with torch.no_grad():
        ref = torch_model(torch.tensor(x)).numpy()
    out = np.asarray(_apply(jax_model, jnp.asarray(x)))
    scale = np.abs(ref).max()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * scale)
    for rt, rj in zip(torch_model.trace(torch.tensor(x)), _trace(jax_model, jnp.asarray(x))):
        np.testing.assert_allclose(np.asarray(rj["output"]), rt["output"].detach().numpy(),
                                   rtol=1e-5, atol=1e-5 * scale)


@eqx.filter_jit
def _value_and_grad(model, x, y):
    return eqx.filter_value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)


def _compare_gradients(torch_model, jax_model, torch):
    x = _rand((3, 1, 12, 10), seed=12)
    y = _rand((3, 1, 12, 10), seed=13)
    torch_model.zero_grad()
    loss_t = torch.mean((torch_model(torch.tensor(x)) - torch.tensor(y)) ** 2)
    loss_t.backward()
    grads_t = {n: p.grad.numpy() for n, p in torch_model.named_parameters()}

    loss_j, grads = _value_and_grad(jax_model, jnp.asarray(x), jnp.asarray(y))
    np.testing.assert_allclose(float(loss_j), float(loss_t.detach()), rtol=1e-5)
    grads_j = diffnet_jax.state_dict(grads)
    assert set(grads_j) == set(grads_t)
    for name, gt in grads_t.items():
        gj = grads_j[name]
        assert gj.shape == gt.shape, name
        rel = np.linalg.norm(gj - gt) / max(np.linalg.norm(gt), 1e-30)
        assert rel < 1e-4, (name, rel)
        np.testing.assert_allclose(gj, gt, rtol=1e-4, atol=1e-4 * np.abs(gt).max(), err_msg=name)


@pytest.mark.parametrize("kind", ["diffnet", "linear"])
def test_torch_weights_in_jax(tmp_path, kind):
    torch, diffnet_torch = _torch_or_skip()
    tmodel = _torch_model(diffnet_torch, torch, kind)
    path = tmp_path / "torch.safetensors"
    diffnet_torch.save_weights(tmodel, path)
    jmodel = diffnet_jax.load_weights(path)
    assert jmodel.config == tmodel.config
    _compare_outputs(tmodel, jmodel, torch)
    _compare_gradients(tmodel, jmodel, torch)


@pytest.mark.parametrize("kind", ["diffnet", "linear"])
def test_jax_weights_in_torch(tmp_path, kind):
    torch, diffnet_torch = _torch_or_skip()
    jmodel = _jax_model(kind)
    path = tmp_path / "jax.safetensors"
    diffnet_jax.save_weights(jmodel, path)
    tmodel = diffnet_torch.load_weights(path)
    assert tmodel.config == jmodel.config
    _compare_outputs(tmodel, jmodel, torch)
    _compare_gradients(tmodel, jmodel, torch)


# --------------------------------------------------------------------------------------------------
# training

TINY = ["--task", "deconvolution", "--data", "disks", "--image-size", "12", "--train-size", "10",
        "--test-size", "4", "--epochs", "2", "--batch-size", "4", "--layers", "1", "--depth", "2",
        "--width", "4", "--lr", "1e-2", "--lr-final", "1e-3", "--quiet"]


def test_two_steps_lower_the_loss():
    from diffnet_jax.trainer import JaxTrainer

    model = diffnet_jax.DiffNet(n_layers=1, depth=2, width=4, key=jax.random.PRNGKey(0))
    x = _rand((4, 1, 12, 12), seed=20)
    y = np.maximum(x - 0.3, 0.0).astype(np.float32)
    trainer = JaxTrainer(batch_size=4)
    trainer.set_model(model)
    before, _ = trainer.evaluate(x, y, batch=4)
    losses = [float(trainer.step(x, y, 1e-2)[0]) for _ in range(2)]
    after, _ = trainer.evaluate(x, y, batch=4)
    assert losses[0] == pytest.approx(before, rel=1e-5)
    assert losses[1] < losses[0] and after < before
    assert trainer.step_count == 2


def test_padded_batch_equals_short_batch():
    """A short last batch is padded and masked: the same loss as the unpadded batch."""
    from diffnet_jax.trainer import JaxTrainer

    model = diffnet_jax.DiffNet(n_layers=1, depth=2, width=4, key=jax.random.PRNGKey(1))
    x = _rand((3, 1, 12, 12), seed=21)
    y = _rand((3, 1, 12, 12), seed=22)
    trainer = JaxTrainer(batch_size=4)
    trainer.set_model(model)
    _, _, wb = trainer.put_batch(x, y, 4)
    assert np.asarray(wb).tolist() == [1.0, 1.0, 1.0, 0.0]
    loss, _, finite = trainer.step(x, y, 1e-3)
    assert bool(finite)
    ref = float(jnp.mean((model(jnp.asarray(x)) - jnp.asarray(y)) ** 2))
    assert float(loss) == pytest.approx(ref, rel=1e-5)


def test_cli_train_evaluate_resume(tmp_path, capsys):
    from diffnet_jax.cli import main
    from ssdops.diffnet import runs

    full, part = tmp_path / "full", tmp_path / "part"
    assert main(["train", *TINY, "--out", str(full)]) == 0
    for name in ("config.json", "metrics.csv", "summary.json", "weights.safetensors", "checkpoint.safetensors"):
        assert (full / name).exists(), name
    summary = runs.read_summary(full)
    assert summary["epochs"] == 2 and summary["parameters"] == 9 * 4 + 4 + 9 * 4 * 5 + 5 + 1
    for key in ("best_test_psnr", "final_test_psnr", "seconds", "images_per_second", "config"):
        assert summary[key] is not None, key
    rows = runs.MetricsLog(full).rows
    assert [r["epoch"] for r in rows] == [1, 2]
    assert list(rows[0]) == list(runs.METRIC_COLUMNS)
    assert rows[-1]["lr"] == pytest.approx(runs.lr_at(5, 6, 1e-2, 1e-3))

    # interrupted after epoch 1, then resumed: the same numbers as the uninterrupted run
    assert main(["train", *TINY, "--out", str(part), "--stop-after", "1"]) == 0
    assert runs.read_summary(part)["stopped"] == "stop_after"
    with pytest.raises(SystemExit) as exit_info:   # a directory holding a run: refused, nothing changed
        main(["train", *TINY, "--out", str(part)])
    assert exit_info.value.code == 2
    assert main(["train", "--out", str(part), "--resume", "--quiet"]) == 0
    resumed = runs.MetricsLog(part).rows
    assert [r["epoch"] for r in resumed] == [1, 2]
    for a, b in zip(rows, resumed):
        for col in ("train_loss", "test_loss", "train_psnr", "test_psnr", "lr"):
            assert a[col] == pytest.approx(b[col], rel=1e-6), col
    wa = diffnet_jax.state_dict(diffnet_jax.load_weights(full / "weights.safetensors"))
    wb = diffnet_jax.state_dict(diffnet_jax.load_weights(part / "weights.safetensors"))
    for name in wa:
        np.testing.assert_allclose(wa[name], wb[name], rtol=1e-6, atol=1e-7)
    # the checkpoint also loads as plain weights
    diffnet_jax.load_weights(part / "checkpoint.safetensors")

    capsys.readouterr()
    assert main(["evaluate", str(full), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 4
    assert result["mean_psnr"] == pytest.approx(runs.read_summary(full)["best_test_psnr"], rel=1e-4)


def test_linear_model_trains(tmp_path):
    from diffnet_jax.cli import main
    from ssdops.diffnet import runs

    assert main(["train", *TINY, "--model", "linear", "--epochs", "1", "--out", str(tmp_path / "lin")]) == 0
    model = diffnet_jax.load_weights(tmp_path / "lin" / "weights.safetensors")
    assert isinstance(model, diffnet_jax.LinearDiffusionNet) and model.grid_shape == (12, 12)
    assert runs.read_summary(tmp_path / "lin")["parameters"] == 5 * 144 + 1


def test_eval_every_and_step_schedule(tmp_path):
    """The shared loop's rounds and step schedule in diffnet-jax: rows after epochs 2 and 3 only."""
    from diffnet_jax.cli import main
    from ssdops.diffnet import runs

    out = tmp_path / "rounds"
    assert main(["train", *TINY, "--epochs", "3", "--eval-every", "2", "--lr-halve-every", "2", "--lr-final",
                 "1e-3", "--out", str(out)]) == 0
    rows = runs.MetricsLog(out).rows
    steps = runs.read_summary(out)["steps"] // 3
    assert [r["epoch"] for r in rows] == [2, 3]
    assert [r["lr"] for r in rows] == pytest.approx(
        [runs.lr_at(e * steps - 1, 3 * steps, 1e-2, 1e-3, halve_every=2) for e in (2, 3)])


_SHARDED = textwrap.dedent("""
    import json, sys
    import jax
    assert jax.device_count() == 2, jax.devices()
    from diffnet_jax.trainer import train
    base = dict(model="diffnet", task="deconvolution", data="disks", image_size=12, train_size=16,
                test_size=6, epochs=2, lr=1e-2, lr_final=1e-3, layers=1, depth=2, width=4, progress=False)
    two = train(dict(base, batch_size=4, devices=2, out=sys.argv[1] + "/two"), log=lambda *a: None)
    one = train(dict(base, batch_size=8, devices=1, out=sys.argv[1] + "/one"), log=lambda *a: None)
    print(json.dumps({"two": [two["world_size"], two["final_test_psnr"], two["best_test_loss"], two["steps"]],
                      "one": [one["world_size"], one["final_test_psnr"], one["best_test_loss"], one["steps"]]}))
""")


def test_sharded_training_two_host_devices(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", _SHARDED, str(tmp_path)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["two"][0] == 2 and res["one"][0] == 1
    assert res["two"][3] == res["one"][3] == 4            # global batch 8 both ways: 2 steps per epoch
    # the same global batches: the same training up to reduction order
    assert res["two"][1] == pytest.approx(res["one"][1], rel=1e-4)
    assert res["two"][2] == pytest.approx(res["one"][2], rel=1e-4)
