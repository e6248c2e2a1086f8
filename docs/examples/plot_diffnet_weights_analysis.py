r"""
What the shipped DiffNet learned: W = L + S
===========================================

A DiffNet layer (paper Fig. 2) estimates five filter images :math:`\zeta_1, \dots, \zeta_5` from its
input and applies the SSD operator (paper eq. 4.7)

.. math::

   W_{\delta t}(\zeta) = \delta t \begin{bmatrix} & \zeta_1 & \\ \zeta_2 & -\zeta_5 & \zeta_4 \\
   & \zeta_3 & \end{bmatrix}, \qquad F_k = F_{k-1} + W_{\delta t}(\zeta^{(k)}) F_{k-1}.

Section 6.2 of the paper splits it as :math:`W = L + S` (:func:`ssdops.split_zero_mean`): :math:`L` has
zero row sums (it moves intensity between neighbours, a diffusion), :math:`S = \mathrm{diag}(W\mathbf 1)`
changes the local mean: :math:`\delta t\,(\zeta_1 + \zeta_2 + \zeta_3 + \zeta_4 - \zeta_5)`, the
"smoothing part" of paper Fig. 11. This example runs the shipped weights
(``diffnet_torch/weights/natural_pm_inverse.safetensors``, trained to invert the authors' Perona-Malik
forward model with 1 % noise) on one held-out photograph and shows, per layer, the filters, the smoothing
part and the Fourier magnitude of the layer's output (paper Fig. 5).
"""
import matplotlib.pyplot as plt
import numpy as np
import torch

import ssdops
from diffnet_torch import load_weights
from diffnet_torch.demo import SHIPPED_WEIGHTS, camera
from ssdops.diffnet.data import PAPER_PM_ARGS

model = load_weights(SHIPPED_WEIGHTS)
print(model.config)
x = camera(96)
y = ssdops.add_noise(ssdops.perona_malik(x, **PAPER_PM_ARGS), 0.01, rng=0)
with torch.no_grad():
    records = model.trace(torch.from_numpy(y.astype(np.float32))[None, None])

names = (r"$\zeta_1$ up", r"$\zeta_2$ left", r"$\zeta_3$ down", r"$\zeta_4$ right", r"$\zeta_5$ centre")
fig, axes = plt.subplots(len(records), 7, figsize=(15, 2.2 * len(records)), layout="constrained")
for k, (row, record) in enumerate(zip(axes, records)):
    zeta, dt = record["zeta"][0].double().numpy(), float(record["dt"].detach())
    W = ssdops.ssd_from_filters(zeta, dt)
    L, S = ssdops.split_zero_mean(W)
    assert np.allclose(ssdops.row_sums(L), 0.0)
    scale = np.abs(zeta).max()
    for ax, z, name in zip(row[:5], zeta, names):
        ax.imshow(z, cmap="RdBu_r", vmin=-scale, vmax=scale)
        ax.set_title(f"layer {k + 1}: {name}" if ax is row[0] else name, fontsize=8)
    smoothing = S.diagonal((0, 0))
    limit = np.abs(smoothing).max()
    row[5].imshow(smoothing, cmap="PuOr", vmin=-limit, vmax=limit)
    row[5].set_title(f"S = diag(W 1), alpha = {float(ssdops.smoothing_level(W)):.2e}", fontsize=8)
    spectrum = np.log10(np.abs(np.fft.fftshift(np.fft.fft2(record["output"][0, 0].double().numpy()))) + 1e-8)
    row[6].imshow(spectrum, cmap="viridis", vmin=-3)
    row[6].set_title(f"log10 |FFT| of output, dt = {dt:.3f}", fontsize=8)
    for ax in row:
        ax.set_xticks([])
        ax.set_yticks([])

# %%
# The smoothing level :math:`\alpha = \mathrm{mean}|W\mathbf 1|` (:func:`ssdops.smoothing_level`) per
# layer, and what the network does to the image: input, output and target.
with torch.no_grad():
    output = model(torch.from_numpy(y.astype(np.float32))[None, None])[0, 0].double().numpy()
fig, axes = plt.subplots(1, 3, figsize=(9, 3.3), layout="constrained")
for ax, image, title in zip(axes, (y, output, x), (f"input {ssdops.psnr(y, x):.2f} dB",
                                                    f"DiffNet output {ssdops.psnr(output, x):.2f} dB", "target")):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()
