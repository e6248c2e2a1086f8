r"""SSD operators, the exact heat equation and the paper's Perona-Malik model as deepinv physics.

deepinv (PyTorch) is imported only when one of these functions is called (``pip install ssdops[deepinv]``).
deepinv's images are ``(B, C, H, W)``: B images of C channels. An operator's batch axes pair with the image's
leading axes, which the trailing-axes broadcasting rule of ``op @ u`` gets wrong for a per-image operator
(batch shape ``(B,)`` would pair with the channel axis C, silently when B == C): :func:`as_deepinv` inserts
the channel axis for the user.

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
"""
from __future__ import annotations

import functools
import inspect
import math
import sys
import warnings

import numpy as np

from .._validate import check_bc, check_ndim
from ..ssd import SSD

__all__ = ["as_deepinv", "heat_physics", "import_deepinv", "perona_malik_physics"]

# deepinv's solver options that the direct (spectral) solves of heat_physics accept and do not need.
_SOLVER_OPTIONS = frozenset({"solver", "max_iter", "tol", "verbose"})

# Kept alive for the life of the process: the schemas of torchvision's compiled operators (see import_deepinv).
_torchvision_schemas = None


def _define_torchvision_schemas():
    """Declare the two torchvision operators whose fake kernels torchvision registers at import time.

    The PyPI wheels of torchvision are built against the CUDA build of torch: with the CPU wheel of torch its
    compiled extension does not load, torchvision then skips its other registrations but still registers fake
    kernels for ``torchvision::nms`` and ``torchvision::qnms``, which fails ("operator torchvision::nms does not
    exist") and makes ``import torchvision`` (hence ``import deepinv``) fail. Declaring the two schemas lets the
    Python part of torchvision import; calling the operators still fails (they have no kernel), and deepinv
    does not call them.
    """
    global _torchvision_schemas
    import torch

    if _torchvision_schemas is None:
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for name in ("nms", "qnms"):
            lib.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _torchvision_schemas = lib


def import_deepinv():
    """deepinv, imported (with :mod:`deepinv.physics` and :mod:`deepinv.models`); ImportError without it.

    With the CPU wheel of torch and a PyPI (CUDA) wheel of torchvision, ``import deepinv`` fails in
    torchvision; this function then declares the schemas of torchvision's two compiled operators that its
    import needs, warns once (a UserWarning: torchvision's compiled operators, such as ``nms``, are unavailable)
    and imports again. Call it before importing deepinv yourself in such an environment.
    """
    try:
        import deepinv
    except ImportError as err:
        raise ImportError(
            "this ssdops function needs deepinv, an optional dependency: pip install 'ssdops[deepinv]' "
            "(with torch pinned in the same command, e.g. \"torch==2.13.0\", so that pip keeps the CPU wheel)"
        ) from err
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
        # The failed import left half-initialised modules behind: drop them before importing again.
        for name in [m for m in sys.modules if m.split(".")[0] in ("torchvision", "deepinv")]:
            del sys.modules[name]
        _define_torchvision_schemas()
        warnings.warn(
            f"torchvision's compiled extension does not load with this torch ({err}); ssdops declared the "
            "schemas of torchvision::nms and ::qnms so that deepinv imports. torchvision's compiled operators "
            "are unavailable (deepinv's physics, models and metrics do not use them). Install a torchvision "
            "built for this torch to remove this warning.",
            UserWarning,
            stacklevel=2,
        )
        import deepinv
    import deepinv.models
    import deepinv.physics  # noqa: F401

    return deepinv


def _check_solver_options(name, options):
    unknown = set(options) - _SOLVER_OPTIONS
    if unknown:
        raise TypeError(f"{name} got unexpected keyword arguments {sorted(unknown)}")


