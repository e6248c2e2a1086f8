r"""
An implicit diffusion step as a lineax solve, learned under ``jax.grad``
========================================================================

One backward-Euler step of nonlinear (Perona-Malik type) diffusion denoises an image :math:`y`:

.. math:: (I - \Delta t\, L(\gamma))\, x = y, \qquad
          \gamma = \frac{c}{1 + |\nabla y|^2 / \lambda^2},

with :math:`L(\gamma)` the divergence-form operator :math:`\nabla\cdot(\gamma\nabla\,\cdot)`
(:func:`ssdops.divergence_form`). :func:`ssdops.as_lineax` hands :math:`I - \Delta t\,L(\gamma)` to lineax with
its tags: symmetric and positive definite (:attr:`ssdops.SSD.tags`), so :class:`lineax.CG` accepts it with no
tag added by hand, also while :math:`\gamma` is traced by :func:`jax.grad`. The two parameters
:math:`(c, \lambda)` are learned by gradient descent on the denoising loss :math:`\|x - x_\text{true}\|^2`,
differentiating through the CG solve.
"""
import time

import jax
import jax.numpy as jnp
import lineax as lx
import matplotlib.pyplot as plt
import numpy as np

import ssdops
from diffnet_torch.demo import camera

jax.config.update("jax_enable_x64", True)

x_true = jnp.asarray(camera(64))
y = jnp.asarray(ssdops.add_noise(np.asarray(x_true), 0.05, rng=0))
dt = 1.0                                              # a Python number: I - dt * L keeps its definiteness tag
identity = ssdops.identity(x_true.shape, like=x_true)
gy, gx = jnp.gradient(y)
grad2 = gx**2 + gy**2


def denoise(params):
    c, lam = jnp.exp(params)                          # log-parameters: c, lambda > 0 by construction
    gamma = c / (1 + grad2 / lam**2)
    A = ssdops.as_lineax(identity - dt * ssdops.divergence_form(gamma))
    return lx.linear_solve(A, y, lx.CG(rtol=1e-10, atol=1e-10)).value, gamma


@jax.jit
def loss_and_grad(params):
    return jax.value_and_grad(lambda p: jnp.mean((denoise(p)[0] - x_true) ** 2))(params)


params = jnp.log(jnp.array([0.2, 0.5]))
history = []
start = time.perf_counter()
for step in range(40):
    loss, grad = loss_and_grad(params)
    history.append(float(loss))
    # Normalised steps of geometrically decreasing length: robust to the loss' scale.
    params = params - 0.5 * 0.9**step * grad / (jnp.linalg.norm(grad) + 1e-12)
print(f"40 gradient steps: {time.perf_counter() - start:.2f} s")

x_hat, gamma = denoise(params)
c, lam = np.exp(np.asarray(params))
reference = ssdops.implicit_step(y, ssdops.divergence_form(gamma), dt)
print(f"learned c = {c:.3f}, lambda = {lam:.3f}")
print(f"lineax solve vs ssdops.implicit_step: max |difference| = {float(jnp.abs(x_hat - reference).max()):.1e}")
print(f"noisy (sigma = 0.05)      {ssdops.psnr(np.asarray(y), np.asarray(x_true)):6.2f} dB")
print(f"learned implicit step     {ssdops.psnr(np.asarray(x_hat), np.asarray(x_true)):6.2f} dB")

fig, axes = plt.subplots(1, 5, figsize=(14, 3.2), layout="constrained")
images = {"ground truth": x_true, "noisy": y, "learned implicit step": x_hat}
for ax, (name, image) in zip(axes[:3], images.items(), strict=True):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    title = name if image is x_true else f"{name}\n{ssdops.psnr(np.asarray(image), np.asarray(x_true)):.2f} dB"
    ax.set_title(title, fontsize=9)
    ax.axis("off")
axes[3].imshow(gamma, cmap="viridis")
axes[3].set_title(r"learned diffusivity $\gamma$", fontsize=9)
axes[3].axis("off")
axes[4].semilogy(history)
axes[4].set_xlabel("gradient step")
axes[4].set_title("denoising loss (MSE)", fontsize=9)
plt.show()
