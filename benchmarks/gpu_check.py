#!/usr/bin/env python
"""The prepared GPU run (issue #15): every GPU check of ssdops and DiffNet in one go, within 9 minutes.

Steps, each a subprocess with its own time limit (a step that fails or runs out of time is recorded and
the next one runs):

1. ``pytest``            ``pytest -m "(gpu or cuda_cpu) and not slow"``: every GPU test (the kernels of each
                         framework against the generic code) and the CUDA kernels' host emulation (the slow
                         inductor-on-CPU test is a CPU check: it runs in the normal slow suite);
2. ``compare``           ``ssdops compare`` on CuPy, PyTorch and JAX (eager and jitted), float32 and float64;
3. ``bench_apply``       ``ssdops bench``, float32, CuPy, PyTorch and JAX on every device, each row with the
   ``bench_steps``       ratio to the measured copy bandwidth of its device: SSD apply at 2048² and 4096² x 8;
   ``bench_implicit``    filter_step and Perona-Malik step at 4096² x 8; the implicit step at 1024²;
4. ``throughput_torch``  ``benchmarks/train_throughput.py`` on the GPU: DiffNet vs the U-Net (PyTorch), then
   ``throughput_jax``    DiffNet in JAX;
5. ``train``             ``diffnet-torch train``: a 3-minute DiffNet deconvolution run on the GPU.

Written to ``--out`` (default: ``$OUT``, else a new temporary folder): ``summary.md`` (the tables and the verdict on the
issue's targets, ready for benchmarks/RESULTS.md), ``summary.json`` (every step's status and records) and
``gpu_check.log`` (the output of every step). Each step's own files (JSON, the training run) stay in
``--work`` (default: a temporary folder).

``--dry-run`` runs the same steps on the CPU at tiny sizes (a test runs it: tests/test_gpu_check.py).
The GPU targets (checked on the GPU rows only): SSD apply at 4096² x 8 float32 at >= 80 % of the measured
copy bandwidth in every framework; DiffNet training >= 5x the U-Net's images/s. The exit status is 1 when
a step failed or timed out (a missed target is reported, not an error: it is a measurement).

    bash benchmarks/gpu_check.sh                      # on a GPU machine (installs what is missing first)
    python benchmarks/gpu_check.py --dry-run          # the whole script on the CPU, tiny sizes
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The issue's GPU targets.
APPLY_TARGET = dict(size=4096, batch=8, dtype="float32", copy_fraction=0.8)
THROUGHPUT_TARGET = 5.0
#: The steps' time limits add up to at most this many seconds: with gpu_check.sh's installation, 9 minutes.
BUDGET_S = 525
#: The time limit of each step of a dry run (tiny sizes; generous for a busy CPU).
DRY_RUN_LIMIT_S = 150


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple
    timeout_s: float


def steps(python, work, dry_run):
    """The steps of a run (GPU sizes, or tiny CPU sizes with ``dry_run``); their files go to ``work``."""
    if dry_run:
        pytest_select = ("-m", "(gpu or cuda_cpu) and not slow", "-k", "thread_mapping", "tests/test_cuda_kernels.py")
        compare = ("--frameworks", "numpy,torch", "--size", "8", "--ops", "ssd_apply", "--dtypes", "float64")
        backends, apply_sizes, step_sizes, implicit_sizes, batch = "numpy,torch", "16", "16", "16", "2"
        throughput = ("--device", "cpu", "--threads", "1", "--layers", "1", "--depth", "2", "--width", "4",
                      "--image-size", "16", "--batch", "2", "--warmup", "0", "--repeats", "1", "--steps", "1")
        train = ("--device", "cpu", "--threads", "1", "--train-size", "16", "--test-size", "8",
                 "--image-size", "16", "--batch-size", "8", "--layers", "1", "--epochs", "1", "--time-budget", "20")
        limits = {}
    else:
        pytest_select = ("-m", "(gpu or cuda_cpu) and not slow")
        compare = ("--frameworks", "cupy,torch,jax,jax.jit", "--size", "256")
        backends, apply_sizes, step_sizes, implicit_sizes, batch = "cupy,torch,jax", "2048,4096", "4096", "1024", "8"
        throughput = ("--device", "cuda")
        train = ("--device", "cuda", "--train-size", "2048", "--test-size", "256", "--epochs", "30",
                 "--time-budget", "180")
        limits = dict(pytest=45, compare=40, bench_apply=55, bench_steps=50, bench_implicit=40, throughput_torch=50,
                      throughput_jax=35, train=205)

    def bench(name, ops, size_option, sizes, batches):
        # One process per group: a step that runs out of time loses its own rows only.
        return Step(name, (python, "-m", "ssdops", "bench", "--ops", ops, "--backends", backends, size_option, sizes,
                           "--batch", batches, "--dtype", "float32", "--repeats", "5", "--no-scipy", "--no-generic",
                           "--json", str(work / f"{name}.json")), limits.get(name, DRY_RUN_LIMIT_S))

    def throughput_step(name, frameworks):
        return Step(name, (python, "benchmarks/train_throughput.py", *throughput, "--frameworks", frameworks,
                           "--json", str(work / f"{name}.json")), limits.get(name, DRY_RUN_LIMIT_S))

    return [
        Step("pytest", (python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_select,
                        f"--junitxml={work / 'pytest.xml'}"), limits.get("pytest", DRY_RUN_LIMIT_S)),
        Step("compare", (python, "-m", "ssdops", "compare", *compare, "--json", str(work / "compare.json")),
             limits.get("compare", DRY_RUN_LIMIT_S)),
        bench("bench_apply", "ssd_apply", "--sizes", apply_sizes, batch),
        bench("bench_steps", "filter_step,perona_malik_step", "--sizes", step_sizes, batch),
        bench("bench_implicit", "implicit_step", "--implicit-sizes", implicit_sizes, "1"),
        throughput_step("throughput_torch", "torch-eager,torch-unet"),
        throughput_step("throughput_jax", "jax"),
        Step("train", (python, "-m", "diffnet_torch.cli", "train", "--model", "diffnet", "--task", "deconvolution",
                       "--data", "disks", *train, "--quiet", "--out", str(work / "train_deconvolution")),
             limits.get("train", DRY_RUN_LIMIT_S)),
    ]


def run_step(step, log, env):
    """Run ``step`` in its own process group (killed whole on a timeout); its output goes to ``log``."""
    log.write(f"\n===== {step.name}: {' '.join(step.argv)}\n")
    log.flush()
    start = time.perf_counter()
    process = subprocess.Popen(step.argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
    try:
        returncode = process.wait(timeout=step.timeout_s)
        status = "ok" if returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        returncode, status = None, "timeout"
    seconds = time.perf_counter() - start
    log.write(f"===== {step.name}: {status} (exit {returncode}) after {seconds:.1f} s\n")
    log.flush()
    return dict(name=step.name, status=status, returncode=returncode, seconds=round(seconds, 1),
                limit_s=step.timeout_s, command=list(step.argv))


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def pytest_counts(path):
    """{tests, failures, errors, skipped} of a JUnit XML report, or None."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


