"""One-minute demo: undo Perona-Malik diffusion of a photograph with the shipped DiffNet weights.

1. The scikit-image ``camera`` photograph (shipped in the wheel, no download), resized to ``size x size``
   and divided by its maximum. It was held out of the training patches (``--exclude camera``).
2. The authors' forward model: ``ssdops.perona_malik(u, steps=4, dt=0.1, lam=0.2, bc="dirichlet",
   ghost_gamma=0.0)``, then 1 % Gaussian noise (``ssdops.add_noise``, std 0.01 max|y|).
3. Inversions, each scored by PSNR against the photograph:

   - the data themselves (no inversion);
   - **linearised Tikhonov**: the Perona-Malik map linearised at the data, ``A = (I + dt L(gamma(y_s)))^4``
     with the diffusivity of the lightly smoothed data ``y_s`` (``ssdops.divergence_form``, the same
     boundary convention), inverted by ``min |A x - y|^2 + alpha |grad x|^2`` (conjugate gradients on the
     normal equations); ``alpha`` chosen by the discrepancy principle from the known noise level (no
     ground truth used);
   - **DiffNet** with the shipped weights ``diffnet_torch/weights/natural_pm_inverse.safetensors``
     (5 layers, K = 4, 101,310 parameters; trained on CPU on natural patches, see
     ``benchmarks/RESULTS.md``).

Writes ``demo.png`` (images, residuals) and prints the PSNR table.
"""
from __future__ import annotations

import os
import time

import numpy as np

import ssdops
from ssdops.diffnet.data import PAPER_PM_ARGS

__all__ = ["SHIPPED_WEIGHTS", "camera", "demo", "tikhonov_pm_inverse"]

SHIPPED_WEIGHTS = os.path.join(os.path.dirname(__file__), "weights", "natural_pm_inverse.safetensors")


def camera(size=256):
    """skimage's camera photograph, area-resized to ``size x size``, float64 divided by its max."""
    import skimage.data
    from skimage.transform import resize

    img = skimage.data.camera().astype(np.float64) / 255.0
    if size != img.shape[0]:
        img = resize(img, (size, size), anti_aliasing=True, preserve_range=True)
    return img / img.max()


def _backward_grad2(u):
    """|grad u|^2 from backward differences against zero ghosts (the generator's convention)."""
    up = np.zeros_like(u)
    up[1:] = u[:-1]
    left = np.zeros_like(u)
    left[:, 1:] = u[:, :-1]
    return (u - up) ** 2 + (u - left) ** 2


def tikhonov_pm_inverse(y, noise_std, *, alphas=None, smooth=1.0, pm_args=PAPER_PM_ARGS, maxiter=100):
    """Linearised Tikhonov inversion of the Perona-Malik forward model; returns ``(x, alpha, table)``.

    ``A = (I + dt L(gamma))^steps`` with ``gamma = g(|grad y_s|^2, lam)`` frozen at the data smoothed by a
    Gaussian of std ``smooth`` (A is symmetric). For each ``alpha`` solves
    ``(A^2 + alpha G^T G) x = A y`` (G: forward differences, Neumann) by conjugate gradients and picks
    the alpha whose residual ``|A x - y|`` is closest to the expected noise norm ``noise_std sqrt(n)``
    (Morozov's discrepancy principle).
    """
    import scipy.sparse as sp
    from scipy.ndimage import gaussian_filter
    from scipy.sparse.linalg import cg

    ys = gaussian_filter(y, smooth) if smooth else y
    gamma = ssdops.diffusivity.perona_malik(_backward_grad2(ys), pm_args["lam"])
    L = ssdops.to_scipy(ssdops.divergence_form(gamma, bc=pm_args["bc"], ghost_gamma=pm_args["ghost_gamma"]))
    n = y.size
    step = sp.identity(n, format="csr") + pm_args["dt"] * L
    A = sp.identity(n, format="csr")
    for _ in range(pm_args["steps"]):
        A = step @ A
    GtG = -ssdops.to_scipy(ssdops.laplacian(y.shape, bc="neumann"))
    AtA, Aty = (A.T @ A).tocsr(), A.T @ y.ravel()
    target = noise_std * np.sqrt(n)
    alphas = alphas if alphas is not None else np.logspace(-3, -0.5, 6)
    table = []
    x0 = y.ravel().copy()
    for a in alphas:
        x, _ = cg(AtA + a * GtG, Aty, x0=x0, rtol=1e-6, maxiter=maxiter)
        table.append((float(a), float(np.linalg.norm(A @ x - y.ravel())), x.reshape(y.shape)))
    best = min(table, key=lambda t: abs(t[1] - target))
    return best[2], best[0], table


def demo(out="diffnet-demo", size=256, noise=0.01, weights=None, seed=0, log=print):
    """Run the demo; returns ``{method: psnr}`` and writes ``out/demo.png``."""
    import torch

    from .figures import _plt
    from .models import load_weights

    t0 = time.perf_counter()
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    x = camera(size)
    clean = ssdops.perona_malik(x, **PAPER_PM_ARGS)
    y = ssdops.add_noise(clean, noise, rng=seed) if noise else clean
    noise_std = noise * float(np.abs(clean).max())

    label = "DiffNet (shipped weights)" if weights is None else f"DiffNet ({os.fspath(weights)})"
    model = load_weights(weights or SHIPPED_WEIGHTS)
    with torch.no_grad():
        diffnet = model(torch.from_numpy(y.astype(np.float32))[None, None]).double().numpy()[0, 0]
    t_net = time.perf_counter()
    tik, alpha, _ = tikhonov_pm_inverse(y, max(noise_std, 1e-4))
    t_tik = time.perf_counter()

    results = {
        "data (no inversion)": y,
        f"linearised Tikhonov (alpha={alpha:.1e}, discrepancy)": tik,
        label: diffnet,
    }
    scores = {k: float(ssdops.psnr(v, x)) for k, v in results.items()}
    log(f"camera {size}x{size}, Perona-Malik forward model (4 steps, dt 0.1, lambda 0.2, Dirichlet), "
        f"noise {100 * noise:g} %")
    log(f"{'method':<48} {'PSNR [dB]':>9}")
    for k, v in scores.items():
        log(f"{k:<48} {v:9.2f}")
    log(f"(DiffNet {t_net - t0:.1f} s incl. data, Tikhonov {t_tik - t_net:.1f} s)")

    os.makedirs(out, exist_ok=True)
    plt = _plt()
    names = ["ground truth"] + list(results)
    imgs = [x] + list(results.values())
    fig, axes = plt.subplots(2, len(imgs), figsize=(3.2 * len(imgs), 6.6))
    for j, (name, img) in enumerate(zip(names, imgs)):
        title = name if j == 0 else f"{name}\n{scores[name]:.2f} dB"
        axes[0, j].imshow(img, cmap="gray", vmin=0, vmax=1)
        axes[0, j].set_title(title, fontsize=8)
        axes[1, j].imshow(np.abs(img - x), cmap="magma", vmin=0, vmax=0.1)
        axes[1, j].set_title("|error| (0..0.1)", fontsize=8)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    path = os.path.join(out, "demo.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    log(f"wrote {path}")
    return scores
