"""ssdops: sparse sub-diagonal stencil operators for diffusion imaging, on any array-API library.

Grids are the last two axes ``(..., H, W)``; leading axes are batch axes. Pixel ``(i, j)`` is matrix
index ``i * W + j``. See the README for a tour and the table of the public API.
"""
from . import backends, diffusivity
from ._array import to_numpy
from ._errors import ConvergenceError, ConvergenceWarning
from .analysis import is_symmetric, row_sums, smoothing_level, spectral_radius, spectrum, split_zero_mean
from .diffusion import heat, perona_malik, perona_malik_operator, perona_malik_step
from .explicit import explicit_step, filter_step, stable_dt
from .implicit import implicit_step, select_method
from .interop import (
    as_deepinv,
    as_lineax,
    as_odl,
    as_pylops,
    aslinearoperator,
    heat_physics,
    perona_malik_physics,
)
from .metrics import add_noise, psnr, relative_l2
from .operators import divergence, divergence_form, gradient, laplacian, ssd_from_filters
from .sparse import from_scipy, to_scipy
from .ssd import SSD, Tags, identity
from .stencils import FIVE_POINT, NINE_POINT, SEVEN_POINT, THREE_POINT, TWENTY_SEVEN_POINT
from .testing import dot_test

__version__ = "0.1.0"

__all__ = [
    "FIVE_POINT",
    "NINE_POINT",
    "SEVEN_POINT",
    "SSD",
    "THREE_POINT",
    "TWENTY_SEVEN_POINT",
    "Tags",
    "ConvergenceError",
    "ConvergenceWarning",
    "add_noise",
    "as_deepinv",
    "as_lineax",
    "as_odl",
    "as_pylops",
    "aslinearoperator",
    "backends",
    "diffusivity",
    "divergence",
    "divergence_form",
    "dot_test",
    "explicit_step",
    "filter_step",
    "from_scipy",
    "gradient",
    "heat",
    "heat_physics",
    "identity",
    "implicit_step",
    "is_symmetric",
    "laplacian",
    "perona_malik",
    "perona_malik_operator",
    "perona_malik_physics",
    "perona_malik_step",
    "psnr",
    "relative_l2",
    "row_sums",
    "select_method",
    "smoothing_level",
    "spectral_radius",
    "spectrum",
    "split_zero_mean",
    "ssd_from_filters",
    "stable_dt",
    "to_numpy",
    "to_scipy",
]
