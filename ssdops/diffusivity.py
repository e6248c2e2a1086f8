r"""Diffusivities :math:`g(s^2, \lambda)` of the squared gradient magnitude :math:`s^2 = |\nabla u|^2`.

Each takes ``s2`` (an array) and the contrast parameter ``lam > 0`` and returns an array like ``s2``.
Any callable with the same signature can be passed to :func:`ssdops.perona_malik` instead of a name.

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.

Notes
-----
The five, by name:

.. math::

   g_{\mathrm{perona\_malik}} = \frac{1}{1 + s^2/\lambda^2}, \quad
   g_{\mathrm{perona\_malik\_exp}} = e^{-s^2/\lambda^2}, \quad
   g_{\mathrm{charbonnier}} = \frac{1}{\sqrt{1 + s^2/\lambda^2}}, \quad
   g_{\mathrm{total\_variation}} = \frac{1}{\sqrt{s^2 + \lambda^2}}, \quad
   g_{\mathrm{linear}} = 1.

The first is the paper's (eq. 5.1) and the default of :func:`ssdops.perona_malik`.

Examples
--------
>>> import numpy as np
>>> from ssdops import diffusivity
>>> diffusivity.perona_malik(np.array([0.0, 0.04]), 0.2)
array([1. , 0.5])
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from array_api_compat import array_namespace

if TYPE_CHECKING:
    from ._array import Array, Scalar

__all__ = ["perona_malik", "perona_malik_exp", "charbonnier", "total_variation", "linear", "resolve"]


def perona_malik(s2: Array, lam: Scalar) -> Array:
    r"""The rational Perona-Malik diffusivity :math:`1 / (1 + s^2/\lambda^2)`.

    The diffusivity of the paper's nonlinear diffusion experiments (eq. 5.1) and of the authors' data
    generator: close to 1 where the gradient is small against :math:`\lambda`, falling as
    :math:`\lambda^2 / s^2` across edges.

    Parameters
    ----------
    s2 : array
        The squared gradient magnitude :math:`s^2 = |\nabla u|^2` (non-negative), of any shape and
        any array-API library.
    lam : float
        The contrast parameter :math:`\lambda > 0` (callers such as :func:`ssdops.perona_malik` check
        it).

    Returns
    -------
    array
        :math:`g(s^2, \lambda)`, in :math:`(0, 1]`, of the shape, library and dtype of ``s2``.

    Raises
    ------
    TypeError
        If ``s2`` is not an array of a supported library (a list, for example).

    See Also
    --------
    perona_malik_exp, charbonnier, total_variation, linear : The other diffusivities.
    ssdops.perona_malik : Perona-Malik diffusion with a diffusivity of this module.

    Notes
    -----
    .. math:: g(s^2, \lambda) = \frac{1}{1 + s^2 / \lambda^2}

    The flux :math:`g(s^2)\, s` grows with the gradient :math:`s` below :math:`\lambda` and falls above:
    in Perona and Malik's analysis [2]_, edges steeper than :math:`\lambda` are kept or sharpened while
    smaller variations are smoothed.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (5.1).
    .. [2] P. Perona and J. Malik, "Scale-space and edge detection using anisotropic diffusion",
           IEEE Trans. Pattern Anal. Mach. Intell. 12(7), 629-639, 1990.

    Examples
    --------
    >>> import numpy as np
    >>> from ssdops import diffusivity
    >>> diffusivity.perona_malik(np.array([0.0, 0.04, 0.36]), 0.2)
    array([1. , 0.5, 0.1])
    """
    return 1.0 / (1.0 + s2 / lam**2)


def perona_malik_exp(s2: Array, lam: Scalar) -> Array:
    r"""Perona and Malik's exponential diffusivity :math:`\exp(-s^2/\lambda^2)`.

    Falls off faster than the rational :func:`perona_malik` above :math:`\lambda`: edges are kept more
    sharply, and flat regions are smoothed alike.

    Parameters
    ----------
    s2 : array
        The squared gradient magnitude :math:`s^2 = |\nabla u|^2` (non-negative), of any shape and
        any array-API library.
    lam : float
        The contrast parameter :math:`\lambda > 0` (callers such as :func:`ssdops.perona_malik` check
        it).

    Returns
    -------
    array
        :math:`g(s^2, \lambda)`, in :math:`(0, 1]`, of the shape, library and dtype of ``s2``.

    Raises
    ------
    TypeError
        If ``s2`` is not an array of a supported library (a list, for example).

    See Also
    --------
    perona_malik, charbonnier, total_variation, linear : The other diffusivities.
    ssdops.perona_malik : Perona-Malik diffusion with a diffusivity of this module.

    Notes
    -----
    .. math:: g(s^2, \lambda) = \exp\left(-\frac{s^2}{\lambda^2}\right)

    References
    ----------
    .. [1] P. Perona and J. Malik, "Scale-space and edge detection using anisotropic diffusion",
           IEEE Trans. Pattern Anal. Mach. Intell. 12(7), 629-639, 1990.

    Examples
    --------
    >>> import numpy as np
    >>> from ssdops import diffusivity
    >>> diffusivity.perona_malik_exp(np.array([0.0, 0.04]), 0.2)
    array([1.        , 0.36787944])
    """
    xp = array_namespace(s2)
    return xp.exp(-s2 / lam**2)


def charbonnier(s2: Array, lam: Scalar) -> Array:
    r"""The Charbonnier diffusivity :math:`1/\sqrt{1 + s^2/\lambda^2}`.

    The authors' code offers it as :math:`T/\sqrt{s^2 + T^2}`, the same function with :math:`T = \lambda`.
    It falls as :math:`\lambda / s` across edges: between :func:`perona_malik` and the
    :func:`total_variation` flow.

    Parameters
    ----------
    s2 : array
        The squared gradient magnitude :math:`s^2 = |\nabla u|^2` (non-negative), of any shape and
        any array-API library.
    lam : float
        The contrast parameter :math:`\lambda > 0` (callers such as :func:`ssdops.perona_malik` check
        it).

    Returns
    -------
    array
        :math:`g(s^2, \lambda)`, in :math:`(0, 1]`, of the shape, library and dtype of ``s2``.

    Raises
    ------
    TypeError
        If ``s2`` is not an array of a supported library (a list, for example).

    See Also
    --------
    perona_malik, perona_malik_exp, total_variation, linear : The other diffusivities.
    ssdops.perona_malik : Perona-Malik diffusion with a diffusivity of this module.

    Notes
    -----
    .. math:: g(s^2, \lambda) = \frac{1}{\sqrt{1 + s^2 / \lambda^2}}

    References
    ----------
    .. [1] P. Charbonnier, L. Blanc-Feraud, G. Aubert and M. Barlaud, "Deterministic edge-preserving
           regularization in computed imaging", IEEE Trans. Image Process. 6(2), 298-311, 1997.

    Examples
    --------
    >>> import numpy as np
    >>> from ssdops import diffusivity
    >>> diffusivity.charbonnier(np.array([0.0, 0.12]), 0.2)
    array([1. , 0.5])
    """
    xp = array_namespace(s2)
    return 1.0 / xp.sqrt(1.0 + s2 / lam**2)


def total_variation(s2: Array, lam: Scalar) -> Array:
    r"""The regularised total-variation diffusivity :math:`1/\sqrt{s^2 + \lambda^2}`.

    Total-variation flow has :math:`g = 1/|\nabla u|`; :math:`\lambda` regularises it where the gradient
    vanishes, where :math:`g` reaches its maximum :math:`1/\lambda`: an explicit step must be small there
    (:func:`ssdops.stable_dt`), or take the semi-implicit scheme of :func:`ssdops.perona_malik`.

    Parameters
    ----------
    s2 : array
        The squared gradient magnitude :math:`s^2 = |\nabla u|^2` (non-negative), of any shape and
        any array-API library.
    lam : float
        The contrast parameter :math:`\lambda > 0` (callers such as :func:`ssdops.perona_malik` check
        it).

    Returns
    -------
    array
        :math:`g(s^2, \lambda)`, in :math:`(0, 1/\lambda]`, of the shape, library and dtype of ``s2``.

    Raises
    ------
    TypeError
        If ``s2`` is not an array of a supported library (a list, for example).

    See Also
    --------
    perona_malik, perona_malik_exp, charbonnier, linear : The other diffusivities.
    ssdops.perona_malik : Perona-Malik diffusion with a diffusivity of this module.

    Notes
    -----
    .. math:: g(s^2, \lambda) = \frac{1}{\sqrt{s^2 + \lambda^2}}

    References
    ----------
    .. [1] L. I. Rudin, S. Osher and E. Fatemi, "Nonlinear total variation based noise removal
           algorithms", Physica D 60(1-4), 259-268, 1992.

    Examples
    --------
    >>> import numpy as np
    >>> from ssdops import diffusivity
    >>> diffusivity.total_variation(np.array([0.0, 0.05]), 0.2)
    array([5.        , 3.33333333])
    """
    xp = array_namespace(s2)
    return 1.0 / xp.sqrt(s2 + lam**2)


def linear(s2: Array, lam: Scalar) -> Array:
    r"""The constant diffusivity 1: linear (heat-equation) diffusion.

    With it :func:`ssdops.perona_malik` takes steps of the heat equation :math:`u_t = \Delta u`
    (:func:`ssdops.heat` solves that exactly).

    Parameters
    ----------
    s2 : array
        The squared gradient magnitude :math:`s^2 = |\nabla u|^2` (non-negative), of any shape and
        any array-API library.
    lam : float
        The contrast parameter :math:`\lambda > 0` (callers such as :func:`ssdops.perona_malik` check
        it).

    Returns
    -------
    array
        Ones of the shape, library and dtype of ``s2``.

    Raises
    ------
    TypeError
        If ``s2`` is not an array of a supported library (a list, for example).

    See Also
    --------
    perona_malik, perona_malik_exp, charbonnier, total_variation : The other diffusivities.
    ssdops.perona_malik : Perona-Malik diffusion with a diffusivity of this module.

    Notes
    -----
    .. math:: g(s^2, \lambda) = 1

    With :math:`\gamma = 1`, :func:`ssdops.divergence_form` is :func:`ssdops.laplacian` (paper section 2.1,
    isotropic diffusion).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 2.1.

    Examples
    --------
    >>> import numpy as np
    >>> from ssdops import diffusivity
    >>> diffusivity.linear(np.array([0.0, 0.05]), 0.2)
    array([1., 1.])
    """
    xp = array_namespace(s2)
    return xp.ones_like(s2)


_BY_NAME = {
    f.__name__: f for f in (perona_malik, perona_malik_exp, charbonnier, total_variation, linear)
}


def name_of(diffusivity: str | Callable[..., Any]) -> str | None:
    """The name of a built-in diffusivity (given by name or as the function), else ``None``."""
    if isinstance(diffusivity, str):
        resolve(diffusivity)
        return diffusivity
    return next((name for name, f in _BY_NAME.items() if f is diffusivity), None)


def resolve(diffusivity: str | Callable[..., Any]) -> Callable[..., Any]:
    r"""A diffusivity given by name, or the callable itself.

    Parameters
    ----------
    diffusivity : str or callable
        One of ``"perona_malik"``, ``"perona_malik_exp"``, ``"charbonnier"``, ``"total_variation"``,
        ``"linear"``, or any callable ``g(s2, lam)``.

    Returns
    -------
    callable
        The function of this module of that name, or ``diffusivity`` itself when it is callable.

    Raises
    ------
    ValueError
        If ``diffusivity`` is neither callable nor one of the names, naming the valid ones.

    See Also
    --------
    ssdops.perona_malik : Takes a diffusivity by name or as a callable.

    Notes
    -----
    Every function of :mod:`ssdops` that takes a ``diffusivity`` resolves it here, so a name that is
    not one of the five raises the same error everywhere.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (5.1): the default, ``"perona_malik"``.

    Examples
    --------
    >>> from ssdops import diffusivity
    >>> diffusivity.resolve("charbonnier") is diffusivity.charbonnier
    True
    >>> diffusivity.resolve(lambda s2, lam: 1.0 / (1.0 + s2))(3.0, 0.1)
    0.25
    """
    if callable(diffusivity):
        return diffusivity
    try:
        return _BY_NAME[diffusivity]
    except KeyError:
        raise ValueError(
            f"unknown diffusivity {diffusivity!r}: use one of {sorted(_BY_NAME)} or a callable g(s2, lam)"
        ) from None
