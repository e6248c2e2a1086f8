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

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
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
    r"""A d-D convolution with bias, kernel k along each axis, stride 1, 'SAME' zero padding.

    ``torch.nn.Conv1d`` / ``Conv2d`` / ``Conv3d`` semantics for ``ndim`` 1 / 2 / 3 (a cross-correlation).
    ``weight`` is ``(out, in, k, ..., k)`` (OIHW in 2-D, OIDHW in 3-D), ``bias`` is ``(out,)``; input and
    output are ``(N, C, *grid)``.

    Parameters
    ----------
    in_channels : int
        The input channels.
    out_channels : int
        The output channels.
    kernel_size : int, default 3
        The kernel length k along each axis (odd).
    ndim : {1, 2, 3}, default 2
        The grid dimension d.
    key : jax.Array
        The PRNG key of the initialisation (keyword only, required).

    Raises
    ------
    ValueError
        If ``ndim`` is not 1, 2 or 3.
    TypeError
        If ``key`` is not given.

    See Also
    --------
    FilterEstimator : A stack of these convolutions.

    Notes
    -----
    .. math:: y_{o}[p] = b_o + \sum_{i} \sum_{|q|_\infty \le k // 2} w_{o,i}[q]\, x_i[p + q],

    with :math:`x_i` zero outside the grid. The initialisation is PyTorch's default: weight and bias drawn
    from :math:`U(-1/\sqrt{f}, 1/\sqrt{f})`, :math:`f = \mathrm{in} \cdot k^d`.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 4 (the 3x3 convolutions of :math:`\mathrm{CNN}_k`).
    .. [2] P. Kidger and C. Garcia, "Equinox: neural networks in JAX via callable PyTrees and filtered
           transformations", Differentiable Programming workshop at NeurIPS 2021, arXiv:2111.00254.

    Examples
    --------
    >>> import jax, diffnet_jax
    >>> conv = diffnet_jax.Conv(1, 4, key=jax.random.PRNGKey(0))
    >>> conv.weight.shape, conv(jax.numpy.ones((2, 1, 8, 8))).shape
    ((4, 1, 3, 3), (2, 4, 8, 8))
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
    r"""The paper's :math:`\mathrm{CNN}_k`: an image ``(N, 1, *grid)`` to ``2 ndim + 1`` filter maps.

    ``depth - 1`` conv 3x...x3 + ReLU layers (1 -> width, width -> width), then a conv 3x...x3 to the
    ``2 ndim + 1`` filters zeta, no activation; ``(N, 1, *grid) -> (N, 2 ndim + 1, *grid)``.

    Parameters
    ----------
    depth : int, default 4
        The number of convolutions K, >= 2.
    width : int, default 32
        The channels of the hidden convolutions.
    ndim : {1, 2, 3}, default 2
        The grid dimension d.
    key : jax.Array
        The PRNG key of the initialisation (keyword only, required).

    Raises
    ------
    ValueError
        If ``depth < 2`` or ``ndim`` is not 1, 2 or 3.
    TypeError
        If ``key`` is not given.

    See Also
    --------
    DiffusionLayer : Uses the maps as the filters of one step.
    diffnet_torch.FilterEstimator : The PyTorch twin.

    Notes
    -----
    In 2-D the paper's five maps in its order (up, left, down, right, centre), in 3-D seven in
    :data:`ssdops.SEVEN_POINT` order: :math:`\zeta^{(k)} = \mathrm{CNN}_k(F_{k-1})`, the filters of
    :math:`W_{dt}(\zeta)` (eq. 4.7).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), Fig. 3 and eq. (4.7).

    Examples
    --------
    >>> import jax, diffnet_jax
    >>> estimator = diffnet_jax.FilterEstimator(key=jax.random.PRNGKey(0))
    >>> estimator(jax.numpy.ones((2, 1, 8, 8))).shape
    (2, 5, 8, 8)
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
    r"""One DiffNet layer: ``zeta = estimator(u)``, output ``u + W_dt(zeta) u`` (through ``ssdops.filter_step``).

    Input and output ``(N, 1, *grid)``; ``trace(u)`` returns ``{"input", "zeta", "dt", "output"}``. The time
    step ``dt`` is a learnable 0-d array, initialised to 0.2.

    Parameters
    ----------
    depth : int, default 4
        The convolutions of the layer's :class:`FilterEstimator`.
    width : int, default 32
        Their hidden channels.
    ndim : {1, 2, 3}, default 2
        The grid dimension d.
    key : jax.Array
        The PRNG key of the initialisation (keyword only, required).

    Raises
    ------
    ValueError
        If ``depth < 2`` or ``ndim`` is not 1, 2 or 3.
    TypeError
        If ``key`` is not given.

    See Also
    --------
    DiffNet : The network of these layers.
    ssdops.filter_step : The update it computes.

    Notes
    -----
    .. math:: F_k = F_{k-1} + W_{dt}(\zeta) F_{k-1}, \qquad \zeta = \mathrm{CNN}(F_{k-1}),

    with :math:`W_{dt}(\zeta) = \Delta t\,[\zeta_1 \text{ up}; \zeta_2 \text{ left}, -\zeta_5, \zeta_4
    \text{ right}; \zeta_3 \text{ down}]` in 2-D (eq. 4.7), zero outside the grid.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (4.7) and Fig. 2.

    Examples
    --------
    >>> import jax, ssdops, diffnet_jax
    >>> layer = diffnet_jax.DiffusionLayer(key=jax.random.PRNGKey(0))
    >>> u = jax.random.uniform(jax.random.PRNGKey(1), (2, 1, 8, 8))
    >>> expected = ssdops.filter_step(u[:, 0], layer.estimator(u), layer.dt)[:, None]
    >>> bool(jax.numpy.allclose(layer(u), expected))
    True
    """

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
    r"""The paper's DiffNet (Fig. 2/3): ``n_layers`` diffusion layers on ``ndim``-D grids, then a ReLU.

    An Equinox module mirroring :class:`diffnet_torch.DiffNet`: the same constructor arguments, parameter
    names and shapes, and weight files. Input and output ``(N, 1, *grid)``; inputs are cast to the
    parameters' dtype (float32). ``trace(u)`` returns one dict per layer; ``config`` the constructor
    arguments stored in weight files.

    Parameters
    ----------
    n_layers : int, default 5
        The number of :class:`DiffusionLayer` s.
    depth : int, default 4
        The convolutions K of each layer's estimator.
    width : int, default 32
        Their hidden channels.
    final_relu : bool, default True
        Apply a ReLU to the last layer's output.
    ndim : {1, 2, 3}, default 2
        The grid dimension d.
    key : jax.Array
        The PRNG key of the initialisation (keyword only, required).

    Raises
    ------
    ValueError
        If ``depth < 2`` or ``ndim`` is not 1, 2 or 3; on a call, for an input that is not
        ``(N, 1, *grid)`` with ``ndim`` grid axes.
    TypeError
        If ``key`` is not given.

    See Also
    --------
    LinearDiffusionNet : The linear diffusion network.
    load_weights : Trained models, from either package.
    diffnet_torch.DiffNet : The PyTorch twin.

    Notes
    -----
    .. math::

       F_0 = u, \qquad F_k = F_{k-1} + W_{dt_k}(\mathrm{CNN}_k(F_{k-1}))\,F_{k-1}, \qquad
       \mathrm{DiffNet}(u) = \max(F_L, 0).

    101,310 parameters with the paper's settings (5 layers, K = 4); 311,560 in 3-D.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 4, Figs. 2 and 3, eq. (4.7).
    .. [2] P. Kidger and C. Garcia, "Equinox: neural networks in JAX via callable PyTrees and filtered
           transformations", Differentiable Programming workshop at NeurIPS 2021, arXiv:2111.00254.

    Examples
    --------
    >>> import jax, diffnet_jax
    >>> diffnet_jax.count_parameters(diffnet_jax.DiffNet(key=jax.random.PRNGKey(0)))
    101310
    >>> net = diffnet_jax.DiffNet(n_layers=2, key=jax.random.PRNGKey(0))
    >>> net(jax.numpy.ones((2, 1, 8, 8))).shape
    (2, 1, 8, 8)
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
    r"""One layer of the linear diffusion network (Fig. 1): explicit diagonals and a step dt.

    Output ``u + dt * SSD(diagonals) @ u`` for ``u`` of shape ``(N, 1, *grid)``; the diagonals
    ``(2d + 1, *grid)`` (d = ``len(grid_shape)``) are initialised to the (2d + 1)-point Neumann Laplacian and
    ``dt`` to 0.2.

    Parameters
    ----------
    grid_shape : sequence of int
        The grid, ``(H, W)`` or ``(D, H, W)`` (or ``(W,)``).

    Raises
    ------
    ValueError
        If ``grid_shape`` does not have 1, 2 or 3 axes, or an axis has length 0.

    See Also
    --------
    LinearDiffusionNet : The network of these layers.
    ssdops.explicit_step : The update it computes.

    Notes
    -----
    .. math:: F_k = (I + L_{dt}(\gamma^{(k)}))\,F_{k-1}

    with :math:`L_{dt}` of eq. (4.4), all 2d + 1 diagonals free parameters.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (4.4) and Fig. 1.

    Examples
    --------
    >>> import ssdops, diffnet_jax
    >>> layer = diffnet_jax.LinearDiffusionLayer((6, 7))
    >>> layer.diagonals.shape, layer.offsets == ssdops.FIVE_POINT
    ((5, 6, 7), True)
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
    r"""The paper's linear diffusion network on the grid ``grid_shape`` (``(H, W)`` or ``(D, H, W)``).

    Per layer learned diagonals (``(2d + 1) * prod(grid)`` parameters, 5 H W in 2-D) and dt. Input and
    output ``(N, 1, *grid_shape)``.

    Parameters
    ----------
    grid_shape : sequence of int
        The grid the network is built for.
    n_layers : int, default 5
        The number of :class:`LinearDiffusionLayer` s.
    final_relu : bool, default False
        Apply a ReLU to the output.
    key : jax.Array, optional
        Accepted for a uniform constructor signature; the initialisation is deterministic.

    Raises
    ------
    ValueError
        If ``grid_shape`` does not have 1, 2 or 3 axes or has a zero-length axis; on a call, for an input
        that is not ``(N, 1, *grid_shape)``.

    See Also
    --------
    DiffNet : The nonlinear network.
    diffnet_torch.LinearDiffusionNet : The PyTorch twin.

    Notes
    -----
    .. math:: F_k = (I + L_{dt_k}(\gamma^{(k)}))\,F_{k-1}, \quad k = 1, \dots, L,

    with :math:`L_{dt}(\gamma)` of eq. (4.4).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), Fig. 1 and eq. (4.4).

    Examples
    --------
    >>> import jax, diffnet_jax
    >>> net = diffnet_jax.LinearDiffusionNet((6, 7), n_layers=2)
    >>> diffnet_jax.count_parameters(net) == 2 * (5 * 6 * 7 + 1)
    True
    >>> net(jax.numpy.ones((3, 1, 6, 7))).shape
    (3, 1, 6, 7)
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
    r"""Number of scalar parameters (floating array leaves; also works on ``jax.eval_shape`` skeletons).

    Parameters
    ----------
    model : equinox.Module
        A model, or any pytree.

    Returns
    -------
    int
        The total size of the floating-point array leaves (``jax.Array`` or ``jax.ShapeDtypeStruct``).

    See Also
    --------
    diffnet_torch.count_parameters : The same count for the PyTorch models.

    Notes
    -----
    Per DiffNet layer, :math:`3^d (w + w^2 (K - 2) + w (2d + 1)) + w (K - 1) + (2d + 1) + 1`: the paper's
    :math:`9(32 + 32 \cdot 5 + 32^2 (K-2)) + 32(K-1) + 5 + 1` in 2-D.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 4 (101,310 parameters).

    Examples
    --------
    >>> import jax, diffnet_jax
    >>> skeleton = jax.eval_shape(lambda: diffnet_jax.DiffNet(ndim=3, key=jax.random.PRNGKey(0)))
    >>> diffnet_jax.count_parameters(skeleton)
    311560
    """
    def is_param(x):
        return isinstance(x, (jax.Array, jax.ShapeDtypeStruct)) and jnp.issubdtype(x.dtype, jnp.inexact)

    return sum(int(x.size) for x in jax.tree_util.tree_leaves(eqx.filter(model, is_param)))


def build_model(config, *, key=None):
    r"""A model from its config dict (``{"model": "diffnet"|"linear", ...constructor kwargs}``).

    Parameters
    ----------
    config : dict
        ``"model"`` (default ``"diffnet"``) and the constructor's keyword arguments, as a model's ``config``
        gives them (the ``config`` stored in weight files).
    key : jax.Array, optional
        The PRNG key of the initialisation (default ``jax.random.PRNGKey(0)``).

    Returns
    -------
    equinox.Module
        A new :class:`DiffNet` or :class:`LinearDiffusionNet`.

    Raises
    ------
    ValueError
        For an unknown ``"model"`` (``"unet"`` included: the U-Net exists in PyTorch only), or invalid
        constructor arguments.
    TypeError
        For a keyword the constructor does not take.
    KeyError
        For a linear network without ``"grid_shape"``.

    See Also
    --------
    load_weights : Builds the model of a weight file and loads it.
    diffnet_torch.build_model : The PyTorch twin.

    Notes
    -----
    ``build_model(model.config)`` has the architecture of ``model``: for DiffNet the update
    :math:`F_k = F_{k-1} + W_{dt_k}(\zeta^{(k)}) F_{k-1}` (eq. 4.7).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 4.

    Examples
    --------
    >>> import diffnet_jax
    >>> type(diffnet_jax.build_model({"model": "linear", "grid_shape": [4, 4], "n_layers": 1})).__name__
    'LinearDiffusionNet'
    """
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
    r"""The model's parameters as ``{name: NumPy float32 array}`` (host copies), named as in PyTorch.

    Parameters
    ----------
    model : equinox.Module
        A model (any pytree of arrays).

    Returns
    -------
    dict of str to numpy.ndarray
        The array leaves, named by their path in the module tree (``layers.{k}.dt``,
        ``layers.{k}.estimator.convs.{j}.weight`` / ``.bias``, ``layers.{k}.diagonals``): the names of the
        PyTorch twin's ``state_dict``.

    Raises
    ------
    TypeError
        For a pytree with a node key that is neither an attribute, a sequence index nor a dict key.

    See Also
    --------
    load_state_dict : The way back.
    save_weights : Writes these tensors to a file.

    Notes
    -----
    A name joins the path's attribute names and list indices with dots, so a JAX model and its PyTorch twin
    have the same names by construction: the parameters :math:`\theta` of eq. (4.7) (convolutions and
    :math:`dt_k`) or of eq. (4.4) (diagonals).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eqs. (4.4) and (4.7).

    Examples
    --------
    >>> import jax, diffnet_jax
    >>> tensors = diffnet_jax.state_dict(diffnet_jax.DiffNet(n_layers=1, key=jax.random.PRNGKey(0)))
    >>> sorted(tensors)[:3], tensors["layers.0.dt"].dtype
    (['layers.0.dt', 'layers.0.estimator.convs.0.bias', 'layers.0.estimator.convs.0.weight'], dtype('float32'))
    """
    return {name: np.asarray(leaf, dtype=np.float32) for name, leaf in named_leaves(model)}


def load_state_dict(model, tensors, *, prefix=""):
    r"""``model`` with every array leaf replaced by ``tensors[prefix + name]`` (shapes checked, float32).

    ``model`` may be a skeleton from ``equinox.filter_eval_shape`` (no initialisation cost).

    Parameters
    ----------
    model : equinox.Module
        The model (or skeleton) whose leaves are replaced; it is not modified.
    tensors : dict of str to array
        The values, named as by :func:`state_dict`.
    prefix : str, default ""
        Prepended to every name; with a prefix, names in ``tensors`` the model does not have are allowed.

    Returns
    -------
    equinox.Module
        A new model with the values of ``tensors``, in the leaves' dtypes.

    Raises
    ------
    KeyError
        Listing the missing and (without ``prefix``) unexpected names.
    ValueError
        If a tensor's shape differs from its leaf's.

    See Also
    --------
    state_dict : The names and tensors of a model.
    load_weights : Loads a file into the model of its config.

    Notes
    -----
    For every leaf name :math:`n`, :math:`\theta_n \leftarrow \mathrm{tensors}[\mathrm{prefix} + n]`; the
    module structure (static fields, the layer count) is kept.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eqs. (4.4) and (4.7).
    .. [2] P. Kidger and C. Garcia, "Equinox: neural networks in JAX via callable PyTrees and filtered
           transformations", Differentiable Programming workshop at NeurIPS 2021, arXiv:2111.00254.

    Examples
    --------
    >>> import jax, diffnet_jax
    >>> net = diffnet_jax.DiffNet(n_layers=1, key=jax.random.PRNGKey(0))
    >>> other = diffnet_jax.DiffNet(n_layers=1, key=jax.random.PRNGKey(1))
    >>> copy = diffnet_jax.load_state_dict(other, diffnet_jax.state_dict(net))
    >>> u = jax.numpy.ones((1, 1, 8, 8))
    >>> bool(jax.numpy.array_equal(copy(u), net(u)))
    True
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
    r"""Save ``model`` in format ``ssdops-diffnet/1``, readable by ``diffnet_torch.load_weights``.

    The format is :mod:`ssdops.diffnet.format`: safetensors with the PyTorch ``state_dict`` names (float32),
    the model's ``config``, its grid dimension and a SHA-256 checksum; the write is atomic.

    Parameters
    ----------
    model : equinox.Module
        A :class:`DiffNet` or :class:`LinearDiffusionNet`.
    path : str or os.PathLike
        The file to write.
    extra_metadata : dict of str to str, optional
        Extra string entries for the file's metadata.

    Raises
    ------
    AttributeError
        If ``model`` has no ``config`` (not one of the two).
    OSError
        If the file cannot be written.

    See Also
    --------
    load_weights : Reads the file back.
    diffnet_torch.load_weights : Reads it into the PyTorch model.

    Notes
    -----
    The tensors are the parameters :math:`\theta` of eq. (4.7) or (4.4), float32, so that the JAX and the
    PyTorch model loaded from one file compute the same function.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eqs. (4.4) and (4.7).

    Examples
    --------
    >>> import os, tempfile, jax, diffnet_jax
    >>> net = diffnet_jax.DiffNet(n_layers=1, key=jax.random.PRNGKey(0))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "net.safetensors")
    ...     diffnet_jax.save_weights(net, path)
    ...     same = diffnet_jax.load_weights(path)
    >>> u = jax.numpy.ones((1, 1, 8, 8))
    >>> bool(jax.numpy.array_equal(same(u), net(u)))
    True
    """
    weight_files.write_weights(path, model.config, state_dict(model), extra_metadata)


