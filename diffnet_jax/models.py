r"""DiffNet and the linear diffusion network as Equinox modules (JAX, float32).

Every stencil operation goes through :mod:`ssdops` with JAX arrays: a DiffNet layer computes
:math:`F_k = F_{k-1} + W_{dt}(\zeta^{(k)}) F_{k-1}` with ``ssdops.filter_step``, the linear network
:math:`F_k = F_{k-1} + dt\, \mathrm{SSD}(d^{(k)}) F_{k-1}` with ``ssdops.explicit_step``.

The modules mirror ``diffnet_torch`` exactly: the same constructor arguments, the same parameter shapes
and names (``layers.{k}.dt``, ``layers.{k}.estimator.convs.{j}.weight`` / ``.bias``,
``layers.{k}.diagonals``), the same initialisation law (PyTorch's default ``Conv2d`` initialisation,
``dt = 0.2``), and convolutions that are cross-correlations with OIHW weights like ``torch.nn.Conv2d``.
Inputs are ``(N, 1, H, W)``; parameters are float32 whatever ``jax_enable_x64`` says, and inputs are cast
to the parameters' dtype at the model boundary.
"""
from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

import ssdops

__all__ = ["Conv2d", "FilterEstimator", "DiffusionLayer", "DiffNet", "LinearDiffusionLayer", "LinearDiffusionNet"]

_DT_INIT = 0.2
_DTYPE = jnp.float32


def _param_dtype(module):
    """The floating dtype of a module's first array leaf (float32 unless the caller cast the model)."""
    for leaf in jax.tree_util.tree_leaves(eqx.filter(module, eqx.is_inexact_array)):
        return leaf.dtype
    return _DTYPE


