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
"""
from __future__ import annotations

from array_api_compat import device

from ._array import like_namespace, namespace
from ._kernels import AXES, divergence_form_diagonals, forward_difference, shift, zero_outside
from ._validate import check_bc, check_grid, check_grid_shape, check_image, plain_scalar
from .ssd import SSD, Tags
from .stencils import FIVE_POINT

__all__ = ["divergence", "divergence_form", "gradient", "laplacian", "ssd_from_filters"]


def divergence_form(gamma, *, bc="neumann", ghost_gamma=None):
    r"""The operator :math:`L(\gamma) u = \nabla\cdot(\gamma \nabla u)` as a symmetric 5-point SSD.

    .. math:: L(\gamma) = -(D_y^\top \operatorname{diag}(g_y) D_y + D_x^\top \operatorname{diag}(g_x) D_x)

    with face differences :math:`D` and face diffusivities :math:`g` (the mean of the two pixels' gamma).
    Neumann uses the interior faces only (zero row sums); Dirichlet adds the two boundary faces of every
    line, against a ghost pixel with :math:`u = 0` and diffusivity ``ghost_gamma`` (default: the edge
    pixel's own gamma, the textbook operator; ``0.0``: the authors' data generator).

    Parameters
    ----------
    gamma : array ``(..., H, W)``
        Diffusivity per pixel; batch axes give a batch of operators.
    bc : {"neumann", "dirichlet"}
    ghost_gamma : float or None
        Dirichlet only (ValueError with Neumann).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> L = ssdops.divergence_form(np.ones((3, 3)), bc="dirichlet", ghost_gamma=0.0)
    >>> L.diagonal((0, 0))[0]          # corner: two half faces, edge: one half face
    array([-3. , -3.5, -3. ])
    """
    xp = check_image(gamma, "gamma")
    check_bc(bc, ghost_gamma)
    return SSD(divergence_form_diagonals(xp, gamma, bc, ghost_gamma), FIVE_POINT, symmetric=True)


def laplacian(grid_shape, *, bc="neumann", like=None):
    r"""The 5-point Laplacian ``divergence_form(ones(grid_shape), bc=bc)``.

    Equals ``scipy.sparse.linalg.LaplacianNd(grid_shape, boundary_conditions=bc)`` on every grid with both
    sides >= 2. On a length-1 axis scipy's Neumann operator puts -1 on the diagonal (its rows do not sum to
    zero); this one has no face along that axis and keeps zero row sums.

    ``like`` is an array whose namespace, dtype and device the result takes (default NumPy float64).
    ``grid_shape`` must be two integers >= 1 (TypeError / ValueError otherwise).

    >>> import ssdops
    >>> ssdops.to_scipy(ssdops.laplacian((3, 3), bc="dirichlet")).diagonal()
    array([-4., -4., -4., -4., -4., -4., -4., -4., -4.])
    """
    xp, dtype, dev = like_namespace(like)
    check_bc(bc)
    H, W = check_grid_shape(grid_shape)
    diagonals = divergence_form_diagonals(xp, xp.ones((H, W), dtype=dtype, device=dev), bc, None)
    return SSD(diagonals, FIVE_POINT, tags=Tags(symmetric=True, laplacian=(bc, 1.0)))


def gradient(u, *, bc="neumann"):
    r"""Forward differences, shape ``(..., 2, H, W)``: ``[..., 0]`` vertical, ``[..., 1]`` horizontal.

    :math:`(\partial_y u)_{ij} = u_{i+1,j} - u_{ij}` and :math:`(\partial_x u)_{ij} = u_{i,j+1} - u_{ij}`.
    In the last row / column the difference is 0 (neumann) or taken against the zero ghost, :math:`-u`
    (dirichlet). With Neumann, ``divergence(gradient(u)) == laplacian(bc="neumann") @ u`` exactly; with
    Dirichlet that identity does not hold (only one boundary face per line is seen), use
    :func:`divergence_form` for the Dirichlet operator.

    >>> import numpy as np, ssdops
    >>> ssdops.gradient(np.array([[0., 1., 3.]]), bc="dirichlet")[1]
    array([[ 1.,  2., -3.]])
    """
    xp = check_image(u)
    check_bc(bc)
    return xp.stack([forward_difference(xp, u, o, bc) for _, o in AXES], axis=-3)


def divergence(p, *, bc="neumann"):
    r"""The negative adjoint of :func:`gradient`: ``divergence = -gradient^T``, ``(..., 2, H, W) -> (..., H, W)``.

    >>> import numpy as np, ssdops
    >>> u = np.random.default_rng(0).random((4, 5))
    >>> bool(np.allclose(ssdops.divergence(ssdops.gradient(u)), ssdops.laplacian((4, 5)) @ u))
    True
    """
    xp = namespace(p)
    if p.ndim < 3 or p.shape[-3] != 2:
        raise ValueError(f"p must have shape (..., 2, H, W), got {tuple(p.shape)}")
    check_grid(tuple(p.shape[-2:]), f"p of shape {tuple(p.shape)}")
    check_bc(bc)
    out = None
    for k, (_, offset) in enumerate(AXES):
        pk = p[..., k, :, :]
        if bc == "neumann":
            pk = zero_outside(xp, pk, offset)
        # gradient_k = M (S - I), so -gradient_k^T p = M p - S^T M p, S^T a zero-filled shift back.
        term = pk - shift(xp, pk, (-offset[0], -offset[1]))
        out = term if out is None else out + term
    return out


def ssd_from_filters(zeta, dt=1.0):
    r"""The paper's learned operator :math:`W_{dt}(\zeta)` (eq. 4.7) from five filter images.

    ``zeta`` has shape ``(..., 5, H, W)`` in the paper's order (up, left, down, right, centre); the result
    has FIVE_POINT diagonals ``dt * (z1, z2, z3, z4, -z5)``, zero outside the grid, exactly what the
    authors' code computes with zero-filled shifts. ``dt`` may be a Python number or a 0-d array (a
    learnable step).

    >>> import numpy as np, ssdops
    >>> zeta = np.ones((5, 2, 2))
    >>> (ssdops.ssd_from_filters(zeta, dt=0.5) @ np.ones((2, 2)))[0, 0]   # 0.5 * (down + right - centre)
    np.float64(0.5)
    """
    xp = namespace(zeta)
    if zeta.ndim < 3 or zeta.shape[-3] != 5:
        raise ValueError(f"zeta must have shape (..., 5, H, W), got {tuple(zeta.shape)}")
    dt = plain_scalar(dt)
    sign = xp.asarray([[[1.0]], [[1.0]], [[1.0]], [[1.0]], [[-1.0]]], dtype=zeta.dtype, device=device(zeta))
    return SSD(zeta * (sign * dt), FIVE_POINT)
