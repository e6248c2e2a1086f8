"""DiffNet (Arridge & Hauptmann 2019) and the linear diffusion network in PyTorch, every stencil through ssdops.

Contract shared with ``diffnet_jax`` (same names, same shapes, same weight files). The grid dimension d
(``ndim``: 2 for images ``(N, 1, H, W)``, the paper's case and the default; 3 for volumes
``(N, 1, D, H, W)``; 1 for signals ``(N, 1, W)``) fixes the convolutions and the stencil:

- :class:`FilterEstimator` ``(depth=4, width=32, ndim=2)``: ``convs`` = ``depth`` d-D convolutions 3x...x3
  (padding 1, biases): ``1 -> width``, ``width -> width`` (``depth - 2`` times), ReLU after each, then
  ``width -> 2d + 1`` with no activation. Output ``zeta`` ``(N, 2d + 1, *grid)`` in the order of
  ``ssdops.FIVE_POINT`` / ``SEVEN_POINT`` (the neighbours at -e1..-ed, then +e1..+ed, the centre last): in
  2-D the paper's (up, left, down, right, centre).
- :class:`DiffusionLayer`: ``F_k = F_{k-1} + W_dt(zeta) F_{k-1}``, ``zeta = estimator(F_{k-1})``, through
  :func:`ssdops.filter_step` (zero outside the grid, as in the authors' code); learnable 0-d ``dt`` (0.2).
- :class:`DiffNet` ``(n_layers=5, depth=4, width=32, final_relu=True, ndim=2)``: 101,310 parameters in 2-D
  (3 layers: 60,786), as in the paper; 311,560 in 3-D.
- :class:`LinearDiffusionNet` ``(grid_shape, n_layers=5, final_relu=False)``: per layer the ``2d + 1``
  diagonals of ``L_dt(gamma)`` as explicit parameters ``(2d + 1, *grid)`` (initialised to the Neumann
  Laplacian, d = ``len(grid_shape)``) and a 0-d ``dt`` (0.2).
"""
from __future__ import annotations

import torch
from torch import nn

import ssdops
from ssdops.diffnet import format as weight_files
from ssdops.diffnet.config import check_input_shape

__all__ = ["DiffNet", "DiffusionLayer", "FilterEstimator", "LinearDiffusionLayer", "LinearDiffusionNet",
           "build_model", "count_parameters", "load_state_tensors", "load_weights", "save_weights", "state_tensors"]

DT_INIT = 0.2
#: The convolution of each grid dimension.
CONVOLUTIONS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class FilterEstimator(nn.Module):
    """The CNN that maps an image ``(N, 1, *grid)`` (d = ``ndim`` grid axes) to ``2d + 1`` filter maps ``zeta``
    ``(N, 2d + 1, *grid)``: five for an image, seven for a volume."""

    def __init__(self, depth=4, width=32, ndim=2):
        super().__init__()
        if depth < 2:
            raise ValueError("depth must be >= 2 (at least one hidden conv and the output conv)")
        if ndim not in CONVOLUTIONS:
            raise ValueError(f"ndim must be one of {tuple(CONVOLUTIONS)}, got {ndim!r}")
        chans = [1] + [width] * (depth - 1) + [2 * ndim + 1]
        conv = CONVOLUTIONS[ndim]
        self.convs = nn.ModuleList(conv(a, b, 3, padding=1, bias=True) for a, b in zip(chans[:-1], chans[1:]))

    def forward(self, u):
        for conv in self.convs[:-1]:
            u = torch.relu(conv(u))
        return self.convs[-1](u)


class DiffusionLayer(nn.Module):
    """One DiffNet layer: ``u + W_dt(zeta(u)) u`` with ``W_dt(zeta) = dt [z1 up; z2 left, -z5, z4 right; z3 down]``
    in 2-D, and in d-D ``dt`` times the star stencil of the ``2d`` neighbour maps and minus the centre map."""

    def __init__(self, depth=4, width=32, ndim=2, dt_init=DT_INIT):
        super().__init__()
        self.estimator = FilterEstimator(depth, width, ndim)
        self.dt = nn.Parameter(torch.tensor(float(dt_init)))

    def trace(self, u):
        zeta = self.estimator(u)
        out = ssdops.filter_step(u[:, 0], zeta, self.dt)[:, None]
        return {"input": u, "zeta": zeta, "dt": self.dt, "output": out}

    def forward(self, u):
        return ssdops.filter_step(u[:, 0], self.estimator(u), self.dt)[:, None]


class _DiffusionNetwork(nn.Module):
    """``layers`` applied in turn, then (``final_relu``) a ReLU; ``trace`` records every layer."""

    def check_input(self, u):
        """ValueError unless ``u`` has the shape ``(N, 1, *grid)`` this network takes."""
        check_input_shape(u.shape, self.ndim, getattr(self, "grid_shape", None))

    def trace(self, u):
        """One dict per layer: ``input``, ``dt``, ``output`` (before the final ReLU), and the layer's
        operator (``zeta`` ``(N, 2d + 1, *grid)`` for DiffNet, ``diagonals`` for the linear network)."""
        self.check_input(u)
        records = []
        for layer in self.layers:
            rec = layer.trace(u)
            records.append(rec)
            u = rec["output"]
        return records

    def forward(self, u):
        self.check_input(u)
        for layer in self.layers:
            u = layer(u)
        return torch.relu(u) if self.final_relu else u