class Conv2d(eqx.Module):
    """3x3 (or kxk) convolution, stride 1, 'SAME' zero padding, with bias: ``torch.nn.Conv2d`` semantics.

    ``weight`` is ``(out, in, k, k)`` (OIHW), ``bias`` is ``(out,)``; input and output are NCHW. The
    initialisation is PyTorch's default: both drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """

    weight: jax.Array
    bias: jax.Array

    def __init__(self, in_channels, out_channels, kernel_size=3, *, key):
        wkey, bkey = jax.random.split(key)
        bound = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = jax.random.uniform(wkey, shape, dtype=_DTYPE, minval=-bound, maxval=bound)
        self.bias = jax.random.uniform(bkey, (out_channels,), dtype=_DTYPE, minval=-bound, maxval=bound)

    def __call__(self, x):
        k = self.weight.shape[-1]
        y = jax.lax.conv_general_dilated(
            x,
            self.weight,
            window_strides=(1, 1),
            padding=((k // 2, k // 2), (k // 2, k // 2)),
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
            precision=jax.lax.Precision.HIGHEST,
        )
        return y + self.bias[None, :, None, None]


class FilterEstimator(eqx.Module):
    """CNN_k of the paper: ``depth - 1`` conv3x3 + ReLU layers (1 -> width, width -> width), then a conv3x3
    to the five filters zeta in the paper's order (up, left, down, right, centre), no activation.

    ``(N, 1, H, W) -> (N, 5, H, W)``.
    """

    convs: list

    def __init__(self, depth=4, width=32, *, key):
        if depth < 2:
            raise ValueError(f"depth must be >= 2 (one hidden conv and the output conv), got {depth}")
        keys = jax.random.split(key, depth)
        channels = [1] + [width] * (depth - 1) + [5]
        self.convs = [Conv2d(channels[j], channels[j + 1], 3, key=keys[j]) for j in range(depth)]

    def __call__(self, x):
        for conv in self.convs[:-1]:
            x = jax.nn.relu(conv(x))
        return self.convs[-1](x)


class DiffusionLayer(eqx.Module):
    """One DiffNet layer: ``zeta = estimator(u)``, output ``u + W_dt(zeta) u`` (through ``ssdops.filter_step``)."""

    estimator: FilterEstimator
    dt: jax.Array

    def __init__(self, depth=4, width=32, *, key):
        self.estimator = FilterEstimator(depth, width, key=key)
        self.dt = jnp.asarray(_DT_INIT, dtype=_DTYPE)

    def trace(self, u):
        """``{"input", "zeta", "dt", "output"}`` for input ``u`` of shape ``(N, 1, H, W)``."""
        zeta = self.estimator(u)
        out = ssdops.filter_step(u[:, 0], zeta, self.dt)[:, None]
        return {"input": u, "zeta": zeta, "dt": self.dt, "output": out}

    def __call__(self, u):
        return self.trace(u)["output"]


class _DiffusionNetwork(eqx.Module):
    """``layers`` applied in turn (input cast to the parameters' dtype), then a ReLU when ``final_relu``."""

    def trace(self, u):
        """Per layer ``{"input", "dt", "output"}`` (before the final ReLU) and the layer's operator:
        ``zeta`` ``(N, 5, H, W)`` for DiffNet, ``diagonals`` for the linear network."""
        u = jnp.asarray(u, dtype=_param_dtype(self))
        records = []
        for layer in self.layers:
            rec = layer.trace(u)
            records.append(rec)
            u = rec["output"]
        return records

    def __call__(self, u):
        u = jnp.asarray(u, dtype=_param_dtype(self))
        for layer in self.layers:
            u = layer(u)
        return jax.nn.relu(u) if self.final_relu else u


class DiffNet(_DiffusionNetwork):
    """The paper's DiffNet (Fig. 2/3): ``n_layers`` diffusion layers, then a ReLU when ``final_relu``.

    >>> import jax, diffnet_jax
    >>> diffnet_jax.count_parameters(diffnet_jax.DiffNet(key=jax.random.PRNGKey(0)))
    101310
    """

    layers: list
    n_layers: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    final_relu: bool = eqx.field(static=True)

    def __init__(self, n_layers=5, depth=4, width=32, final_relu=True, *, key):
        keys = jax.random.split(key, n_layers)
        self.layers = [DiffusionLayer(depth, width, key=k) for k in keys]
        self.n_layers = int(n_layers)
        self.depth = int(depth)
        self.width = int(width)
        self.final_relu = bool(final_relu)

    @property
    def config(self):
        """Constructor keyword arguments (stored in weight files)."""
        return {
            "model": "diffnet",
            "n_layers": self.n_layers,
            "depth": self.depth,
            "width": self.width,
            "final_relu": self.final_relu,
        }


class LinearDiffusionLayer(eqx.Module):
    """One layer of the linear diffusion network (Fig. 1): explicit diagonals ``(5, H, W)`` and a step dt.

    Output ``u + dt * SSD(diagonals) @ u``; initialised to the 5-point Neumann Laplacian and dt = 0.2.
    """

    diagonals: jax.Array
    dt: jax.Array

    def __init__(self, grid_shape):
        lap = ssdops.divergence_form(jnp.ones(tuple(grid_shape), dtype=_DTYPE), bc="neumann")
        self.diagonals = jnp.asarray(lap.diagonals, dtype=_DTYPE)
        self.dt = jnp.asarray(_DT_INIT, dtype=_DTYPE)

    def trace(self, u):
        op = ssdops.SSD(self.diagonals, ssdops.FIVE_POINT)
        out = ssdops.explicit_step(u[:, 0], op, self.dt)[:, None]
        return {"input": u, "diagonals": self.diagonals, "dt": self.dt, "output": out}

    def __call__(self, u):
        return self.trace(u)["output"]


class LinearDiffusionNet(_DiffusionNetwork):
    """The paper's linear diffusion network: per layer learned diagonals (5 H W parameters) and dt.

    ``key`` is accepted for a uniform constructor signature; the initialisation is deterministic.
    """

    layers: list
    grid_shape: tuple = eqx.field(static=True)
    n_layers: int = eqx.field(static=True)
    final_relu: bool = eqx.field(static=True)

    def __init__(self, grid_shape, n_layers=5, final_relu=False, *, key=None):
        self.grid_shape = tuple(int(n) for n in grid_shape)
        self.n_layers = int(n_layers)
        self.final_relu = bool(final_relu)
        self.layers = [LinearDiffusionLayer(self.grid_shape) for _ in range(self.n_layers)]

    @property
    def config(self):
        return {
            "model": "linear",
            "grid_shape": list(self.grid_shape),
            "n_layers": self.n_layers,
            "final_relu": self.final_relu,
        }


def count_parameters(model):
    """Number of scalar parameters (floating array leaves; also works on ``jax.eval_shape`` skeletons)."""
    def is_param(x):
        return isinstance(x, (jax.Array, jax.ShapeDtypeStruct)) and jnp.issubdtype(x.dtype, jnp.inexact)

    return sum(int(x.size) for x in jax.tree_util.tree_leaves(eqx.filter(model, is_param)))


def build_model(config, *, key=None):
    """A model from its config dict (``{"model": "diffnet"|"linear", ...constructor kwargs}``)."""
    config = dict(config)
    kind = config.pop("model", "diffnet")
    key = jax.random.PRNGKey(0) if key is None else key
    if kind == "diffnet":
        return DiffNet(**config, key=key)
    if kind == "linear":
        config["grid_shape"] = tuple(config["grid_shape"])
        return LinearDiffusionNet(**config, key=key)
    raise ValueError(f"unknown model {kind!r}: expected 'diffnet' or 'linear'")