def _pair(op, x):
    """The operator that pairs with images ``x`` of shape ``(B, C, *grid)``: batch ``()`` as is, ``(B,)`` with a
    channel axis inserted (one operator per image, the same on every channel), ``(B, C)`` as is; the diagonals
    in ``x``'s dtype and device."""
    grid, batch = op.grid_shape, op.batch_shape
    if x.ndim != op.ndim + 2 or tuple(x.shape[2:]) != grid:
        raise ValueError(
            f"deepinv images must have shape (B, C, *grid) with the operator's grid {grid}, got {tuple(x.shape)}"
        )
    B, C = x.shape[:2]
    diagonals = op.diagonals
    if batch == (B,):
        diagonals = diagonals[:, None]
    elif batch not in ((), (B, C)):
        raise ValueError(
            f"an operator of batch shape {batch} does not pair with images of shape {tuple(x.shape)}: "
            f"use batch shape () (one operator for all), ({B},) (one per image, the same on every channel) "
            f"or ({B}, {C}) (one per image and channel)"
        )
    diagonals = diagonals.to(dtype=x.dtype, device=x.device)
    return SSD(diagonals, op.offsets, tags=op.tags)


@functools.cache
def _classes():
    """The physics classes, defined on first use (deepinv is imported only then)."""
    deepinv = import_deepinv()
    import torch

    from .. import diffusion, spectral

    LinearPhysics, Physics = deepinv.physics.LinearPhysics, deepinv.physics.Physics

    class SSDPhysics(LinearPhysics):
        """An :class:`ssdops.SSD` as a deepinv linear physics on ``(B, C, *grid)`` images."""

        def __init__(self, op, *, noise_model=None):
            super().__init__(noise_model=noise_model)
            self.op = op

        def A(self, x, **kwargs):
            return _pair(self.op, x) @ x

        def A_adjoint(self, y, **kwargs):
            return _pair(self.op, y).rmatvec(y)

    class HeatPhysics(LinearPhysics):
        """The exact heat equation :math:`\\exp(T L)` (see :func:`ssdops.heat_physics`)."""

        def __init__(self, T, *, bc, ndim, noise_model=None):
            super().__init__(noise_model=noise_model)
            self.T, self.bc, self.ndim = T, bc, ndim

        def __repr__(self):
            return f"HeatPhysics(T={self.T}, bc={self.bc!r}, ndim={self.ndim})"

        def A(self, x, **kwargs):
            return diffusion.heat(x, self.T, ndim=self.ndim, bc=self.bc, method="exact")

        def A_adjoint(self, y, **kwargs):
            return self.A(y)  # exp(T L) is symmetric

        def _top(self, grid):
            """The largest eigenvalue of L on ``grid``, hence ``exp(T top)`` is the largest singular value."""
            return spectral.laplacian_eigenvalue_range(tuple(grid), self.bc)[1]

        def A_dagger(self, y, *, rcond=None, **options):
            _check_solver_options("HeatPhysics.A_dagger", options)
            rcond = 10 * torch.finfo(y.dtype).eps if rcond is None else float(rcond)
            T, top = self.T, self._top(y.shape[-self.ndim:])

            def inverse(lam):
                keep = (lam - top) * T > math.log(rcond) if rcond > 0 else lam == lam
                return torch.where(keep, torch.exp(-T * torch.where(keep, lam, 0.0 * lam)), 0.0 * lam)

            return spectral.apply_laplacian_function(y, inverse, bc=self.bc, ndim=self.ndim)

        def prox_l2(self, z, y, gamma, **options):
            _check_solver_options("HeatPhysics.prox_l2", options)
            if z is None or isinstance(z, (int, float)):
                z = torch.full_like(y, 0.0 if z is None else float(z))
            gamma = torch.as_tensor(gamma, dtype=y.dtype, device=y.device)
            if gamma.numel() > 1:
                if gamma.numel() != y.shape[0]:
                    raise ValueError(
                        f"gamma of shape {tuple(gamma.shape)} must be a scalar or hold one value per image of "
                        f"the batch of {y.shape[0]}"
                    )
                return torch.cat([self.prox_l2(z[i:i + 1], y[i:i + 1], g) for i, g in enumerate(gamma.reshape(-1))])
            gamma, T = gamma.reshape(()), self.T
            rhs = z + gamma * self.A_adjoint(y)
            return spectral.apply_laplacian_function(
                rhs, lambda lam: 1.0 / (1.0 + gamma * torch.exp(2.0 * T * lam)), bc=self.bc, ndim=self.ndim
            )

        def compute_sqnorm(self, x0, **options):
            return torch.as_tensor(math.exp(2.0 * self.T * self._top(x0.shape[-self.ndim:])), dtype=x0.dtype,
                                   device=x0.device)

        def compute_norm(self, x0, *, squared=True, **options):
            if squared not in (True, False):
                raise ValueError(f"squared must be True or False, got {squared!r}")
            sqnorm = self.compute_sqnorm(x0)
            return sqnorm if squared else torch.sqrt(sqnorm)

    class PeronaMalikPhysics(Physics):
        """Perona-Malik diffusion as a (nonlinear) deepinv physics (see :func:`ssdops.perona_malik_physics`)."""

        def __init__(self, args, *, noise_model=None):
            super().__init__(noise_model=noise_model)
            self.pm_args = args

        def __repr__(self):
            return f"PeronaMalikPhysics({self.pm_args})"

        def A(self, x, **kwargs):
            return diffusion.perona_malik(x, **self.pm_args)

    return SSDPhysics, HeatPhysics, PeronaMalikPhysics


