"""The shipped DiffNet weights give, on newly drawn data, the PSNR that benchmarks/RESULTS.md states (issue 22:
within 0.5 dB), measured by ``benchmarks/ship_weights.py``'s own evaluation."""
from __future__ import annotations

import hashlib
import json
import os
import re

import pytest

from support import load_benchmark

pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _stated(name):
    """The figure of RESULTS.md's line "shipped ``name`` weights: X dB mean PSNR on N newly drawn ..."."""
    with open(os.path.join(ROOT, "benchmarks", "RESULTS.md"), encoding="utf-8") as f:
        text = f.read()
    pattern = rf"shipped\s+`{name}`\s+weights:\s+(\d+\.\d+)\s+dB\s+mean\s+PSNR\s+on\s+(\d+)\s+newly\s+drawn"
    found = re.findall(pattern, text)
    assert len(found) == 1, f"RESULTS.md states the shipped {name} weights' PSNR once: {found}"
    return float(found[0][0]), int(found[0][1])


def test_shipped_deconvolution_weights_give_the_stated_psnr():
    ship = load_benchmark("ship_weights")
    name = ship.SHIPPED["deconvolution"][0]
    assert os.path.isfile(os.path.join(ship.WEIGHTS_DIR, f"{name}.safetensors"))
    stated, count = _stated(name)
    measured = ship.shipped_psnr("deconvolution", count=count)
    assert abs(measured - stated) <= 0.5, (measured, stated)


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.mark.parametrize("which", ["deconvolution", "pm-inverse"])
def test_shipped_weights_are_the_best_weights_of_their_source_run(which):
    """A run that finished after the last ``ship_weights.py`` (a larger finished 1 % noise study run, or a
    retrained deconvolution) fails here until its weights are shipped: the package never lags its evidence."""
    from ssdops.diffnet.runs import WEIGHTS_FILE

    ship = load_benchmark("ship_weights")
    name, run_dir = ship.source_run(which)
    shipped = os.path.join(ship.WEIGHTS_DIR, f"{name}.safetensors")
    assert _digest(shipped) == _digest(os.path.join(run_dir, WEIGHTS_FILE)), (shipped, run_dir)


def test_the_source_of_the_pm_inverse_weights_is_the_largest_finished_run(tmp_path):
    ship = load_benchmark("ship_weights")
    for name, stopped in [("diffnet_n100_noise0.01", "epochs"), ("diffnet_n1000_noise0.01", "early_stopping"),
                          ("diffnet_n10000_noise0.01", "time_budget"), ("diffnet_n10000_noise0", "epochs"),
                          ("unet_n10000_noise0.01", "epochs")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({"stopped": stopped}))
    assert ship.largest_finished_study_run(study_dir=str(tmp_path)) == str(tmp_path / "diffnet_n1000_noise0.01")
    with pytest.raises(FileNotFoundError, match="no finished diffnet run at noise 0.01"):
        ship.largest_finished_study_run(study_dir=str(tmp_path / "diffnet_n100_noise0.01"))


def test_the_demo_shows_diffnet_ahead_of_tikhonov(tmp_path):
    """``diffnet-torch demo`` (camera 256², held out of training, Perona-Malik forward model, 1 % noise): the
    shipped ``natural_pm_inverse`` weights beat the linearised Tikhonov baseline (issue 22, item 3)."""
    from diffnet_torch.demo import demo

    scores = demo(out=str(tmp_path), log=lambda *a: None)
    diffnet = next(v for k, v in scores.items() if k.startswith("DiffNet"))
    tikhonov = next(v for k, v in scores.items() if k.startswith("linearised Tikhonov"))
    data = next(v for k, v in scores.items() if k.startswith("data"))
    assert diffnet > tikhonov > data, scores
