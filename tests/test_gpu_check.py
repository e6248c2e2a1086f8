"""benchmarks/gpu_check.sh: the whole prepared GPU run on the CPU at tiny sizes (``--dry-run``), and the
command lines of the real run checked against the parsers of the tools they call (those tools change;
the real run only happens on a GPU machine, where a wrong flag would waste the lease)."""
import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import load_benchmark

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gpu_check():
    return load_benchmark("gpu_check")


def real_steps(gpu_check, tmp_path):
    return {s.name: s for s in gpu_check.steps("python", tmp_path, dry_run=False)}


def test_real_run_fits_its_budget(gpu_check, tmp_path):
    steps = real_steps(gpu_check, tmp_path)
    assert set(steps) == {"pytest", "compare", "bench_apply", "bench_steps", "bench_implicit", "throughput_torch",
                          "throughput_jax", "train"}
    assert sum(s.timeout_s for s in steps.values()) <= gpu_check.BUDGET_S <= 9 * 60 - 15  # 15 s to install
    assert steps["train"].timeout_s > 180 and "180" in steps["train"].argv  # a 3-minute training run


def test_real_run_flags_exist(gpu_check, tmp_path, monkeypatch):
    """Every real command line parses with its tool's own parser (unknown flags and bad values exit)."""
    from ssdops.tools import bench, compare

    steps = real_steps(gpu_check, tmp_path)
    parsed = {}
    for name, tool in (("compare", compare), ("bench_apply", bench), ("bench_steps", bench),
                       ("bench_implicit", bench)):
        argv = steps[name].argv
        assert argv[1:4] == ("-m", "ssdops", name.split("_")[0])
        parsed[name] = tool.add_arguments(argparse.ArgumentParser()).parse_args(argv[4:])
    assert list(parsed["compare"].frameworks) == ["cupy", "torch", "jax", "jax.jit"]
    apply, ops, implicit = parsed["bench_apply"], parsed["bench_steps"], parsed["bench_implicit"]
    assert all(list(p.backends) == ["cupy", "torch", "jax"] and p.dtype == "float32" for p in (apply, ops, implicit))
    assert (list(apply.ops), list(apply.sizes), list(apply.batch)) == (["ssd_apply"], [2048, 4096], [8])
    assert list(ops.ops) == ["filter_step", "perona_malik_step"] and list(ops.batch) == [8]
    assert (list(implicit.ops), list(implicit.implicit_sizes)) == (["implicit_step"], [1024])

    diffnet_cli = pytest.importorskip("diffnet_torch.cli")
    argv = steps["train"].argv
    assert argv[1:4] == ("-m", "diffnet_torch.cli", "train")
    parsed = diffnet_cli.build_parser()[0].parse_args(argv[3:])
    assert (parsed.model, parsed.task, parsed.time_budget) == ("diffnet", "deconvolution", 180.0)

    throughput = load_benchmark("train_throughput")
    seen = []
    monkeypatch.setattr(throughput, "run", lambda args: seen.append(args) or [])
    for name in ("throughput_torch", "throughput_jax"):
        argv = list(steps[name].argv[2:])
        argv[argv.index("--json") + 1] = str(tmp_path / f"{name}.json")
        assert throughput.main(argv) == 0
    assert [a.frameworks for a in seen] == [["torch-eager", "torch-unet"], ["jax"]]
    assert all(a.device == "cuda" for a in seen)


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_dry_run(tmp_path):
    """``gpu_check.sh --dry-run`` runs every step to the end and reports each one in summary.json/.md."""
    out, work = tmp_path / "out", tmp_path / "work"
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(out),
                           "--work", str(work)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable})
    log = (out / "gpu_check.log").read_text() if (out / "gpu_check.log").exists() else ""
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{log[-4000:]}"
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.log", "summary.json", "summary.md"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True
    assert [s["status"] for s in summary["steps"]] == ["ok"] * 8
    assert summary["pytest"]["tests"] > 0 and summary["pytest"]["failures"] == summary["pytest"]["errors"] == 0
    assert summary["compare"]["passed"] is True
    ops = {r["op"] for r in summary["bench"] if r["ms"]}
    assert ops == {"ssd_apply", "filter_step", "perona_malik_step", "implicit_step"}
    rates = {r["framework"]: r.get("images_per_second") for r in summary["throughput"]}
    assert set(rates) == {"torch-eager", "torch-unet", "jax"} and all(v and v > 0 for v in rates.values())
    assert summary["train"], "the training run wrote no summary.json"
    apply = summary["targets"]["apply"]
    assert {v["backend"] for v in apply} == {"numpy", "torch"} and all(v["copy_fraction"] > 0 for v in apply)
    assert summary["targets"]["throughput"]["ratio"] > 0
    report = (out / "summary.md").read_text()
    assert "dry run" in report and "Targets:" in report and "DiffNet / U-Net" in report
