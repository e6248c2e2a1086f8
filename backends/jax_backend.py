r"""JAX fast paths: jitted kernels that XLA fuses into one loop per operation.

The operations (``o_k = (dy_k, dx_k)``, products only over in-grid neighbours):

- ``ssd_apply``: :math:`(A u)[p] = \sum_k d_k[p]\, u[p + o_k]`;
- ``ssd_apply_transpose``: :math:`(A^T u)[q] = \sum_k d_k[q - o_k]\, u[q - o_k]`;
- ``filter_step``: :math:`u + dt\,(\sum_{k<5} z_k[p]\, u[p + o_k] - z_5[p]\, u[p])` (FIVE_POINT);
- ``perona_malik_step``: :math:`u + dt\,\nabla\cdot(\gamma\nabla u)`: the core's own composition, jitted.

A zero-filled shift is one ``lax.pad`` with a negative low and a positive high padding (a crop and a pad
at once); products whose neighbour is outside the grid are dropped with ``where`` on an iota mask, so a
non-finite diagonal value there never reaches the result. In the transpose no mask is needed: the shift
of ``d_k u`` by ``-o_k`` only ever reads pixels whose neighbour is in the grid. Pads, crops, ``where`` and
elementwise arithmetic are all loop-fusible, so XLA compiles each operation into one kernel that reads
every input once (the generic code, run eagerly, materialises several images per offset), and the
kernels inline into a caller's ``jit``.

Derivatives are XLA's own: every kernel is a composition of pads, crops, ``where`` and elementwise maths,
whose transposes are again crops, pads and ``where`` of the same fused form, so a hand-written
``custom_vjp`` would compute the same kernel and only lose forward mode. ``grad``, ``jvp``, ``vmap`` and
``jit`` (with a traced ``dt`` or ``lam``) all work.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from ssdops.diffusion import perona_malik_operator

from . import register

__all__ = ["ssd_apply", "ssd_apply_transpose", "filter_step", "perona_malik_step"]

_CENTRE = (0, 0)
_FIVE_NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1))


def _inside(grid, offset):
    """Whether any pixel's neighbour at ``offset`` lies in the grid."""
    return abs(offset[0]) < grid[0] and abs(offset[1]) < grid[1]


def _shift(x, offset):
    """``y[..., i, j] = x[..., i + dy, j + dx]``, zero outside the grid (needs ``_inside``)."""
    dy, dx = offset
    config = [(0, 0, 0)] * (x.ndim - 2) + [(-dy, dy, 0), (-dx, dx, 0)]
    return lax.pad(x, jnp.zeros((), x.dtype), config)


def _mask(grid, offset):
    """True at the pixels whose neighbour at ``offset`` lies in the grid (an iota compare, fused)."""
    H, W = grid
    rows = lax.broadcasted_iota(jnp.int32, grid, 0) + offset[0]
    cols = lax.broadcasted_iota(jnp.int32, grid, 1) + offset[1]
    return (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)


def _product(d, u, offset):
    """``d[p] * u[p + offset]`` where the neighbour is inside, exactly 0 elsewhere."""
    term = d * _shift(u, offset)
    if offset == _CENTRE:
        return term
    return jnp.where(_mask(u.shape[-2:], offset), term, jnp.zeros((), term.dtype))


def _zeros(diagonals, u):
    batch = jnp.broadcast_shapes(diagonals.shape[:-3], u.shape[:-2])
    return jnp.zeros(batch + u.shape[-2:], dtype=u.dtype)


@functools.partial(jax.jit, static_argnums=1)
def ssd_apply(diagonals, offsets, u):
    """``A u`` (see the module docstring)."""
    out = _zeros(diagonals, u)
    for k, offset in enumerate(offsets):
        if _inside(u.shape[-2:], offset):
            out = out + _product(diagonals[..., k, :, :], u, offset)
    return out


@functools.partial(jax.jit, static_argnums=1)
def ssd_apply_transpose(diagonals, offsets, u):
    """``A^T u`` (see the module docstring)."""
    out = _zeros(diagonals, u)
    for k, (dy, dx) in enumerate(offsets):
        if _inside(u.shape[-2:], (dy, dx)):
            out = out + _shift(diagonals[..., k, :, :] * u, (-dy, -dx))
    return out


@jax.jit
def filter_step(u, zeta, dt):
    """``u + W_dt(zeta) u`` (see the module docstring); ``dt`` may be traced."""
    grid = u.shape[-2:]
    s = -zeta[..., 4, :, :] * u
    for k, offset in enumerate(_FIVE_NEIGHBOURS):
        if _inside(grid, offset):
            s = s + _product(zeta[..., k, :, :], u, offset)
    return u + dt * s


@functools.partial(jax.jit, static_argnums=(3, 4, 5))
def perona_malik_step(u, dt, lam, name, bc, ghost_gamma):
    """One explicit Perona-Malik step: the core's composition (backward differences, diffusivity,
    ``divergence_form``, the ``ssd_apply`` above) compiled as one XLA program. XLA fuses it into fewer
    passes than a hand-written flux form with edge padding and concatenated faces (measured 5-10x
    faster on the CPU)."""
    op = perona_malik_operator(u, lam=lam, diffusivity=name, bc=bc, ghost_gamma=ghost_gamma)
    return u + dt * (op @ u)


register("ssd_apply", "jax.numpy", ssd_apply)
register("ssd_apply_transpose", "jax.numpy", ssd_apply_transpose)
register("filter_step", "jax.numpy", filter_step)
register("perona_malik_step", "jax.numpy", perona_malik_step)
