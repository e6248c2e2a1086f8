r"""Diffusivities :math:`g(s^2, \lambda)` of the squared gradient magnitude :math:`s^2 = |\nabla u|^2`.

Each takes ``s2`` (an array) and the contrast parameter ``lam > 0`` and returns an array like ``s2``.
Any callable with the same signature can be passed to :func:`ssdops.perona_malik` instead of a name.

>>> import numpy as np
>>> from ssdops import diffusivity
>>> diffusivity.perona_malik(np.array([0.0, 0.04]), 0.2)
array([1. , 0.5])
"""
from __future__ import annotations

from array_api_compat import array_namespace

__all__ = ["perona_malik", "perona_malik_exp", "charbonnier", "total_variation", "linear", "resolve"]


def perona_malik(s2, lam):
    r""":math:`1 / (1 + s^2/\lambda^2)`, the rational Perona-Malik diffusivity (the paper's, eq. 5.1)."""
    return 1.0 / (1.0 + s2 / lam**2)


def perona_malik_exp(s2, lam):
    r""":math:`\exp(-s^2/\lambda^2)`, Perona-Malik's exponential diffusivity."""
    xp = array_namespace(s2)
    return xp.exp(-s2 / lam**2)


def charbonnier(s2, lam):
    r""":math:`1/\sqrt{1 + s^2/\lambda^2}` (the authors' code: :math:`T/\sqrt{s^2 + T^2}`)."""
    xp = array_namespace(s2)
    return 1.0 / xp.sqrt(1.0 + s2 / lam**2)


def total_variation(s2, lam):
    r""":math:`1/\sqrt{s^2 + \lambda^2}`: total-variation flow :math:`1/|\nabla u|`, regularised by
    :math:`\lambda` where the gradient vanishes (large values there: mind the explicit step size)."""
    xp = array_namespace(s2)
    return 1.0 / xp.sqrt(s2 + lam**2)


def linear(s2, lam):
    """1: linear (heat-equation) diffusion."""
    xp = array_namespace(s2)
    return xp.ones_like(s2)


_BY_NAME = {
    f.__name__: f for f in (perona_malik, perona_malik_exp, charbonnier, total_variation, linear)
}


def name_of(diffusivity):
    """The name of a built-in diffusivity (given by name or as the function), else ``None``."""
    if isinstance(diffusivity, str):
        resolve(diffusivity)
        return diffusivity
    return next((name for name, f in _BY_NAME.items() if f is diffusivity), None)


def resolve(diffusivity):
    """A diffusivity by name, or the callable itself."""
    if callable(diffusivity):
        return diffusivity
    try:
        return _BY_NAME[diffusivity]
    except KeyError:
        raise ValueError(
            f"unknown diffusivity {diffusivity!r}: use one of {sorted(_BY_NAME)} or a callable g(s2, lam)"
        ) from None
