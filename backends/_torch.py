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

Transforms: the Functions define ``setup_context`` (``forward`` without ``ctx``), ``generate_vmap_rule``
(their forward and backward are torch operations; under ``torch.func`` the functional forms run, since a
batched tensor cannot be written into a fresh one) and a ``jvp`` (forward mode: both products are bilinear),
so ``torch.func.grad``, ``vmap``, ``jvp``, ``jacrev`` and ``jacfwd`` work. ``implicit_solve`` is a Function
whose backward (an adjoint solve, itself this Function) and jvp (one more solve) are differentiable again.
Dynamo cannot trace a Function with a custom ``jvp``: inside ``torch.compile`` the products and the filter
step are the functional forms, which autograd differentiates and inductor fuses forward and backward; a
Krylov solve is a graph break there (it runs eagerly, convergence check included).

On the CPU, when nothing is recorded for autograd (``torch.no_grad``, or no input requires a gradient) and
no transform or compile is active, the products, the filter step and the Perona-Malik step run the NumPy
backend's blocked kernels on the tensors' own memory (``Tensor.numpy()`` shares it); ``out=`` is supported
there. On CUDA (outside ``torch.compile``) the kernels run in a functional form (zero-padded shifts, summed)
compiled by ``torch.compile``: inductor fuses it into one generated Triton kernel per operation that reads
every input once. Under an outer ``torch.compile`` the eager kernels are traced and fused with the rest of
the graph.
"""
from __future__ import annotations

import functools
import os
from typing import Any

import array_api_compat.torch as torch_xp
import torch
import torch.nn.functional as F

from ssdops._kernels import FIVE_POINT as _FIVE_POINT
from ssdops._kernels import (
    apply_generic,
    apply_transpose_generic,
    boundary_face,
    centre,
    filter_step_generic,
    krylov_solve,
    maps_ndim,
    neighbour_window,
    perona_malik_step_generic,
    resolve,
)

from . import Adapter, _numpy_kernel, adapter_for, register

__all__ = ["ADAPTER", "filter_step", "implicit_solve", "perona_malik_step", "ssd_apply", "ssd_apply_transpose"]

_CENTRE = centre(2)


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


def _fused_on_cuda(*tensors):
    """Whether to run the compiled functional form: on CUDA, eagerly (an outer ``torch.compile`` fuses the
    eager kernels itself) and outside ``torch.func`` transforms (their wrapped tensors do not compile)."""
    return (tensors[0].is_cuda and not torch.compiler.is_compiling()
            and not _functorch_wrapped(*tensors))


def _functorch_wrapped(*tensors):
    """Whether any tensor is a ``torch.func`` wrapper (grad, jvp) or a batched tensor (vmap): in-place
    writes into a fresh tensor fail on those, so the functional forms run. (Dynamo cannot call the test;
    while compiling, the eager kernels are traced.)"""
    wrapped = torch._C._functorch.is_functorch_wrapped_tensor
    return not torch.compiler.is_compiling() and any(isinstance(t, torch.Tensor) and wrapped(t) for t in tensors)


def _kernel(diagonals, offsets, u, transpose):
    if _fused_on_cuda(u, diagonals):
        return _compiled(_functional)(diagonals, offsets, u, transpose)
    if _functorch_wrapped(u, diagonals):
        return _functional(diagonals, offsets, u, transpose)
    return _accumulate(diagonals, offsets, u, transpose)


def _diagonal_gradient(a, b, offsets, signs=None):
    """``G[..., k, p] = sign_k * a[p] * b[p + o_k]`` on the window of ``o_k``, 0 elsewhere (pure torch ops:
    differentiable again, and vmapped by ``generate_vmap_rule``)."""
    terms = []
    for k, offset in enumerate(offsets):
        pixels, _, at_b = _windows(b, offset, False)
        _, _, ((top, bottom), (left, right)) = neighbour_window(tuple(b.shape[-2:]), offset)
        term = F.pad(a[pixels] * b[at_b], (left, right, top, bottom))
        terms.append(term if signs is None or signs[k] > 0 else -term)
    return torch.stack(torch.broadcast_tensors(*terms), dim=-3)


def _sum_to(grad, like):
    """``grad`` reduced over the axes along which ``like`` was broadcast (None stays None)."""
    return None if grad is None else grad.sum_to_size(like.shape)


class _Apply(torch.autograd.Function):
    """``A u`` (``transpose=False``) or ``A^T u``, differentiable in the diagonals and in ``u``: reverse
    mode (the other product; the diagonals' gradient at the stencil's non-zeros), forward mode (``jvp``: the
    product is bilinear) and ``vmap`` (generated from these torch ops)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(diagonals, u, offsets, transpose):
        return _kernel(diagonals, offsets, u, transpose)

    @staticmethod
    def setup_context(ctx, inputs, output):
        diagonals, u, offsets, transpose = inputs
        ctx.save_for_backward(diagonals, u)
        ctx.save_for_forward(diagonals, u)
        ctx.offsets, ctx.transpose = offsets, transpose

    @staticmethod
    def backward(ctx, g):
        diagonals, u = ctx.saved_tensors
        grad_d = grad_u = None
        if ctx.needs_input_grad[1]:
            grad_u = _Apply.apply(diagonals, g, ctx.offsets, not ctx.transpose)
        if ctx.needs_input_grad[0]:
            # A: d/d d_k(p) = g[p] u[p + o_k];  A^T: d/d d_k(p) = u[p] g[p + o_k].
            a, b = (u, g) if ctx.transpose else (g, u)
            grad_d = _diagonal_gradient(a, b, ctx.offsets)
        return _sum_to(grad_d, diagonals), _sum_to(grad_u, u), None, None

    @staticmethod
    def jvp(ctx, diagonals_t, u_t, _offsets, _transpose):
        diagonals, u = ctx.saved_tensors
        terms = []
        if u_t is not None:
            terms.append(_Apply.apply(diagonals, u_t, ctx.offsets, ctx.transpose))
        if diagonals_t is not None:
            terms.append(_Apply.apply(diagonals_t, u, ctx.offsets, ctx.transpose))
        return sum(terms[1:], terms[0])


