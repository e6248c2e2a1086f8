"""PNG figures of a trained run (matplotlib, Agg backend).

- ``results.png``: input, output, target and |output - target| for a few test images;
- ``fft.png``: log10 |FFT| (centred) of the input and of each layer's output (paper Fig. 5);
- ``zeta.png``: the five filter images zeta_1..zeta_5 of every layer for one test image;
- ``smoothing.png``: the smoothing part sum(zeta_1..zeta_4) - zeta_5 per layer (paper Fig. 11).

The last three need a diffusion network (DiffNet; for the linear network the learned diagonals are shown
in place of zeta); the U-Net gets ``results.png`` only. A 3-D run (volumes) is shown by its central slice
along the first axis, with the seven maps zeta_1..zeta_7 (``ssdops.SEVEN_POINT`` order).
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["fft_figure", "results_figure", "run_figures", "smoothing_figure", "zeta_figure"]

#: The filter maps' names per grid dimension (FIVE_POINT / SEVEN_POINT order: -e1..-ed, +e1..+ed, centre).
ZETA_NAMES = {
    2: ("zeta1 up", "zeta2 left", "zeta3 down", "zeta4 right", "zeta5 centre"),
    3: ("zeta1 previous slice", "zeta2 up", "zeta3 left", "zeta4 next slice", "zeta5 down", "zeta6 right",
        "zeta7 centre"),
}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _np(a):
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def _show(ax, img, title, cmap="gray", **kw):
    im = ax.imshow(img, cmap=cmap, **kw)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def results_figure(inputs, outputs, targets, path, *, titles=("input", "output", "target", "|output - target|")):
    """Rows of (input, output, target, residual) images ``(N, H, W)``."""
    plt = _plt()
    from ssdops import psnr

    n = len(inputs)
    fig, axes = plt.subplots(n, 4, figsize=(10, 2.6 * n), squeeze=False)
    for i in range(n):
        p_in, p_out = float(psnr(inputs[i], targets[i])), float(psnr(outputs[i], targets[i]))
        _show(axes[i, 0], inputs[i], f"{titles[0]} ({p_in:.2f} dB)")
        _show(axes[i, 1], outputs[i], f"{titles[1]} ({p_out:.2f} dB)")
        _show(axes[i, 2], targets[i], titles[2])
        im = _show(axes[i, 3], np.abs(outputs[i] - targets[i]), titles[3], cmap="magma")
        fig.colorbar(im, ax=axes[i, 3], fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fft_figure(images, labels, path):
    """log10 |FFT| (centred) of each image ``(H, W)``."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(images), figsize=(2.4 * len(images), 2.6), squeeze=False)
    for ax, img, lab in zip(axes[0], images, labels):
        spec = np.log10(np.abs(np.fft.fftshift(np.fft.fft2(img))) + 1e-8)
        _show(ax, spec, lab, cmap="viridis", vmin=-3, vmax=spec.max())
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def zeta_figure(zetas, path, names=ZETA_NAMES[2]):
    """``zetas``: list over layers of ``(m, H, W)`` (m maps named ``names``); one row per layer, a symmetric
    colour scale per map."""
    plt = _plt()
    k, m = len(zetas), len(names)
    fig, axes = plt.subplots(k, m, figsize=(2.2 * m, 2.3 * k), squeeze=False)
    for i, z in enumerate(zetas):
        for j in range(m):
            v = float(np.abs(z[j]).max()) or 1.0
            im = _show(axes[i, j], z[j], f"layer {i + 1}: {names[j]}", cmap="RdBu_r", vmin=-v, vmax=v)
            fig.colorbar(im, ax=axes[i, j], fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def smoothing_figure(zetas, path):
    """The smoothing part ``sum(neighbour maps) - centre map`` per layer (row sums of W/dt): in 2-D
    ``sum(zeta_1..zeta_4) - zeta_5``."""
    plt = _plt()
    k = len(zetas)
    fig, axes = plt.subplots(1, k, figsize=(2.8 * k, 2.8), squeeze=False)
    for i, z in enumerate(zetas):
        s = z[:-1].sum(axis=0) - z[-1]
        v = float(np.abs(s).max()) or 1.0
        im = _show(axes[0, i], s, f"layer {i + 1}: mean|S| {np.abs(s).mean():.3g}", cmap="RdBu_r", vmin=-v, vmax=v)
        fig.colorbar(im, ax=axes[0, i], fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _central_slice(a):
    """The central slice ``(..., H, W)`` along the first grid axis of volumes ``(..., D, H, W)``: what the
    figures draw of a 3-D run."""
    return a[..., a.shape[-3] // 2, :, :]


def run_figures(run_dir, *, out=None, index=0, n_results=4, data_path=None):
    """Write the figures of a run directory (best weights, its test set); returns the PNG paths. A 3-D run
    is drawn by the central slice of each volume."""
    import torch

    from ssdops.diffnet import runs
    from ssdops.diffnet.config import RunConfig
    from ssdops.diffnet.data import load_data

    from .models import load_weights

    config = RunConfig.from_dict(runs.read_config(run_dir))
    if out is None:
        runs.check_run_files(run_dir)   # RUN/figures a link would write outside the run
    if data_path is not None:
        config = config.replace(data_path=data_path)
    config = config.replace(test_size=max(min(config.test_size, max(n_results, index + 1)), 1))
    x, y = load_data(config, "test")
    model = load_weights(os.path.join(run_dir, runs.WEIGHTS_FILE))
    ndim = x.ndim - 2
    image = _central_slice if ndim == 3 else np.asarray   # what is drawn of an (..., *grid) array
    out = out or os.path.join(run_dir, "figures")
    os.makedirs(out, exist_ok=True)
    paths = []
    with torch.no_grad():
        xt = torch.from_numpy(x[:n_results])
        pred = model(xt).numpy()
        paths.append(results_figure(image(x[:n_results, 0]), image(pred[:, 0]), image(y[:n_results, 0]),
                                    os.path.join(out, "results.png")))
        if hasattr(model, "trace"):
            recs = model.trace(torch.from_numpy(x[index : index + 1]))
            imgs = [image(x[index, 0])] + [image(_np(r["output"])[0, 0]) for r in recs] + [image(y[index, 0])]
            labels = ["input"] + [f"F{k + 1}" for k in range(len(recs))] + ["target"]
            paths.append(fft_figure(imgs, labels, os.path.join(out, "fft.png")))
            key = "zeta" if "zeta" in recs[0] else "diagonals"
            zetas = [image(_np(r[key])[0] if key == "zeta" else _np(r[key])) for r in recs]
            if key == "diagonals":  # L_dt(gamma) diagonals: centre is -sum gamma; show in zeta convention
                zetas = [np.concatenate([z[:-1], -z[-1:]]) for z in zetas]
            paths.append(zeta_figure(zetas, os.path.join(out, "zeta.png"), ZETA_NAMES[ndim]))
            paths.append(smoothing_figure(zetas, os.path.join(out, "smoothing.png")))
    return paths
