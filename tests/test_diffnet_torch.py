"""diffnet_torch: parameter counts, layer semantics, weights, training, CLI (train / evaluate / resume /
figures), DDP under torchrun, demo."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

import ssdops  # noqa: E402
from diffnet_torch import (  # noqa: E402
    PAPER_UNET_PARAMETERS,
    DiffNet,
    LinearDiffusionNet,
    UNet,
    count_parameters,
    load_weights,
    save_weights,
)
from diffnet_torch.cli import main as cli_main  # noqa: E402

torch.set_num_threads(1)


def test_parameter_counts():
    assert count_parameters(DiffNet()) == 101_310
    assert count_parameters(DiffNet(n_layers=3)) == 60_786
    m = DiffNet()
    assert len(m.layers) == 5 and len(m.layers[0].estimator.convs) == 4
    assert m.layers[0].dt.shape == () and float(m.layers[0].dt.detach()) == pytest.approx(0.2)
    # the U-Net baseline: ours vs the paper's 34,512,705 (difference explained in diffnet_torch.unet)
    n = count_parameters(UNet())
    assert n == 34_519_041
    assert abs(n - PAPER_UNET_PARAMETERS) / PAPER_UNET_PARAMETERS < 2e-4


def test_state_dict_names():
    names = set(DiffNet(n_layers=2).state_dict())
    assert {"layers.0.dt", "layers.1.estimator.convs.3.weight", "layers.1.estimator.convs.0.bias"} <= names
    assert DiffNet().state_dict()["layers.0.estimator.convs.0.weight"].shape == (32, 1, 3, 3)
    assert DiffNet().state_dict()["layers.0.estimator.convs.3.weight"].shape == (5, 32, 3, 3)
    lin = LinearDiffusionNet((6, 7), n_layers=2)
    assert set(lin.state_dict()) == {"layers.0.diagonals", "layers.0.dt", "layers.1.diagonals", "layers.1.dt"}


def _shift(u, dy, dx):
    """v[i, j] = u[i + dy, j + dx], zero outside the grid (explicit, no ssdops)."""
    v = torch.zeros_like(u)
    H, W = u.shape[-2:]
    ys, yd = (slice(dy, H), slice(0, H - dy)) if dy >= 0 else (slice(0, H + dy), slice(-dy, H))
    xs, xd = (slice(dx, W), slice(0, W - dx)) if dx >= 0 else (slice(0, W + dx), slice(-dx, W))
    v[..., yd, xd] = u[..., ys, xs]
    return v


def test_trace_semantics_independent():
    torch.manual_seed(0)
    m = DiffNet(n_layers=3, width=8).double()
    with torch.no_grad():
        for k, layer in enumerate(m.layers):
            layer.dt.fill_(0.1 + 0.05 * k)
    u = torch.rand(2, 1, 9, 11, dtype=torch.float64)
    recs = m.trace(u)
    assert len(recs) == 3 and set(recs[0]) == {"input", "zeta", "dt", "output"}
    prev = u
    for layer, rec in zip(m.layers, recs):
        torch.testing.assert_close(rec["input"], prev)
        z = layer.estimator(prev)
        torch.testing.assert_close(rec["zeta"], z)
        f = prev[:, 0]
        w = (z[:, 0] * _shift(f, -1, 0) + z[:, 1] * _shift(f, 0, -1) + z[:, 2] * _shift(f, 1, 0)
             + z[:, 3] * _shift(f, 0, 1) - z[:, 4] * f)
        expected = (f + rec["dt"] * w)[:, None]
        torch.testing.assert_close(rec["output"], expected, rtol=1e-12, atol=1e-12)
        prev = rec["output"]
    torch.testing.assert_close(m(u), torch.relu(prev))


def test_linear_net_init_is_laplacian_step():
    lin = LinearDiffusionNet((8, 8), n_layers=1).double()
    u = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    L = ssdops.laplacian((8, 8), bc="neumann", like=u[:, 0])
    torch.testing.assert_close(lin(u)[:, 0], u[:, 0] + 0.2 * (L @ u[:, 0]))


@pytest.mark.parametrize("kind", ["diffnet", "linear", "unet"])
def test_weights_round_trip(tmp_path, kind):
    torch.manual_seed(1)
    model = {"diffnet": lambda: DiffNet(n_layers=2, width=8),
             "linear": lambda: LinearDiffusionNet((12, 12), n_layers=2),
             "unet": lambda: UNet(channels=(4, 8, 16))}[kind]()
    if kind == "linear":
        with torch.no_grad():
            model.layers[0].diagonals.add_(0.01 * torch.randn(5, 12, 12))
    model.eval()
    path = tmp_path / "w.safetensors"
    save_weights(model, path)
    loaded = load_weights(path)
    x = torch.rand(2, 1, 12, 12)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        assert meta["format"] == "ssdops-diffnet/1"
        assert json.loads(meta["config"])["model"] == kind
        if kind == "diffnet":
            assert f.get_tensor("layers.1.dt").shape == ()
            assert f.get_tensor("layers.1.dt").dtype == torch.float32


def test_unet_odd_sizes():
    m = UNet(channels=(4, 8, 16, 32, 64)).eval()
    with torch.no_grad():
        for shape in [(1, 1, 16, 16), (2, 1, 21, 35)]:
            assert m(torch.rand(shape)).shape == shape


def test_two_steps_lower_the_loss():
    from ssdops.diffnet import data as datasets

    torch.manual_seed(0)
    x, y = datasets.make_task("deconvolution", datasets.disks(8, 24, seed=0))
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    model = DiffNet(n_layers=2, width=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = torch.mean((model(x) - y) ** 2)
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[2] < losses[0]


TINY = ["train", "--task", "pm-inverse", "--data", "disks", "--train-size", "16", "--test-size", "8",
        "--image-size", "16", "--epochs", "3", "--batch-size", "8", "--layers", "2", "--width", "8",
        "--noise", "0.01", "--threads", "1", "--quiet"]


def test_cli_train_evaluate_resume_figures(tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    assert cli_main(TINY + ["--out", str(full)]) == 0
    for f in ("config.json", "metrics.csv", "summary.json", "checkpoint.safetensors", "weights.safetensors"):
        assert (full / f).exists(), f
    summary = json.loads((full / "summary.json").read_text())
    for key in ("best_test_psnr", "final_test_psnr", "epochs", "seconds", "parameters", "images_per_second",
                "config"):
        assert key in summary
    assert summary["epochs"] == 3 and summary["parameters"] == count_parameters(DiffNet(2, width=8))
    # interrupted after epoch 1, then resumed: bitwise the same run
    assert cli_main(TINY + ["--out", str(part), "--stop-after", "1"]) == 0
    assert len((part / "metrics.csv").read_text().splitlines()) == 2
    assert cli_main(["train", "--out", str(part), "--resume", "--quiet"]) == 0
    from safetensors.torch import load_file

    a, b = load_file(str(full / "checkpoint.safetensors")), load_file(str(part / "checkpoint.safetensors"))
    assert set(a) == set(b) and any(k.startswith("adam.exp_avg_sq.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ra = (full / "metrics.csv").read_text().splitlines()
    rb = (part / "metrics.csv").read_text().splitlines()
    assert [r.rsplit(",", 1)[0] for r in ra] == [r.rsplit(",", 1)[0] for r in rb]  # all but the seconds
    capsys.readouterr()
    assert cli_main(["evaluate", str(full), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert ev["n"] == 8 and ev["mean_psnr"] == pytest.approx(summary["best_test_psnr"], abs=1e-3)
    assert cli_main(["figures", str(full)]) == 0
    for f in ("results.png", "fft.png", "zeta.png", "smoothing.png"):
        assert (full / "figures" / f).stat().st_size > 1000
    with pytest.raises(SystemExit) as exit_info:   # a directory holding a run: refused, nothing changed
        cli_main(TINY + ["--out", str(full)])
    assert exit_info.value.code == 2


def test_eval_every_and_step_schedule_resume_bitwise(tmp_path):
    """--eval-every 2 over 5 epochs: rows (and weights, checkpoint) after epochs 2, 4 and 5 only, the train
    columns the round's mean, training itself unchanged; --lr-halve-every: the authors' step schedule with
    lr_final as its floor; --stop-after 1 stops at the round's end and the run resumes bitwise."""
    from safetensors.torch import load_file

    from ssdops.diffnet import runs

    def args(out, *extra):
        five = TINY[:]
        five[five.index("--epochs") + 1] = "5"
        return five + ["--lr", "0.004", "--lr-final", "0.0015", "--lr-halve-every", "3", *extra, "--out", str(out)]

    every, rounds, part = tmp_path / "every", tmp_path / "rounds", tmp_path / "part"
    assert cli_main(args(every)) == 0
    assert cli_main(args(rounds, "--eval-every", "2")) == 0
    a, b = load_file(str(every / "checkpoint.safetensors")), load_file(str(rounds / "checkpoint.safetensors"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    each, two = runs.MetricsLog(every).rows, runs.MetricsLog(rounds).rows
    assert [r["epoch"] for r in each] == [1, 2, 3, 4, 5] and [r["epoch"] for r in two] == [2, 4, 5]
    # 2 steps an epoch: the last step of epochs 1..5 is step 1, 3, 5, 7, 9 (from 0); halved every 3 steps
    assert [r["lr"] for r in each] == pytest.approx([0.004, 0.002, 0.002, 0.0015, 0.0015])
    for row, epochs in zip(two, ([1, 2], [3, 4], [5])):
        last = each[epochs[-1] - 1]
        assert row["test_loss"] == pytest.approx(last["test_loss"], rel=1e-6) and row["lr"] == last["lr"]
        assert row["train_loss"] == pytest.approx(np.mean([each[e - 1]["train_loss"] for e in epochs]), rel=1e-5)
    summary = runs.read_summary(rounds)
    assert summary["epochs"] == 5 and summary["steps"] == 10 and summary["config"]["eval_every"] == 2

    assert cli_main(args(part, "--eval-every", "2", "--stop-after", "1")) == 0
    assert runs.read_summary(part)["epochs"] == 2 and [r["epoch"] for r in runs.MetricsLog(part).rows] == [2]
    assert cli_main(["train", "--out", str(part), "--resume", "--quiet"]) == 0
    c = load_file(str(part / "checkpoint.safetensors"))
    assert all(torch.equal(b[k], c[k]) for k in b)
    assert [r.rsplit(",", 1)[0] for r in (rounds / "metrics.csv").read_text().splitlines()] == [
        r.rsplit(",", 1)[0] for r in (part / "metrics.csv").read_text().splitlines()]


def test_cli_early_stopping_and_linear(tmp_path):
    out = tmp_path / "lin"
    args = TINY[:]
    args[args.index("--epochs") + 1] = "30"
    assert cli_main(args + ["--model", "linear", "--patience", "1", "--lr", "0.5", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["stopped"] == "early_stopping" and s["epochs"] < 30
    assert s["config"]["model"] == "linear"


@pytest.mark.parametrize("caller_flushes", [False, True])
def test_training_flushes_denormals_and_restores_the_callers_mode(tmp_path, monkeypatch, caller_flushes):
    """On CPU every step runs with subnormals flushed to zero (as XLA computes); after the run, finished or
    failed, the caller's mode is back."""
    from diffnet_torch import trainer

    seen = []
    step = trainer.TorchTrainer.step

    def recording_step(self, x, y, lr):
        seen.append(trainer._flushes_denormals())
        return step(self, x, y, lr)

    monkeypatch.setattr(trainer.TorchTrainer, "step", recording_step)
    torch.set_flush_denormal(caller_flushes)
    try:
        assert trainer._flushes_denormals() is caller_flushes
        assert cli_main(TINY + ["--out", str(tmp_path / "ok")]) == 0
        assert seen and all(seen) and trainer._flushes_denormals() is caller_flushes
        assert json.loads((tmp_path / "ok" / "summary.json").read_text())["flush_denormal"] is True
        seen.clear()
        assert cli_main(TINY + ["--lr", "1e12", "--out", str(tmp_path / "diverged")]) == 1   # NonFiniteError
        assert seen and all(seen) and trainer._flushes_denormals() is caller_flushes
    finally:
        torch.set_flush_denormal(False)


# Each rank runs the CLI, then lists the threads still alive (Linux: /proc/self/task): a process group that
# outlives destroy_process_group keeps its gloo threads, and a rank can then abort at exit.
RANK_SCRIPT = """
import os, sys
from diffnet_torch.cli import main

def threads():
    return sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))

before = threads()
code = main(sys.argv[1:])
left = [t for t in threads() if t not in before]
print(f"rank {os.environ['RANK']} threads left: {left}", file=sys.stderr)
sys.exit(code or (3 if left else 0))
"""


def test_torchrun_ddp(tmp_path):
    """Two processes, gloo on CPU (about 10 s); no rank keeps a thread the training started."""
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not on PATH")
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("needs /proc/self/task to list threads")
    out = tmp_path / "ddp"
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [torchrun, "--nproc_per_node", "2", "--standalone", str(script)] + TINY + ["--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("threads left: []") == 2, proc.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["world_size"] == 2 and s["epochs"] == 3 and np.isfinite(s["best_test_psnr"])
    assert load_weights(out / "weights.safetensors") is not None


def test_demo_runs(tmp_path):
    from diffnet_torch.demo import SHIPPED_WEIGHTS, demo

    if not os.path.exists(SHIPPED_WEIGHTS):
        pytest.skip("shipped weights missing")
    assert os.path.getsize(SHIPPED_WEIGHTS) < 1_000_000
    scores = demo(out=str(tmp_path), size=64, log=lambda *a: None)
    assert (tmp_path / "demo.png").exists()
    assert len(scores) == 3 and all(np.isfinite(v) for v in scores.values())
