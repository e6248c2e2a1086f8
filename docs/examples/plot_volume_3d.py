r"""
Diffusion of a 3-D volume
=========================

The grid dimension of an :class:`ssdops.SSD` is the length of its offsets: :data:`ssdops.SEVEN_POINT`
offsets make an operator on volumes ``(..., D, H, W)``. :func:`ssdops.laplacian` of a 3-tuple is the
7-point Laplacian (equal to scipy's ``LaplacianNd``), and the diffusion functions take ``ndim=3``.
``ndim`` defaults to 2, under which a ``(D, H, W)`` array is a *batch* of D images: the keyword is what
makes it a volume.

A noisy hollow sphere, 40 x 40 x 40, smoothed by Perona-Malik diffusion in 3-D, next to the same steps
applied slice by slice in 2-D (``ndim=2``), and the exact heat flow :func:`ssdops.heat` against implicit
steps.
"""
import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse.linalg as spla

import ssdops

n = 40
z, y, x = np.mgrid[0:n, 0:n, 0:n] - (n - 1) / 2
radius = np.sqrt(x**2 + y**2 + z**2)
volume = ((radius > 10) & (radius < 15)).astype(np.float64)
noisy = ssdops.add_noise(volume, 0.15, rng=0)

# %%
# The operator: seven diagonals, each a volume; its matrix is scipy's 3-D Laplacian.
L = ssdops.laplacian((8, 9, 10), bc="dirichlet")
print("offsets:", L.offsets, "grid:", L.grid_shape, "ndim:", L.ndim)
reference = spla.LaplacianNd((8, 9, 10), boundary_conditions="dirichlet").tosparse()
print("equal to scipy's LaplacianNd:", abs(ssdops.to_scipy(L) - reference).max() == 0)

# %%
# Perona-Malik in 3-D and slice by slice.
pm = dict(steps=20, dt=0.1, lam=0.3, bc="neumann")
smoothed_3d = ssdops.perona_malik(noisy, ndim=3, **pm)
smoothed_2d = ssdops.perona_malik(noisy, ndim=2, **pm)       # a batch of 40 independent slices
for name, result in (("noisy", noisy), ("3-D", smoothed_3d), ("slice by slice", smoothed_2d)):
    print(f"{name:>15}: {ssdops.psnr(result, volume, ndim=3):.2f} dB")

# %%
# The heat equation in 3-D: exact (a 3-D DCT) against 8 implicit steps.
T = 2.0
exact = ssdops.heat(noisy, T, ndim=3, method="exact")
implicit = ssdops.heat(noisy, T, ndim=3, method="implicit", steps=8)
print("max |implicit - exact| =", float(np.abs(implicit - exact).max()))

rows = {"clean": volume, "noisy": noisy, "Perona-Malik 3-D": smoothed_3d,
        "Perona-Malik slice by slice": smoothed_2d, f"heat 3-D exact, T = {T:g}": exact}
fig, axes = plt.subplots(3, len(rows), figsize=(13, 7.8), layout="constrained")
centre = n // 2
for j, (name, data) in enumerate(rows.items()):
    for i, (section, label) in enumerate(((data[centre], "z = 20"), (data[:, centre], "y = 20"),
                                          (data[:, :, 6], "x = 6"))):
        axes[i, j].imshow(section, cmap="gray", vmin=0, vmax=1)
        axes[i, j].set_xticks([])
        axes[i, j].set_yticks([])
        if j == 0:
            axes[i, j].set_ylabel(label)
    axes[0, j].set_title(name if data is volume else f"{name}\n{ssdops.psnr(data, volume, ndim=3):.2f} dB", fontsize=9)
plt.show()
