r"""
scipy and PyLops solvers on ssdops operators
============================================

:func:`ssdops.aslinearoperator` turns an SSD into a :class:`scipy.sparse.linalg.LinearOperator` on
flattened images, and :func:`ssdops.as_pylops` into a :class:`pylops.LinearOperator` with
``dims = dimsd = (H, W)``: both apply the operator through its fast path, without forming a matrix. So
every iterative solver of scipy and PyLops works on them. Three problems:

1. the implicit diffusion step :math:`(I - \delta t\, L(\gamma))\, x = u` by scipy's ``cg`` and ``gmres``,
   against :func:`ssdops.implicit_step`;
2. the extreme eigenvalues of a Laplacian by scipy's ``eigsh``, against the closed form;
3. deblurring: inverting three explicit diffusion steps :math:`A = (I + \delta t L)^3` with Tikhonov
   regularisation by PyLops' ``cgls``, the blur and the regulariser built from PyLops operator algebra.
"""
import matplotlib.pyplot as plt
import numpy as np
import pylops
import scipy.sparse.linalg as spla
import skimage.data
from skimage.transform import resize

import ssdops

x_true = resize(skimage.data.camera() / 255.0, (96, 96), anti_aliasing=True)
H, W = x_true.shape
rng = np.random.default_rng(0)

# %%
# 1. An implicit step with a spatially varying diffusivity, three ways.
gamma = 0.1 + rng.random((H, W))
L_gamma = ssdops.divergence_form(gamma, bc="neumann")
dt = 5.0
A = ssdops.aslinearoperator(ssdops.identity((H, W)) - dt * L_gamma)
u = x_true.ravel()
residuals = {"cg": [], "gmres": []}
x_cg, info_cg = spla.cg(A, u, rtol=1e-10, callback=lambda xk: residuals["cg"].append(
    np.linalg.norm(u - A @ xk) / np.linalg.norm(u)))
x_gmres, info_gmres = spla.gmres(A, u, rtol=1e-10, restart=50, callback_type="pr_norm",
                                 callback=residuals["gmres"].append)
x_ssdops = ssdops.implicit_step(x_true, L_gamma, dt, tol=1e-10)
print("cg    info", info_cg, "max |x - implicit_step| =", np.abs(x_cg - x_ssdops.ravel()).max())
print("gmres info", info_gmres, "max |x - implicit_step| =", np.abs(x_gmres - x_ssdops.ravel()).max())

# %%
# 2. The largest-magnitude eigenvalues of the Dirichlet Laplacian by ARPACK.
lap = ssdops.laplacian((H, W), bc="dirichlet")
largest = np.sort(spla.eigsh(ssdops.aslinearoperator(lap), k=4, which="LM", return_eigenvectors=False))
k = np.arange(1, 3)
closed = np.sort((-4 * np.sin(np.pi * (H + 1 - k[:, None]) / (2 * (H + 1))) ** 2
                  - 4 * np.sin(np.pi * (W + 1 - k[None, :]) / (2 * (W + 1))) ** 2).ravel())
print("eigsh:", largest, "\nclosed form:", closed)

# %%
# 3. Deblurring with PyLops: the blur :math:`A = (I + \delta t L)^3` and the gradient regulariser are
# PyLops operators made from ssdops ones, composed with ``@``; ``pylops.utils.dottest`` checks that the
# adjoint is right.
Lop = ssdops.as_pylops(ssdops.laplacian((H, W), bc="neumann"))
Iop = pylops.Identity(H * W)
step = Iop + 0.2 * Lop
blur = step @ step @ step
print("dottest:", pylops.utils.dottest(blur, H * W, H * W))
y = blur @ x_true.ravel() + 0.005 * rng.standard_normal(H * W)
x_cgls = pylops.optimization.basic.cgls(pylops.VStack([blur, 0.05 * pylops.Gradient((H, W), kind="forward")]),
                                        np.concatenate([y, np.zeros(2 * H * W)]), niter=60)[0]

fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), layout="constrained")
for name, history in residuals.items():
    axes[0].semilogy(history, label=name)
axes[0].set_xlabel("iteration")
axes[0].set_title(r"$(I - \delta t L(\gamma)) x = u$: relative residual", fontsize=9)
axes[0].legend(fontsize=8)
for ax, image, title in ((axes[1], x_true, "x"), (axes[2], y.reshape(H, W), f"blurred + noise, "
                          f"{ssdops.psnr(y.reshape(H, W), x_true):.2f} dB"),
                         (axes[3], x_cgls.reshape(H, W),
                          f"PyLops cgls, {ssdops.psnr(x_cgls.reshape(H, W), x_true):.2f} dB")):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()