def as_deepinv(op, *, noise_model=None):
    r"""The operator as a :class:`deepinv.physics.LinearPhysics` on deepinv's ``(B, C, *grid)`` images.

    ``A(x) = op @ x`` and ``A_adjoint(y) = op.T @ y``, with the operator's batch paired with the images' leading
    axes (not by NumPy's trailing-axes rule, under which a per-image operator would pair with the channels):

    ========================  ==============================================================
    operator batch shape      acts
    ========================  ==============================================================
    ``()``                    on every image and channel
    ``(B,)``                  per image, the same on every channel (``gamma[:, None]`` for you)
    ``(B, C)``                per image and channel
    ========================  ==============================================================

    The diagonals are converted to the images' dtype and device at each application, so one physics serves
    float32 and float64 images on any device.

    Parameters
    ----------
    op : SSD
        The operator, with NumPy or PyTorch diagonals (NumPy ones are converted to PyTorch once).
    noise_model : deepinv.physics.NoiseModel, optional
        The physics' noise model (deepinv's default: none).

    Returns
    -------
    deepinv.physics.LinearPhysics
        The physics; its ``op`` attribute holds the operator.

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`, or its diagonals are neither NumPy nor PyTorch arrays.
    ImportError
        If deepinv, an optional dependency, is not installed (``pip install ssdops[deepinv]``).
    ValueError
        When applied: for images that are not ``(B, C, *grid)`` on the operator's grid, or an operator batch
        shape other than ``()``, ``(B,)`` and ``(B, C)`` (the message names both shapes).

    See Also
    --------
    heat_physics : The exact heat equation, with exact norm, pseudo-inverse and proximal operator.
    as_pylops : The operator for PyLops.

    Notes
    -----
    deepinv's solvers need :math:`A` and :math:`A^\top`; here :math:`(A x)_{b,c} = A_b\,x_{b,c}` for a batch
    :math:`(B,)` of operators :math:`A_b` and :math:`(A^\top y)_{b,c} = A_b^\top y_{b,c}`.

    Examples
    --------
    >>> import torch, ssdops
    >>> gamma = torch.rand(2, 16, 16, dtype=torch.float64) + 0.5          # one diffusivity per image
    >>> physics = ssdops.as_deepinv(ssdops.divergence_form(gamma))
    >>> x = torch.rand(2, 3, 16, 16, dtype=torch.float64)                # 2 images of 3 channels
    >>> y = physics.A(x)
    >>> bool(torch.allclose(y[1, 2], ssdops.divergence_form(gamma[1]) @ x[1, 2]))
    True
    >>> bool(physics.adjointness_test(x, num_samples=2) < 1e-12)     # a batch of B = 2 images
    True
    """
    if not isinstance(op, SSD):
        raise TypeError(f"ssdops.as_deepinv takes an ssdops.SSD, got {type(op).__name__}")
    SSDPhysics = _classes()[0]
    import torch

    if isinstance(op.diagonals, np.ndarray):
        op = SSD(torch.from_numpy(op.diagonals), op.offsets, tags=op.tags)
    elif not isinstance(op.diagonals, torch.Tensor):
        raise TypeError(
            "ssdops.as_deepinv needs an operator with NumPy or PyTorch diagonals, got "
            f"{type(op.diagonals).__module__}.{type(op.diagonals).__name__}"
        )
    return SSDPhysics(op, noise_model=noise_model)


