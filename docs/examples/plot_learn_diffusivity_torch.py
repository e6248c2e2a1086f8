r"""
Learning a diffusivity through ``implicit_step`` in PyTorch
===========================================================

:func:`ssdops.implicit_step` solves :math:`(I - \delta t\, L(\gamma))\, x = u` (paper eq. 2.11) and is
differentiable in PyTorch: its backward pass is one more solve with the transposed operator (the adjoint
method), so a gradient costs about as much as the forward solve and no Krylov iteration is stored.

Here the unknown is a diffusivity image :math:`\gamma > 0` (parametrised as :math:`\exp\theta`): from
pairs of images before and after one implicit diffusion step with a hidden :math:`\gamma^\star`, Adam
recovers :math:`\gamma^\star` by minimising the mean squared error of the prediction.
"""
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import ssdops

torch.manual_seed(0)
n, dt = 16, 2.0
y, x = np.mgrid[0:n, 0:n] / (n - 1)
gamma_true = torch.tensor(0.2 + np.exp(-((x - 0.5) ** 2 + (y - 0.3) ** 2) / 0.05))
images = torch.rand(4, n, n, dtype=torch.float64)
with torch.no_grad():
    targets = ssdops.implicit_step(images, ssdops.divergence_form(gamma_true, bc="neumann"), dt)

theta = torch.zeros(n, n, dtype=torch.float64, requires_grad=True)      # gamma = 1 to start
optimiser = torch.optim.Adam([theta], lr=0.1)
losses = []
start = time.perf_counter()
for _ in range(80):
    optimiser.zero_grad()
    op = ssdops.divergence_form(torch.exp(theta), bc="neumann")
    loss = torch.mean((ssdops.implicit_step(images, op, dt) - targets) ** 2)
    loss.backward()
    optimiser.step()
    losses.append(loss.item())
gamma = torch.exp(theta).detach()
print(f"80 Adam steps in {time.perf_counter() - start:.1f} s; loss {losses[0]:.2e} -> {losses[-1]:.2e}")
print(f"max |gamma - gamma*| = {(gamma - gamma_true).abs().max():.3f}")

fig, axes = plt.subplots(1, 4, figsize=(13, 3.3), layout="constrained")
for ax, image, title in ((axes[0], gamma_true, r"hidden $\gamma^\star$"), (axes[1], gamma, r"learned $\gamma$"),
                         (axes[2], (gamma - gamma_true).abs(), r"$|\gamma - \gamma^\star|$")):
    im = ax.imshow(image.numpy(), cmap="viridis", vmin=0 if "|" in title else 0.2, vmax=1.2 if "|" not in title
                   else None)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, shrink=0.8)
axes[3].semilogy(losses)
axes[3].set_xlabel("Adam step")
axes[3].set_title("training loss")
plt.show()
