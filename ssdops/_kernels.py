r"""The generic kernels: every operation of ssdops written once against the array API.

This is the reference that every fast path in :mod:`ssdops.backends` is tested against, and the only module
of the core that the backends import. Functions take the namespace ``xp`` first and arrays that have already
been validated (shapes, dtypes, boundary conditions): no checks here.

Windows: for an offset :math:`o` along the grid, the pixels :math:`p` whose neighbour :math:`p + o` lies in
the grid form a rectangle; products are formed on those rectangles only and padded back with zeros, so a
value that points outside the grid never reaches a result (even an inf or NaN: ``inf * 0`` would be NaN).
"""
from __future__ import annotations

import math
import warnings

from array_api_compat import device, is_numpy_namespace

from ._array import chunked_like, is_traced, to_numpy
from ._errors import ConvergenceError, ConvergenceWarning
from .diffusivity import resolve
from .solvers import bicgstab, cg
from .stencils import FIVE_POINT, GRID_LETTERS, centre, star

__all__ = [
    "FIVE_POINT",
    "along",
    "centre",
    "component",
    "grid_axes",
    "star",
    "apply_generic",
    "apply_transpose_generic",
    "backward_gradient_norm2",
    "boundary_face",
    "divergence_form_diagonals",
    "embed",
    "faces",
    "filter_step_generic",
    "forward_difference",
    "krylov_solve",
    "neighbour_window",
    "perona_malik_step_generic",
    "relative_residual",
    "resolve",
    "shift",
    "shifted_product",
    "transpose_diagonals",
    "zero_outside",
    "zeros",
]

KRYLOV = {"cg": cg, "bicgstab": bicgstab}


def grid_axes(ndim):
    """``(axis, unit offset)`` of each grid axis of a ``ndim``-dimensional grid, the first axis first."""
    return tuple((axis - ndim, tuple(int(i == axis) for i in range(ndim))) for axis in range(ndim))


def along(axis, index):
    """An index tuple applying ``index`` (a slice or an int) to the (negative) ``axis`` only."""
    return (..., index) + (slice(None),) * (-axis - 1)


def component(x, k, ndim):
    """``x[..., k, *grid]``: map ``k`` of a stack of maps over a ``ndim``-dimensional grid."""
    return x[along(-ndim - 1, k)]


# --- windows --------------------------------------------------------------------------------------
def zeros(xp, shape, like):
    return xp.zeros(shape, dtype=like.dtype, device=device(like))


def _axis_window(n, step):
    """Along an axis of length ``n``: the slice of pixels ``i`` whose neighbour ``i + step`` is inside,
    the slice of those neighbours, and how many pixels lie before and after the first slice."""
    lo = min(max(0, -step), n)
    hi = max(n - max(0, step), lo)
    return slice(lo, hi), slice(lo + step, hi + step) if hi > lo else slice(0, 0), (lo, n - hi)


def embed(xp, values, pads):
    """Surround ``values`` with zeros on its last ``len(pads)`` axes: ``pads`` holds one ``(before, after)``
    pair per grid axis."""
    for axis, (before, after) in zip(range(-len(pads), 0), pads):
        parts = []
        for count in (before, after):
            shape = list(values.shape)
            shape[axis] = count
            parts.append(zeros(xp, tuple(shape), values) if count else None)
        if parts[0] is not None or parts[1] is not None:
            values = xp.concat([p for p in (parts[0], values, parts[1]) if p is not None], axis=axis)
    return values


def neighbour_window(grid_shape, offset):
    """Index tuples ``(pixels, neighbours)`` over the pixels whose neighbour at ``offset`` is in the grid,
    and the zero padding that puts an image of those pixels back on the grid (for :func:`embed`)."""
    windows = [_axis_window(n, step) for n, step in zip(grid_shape, offset)]
    return ((...,) + tuple(w[0] for w in windows), (...,) + tuple(w[1] for w in windows),
            tuple(w[2] for w in windows))


