"""Run directories are untrusted input (issue 23, item 3): ``config.json`` is checked like the command line, nothing
is written outside the run directory because of what a file in it says, ``--overwrite`` checks before it
deletes, and every such failure exits with status 2 and a message naming the file. The directories are made
(and edited) by the tests themselves."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from diffnet_torch.cli import main as torch_main  # noqa: E402
from ssdops.diffnet import data as D  # noqa: E402
from ssdops.diffnet import runs  # noqa: E402
from ssdops.diffnet.config import available_cores  # noqa: E402
from ssdops.diffnet.format import CorruptFileError  # noqa: E402

TINY = ["--task", "deconvolution", "--data", "disks", "--image-size", "12", "--train-size", "8", "--test-size", "4",
        "--epochs", "1", "--batch-size", "4", "--layers", "1", "--depth", "2", "--width", "4", "--threads", "1",
        "--model", "linear", "--quiet"]


def mains():
    found = [pytest.param(torch_main, id="torch")]
    try:
        from diffnet_jax.cli import main as jax_main
    except ImportError:
        return found
    return found + [pytest.param(jax_main, id="jax")]


def exit_code(main, argv):
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run, trained once (two epochs stored: resumable); each test edits a copy."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert torch_main(["train", *TINY, "--epochs", "2", "--stop-after", "1", "--out", str(out)]) == 0
    return out


@pytest.fixture
def run(trained, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def edit_config(run, **changes):
    path = run / "config.json"
    values = json.loads(path.read_text())
    for key, value in changes.items():
        if value is KeyError:
            del values[key]
        else:
            values[key] = value
    path.write_text(json.dumps(values))
    return path


BAD_CONFIGS = {
    "no task": ({"task": KeyError}, "missing settings ['task']"),
    "a number as a string": ({"epochs": "2"}, "epochs = '2' is not of type int"),
    "a flag as a number": ({"noise": True}, "noise = True is not of type float"),
    "out of range": ({"lr": -1.0}, "lr: -1.0 must be > 0.0"),
    "unknown setting": ({"learning_rate": 1.0}, "unknown settings ['learning_rate']"),
    "an absolute cache_dir": ({"cache_dir": "/tmp/elsewhere"}, "cache_dir = '/tmp/elsewhere': only the command"),
    "a relative cache_dir": ({"cache_dir": "../x"}, "cache_dir = '../x': only the command line"),
    "more threads than cores": ({"threads": 100000}, f"threads: 100000 is more than this machine's "
                                                     f"{available_cores()} cores"),
    "an unknown task": ({"task": "denoise"}, "task: 'denoise' is not one of"),
}


@pytest.mark.parametrize("main", mains())
@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_evaluate_refuses_a_bad_config_with_status_2(run, capsys, main, case):
    changes, message = BAD_CONFIGS[case]
    path = edit_config(run, **changes)
    before = sorted(os.listdir(run))
    capsys.readouterr()
    assert exit_code(main, ["evaluate", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path}: " in err[0] and message in err[0], err
    assert sorted(os.listdir(run)) == before and not os.path.exists("/tmp/elsewhere")


@pytest.mark.parametrize("main", mains())
@pytest.mark.parametrize("case", ["no task", "an absolute cache_dir", "more threads than cores"])
def test_resume_and_figures_refuse_a_bad_config_with_status_2(run, capsys, main, case):
    changes, message = BAD_CONFIGS[case]
    path = edit_config(run, **changes)
    stored = path.read_text()
    capsys.readouterr()
    assert exit_code(main, ["train", "--out", str(run), "--resume", "--quiet"]) == 2
    assert str(path) in capsys.readouterr().err
    assert path.read_text() == stored                        # not rewritten
    assert exit_code(torch_main, ["figures", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: " in err and message in err and not (run / "figures").exists()


def test_garbage_config_json_is_status_2(run, capsys):
    for text in ["{", "[1, 2]", "null", '"x"']:
        (run / "config.json").write_text(text)
        capsys.readouterr()
        assert exit_code(torch_main, ["evaluate", str(run)]) == 2
        assert str(run / "config.json") in capsys.readouterr().err


@pytest.mark.parametrize("main", mains())
@pytest.mark.parametrize("flags, message", [
    (["--task", "pm-inverse"], "--task 'pm-inverse' (the run has 'deconvolution')"),
    (["--noise", "0.5"], "--noise 0.5 (the run has 0.0)"),
    (["--layers", "3"], "--layers 3 (the run has 1)"),
])
def test_resume_may_not_switch_a_fixed_setting(run, capsys, main, flags, message):
    stored = (run / "config.json").read_text()
    capsys.readouterr()
    assert exit_code(main, ["train", "--out", str(run), "--resume", *flags, "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert (run / "config.json").read_text() == stored


@pytest.mark.parametrize("main", mains())
@pytest.mark.parametrize("text, message", [
    ("epoch,train_loss\nx,1.0\n", "epoch 'x' is not a positive integer"),
    ("epoch,train_loss\n1,abc\n", "train_loss 'abc' is not a number"),
    (b"epoch\n\xff\xfe\n", "codec can't decode"),
])
def test_resume_refuses_a_bad_metrics_log_with_status_2(run, capsys, main, text, message):
    """``metrics.csv`` is read back and extended on ``--resume``: checked before anything is written."""
    path = run / "metrics.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = {name: (run / name).read_bytes() for name in ("config.json", "metrics.csv", runs.CHECKPOINT_FILE)}
    capsys.readouterr()
    assert exit_code(main, ["train", "--out", str(run), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: not a metrics log" in err and message in err, err
    assert {name: (run / name).read_bytes() for name in before} == before


def test_resume_refuses_a_linked_checkpoint(run, tmp_path, capsys):
    """A resumed run replaces its checkpoint and weights: a link to a file outside is refused, not followed."""
    outside = tmp_path / "outside.safetensors"
    (run / runs.CHECKPOINT_FILE).rename(outside)
    (run / runs.CHECKPOINT_FILE).symlink_to(outside)
    data = outside.read_bytes()
    capsys.readouterr()
    assert exit_code(torch_main, ["train", "--out", str(run), "--resume", "--quiet"]) == 2
    assert f"{run / runs.CHECKPOINT_FILE} is a link" in capsys.readouterr().err
    assert outside.read_bytes() == data


def test_resume_with_fewer_threads_than_stored_continues(run):
    """A run stored on a larger machine: ``--threads`` (a runtime setting) replaces the stored value first."""
    edit_config(run, threads=available_cores() + 1)
    assert exit_code(torch_main, ["train", "--out", str(run), "--resume", "--threads", "1", "--quiet"]) == 0
    assert json.loads((run / "config.json").read_text())["threads"] == 1


@pytest.mark.parametrize("main", mains())
def test_a_command_line_cache_dir_is_used_and_never_stored(tmp_path, capsys, main):
    out, cache = tmp_path / "run", tmp_path / "cache"
    assert main(["train", *TINY, "--out", str(out), "--cache-dir", str(cache)]) == 0
    cached = sorted(cache.glob("*.npz"))
    assert len(cached) == 2                                      # train and test sets
    assert json.loads((out / "config.json").read_text())["cache_dir"] is None
    assert main(["train", *TINY, "--out", str(out), "--cache-dir", str(cache), "--overwrite"]) == 0   # read back
    cached[0].write_bytes(b"edited")
    capsys.readouterr()
    assert exit_code(main, ["train", *TINY, "--out", str(out), "--cache-dir", str(cache), "--overwrite"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{cached[0]}: not a cache file of this data" in err[0], err


@pytest.mark.parametrize("target", ["figures", "metrics.csv", runs.WEIGHTS_FILE])
def test_overwrite_checks_before_it_deletes(run, tmp_path, capsys, target):
    """A run file replaced by a link (to something outside the run): nothing is deleted, status 2."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    link = run / target
    if link.is_dir():
        import shutil

        shutil.rmtree(link)
    elif link.exists():
        link.unlink()
    link.symlink_to(outside if target == "figures" else outside / "keep.txt")
    before = sorted(os.listdir(run))
    capsys.readouterr()
    assert exit_code(torch_main, ["train", *TINY, "--out", str(run), "--overwrite"]) == 2
    assert f"{link} is a link" in capsys.readouterr().err
    assert sorted(os.listdir(run)) == before and (outside / "keep.txt").read_text() == "mine"


