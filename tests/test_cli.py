"""The ``ssdops`` command: ``ssdops bench`` (timings) and ``ssdops compare`` (cross-framework agreement)."""
import contextlib
import datetime
import importlib.util
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ssdops.tools import bench as benchmark
from ssdops.tools import cli, compare

REPO = Path(__file__).resolve().parents[1]
BENCH_FRAMEWORKS = [name for name in ("numpy", "torch", "jax") if importlib.util.find_spec(name)]
COMPARE_FRAMEWORKS = [name for name in ("numpy", "array_api_strict", "torch", "jax") if importlib.util.find_spec(name)]
if "jax" in COMPARE_FRAMEWORKS:
    COMPARE_FRAMEWORKS.append("jax.jit")


def _main(argv):
    """Run ``cli.main(argv)`` in this process; returns (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, out.getvalue(), err.getvalue()


def _positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    rc, out, err = _main(["bench", "--quick", "--json", str(path)])
    return rc, out, err, json.loads(path.read_text())


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    path = tmp_path_factory.mktemp("compare") / "compare.json"
    rc, out, err = _main(["compare", "--size", "16", "--json", str(path)])
    return rc, out, err, json.loads(path.read_text())


# --- ssdops bench ----------------------------------------------------------------------------------
def test_bench_quick_prints_a_table(bench):
    rc, out, err, _ = bench
    assert rc == 0, out + err
    header = out.splitlines()[0].split()
    for column in ("op", "backend", "device", "size", "batch", "ms", "GB/s", "copy", "scipy", "generic"):
        assert column in header
    body = [line.split() for line in out.splitlines()[2:] if line and line.split()[0] in benchmark.OPS]
    assert {row[0] for row in body} == set(benchmark.OPS)
    assert {row[1] for row in body} == set(BENCH_FRAMEWORKS)
    assert "ERROR" not in out and "skipped" not in out
    for row in body:
        assert float(row[5]) > 0 and float(row[6]) > 0  # ms, GB/s


def test_bench_json_has_machine_info_and_finite_positive_numbers(bench):
    _, _, _, payload = bench
    machine = payload["machine"]
    for key in ("platform", "cpu_model", "cpu_count", "python", "date", "versions", "devices"):
        assert machine[key], key
    datetime.datetime.fromisoformat(machine["date"])
    assert machine["versions"]["numpy"] == np.__version__
    assert "scipy" in machine["versions"]
    assert {d["backend"] for d in machine["devices"]} == set(BENCH_FRAMEWORKS)
    assert payload["config"]["quick"] is True
    records = payload["records"]
    sizes, batches = benchmark.QUICK["sizes"], benchmark.QUICK["batch"]
    def op_sizes(op):
        if op == "implicit_step":
            return benchmark.QUICK["implicit_sizes"]
        return benchmark.QUICK["sizes_3d"] if op in benchmark.OPS_3D else sizes

    expected = {(op, fw, n, b) for op in benchmark.OPS for fw in BENCH_FRAMEWORKS for b in batches
                for n in op_sizes(op)}
    assert {(r["op"], r["backend"], r["size"], r["batch"]) for r in records} == expected
    for r in records:
        assert r["error"] is None and r["skipped"] is None, r
        assert r["dtype"] == "float32"
        for key in ("ms", "gbps", "floor_ms", "floor_ratio", "generic_ms", "speedup_generic"):
            assert _positive(r[key]), (key, r)
        grid_ndim = 3 if r["op"] in benchmark.OPS_3D else 2
        assert r["bytes"] == benchmark._TRAFFIC_ARRAYS[r["op"]] * r["batch"] * r["size"] ** grid_ndim * 4
        assert r["gbps"] == pytest.approx(r["bytes"] / r["ms"] / 1e6)
        assert r["floor_ratio"] == pytest.approx(r["ms"] / r["floor_ms"])
        if r["op"] in ("perona_malik_step", "perona_malik_step_3d"):  # no scipy baseline: the matrix depends on u
            assert r["scipy_ms"] is None and r["speedup_scipy"] is None
        else:
            assert _positive(r["scipy_ms"]) and r["speedup_scipy"] == pytest.approx(r["scipy_ms"] / r["ms"])


def test_bench_times_the_generic_path_where_a_fast_path_exists(monkeypatch):
    """A deliberately slow "fast path" must show up as a speed-up over generic below 1."""
    import time

    from array_api_compat import array_namespace

    from ssdops import backends
    from ssdops._kernels import apply_generic

    xp = array_namespace(np.zeros(1))
    backends.lookup("ssd_apply", xp)  # loads the NumPy backend module first (it registers on import)

    def slow(*, diagonals, offsets, u, out=None):
        time.sleep(0.003)
        return apply_generic(xp, diagonals, offsets, u)

    monkeypatch.setitem(backends._REGISTRY, ("ssd_apply", "numpy"), backends.Kernel("ssd_apply", "numpy", slow))
    (r,) = benchmark.run(ops=("ssd_apply",), backends=("numpy",), sizes=(32,), batch=(1,), repeats=3,
                         scipy_baseline=False)
    assert r["kernels"] == ["ssd_apply"] and r["generic_timed"] is True
    assert r["ms"] >= 3.0
    assert r["generic_ms"] < 2.0 and r["speedup_generic"] < 0.7
    assert backends.lookup("ssd_apply", xp) is slow  # the switch is restored after the run


def test_bench_times_the_peers_of_the_perona_malik_steps(monkeypatch):
    """OpenCV next to the 2-D step (on the image as 8-bit, 3 channels: all it takes), medpy and SimpleITK
    next to the 3-D one; ``speedup_peers`` is the fastest peer's time over ours. Stand-in modules record the
    calls, so the wiring is tested where the peers are not installed (they are an extra, ``ssdops[peers]``)."""
    import time
    import types

    calls = []

    def peer(name, seconds):
        def call(image, *args, **kwargs):
            calls.append((name, image.dtype, image.shape, args, kwargs))
            time.sleep(seconds)
        return call

    cv2 = types.ModuleType("cv2")
    cv2.ximgproc = types.SimpleNamespace(anisotropicDiffusion=peer("opencv", 0.02))
    medpy = types.ModuleType("medpy")
    medpy_filter = types.ModuleType("medpy.filter")
    smoothing = types.ModuleType("medpy.filter.smoothing")
    smoothing.anisotropic_diffusion = peer("medpy", 0.03)
    sitk = types.ModuleType("SimpleITK")
    sitk.GetImageFromArray = np.asarray
    sitk.GradientAnisotropicDiffusion = peer("simpleitk", 0.02)
    for name, module in (("cv2", cv2), ("medpy", medpy), ("medpy.filter", medpy_filter),
                         ("medpy.filter.smoothing", smoothing), ("SimpleITK", sitk)):
        monkeypatch.setitem(sys.modules, name, module)
    records = benchmark.run(ops=("perona_malik_step", "perona_malik_step_3d"), backends=("numpy",), sizes=(16,),
                            sizes_3d=(6,), batch=(1,), repeats=2, scipy_baseline=False, generic_baseline=False)
    image, volume = records
    assert image["opencv_ms"] >= 20 and "medpy_ms" not in image
    assert image["speedup_peers"] == pytest.approx(image["opencv_ms"] / image["ms"])
    assert volume["medpy_ms"] >= 30 and 20 <= volume["simpleitk_ms"] < volume["medpy_ms"]
    assert volume["speedup_peers"] == pytest.approx(volume["simpleitk_ms"] / volume["ms"])
    opencv = [c for c in calls if c[0] == "opencv"]
    assert opencv and all(c[1] == np.uint8 and c[2] == (16, 16, 3) and c[3] == (0.1, 0.2 * 255, 1) for c in opencv)
    assert {c[2] for c in calls if c[0] != "opencv"} == {(6, 6, 6)}
    assert "vs peers" in benchmark.format_table(records)
    without = benchmark.run(ops=("perona_malik_step",), backends=("numpy",), sizes=(16,), batch=(1,), repeats=1,
                            scipy_baseline=False, generic_baseline=False, peer_baseline=False)
    assert without[0]["speedup_peers"] is None and without[0]["opencv_ms"] is None


def test_bench_skips_configurations_above_max_bytes():
    # The default limit skips 4096^2 x 16 float32 (7 arrays of 1 GiB) without allocating anything.
    (big,) = benchmark.run(ops=("ssd_apply",), backends=("numpy",), sizes=(4096,), batch=(16,))
    assert big["skipped"] and "max-bytes" in big["skipped"] and big["ms"] is None
    assert big["working_set_bytes"] == 7 * 16 * 4096**2 * 4 > benchmark.DEFAULT_MAX_BYTES
    records = benchmark.run(ops=("ssd_apply",), backends=("numpy",), sizes=(8, 64), batch=(1,),
                            max_bytes=benchmark.parse_bytes("10k"), repeats=1)
    assert records[0]["skipped"] is None and _positive(records[0]["ms"])
    assert records[1]["skipped"] and records[1]["ms"] is None
    table = benchmark.format_table(records)
    assert "skipped" in table and "note: ssd_apply numpy cpu 64^2 x 1: working set" in table


def test_parse_bytes():
    assert benchmark.parse_bytes("4G") == 4 * 2**30
    assert benchmark.parse_bytes("500MB") == 500 * 2**20
    assert benchmark.parse_bytes("1.5GiB") == int(1.5 * 2**30)
    assert benchmark.parse_bytes("12345") == 12345
    assert benchmark.parse_bytes("none") is None


def test_bench_rejects_unknown_names():
    with pytest.raises(SystemExit):
        _main(["bench", "--ops", "fft"])
    with pytest.raises(ValueError, match="unknown op"):
        benchmark.run(ops=("fft",), backends=("numpy",))


# --- ssdops compare --------------------------------------------------------------------------------
def test_compare_passes_and_lists_every_installed_framework(comparison):
    rc, out, err, payload = comparison
    assert rc == 0, out + err
    assert f"all {len(payload['records'])} results agree with the float64 reference" in out
    assert payload["passed"] is True
    assert sorted(payload["frameworks"]) == sorted(COMPARE_FRAMEWORKS)
    assert payload["machine"]["cpu_count"] >= 1
    records = payload["records"]
    expected = {(op, fw, dt) for op in compare.OPERATIONS for fw in COMPARE_FRAMEWORKS
                for dt in ("float32", "float64")}
    assert {(r["operation"], r["framework"], r["dtype"]) for r in records} >= expected
    for r in records:
        assert r["passed"] and r["error"] is None, r
        assert r["size"] == 16 and (r["device"] == "cpu" or r["device"].startswith(("cuda", "gpu")))
        assert math.isfinite(r["max_abs"]) and math.isfinite(r["max_rel"]) and _positive(r["ms"])
        assert r["max_rel"] <= (1e-10 if r["dtype"] == "float64" else 1e-4)
        if r["dtype"] == "float32":  # float32 arithmetic really happened: not a float64 result
            assert r["max_abs"] > 0
    header = out.splitlines()[0]
    for column in ("operation", "framework", "device", "dtype", "max abs diff", "max rel diff", "ms"):
        assert column in header


def test_compare_references_are_independent_of_ssdops():
    """The Perona-Malik reference is a separate NumPy implementation; it agrees with ssdops in float64."""
    import ssdops

    data = compare._data(12, 3)
    ref = compare.reference("perona_malik", data)
    for generic in (True, False):  # the generic code, then the NumPy kernel: each against the reference
        with ssdops.backends.use_generic(generic):
            assert ssdops.backends.is_generic() is generic
            assert (ssdops.backends.lookup("perona_malik_step", np) is None) is generic
            ours = ssdops.perona_malik(data["u"], **compare.PAPER_PM_ARGS)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-14)
    assert not np.allclose(ref, data["u"])  # it did diffuse


def test_compare_fails_when_a_result_drifts(monkeypatch):
    import ssdops

    original = compare._function

    def drifting(name):
        if name == "ssd_apply":
            return lambda d, u: (ssdops.SSD(d) @ u) * (1.0 + 1e-8)
        return original(name)

    monkeypatch.setattr(compare, "_function", drifting)
    rc, out, _ = _main(["compare", "--size", "8", "--frameworks", "numpy", "--ops", "ssd_apply,heat_dirichlet"])
    assert rc == 1
    assert "FAILED: 1 of 4 results" in out
    assert "ssd_apply numpy cpu float64: max rel diff 1e-08" in out


# --- entry points ----------------------------------------------------------------------------------
def test_help():
    for argv in (["--help"], ["bench", "--help"], ["compare", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            _main(argv)
        assert exit_info.value.code == 0
    run = subprocess.run([sys.executable, "-m", "ssdops", "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "bench" in run.stdout and "compare" in run.stdout
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_ops.py"), "--help"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "--quick" in run.stdout and "--max-bytes" in run.stdout
    if shutil.which("ssdops"):
        run = subprocess.run(["ssdops", "compare", "--help"], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and "--size" in run.stdout


def test_no_command_prints_help():
    rc, out, _ = _main([])
    assert rc == 2 and "bench" in out


def test_bench_ops_script_quick():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_ops.py"), "--quick", "--backends", "numpy",
         "--ops", "ssd_apply,perona_malik_step", "--json", "-"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert run.returncode == 0, run.stderr
    payload = json.loads(run.stdout)  # JSON on stdout, the table on stderr
    assert "GB/s" in run.stderr
    records = payload["records"]
    assert {r["op"] for r in records} == {"ssd_apply", "perona_malik_step"}
    assert len(records) == len(benchmark.QUICK["sizes"]) * len(benchmark.QUICK["batch"]) * 2
    assert all(_positive(r["ms"]) and _positive(r["gbps"]) for r in records)