def _grid(x, offset):
    return tuple(x.shape[-len(offset):])


def shift(xp, x, offset):
    """``y[..., p] = x[..., p + offset]``, zero where that pixel is outside the grid."""
    _, neighbours, pads = neighbour_window(_grid(x, offset), offset)
    return embed(xp, x[neighbours], pads)


def zero_outside(xp, x, offset):
    """``x`` where the pixel's neighbour at ``offset`` is inside the grid, exactly 0 elsewhere."""
    pixels, _, pads = neighbour_window(_grid(x, offset), offset)
    return embed(xp, x[pixels], pads)


def shifted_product(xp, d, u, offset):
    """``y[..., p] = d[..., p] * u[..., p + offset]`` for in-grid neighbours, 0 elsewhere (broadcasting)."""
    pixels, neighbours, pads = neighbour_window(_grid(u, offset), offset)
    return embed(xp, d[pixels] * u[neighbours], pads)


# --- SSD apply ------------------------------------------------------------------------------------
def apply_generic(xp, diagonals, offsets, u):
    """Reference apply: ``sum_k d_k(p) u(p + o_k)`` over in-grid neighbours, one product per offset."""
    ndim = len(offsets[0])
    out = None
    for k, o in enumerate(offsets):
        term = shifted_product(xp, component(diagonals, k, ndim), u, o)
        out = term if out is None else out + term
    return out


def apply_transpose_generic(xp, diagonals, offsets, u):
    """Reference transposed apply: ``y(q) = sum_k d_k(q - o_k) u(q - o_k)`` over in-grid ``q - o_k``."""
    ndim = len(offsets[0])
    out = None
    for k, o in enumerate(offsets):
        negated = tuple(-c for c in o)
        _, sources, pads = neighbour_window(_grid(u, o), negated)
        term = embed(xp, component(diagonals, k, ndim)[sources] * u[sources], pads)
        out = term if out is None else out + term
    return out


def transpose_diagonals(xp, diagonals, offsets):
    """Diagonals and offsets of the transpose: offset ``-o`` carries ``shift(d_o, -o)`` (canonical).

    ``A^T[q, q - o] = A[q - o, q] = d_o(q - o)``. When the negated offsets are the same set, the original
    order is kept, so that a transposed FIVE_POINT operator is again in FIVE_POINT order.
    """
    ndim = len(offsets[0])
    negated = [tuple(-c for c in o) for o in offsets]
    order = tuple(offsets) if set(negated) == set(offsets) else tuple(negated)
    columns = {neg: shift(xp, component(diagonals, k, ndim), neg) for k, neg in enumerate(negated)}
    return xp.stack([columns[o] for o in order], axis=-ndim - 1), order


def filter_step_generic(xp, u, zeta, dt):
    """Reference filter step: ``u + dt (sum_{k<2d} z_k u(. + o_k) - z_{2d} u)`` over the d-dimensional star
    (d from the ``2d + 1`` maps of ``zeta``), products only over in-grid neighbours; the diagonals
    ``dt * zeta`` are never formed."""
    ndim = maps_ndim(zeta, u)
    offsets = star(ndim)
    s = -component(zeta, 2 * ndim, ndim) * u
    for k, offset in enumerate(offsets[:-1]):
        s = s + shifted_product(xp, component(zeta, k, ndim), u, offset)
    return u + dt * s


def _broadcastable(a, b):
    return all(x == y or 1 in (x, y) for x, y in zip(a[::-1], b[::-1]))


