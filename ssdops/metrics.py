"""Image quality metrics and measurement noise, per image over the last two axes."""
from __future__ import annotations

import numpy as np
from array_api_compat import device

from ._array import namespace
from ._validate import check_ndim

__all__ = ["psnr", "relative_l2", "add_noise"]


def psnr(x, ref, *, data_range=None, ndim=2):
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
    .. [1] S. Arridge and A. Hauptmann, "Networks for nonlinear diffusion problems in imaging",
           J. Math. Imaging Vision, 2019, section 5 (the PSNR of every experiment).

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
    err = x - ref
    axes = tuple(range(-check_ndim(ndim), 0))
    mse = xp.mean(err * err, axis=axes)
    if data_range is None:
        data_range = xp.max(ref, axis=axes) - xp.min(ref, axis=axes)
    exact = mse == 0
    finite = xp.isfinite(mse)   # False for a NaN or an infinity in x or ref
    value = 10.0 * xp.log10(data_range**2 / xp.where(exact | ~finite, xp.ones_like(mse), mse))
    value = xp.where(exact, xp.full_like(value, float("inf")), value)
    return xp.where(finite, value, xp.full_like(value, float("nan")))


def relative_l2(x, ref, *, ndim=2):
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
    .. [1] S. Arridge and A. Hauptmann, "Networks for nonlinear diffusion problems in imaging",
           J. Math. Imaging Vision, 2019, section 5.1 (a relative :math:`\ell_2` error of :math:`2.5 \cdot 10^{-4}`).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> float(ssdops.relative_l2(np.array([[3.0, 4.0]]), np.array([[3.0, 0.0]])))
    1.3333333333333333
    """
    xp = namespace(x, ref)
    err = x - ref
    axes = tuple(range(-check_ndim(ndim), 0))
    return xp.sqrt(xp.sum(err * err, axis=axes) / xp.sum(ref * ref, axis=axes))


def add_noise(y, level, *, rng, ndim=2):
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
    .. [1] S. Arridge and A. Hauptmann, "Networks for nonlinear diffusion problems in imaging",
           J. Math. Imaging Vision, 2019, sections 5.2 and 6.1 (noisy Perona-Malik inversion).

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
