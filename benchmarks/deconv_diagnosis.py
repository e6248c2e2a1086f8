"""Why does the disks deconvolution run (paper section 5.1) stay far below the paper's 86.24 dB?

    python benchmarks/deconv_diagnosis.py --run benchmarks/runs/disks_deconvolution

Reads the run's ``config.json``, ``metrics.csv`` and ``weights.safetensors`` (or ``--checkpoint``: the latest
epoch's model from ``checkpoint.safetensors``; both files are replaced atomically by the training, so reading
them while it runs is safe), redraws the run's test set and prints a table of findings:

(a) float32 rounding: the model in float32 and in float64, and the float32 resolution of the targets;
(b) per-image PSNR spread and the PSNR conventions (per-image range vs the authors' batch PSNR);
(c) the final ReLU and where the error sits (disk edges, interior, background, image border);
(d) the data: radii, contrast, the blur's conditioning and what the exact inverse reaches from float32 input;
(e) the schedule: slope of test PSNR per epoch against the learning rate, extrapolated to the last epoch.

Writes nothing; one thread; about a minute. Not imported by the tests.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os

import numpy as np
import scipy.fft as sfft
import torch

import ssdops
from diffnet_torch.models import build_model, load_state_tensors, load_weights
from ssdops.diffnet import format as weight_files
from ssdops.diffnet.data import load_run_test_set
from ssdops.diffnet.runs import lr_at


def _row(name, value, note=""):
    print(f"{name:<58} {value:>16}  {note}")


def _psnr_images(out, target):
    """Per-image PSNR (ssdops' convention: range max - min of each target) in float64."""
    return np.asarray(ssdops.psnr(out[:, 0].astype(np.float64), target[:, 0].astype(np.float64)))


def _forward(model, x, dtype):
    """``(pre-ReLU output, output)`` of ``model`` on ``x`` in ``dtype``, NumPy float64."""
    net = model.to(dtype)
    with torch.no_grad():
        u = torch.from_numpy(x).to(dtype)
        for layer in net.layers:
            u = layer(u)
        pre = u.double().numpy()
    post = np.maximum(pre, 0.0) if net.final_relu else pre
    return pre, post


def _neumann_eigen(n, T):
    """Multipliers of ``exp(T L)`` (5-point Neumann Laplacian) in the 2-D DCT-II basis of an ``n x n`` image."""
    lam = 4.0 * np.sin(np.pi * np.arange(n) / (2 * n)) ** 2
    return np.exp(-T * (lam[:, None] + lam[None, :]))


def load_model(run, checkpoint):
    if not checkpoint:
        return load_weights(os.path.join(run, "weights.safetensors")), "weights.safetensors (best test loss)"
    tensors, metadata, state = weight_files.read_checkpoint(os.path.join(run, "checkpoint.safetensors"))
    config = json.loads(metadata["config"])
    model = build_model(config)
    own = model.state_dict()
    load_state_tensors(model, {k: v for k, v in tensors.items() if k in own})
    return model.eval(), f"checkpoint.safetensors (epoch {state['epoch']})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="benchmarks/runs/disks_deconvolution", help="the run directory")
    parser.add_argument("--checkpoint", action="store_true", help="the latest checkpoint instead of the best weights")
    parser.add_argument("--window", type=int, default=100, help="epochs of metrics.csv for the slope fit")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    with open(os.path.join(args.run, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    model, source = load_model(args.run, args.checkpoint)
    x, y = load_run_test_set(args.run)
    print(f"run {args.run}: model from {source}; test set {x.shape} {x.dtype}")
    print("-" * 110)

    # (a) float32 vs float64 -------------------------------------------------------------------------
    pre32, out32 = _forward(model, x, torch.float32)
    pre64, out64 = _forward(model, x.astype(np.float64), torch.float64)
    p32, p64 = _psnr_images(out32, y), _psnr_images(out64, y)
    _row("(a) mean per-image test PSNR, model+data float32", f"{p32.mean():.3f} dB")
    _row("(a) mean per-image test PSNR, model+data float64", f"{p64.mean():.3f} dB")
    # PSNR of the float32 output against the float64 output, on the targets' ranges: the rounding alone
    rng_y = y.max(axis=(1, 2, 3)) - y.min(axis=(1, 2, 3))
    mse_rnd = ((out32 - out64) ** 2).mean(axis=(1, 2, 3))
    _row("(a) float32-vs-float64 output difference, PSNR (range of y)",
         f"{np.mean(10 * np.log10(rng_y ** 2 / np.maximum(mse_rnd, 1e-300))):.1f} dB",
         "rounding of the forward pass alone")
    ulp = np.spacing(np.float32(1.0)) / 2
    _row("(a) float32 half-ulp at 1.0 / its PSNR (uniform rounding)", f"{ulp:.2e}",
         f"{10 * np.log10(1 / (ulp ** 2 / 3)):.1f} dB if every pixel were rounded")
    mse86 = 10 ** (-86.24 / 10)
    _row("(a) MSE of 86.24 dB at range 1 / float32 eps * MSE", f"{mse86:.2e}",
         f"representable to {np.spacing(np.float32(mse86)) / mse86:.1e} relative: the loss resolves it")

    # (b) distribution and conventions ---------------------------------------------------------------
    q = np.percentile(p32, [0, 10, 50, 90, 100])
    _row("(b) per-image PSNR min / p10 / median / p90 / max", " / ".join(f"{v:.1f}" for v in q))
    _row("(b) per-image PSNR std", f"{p32.std():.2f} dB")
    mse_i = ((out32 - y) ** 2).mean(axis=(1, 2, 3))
    worst = np.argsort(mse_i)[::-1]
    share = mse_i[worst[:13]].sum() / mse_i.sum()
    _row("(b) share of test MSE in the worst 10 % of images", f"{100 * share:.1f} %")
    contrast = rng_y
    _row("(b) corr(per-image PSNR, log contrast)", f"{np.corrcoef(p32, np.log(contrast))[0, 1]:+.2f}")
    _row("(b) corr(per-image log MSE, log contrast)", f"{np.corrcoef(np.log(mse_i), np.log(contrast))[0, 1]:+.2f}")
    _row("(b) PSNR of the mean MSE, range 1 (= 10 log10 1/test_loss)", f"{10 * np.log10(1 / mse_i.mean()):.2f} dB")
    batch = [10 * np.log10((y[i:i + 16].max() - y[i:i + 16].min()) ** 2 / mse_i[i:i + 16].mean())
             for i in range(0, len(y), 16)]
    _row("(b) authors' batch PSNR (batch range, batch MSE), mean of 8", f"{np.mean(batch):.2f} dB",
         "paper-notes: 20log10(max-min) - 10log10(mse) over a batch")
    rel = np.linalg.norm((out32 - y).reshape(len(y), -1), axis=1) / np.linalg.norm(y.reshape(len(y), -1), axis=1)
    _row("(b) relative l2 error, mean over images (paper: 2.5e-4)", f"{rel.mean():.2e}")

    # (c) final ReLU and where the error is ------------------------------------------------------------
    t = y[:, 0]
    clipped = (pre32[:, 0] < 0) & (t > 0)
    _row("(c) pixels with pre-ReLU output < 0 while target > 0", f"{100 * clipped.mean():.4f} %")
    neg_bg = (pre32[:, 0] < 0) & (t == 0)
    _row("(c) background pixels the ReLU cuts (pre-ReLU < 0)", f"{100 * neg_bg.sum() / (t == 0).sum():.1f} %",
         "where the ReLU helps")
    mse_pre = ((pre32 - y) ** 2).mean()
    _row("(c) min pre-ReLU output (background undershoot)", f"{pre32.min():.3f}")
    _row("(c) test MSE before / after the ReLU", f"{mse_pre:.2e} / {((out32 - y) ** 2).mean():.2e}")
    err2 = (out32[:, 0] - t) ** 2
    pad = np.pad(t, ((0, 0), (1, 1), (1, 1)), mode="edge")
    edge = ((pad[:, 1:-1, 1:-1] != pad[:, :-2, 1:-1]) | (pad[:, 1:-1, 1:-1] != pad[:, 2:, 1:-1])
            | (pad[:, 1:-1, 1:-1] != pad[:, 1:-1, :-2]) | (pad[:, 1:-1, 1:-1] != pad[:, 1:-1, 2:]))
    border = np.zeros(t.shape[1:], bool)
    border[:2, :] = border[-2:, :] = border[:, :2] = border[:, -2:] = True
    border = np.broadcast_to(border, t.shape)
    regions = {"disk edge (target differs from a 4-neighbour)": edge,
               "disk interior": (t > 0) & ~edge,
               "background, not edge, not border": (t == 0) & ~edge & ~border,
               "image border (2 px), not edge": border & ~edge}
    for name, mask in regions.items():
        _row(f"(c) {name}", f"{100 * err2[mask].sum() / err2.sum():.1f} % err",
             f"{100 * mask.mean():.1f} % of pixels, rms {np.sqrt(err2[mask].mean()):.1e}")
    # the error against the distance to the disk edge, per image relative to its contrast
    far = np.abs(out32[:, 0] - t)[~edge & (t > 0)]
    _row("(c) mean |error| on edges / interior / background", "", f"{np.abs(out32[:, 0] - t)[edge].mean():.1e} / "
         f"{far.mean():.1e} / {np.abs(out32[:, 0] - t)[(t == 0) & ~edge].mean():.1e}")

    # (d) data and the blur's conditioning -----------------------------------------------------------------
    n = t.shape[-1]
    r_est = np.sqrt((t > 0).sum(axis=(1, 2)) / np.pi)
    _row("(d) disk radius (from area) min / median / max [px]", f"{r_est.min():.1f}/{np.median(r_est):.1f}/"
         f"{r_est.max():.1f}", "generator: U(3, 0.3*64=19.2), one disk, contrast U(0.1, 1)")
    _row("(d) contrast min / max; input noise", f"{contrast.min():.2f}/{contrast.max():.2f}",
         f"noise {config['noise']} (paper: none)")
    eig = _neumann_eigen(n, 1.0)
    fwd = sfft.idctn(eig * sfft.dctn(t.astype(np.float64), axes=(1, 2), norm="ortho"), axes=(1, 2), norm="ortho")
    _row("(d) our DCT model of heat(T=1) vs the run's input (max abs)", f"{np.abs(fwd - x[:, 0]).max():.1e}",
         "float32 cast of the input ~ 3e-8")
    _row("(d) blur multiplier min / condition number", f"{eig.min():.2e}", f"cond {eig.max() / eig.min():.0f}")
    inv = sfft.idctn(sfft.dctn(x[:, 0].astype(np.float64), axes=(1, 2), norm="ortho") / eig, axes=(1, 2),
                     norm="ortho")
    p_inv = _psnr_images(inv[:, None], y)
    _row("(d) exact inverse of the float32 input, mean PSNR", f"{p_inv.mean():.1f} dB", "ceiling set by input rounding")
    p_inv_relu = _psnr_images(np.maximum(inv, 0)[:, None], y)
    _row("(d) exact inverse + ReLU, mean PSNR", f"{p_inv_relu.mean():.1f} dB")
    _row("(d) exact inverse, PSNR of mean MSE (range 1)",
         f"{10 * np.log10(1 / ((inv - t) ** 2).mean()):.1f} dB")

    # (e) schedule -----------------------------------------------------------------------------------------
    with open(os.path.join(args.run, "metrics.csv"), encoding="utf-8") as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    ep = np.array([r["epoch"] for r in rows])
    ps = np.array([r["test_psnr"] for r in rows])
    lr = np.array([r["lr"] for r in rows])
    last = int(ep[-1])
    w = ep > last - args.window
    slope, _ = np.polyfit(ep[w], ps[w], 1)
    epochs = config["epochs"]
    steps = math.ceil(config["train_size"] / config["batch_size"])
    lr_rest = np.array([lr_at(e * steps, epochs * steps, config["lr"], config["lr_final"],
                                       halve_every=config.get("lr_halve_every"))
                        for e in range(last + 1, epochs + 1)])
    k = slope / lr[w].mean()
    _row(f"(e) epoch {last}: test PSNR (mean of last 10) / lr", f"{ps[-10:].mean():.2f} dB", f"lr {lr[-1]:.2e}")
    _row(f"(e) slope over the last {args.window} epochs", f"{slope * 100:.3f} dB/100 ep",
         f"= {k:.3g} dB per unit of summed lr")
    _row(f"(e) extrapolation to epoch {epochs}, gain proportional to lr",
         f"{ps[-10:].mean() + k * lr_rest.sum():.2f} dB",
         "slope scales with lr")
    _row(f"(e) extrapolation to epoch {epochs}, constant slope", f"{ps[-10:].mean() + slope * (epochs - last):.2f} dB",
         "upper: slope kept")
    for lo in range(100, last + 1, 100):
        m = (ep > lo - 100) & (ep <= lo)
        s = np.polyfit(ep[m], ps[m], 1)[0]
        _row(f"(e)   epochs {lo - 99}-{lo}: slope / mean lr / slope per lr", f"{s * 100:.2f} dB/100",
             f"lr {lr[m].mean():.2e}, {s / lr[m].mean():.0f} dB per unit lr")


if __name__ == "__main__":
    main()