def heat_physics(T, *, bc="neumann", ndim=2, noise_model=None):
    r"""The exact heat equation :math:`x \mapsto \exp(T L)\,x` as a :class:`deepinv.physics.LinearPhysics`.

    ``A`` is :func:`ssdops.heat` (``method="exact"``) on the last ``ndim`` axes of deepinv's images, ``A_adjoint``
    the same (the operator is symmetric). Unlike the generic physics, every solve is exact and direct, by the
    DCT (Neumann) or DST (Dirichlet) that diagonalises :math:`L` (:mod:`ssdops.spectral`):

    - ``A_dagger(y, rcond=None)``: the pseudo-inverse, dividing each mode by its singular value
      :math:`e^{T\lambda_k}`; modes with :math:`e^{T\lambda_k} \le \mathrm{rcond}\cdot\sigma_{\max}` are set to
      zero (the Moore-Penrose inverse of the operator truncated there, as ``numpy.linalg.pinv``). Default
      ``rcond`` = 10 eps of the data's dtype, so that nothing is truncated while
      :math:`T \cdot 4d \lesssim 13.6` (float32) or 33.7 (float64): for the paper's deblurring (T = 1 in 2-D,
      amplification :math:`e^{8} \approx 2981`) it is the exact inverse. No regularisation: for noisy data use
      ``prox_l2`` or a deepinv optimiser.
    - ``prox_l2(z, y, gamma)``: :math:`\arg\min_x \tfrac{\gamma}{2}\|Ax - y\|^2 + \tfrac12\|x - z\|^2
      = (I + \gamma A^\top A)^{-1}(z + \gamma A^\top y)`, one spectral division by
      :math:`1 + \gamma e^{2T\lambda_k}`; ``gamma`` a number, a 0-d tensor or one value per image.
    - ``compute_norm(x0, squared=True)``: deepinv's convention, :math:`\|A\|_2^2 = \|A^\top A\|_2` by default
      (``squared=False``: :math:`\|A\|_2`), in closed form :math:`e^{2T\lambda_{\max}}`: 1 for Neumann (the
      constant mode), below 1 for Dirichlet. ``compute_sqnorm(x0)`` the same squared norm. ``x0`` gives the
      grid, dtype and device.

    deepinv's solver options (``solver``, ``max_iter``, ``tol``, ``verbose``) are accepted by ``A_dagger`` and
    ``prox_l2`` and unused (the solves are direct); any other keyword raises TypeError.

    Parameters
    ----------
    T : float
        The diffusion time, finite and >= 0.
    bc : {"neumann", "dirichlet"}, default "neumann"
        The boundary condition of the Laplacian.
    ndim : {1, 2, 3}, default 2
        The grid dimension: deepinv's images are ``(B, C, *grid)`` with ``ndim`` grid axes.
    noise_model : deepinv.physics.NoiseModel, optional
        The physics' noise model (deepinv's default: none).

    Returns
    -------
    deepinv.physics.LinearPhysics
        The physics, with attributes ``T``, ``bc`` and ``ndim``.

    Raises
    ------
    ValueError
        For a ``T`` that is not finite or negative, an unknown ``bc`` or ``ndim``.
    ImportError
        If deepinv, an optional dependency, is not installed (``pip install ssdops[deepinv]``).

    See Also
    --------
    heat : The heat equation on arrays.
    as_deepinv : Any SSD operator as a deepinv physics.

    Notes
    -----
    With :math:`L = \Phi \Lambda \Phi^\top` (:math:`\Phi` the orthonormal cosine or sine modes),
    :math:`A = \Phi\, e^{T\Lambda} \Phi^\top`, so :math:`A^\dagger = \Phi\, e^{-T\Lambda} \Phi^\top` and
    :math:`(I + \gamma A^\top A)^{-1} = \Phi\,(1 + \gamma e^{2T\Lambda})^{-1} \Phi^\top`.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 5.1 (the heat equation with T = 1 as the forward problem).

    Examples
    --------
    >>> import torch, ssdops
    >>> physics = ssdops.heat_physics(1.0)
    >>> x = torch.rand(1, 1, 32, 32, dtype=torch.float64)
    >>> float(physics.compute_norm(x[0]))
    1.0
    >>> bool(torch.allclose(physics.A_dagger(physics(x)), x, atol=1e-9))
    True
    """
    T = float(T)
    if not math.isfinite(T) or T < 0:
        raise ValueError(f"T must be finite and >= 0, got {T}")
    check_bc(bc)
    ndim = check_ndim(ndim)
    return _classes()[1](T, bc=bc, ndim=ndim, noise_model=noise_model)


