r"""
Tikhonov deblurring with ODL operators made by ``ssdops.as_odl``
================================================================

The forward model blurs an image by four explicit heat steps, :math:`A = (I + \delta t\,L)^4` with
:math:`\delta t = 0.2` and :math:`L` the Neumann Laplacian (:func:`ssdops.laplacian`), and adds 1 % Gaussian
noise. :func:`ssdops.as_odl` turns :math:`I + \delta t\,L` and :math:`L` into :class:`odl.Operator` objects
(with their adjoints) on an ODL space; ODL's operator algebra composes them and its conjugate gradient solves the
normal equations of the Tikhonov problem

.. math:: \min_x \|A x - y\|^2 + \alpha \|L x\|^2
          \quad\Longleftrightarrow\quad (A^\top A + \alpha L^\top L)\,x = A^\top y

for a few :math:`\alpha`. The space is ODL's :math:`[0, 1]^2`; ``scale=None`` keeps ssdops' per-pixel stencil
(``scale="cell"`` would divide by :math:`h^2`, ODL's own :class:`odl.Laplacian` convention).
"""
import warnings

import matplotlib.pyplot as plt
import numpy as np

import ssdops
from diffnet_torch.demo import camera

# ODL's import prints deprecation notices and sets NumPy's legacy print mode globally: both undone here.
with warnings.catch_warnings(), np.printoptions():
    warnings.simplefilter("ignore")
    import odl

n, dt, steps, noise = 64, 0.2, 4, 0.01
space = odl.uniform_discr([0, 0], [1, 1], (n, n))
lap = ssdops.laplacian((n, n), bc="neumann")
step = ssdops.as_odl(ssdops.identity((n, n)) + dt * lap, space)
A = step * step * step * step                          # ODL composition: (I + dt L)^4
L = ssdops.as_odl(lap, space)

x_true = space.element(camera(n))
y = A(x_true) + space.element(np.random.default_rng(0).normal(0, noise, (n, n)))


def tikhonov(alpha, niter=200):
    normal = A.adjoint * A + alpha * (L.adjoint * L)
    x = space.zero()
    odl.solvers.conjugate_gradient(normal, x, A.adjoint(y), niter=niter)
    return x


def psnr(x):
    return ssdops.psnr(np.asarray(x.data), np.asarray(x_true.data))


results = {alpha: tikhonov(alpha) for alpha in (1e-3, 1e-2, 1e-1)}
print(f"blurred + 1 % noise     {psnr(y):6.2f} dB")
for alpha, x in results.items():
    print(f"Tikhonov, alpha = {alpha:.0e} {psnr(x):6.2f} dB")

fig, axes = plt.subplots(1, 5, figsize=(14, 3.2), layout="constrained")
images = {"ground truth": x_true, "blurred + 1 % noise": y,
          **{f"Tikhonov, alpha = {alpha:.0e}": x for alpha, x in results.items()}}
for ax, (name, image) in zip(axes, images.items(), strict=True):
    ax.imshow(np.asarray(image.data), cmap="gray", vmin=0, vmax=1)
    ax.set_title(name if image is x_true else f"{name}\n{psnr(image):.2f} dB", fontsize=9)
    ax.axis("off")
plt.show()
