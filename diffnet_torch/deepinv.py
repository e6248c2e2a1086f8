r"""A DiffNet (or any model of this package) as a deepinv reconstructor.

deepinv is imported only when :func:`as_deepinv` is called (``pip install ssdops[deepinv]``).

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
"""
from __future__ import annotations

import functools

__all__ = ["as_deepinv"]


@functools.cache
def _reconstructor_class():
    """The reconstructor class, defined on first use (deepinv is imported only then)."""
    from ssdops.interop._deepinv import import_deepinv

    deepinv = import_deepinv()

    class DiffNetReconstructor(deepinv.models.Reconstructor):
        """A one-channel model of this package as a deepinv reconstructor (see :func:`as_deepinv`)."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, y, physics=None, **kwargs):
            if y.ndim < 3:
                raise ValueError(f"deepinv measurements must have shape (B, C, *grid), got {tuple(y.shape)}")
            # The models take one channel: every channel of every image is reconstructed on its own.
            folded = y.reshape((y.shape[0] * y.shape[1], 1) + tuple(y.shape[2:]))
            return self.model(folded).reshape(y.shape)

    return DiffNetReconstructor


def as_deepinv(model):
    r"""A model of this package as a :class:`deepinv.models.Reconstructor`: ``forward(y, physics) = model(y)``.

    deepinv's measurements are ``(B, C, *grid)``; the models of this package take one channel, so the C channels
    are folded into the batch (``(B C, 1, *grid)``), reconstructed each on its own, and unfolded. ``physics``
    is not used: a DiffNet learned its forward model (the shipped weights: the paper's Perona-Malik model,
    :func:`ssdops.perona_malik_physics`). The model is a submodule: ``.to``, ``.eval`` and ``.parameters()``
    of the reconstructor reach it.

    Parameters
    ----------
    model : torch.nn.Module
        A model taking ``(N, 1, *grid)`` images, such as :func:`load_weights`' DiffNet.

    Returns
    -------
    deepinv.models.Reconstructor
        The reconstructor; its ``model`` attribute is ``model``.

    Raises
    ------
    TypeError
        If ``model`` is not a :class:`torch.nn.Module`.
    ImportError
        If deepinv, an optional dependency, is not installed (``pip install ssdops[deepinv]``).
    ValueError
        When called on measurements with fewer than 3 axes.

    See Also
    --------
    ssdops.perona_malik_physics : The forward model of the shipped weights.
    load_weights : The shipped weights.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 5.2.

    Examples
    --------
    The shipped weights on the paper's Perona-Malik model, scored by ``deepinv.test`` (prints its PSNR table
    of the reconstructor and of the measurement; returns the means):

    >>> import torch, ssdops, diffnet_torch
    >>> from diffnet_torch.demo import SHIPPED_WEIGHTS, camera
    >>> model = diffnet_torch.as_deepinv(diffnet_torch.load_weights(SHIPPED_WEIGHTS))
    >>> import deepinv          # after as_deepinv, which makes it importable with the CPU torch wheel
    >>> physics = ssdops.perona_malik_physics()
    >>> x = torch.from_numpy(camera(64)).float()[None, None]
    >>> data = [{"x": x[0], "y": physics(x)[0]}]      # deepinv's dataset format: a dict per sample
    >>> with torch.no_grad():
    ...     scores = deepinv.test(model, torch.utils.data.DataLoader(data), physics, show_progress_bar=False,
    ...                           verbose=False, no_learning_method="y")
    >>> print(f"{scores['PSNR no learning']:.2f} dB -> {scores['PSNR']:.2f} dB")
    30.57 dB -> 36.83 dB

    With ``verbose=True`` (deepinv's default) ``deepinv.test`` prints its table of the same figures.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"diffnet_torch.as_deepinv takes a torch.nn.Module, got {type(model).__name__}")
    return _reconstructor_class()(model)
