"""ssdops.diffnet.data and ssdops.diffnet.runs: shapes, dtypes, normalisation, determinism, tasks, run files."""
import csv
import json
import math
import os

import numpy as np
import pytest

import ssdops
from ssdops.diffnet import data as D
from ssdops.diffnet import runs as R


def test_disks_shape_dtype_determinism():
    a = D.disks(6, 32, seed=3)
    b = D.disks(6, 32, seed=3)
    c = D.disks(6, 32, seed=4)
    assert a.shape == (6, 32, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() == 0.0 and 0.1 <= a.max() <= 1.0
    # every image holds a disk (non-zero pixels) and the corners stay background
    assert (a.reshape(6, -1).max(axis=1) > 0).all()
    assert (a[:, 0, 0] == 0).all()


def test_natural_patches_normalised_and_deterministic():
    a = D.natural_patches(5, 40, seed=0)
    b = D.natural_patches(5, 40, seed=0)
    assert a.shape == (5, 40, 40) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a.max(axis=(1, 2)), np.ones(5, np.float32))
    assert a.min() >= 0.0
    assert not np.array_equal(a, D.natural_patches(5, 40, seed=1))


def test_natural_patches_exclude():
    p = D.natural_patches(3, 16, seed=0, sources=("camera", "moon"), exclude=("camera",))
    assert p.shape == (3, 16, 16)
    with pytest.raises(ValueError):
        D.natural_patches(1, 16, seed=0, sources=("camera",), exclude=("camera",))


def _write_stl(path, imgs_rgb):
    """imgs_rgb: (N, 96, 96, 3) uint8 row-major -> STL-10 layout (N, 3, 96, 96), column-major per channel."""
    arr = np.ascontiguousarray(imgs_rgb.transpose(0, 3, 2, 1))  # (N, 3, col, row)
    arr.tofile(path)


def test_stl10_reader(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(3, 96, 96, 3), dtype=np.uint8)
    rgb[0, 5, 7] = (255, 0, 0)  # a red pixel at row 5, column 7 (not symmetric: checks the transpose)
    _write_stl(tmp_path / "train_X.bin", rgb)
    x = D.stl10(tmp_path, "train")
    assert x.shape == (3, 96, 96) and x.dtype == np.float32
    expected = (rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])) / 255.0
    np.testing.assert_allclose(x, expected, atol=1e-6)
    assert abs(x[0, 5, 7] - 0.299) < 1e-6
    assert D.stl10(tmp_path / "train_X.bin", limit=2).shape == (2, 96, 96)
    # load_images crops the centre and divides by the max
    y = D.load_images("stl10", 2, size=64, path=tmp_path)
    assert y.shape == (2, 64, 64)
    np.testing.assert_allclose(y.max(axis=(1, 2)), 1.0, rtol=1e-6)


def test_stl10_missing_and_bad_size(tmp_path):
    with pytest.raises(FileNotFoundError, match="STL-10"):
        D.stl10(tmp_path, "test")
    (tmp_path / "train_X.bin").write_bytes(b"\0" * 100)
    with pytest.raises(ValueError):
        D.stl10(tmp_path)


def test_make_task_matches_ssdops():
    x = D.natural_patches(3, 24, seed=1)
    u = x.astype(np.float64)
    pm = ssdops.perona_malik(u, steps=4, dt=0.1, lam=0.2, bc="dirichlet", ghost_gamma=0.0)
    inp, tgt = D.make_task("pm-inverse", x)
    assert inp.shape == (3, 1, 24, 24) and inp.dtype == np.float32 and tgt.dtype == np.float32
    np.testing.assert_allclose(inp[:, 0], pm, atol=1e-6)
    np.testing.assert_array_equal(tgt[:, 0], x)
    inp, tgt = D.make_task("pm-forward", x)
    np.testing.assert_array_equal(inp[:, 0], x)
    np.testing.assert_allclose(tgt[:, 0], pm, atol=1e-6)
    d = D.disks(2, 32, seed=0)
    inp, tgt = D.make_task("deconvolution", d)
    np.testing.assert_allclose(inp[:, 0], ssdops.heat(d.astype(np.float64), 1.0, bc="neumann"), atol=1e-6)
    np.testing.assert_array_equal(tgt[:, 0], d)
    # noise on the input: ssdops.add_noise with the given seed
    inp_n, tgt_n = D.make_task("pm-inverse", x, noise=0.01, seed=5)
    np.testing.assert_allclose(inp_n[:, 0], ssdops.add_noise(pm, 0.01, rng=5), atol=1e-6)
    np.testing.assert_array_equal(tgt_n[:, 0], x)
    with pytest.raises(ValueError):
        D.make_task("nope", x)


def test_make_task_cache(tmp_path):
    x = D.disks(2, 16, seed=0)
    a = D.make_task("pm-inverse", x, noise=0.001, seed=1, cache_dir=tmp_path)
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].endswith(".npz")
    b = D.make_task("pm-inverse", x, noise=0.001, seed=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(a[0], b[0])
    D.make_task("pm-inverse", x, noise=0.001, seed=2, cache_dir=tmp_path)  # another key
    assert len(os.listdir(tmp_path)) == 2


def test_runs_utilities(tmp_path):
    assert R.lr_at(0, 10, 1e-2, 1e-4) == 1e-2
    assert math.isclose(R.lr_at(10, 10, 1e-2, 1e-4), 1e-4)
    log = R.MetricsLog(tmp_path)
    for e in (1, 2, 3):
        log.append(epoch=e, train_loss=1.0 / e, test_loss=2.0 / e, train_psnr=10.0, test_psnr=11.0,
                   lr=1e-3, seconds=0.5)
    log2 = R.MetricsLog(tmp_path)
    assert [r["epoch"] for r in log2.rows] == [1, 2, 3]
    log2.truncate(2)
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(R.METRIC_COLUMNS) and len(rows) == 2
    R.write_summary(tmp_path, {"best_test_psnr": 30.0, "x": np.float32(1.5)})
    assert json.loads((tmp_path / "summary.json").read_text())["x"] == 1.5
    from ssdops.diffnet.config import RunConfig

    stored = RunConfig(epochs=3).to_dict()
    R.write_config(tmp_path, stored)
    assert R.read_config(tmp_path) == stored
    R.write_config(tmp_path, {"a": 1})
    with pytest.raises(R.RunDirectoryError, match="config.json: missing settings"):
        R.read_config(tmp_path)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    es = R.EarlyStopping(1)
    es.update(1.0)
    es2 = R.EarlyStopping(1)
    es2.load_state(json.loads(json.dumps(es.state())))
    es2.update(2.0)
    assert es2.should_stop and not R.EarlyStopping(None).should_stop
    rounds = R.EarlyStopping(4)     # evaluated every 2 epochs: patience still counts epochs
    assert [rounds.update(x, e, epochs=2) for x, e in ((3.0, 2), (3.5, 4))] == [True, False]
    assert not rounds.should_stop and not rounds.update(3.1, 6, epochs=2) and rounds.should_stop
    # a config.json from before lr_halve_every and eval_every: their former meaning
    old = {k: v for k, v in stored.items() if k not in ("lr_halve_every", "eval_every")}
    restored = RunConfig.from_stored(old, "old")
    assert restored.eval_every == 1 and restored.lr_halve_every is None
    assert R.mean_std_psnr([1.0, 3.0]) == (2.0, 1.0)
