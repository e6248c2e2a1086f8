r"""PyTorch fast paths: autograd Functions around slice-accumulate kernels; fused kernels on CUDA.

The operations (``o_k = (dy_k, dx_k)``, products only over in-grid neighbours):

- ``ssd_apply``: :math:`(A u)[p] = \sum_k d_k[p]\, u[p + o_k]`;
- ``ssd_apply_transpose``: :math:`(A^T u)[q] = \sum_k d_k[q - o_k]\, u[q - o_k]`;
- ``filter_step``: :math:`u + dt\,W_1(\zeta) u`, :math:`W_1` with FIVE_POINT diagonals
  :math:`(z_1, z_2, z_3, z_4, -z_5)`;
- ``perona_malik_step``: :math:`u + dt\,\nabla\cdot(\gamma\nabla u)` in flux form (face diffusivities times
  face differences against zero ghosts, differenced per axis).

Forward: the output is allocated once (as the centre product when there is a centre offset) and every
other offset adds ``d_k[window] * u[shifted window]`` into ``out[window]`` with one ``addcmul_``: no
image-sized temporaries and no zero padding by concatenation, which the generic code needs per offset.
Only in-grid windows are read, so a non-finite diagonal value pointing outside the grid never enters.

Backward: both operators are linear in ``u`` and in the diagonals. The gradient for ``u`` is the other
operator (``A^T g`` for ``A u``), the gradient for the diagonal ``k`` is ``g[p] u[p + o_k]`` on its window
(zero elsewhere), summed over broadcast batch axes; for ``filter_step`` the gradient for ``dt`` is
:math:`\langle g, W_1 u\rangle`. Nothing but the inputs is saved, and the backward is built from the same
Functions and differentiable ops, so double backward works.

On CUDA (outside ``torch.compile``) the kernels run in a functional form (zero-padded shifts, summed)
compiled by ``torch.compile``: inductor fuses it into one generated Triton kernel per operation that reads
every input once. Under an outer ``torch.compile`` the eager kernels are traced and fused with the rest of
the graph.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ssdops._array import neighbour_window
from ssdops.diffusivity import resolve

from . import register

__all__ = ["ssd_apply", "ssd_apply_transpose", "filter_step", "perona_malik_step"]

_CENTRE = (0, 0)
_FIVE_POINT = ((-1, 0), (0, -1), (1, 0), (0, 1), (0, 0))


def _windows(u, offset, transpose):
    """(output pixels, where d_k is read, where u is read) as index tuples for ``offset``."""
    grid = tuple(u.shape[-2:])
    if transpose:
        pixels, sources, _ = neighbour_window(grid, (-offset[0], -offset[1]))
        return pixels, sources, sources
    pixels, neighbours, _ = neighbour_window(grid, offset)
    return pixels, pixels, neighbours


def _accumulate(diagonals, offsets, u, transpose, value=1.0):
    """``sum_k value_k * (term k)``, the centre term (value 1) allocating the output."""
    order = sorted(range(len(offsets)), key=lambda k: offsets[k] != _CENTRE)
    first = order[0]
    if offsets[first] == _CENTRE:
        out = diagonals[..., first, :, :] * u
        order = order[1:]
    else:
        batch = torch.broadcast_shapes(diagonals.shape[:-3], u.shape[:-2])
        out = u.new_zeros(batch + tuple(u.shape[-2:]))
    for k in order:
        pixels, at_d, at_u = _windows(u, offsets[k], transpose)
        out[pixels].addcmul_(diagonals[..., k, :, :][at_d], u[at_u], value=value)
    return out


def _functional(diagonals, offsets, u, transpose):
    """The same sum as zero-padded shifted products: no in-place writes, so inductor fuses all of it."""
    out = None
    for k, offset in enumerate(offsets):
        pixels, at_d, at_u = _windows(u, offset, transpose)
        _, _, ((top, bottom), (left, right)) = neighbour_window(
            tuple(u.shape[-2:]), (-offset[0], -offset[1]) if transpose else offset
        )
        term = F.pad(diagonals[..., k, :, :][at_d] * u[at_u], (left, right, top, bottom))
        out = term if out is None else out + term
    return out


@functools.cache
def _compiled(fn):
    return torch.compile(fn, dynamic=True)


def _kernel(diagonals, offsets, u, transpose):
    if u.is_cuda and not torch.compiler.is_compiling():
        return _compiled(_functional)(diagonals, offsets, u, transpose)
    return _accumulate(diagonals, offsets, u, transpose)


def _diagonal_gradient(a, b, offsets, signs=None):
    """``G[..., k, p] = sign_k * a[p] * b[p + o_k]`` on the window of ``o_k``, 0 elsewhere (differentiable)."""
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    G = a.new_zeros(batch + (len(offsets),) + tuple(a.shape[-2:]))
    for k, offset in enumerate(offsets):
        pixels, _, at_b = _windows(b, offset, False)
        term = a[pixels] * b[at_b]
        G[(..., k) + pixels[1:]] = term if signs is None or signs[k] > 0 else -term
    return G


class _Apply(torch.autograd.Function):
    """``A u`` (``transpose=False``) or ``A^T u``, differentiable in the diagonals and in ``u``."""

    @staticmethod
    def forward(ctx, diagonals, u, offsets, transpose):
        ctx.save_for_backward(diagonals, u)
        ctx.offsets, ctx.transpose = offsets, transpose
        return _kernel(diagonals, offsets, u, transpose)

    @staticmethod
    def backward(ctx, g):
        diagonals, u = ctx.saved_tensors
        grad_d = grad_u = None
        if ctx.needs_input_grad[1]:
            grad_u = _Apply.apply(diagonals, g, ctx.offsets, not ctx.transpose).sum_to_size(u.shape)
        if ctx.needs_input_grad[0]:
            # A: d/d d_k(p) = g[p] u[p + o_k];  A^T: d/d d_k(p) = u[p] g[p + o_k].
            a, b = (u, g) if ctx.transpose else (g, u)
            grad_d = _diagonal_gradient(a, b, ctx.offsets).sum_to_size(diagonals.shape)
        return grad_d, grad_u, None, None


def ssd_apply(diagonals, offsets, u):
    """``A u`` (see the module docstring)."""
    return _Apply.apply(diagonals, u, tuple(offsets), False)


def ssd_apply_transpose(diagonals, offsets, u):
    """``A^T u`` (see the module docstring)."""
    return _Apply.apply(diagonals, u, tuple(offsets), True)


def _filter_kernel(u, zeta, dt):
    # r = z5 u - sum_k z_k u(. + o_k) = -W_1 u, then u + dt W_1 u = u - dt r, all in place.
    r = _accumulate(zeta, _FIVE_POINT, u, False, value=-1.0)
    return r.mul_(-dt).add_(u)


def _filter_functional(u, zeta, dt):
    signed = torch.cat([zeta[..., :4, :, :], -zeta[..., 4:, :, :]], dim=-3)
    return u + dt * _functional(signed, _FIVE_POINT, u, False)


class _FilterStep(torch.autograd.Function):
    """``u + W_dt(zeta) u``, differentiable in ``u``, ``zeta`` and a tensor ``dt``."""

    @staticmethod
    def forward(ctx, u, zeta, dt):
        ctx.save_for_backward(u, zeta, dt if isinstance(dt, torch.Tensor) else None)
        ctx.dt = None if isinstance(dt, torch.Tensor) else dt
        if u.is_cuda and not torch.compiler.is_compiling():
            return _compiled(_filter_functional)(u, zeta, dt)
        return _filter_kernel(u, zeta, dt)

    @staticmethod
    def backward(ctx, g):
        u, zeta, dt_tensor = ctx.saved_tensors
        dt = ctx.dt if dt_tensor is None else dt_tensor
        grad_u = grad_zeta = grad_dt = None
        if ctx.needs_input_grad[0]:
            # (I + dt W_1)^T g = g + dt (sum_k shift(z_k g, -o_k) - z5 g)
            neighbours = _Apply.apply(zeta[..., :4, :, :], g, _FIVE_POINT[:4], True)
            grad_u = (g + dt * (neighbours - zeta[..., 4, :, :] * g)).sum_to_size(u.shape)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            G = _diagonal_gradient(g, u, _FIVE_POINT, signs=(1, 1, 1, 1, -1))  # d(W_1 u)/d zeta, times g
            if ctx.needs_input_grad[1]:
                grad_zeta = (dt * G).sum_to_size(zeta.shape)
            if ctx.needs_input_grad[2]:
                grad_dt = (G * zeta).sum().to(dt_tensor.dtype).reshape(dt_tensor.shape)
        return grad_u, grad_zeta, grad_dt


def filter_step(u, zeta, dt):
    """``u + W_dt(zeta) u`` (see the module docstring)."""
    return _FilterStep.apply(u, zeta, dt)


def _boundary_face(edge, bc, ghost_gamma):
    """A boundary face's diffusivity from the edge pixels' gamma (see ``ssdops.operators._faces``)."""
    if bc == "neumann":
        return torch.zeros_like(edge)
    if ghost_gamma is None:
        return edge
    return (edge + ghost_gamma) / 2


def _faces(gamma, axis, bc, ghost_gamma):
    n = gamma.shape[axis]
    interior = (gamma.narrow(axis, 0, n - 1) + gamma.narrow(axis, 1, n - 1)) / 2
    lo = _boundary_face(gamma.narrow(axis, 0, 1), bc, ghost_gamma)
    hi = _boundary_face(gamma.narrow(axis, n - 1, 1), bc, ghost_gamma)
    return torch.cat([lo, interior, hi], dim=axis)


def _face_differences(u, axis, bc):
    """``u[i] - u[i-1]`` across the n + 1 faces of each line along ``axis``: 0 across a Neumann boundary,
    taken against the zero ghost for Dirichlet. Constant padding only: replicate padding is ~100x slower
    on the CPU."""
    pad = (0, 0, 1, 1) if axis == -2 else (1, 1)
    if bc == "neumann":
        return F.pad(u.diff(dim=axis), pad)
    return F.pad(u, pad).diff(dim=axis)


def _perona_malik(u, dt, lam, name, bc, ghost_gamma):
    """Flux form: fluxes ``F (u[i] - u[i-1])`` through the n + 1 faces of each line, ``L u`` their
    differences; the backward differences of the diffusivity are the fluxes' first n faces."""
    dy = _face_differences(u, -2, bc)
    dx = _face_differences(u, -1, bc)
    gamma = resolve(name)(dy[..., :-1, :] ** 2 + dx[..., :, :-1] ** 2, lam)
    flux_y = _faces(gamma, -2, bc, ghost_gamma) * dy
    flux_x = _faces(gamma, -1, bc, ghost_gamma) * dx
    return u + dt * (flux_y.diff(dim=-2) + flux_x.diff(dim=-1))


def perona_malik_step(u, dt, lam, name, bc, ghost_gamma):
    """One explicit Perona-Malik step (see the module docstring); autograd differentiates it."""
    if u.is_cuda and not torch.compiler.is_compiling():
        return _compiled(_perona_malik)(u, dt, lam, name, bc, ghost_gamma)
    return _perona_malik(u, dt, lam, name, bc, ghost_gamma)


for _xp_name in ("torch", "array_api_compat.torch"):
    register("ssd_apply", _xp_name, ssd_apply)
    register("ssd_apply_transpose", _xp_name, ssd_apply_transpose)
    register("filter_step", _xp_name, filter_step)
    register("perona_malik_step", _xp_name, perona_malik_step)