def accelerator_rows(records, dry_run):
    """Rows of a device other than the CPU (in a dry run, the CPU rows: there is nothing else)."""
    return [r for r in records or [] if dry_run or r.get("device") != "cpu"]


def apply_verdicts(bench_records, dry_run):
    """Per (framework, device): the fraction of the copy bandwidth reached by SSD apply at the target
    configuration (in a dry run, at the largest size measured), and whether it meets the target."""
    rows = [r for r in accelerator_rows(bench_records, dry_run) if r["op"] == "ssd_apply" and r.get("ms")]
    if dry_run and rows:
        size, batch = max((r["size"], r["batch"]) for r in rows)
    else:
        size, batch = APPLY_TARGET["size"], APPLY_TARGET["batch"]
    verdicts = []
    for r in rows:
        if (r["size"], r["batch"], r["dtype"]) == (size, batch, APPLY_TARGET["dtype"]) and r.get("floor_ratio"):
            fraction = 1.0 / r["floor_ratio"]
            verdicts.append(dict(backend=r["backend"], device=r["device"], size=size, batch=batch,
                                 copy_fraction=fraction, met=fraction >= APPLY_TARGET["copy_fraction"]))
    return verdicts


def throughput_verdict(records):
    """DiffNet (PyTorch eager) images/s over the U-Net's, and whether it meets the target."""
    by_framework = {r["framework"]: r for r in records or [] if "images_per_second" in r}
    if "torch-eager" not in by_framework or "torch-unet" not in by_framework:
        return None
    ratio = by_framework["torch-eager"]["images_per_second"] / by_framework["torch-unet"]["images_per_second"]
    return dict(ratio=round(ratio, 2), met=ratio >= THROUGHPUT_TARGET)


def gpu_info():
    """nvidia-smi's name, driver and memory of each GPU (empty without nvidia-smi)."""
    if shutil.which("nvidia-smi") is None:
        return []
    query = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30)
    return [line.strip() for line in query.stdout.splitlines() if line.strip()]


