r"""JAX fast paths: the core's own formulations, compiled by XLA.

- ``ssd_apply`` / ``ssd_apply_transpose``: :func:`ssdops._kernels.apply_generic` / ``apply_transpose_generic``,
  :math:`(A u)[p] = \sum_k d_k[p]\, u[p + o_k]` and :math:`(A^T u)[q] = \sum_k d_k[q - o_k]\, u[q - o_k]`;
- ``filter_step``: :func:`ssdops._kernels.filter_step_generic`,
  :math:`u + dt\,(\sum_{k<5} z_k[p]\, u[p + o_k] - z_5[p]\, u[p])`;
- ``perona_malik_step``: backward differences, the diffusivity, the divergence-form diagonals and the apply
  above (:func:`ssdops._kernels.perona_malik_step_generic`);
- ``implicit_solve``: ``jax.lax.custom_linear_solve`` for traced values (the generic loop otherwise).

The core forms each product only over the window of pixels whose neighbour is in the grid and pads it
with zeros: slices, elementwise products and pads, which XLA fuses into one loop per operation that reads
every input once. Run eagerly, that code dispatches dozens of small operations and materialises several
images per offset; jitted, it is one compiled kernel per shape, and it inlines into a caller's ``jit``.
We measured the alternatives and kept none of them: a hand-written formulation with ``where`` on iota
masks was as fast alone but 5-9x slower once fused into a Perona-Malik step, and a flux form with edge
padding and concatenated faces was 5-10x slower (``ssdops bench``, 2048², CPU).

Derivatives are XLA's own: the transposes of slices, pads and products are again slices, pads and
products of the same fused form, so a ``custom_vjp`` would compute the same kernels and lose forward
mode. ``grad``, ``jvp``, ``vmap`` and ``jit`` (with a traced ``dt`` or ``lam``) all work.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.sparse.linalg import bicgstab as jax_bicgstab
from jax.scipy.sparse.linalg import cg as jax_cg

from ssdops._kernels import (
    apply_generic,
    apply_transpose_generic,
    filter_step_generic,
    krylov_solve,
    perona_malik_step_generic,
    resolve,
)

from . import Adapter, is_traced, register

__all__ = ["ADAPTER", "filter_step", "implicit_solve", "perona_malik_step", "ssd_apply", "ssd_apply_transpose"]


_apply = jax.jit(apply_generic, static_argnums=(0, 2))
_apply_transpose = jax.jit(apply_transpose_generic, static_argnums=(0, 2))


def ssd_apply(*, diagonals, offsets, u, out=None):
    """``A u`` (see the module docstring)."""
    return _apply(jnp, diagonals, offsets, u)


def ssd_apply_transpose(*, diagonals, offsets, u, out=None):
    """``A^T u`` (see the module docstring)."""
    return _apply_transpose(jnp, diagonals, offsets, u)


@jax.jit
def filter_step(*, u, zeta, dt):
    """``u + W_dt(zeta) u``; ``dt`` may be traced."""
    return filter_step_generic(jnp, u, zeta, dt)


@functools.partial(jax.jit, static_argnames=("diffusivity", "bc", "ghost_gamma", "ndim"))
def perona_malik_step(*, u, dt, lam, diffusivity, bc, ghost_gamma, ndim):
    """One explicit Perona-Malik step; ``dt`` and ``lam`` may be traced."""
    return perona_malik_step_generic(jnp, u, dt, lam, resolve(diffusivity), bc, ghost_gamma, ndim)


def _traced_solve(u, diagonals, offsets, dt, method, tol, maxiter):
    """``jax.scipy.sparse.linalg`` cg / bicgstab under ``custom_linear_solve``, vmapped over the batch."""
    symmetric = method == "cg"
    solver = jax_cg if symmetric else jax_bicgstab

    def solve(matvec, b):
        return solver(matvec, b, tol=tol, atol=0.0, maxiter=maxiter)[0]

    def solve_one(u1, d1, dt):
        def matvec(x):
            return x - dt * apply_generic(jnp, d1, offsets, x)

        return jax.lax.custom_linear_solve(
            matvec, u1, solve, transpose_solve=None if symmetric else solve, symmetric=symmetric
        )

    ndim = len(offsets[0])
    core = tuple(diagonals.shape[-ndim - 1:])  # (K, *grid)
    x = jax.vmap(solve_one, in_axes=(0, 0, None))(
        jnp.reshape(u, (-1,) + core[1:]), jnp.reshape(diagonals, (-1,) + core), dt
    )
    return jnp.reshape(x, u.shape)


def implicit_solve(*, u, diagonals, offsets, dt, method, tol, maxiter, on_failure, x0):
    """Traced values (under ``jit``, ``grad``, ``vmap``): a ``custom_linear_solve`` (reverse mode an
    adjoint solve; no convergence check is possible, ``x0`` is ignored); concrete values: the generic
    Krylov loop with its convergence check."""
    if any(is_traced(a) for a in (u, diagonals, dt)):
        return _traced_solve(u, diagonals, offsets, dt, method, tol, maxiter)
    return krylov_solve(jnp, u=u, diagonals=diagonals, offsets=offsets, dt=dt, method=method, tol=tol,
                        maxiter=maxiter, on_failure=on_failure, x0=x0)


class JaxAdapter(Adapter):
    """JAX: tracers under ``jit`` / ``grad`` / ``vmap``; immutable arrays (no ``out=``); ``SSD`` a pytree
    node (so ``jit``, ``grad``, ``vmap``, ``jvp`` and Equinox take operators)."""

    writable = False
    why_not_writable = "they are immutable"

    def is_traced(self, x):
        return isinstance(x, jax.core.Tracer)

    def to_numpy(self, x):
        return np.asarray(x)

    def register_type(self, cls, flatten, unflatten):
        try:
            jax.tree_util.register_pytree_node(cls, flatten, unflatten)
        except ValueError:  # registered before (by another ssdops.backends load in this process)
            pass
        return True


ADAPTER = JaxAdapter("jax")

for _operation, _function in (("ssd_apply", ssd_apply), ("ssd_apply_transpose", ssd_apply_transpose),
                       ("filter_step", filter_step), ("perona_malik_step", perona_malik_step),
                       ("implicit_solve", implicit_solve)):
    register(_operation, "jax", _function)