def maps_ndim(zeta, u):
    """The grid dimension d of the ``2 d + 1`` filter maps ``zeta`` for the image ``u``: the largest d whose
    map axis holds ``2 d + 1`` maps over a grid of ``u``'s last d axes, the batch axes broadcasting (a 2-D
    ``(..., 5, H, W)`` stack never reads as 1-D maps); ValueError naming the mismatch otherwise. The public
    ``filter_step`` and every kernel read d with this one rule."""
    fits = [d for d in (3, 2, 1) if zeta.ndim >= d + 1 and zeta.shape[-d - 1] == 2 * d + 1]
    for d in fits:
        if u.ndim >= d and tuple(u.shape[-d:]) == tuple(zeta.shape[-d:]) and \
                _broadcastable(tuple(zeta.shape[:-d - 1]), tuple(u.shape[:-d])):
            return d
    if fits == [2] or (2 in fits and tuple(u.shape[-2:]) != tuple(zeta.shape[-2:])):
        d = 2
        raise ValueError(
            f"image of shape {tuple(u.shape)} does not match the operator's grid {tuple(zeta.shape[-d:])} "
            f"(zeta of shape {tuple(zeta.shape)}, read as {2 * d + 1} maps of a {d}-D grid)"
        )
    shapes = "; ".join(f"(..., {2 * d + 1}, {GRID_LETTERS[d]}) in {d}-D" for d in (2, 3, 1))
    raise ValueError(f"zeta must have shape {shapes}, got {tuple(zeta.shape)} for an image of shape "
                     f"{tuple(u.shape)}")


# --- divergence form and Perona-Malik -------------------------------------------------------------
def faces(xp, gamma, axis, bc, ghost_gamma):
    """Face diffusivities along ``axis``: shape n + 1 along it, faces 0 and n on the boundary.

    Interior face i (between pixels i - 1 and i) carries the mean of their gamma; a boundary face carries
    :func:`boundary_face` of the edge pixel's gamma.
    """
    n = gamma.shape[axis]
    first = gamma[along(axis, slice(None, 1))]
    last = gamma[along(axis, slice(n - 1, None))]
    head = gamma[along(axis, slice(None, n - 1))]
    tail = gamma[along(axis, slice(1, None))]
    interior = (head + tail) / 2
    lo, hi = boundary_face(xp, first, bc, ghost_gamma), boundary_face(xp, last, bc, ghost_gamma)
    return xp.concat([lo, interior, hi], axis=axis)


def boundary_face(xp, edge, bc, ghost_gamma):
    """The diffusivity of a boundary face from the edge pixels' gamma ``edge``: zero (neumann), the mean of
    the edge pixel's gamma and the ghost's (dirichlet), or the edge pixel's own gamma (dirichlet,
    ``ghost_gamma=None``). The one statement of the rule: the generic code and every kernel call it."""
    if bc == "neumann":
        return xp.zeros_like(edge)
    if ghost_gamma is None:
        return edge
    return (edge + ghost_gamma) / 2


def divergence_form_diagonals(xp, gamma, bc, ghost_gamma, ndim=2):
    r"""Star-stencil diagonals ``(..., 2d + 1, *grid)`` of :math:`\nabla\cdot(\gamma\nabla\,\cdot)` on the last
    ``ndim`` axes (canonical: zero where the neighbour is outside the grid); see
    :func:`ssdops.divergence_form`."""
    diagonals = {}
    centre_value = None
    for axis, unit in grid_axes(ndim):
        f = faces(xp, gamma, axis, bc, ghost_gamma)
        n = gamma.shape[axis]
        before = f[along(axis, slice(None, n))]  # face towards the previous pixel
        after = f[along(axis, slice(1, None))]  # face towards the next pixel
        backward = tuple(-c for c in unit)
        diagonals[backward] = zero_outside(xp, before, backward)
        diagonals[unit] = zero_outside(xp, after, unit)
        axis_centre = before + after
        centre_value = axis_centre if centre_value is None else centre_value + axis_centre
    diagonals[centre(ndim)] = -centre_value
    # The shifts above cut a chunked gamma's blocks at every face: the diagonals are laid out as gamma again.
    return chunked_like(xp.stack([diagonals[o] for o in star(ndim)], axis=-ndim - 1), gamma, ndim)