def perona_malik_physics(*, noise_model=None, **pm_args):
    r"""The paper's Perona-Malik forward model as a (nonlinear) :class:`deepinv.physics.Physics`.

    ``A(x) = ssdops.perona_malik(x, **args)`` on deepinv's ``(B, C, H, W)`` images (each channel of each image
    diffused on its own), ``args`` the authors' data generator
    (:data:`ssdops.diffnet.data.PAPER_PM_ARGS`: 4 explicit steps, dt 0.1, lambda 0.2, Dirichlet boundary with
    zero ghost diffusivity) updated by ``pm_args``: exactly the input of the ``pm-inverse`` training data
    (before noise). Being nonlinear, the physics has no adjoint; deepinv's generic ``A_dagger`` (gradient
    descent through ``A_vjp``, by autograd) applies.

    Parameters
    ----------
    noise_model : deepinv.physics.NoiseModel, optional
        The physics' noise model (deepinv's default: none; the paper's 1 % noise is
        ``deepinv.physics.GaussianNoise(0.01)`` on images of maximum 1).
    **pm_args
        Keyword arguments of :func:`ssdops.perona_malik` replacing the authors' ones.

    Returns
    -------
    deepinv.physics.Physics
        The physics; its ``pm_args`` attribute holds the arguments.

    Raises
    ------
    TypeError
        For a keyword that :func:`ssdops.perona_malik` does not take.
    ImportError
        If deepinv, an optional dependency, is not installed (``pip install ssdops[deepinv]``).

    See Also
    --------
    perona_malik : The diffusion on arrays.
    diffnet_torch.as_deepinv : The shipped DiffNet weights as a deepinv reconstructor of this model.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 5.2.

    Examples
    --------
    >>> import torch, ssdops
    >>> physics = ssdops.perona_malik_physics()
    >>> physics.pm_args
    {'steps': 4, 'dt': 0.1, 'lam': 0.2, 'bc': 'dirichlet', 'ghost_gamma': 0.0}
    >>> x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    >>> bool(torch.equal(physics.A(x)[1, 2], ssdops.perona_malik(x[1, 2], **physics.pm_args)))
    True
    """
    from ..diffnet.data import PAPER_PM_ARGS
    from ..diffusion import perona_malik

    accepted = inspect.signature(perona_malik).parameters
    unknown = sorted(k for k in pm_args if k not in accepted or k == "u0")
    if unknown:
        raise TypeError(f"ssdops.perona_malik_physics got arguments that ssdops.perona_malik does not take: {unknown}")
    return _classes()[2]({**PAPER_PM_ARGS, **pm_args}, noise_model=noise_model)
