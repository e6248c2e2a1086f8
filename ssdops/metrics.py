"""Image quality metrics and measurement noise, per image over the last two axes."""
from __future__ import annotations

import numpy as np
from array_api_compat import device

from ._array import namespace

__all__ = ["psnr", "relative_l2", "add_noise"]


def psnr(x, ref, *, data_range=None):
    r"""Peak signal-to-noise ratio in dB per image: :math:`10\log_{10}(R^2 / \mathrm{MSE})`.

    ``data_range`` R defaults to ``max(ref) - min(ref)`` of each image (the authors' convention); a number
    or an array of the batch shape is used as given. Returns an array of the batch shape; ``inf`` where
    ``x == ref``.

    >>> import numpy as np, ssdops
    >>> ref = np.linspace(0, 1, 16).reshape(4, 4)
    >>> round(float(ssdops.psnr(ref + 0.01, ref)), 6)
    40.0
    """
    xp = namespace(x, ref)
    err = x - ref
    mse = xp.mean(err * err, axis=(-2, -1))
    if data_range is None:
        data_range = xp.max(ref, axis=(-2, -1)) - xp.min(ref, axis=(-2, -1))
    positive = mse > 0
    value = 10.0 * xp.log10(data_range**2 / xp.where(positive, mse, xp.ones_like(mse)))
    return xp.where(positive, value, xp.full_like(value, float("inf")))


def relative_l2(x, ref):
    r""":math:`\|x - \mathrm{ref}\|_2 / \|\mathrm{ref}\|_2` per image (an array of the batch shape)."""
    xp = namespace(x, ref)
    err = x - ref
    return xp.sqrt(xp.sum(err * err, axis=(-2, -1)) / xp.sum(ref * ref, axis=(-2, -1)))


def add_noise(y, level, *, rng):
    r"""``y`` plus Gaussian noise of standard deviation ``level * max|y|`` per image.

    This is the project's reading of the paper's "p% noise" (``level = p / 100``). ``rng`` is a
    ``numpy.random.Generator`` or a seed; the noise is drawn on the host and moved to ``y``'s device
    (data generation, not a hot path).

    >>> import numpy as np, ssdops
    >>> y = np.ones((2, 64, 64))
    >>> n = ssdops.add_noise(y, 0.01, rng=0) - y
    >>> bool(abs(n.std() - 0.01) < 1e-3)
    True
    """
    xp = namespace(y)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    noise = xp.asarray(rng.standard_normal(tuple(y.shape)), dtype=y.dtype, device=device(y))
    scale = level * xp.max(xp.abs(y), axis=(-2, -1), keepdims=True)
    return y + scale * noise
