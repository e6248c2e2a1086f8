r"""DiffNet and the linear diffusion network as Equinox modules (JAX, float32).

Every stencil operation goes through :mod:`ssdops` with JAX arrays: a DiffNet layer computes
:math:`F_k = F_{k-1} + W_{dt}(\zeta^{(k)}) F_{k-1}` with ``ssdops.filter_step``, the linear network
:math:`F_k = F_{k-1} + dt\, \mathrm{SSD}(d^{(k)}) F_{k-1}` with ``ssdops.explicit_step``.

The modules mirror ``diffnet_torch`` exactly: the same constructor arguments, the same parameter shapes
and names (``layers.{k}.dt``, ``layers.{k}.estimator.convs.{j}.weight`` / ``.bias``,
``layers.{k}.diagonals``), the same initialisation law (PyTorch's default ``Conv2d`` / ``Conv3d``
initialisation, ``dt = 0.2``), and convolutions that are cross-correlations with OIHW (OIDHW) weights like
``torch.nn.Conv2d`` (``Conv3d``). Inputs are ``(N, 1, H, W)`` images (``ndim=2``, the default) or
``(N, 1, D, H, W)`` volumes (``ndim=3``); the filter estimator gives ``2 ndim + 1`` maps in
``ssdops.FIVE_POINT`` / ``SEVEN_POINT`` order. Parameters are float32 whatever ``jax_enable_x64`` says, and
inputs are cast to the parameters' dtype at the model boundary.
"""
from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import ssdops
from ssdops.diffnet import format as weight_files
from ssdops.diffnet.config import check_input_shape

__all__ = ["Conv", "FilterEstimator", "DiffusionLayer", "DiffNet", "LinearDiffusionLayer", "LinearDiffusionNet",
           "build_model", "count_parameters", "load_state_dict", "load_weights", "named_leaves", "save_weights",
           "state_dict"]

_DT_INIT = 0.2
_DTYPE = jnp.float32
#: The spatial axes' letters of a convolution's layout per grid dimension (``lax`` dimension numbers).
_SPATIAL = {1: "W", 2: "HW", 3: "DHW"}


def _param_dtype(module):
    """The floating dtype of a module's first array leaf (float32 unless the caller cast the model)."""
    for leaf in jax.tree_util.tree_leaves(eqx.filter(module, eqx.is_inexact_array)):
        return leaf.dtype
    return _DTYPE