def _on_host_without_autograd(*values):
    """Whether the NumPy kernel can compute this call on the tensors' own memory: CPU tensors of float32 /
    float64, nothing to record for autograd, no ``torch.func`` transform, not compiling. Then ``.numpy()``
    shares the memory (no copy) and the blocked, multi-threaded NumPy kernel runs: the same numbers as
    the generic code (both are tested against it), several times faster than chains of eager torch ops on
    the CPU (which page-fault fresh outputs and pass over memory once per operation)."""
    if torch.compiler.is_compiling():
        return False
    recording = torch.is_grad_enabled()
    for v in values:
        if isinstance(v, torch.Tensor):
            if (v.device.type != "cpu" or v.dtype not in (torch.float32, torch.float64)
                    or (recording and v.requires_grad) or torch._C._functorch.is_functorch_wrapped_tensor(v)):
                return False
    return torch._C._functorch.maybe_current_level() is None


def _on_host(name, grid_ndim, **arguments):
    """The NumPy kernel ``name`` on host views of the tensor arguments; its result as a tensor (a view)."""
    kernel = _numpy_kernel(name, grid_ndim)
    host = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in arguments.items()}
    return torch.from_numpy(kernel(**host))


def _product(diagonals, offsets, u, transpose, out):
    name = "ssd_apply_transpose" if transpose else "ssd_apply"
    if _on_host_without_autograd(diagonals, u, out):
        result = _on_host(name, len(offsets[0]), diagonals=diagonals, offsets=offsets, u=u, out=out)
        return result if out is None else out
    if out is not None:
        raise TypeError("out= is not supported while autograd records the product (or under torch.func / "
                        "torch.compile, or off the CPU): use the returned tensor")
    if len(offsets[0]) != 2:  # the autograd kernels are 2-D; autograd differentiates the generic code
        return (apply_transpose_generic if transpose else apply_generic)(torch_xp, diagonals, offsets, u)
    # Dynamo cannot trace a Function with a custom jvp: compiled code gets the functional form, which
    # autograd differentiates and inductor fuses, forward and backward.
    if torch.compiler.is_compiling():
        return _functional(diagonals, offsets, u, transpose)
    return _Apply.apply(diagonals, u, offsets, transpose)


def ssd_apply(*, diagonals, offsets, u, out=None):
    """``A u`` (see the module docstring)."""
    return _product(diagonals, tuple(offsets), u, False, out)


