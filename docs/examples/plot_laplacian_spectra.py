r"""
Laplacian spectra and the DCT / DST that diagonalise them
=========================================================

On an ``H x W`` grid the 5-point Laplacian with Neumann boundaries is diagonalised by the type-II
discrete cosine transform, the one with zero Dirichlet ghosts by the type-I discrete sine transform.
Their eigenvalues are sums of the 1-D ones,

.. math::

   \lambda^{N}_{k} = -4 \sin^2\!\left(\frac{\pi k}{2 n}\right), \qquad
   \lambda^{D}_{k} = -4 \sin^2\!\left(\frac{\pi (k + 1)}{2 (n + 1)}\right), \qquad k = 0, \dots, n - 1,

which is what :func:`ssdops.heat` (the exact method) and the ``"spectral"`` method of
:func:`ssdops.implicit_step` use. This example checks both facts numerically: the eigenvalues from
:func:`ssdops.spectrum` against the formula, and ``dct(L u) == lambda * dct(u)``.
"""
import matplotlib.pyplot as plt
import numpy as np
from scipy.fft import dctn, dstn

import ssdops

H, W = 12, 16


def eigenvalues_1d(n, bc):
    k = np.arange(n)
    if bc == "neumann":
        return -4 * np.sin(np.pi * k / (2 * n)) ** 2
    return -4 * np.sin(np.pi * (k + 1) / (2 * (n + 1))) ** 2


fig, ax = plt.subplots(figsize=(5, 3.8), layout="constrained")
for bc, marker in (("neumann", "o"), ("dirichlet", "s")):
    L = ssdops.laplacian((H, W), bc=bc)
    computed = np.sort(ssdops.spectrum(L, k=H * W).real)
    formula = np.sort((eigenvalues_1d(H, bc)[:, None] + eigenvalues_1d(W, bc)[None, :]).ravel())
    print(f"{bc:9s}: max |eigenvalue - formula| = {np.abs(computed - formula).max():.2e}")
    ax.plot(computed, marker, markersize=3, label=f"{bc}: ssdops.spectrum")
    ax.plot(formula, "k-", linewidth=0.8)
ax.set_title(f"sorted eigenvalues, {H} x {W} grid (line: formula)", fontsize=10)
ax.set_xlabel("index")
ax.legend(fontsize=8)

# %%
# The transforms diagonalise the operators: the coefficients of ``L @ u`` are those of ``u`` times the
# eigenvalue grid. Neumann uses ``dctn(type=2)``; Dirichlet ``dstn(type=1)``.
u = np.random.default_rng(0).standard_normal((H, W))
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
for ax, bc, transform in ((axes[0], "neumann", lambda a: dctn(a, type=2)),
                          (axes[1], "dirichlet", lambda a: dstn(a, type=1))):
    lam = eigenvalues_1d(H, bc)[:, None] + eigenvalues_1d(W, bc)[None, :]
    Lu = ssdops.laplacian((H, W), bc=bc) @ u
    error = np.abs(transform(Lu) - lam * transform(u)).max()
    print(f"{bc:9s}: max |T(L u) - lambda T(u)| = {error:.2e}")
    image = ax.imshow(lam, cmap="viridis")
    ax.set_title(f"{bc}: eigenvalue grid (diagonalised by {'DCT-II' if bc == 'neumann' else 'DST-I'})",
                 fontsize=9)
    ax.set_xlabel("k_x")
    ax.set_ylabel("k_y")
    fig.colorbar(image, ax=ax, shrink=0.8)

# %%
# The spectral radius tends to 8 (the checkerboard mode) as the grid grows, which is why an explicit
# step ``u + dt L u`` needs ``dt <= 1/4`` (:func:`ssdops.stable_dt`).
print("spectral radius:", ssdops.spectral_radius(ssdops.laplacian((H, W))))
print("stable_dt:", ssdops.stable_dt(ssdops.laplacian((H, W))))
plt.show()
