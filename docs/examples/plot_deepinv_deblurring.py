r"""
Deblurring with deepinv: a TV-regularised optimiser and the DiffNet reconstructor
=================================================================================

Two inverse problems of the paper, posed as deepinv physics and solved with deepinv's tools:

- **heat deblurring** (section 5.1): :func:`ssdops.heat_physics` (the exact heat equation, :math:`T = 1`) with
  1 % Gaussian noise, inverted by deepinv's Douglas-Rachford splitting (:class:`deepinv.optim.DRS`) with an
  :math:`\ell_2` data fidelity, whose proximal operator is the exact spectral solve of ``heat_physics``, and a
  total-variation prior;
- **Perona-Malik inversion** (section 5.2): :func:`ssdops.perona_malik_physics` (the authors' generator) with
  1 % noise, inverted by the shipped DiffNet weights as a deepinv reconstructor
  (:func:`diffnet_torch.as_deepinv`).

Each is scored by deepinv's :class:`deepinv.metric.PSNR`. deepinv is imported through
:func:`ssdops.interop._deepinv.import_deepinv`, which lets it import with the CPU wheel of PyTorch.
"""
import warnings

import matplotlib.pyplot as plt
import torch

import diffnet_torch
import ssdops
from diffnet_torch.demo import SHIPPED_WEIGHTS, camera
from ssdops.interop._deepinv import import_deepinv

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)     # the CPU-torch torchvision notice: not this example's subject
    dinv = import_deepinv()

torch.manual_seed(0)
x = torch.from_numpy(camera(64)).float()[None, None]     # deepinv's (B, C, H, W)
psnr = dinv.metric.PSNR()

# %%
# Heat deblurring with a deepinv optimiser
# ----------------------------------------
heat = ssdops.heat_physics(1.0, noise_model=dinv.physics.GaussianNoise(sigma=0.01))
y_heat = heat(x)
solver = dinv.optim.DRS(data_fidelity=dinv.optim.L2(), prior=dinv.optim.TVPrior(n_it_max=50),
                        lambda_reg=0.02, stepsize=1.0, max_iter=60, early_stop=True)
with torch.no_grad():
    x_drs = solver(y_heat, heat)
    x_pinv = heat.A_dagger(y_heat)                       # the unregularised exact inverse, for contrast
heat_results = {"blurred + 1 % noise": y_heat, "exact pseudo-inverse": x_pinv, "DRS, TV prior": x_drs}

# %%
# Perona-Malik inversion with the DiffNet reconstructor
# -----------------------------------------------------
pm = ssdops.perona_malik_physics(noise_model=dinv.physics.GaussianNoise(sigma=0.01))
y_pm = pm(x)
reconstructor = diffnet_torch.as_deepinv(diffnet_torch.load_weights(SHIPPED_WEIGHTS)).eval()
with torch.no_grad():
    x_diffnet = reconstructor(y_pm, pm)
pm_results = {"Perona-Malik + 1 % noise": y_pm, "DiffNet (shipped weights)": x_diffnet}

for name, image in {**heat_results, **pm_results}.items():
    print(f"{name:<28} {psnr(image.clamp(0, 1), x).item():6.2f} dB")

fig, axes = plt.subplots(2, 4, figsize=(11, 6), layout="constrained")
rows = [{"ground truth": x, **heat_results}, {"ground truth": x, **pm_results}]
for row, results in zip(axes, rows, strict=True):
    for ax in row:
        ax.axis("off")
    for ax, (name, image) in zip(row, results.items(), strict=False):
        ax.imshow(image[0, 0].clamp(0, 1), cmap="gray", vmin=0, vmax=1)
        title = name if image is x else f"{name}\n{psnr(image.clamp(0, 1), x).item():.2f} dB"
        ax.set_title(title, fontsize=9)
plt.show()