class Conv(eqx.Module):
    """A d-D convolution, kernel 3 (or k) along each axis, stride 1, 'SAME' zero padding, with bias:
    ``torch.nn.Conv1d`` / ``Conv2d`` / ``Conv3d`` semantics for ``ndim`` 1 / 2 / 3.

    ``weight`` is ``(out, in, k, ..., k)`` (OIHW in 2-D, OIDHW in 3-D), ``bias`` is ``(out,)``; input and
    output are ``(N, C, *grid)``. The initialisation is PyTorch's default: both drawn from
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), ``fan_in = in * k ** ndim``.
    """

    weight: jax.Array
    bias: jax.Array

    def __init__(self, in_channels, out_channels, kernel_size=3, *, ndim=2, key):
        if ndim not in _SPATIAL:
            raise ValueError(f"ndim must be one of {tuple(_SPATIAL)}, got {ndim!r}")
        wkey, bkey = jax.random.split(key)
        bound = 1.0 / math.sqrt(in_channels * kernel_size**ndim)
        shape = (out_channels, in_channels) + (kernel_size,) * ndim
        self.weight = jax.random.uniform(wkey, shape, dtype=_DTYPE, minval=-bound, maxval=bound)
        self.bias = jax.random.uniform(bkey, (out_channels,), dtype=_DTYPE, minval=-bound, maxval=bound)

    def __call__(self, x):
        ndim = self.weight.ndim - 2
        k = self.weight.shape[-1]
        spatial = _SPATIAL[ndim]
        y = jax.lax.conv_general_dilated(
            x,
            self.weight,
            window_strides=(1,) * ndim,
            padding=((k // 2, k // 2),) * ndim,
            dimension_numbers=("NC" + spatial, "OI" + spatial, "NC" + spatial),
            precision=jax.lax.Precision.HIGHEST,
        )
        return y + self.bias.reshape((-1,) + (1,) * ndim)


class FilterEstimator(eqx.Module):
    """CNN_k of the paper: ``depth - 1`` conv 3x...x3 + ReLU layers (1 -> width, width -> width), then a conv
    3x...x3 to the ``2 ndim + 1`` filters zeta, no activation; in 2-D the paper's five in its order (up,
    left, down, right, centre), in 3-D seven in ``ssdops.SEVEN_POINT`` order.

    ``(N, 1, *grid) -> (N, 2 ndim + 1, *grid)``.
    """

    convs: list

    def __init__(self, depth=4, width=32, ndim=2, *, key):
        if depth < 2:
            raise ValueError(f"depth must be >= 2 (one hidden conv and the output conv), got {depth}")
        keys = jax.random.split(key, depth)
        channels = [1] + [width] * (depth - 1) + [2 * ndim + 1]
        self.convs = [Conv(channels[j], channels[j + 1], 3, ndim=ndim, key=keys[j]) for j in range(depth)]

    def __call__(self, x):
        for conv in self.convs[:-1]:
            x = jax.nn.relu(conv(x))
        return self.convs[-1](x)


class DiffusionLayer(eqx.Module):
    """One DiffNet layer: ``zeta = estimator(u)``, output ``u + W_dt(zeta) u`` (through ``ssdops.filter_step``)."""

    estimator: FilterEstimator
    dt: jax.Array

    def __init__(self, depth=4, width=32, ndim=2, *, key):
        self.estimator = FilterEstimator(depth, width, ndim, key=key)
        self.dt = jnp.asarray(_DT_INIT, dtype=_DTYPE)

    def trace(self, u):
        """``{"input", "zeta", "dt", "output"}`` for input ``u`` of shape ``(N, 1, *grid)``."""
        zeta = self.estimator(u)
        out = ssdops.filter_step(u[:, 0], zeta, self.dt)[:, None]
        return {"input": u, "zeta": zeta, "dt": self.dt, "output": out}

    def __call__(self, u):
        return self.trace(u)["output"]


class _DiffusionNetwork(eqx.Module):
    """``layers`` applied in turn (input cast to the parameters' dtype), then a ReLU when ``final_relu``."""

    def check_input(self, u):
        """ValueError unless ``u`` has the shape ``(N, 1, *grid)`` this network takes (static under jit)."""
        check_input_shape(u.shape, self.ndim, getattr(self, "grid_shape", None))

    def trace(self, u):
        """Per layer ``{"input", "dt", "output"}`` (before the final ReLU) and the layer's operator:
        ``zeta`` ``(N, 2 ndim + 1, *grid)`` for DiffNet, ``diagonals`` for the linear network."""
        self.check_input(u)
        u = jnp.asarray(u, dtype=_param_dtype(self))
        records = []
        for layer in self.layers:
            rec = layer.trace(u)
            records.append(rec)
            u = rec["output"]
        return records

    def __call__(self, u):
        self.check_input(u)
        u = jnp.asarray(u, dtype=_param_dtype(self))
        for layer in self.layers:
            u = layer(u)
        return jax.nn.relu(u) if self.final_relu else u


class DiffNet(_DiffusionNetwork):
    """The paper's DiffNet (Fig. 2/3): ``n_layers`` diffusion layers on ``ndim``-D grids, then a ReLU when
    ``final_relu``.

    >>> import jax, diffnet_jax
    >>> diffnet_jax.count_parameters(diffnet_jax.DiffNet(key=jax.random.PRNGKey(0)))
    101310
    """

    layers: list
    n_layers: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    final_relu: bool = eqx.field(static=True)
    ndim: int = eqx.field(static=True)

    def __init__(self, n_layers=5, depth=4, width=32, final_relu=True, ndim=2, *, key):
        keys = jax.random.split(key, n_layers)
        self.layers = [DiffusionLayer(depth, width, ndim, key=k) for k in keys]
        self.n_layers = int(n_layers)
        self.depth = int(depth)
        self.width = int(width)
        self.final_relu = bool(final_relu)
        self.ndim = int(ndim)

    @property
    def config(self):
        """Constructor keyword arguments (stored in weight files)."""
        return {
            "model": "diffnet",
            "n_layers": self.n_layers,
            "depth": self.depth,
            "width": self.width,
            "final_relu": self.final_relu,
            "ndim": self.ndim,
        }


class LinearDiffusionLayer(eqx.Module):
    """One layer of the linear diffusion network (Fig. 1): explicit diagonals ``(2d + 1, *grid)`` and a step
    dt (d = ``len(grid_shape)``).

    Output ``u + dt * SSD(diagonals) @ u``; initialised to the (2d + 1)-point Neumann Laplacian and dt = 0.2.
    """

    diagonals: jax.Array
    dt: jax.Array
    offsets: tuple = eqx.field(static=True)

    def __init__(self, grid_shape):
        grid_shape = tuple(grid_shape)
        lap = ssdops.divergence_form(jnp.ones(grid_shape, dtype=_DTYPE), ndim=len(grid_shape), bc="neumann")
        self.diagonals = jnp.asarray(lap.diagonals, dtype=_DTYPE)
        self.dt = jnp.asarray(_DT_INIT, dtype=_DTYPE)
        self.offsets = tuple(lap.offsets)

    def trace(self, u):
        op = ssdops.SSD(self.diagonals, self.offsets)
        out = ssdops.explicit_step(u[:, 0], op, self.dt)[:, None]
        return {"input": u, "diagonals": self.diagonals, "dt": self.dt, "output": out}

    def __call__(self, u):
        return self.trace(u)["output"]


class LinearDiffusionNet(_DiffusionNetwork):
    """The paper's linear diffusion network on the grid ``grid_shape`` (``(H, W)`` or ``(D, H, W)``): per layer
    learned diagonals (``(2d + 1) * prod(grid)`` parameters, 5 H W in 2-D) and dt.

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
    def ndim(self):
        """The grid dimension d: the length of ``grid_shape``."""
        return len(self.grid_shape)

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


# --- parameter names and weight files (the format: ssdops.diffnet.format) -------------------------
# The names come from the Equinox module tree itself (attribute names and list indices joined by dots), so
# a JAX model and its PyTorch twin have the same names by construction.


def _key_name(k):
    if isinstance(k, jax.tree_util.GetAttrKey):
        return k.name
    if isinstance(k, jax.tree_util.SequenceKey):
        return str(k.idx)
    if isinstance(k, jax.tree_util.DictKey):
        return str(k.key)
    raise TypeError(f"unsupported pytree key {k!r}")


def _is_array(x):
    """Array leaves, including the ``jax.ShapeDtypeStruct`` leaves of a ``jax.eval_shape`` skeleton."""
    return eqx.is_array(x) or isinstance(x, jax.ShapeDtypeStruct)


def named_leaves(tree):
    """``[(name, leaf)]`` over the array leaves of ``tree``, names in PyTorch ``state_dict`` style."""
    params = eqx.filter(tree, _is_array)
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return [(".".join(_key_name(k) for k in path), leaf) for path, leaf in flat]


def state_dict(model):
    """``{name: NumPy float32 array}`` (host copies)."""
    return {name: np.asarray(leaf, dtype=np.float32) for name, leaf in named_leaves(model)}


def load_state_dict(model, tensors, *, prefix=""):
    """``model`` with every array leaf replaced by ``tensors[prefix + name]`` (shapes checked, float32).

    ``model`` may be a skeleton from ``equinox.filter_eval_shape`` (no initialisation cost). Raises
    KeyError listing missing and (without ``prefix``) unexpected names, ValueError on a shape mismatch.
    """
    names = [name for name, _ in named_leaves(model)]
    wanted = {prefix + n for n in names}
    missing = sorted(wanted - set(tensors))
    unexpected = [] if prefix else sorted(set(tensors) - wanted)
    if missing or unexpected:
        raise KeyError(f"weights do not match the model: missing {missing}, unexpected {unexpected}")
    params, static = eqx.partition(model, _is_array)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    new = []
    for name, leaf in zip(names, leaves):
        value = np.asarray(tensors[prefix + name])
        if tuple(value.shape) != tuple(leaf.shape):
            raise ValueError(f"{prefix + name}: shape {tuple(value.shape)} in the file, "
                             f"{tuple(leaf.shape)} in the model")
        new.append(jnp.asarray(value, dtype=leaf.dtype))
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, new), static)


def save_weights(model, path, *, extra_metadata=None):
    """Save ``model`` in format ``ssdops-diffnet/1`` (:mod:`ssdops.diffnet.format`, readable by
    ``diffnet_torch.load_weights``)."""
    weight_files.write_weights(path, model.config, state_dict(model), extra_metadata)


def load_weights(path, *, allow_nonfinite=False):
    """The model stored at ``path``: a weights file or a training checkpoint (its optimiser state left out)
    of this package or of ``diffnet_torch``. The file's checksum is verified; non-finite weights are refused
    unless ``allow_nonfinite`` (:mod:`ssdops.diffnet.format`)."""
    config, tensors = weight_files.read_weights(path, allow_nonfinite=allow_nonfinite)
    skeleton = eqx.filter_eval_shape(build_model, config)   # shapes only: nothing is initialised
    return load_state_dict(skeleton, tensors)
