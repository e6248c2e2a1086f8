r"""Diffusion operators with explicit boundary conditions, assembled directly as SSD diagonals.

Boundary conditions (``bc``):

``"neumann"``
    Zero flux through the boundary: only the faces between two grid pixels carry diffusivity.
``"dirichlet"``
    The grid is surrounded by ghost pixels with :math:`u = 0`; the face between an edge pixel and its ghost
    carries the mean of the edge pixel's diffusivity and the ghost's ``ghost_gamma``. ``ghost_gamma=None``
    gives the ghost the edge pixel's own diffusivity (the textbook operator, equal to scipy's
    ``LaplacianNd(..., boundary_conditions="dirichlet")`` for constant gamma); ``ghost_gamma=0.0`` is the
    convention of the authors' data generator (the boundary face gets half the edge diffusivity).

Periodic boundaries are out of scope: an SSD matrix has no wrap-around entries.

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from array_api_compat import device, is_numpy_namespace

from . import backends
from ._array import Array, Scalar, chunked_like, like_namespace, namespace
from ._kernels import (
    along,
    boundary_face,
    component,
    divergence_form_diagonals,
    forward_difference,
    grid_axes,
    shift,
    zero_outside,
)
from ._validate import GRID_LETTERS, check_bc, check_grid, check_grid_shape, check_image, check_ndim, plain_scalar
from .ssd import SSD, Tags
from .stencils import star

__all__ = ["divergence", "divergence_form", "gradient", "laplacian", "ssd_from_filters"]


#: -(D^T diag(g) D) is negative semidefinite for face diffusivities g >= 0 (the documented contract on gamma;
#: values are not read, so the tag also holds for a traced gamma).
_DIVERGENCE_FORM_TAGS = Tags(symmetric=True, definiteness="negative_semidefinite")

def divergence_form(gamma: Array, *, ndim: int = 2, bc: str = "neumann", ghost_gamma: Scalar | None = None) -> SSD:
    r"""The operator :math:`L(\gamma) u = \nabla\cdot(\gamma \nabla u)` as a symmetric star-stencil SSD.

    3-point in 1-D, 5-point in 2-D, 7-point in 3-D. Neumann uses the interior faces only (zero row sums);
    Dirichlet adds the two boundary faces of every line, against a ghost pixel with :math:`u = 0` and
    diffusivity ``ghost_gamma`` (default: the edge pixel's own gamma, the textbook operator; ``0.0``: the
    authors' data generator).

    Parameters
    ----------
    gamma : array ``(..., *grid)``
        Diffusivity per pixel, real floating point, >= 0 (the operator is tagged negative semidefinite, which
        holds for gamma >= 0; values are not checked); batch axes give a batch of operators.
    ndim : {1, 2, 3}, default 2
        The grid dimension: the last ``ndim`` axes of ``gamma`` are the grid (a ``(D, H, W)`` array with the
        default ``ndim=2`` is a batch of D images).
    bc : {"neumann", "dirichlet"}, default "neumann"
        The boundary condition (see :mod:`ssdops.operators`).
    ghost_gamma : float or None, default None
        Dirichlet only: the diffusivity of the ghost pixels, a finite number >= 0; ``None`` gives each ghost
        the diffusivity of its edge pixel.

    Returns
    -------
    SSD
        The operator, diagonals ``(..., 2 ndim + 1, *grid)`` in the star order (:data:`ssdops.FIVE_POINT` in
        2-D), of ``gamma``'s library, dtype and device, tagged symmetric and negative semidefinite.

    Raises
    ------
    TypeError
        If ``gamma`` is not a real floating-point array, ``ndim`` not an integer, or ``ghost_gamma`` neither a
        number nor None.
    ValueError
        If ``gamma`` has fewer than ``ndim`` axes or a zero-length grid axis; if ``ndim`` is not 1, 2 or 3;
        for an unknown ``bc``; for ``ghost_gamma`` with ``bc="neumann"``, or a ``ghost_gamma`` that is not
        finite and >= 0.

    See Also
    --------
    laplacian : The operator with :math:`\gamma = 1`.
    perona_malik_operator : The operator with :math:`\gamma = g(|\nabla u|^2)`.
    explicit_step : One step :math:`u + \Delta t\,L(\gamma)u`.
    implicit_step : One step :math:`(I - \Delta t\,L(\gamma))^{-1}u`.

    Notes
    -----
    With face diffusivities the mean of the two pixels' gamma, :math:`\gamma_{i+\frac12,j} =
    \frac12(\gamma_{ij} + \gamma_{i+1,j})`, the 2-D operator is

    .. math::

       (L(\gamma)u)_{ij} = \gamma_{i-\frac12,j}(u_{i-1,j} - u_{ij}) + \gamma_{i,j-\frac12}(u_{i,j-1} - u_{ij})
       + \gamma_{i+\frac12,j}(u_{i+1,j} - u_{ij}) + \gamma_{i,j+\frac12}(u_{i,j+1} - u_{ij}),

    that is :math:`L(\gamma) = -(D_y^\top \operatorname{diag}(g_y) D_y + D_x^\top \operatorname{diag}(g_x) D_x)`
    with face differences :math:`D` and face diffusivities :math:`g`, and the paper's stencil (4.4)
    (times :math:`\Delta t`) with :math:`g_1 .. g_4` the four face diffusivities. A face outside the grid is
    left out (Neumann) or joins the pixel to a ghost with :math:`u = 0` (Dirichlet). In d dimensions, one
    such pair of terms per grid axis.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 2 (:math:`L(\gamma)u = \nabla\cdot(\gamma\nabla u)`) and
           eq. (4.4).
    .. [2] P. Perona and J. Malik, "Scale-space and edge detection using anisotropic diffusion", IEEE Trans.
           Pattern Anal. Mach. Intell. 12(7), 1990.

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> L = ssdops.divergence_form(np.ones((3, 3)), bc="dirichlet", ghost_gamma=0.0)
    >>> L.diagonal((0, 0))[0]          # corner: two half faces, edge: one half face
    array([-3. , -3.5, -3. ])
    >>> ssdops.to_scipy(ssdops.divergence_form(np.array([1.0, 3.0, 1.0]), ndim=1)).toarray()
    array([[-2.,  2.,  0.],
           [ 2., -4.,  2.],
           [ 0.,  2., -2.]])
    """
    xp = check_image(gamma, "gamma", ndim)
    check_bc(bc, ghost_gamma)
    if is_numpy_namespace(xp) and not backends.is_generic():
        return SSD(_divergence_form_numpy(gamma, bc, ghost_gamma, check_ndim(ndim)), star(check_ndim(ndim)),
                   tags=_DIVERGENCE_FORM_TAGS)
    return SSD(divergence_form_diagonals(xp, gamma, bc, ghost_gamma, ndim), star(ndim), tags=_DIVERGENCE_FORM_TAGS)


def _divergence_form_numpy(gamma, bc, ghost_gamma, ndim):
    """:func:`ssdops._kernels.divergence_form_diagonals` of a NumPy ``gamma``, written slot by slot into the
    one output array (the generic code builds each diagonal from several image-sized temporaries): building
    holds the 2d + 1 diagonals and nothing image-sized besides."""
    grid = tuple(gamma.shape[-ndim:])
    out = np.empty(tuple(gamma.shape[:-ndim]) + (2 * ndim + 1,) + grid, dtype=gamma.dtype)
    centre_value = component(out, 2 * ndim, ndim)
    for i, (axis, _) in enumerate(grid_axes(ndim)):
        before, after = component(out, i, ndim), component(out, ndim + i, ndim)
        # before[p] = the face towards the previous pixel, the mean of the two pixels' gamma (zero at the first
        # pixel, whose neighbour is outside); after[p] = the face towards the next pixel = before[p + 1].
        inner = before[along(axis, slice(1, None))]
        np.add(gamma[along(axis, slice(None, -1))], gamma[along(axis, slice(1, None))], out=inner)
        np.divide(inner, 2, out=inner)
        before[along(axis, slice(0, 1))] = 0
        after[along(axis, slice(None, -1))] = inner
        after[along(axis, slice(-1, None))] = 0
        if i == 0:
            np.add(before, after, out=centre_value)
        else:
            centre_value += before
            centre_value += after
        if bc == "dirichlet":  # the boundary faces enter the centre only (neumann: zero)
            n = grid[i]
            for edge in (slice(0, 1), slice(n - 1, n)):
                centre_value[along(axis, edge)] += boundary_face(np, gamma[along(axis, edge)], bc, ghost_gamma)
    np.negative(centre_value, out=centre_value)
    return out


def laplacian(grid_shape: Sequence[int], *, bc: str = "neumann", like: Array | None = None) -> SSD:
    r"""The star-stencil Laplacian on a 1-, 2- or 3-D grid (3-, 5- or 7-point).

    The operator ``divergence_form(ones(grid_shape), ndim=len(grid_shape), bc=bc)``, tagged so that
    :func:`implicit_step` and :func:`heat` solve with it exactly by a DCT or DST. Equals
    ``scipy.sparse.linalg.LaplacianNd(grid_shape, boundary_conditions=bc)`` on every grid with all sides
    >= 2. On a length-1 axis scipy's Neumann operator puts -1 on the diagonal (its rows do not sum to zero);
    this one has no face along that axis and keeps zero row sums.

    Parameters
    ----------
    grid_shape : sequence of int
        The grid, one, two or three integers >= 1; the grid dimension is ``len(grid_shape)``.
    bc : {"neumann", "dirichlet"}, default "neumann"
        The boundary condition: zero flux, or zero ghost pixels.
    like : array, optional
        An array whose namespace, dtype and device the result takes (default NumPy float64).

    Returns
    -------
    SSD
        The Laplacian, unbatched, with ``tags == Tags(symmetric=True, laplacian=(bc, 1.0))``.

    Raises
    ------
    TypeError
        If ``grid_shape`` is not a sequence of integers, or ``like`` is not a real floating-point array.
    ValueError
        If ``grid_shape`` has not 1, 2 or 3 entries, an entry below 1, or ``bc`` is unknown.

    See Also
    --------
    divergence_form : The variable-coefficient operator.
    heat : The exact heat equation :math:`\exp(T L) u_0`.
    spectrum : Eigenvalues of an operator.

    Notes
    -----
    In 2-D the 5-point stencil

    .. math::

       (L u)_{ij} = u_{i-1,j} + u_{i,j-1} - 4 u_{ij} + u_{i,j+1} + u_{i+1,j}, \qquad
       L \leftrightarrow \begin{bmatrix} 0 & 1 & 0 \\ 1 & -4 & 1 \\ 0 & 1 & 0 \end{bmatrix},

    with the neighbours outside the grid left out (Neumann: the centre counts only in-grid neighbours) or
    taken as zero (Dirichlet). Its eigenvalues are sums over the axes of :math:`-4\sin^2(\pi k / 2n)`,
    :math:`k = 0..n-1` (Neumann, DCT-II modes) or :math:`-4\sin^2(\pi k / (2n + 2))`, :math:`k = 1..n`
    (Dirichlet, DST-I modes).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 2.1 (the isotropic case :math:`\gamma = 1`) and eq. (4.4).

    Examples
    --------
    >>> import ssdops
    >>> ssdops.to_scipy(ssdops.laplacian((3, 3), bc="dirichlet")).diagonal()
    array([-4., -4., -4., -4., -4., -4., -4., -4., -4.])
    >>> ssdops.to_scipy(ssdops.laplacian((3,))).toarray()
    array([[-1.,  1.,  0.],
           [ 1., -2.,  1.],
           [ 0.,  1., -1.]])
    >>> ssdops.laplacian((4, 5, 6)).offsets == ssdops.SEVEN_POINT
    True
    """
    xp, dtype, dev = like_namespace(like)
    check_bc(bc)
    grid = check_grid_shape(grid_shape, ndim=(1, 2, 3))
    if is_numpy_namespace(xp) and not backends.is_generic():
        diagonals = _laplacian_numpy(grid, bc, dtype)
    else:
        ones = xp.ones(grid, dtype=dtype, device=dev)
        diagonals = divergence_form_diagonals(xp, ones, bc, None, len(grid))
    diagonals = chunked_like(diagonals, like, len(grid))
    return SSD(diagonals, star(len(grid)), tags=Tags(symmetric=True, laplacian=(bc, 1.0)))


def _laplacian_numpy(grid, bc, dtype):
    """The Laplacian's diagonals in NumPy, written in place (no image-sized temporary): 1 towards every in-grid
    neighbour; the centre minus the number of in-grid neighbours (neumann) or -2d (dirichlet: a face to the
    zero ghost with the edge pixel's gamma, 1)."""
    ndim = len(grid)
    out = np.ones((2 * ndim + 1,) + grid, dtype=dtype)
    for i, (axis, _) in enumerate(grid_axes(ndim)):
        out[i][along(axis, slice(0, 1))] = 0
        out[ndim + i][along(axis, slice(-1, None))] = 0
    if bc == "dirichlet":
        out[2 * ndim] = -2 * ndim
    else:
        np.sum(out[: 2 * ndim], axis=0, out=out[2 * ndim])
        np.negative(out[2 * ndim], out=out[2 * ndim])
    return out


def gradient(u: Array, *, ndim: int = 2, bc: str = "neumann") -> Array:
    r"""Forward differences along each grid axis, shape ``(..., ndim, *grid)``.

    One map per grid axis, the first axis first (2-D: ``[..., 0, :, :]`` vertical, ``[..., 1, :, :]``
    horizontal). With Neumann, ``divergence(gradient(u)) == laplacian(bc="neumann") @ u`` exactly; with
    Dirichlet that identity does not hold (only one boundary face per line is seen), use
    :func:`divergence_form` for the Dirichlet operator.

    Parameters
    ----------
    u : array ``(..., *grid)``
        The images, real floating point; leading axes are batch axes.
    ndim : {1, 2, 3}, default 2
        The grid dimension: the last ``ndim`` axes of ``u``.
    bc : {"neumann", "dirichlet"}, default "neumann"
        The difference across the far boundary: 0 (Neumann) or against a zero ghost (Dirichlet).

    Returns
    -------
    array
        ``(..., ndim, *grid)``, of ``u``'s library, dtype and device.

    Raises
    ------
    TypeError
        If ``u`` is not a real floating-point array or ``ndim`` is not an integer.
    ValueError
        If ``u`` has fewer than ``ndim`` axes or a zero-length grid axis, ``ndim`` is not 1, 2 or 3, or ``bc``
        is unknown.

    See Also
    --------
    divergence : Its negative adjoint.
    divergence_form : The operator :math:`\nabla\cdot(\gamma\nabla u)`.

    Notes
    -----
    In 2-D,

    .. math::

       (\partial_y u)_{ij} = u_{i+1,j} - u_{ij}, \qquad (\partial_x u)_{ij} = u_{i,j+1} - u_{ij},

    where in the last row / column the difference is 0 (Neumann) or :math:`-u_{ij}` (Dirichlet: the ghost is
    zero). In d dimensions the same along every axis.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 2 (the gradient in :math:`\nabla\cdot(\gamma\nabla u)`).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> ssdops.gradient(np.array([[0., 1., 3.]]), bc="dirichlet")[1]
    array([[ 1.,  2., -3.]])
    >>> ssdops.gradient(np.array([0., 1., 3.]), ndim=1)
    array([[1., 2., 0.]])
    """
    xp = check_image(u, "u", ndim)
    check_bc(bc)
    # chunked_like: the shifts cut a chunked image's blocks at every pixel of their edges; laid out as u again.
    return chunked_like(xp.stack([forward_difference(xp, u, o, bc) for _, o in grid_axes(ndim)], axis=-ndim - 1),
                        u, ndim)


def divergence(p: Array, *, ndim: int = 2, bc: str = "neumann") -> Array:
    r"""The negative adjoint of :func:`gradient`: ``divergence = -gradient^T``.

    Maps vector fields ``(..., ndim, *grid)`` to images ``(..., *grid)``, so that
    ``<gradient(u), p> == -<u, divergence(p)>`` for every ``u`` and ``p`` (with the same ``bc``).

    Parameters
    ----------
    p : array ``(..., ndim, *grid)``
        The vector field, one component per grid axis (in :func:`gradient`'s order).
    ndim : {1, 2, 3}, default 2
        The grid dimension.
    bc : {"neumann", "dirichlet"}, default "neumann"
        The boundary condition of the :func:`gradient` this is the adjoint of.

    Returns
    -------
    array
        ``(..., *grid)``, of ``p``'s library, dtype and device.

    Raises
    ------
    TypeError
        If ``p`` is not a real floating-point array or ``ndim`` is not an integer.
    ValueError
        If ``p`` does not have shape ``(..., ndim, *grid)`` or has a zero-length grid axis, ``ndim`` is not 1,
        2 or 3, or ``bc`` is unknown.

    See Also
    --------
    gradient : The operator this is the negative adjoint of.
    dot_test : Checks such a pair numerically.

    Notes
    -----
    Backward differences of the components: in 2-D

    .. math::

       (\operatorname{div} p)_{ij} = (p^y_{ij} - p^y_{i-1,j}) + (p^x_{ij} - p^x_{i,j-1}),

    with :math:`p_{-1,j} = p_{i,-1} = 0`; with Neumann the components in the last row (for :math:`p^y`) and
    last column (for :math:`p^x`) are taken as zero, the faces :func:`gradient` sets to 0. Hence
    :math:`\operatorname{div} \nabla = L` (the Neumann Laplacian).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 2 (:math:`\nabla\cdot(\gamma\nabla u)`).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> u = np.random.default_rng(0).random((4, 5))
    >>> bool(np.allclose(ssdops.divergence(ssdops.gradient(u)), ssdops.laplacian((4, 5)) @ u))
    True
    >>> ssdops.divergence(np.array([[1., 2., 0.]]), ndim=1)
    array([ 1.,  1., -2.])
    """
    xp = namespace(p)
    ndim = check_ndim(ndim)
    if p.ndim < ndim + 1 or p.shape[-ndim - 1] != ndim:
        raise ValueError(f"p must have shape (..., {ndim}, {GRID_LETTERS[ndim]}), got {tuple(p.shape)}")
    check_grid(tuple(p.shape[-ndim:]), f"p of shape {tuple(p.shape)}")
    check_bc(bc)
    out = None
    for k, (_, offset) in enumerate(grid_axes(ndim)):
        pk = component(p, k, ndim)
        if bc == "neumann":
            pk = zero_outside(xp, pk, offset)
        # gradient_k = M (S - I), so -gradient_k^T p = M p - S^T M p, S^T a zero-filled shift back.
        term = pk - shift(xp, pk, tuple(-c for c in offset))
        out = term if out is None else out + term
    # Laid out as p along the grid again (the shifts cut a chunked p's blocks; see gradient).
    return component(chunked_like(xp.expand_dims(out, axis=-ndim - 1), p, ndim), 0, ndim)


def ssd_from_filters(zeta: Array, dt: Scalar = 1.0, *, ndim: int = 2) -> SSD:
    r"""The paper's learned operator :math:`W_{dt}(\zeta)` (eq. 4.7) from the filter images.

    The result has the star's diagonals ``dt * (z_1, ..., z_{2d}, -z_{2d+1})``, zero outside the grid,
    exactly what the authors' code computes with zero-filled shifts.

    Parameters
    ----------
    zeta : array ``(..., 2 ndim + 1, *grid)``
        The filter maps: in 2-D five maps in the paper's order (up, left, down, right, centre); in any
        dimension the star order (:func:`ssdops.stencils.star`: backward neighbours, forward neighbours,
        centre).
    dt : float or 0-d array, default 1.0
        The time step, a Python number or a 0-d array (a learnable step).
    ndim : {1, 2, 3}, default 2
        The grid dimension.

    Returns
    -------
    SSD
        :math:`W_{dt}(\zeta)` with the star offsets (:data:`ssdops.FIVE_POINT` in 2-D), of ``zeta``'s
        library, dtype and device; its symmetry is unknown (``tags.symmetric is None``).

    Raises
    ------
    TypeError
        If ``zeta`` is not a real floating-point array or ``ndim`` is not an integer.
    ValueError
        If ``zeta`` does not have shape ``(..., 2 ndim + 1, *grid)`` or has a zero-length grid axis, or
        ``ndim`` is not 1, 2 or 3.

    See Also
    --------
    filter_step : The step :math:`u + W_{dt}(\zeta) u`, fused.
    split_zero_mean : The split :math:`W = L + S` of the result.
    SSD : The operator class.

    Notes
    -----
    In 2-D, the stencil (4.7) at each pixel,

    .. math::

       W_{dt}(\zeta) = \Delta t \begin{bmatrix} 0 & \zeta_1 & 0 \\ \zeta_2 & -\zeta_5 & \zeta_4 \\
       0 & \zeta_3 & 0 \end{bmatrix},

    five free filters (not tied to a diffusivity, so neither zero-mean nor symmetric in general).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (4.7) and section 4.3.1.

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> zeta = np.ones((5, 2, 2))
    >>> (ssdops.ssd_from_filters(zeta, dt=0.5) @ np.ones((2, 2)))[0, 0]   # 0.5 * (down + right - centre)
    np.float64(0.5)
    >>> ssdops.ssd_from_filters(np.ones((7, 2, 2, 2)), ndim=3).offsets == ssdops.SEVEN_POINT
    True
    """
    xp = namespace(zeta)
    ndim = check_ndim(ndim)
    maps = 2 * ndim + 1
    if zeta.ndim < ndim + 1 or zeta.shape[-ndim - 1] != maps:
        raise ValueError(f"zeta must have shape (..., {maps}, {GRID_LETTERS[ndim]}), got {tuple(zeta.shape)}")
    check_grid(tuple(zeta.shape[-ndim:]), f"zeta of shape {tuple(zeta.shape)}")
    dt = plain_scalar(dt)
    signs = [1.0] * (maps - 1) + [-1.0]
    sign = xp.reshape(xp.asarray(signs, dtype=zeta.dtype, device=device(zeta)), (maps,) + (1,) * ndim)
    return SSD(chunked_like(zeta * (sign * dt), zeta, ndim), star(ndim))  # the offset axis in one chunk
