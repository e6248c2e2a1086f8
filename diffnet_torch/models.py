"""DiffNet (Arridge & Hauptmann 2019) and the linear diffusion network in PyTorch, every stencil through ssdops.

Contract shared with ``diffnet_jax`` (same names, same shapes, same weight files):

- :class:`FilterEstimator` ``(depth=4, width=32)``: ``convs`` = ``depth`` Conv2d 3x3 (padding 1, biases):
  ``1 -> width``, ``width -> width`` (``depth - 2`` times), ReLU after each, then ``width -> 5`` with no
  activation. Output ``zeta`` ``(N, 5, H, W)`` in the paper's order (up, left, down, right, centre).
- :class:`DiffusionLayer`: ``F_k = F_{k-1} + W_dt(zeta) F_{k-1}``, ``zeta = estimator(F_{k-1})``, through
  :func:`ssdops.filter_step` (zero outside the grid, as in the authors' code); learnable 0-d ``dt`` (0.2).
- :class:`DiffNet` ``(n_layers=5, depth=4, width=32, final_relu=True)``: 101,310 parameters (3 layers:
  60,786), as in the paper.
- :class:`LinearDiffusionNet` ``(grid_shape, n_layers=5, final_relu=False)``: per layer the five
  diagonals of ``L_dt(gamma)`` as explicit parameters ``(5, H, W)`` (initialised to the Neumann Laplacian)
  and a 0-d ``dt`` (0.2).
"""
from __future__ import annotations

import torch
from torch import nn

import ssdops

__all__ = ["DiffNet", "DiffusionLayer", "FilterEstimator", "LinearDiffusionLayer", "LinearDiffusionNet",
           "build_model", "count_parameters"]

DT_INIT = 0.2


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class FilterEstimator(nn.Module):
    """The CNN that maps an image ``(N, 1, H, W)`` to five filter images ``zeta`` ``(N, 5, H, W)``."""

    def __init__(self, depth=4, width=32):
        super().__init__()
        if depth < 2:
            raise ValueError("depth must be >= 2 (at least one hidden conv and the output conv)")
        chans = [1] + [width] * (depth - 1) + [5]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1, bias=True) for a, b in zip(chans[:-1], chans[1:]))

    def forward(self, u):
        for conv in self.convs[:-1]:
            u = torch.relu(conv(u))
        return self.convs[-1](u)


class DiffusionLayer(nn.Module):
    """One DiffNet layer: ``u + W_dt(zeta(u)) u`` with ``W_dt(zeta) = dt [z1 up; z2 left, -z5, z4 right; z3 down]``."""

    def __init__(self, depth=4, width=32, dt_init=DT_INIT):
        super().__init__()
        self.estimator = FilterEstimator(depth, width)
        self.dt = nn.Parameter(torch.tensor(float(dt_init)))

    def trace(self, u):
        zeta = self.estimator(u)
        out = ssdops.filter_step(u[:, 0], zeta, self.dt)[:, None]
        return {"input": u, "zeta": zeta, "dt": self.dt, "output": out}

    def forward(self, u):
        return ssdops.filter_step(u[:, 0], self.estimator(u), self.dt)[:, None]


class _DiffusionNetwork(nn.Module):
    """``layers`` applied in turn, then (``final_relu``) a ReLU; ``trace`` records every layer."""

    def trace(self, u):
        """One dict per layer: ``input``, ``dt``, ``output`` (before the final ReLU), and the layer's
        operator (``zeta`` ``(N, 5, H, W)`` for DiffNet, ``diagonals`` for the linear network)."""
        records = []
        for layer in self.layers:
            rec = layer.trace(u)
            records.append(rec)
            u = rec["output"]
        return records

    def forward(self, u):
        for layer in self.layers:
            u = layer(u)
        return torch.relu(u) if self.final_relu else u


class DiffNet(_DiffusionNetwork):
    """DiffNet: ``n_layers`` learned nonlinear diffusion steps, then (optionally) a ReLU.

    >>> sum(p.numel() for p in DiffNet().parameters()), sum(p.numel() for p in DiffNet(3).parameters())
    (101310, 60786)
    """

    def __init__(self, n_layers=5, depth=4, width=32, final_relu=True):
        super().__init__()
        self.n_layers, self.depth, self.width, self.final_relu = int(n_layers), int(depth), int(width), bool(final_relu)
        self.layers = nn.ModuleList(DiffusionLayer(depth, width) for _ in range(n_layers))

    @property
    def config(self):
        """Constructor keyword arguments plus ``"model"`` (stored in weight files)."""
        return {"model": "diffnet", "n_layers": self.n_layers, "depth": self.depth, "width": self.width,
                "final_relu": self.final_relu}


class LinearDiffusionLayer(nn.Module):
    """``u + dt * SSD(diagonals) @ u`` with explicit diagonals ``(5, H, W)`` (FIVE_POINT order)."""

    def __init__(self, grid_shape, dt_init=DT_INIT):
        super().__init__()
        lap = ssdops.divergence_form(torch.ones(tuple(grid_shape), dtype=torch.float32), bc="neumann")
        self.diagonals = nn.Parameter(lap.diagonals.detach().clone().contiguous())
        self.dt = nn.Parameter(torch.tensor(float(dt_init)))

    def trace(self, u):
        op = ssdops.SSD(self.diagonals, ssdops.FIVE_POINT)
        out = ssdops.explicit_step(u[:, 0], op, self.dt)[:, None]
        return {"input": u, "diagonals": self.diagonals, "dt": self.dt, "output": out}

    def forward(self, u):
        return self.trace(u)["output"]


class LinearDiffusionNet(_DiffusionNetwork):
    """The paper's linear diffusion network (Fig. 1): ``5 H W + 1`` parameters per layer, fixed grid."""

    def __init__(self, grid_shape, n_layers=5, final_relu=False):
        super().__init__()
        self.grid_shape = tuple(int(n) for n in grid_shape)
        self.n_layers, self.final_relu = int(n_layers), bool(final_relu)
        self.layers = nn.ModuleList(LinearDiffusionLayer(self.grid_shape) for _ in range(n_layers))

    @property
    def config(self):
        return {"model": "linear", "grid_shape": list(self.grid_shape), "n_layers": self.n_layers,
                "final_relu": self.final_relu}


def build_model(config):
    """A model from its config dict ``{"model": "diffnet"|"linear"|"unet", ...constructor kwargs}``."""
    config = dict(config)
    kind = config.pop("model", "diffnet")
    if kind == "diffnet":
        return DiffNet(**config)
    if kind == "linear":
        config["grid_shape"] = tuple(config["grid_shape"])
        return LinearDiffusionNet(**config)
    if kind == "unet":
        from .unet import UNet

        return UNet(**config)
    raise ValueError(f"unknown model {kind!r}: use diffnet, linear or unet")
