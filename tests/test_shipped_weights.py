"""The shipped DiffNet weights give, on newly drawn data, the PSNR that benchmarks/RESULTS.md states (issue 22:
within 0.5 dB), measured by ``benchmarks/ship_weights.py``'s own evaluation."""
from __future__ import annotations

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


def test_the_demo_shows_diffnet_ahead_of_tikhonov(tmp_path):
    """``diffnet-torch demo`` (camera 256², held out of training, Perona-Malik forward model, 1 % noise): the
    shipped ``natural_pm_inverse`` weights beat the linearised Tikhonov baseline (issue 22, item 3)."""
    from diffnet_torch.demo import demo

    scores = demo(out=str(tmp_path), log=lambda *a: None)
    diffnet = next(v for k, v in scores.items() if k.startswith("DiffNet"))
    tikhonov = next(v for k, v in scores.items() if k.startswith("linearised Tikhonov"))
    data = next(v for k, v in scores.items() if k.startswith("data"))
    assert diffnet > tikhonov > data, scores
