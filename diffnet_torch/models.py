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

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
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
    r"""Number of trainable scalars of a PyTorch model.

    Parameters
    ----------
    model : torch.nn.Module
        Any module.

    Returns
    -------
    int
        The sum of ``p.numel()`` over the parameters with ``requires_grad``.

    Raises
    ------
    AttributeError
        If ``model`` is not a :class:`torch.nn.Module` (it has no ``parameters``).

    See Also
    --------
    DiffNet : 101,310 parameters with the paper's settings.
    diffnet_jax.count_parameters : The same count for the JAX models.

    Notes
    -----
    For DiffNet with L layers, K convolutions of width w per estimator and grid dimension d,

    .. math:: L\,\bigl(3^d (w + w^2 (K - 2) + w (2d + 1)) + w (K - 1) + (2d + 1) + 1\bigr),

    the paper's per-layer count :math:`9(32 + 32 \cdot 5 + 32^2 (K-2)) + 32(K-1) + 5 + 1` in 2-D.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 4 (101,310 parameters for 5 layers, K = 4).

    Examples
    --------
    >>> import diffnet_torch
    >>> diffnet_torch.count_parameters(diffnet_torch.DiffNet())
    101310
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class FilterEstimator(nn.Module):
    r"""The CNN that maps an image ``(N, 1, *grid)`` to ``2d + 1`` filter maps ``zeta`` ``(N, 2d + 1, *grid)``.

    Five maps for an image (d = 2), seven for a volume (d = 3), three for a signal; the paper's
    :math:`\mathrm{CNN}_k`. ``convs`` holds ``depth`` d-D convolutions 3x...x3 (padding 1, biases):
    ``1 -> width``, ``width -> width`` (``depth - 2`` times), ReLU after each, then ``width -> 2d + 1`` with
    no activation.

    Parameters
    ----------
    depth : int, default 4
        The number of convolutions K, >= 2.
    width : int, default 32
        The channels of the hidden convolutions.
    ndim : {1, 2, 3}, default 2
        The grid dimension d.

    Raises
    ------
    ValueError
        If ``depth < 2`` or ``ndim`` is not 1, 2 or 3.

    See Also
    --------
    DiffusionLayer : Uses the maps as the filters of one step.
    ssdops.ssd_from_filters : The operator the maps define.

    Notes
    -----
    The output maps are in the star order of :data:`ssdops.FIVE_POINT` / :data:`ssdops.SEVEN_POINT` (the
    neighbours at :math:`-e_1 .. -e_d`, then :math:`+e_1 .. +e_d`, the centre last): in 2-D the paper's
    :math:`\zeta_1 .. \zeta_5` (up, left, down, right, centre) of eq. (4.7),

    .. math:: \zeta^{(k)} = \mathrm{CNN}_k(F_{k-1}).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 4 (Fig. 3, :math:`\mathrm{CNN}_k`) and eq. (4.7).

    Examples
    --------
    >>> import torch, diffnet_torch
    >>> diffnet_torch.FilterEstimator()(torch.rand(2, 1, 8, 8)).shape
    torch.Size([2, 5, 8, 8])
    >>> diffnet_torch.FilterEstimator(ndim=3)(torch.rand(1, 1, 4, 4, 4)).shape
    torch.Size([1, 7, 4, 4, 4])
    """

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
    r"""One DiffNet layer: ``u + W_dt(zeta(u)) u`` through :func:`ssdops.filter_step`.

    Input and output ``(N, 1, *grid)``; ``trace(u)`` returns ``{"input", "zeta", "dt", "output"}``.

    Parameters
    ----------
    depth : int, default 4
        The convolutions of the layer's :class:`FilterEstimator`.
    width : int, default 32
        Their hidden channels.
    ndim : {1, 2, 3}, default 2
        The grid dimension d.
    dt_init : float, default 0.2
        The initial value of the learnable 0-d time step ``dt`` (the authors' code initialises it to 0.2).

    Raises
    ------
    ValueError
        If ``depth < 2`` or ``ndim`` is not 1, 2 or 3 (from the estimator).

    See Also
    --------
    DiffNet : The network of these layers.
    ssdops.filter_step : The update it computes.
    ssdops.ssd_from_filters : The operator :math:`W_{dt}(\zeta)`.

    Notes
    -----
    With :math:`\zeta = \mathrm{CNN}(F_{k-1})`,

    .. math::

       F_k = F_{k-1} + W_{dt}(\zeta) F_{k-1}, \qquad
       W_{dt}(\zeta) = \Delta t \begin{bmatrix} 0 & \zeta_1 & 0 \\ \zeta_2 & -\zeta_5 & \zeta_4 \\
       0 & \zeta_3 & 0 \end{bmatrix}

    in 2-D (eq. 4.7), and in d-D :math:`\Delta t` times the star stencil of the 2d neighbour maps and minus
    the centre map; zero outside the grid, as in the authors' code.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (4.7) and Fig. 2.

    Examples
    --------
    >>> import torch, ssdops, diffnet_torch
    >>> layer = diffnet_torch.DiffusionLayer()
    >>> u = torch.rand(2, 1, 8, 8)
    >>> expected = ssdops.filter_step(u[:, 0], layer.estimator(u), layer.dt)[:, None]
    >>> bool(torch.allclose(layer(u), expected))
    True
    """

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
    r"""DiffNet: ``n_layers`` learned nonlinear diffusion steps on ``ndim``-D grids, then (optionally) a ReLU.

    Input and output ``(N, 1, *grid)`` (``(N, 1, H, W)`` images in 2-D, ``(N, 1, D, H, W)`` volumes in 3-D),
    any grid size. ``trace(u)`` returns one dict per layer; ``config`` the constructor arguments stored in
    weight files.

    Parameters
    ----------
    n_layers : int, default 5
        The number of :class:`DiffusionLayer` s.
    depth : int, default 4
        The convolutions K of each layer's estimator.
    width : int, default 32
        Their hidden channels.
    final_relu : bool, default True
        Apply a ReLU to the last layer's output (the paper's non-negative images).
    ndim : {1, 2, 3}, default 2
        The grid dimension d.

    Raises
    ------
    ValueError
        If ``depth < 2`` or ``ndim`` is not 1, 2 or 3; on a call, for an input that is not
        ``(N, 1, *grid)`` with ``ndim`` grid axes.

    See Also
    --------
    DiffusionLayer : One layer.
    LinearDiffusionNet : The linear diffusion network.
    load_weights : The shipped and trained models.
    diffnet_jax.DiffNet : The same model in JAX.

    Notes
    -----
    .. math::

       F_0 = u, \qquad F_k = F_{k-1} + W_{dt_k}(\mathrm{CNN}_k(F_{k-1}))\,F_{k-1}, \qquad
       \mathrm{DiffNet}(u) = \max(F_L, 0),

    with :math:`W_{dt}(\zeta)` of eq. (4.7) and a learnable :math:`dt_k` per layer. The paper's 5-layer
    DiffNet with K = 4 has 101,310 parameters (3 layers: 60,786); the 3-D model 311,560.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 4, Figs. 2 and 3, eq. (4.7); section 5 (the experiments).

    Examples
    --------
    >>> import torch, diffnet_torch
    >>> sum(p.numel() for p in diffnet_torch.DiffNet().parameters()), sum(
    ...     p.numel() for p in diffnet_torch.DiffNet(3).parameters())
    (101310, 60786)
    >>> sum(p.numel() for p in diffnet_torch.DiffNet(ndim=3).parameters())
    311560
    >>> diffnet_torch.DiffNet(n_layers=2)(torch.rand(2, 1, 8, 8)).shape
    torch.Size([2, 1, 8, 8])
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
    r"""One layer of the linear diffusion network: ``u + dt * SSD(diagonals) @ u`` with explicit diagonals.

    The diagonals ``(2d + 1, *grid)`` (:data:`ssdops.FIVE_POINT` / :data:`ssdops.SEVEN_POINT` order,
    d = ``len(grid_shape)``) are parameters, initialised to the Neumann Laplacian; ``dt`` is a learnable 0-d
    step. Input and output ``(N, 1, *grid)``.

    Parameters
    ----------
    grid_shape : sequence of int
        The grid, ``(H, W)`` or ``(D, H, W)`` (or ``(W,)``).
    dt_init : float, default 0.2
        The initial time step.

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
    .. math:: F_k = (I + L_{dt}(\gamma^{(k)}))\,F_{k-1}, \qquad
              L_{dt}(\gamma) = \Delta t \begin{bmatrix} 0 & g_1 & 0 \\ g_2 & -\textstyle\sum g & g_4 \\
              0 & g_3 & 0 \end{bmatrix}

    (eq. 4.4); here all 2d + 1 diagonals are free parameters, :math:`(2d + 1)\prod_i n_i` of them per layer.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (4.4) and Fig. 1.

    Examples
    --------
    >>> import torch, ssdops, diffnet_torch
    >>> layer = diffnet_torch.LinearDiffusionLayer((6, 7))
    >>> u = torch.rand(3, 1, 6, 7)
    >>> L = ssdops.laplacian((6, 7), like=u)
    >>> bool(torch.allclose(layer(u)[:, 0], u[:, 0] + 0.2 * (L @ u[:, 0])))
    True
    """

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
    r"""The paper's linear diffusion network (Fig. 1) on the fixed grid ``grid_shape``.

    An image ``(H, W)`` or a volume ``(D, H, W)``: ``(2d + 1) * prod(grid) + 1`` parameters per layer,
    ``5 H W + 1`` in 2-D. Input and output ``(N, 1, *grid_shape)``.

    Parameters
    ----------
    grid_shape : sequence of int
        The grid the network is built for.
    n_layers : int, default 5
        The number of :class:`LinearDiffusionLayer` s.
    final_relu : bool, default False
        Apply a ReLU to the output.

    Raises
    ------
    ValueError
        If ``grid_shape`` does not have 1, 2 or 3 axes or has a zero-length axis; on a call, for an input
        that is not ``(N, 1, *grid_shape)``.

    See Also
    --------
    DiffNet : The nonlinear network.
    LinearDiffusionLayer : One layer.

    Notes
    -----
    Each layer learns :math:`\gamma^{(k)}` explicitly and its time step:

    .. math:: F_k = (I + L_{dt_k}(\gamma^{(k)}))\,F_{k-1}, \quad k = 1, \dots, L,

    with :math:`L_{dt}(\gamma)` of eq. (4.4), all 2d + 1 diagonals free.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), Fig. 1 and eq. (4.4).

    Examples
    --------
    >>> import torch, diffnet_torch
    >>> net = diffnet_torch.LinearDiffusionNet((6, 7), n_layers=2)
    >>> diffnet_torch.count_parameters(net) == 2 * (5 * 6 * 7 + 1)
    True
    >>> net(torch.rand(3, 1, 6, 7)).shape
    torch.Size([3, 1, 6, 7])
    """

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
    r"""A model from its config dict ``{"model": "diffnet"|"linear"|"unet", ...constructor kwargs}``.

    Parameters
    ----------
    config : dict
        ``"model"`` (default ``"diffnet"``) and the constructor's keyword arguments, as a model's ``config``
        gives them (the ``config`` stored in weight files).

    Returns
    -------
    torch.nn.Module
        A new, randomly initialised :class:`DiffNet`, :class:`LinearDiffusionNet` or :class:`UNet`.

    Raises
    ------
    ValueError
        For an unknown ``"model"``, or invalid constructor arguments.
    TypeError
        For a keyword the constructor does not take.
    KeyError
        For a linear network without ``"grid_shape"``.

    See Also
    --------
    load_weights : Builds the model of a weight file and loads it.
    diffnet_jax.build_model : The same for the JAX models.

    Notes
    -----
    ``build_model(model.config)`` has the architecture of ``model``: for DiffNet the update
    :math:`F_k = F_{k-1} + W_{dt_k}(\zeta^{(k)}) F_{k-1}` (eq. 4.7) with the configured depth, width, layers
    and grid dimension.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 4.

    Examples
    --------
    >>> import diffnet_torch
    >>> net = diffnet_torch.build_model({"model": "linear", "grid_shape": [4, 4], "n_layers": 1})
    >>> type(net).__name__, net.config["grid_shape"]
    ('LinearDiffusionNet', [4, 4])
    """
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
    r"""Save ``model`` in format ``ssdops-diffnet/1``, readable by both DiffNet packages.

    The format is :mod:`ssdops.diffnet.format`: safetensors with the ``state_dict`` names (float32), the
    model's ``config``, its grid dimension and a SHA-256 checksum; the write is atomic.

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`DiffNet`, :class:`LinearDiffusionNet` or :class:`UNet` (DDP-wrapped too).
    path : str or os.PathLike
        The file to write.
    extra_metadata : dict of str to str, optional
        Extra string entries for the file's metadata (the best epoch and its test PSNR, for example).

    Raises
    ------
    AttributeError
        If ``model`` is not one of the three (it has no ``config``).
    OSError
        If the file cannot be written.

    See Also
    --------
    load_weights : Reads the file back.
    diffnet_jax.load_weights : Reads it into the JAX model.

    Notes
    -----
    The tensors are the model's parameters :math:`\theta` (:math:`\zeta`-estimator convolutions and
    :math:`dt_k` of eq. 4.7, or the diagonals of eq. 4.4) as float32, so that a PyTorch and a JAX model
    loaded from one file compute the same function.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eqs. (4.4) and (4.7) (the parameters stored).

    Examples
    --------
    >>> import os, tempfile, torch, diffnet_torch
    >>> net = diffnet_torch.DiffNet(n_layers=1)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "net.safetensors")
    ...     diffnet_torch.save_weights(net, path)
    ...     same = diffnet_torch.load_weights(path)
    >>> all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), same.state_dict().values()))
    True
    """
    model = getattr(model, "module", model)
    weight_files.write_weights(path, model.config, state_tensors(model), extra_metadata)