class DiffNet(_DiffusionNetwork):
    """DiffNet: ``n_layers`` learned nonlinear diffusion steps on ``ndim``-D grids, then (optionally) a ReLU.

    >>> sum(p.numel() for p in DiffNet().parameters()), sum(p.numel() for p in DiffNet(3).parameters())
    (101310, 60786)
    >>> sum(p.numel() for p in DiffNet(ndim=3).parameters())
    311560
    """

    def __init__(self, n_layers=5, depth=4, width=32, final_relu=True, ndim=2):
        super().__init__()
        self.n_layers, self.depth, self.width, self.final_relu = int(n_layers), int(depth), int(width), bool(final_relu)
        self.ndim = int(ndim)
        self.layers = nn.ModuleList(DiffusionLayer(depth, width, self.ndim) for _ in range(n_layers))

    @property
    def config(self):
        """Constructor keyword arguments plus ``"model"`` (stored in weight files)."""
        return {"model": "diffnet", "n_layers": self.n_layers, "depth": self.depth, "width": self.width,
                "final_relu": self.final_relu, "ndim": self.ndim}


class LinearDiffusionLayer(nn.Module):
    """``u + dt * SSD(diagonals) @ u`` with explicit diagonals ``(2d + 1, *grid)`` (FIVE_POINT / SEVEN_POINT
    order, d = ``len(grid_shape)``)."""

    def __init__(self, grid_shape, dt_init=DT_INIT):
        super().__init__()
        grid_shape = tuple(grid_shape)
        lap = ssdops.divergence_form(torch.ones(grid_shape, dtype=torch.float32), ndim=len(grid_shape),
                                     bc="neumann")
        self.offsets = lap.offsets
        self.diagonals = nn.Parameter(lap.diagonals.detach().clone().contiguous())
        self.dt = nn.Parameter(torch.tensor(float(dt_init)))

    def trace(self, u):
        op = ssdops.SSD(self.diagonals, self.offsets)
        out = ssdops.explicit_step(u[:, 0], op, self.dt)[:, None]
        return {"input": u, "diagonals": self.diagonals, "dt": self.dt, "output": out}

    def forward(self, u):
        return self.trace(u)["output"]


class LinearDiffusionNet(_DiffusionNetwork):
    """The paper's linear diffusion network (Fig. 1) on the fixed grid ``grid_shape`` (an image ``(H, W)`` or a
    volume ``(D, H, W)``): ``(2d + 1) * prod(grid) + 1`` parameters per layer, ``5 H W + 1`` in 2-D."""

    def __init__(self, grid_shape, n_layers=5, final_relu=False):
        super().__init__()
        self.grid_shape = tuple(int(n) for n in grid_shape)
        self.n_layers, self.final_relu = int(n_layers), bool(final_relu)
        self.layers = nn.ModuleList(LinearDiffusionLayer(self.grid_shape) for _ in range(n_layers))

    @property
    def ndim(self):
        """The grid dimension d: the length of ``grid_shape``."""
        return len(self.grid_shape)

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


# --- weight files (the format: ssdops.diffnet.format) ---------------------------------------------
def state_tensors(model):
    """``{name: NumPy float32 array}`` of the model's ``state_dict`` (host copies)."""
    return {k: v.detach().to("cpu", torch.float32).numpy().copy() for k, v in model.state_dict().items()}


def load_state_tensors(model, tensors):
    """Load ``{name: NumPy array}`` into ``model`` (each cast to the model's dtype; every name must match)."""
    own = model.state_dict()
    model.load_state_dict({k: torch.from_numpy(v).to(own[k].dtype) if k in own else torch.from_numpy(v)
                           for k, v in tensors.items()}, strict=True)
    return model


def save_weights(model, path, *, extra_metadata=None):
    """Save ``model`` (a DiffNet, LinearDiffusionNet or UNet; DDP-wrapped too) in format ``ssdops-diffnet/1``
    (:mod:`ssdops.diffnet.format`, readable by ``diffnet_jax.load_weights``)."""
    model = getattr(model, "module", model)
    weight_files.write_weights(path, model.config, state_tensors(model), extra_metadata)


def load_weights(path, *, device="cpu", allow_nonfinite=False):
    """The model stored at ``path``, in eval mode: a weights file or a training checkpoint (its optimiser
    state left out) of this package or of ``diffnet_jax``. The file's checksum is verified; non-finite
    weights are refused unless ``allow_nonfinite`` (:mod:`ssdops.diffnet.format`)."""
    config, tensors = weight_files.read_weights(path, allow_nonfinite=allow_nonfinite)
    return load_state_tensors(build_model(config), tensors).to(device).eval()