def load_weights(path, *, allow_nonfinite=False):
    r"""The model stored at ``path``: a weights file or a training checkpoint of either DiffNet package.

    A checkpoint's optimiser state is left out. The file's checksum is verified; non-finite weights are
    refused unless ``allow_nonfinite`` (:mod:`ssdops.diffnet.format`). The model is built as a shape-only
    skeleton (``equinox.filter_eval_shape``) and filled: nothing is initialised.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    allow_nonfinite : bool, default False
        Load weights holding NaN or infinity (to inspect a diverged run).

    Returns
    -------
    equinox.Module
        The :class:`DiffNet` or :class:`LinearDiffusionNet` of the file's ``config`` with its weights.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ssdops.diffnet.format.CorruptFileError
        A ValueError: for a file that is unreadable, truncated, fails its checksum, is of another format, or
        whose config cannot be read.
    ssdops.diffnet.format.NonFiniteWeightsError
        A ValueError: for NaN or infinite weights without ``allow_nonfinite``.
    ValueError
        For a U-Net file (the U-Net exists in PyTorch only).

    See Also
    --------
    save_weights : Writes the file.
    load_state_dict : Loads tensors into a model.

    Notes
    -----
    The shipped PyTorch weights load here too: the same model, :math:`F_k = F_{k-1} + W_{dt_k}(\zeta^{(k)})
    F_{k-1}` (eq. 4.7), in JAX.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 5.2.

    Examples
    --------
    >>> from importlib.resources import files
    >>> import diffnet_jax
    >>> net = diffnet_jax.load_weights(files("diffnet_torch") / "weights" / "natural_pm_inverse.safetensors")
    >>> type(net).__name__, diffnet_jax.count_parameters(net)
    ('DiffNet', 101310)
    """
    config, tensors = weight_files.read_weights(path, allow_nonfinite=allow_nonfinite)
    skeleton = eqx.filter_eval_shape(build_model, config)   # shapes only: nothing is initialised
    return load_state_dict(skeleton, tensors)