def forward_difference(xp, u, offset, bc):
    """``u[p + offset] - u[p]``; across the boundary 0 (neumann) or taken against the zero ghost."""
    diff = shift(xp, u, offset) - u
    if bc == "neumann":
        diff = zero_outside(xp, diff, offset)
    return diff


def backward_gradient_norm2(xp, u, bc, ndim=2):
    r""":math:`|\nabla u|^2 = \sum_{axes} (u_p - u_{p - e})^2`, backward differences as in the authors'
    Perona-Malik generator: across the boundary 0 (neumann) or against the zero ghost."""
    out = None
    for _, unit in grid_axes(ndim):
        d = forward_difference(xp, u, tuple(-c for c in unit), bc)
        out = d * d if out is None else out + d * d
    return out


def perona_malik_diagonals(xp, u, lam, g, bc, ghost_gamma, ndim=2):
    """Diagonals of the operator of one Perona-Malik step at ``u`` (``g`` a diffusivity function)."""
    gamma = g(backward_gradient_norm2(xp, u, bc, ndim), lam)
    return chunked_like(divergence_form_diagonals(xp, gamma, bc, ghost_gamma, ndim), u, ndim)  # as u's blocks


def perona_malik_step_generic(xp, u, dt, lam, g, bc, ghost_gamma, ndim=2):
    """Reference explicit Perona-Malik step ``u + dt L(g(|grad u|^2)) u``."""
    diagonals = perona_malik_diagonals(xp, u, lam, g, bc, ghost_gamma, ndim)
    return u + dt * apply_generic(xp, diagonals, star(ndim), u)


# --- Krylov solves of (I - dt A) x = u ------------------------------------------------------------
def relative_residual(xp, x, u, diagonals, offsets, dt, transpose=False):
    """Per image ``||u - (x - dt A x)|| / ||u||`` (``||r||`` where ``u = 0``), an array of the batch shape."""
    apply = apply_transpose_generic if transpose else apply_generic
    grid_axes_ = tuple(range(-len(offsets[0]), 0))
    r = u - (x - dt * apply(xp, diagonals, offsets, x))
    rn = xp.sqrt(xp.sum(r * r, axis=grid_axes_))
    un = xp.sqrt(xp.sum(u * u, axis=grid_axes_))
    return xp.where(un > 0, rn / xp.where(un > 0, un, xp.ones_like(un)), rn)


def report_nonconvergence(method, residual, tol, iterations, on_failure):
    message = (
        f"implicit_step did not converge: {method} reached a true relative residual of {residual:.3g} "
        f"(tol {tol:g}) after {iterations} iterations; raise maxiter, loosen tol or reduce dt (in float32 "
        "the residual cannot go much below eps * (1 + dt * ||A||): use float64 for tighter tolerances)"
    )
    if on_failure == "raise":
        raise ConvergenceError(message)
    warnings.warn(message, ConvergenceWarning, stacklevel=4)