def ssd_apply_transpose(*, diagonals, offsets, u, out=None):
    """``A^T u`` (see the module docstring)."""
    return _product(diagonals, tuple(offsets), u, True, out)


def _signed(zeta):
    r"""The FIVE_POINT diagonals of :math:`W_1(\zeta)`: ``(z_1, z_2, z_3, z_4, -z_5)``."""
    return torch.cat([zeta[..., :4, :, :], -zeta[..., 4:, :, :]], dim=-3)


def _filter_kernel(u, zeta, dt):
    # r = z5 u - sum_k z_k u(. + o_k) = -W_1 u, then u + dt W_1 u = u - dt r, all in place.
    r = _accumulate(zeta, _FIVE_POINT, u, False, value=-1.0)
    return r.mul_(-dt).add_(u)


def _filter_functional(u, zeta, dt):
    return u + dt * _functional(_signed(zeta), _FIVE_POINT, u, False)


class _FilterStep(torch.autograd.Function):
    """``u + W_dt(zeta) u``, differentiable in ``u``, ``zeta`` and a tensor ``dt`` (reverse and forward
    mode; ``vmap`` generated)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(u, zeta, dt):
        if _fused_on_cuda(u, zeta, dt):
            return _compiled(_filter_functional)(u, zeta, dt)
        if _functorch_wrapped(u, zeta, dt):
            return _filter_functional(u, zeta, dt)
        return _filter_kernel(u, zeta, dt)

    @staticmethod
    def setup_context(ctx, inputs, output):
        u, zeta, dt = inputs
        dt_tensor = dt if isinstance(dt, torch.Tensor) else None
        ctx.save_for_backward(u, zeta, dt_tensor)
        ctx.save_for_forward(u, zeta, dt_tensor)
        ctx.dt = None if isinstance(dt, torch.Tensor) else dt

    @staticmethod
    def backward(ctx, g):
        u, zeta, dt_tensor = ctx.saved_tensors
        dt = ctx.dt if dt_tensor is None else dt_tensor
        grad_u = grad_zeta = grad_dt = None
        if ctx.needs_input_grad[0]:
            # (I + dt W_1)^T g = g + dt (sum_k shift(z_k g, -o_k) - z5 g)
            neighbours = _Apply.apply(zeta[..., :4, :, :], g, _FIVE_POINT[:4], True)
            grad_u = g + dt * (neighbours - zeta[..., 4, :, :] * g)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            G = _diagonal_gradient(g, u, _FIVE_POINT, signs=(1, 1, 1, 1, -1))  # d(W_1 u)/d zeta, times g
            if ctx.needs_input_grad[1]:
                grad_zeta = dt * G
            if ctx.needs_input_grad[2]:
                grad_dt = (G * zeta).sum()
        return _sum_to(grad_u, u), _sum_to(grad_zeta, zeta), _sum_to(grad_dt, dt_tensor)

    @staticmethod
    def jvp(ctx, u_t, zeta_t, dt_t):
        # d(u + dt W(z) u) = du + dt W(z) du + dt W(dz) u + ddt W(z) u
        u, zeta, dt_tensor = ctx.saved_tensors
        dt = ctx.dt if dt_tensor is None else dt_tensor
        terms = []
        if u_t is not None:
            terms.append(_FilterStep.apply(u_t, zeta, dt))
        if zeta_t is not None:
            terms.append(dt * _Apply.apply(_signed(zeta_t), u, _FIVE_POINT, False))
        if dt_t is not None:
            terms.append(dt_t * _Apply.apply(_signed(zeta), u, _FIVE_POINT, False))
        return sum(terms[1:], terms[0])


def filter_step(*, u, zeta, dt):
    """``u + W_dt(zeta) u`` (see the module docstring); on signals and volumes under autograd the generic
    code, which autograd differentiates."""
    ndim = maps_ndim(zeta, u)
    if _on_host_without_autograd(u, zeta, dt):
        return _on_host("filter_step", ndim, u=u, zeta=zeta, dt=_number(dt))
    if ndim != 2:
        return filter_step_generic(torch_xp, u, zeta, dt)
    if torch.compiler.is_compiling():
        return _filter_functional(u, zeta, dt)  # as in _product
    return _FilterStep.apply(u, zeta, dt)


def _faces(gamma, axis, bc, ghost_gamma):
    n = gamma.shape[axis]
    interior = (gamma.narrow(axis, 0, n - 1) + gamma.narrow(axis, 1, n - 1)) / 2
    lo = boundary_face(torch_xp, gamma.narrow(axis, 0, 1), bc, ghost_gamma)
    hi = boundary_face(torch_xp, gamma.narrow(axis, n - 1, 1), bc, ghost_gamma)
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


def _number(v):
    """A 0-d CPU tensor without gradient as a Python float (for the NumPy kernels), anything else as is."""
    return v.item() if isinstance(v, torch.Tensor) else v


#: ``SSDOPS_TORCH_COMPILE_CPU=1``: on the CPU the Perona-Malik step runs the flux form compiled by inductor
#: (generated C++, fused into one loop: measured 2.3x faster than the NumPy kernel at 2048², see
#: benchmarks/RESULTS.md) instead of the NumPy kernel or eager torch. Off by default: the first call of each
#: shape compiles for seconds, and it needs a C++ compiler.
COMPILE_ON_CPU = os.environ.get("SSDOPS_TORCH_COMPILE_CPU", "") not in ("", "0")


def perona_malik_step(*, u, dt, lam, diffusivity, bc, ghost_gamma, ndim):
    """One explicit Perona-Malik step (see the module docstring); autograd differentiates it."""
    if ndim == 2 and COMPILE_ON_CPU and u.device.type == "cpu" and not torch.compiler.is_compiling() \
            and not _functorch_wrapped(u, dt, lam):
        return _compiled(_perona_malik)(u, dt, lam, diffusivity, bc, ghost_gamma)
    if _on_host_without_autograd(u, dt, lam, ghost_gamma):
        return _on_host("perona_malik_step", ndim, u=u, dt=_number(dt), lam=_number(lam), diffusivity=diffusivity,
                             bc=bc, ghost_gamma=_number(ghost_gamma), ndim=ndim)
    if ndim != 2:  # signals and volumes under autograd: the generic code, differentiated by autograd
        return perona_malik_step_generic(torch_xp, u, dt, lam, resolve(diffusivity), bc, ghost_gamma, ndim)
    if _fused_on_cuda(u, dt, lam):
        return _compiled(_perona_malik)(u, dt, lam, diffusivity, bc, ghost_gamma)
    return _perona_malik(u, dt, lam, diffusivity, bc, ghost_gamma)



class _ImplicitSolve(torch.autograd.Function):
    r"""``x = (I - dt A)^{-1} u`` (``A^T`` with ``transpose``), by the generic Krylov loop.

    Reverse mode: the adjoint solve :math:`(I - dt A^\top) w = \bar x` (this Function again, transposed),
    then :math:`\bar u = w` and the diagonals and ``dt`` get :math:`w^\top \partial(dt A) x` at the
    stencil's non-zeros. Every piece is a differentiable torch operation or Function, so the backward is
    differentiable again (grad of grad, ``gradgradcheck``). Forward mode: :math:`\dot x = (I - dt A)^{-1}
    (\dot u + \dot{(dt A)} x)`, one more solve. ``vmap``: generated; the Krylov loop then runs ``maxiter``
    iterations without reading the host (see :func:`ssdops._kernels.krylov_solve`).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(u, diagonals, dt, offsets, transpose, settings):
        return krylov_solve(torch_xp, u=u, diagonals=diagonals, offsets=offsets, dt=dt, transpose=transpose,
                            **settings)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, diagonals, dt, offsets, transpose, settings = inputs
        dt_tensor = dt if isinstance(dt, torch.Tensor) else None
        ctx.save_for_backward(output, diagonals, dt_tensor)
        ctx.save_for_forward(output, diagonals, dt_tensor)
        ctx.dt = None if isinstance(dt, torch.Tensor) else dt
        # The adjoint and tangent solves start from zero: x0 was a guess for x only.
        ctx.offsets, ctx.transpose, ctx.settings = offsets, transpose, {**settings, "x0": None}

    @staticmethod
    def _solve(ctx, rhs, diagonals, dt, transpose):
        return _ImplicitSolve.apply(rhs, diagonals, dt, ctx.offsets, transpose, ctx.settings)

    @staticmethod
    def backward(ctx, grad_x):
        x, diagonals, dt_tensor = ctx.saved_tensors
        dt = ctx.dt if dt_tensor is None else dt_tensor
        w = _ImplicitSolve._solve(ctx, grad_x, diagonals, dt, not ctx.transpose)
        grad_d = grad_dt = None
        if ctx.needs_input_grad[1]:
            # w^T dt A x: d/d d_k(p) = dt w[p] x[p + o_k];  with A^T: dt x[p] w[p + o_k].
            a, b = (x, w) if ctx.transpose else (w, x)
            grad_d = dt * _diagonal_gradient(a, b, ctx.offsets)
        if ctx.needs_input_grad[2]:
            grad_dt = (w * _Apply.apply(diagonals, x, ctx.offsets, ctx.transpose)).sum()
        return w, _sum_to(grad_d, diagonals), _sum_to(grad_dt, dt_tensor), None, None, None

    @staticmethod
    def jvp(ctx, u_t, diagonals_t, dt_t, _offsets, _transpose, _settings):
        x, diagonals, dt_tensor = ctx.saved_tensors
        dt = ctx.dt if dt_tensor is None else dt_tensor
        rhs = [] if u_t is None else [u_t]
        if diagonals_t is not None:
            rhs.append(dt * _Apply.apply(diagonals_t, x, ctx.offsets, ctx.transpose))
        if dt_t is not None:
            rhs.append(dt_t * _Apply.apply(diagonals, x, ctx.offsets, ctx.transpose))
        return _ImplicitSolve._solve(ctx, sum(rhs[1:], rhs[0]), diagonals, dt, ctx.transpose)


