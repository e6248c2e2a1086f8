"""Nothing silent in DiffNet runs (issue #11 items 1, 4, 5, 9, 10): non-finite numbers, reused run directories,
STL-10 splits, verified weight files and the command lines' argument checks, in both frameworks where both
have the behaviour."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

import ssdops  # noqa: E402
from diffnet_torch.cli import main as torch_main  # noqa: E402
from ssdops.diffnet import format as weight_files  # noqa: E402
from ssdops.diffnet import loop, runs  # noqa: E402
from ssdops.diffnet.config import RunConfig  # noqa: E402

torch.set_num_threads(1)

TINY = ["--task", "deconvolution", "--data", "disks", "--image-size", "12", "--train-size", "8", "--test-size", "4",
        "--epochs", "1", "--batch-size", "4", "--layers", "1", "--depth", "2", "--width", "4", "--threads", "1",
        "--quiet"]


def _jax_main():
    pytest.importorskip("jax")
    pytest.importorskip("equinox")
    pytest.importorskip("optax")
    from diffnet_jax.cli import main

    return main


def _exit_code(main, argv):
    """The exit status of ``main(argv)``, whether it returns it or argparse raises SystemExit."""
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


def _snapshot(directory):
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))
            if (directory / name).is_file()}


# --------------------------------------------------------------------------------------------------
# item 1: non-finite numbers are never a result


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_psnr_of_nonfinite_output_is_nan(library):
    ref = np.linspace(0.0, 1.0, 16).reshape(4, 4)
    x = np.stack([ref, ref + 0.01, ref, ref, ref])
    x[2, 1, 1], x[3, 0, 2], x[4, 3, 3] = np.nan, np.inf, -np.inf
    refs = np.broadcast_to(ref, x.shape).copy()
    if library == "torch":
        x, refs = torch.from_numpy(x), torch.from_numpy(refs)
    value = np.asarray(ssdops.psnr(x, refs))
    # exact: inf; 0.01 off with range 1: 10 log10(1 / 1e-4) = 40 dB; NaN, +inf, -inf anywhere: nan
    assert value[0] == np.inf and value[1] == pytest.approx(40.0)
    assert np.isnan(value[2:]).all()


def _diverging(extra):
    """A linear network trained at an absurd learning rate: its parameters overflow within two steps."""
    return ["train", *TINY, "--model", "linear", "--epochs", "2", "--lr", "1e30", "--lr-final", "1e30", *extra]


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_diverged_training_stops_with_exit_1(tmp_path, capsys, framework):
    main = torch_main if framework == "torch" else _jax_main()
    out = tmp_path / "run"
    assert _exit_code(main, _diverging(["--out", str(out)])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "diverged at epoch 1, step" in err[0]
    # nothing of the failed epoch was written: no metrics row, no weights, no checkpoint, no summary
    assert sorted(os.listdir(out)) == ["config.json"]


class _FailingAt:
    """A trainer that reports a non-finite step at global step ``bad_step`` (delegating everything else)."""

    def __init__(self, trainer, bad_step):
        self._trainer, self._bad, self._steps = trainer, bad_step, 0

    def __getattr__(self, name):
        return getattr(self._trainer, name)

    def step(self, x, y, lr):
        loss, psnr_sum, finite = self._trainer.step(x, y, lr)
        self._steps += 1
        return loss, psnr_sum, finite and self._steps != self._bad


def test_nonfinite_step_keeps_last_good_checkpoint(tmp_path):
    from diffnet_torch.trainer import TorchTrainer

    settings = dict(model="diffnet", task="deconvolution", data="disks", image_size=12, train_size=8, test_size=4,
                    epochs=3, batch_size=4, layers=1, depth=2, width=4, threads=1, progress=False, out=str(tmp_path))
    config = loop.prepare(RunConfig(**settings), TorchTrainer)
    with pytest.raises(loop.NonFiniteError, match="epoch 2, step 3") as info:   # 2 steps per epoch
        loop.fit(config, _FailingAt(TorchTrainer(config), bad_step=3), log=lambda *a: None)
    assert (info.value.epoch, info.value.step) == (2, 3)
    _, _, state = weight_files.read_checkpoint(tmp_path / runs.CHECKPOINT_FILE)
    assert state["epoch"] == 1 and state["step"] == 2
    assert [r["epoch"] for r in runs.MetricsLog(tmp_path).rows] == [1]
    weight_files.read_weights(tmp_path / runs.WEIGHTS_FILE)   # the epoch-1 weights, intact and finite


def _train_tiny(main, out, extra=()):
    assert main(["train", *TINY, "--model", "linear", "--out", str(out), *extra]) == 0


def test_evaluate_nonfinite_outputs_and_weights_exit_1(tmp_path, capsys):
    from diffnet_torch import LinearDiffusionNet, save_weights

    run = tmp_path / "run"
    _train_tiny(torch_main, run)
    model = LinearDiffusionNet((12, 12), n_layers=1)
    with torch.no_grad():
        model.layers[0].diagonals.fill_(3e38)       # finite weights, overflowing outputs
    save_weights(model, run / runs.WEIGHTS_FILE)
    capsys.readouterr()
    assert torch_main(["evaluate", str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "4 of 4 test images give non-finite outputs" in err[0]
    with torch.no_grad():
        model.layers[0].dt.fill_(float("nan"))
    save_weights(model, run / runs.WEIGHTS_FILE)
    assert torch_main(["evaluate", str(run)]) == 1
    assert "non-finite values in ['layers.0.dt']" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# item 4: one run per directory


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_directory_with_run_files_is_refused(tmp_path, capsys, framework):
    main = torch_main if framework == "torch" else _jax_main()
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n")     # another run's file, no checkpoint
    before = _snapshot(out)
    assert _exit_code(main, ["train", *TINY, "--out", str(out)]) == 2
    assert "holds a run (metrics.csv)" in capsys.readouterr().err and _snapshot(out) == before


def test_overwrite_removes_the_old_run(tmp_path):
    out = tmp_path / "run"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "old.png").write_bytes(b"x")
    (out / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n2,0.4\n3,0.3\n")
    (out / "weights.safetensors").write_bytes(b"stale")
    (out / "notes.txt").write_text("mine")
    _train_tiny(torch_main, out, ["--overwrite"])
    assert [r["epoch"] for r in runs.MetricsLog(out).rows] == [1]
    assert not (out / "figures").exists() and (out / "notes.txt").read_text() == "mine"
    weight_files.read_weights(out / runs.WEIGHTS_FILE)
    assert runs.read_config(out)["model"] == "linear"


def test_resume_with_other_flags_is_refused_and_epochs_extend(tmp_path, capsys):
    out = tmp_path / "run"
    _train_tiny(torch_main, out)
    before = _snapshot(out)
    capsys.readouterr()
    assert _exit_code(torch_main, ["train", "--out", str(out), "--resume", "--lr", "0.5", "--width", "8",
                                   "--epochs", "3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("diffnet-torch train: error: --resume: --lr 0.5 (the run has 0.002), --width 8 (the run has 4); "
                   "leave these flags out to continue the run as it was set up")
    assert _snapshot(out) == before
    # a flag equal to the stored value is no difference; a larger --epochs extends the run
    assert torch_main(["train", "--out", str(out), "--resume", "--width", "4", "--epochs", "2", "--quiet"]) == 0
    assert [r["epoch"] for r in runs.MetricsLog(out).rows] == [1, 2]
    assert runs.read_config(out)["epochs"] == 2
    assert _exit_code(torch_main, ["train", "--out", str(out), "--resume", "--epochs", "1", "--quiet"]) == 2
    assert "has trained 2 epochs already" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# item 5: STL-10 splits


def _write_stl(path, n, value):
    np.full((n, 3, 96, 96), value, np.uint8).tofile(path)


def test_stl10_split_is_honoured(tmp_path, capsys):
    from ssdops.diffnet import data

    _write_stl(tmp_path / "train_X.bin", 3, 200)
    _write_stl(tmp_path / "test_X.bin", 2, 100)
    config = RunConfig(data="stl10", data_path=str(tmp_path), train_size=3, test_size=2, task="pm-forward")
    test_input = data.load_data(config, "test")[0]
    assert test_input.shape == (2, 1, 96, 96)
    assert data.stl10(tmp_path, "test").max() == pytest.approx(100 / 255)     # the test file's own images
    assert data.stl10(tmp_path / "test_X.bin", "test").shape == (2, 96, 96)
    with pytest.raises(ValueError, match="must come from test_X.bin"):
        data.stl10(tmp_path / "train_X.bin", "test")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "test_X.bin").write_bytes(b"\0" * (3 * 96 * 96 + 5))
    with pytest.raises(ValueError, match="not a whole number of 3x96x96 images"):
        data.stl10(tmp_path / "bad", "test")
    # the command line: a file of one split for a run that needs both: exit 2, nothing written
    out = tmp_path / "run"
    args = ["train", *TINY, "--data", "stl10", "--train-size", "3", "--test-size", "2", "--out", str(out)]
    assert _exit_code(torch_main, args + ["--data-path", str(tmp_path / "train_X.bin")]) == 2
    assert "must come from test_X.bin" in capsys.readouterr().err and not out.exists()
    assert _exit_code(torch_main, args[:-2] + ["--test-size", "5", "--out", str(out),
                                               "--data-path", str(tmp_path)]) == 2
    assert "5 images asked for, 2 in the file" in capsys.readouterr().err and not out.exists()


# --------------------------------------------------------------------------------------------------
# item 9: verified weight files


def _weights_file(tmp_path):
    from diffnet_torch import DiffNet, save_weights

    torch.manual_seed(0)
    path = tmp_path / "w.safetensors"
    save_weights(DiffNet(n_layers=1, depth=2, width=4), path)
    return path


def _loaders():
    from diffnet_torch import load_weights as torch_load

    loaders = [pytest.param(torch_load, id="torch")]
    try:
        from diffnet_jax import load_weights as jax_load
        loaders.append(pytest.param(jax_load, id="jax"))
    except ImportError:
        pass
    return loaders


@pytest.mark.parametrize("load", _loaders())
def test_corrupted_and_truncated_files_are_refused(tmp_path, load):
    path = _weights_file(tmp_path)
    data = path.read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    import hashlib
    import json

    # An independent hash: the header as canonical JSON without its checksum, a zero byte, the payload.
    fields = json.loads(data[8:header])
    digest = fields["__metadata__"].pop("sha256_file")
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    assert digest == hashlib.sha256(canonical + b"\0" + data[header:]).hexdigest()
    zeroed = tmp_path / "zeroed.safetensors"
    zeroed.write_bytes(data[:header] + b"\0" * 512 + data[header + 512:])
    with pytest.raises(weight_files.CorruptFileError, match="zeroed.safetensors: the file does not match"):
        load(zeroed)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[:-100])
    with pytest.raises(weight_files.CorruptFileError, match="truncated.safetensors"):
        load(truncated)
    with pytest.raises(weight_files.CorruptFileError, match="short.safetensors"):
        (tmp_path / "short.safetensors").write_bytes(data[:5])
        load(tmp_path / "short.safetensors")


@pytest.mark.parametrize("load", _loaders())
def test_nonfinite_weights_refused_unless_allowed(tmp_path, load):
    from diffnet_torch import DiffNet, save_weights

    model = DiffNet(n_layers=1, depth=2, width=4)
    with torch.no_grad():
        model.layers[0].dt.fill_(float("inf"))
    path = tmp_path / "inf.safetensors"
    save_weights(model, path)
    with pytest.raises(weight_files.NonFiniteWeightsError, match="inf.safetensors: non-finite values in"):
        load(path)
    loaded = load(path, allow_nonfinite=True)
    assert np.isinf(float(np.asarray(loaded.layers[0].dt.detach() if hasattr(loaded.layers[0].dt, "detach")
                                     else loaded.layers[0].dt)))


@pytest.mark.parametrize("load", _loaders())
def test_load_weights_accepts_a_checkpoint_in_both(tmp_path, load):
    out = tmp_path / "run"
    _train_tiny(torch_main, out)
    from_checkpoint = load(out / runs.CHECKPOINT_FILE)
    from_weights = load(out / runs.WEIGHTS_FILE)      # one epoch: the best weights are the checkpoint's
    x = np.random.default_rng(0).random((2, 1, 12, 12), dtype=np.float32)
    if isinstance(from_weights, torch.nn.Module):
        with torch.no_grad():
            a, b = from_checkpoint(torch.from_numpy(x)).numpy(), from_weights(torch.from_numpy(x)).numpy()
    else:
        a, b = np.asarray(from_checkpoint(x)), np.asarray(from_weights(x))
    np.testing.assert_array_equal(a, b)


def test_corrupted_checkpoint_refuses_resume(tmp_path, capsys):
    out = tmp_path / "run"
    _train_tiny(torch_main, out, ["--epochs", "2", "--stop-after", "1"])
    ckpt = out / runs.CHECKPOINT_FILE
    data = bytearray(ckpt.read_bytes())
    data[-4096:] = bytes(4096)
    ckpt.write_bytes(bytes(data))
    capsys.readouterr()
    assert _exit_code(torch_main, ["train", "--out", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint.safetensors: the file does not match its SHA-256" in err[-1]


# --------------------------------------------------------------------------------------------------
# item 10: the command lines check every flag before writing anything


@pytest.mark.parametrize("flag,value", [("--train-size", "0"), ("--batch-size", "0"), ("--lr", "0"),
                                        ("--image-size", "0"), ("--time-budget", "0"), ("--epochs", "-1"),
                                        ("--noise", "-0.1"), ("--depth", "1"), ("--lr", "nan"),
                                        ("--test-size", "2.5"), ("--patience", "0")])
def test_bad_flag_values_exit_2_with_one_line(tmp_path, capsys, flag, value):
    out = tmp_path / "run"
    assert _exit_code(torch_main, ["train", *TINY, flag, value, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"diffnet-torch train: error: argument {flag}: '{value}'")
    assert "Traceback" not in "\n".join(err) and not out.exists()


@pytest.mark.parametrize("flags,message", [
    (["--data", "stl10"], "error: data stl10 needs data_path"),
    (["--data", "natural", "--image-size", "5000"], "error: image size 5000: the largest patch the natural "
                                                    "photographs give is"),
    (["--data", "natural", "--exclude", "camra"], "error: argument --exclude: invalid choice: 'camra'"),
    (["--model", "resnet"], "error: argument --model: invalid choice: 'resnet'"),
])
def test_unusable_settings_write_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert _exit_code(torch_main, ["train", *TINY, *flags, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_help_shows_every_flag_with_its_default(capsys, framework):
    from ssdops.diffnet import cli_common

    main = torch_main if framework == "torch" else _jax_main()
    assert _exit_code(main, ["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    names = ("model", "task", "ndim", "data", "data_path", "noise", "train_size", "test_size", "image_size",
             "epochs", "batch_size", "lr", "lr_final", "layers", "depth", "width", "device", "seed", "patience",
             "time_budget", "threads", "cache_dir", "exclude")
    flags = {"--" + f.replace("_", "-") for f in names}
    flags |= {"--devices"} if framework == "jax" else set()
    for flag in flags:
        assert f"{flag} " in text, flag
    assert text.count("(default:") >= len(flags) + 4     # the settings and the run flags
    assert cli_common.RunConfig().lr == 2e-3 and "(default: 0.002)" in text


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_evaluate_missing_directory_exits_2(tmp_path, capsys, framework):
    main = torch_main if framework == "torch" else _jax_main()
    assert _exit_code(main, ["evaluate", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("nowhere: no such directory") and "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("framework,flags,message", [
    ("torch", ["--device", "nonsense"], "--device 'nonsense'"),
    ("jax", ["--devices", "64"], "asked for 64 devices"),
])
def test_unusable_devices_write_nothing(tmp_path, capsys, framework, flags, message):
    main = torch_main if framework == "torch" else _jax_main()
    out = tmp_path / "run"
    assert _exit_code(main, ["train", *TINY, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not out.exists()


def test_jax_has_no_unet(tmp_path, capsys):
    main = _jax_main()
    assert _exit_code(main, ["train", *TINY, "--model", "unet", "--out", str(tmp_path / "run")]) == 2
    assert "invalid choice: 'unet'" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_run_config_checks_values_like_the_parser():
    with pytest.raises(ValueError, match="batch_size: 0 must be >= 1"):
        RunConfig(batch_size=0)
    with pytest.raises(ValueError, match="model: 'resnet' is not one of"):
        RunConfig(model="resnet")
    with pytest.raises(ValueError, match=r"unknown settings \['learning_rate'\]"):
        RunConfig.from_dict({"learning_rate": 1.0})
    assert json.loads(json.dumps(RunConfig(exclude=["camera"]).to_dict()))["exclude"] == ["camera"]
