r"""
The heat equation: exact, explicit and implicit
===============================================

:func:`ssdops.heat` solves :math:`u_t = \Delta u` from :math:`u_0` to time :math:`T` with the 5-point
Laplacian :math:`L`:

- ``method="exact"``: :math:`u(T) = \exp(T L)\, u_0`, by a DCT (Neumann) or DST (Dirichlet), exact to
  rounding;
- ``method="explicit"``: ``steps`` forward Euler steps :math:`u \leftarrow (I + \delta t L) u`, stable for
  :math:`\delta t \le 1/4` (paper eq. 2.10);
- ``method="implicit"``: ``steps`` backward Euler steps :math:`u \leftarrow (I - \delta t L)^{-1} u`,
  stable for every :math:`\delta t` (paper eq. 2.11).

Both time-stepping schemes are first order: halving the step halves the error.
"""
import matplotlib.pyplot as plt
import numpy as np
import skimage.data
from skimage.transform import resize

import ssdops

u0 = resize(skimage.data.camera() / 255.0, (96, 96), anti_aliasing=True)
T = 2.0
exact = ssdops.heat(u0, T, bc="neumann", method="exact")
explicit = ssdops.heat(u0, T, bc="neumann", method="explicit", steps=16)
implicit = ssdops.heat(u0, T, bc="neumann", method="implicit", steps=16)

fig, axes = plt.subplots(1, 4, figsize=(12, 3.4), layout="constrained")
for ax, image, title in zip(axes, (u0, exact, explicit, implicit),
                            ("u0", f"exact, T = {T:g}", "explicit, 16 steps", "implicit, 16 steps")):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])

# %%
# The errors of both schemes against the exact solution, and their convergence in the number of steps:
# the maximum error falls as 1 / steps for both (the explicit scheme needs dt <= 1/4, the implicit one
# does not).
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), layout="constrained")
for ax, image, title in ((axes[0], explicit, "|explicit - exact|, 16 steps"),
                         (axes[1], implicit, "|implicit - exact|, 16 steps")):
    im = ax.imshow(np.abs(image - exact), cmap="magma", vmin=0, vmax=0.01)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=axes[:2], shrink=0.8)
steps = np.array([8, 16, 32, 64, 128])
for method in ("explicit", "implicit"):
    errors = [np.abs(ssdops.heat(u0, T, method=method, steps=int(n)) - exact).max() for n in steps]
    axes[2].loglog(steps, errors, "o-", label=method)
    print(method, ["%.2e" % e for e in errors])
axes[2].loglog(steps, 0.1 / steps, "k--", label="0.1 / steps")
axes[2].set_xlabel("steps")
axes[2].set_ylabel("max |u - exact|")
axes[2].legend(fontsize=8)
axes[2].set_title("first-order convergence", fontsize=9)

# %%
# An explicit step above the stability limit is refused rather than blowing up:
try:
    ssdops.heat(u0, T, method="explicit", steps=4)       # dt = 0.5 > 1/4
except ValueError as err:
    print("ValueError:", err)
plt.show()