def test_figures_refuse_a_figures_link(run, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (run / "figures").symlink_to(outside)
    assert exit_code(torch_main, ["figures", str(run)]) == 2
    assert "figures is a link" in capsys.readouterr().err and not list(outside.iterdir())


def test_every_committed_run_directory_validates():
    """The reproduction's runs under benchmarks/runs (resumed across sessions) pass the checks."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "runs")
    found = [d for d, _, names in os.walk(root) if "config.json" in names]
    for run_dir in found:
        runs.read_config(run_dir)


def cache_case(tmp_path):
    images = np.random.default_rng(0).random((3, 8, 8))
    first = D.make_task("deconvolution", images, cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    return images, first, path


def test_a_cached_data_set_is_verified_on_read(tmp_path):
    images, first, path = cache_case(tmp_path)
    again = D.make_task("deconvolution", images, cache_dir=tmp_path)
    np.testing.assert_array_equal(again[0], first[0])
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    edits = {
        "edited values": {**arrays, "input": arrays["input"] + np.float32(1)},
        "another shape": {**arrays, "input": arrays["input"][:2]},
        "another dtype": {**arrays, "target": arrays["target"].astype(np.float64)},
        "a missing hash": {k: v for k, v in arrays.items() if k != "sha256"},
    }
    for content in edits.values():
        np.savez(path, **content)
        with pytest.raises(CorruptFileError, match=f"{path.name}: "):
            D.make_task("deconvolution", images, cache_dir=tmp_path)
    path.write_bytes(b"not a zip file")
    with pytest.raises(CorruptFileError, match="not a cache file of this data"):
        D.make_task("deconvolution", images, cache_dir=tmp_path)
