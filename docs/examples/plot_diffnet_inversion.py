r"""
Inverting Perona-Malik diffusion: DiffNet against linearised Tikhonov
=====================================================================

The task of the paper's section 5.2: recover an image from its Perona-Malik diffusion (the authors'
generator: 4 explicit steps, :math:`\delta t = 0.1`, :math:`\lambda = 0.2`, zero Dirichlet ghosts that also
carry zero diffusivity) with 1 % Gaussian noise. Two inversions, each scored by PSNR:

- **linearised Tikhonov** (:func:`diffnet_torch.demo.tikhonov_pm_inverse`): the forward map linearised at
  the lightly smoothed data, :math:`A = (I + \delta t L(\gamma(y_s)))^4`, inverted by
  :math:`\min_x \|A x - y\|^2 + \alpha \|\nabla x\|^2` with :math:`\alpha` from the discrepancy principle;
- **DiffNet** with the shipped weights (5 layers, 101,310 parameters).

This is ``diffnet-torch demo`` at 128 x 128 (the command runs it at 256 x 256).
"""
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import ssdops
from diffnet_torch import load_weights
from diffnet_torch.demo import SHIPPED_WEIGHTS, camera, tikhonov_pm_inverse
from ssdops.diffnet.data import PAPER_PM_ARGS

noise = 0.01
x = camera(128)
clean = ssdops.perona_malik(x, **PAPER_PM_ARGS)
y = ssdops.add_noise(clean, noise, rng=0)

start = time.perf_counter()
with torch.no_grad():
    diffnet = load_weights(SHIPPED_WEIGHTS)(torch.from_numpy(y.astype(np.float32))[None, None])
diffnet = diffnet[0, 0].double().numpy()
print(f"DiffNet: {time.perf_counter() - start:.2f} s")
start = time.perf_counter()
tikhonov, alpha, table = tikhonov_pm_inverse(y, noise * np.abs(clean).max())
print(f"Tikhonov: {time.perf_counter() - start:.2f} s, alpha = {alpha:.1e}")

results = {"ground truth": x, "data (no inversion)": y, f"Tikhonov, alpha = {alpha:.1e}": tikhonov,
           "DiffNet (shipped weights)": diffnet}
fig, axes = plt.subplots(2, 4, figsize=(12, 6.4), layout="constrained")
for top, bottom, (name, image) in zip(axes[0], axes[1], results.items()):
    top.imshow(image, cmap="gray", vmin=0, vmax=1)
    top.set_title(name if image is x else f"{name}\n{ssdops.psnr(image, x):.2f} dB", fontsize=9)
    bottom.imshow(np.abs(image - x), cmap="magma", vmin=0, vmax=0.1)
    bottom.set_title("|error| (0 .. 0.1)", fontsize=9)
    for ax in (top, bottom):
        ax.set_xticks([])
        ax.set_yticks([])
axes[1, 0].axis("off")                                   # the ground truth has no error to show
for name, image in results.items():
    if image is not x:
        print(f"{name:<32} {ssdops.psnr(image, x):6.2f} dB")

# %%
# The discrepancy principle picks the :math:`\alpha` whose residual :math:`\|A x - y\|` is closest to the
# expected norm of the noise :math:`\sigma\sqrt n`:
fig, ax = plt.subplots(figsize=(5, 3.2), layout="constrained")
alphas, residuals = [t[0] for t in table], [t[1] for t in table]
ax.loglog(alphas, residuals, "o-", label=r"$\|A x_\alpha - y\|$")
ax.axhline(noise * np.abs(clean).max() * np.sqrt(x.size), color="k", linestyle="--", label=r"$\sigma \sqrt{n}$")
ax.axvline(alpha, color="C1", linestyle=":", label="chosen")
ax.set_xlabel(r"$\alpha$")
ax.legend(fontsize=8)
plt.show()