def implicit_solve(*, u, diagonals, offsets, dt, method, tol, maxiter, on_failure, x0):
    """``(I - dt A)^{-1} u`` by the generic Krylov loop, as a Function differentiable to any order."""
    settings = dict(method=method, tol=tol, maxiter=maxiter, on_failure=on_failure, x0=x0)
    return _ImplicitSolve.apply(u, diagonals, dt, tuple(offsets), False, settings)


class TorchAdapter(Adapter):
    """PyTorch: ``torch.func`` transforms and ``torch.compile`` trace; host reads detach and copy to the CPU;
    aliasing by storage; ``SSD`` a node of ``torch.utils._pytree`` (so ``torch.func`` takes operators)."""

    def is_traced(self, x):
        # Under a torch.func transform every tensor computed is wrapped, even from plain ones, so no check
        # could read its result; while compiling a host read would break the graph (numbers included).
        if torch.compiler.is_compiling() or torch._C._functorch.maybe_current_level() is not None:
            return True
        return isinstance(x, torch.Tensor) and torch._C._functorch.is_functorch_wrapped_tensor(x)

    def compiling(self):
        return torch.compiler.is_compiling()

    def to_numpy(self, x):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()  # NumPy has no bfloat16: exact widening

    def is_all_finite(self, x):
        # On the CPU NumPy reduces the tensor's own memory: torch's reduction leaves its OpenMP threads
        # spinning, which then take the cores from the NumPy kernel of the step that follows (+60 % for
        # perona_malik(u, steps=1) at 2048², benchmarks/check_overhead.py).
        if _on_host_without_autograd(x):
            host = x.detach().numpy()
            return adapter_for(host).is_all_finite(host)
        return super().is_all_finite(x)

    def shares_memory(self, a, b):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.device == b.device
                and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr())

    def register_type(self, cls, flatten, unflatten):
        # Registration takes a lock Dynamo cannot enter: retried after the compiled call.
        if torch.compiler.is_compiling():
            return False
        if cls not in torch.utils._pytree.SUPPORTED_NODES:
            torch.utils._pytree.register_pytree_node(
                cls, flatten, lambda children, aux: unflatten(aux, children),
                serialized_type_name=f"{cls.__module__}.{cls.__qualname__}",
            )
        return True


ADAPTER = TorchAdapter("torch")

_ON_HOST: dict[str, Any] = {"ssd_apply": ssd_apply, "ssd_apply_transpose": ssd_apply_transpose,
                            "filter_step": filter_step, "perona_malik_step": perona_malik_step}
for _operation, _function in _ON_HOST.items():
    register(_operation, "torch", _function, numpy_on_host="CPU tensors without autograd")
register("implicit_solve", "torch", implicit_solve, ndims=(2,))
