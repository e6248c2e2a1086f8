"""
The SSD storage and the sparse matrix it stands for
===================================================

An :class:`ssdops.SSD` stores a stencil matrix as its sub-diagonals: one coefficient image per neighbour
offset. For the 5-point Laplacian on a 6 x 6 grid the five diagonals are five 6 x 6 images (left); the
matrix they stand for, :func:`ssdops.to_scipy`, has its non-zeros on five diagonals of a 36 x 36 matrix
(right, scipy's ``spy``). Pixel ``(i, j)`` is matrix index ``i * W + j``, so the offset ``(dy, dx)`` lies
on the matrix diagonal ``dy * W + dx``; a neighbour outside the grid has no entry.
"""
import matplotlib.pyplot as plt
import numpy as np

import ssdops

H, W = 6, 6
L = ssdops.laplacian((H, W), bc="dirichlet")
A = ssdops.to_scipy(L)
names = ("up", "left", "down", "right", "centre")

fig = plt.figure(figsize=(11, 4.2), layout="constrained")
left, right = fig.subfigures(1, 2, width_ratios=(1.5, 1))
axes = left.subplots(1, 5)
for ax, name, offset, diagonal in zip(axes, names, L.offsets, L.diagonals):
    ax.imshow(diagonal, cmap="coolwarm", vmin=-4, vmax=4)
    for (i, j), value in np.ndenumerate(diagonal):
        ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=6)
    ax.set_title(f"{name} {offset}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
left.suptitle("SSD: five diagonal images (Dirichlet Laplacian, 6 x 6)\n"
              "an entry whose neighbour lies outside the grid is never used (here it is 0)")
ax = right.subplots()
ax.spy(A, markersize=3)
ax.set_title(f"scipy spy(to_scipy(L)): {A.shape[0]} x {A.shape[1]}, {A.nnz} non-zeros", fontsize=9)

# %%
# Each offset is one matrix diagonal: ``A.diagonal(dy * W + dx)`` holds the diagonal image, read
# row-major, without the entries whose neighbour lies outside the grid.
for offset, diagonal in zip(L.offsets, L.diagonals):
    k = offset[0] * W + offset[1]
    stored = diagonal.ravel()[max(0, -k):A.shape[0] - max(0, k)]
    inside = stored != 0
    agrees = np.array_equal(A.diagonal(k)[inside], stored[inside])
    print(f"offset {offset}: matrix diagonal {k:+d}, agrees: {agrees}")

# %%
# The same holds for the 9-point stencils and for any diagonals: :func:`ssdops.from_scipy` reads the
# diagonals back from the matrix.
rng = np.random.default_rng(0)
op = ssdops.SSD(rng.standard_normal((9, H, W)), ssdops.NINE_POINT)
back = ssdops.from_scipy(ssdops.to_scipy(op), (H, W), ssdops.NINE_POINT)
u = rng.standard_normal((H, W))
print("from_scipy(to_scipy(op)) @ u == op @ u:", np.allclose(back @ u, op @ u))

fig, ax = plt.subplots(figsize=(4, 4))
ax.spy(ssdops.to_scipy(op), markersize=2)
ax.set_title("NINE_POINT: nine diagonals", fontsize=9)
plt.show()
