r"""
Learning a diffusivity through ``implicit_step`` in JAX
=======================================================

The same problem as the PyTorch example, written as a pure function and compiled: ``jax.value_and_grad``
differentiates :func:`ssdops.implicit_step` (a ``jax.lax.custom_linear_solve``: its reverse mode is
an adjoint solve), and ``jax.jit`` compiles the whole optimisation step, the conjugate-gradient solves
included. The optimiser is optax's Adam with the settings of the PyTorch example.
"""
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import ssdops

jax.config.update("jax_enable_x64", True)
n, dt = 16, 2.0
y, x = np.mgrid[0:n, 0:n] / (n - 1)
gamma_true = jnp.asarray(0.2 + np.exp(-((x - 0.5) ** 2 + (y - 0.3) ** 2) / 0.05))
images = jax.random.uniform(jax.random.key(0), (4, n, n), dtype=jnp.float64)


def predict(gamma):
    """One implicit diffusion step of every image with diffusivity ``gamma``."""
    return ssdops.implicit_step(images, ssdops.divergence_form(gamma, bc="neumann"), dt)


# Eager JAX would compile every operation of the conjugate-gradient loop on its own: compile once.
targets = jax.jit(predict)(gamma_true)


def loss(theta):
    return jnp.mean((predict(jnp.exp(theta)) - targets) ** 2)


optimiser = optax.adam(0.1)


@jax.jit
def step(theta, state):
    value, grad = jax.value_and_grad(loss)(theta)
    updates, state = optimiser.update(grad, state)
    return optax.apply_updates(theta, updates), state, value


theta = jnp.zeros((n, n))                                              # gamma = 1 to start
state = optimiser.init(theta)
losses = []
start = time.perf_counter()
for _ in range(80):
    theta, state, value = step(theta, state)
    losses.append(float(value))
gamma = jnp.exp(theta)
print(f"80 Adam steps (compilation included) in {time.perf_counter() - start:.1f} s; "
      f"loss {losses[0]:.2e} -> {losses[-1]:.2e}")
print(f"max |gamma - gamma*| = {float(jnp.abs(gamma - gamma_true).max()):.3f}")

fig, axes = plt.subplots(1, 4, figsize=(13, 3.3), layout="constrained")
for ax, image, title, limits in ((axes[0], gamma_true, r"hidden $\gamma^\star$", (0.2, 1.2)),
                                 (axes[1], gamma, r"learned $\gamma$", (0.2, 1.2)),
                                 (axes[2], jnp.abs(gamma - gamma_true), r"$|\gamma - \gamma^\star|$", (0, None))):
    im = ax.imshow(np.asarray(image), cmap="viridis", vmin=limits[0], vmax=limits[1])
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, shrink=0.8)
axes[3].semilogy(losses)
axes[3].set_xlabel("Adam step")
axes[3].set_title("training loss")
plt.show()
