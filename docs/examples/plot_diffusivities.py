r"""
Perona-Malik diffusivities side by side
=======================================

Nonlinear diffusion :math:`u_t = \nabla \cdot (g(|\nabla u|^2)\, \nabla u)` smooths flat regions and
keeps edges when the diffusivity :math:`g(s^2, \lambda)` falls off for gradients above the contrast
parameter :math:`\lambda`. :mod:`ssdops.diffusivity` offers five; the rational one is the paper's
(eq. 5.1) and the one of the authors' data generator. Left: the functions; right: 5 steps of
:func:`ssdops.perona_malik` (dt = 0.2) with each, on the same noisy photograph. The edge-stopping
diffusivities smooth the noise and keep the edges; linear diffusion blurs both; total variation,
:math:`1/\lambda = 20` times stronger than the others in flat regions, smooths far more in the same time.
"""
import matplotlib.pyplot as plt
import numpy as np
import skimage.data
from skimage.transform import resize

import ssdops
from ssdops import diffusivity

names = ("perona_malik", "perona_malik_exp", "charbonnier", "total_variation", "linear")
lam = 0.05
u0 = resize(skimage.data.camera() / 255.0, (128, 128), anti_aliasing=True)
noisy = ssdops.add_noise(u0, 0.05, rng=0)

fig = plt.figure(figsize=(13, 5.2), layout="constrained")
left, right = fig.subfigures(1, 2, width_ratios=(1, 2.2))
ax = left.subplots()
s = np.linspace(0.0, 0.5, 400)
for name in names:
    g = getattr(diffusivity, name)(s**2, lam)
    # total_variation is 1 / lam at zero gradient: drawn scaled by lam to share the axis, where it is
    # exactly charbonnier (lam / sqrt(s^2 + lam^2) = 1 / sqrt(1 + s^2 / lam^2))
    if name == "total_variation":
        ax.plot(s, g * lam, "k--", label="total_variation x lambda (= charbonnier)")
    else:
        ax.plot(s, g, label=name)
ax.axvline(lam, color="k", linestyle=":", linewidth=0.8)
ax.set_xlim(0, 0.25)
ax.set_ylim(0, 1.1)
ax.set_xlabel(r"$|\nabla u|$")
ax.set_ylabel(r"$g(|\nabla u|^2, \lambda)$")
ax.set_title(rf"diffusivities, $\lambda$ = {lam}", fontsize=10)
ax.legend(fontsize=8)

axes = right.subplots(2, 3)
images = {"noisy (5 %)": noisy}
for name in names:
    # total_variation is 1 / lam = 20 at zero gradient: an explicit step would need dt <= 1/80 there, so
    # it takes the semi-implicit scheme (stable for every dt); the others take explicit steps
    scheme = "semi-implicit" if name == "total_variation" else "explicit"
    images[name] = ssdops.perona_malik(noisy, steps=5, dt=0.2, lam=lam, diffusivity=name, bc="neumann",
                                       scheme=scheme)
for ax, (title, image) in zip(axes.ravel(), images.items()):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"{title}\n{ssdops.psnr(image, u0):.2f} dB", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()
