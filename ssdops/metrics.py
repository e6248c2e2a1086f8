"""Image quality metrics and measurement noise, per image over the last two axes.

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import device

from ._array import Array, Scalar, namespace
from ._validate import check_ndim

__all__ = ["psnr", "relative_l2", "add_noise"]


def psnr(x: Array, ref: Array, *, data_range: Scalar | None = None, ndim: int = 2) -> Array:
    r"""Peak signal-to-noise ratio in dB per image: :math:`10\log_{10}(R^2 / \mathrm{MSE})`.

    ``data_range`` R defaults to ``max(ref) - min(ref)`` of each image (the authors' convention); a number
    or an array of the batch shape is used as given. ``inf`` where ``x == ref``; ``nan`` where ``x`` or
    ``ref`` holds a NaN or an infinity (never a great score for a diverged output).

    Parameters
    ----------
    x : array
        The images to score, ``(..., H, W)``, of a floating dtype.
    ref : array
        The reference images, broadcasting with ``x``, of the same library and dtype.
    data_range : float or array, optional
        The peak value R per image; default ``max(ref) - min(ref)`` over each image.
    ndim : {1, 2, 3}, optional
        The grid dimension: an image is the last ``ndim`` axes (3 scores whole volumes).

    Returns
    -------
    array
        The PSNR in dB per image: an array of the broadcast batch shape (0-d for single images).

    Raises
    ------
    TypeError
        If ``x`` and ``ref`` are of different array libraries or not floating-point arrays.
    ValueError
        If ``x`` and ``ref`` do not broadcast, or have fewer than two axes (raised by the array library).

    See Also
    --------
    relative_l2 : The relative error per image.
    add_noise : Noise of a given level, as in the paper's experiments.

    Notes
    -----
    Over the last two axes, per image,

    .. math::

       \mathrm{PSNR}(x, r) = 10 \log_{10} \frac{R^2}{\frac{1}{HW} \sum_{ij} (x_{ij} - r_{ij})^2},
       \qquad R = \max_{ij} r_{ij} - \min_{ij} r_{ij}.

    The authors' code computes it over a whole batch at once; this function scores each image, so that
    means and spreads over a test set are well defined.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 5 (the PSNR of every experiment).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> ref = np.linspace(0, 1, 16).reshape(4, 4)
    >>> round(float(ssdops.psnr(ref + 0.01, ref)), 6)
    40.0
    >>> ssdops.psnr(np.stack([ref, ref + 0.1]), ref)
    array([inf, 20.])
    """
    xp = namespace(x, ref)
    ndim = check_ndim(ndim)
    axes = tuple(range(-ndim, 0))
    a, b, s = _scaled(xp, x, ref, axes)
    d = a - b
    finite = xp.all(xp.isfinite(d), axis=axes)   # False for a NaN or an infinity in x or ref
    m = _power_of_two(xp, xp.max(xp.abs(d), axis=axes, keepdims=True))
    e = d / m
    mean_square = xp.mean(e * e, axis=axes)   # in [1/N, 4]: neither overflows nor underflows
    exact = mean_square == 0
    m = _drop_grid_axes(xp, m, ndim)
    if data_range is None:
        peak = 20.0 * xp.log10(xp.max(b, axis=axes) - xp.min(b, axis=axes))   # R / s
    else:
        peak = 20.0 * xp.log10(xp.abs(xp.asarray(data_range, dtype=mean_square.dtype, device=device(x)))) \
            - 20.0 * xp.log10(_drop_grid_axes(xp, s, ndim))
    value = peak - 20.0 * xp.log10(m) - 10.0 * xp.log10(xp.where(exact, xp.ones_like(mean_square), mean_square))
    value = xp.where(exact, xp.full_like(value, float("inf")), value)
    return xp.where(finite, value, xp.full_like(value, float("nan")))


def _power_of_two(xp, v):
    """A power of two near ``v`` (``2**floor(log2 v)``) where ``v`` is finite and > 0, else 1: dividing by it is
    exact (no rounding), and brings ``v`` into [1, 2)."""
    ok = (v > 0) & xp.isfinite(v)
    exponent = xp.floor(xp.log2(xp.where(ok, v, xp.ones_like(v))))
    return xp.where(ok, 2.0 ** exponent, xp.ones_like(v))


def _scaled(xp, x, ref, axes):
    """``x / s``, ``ref / s`` and ``s`` (keeping the grid axes, of length 1), ``s`` a power of two near the
    largest magnitude of each image pair: the metrics' sums of squares then neither overflow nor underflow in
    the inputs' dtype (float32 of magnitude 1e20 or 1e-30, whose squares leave its range), whatever library
    (JAX without float64 included); the division by a power of two loses nothing."""
    big = xp.maximum(xp.max(xp.abs(x), axis=axes, keepdims=True), xp.max(xp.abs(ref), axis=axes, keepdims=True))
    s = _power_of_two(xp, big)
    return x / s, ref / s, s


def _drop_grid_axes(xp, v, ndim):
    """``v`` of shape ``(..., 1, ..., 1)`` (``ndim`` grid axes kept by a reduction) as an array of the batch
    shape."""
    return xp.reshape(v, tuple(v.shape[: v.ndim - ndim]))


def relative_l2(x: Array, ref: Array, *, ndim: int = 2) -> Array:
    r"""The relative error :math:`\|x - \mathrm{ref}\|_2 / \|\mathrm{ref}\|_2` per image.

    Parameters
    ----------
    x : array
        The images to score, ``(..., H, W)``, of a floating dtype.
    ref : array
        The reference images, broadcasting with ``x``, of the same library and dtype.
    ndim : {1, 2, 3}, optional
        The grid dimension: an image is the last ``ndim`` axes.

    Returns
    -------
    array
        The relative error per image, an array of the broadcast batch shape (``inf`` for a zero reference
        image and a non-zero error).

    Raises
    ------
    TypeError
        If ``x`` and ``ref`` are of different array libraries.
    ValueError
        If ``x`` and ``ref`` do not broadcast, or have fewer than two axes (raised by the array library).

    See Also
    --------
    psnr : The peak signal-to-noise ratio per image.

    Notes
    -----
    Over the last two axes, per image,

    .. math:: e(x, r) = \frac{\|x - r\|_2}{\|r\|_2} = \sqrt{\frac{\sum_{ij} (x_{ij} - r_{ij})^2}
       {\sum_{ij} r_{ij}^2}}.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 5.1 (a relative :math:`\ell_2` error of :math:`2.5 \cdot 10^{-4}`).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> float(ssdops.relative_l2(np.array([[3.0, 4.0]]), np.array([[3.0, 0.0]])))
    1.3333333333333333
    """
    xp = namespace(x, ref)
    axes = tuple(range(-check_ndim(ndim), 0))
    a, b, _ = _scaled(xp, x, ref, axes)   # the ratio does not depend on the scale
    d = a - b
    # Each norm as m * sqrt(sum((v / m)**2)), m a power of two near max |v|: no square leaves the dtype's range.
    md = _power_of_two(xp, xp.max(xp.abs(d), axis=axes, keepdims=True))
    mb = _power_of_two(xp, xp.max(xp.abs(b), axis=axes, keepdims=True))
    d, b = d / md, b / mb
    ratio = xp.sqrt(xp.sum(d * d, axis=axes) / xp.sum(b * b, axis=axes))
    ndim = len(axes)
    return ratio * (_drop_grid_axes(xp, md, ndim) / _drop_grid_axes(xp, mb, ndim))


def add_noise(y: Array, level: Scalar, *, rng: Any, ndim: int = 2) -> Array:
    r"""``y`` plus Gaussian noise of standard deviation ``level * max|y|`` per image.

    This is the project's reading of the paper's "p% noise" (``level = p / 100``). The noise is drawn on
    the host and moved to ``y``'s device (data generation, not a hot path).

    Parameters
    ----------
    y : array
        The clean images, ``(..., H, W)``, of a floating dtype.
    level : float
        The noise level relative to each image's maximum magnitude (0.01 for the paper's 1 % noise).
    rng : numpy.random.Generator or int
        The random generator, or a seed for :func:`numpy.random.default_rng`.
    ndim : {1, 2, 3}, optional
        The grid dimension: the maximum is taken over the last ``ndim`` axes.

    Returns
    -------
    array
        ``y`` plus the noise, of the shape, library, dtype and device of ``y``.

    Raises
    ------
    TypeError
        If ``y`` is not a floating-point array of a supported library, or ``rng`` is neither a generator
        nor a seed.

    See Also
    --------
    psnr : The peak signal-to-noise ratio per image.

    Notes
    -----
    Per image :math:`y` (the last two axes), with :math:`\eta_{ij}` independent standard normal draws,

    .. math:: y^\delta_{ij} = y_{ij} + \ell \, \max_{kl} |y_{kl}| \; \eta_{ij}.

    The paper reports 0.1 %, 1 % and 10 % noise without defining the percentage, and the authors' code
    does not say either: this definition is the project's.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), sections 5.2 and 6.1 (noisy Perona-Malik inversion).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> y = np.ones((2, 64, 64))
    >>> n = ssdops.add_noise(y, 0.01, rng=0) - y
    >>> bool(abs(n.std() - 0.01) < 1e-3)
    True
    """
    xp = namespace(y)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    noise = xp.asarray(rng.standard_normal(tuple(y.shape)), dtype=y.dtype, device=device(y))
    scale = level * xp.max(xp.abs(y), axis=tuple(range(-check_ndim(ndim), 0)), keepdims=True)
    return y + scale * noise