def krylov_solve(xp, *, u, diagonals, offsets, dt, method, tol, maxiter, on_failure, x0, transpose=False,
                 product=None):
    """Generic batched solve of ``(I - dt A) x = u`` (or with ``A^T``) by ``method`` ("cg", "bicgstab");
    ``u`` and ``diagonals`` share the batch shape.

    Convergence is judged on the true relative residual :func:`relative_residual` of every image, computed
    after the Krylov loop with one more product, never on the loop's recurrence (which drifts from it by
    rounding). When the recurrence claims a convergence the true residual does not confirm, the loop
    restarts from ``x`` with the true residual, while each restart at least halves it and ``maxiter`` (the
    total over restarts) allows. Non-convergence raises or warns per ``on_failure`` with that residual.

    Traced values (:func:`ssdops._array.is_traced`: ``torch.func`` transforms, ``torch.compile``) cannot
    be read on the host: the loop then runs exactly ``maxiter`` iterations (converged images take zero
    steps), without restarts, and no convergence check is possible.

    ``product`` (``x -> A x``, or ``A^T x`` with ``transpose``), when given, replaces the generic products:
    a library kernel's own (dask's, chunk by chunk).
    """
    from . import backends  # the backends import this module: imported when called

    apply = apply_transpose_generic if transpose else apply_generic
    if product is not None:
        def apply(xp, diagonals, offsets, x):  # noqa: F811 (the given product replaces the generic one)
            return product(x)

    ndim = len(offsets[0])
    grid = tuple(u.shape[-ndim:])
    # NumPy (outside use_generic): the products by the blocked kernel and the solvers' updates in place, so
    # that a solve holds its work vectors and one temporary (the generic expressions make several per line).
    inplace = is_numpy_namespace(xp) and not backends.is_generic()

    # The solvers take per-image inner products over the last two axes: a grid of another dimension is
    # handed to them flattened to one row, (..., 1, N), and reshaped back around every product.
    def to_solver(a):
        return a if ndim == 2 else xp.reshape(a, tuple(a.shape[:-ndim]) + (1, math.prod(grid)))

    def to_grid(a):
        return a if ndim == 2 else xp.reshape(a, tuple(a.shape[:-2]) + grid)

    def matvec(x):
        x = to_grid(x)
        if not inplace:
            return to_solver(x - dt * apply(xp, diagonals, offsets, x))
        y = backends.dispatch("ssd_apply_transpose" if transpose else "ssd_apply", xp,
                              lambda: apply(xp, diagonals, offsets, x),
                              dict(diagonals=diagonals, offsets=offsets, u=x), ndim=ndim, dtype=x.dtype)
        y *= -dt  # x - dt A x, rounded as the generic expression, in the product's buffer
        y += x
        return to_solver(y)

    def residual_of(x):
        if not inplace and product is None:
            return relative_residual(xp, x, u, diagonals, offsets, dt, transpose)
        r = to_grid(matvec(to_solver(x)))
        r -= u  # (x - dt A x) - u: the residual's norm, in the product's buffer
        rn = xp.sqrt(xp.sum(r * r, axis=axes))
        r = None
        un = xp.sqrt(xp.sum(u * u, axis=axes))
        return xp.where(un > 0, rn / xp.where(un > 0, un, xp.ones_like(un)), rn)

    axes = tuple(range(-ndim, 0))
    x = xp.zeros_like(u) if x0 is None else x0 + xp.zeros_like(u)
    if math.prod(u.shape[:-ndim]) == 0:
        return x
    b = to_solver(u)
    if any(is_traced(a) for a in (u, diagonals, dt)):
        return to_grid(KRYLOV[method](xp, matvec, b, to_solver(x), tol=tol, maxiter=maxiter, host_reads=False)[0])
    iterations, previous = 0, math.inf
    while True:
        solver = KRYLOV[method]
        # In place only for ssdops' own solvers (one substituted in KRYLOV gets the generic call).
        options = {"inplace": True} if inplace and solver in (cg, bicgstab) else {}
        x, info = solver(xp, matvec, b, to_solver(x), tol=tol, maxiter=maxiter - iterations, **options)
        x = to_grid(x)
        iterations += info.iterations
        residual = float(to_numpy(xp.max(residual_of(x))))
        if residual <= tol:
            return x
        if not math.isfinite(residual):
            # The inputs were checked finite: a non-finite residual is an overflow of the working dtype in
            # the solver's inner products (sums of squares of the image), which no iteration count cures.
            wider = "" if x.dtype == xp.float64 else ", or use float64"
            raise FloatingPointError(
                f"implicit_step: overflow in {x.dtype} inside {method} (its inner products, sums of squares of "
                f"the image, exceed the dtype's range; largest |u| = {float(to_numpy(xp.max(xp.abs(u)))):.3g}): "
                f"solve for u / s and multiply the result by s (the step is linear){wider}"
            )
        if iterations >= maxiter or info.iterations == 0 or not residual < previous / 2:
            break
        previous = residual
    report_nonconvergence(method, residual, tol, iterations, on_failure)
    return x