def load_weights(path, *, device="cpu", allow_nonfinite=False):
    r"""The model stored at ``path``, in eval mode: a weights file or a training checkpoint.

    A weights file or a checkpoint (its optimiser state left out) of this package or of ``diffnet_jax``. The
    file's checksum is verified; non-finite weights are refused unless ``allow_nonfinite``
    (:mod:`ssdops.diffnet.format`).

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    device : str or torch.device, default "cpu"
        Where the model's parameters are put.
    allow_nonfinite : bool, default False
        Load weights holding NaN or infinity (to inspect a diverged run).

    Returns
    -------
    torch.nn.Module
        The model of the file's ``config`` (:class:`DiffNet`, :class:`LinearDiffusionNet` or :class:`UNet`)
        with its weights, in eval mode.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ssdops.diffnet.format.CorruptFileError
        A ValueError: for a file that is unreadable, truncated, fails its checksum, is of another format, or
        whose config cannot be read.
    ssdops.diffnet.format.NonFiniteWeightsError
        A ValueError: for NaN or infinite weights without ``allow_nonfinite``.

    See Also
    --------
    save_weights : Writes the file.
    build_model : The model of a config.

    Notes
    -----
    The shipped weights ``diffnet_torch/weights/natural_pm_inverse.safetensors`` are the paper's 5-layer
    DiffNet (101,310 parameters), trained to invert the Perona-Malik forward model of the paper's section
    5.2 with 1 % noise on 1,000 patches 96² of scikit-image's photographs (``camera`` and ``astronaut`` held
    out): the data-efficiency study's longest DiffNet run at 1 % noise (``benchmarks/study.py``).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 5.2.

    Examples
    --------
    >>> from importlib.resources import files
    >>> import diffnet_torch
    >>> net = diffnet_torch.load_weights(files("diffnet_torch") / "weights" / "natural_pm_inverse.safetensors")
    >>> type(net).__name__, diffnet_torch.count_parameters(net), net.training
    ('DiffNet', 101310, False)
    """
    config, tensors = weight_files.read_weights(path, allow_nonfinite=allow_nonfinite)
    return load_state_tensors(build_model(config), tensors).to(device).eval()