def markdown(summary):
    """The report: steps, test counts, agreement, GPU kernel rows, training throughput, training run."""
    lines = [f"# GPU check{' (dry run: CPU, tiny sizes; numbers are not meaningful)' if summary['dry_run'] else ''}",
             "", f"Date (UTC): {summary['date']}; GPUs: {', '.join(summary['gpus']) or 'none'}", "",
             "| step | status | seconds (limit) |", "| --- | --- | --- |"]
    lines += [f"| {s['name']} | {s['status']} | {s['seconds']} ({s['limit_s']:g}) |" for s in summary["steps"]]
    counts = summary["pytest"]
    lines += ["", f"pytest: {counts if counts else 'no report'}"]
    compare = summary["compare"]
    lines += ["", f"ssdops compare: {'passed' if compare and compare.get('passed') else 'FAILED or not run'}"
              + (f" ({', '.join(compare.get('frameworks', []))})" if compare else "")]
    lines += ["", "| op | backend | device | size | batch | ms | GB/s | copy fraction |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in accelerator_rows(summary["bench"], summary["dry_run"]):
        fraction = f"{1.0 / r['floor_ratio']:.2f}" if r.get("floor_ratio") else "-"
        ms = f"{r['ms']:.3f}" if r.get("ms") else (r.get("skipped") or r.get("error") or "-")
        gbps = f"{r['gbps']:.3g}" if r.get("gbps") else "-"
        lines.append(f"| {r['op']} | {r['backend']} | {r['device']} | {r['size']}² | {r['batch']} | {ms} | {gbps} "
                     f"| {fraction} |")
    lines += ["", "| framework | device | images/s | ms/step | status |", "| --- | --- | --- | --- | --- |"]
    for r in summary["throughput"]:
        ips = f"{r['images_per_second']:.1f}" if "images_per_second" in r else "-"
        ms = f"{r['ms_per_step']:.2f}" if "ms_per_step" in r else "-"
        lines.append(f"| {r['framework']} | {r.get('device', '-')} | {ips} | {ms} | {r['status']} |")
    train = summary["train"]
    lines += ["", f"DiffNet deconvolution training: {json.dumps(train) if train else 'no summary'}", "",
              "Targets:"]
    for v in summary["targets"]["apply"]:
        lines.append(f"- SSD apply {v['size']}² x {v['batch']} float32, {v['backend']} {v['device']}: "
                     f"{v['copy_fraction']:.0%} of the copy bandwidth (target >= "
                     f"{APPLY_TARGET['copy_fraction']:.0%}): {'met' if v['met'] else 'MISSED'}")
    if not summary["targets"]["apply"]:
        lines.append("- SSD apply: no measurement at the target configuration")
    t = summary["targets"]["throughput"]
    lines.append(f"- DiffNet / U-Net training images/s: {t['ratio']}x (target >= {THROUGHPUT_TARGET:g}x): "
                 f"{'met' if t['met'] else 'MISSED'}" if t else "- DiffNet / U-Net training: not measured")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the whole run on the CPU at tiny sizes")
    parser.add_argument("--out", type=Path, default=os.environ.get("OUT") or None,
                        help="where the summary and the log go (default: $OUT, else a new temp dir)")
    parser.add_argument("--work", type=Path, default=None, help="the steps' own files (default: a temp dir)")
    parser.add_argument("--only", default=None, help="comma-separated steps to run (default: all)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="ssdops_gpu_check_"))
    work = args.work or Path(tempfile.mkdtemp(prefix="ssdops_gpu_check_work_"))
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    plan = steps(sys.executable, work, args.dry_run)
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {s.name for s in plan}
        if unknown:
            parser.error(f"unknown steps {sorted(unknown)}: choose from {[s.name for s in plan]}")
        plan = [s for s in plan if s.name in wanted]
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               # JAX must not take 75 % of the GPU's memory while PyTorch and CuPy run in the same process.
               XLA_PYTHON_CLIENT_PREALLOCATE="false")
    if args.dry_run:
        env.update(CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu")
    results = []
    with open(out / "gpu_check.log", "w", encoding="utf-8") as log:
        for step in plan:
            result = run_step(step, log, env)
            print(f"[gpu_check] {result['name']}: {result['status']} in {result['seconds']} s", flush=True)
            results.append(result)
    bench_records = [r for name in ("bench_apply", "bench_steps", "bench_implicit")
                     for r in (read_json(work / f"{name}.json") or {}).get("records", [])]
    throughput = (read_json(work / "throughput_torch.json") or []) + (read_json(work / "throughput_jax.json") or [])
    summary = dict(
        dry_run=args.dry_run, date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), gpus=gpu_info(),
        work=str(work), steps=results, pytest=pytest_counts(work / "pytest.xml"),
        compare=read_json(work / "compare.json"), bench=bench_records, throughput=throughput,
        train=read_json(work / "train_deconvolution" / "summary.json"),
        targets=dict(apply=apply_verdicts(bench_records, args.dry_run),
                     throughput=throughput_verdict(throughput)),
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    report = markdown(summary)
    (out / "summary.md").write_text(report)
    print(report, flush=True)
    print(f"[gpu_check] written to {out} (the steps' own files: {work})", flush=True)
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
