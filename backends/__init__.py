r"""``ssdops.backends``: fast paths per array library, and the one dispatch of the package.

The core asks :func:`lookup` for the kernel of an operation on the namespace of its arrays; ``None`` means
"run the generic array-API code", which is always correct and is the reference every fast path is tested
against. Kernels are keyed by *library* (``"numpy"``, ``"torch"``, ``"jax"``, ``"cupy"``, ``"dask"``),
recognised with ``array_api_compat.is_<library>_namespace``, so a NumPy array and its ``array_api_compat``
wrapper namespace find the same kernels. :func:`use_generic` forces the generic code inside a ``with``
block (per thread and per asyncio task: a :class:`contextvars.ContextVar`); the environment variable
``SSDOPS_GENERIC=1`` sets the default for the whole process.

A library's backend module (``ssdops.backends._numpy`` and so on) is imported the first time one of its
kernels is asked for, so ``import ssdops`` imports no framework. A backend whose framework is not installed
has no fast paths; a backend that fails to import for any other reason warns once
(:class:`BackendImportWarning`, naming the error) and its library runs the generic code: never a silent
fallback.

Every kernel is called with keywords, in the signature of its operation's protocol below
(:class:`SSDApply`, :class:`FilterStep`, :class:`PeronaMalikStep`, :class:`ImplicitSolve`). Arguments have
been validated by the core before dispatch (shapes, dtypes, boundary conditions, values), so a kernel
never re-checks them and every backend answers a bad call with the same exception.

========================  ==========  ========  ===========  =========  ===========
operation                 NumPy       PyTorch   JAX          CuPy       dask
========================  ==========  ========  ===========  =========  ===========
ssd_apply                 blocked     Function  fused (XLA)  RawKernel  map_overlap
ssd_apply_transpose       blocked     Function  fused (XLA)  RawKernel  map_overlap
filter_step               blocked     Function  fused (XLA)  RawKernel  map_overlap
perona_malik_step         blocked     fused     fused (XLA)  RawKernel  map_overlap
implicit_solve            .           adjoint   adjoint      .          .
========================  ==========  ========  ===========  =========  ===========

(``.``: the generic code. "adjoint": differentiable solves whose reverse mode is an adjoint solve.) Grid
dimensions: every kernel takes 2-D grids; NumPy's and JAX's applies also 1-D and 3-D ones; where a library has no
kernel for a dimension, :func:`lookup` answers ``None`` and the generic code runs.

Adding a kernel: write (or reuse) the generic code in ``ssdops._kernels`` first; implement the protocol in
the library's module using only ``ssdops._kernels``; :func:`register` it at the module's end; test it
against the generic code under :func:`use_generic` (``tests/test_backends.py``); add a row to
``ssdops bench``.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import warnings
from typing import Any, Protocol

import array_api_compat

__all__ = [
    "LIBRARIES",
    "OPERATIONS",
    "DIFFERENTIATION_RULES",
    "BackendImportWarning",
    "FilterStep",
    "ImplicitSolve",
    "PeronaMalikStep",
    "SSDApply",
    "is_generic",
    "library_of",
    "lookup",
    "register",
    "registered",
    "use_generic",
]


class SSDApply(Protocol):
    """``ssd_apply`` (:math:`A u`) and ``ssd_apply_transpose`` (:math:`A^\\top u`).

    ``diagonals`` ``(..., K, H, W)``, ``offsets`` a tuple of K ``(dy, dx)`` pairs, ``u`` ``(..., H, W)``;
    batch axes broadcast. :math:`(A u)[p] = \\sum_k d_k[p]\\, u[p + o_k]` and
    :math:`(A^\\top u)[q] = \\sum_k d_k[q - o_k]\\, u[q - o_k]`, products only over in-grid neighbours.
    ``out`` (validated by the core: the result's shape and dtype, the library of ``u``, no memory shared with
    the inputs) receives the result, which is returned; a library without writable arrays raises TypeError.
    """

    def __call__(self, *, diagonals: Any, offsets: tuple, u: Any, out: Any = None) -> Any: ...


class FilterStep(Protocol):
    """``filter_step``: :math:`u + dt\\,(\\sum_{k<5} z_k[p]\\, u[p + o_k] - z_5[p]\\, u[p])` over FIVE_POINT;
    ``zeta`` ``(..., 5, H, W)``, ``dt`` a number or a 0-d array."""

    def __call__(self, *, u: Any, zeta: Any, dt: Any) -> Any: ...


class PeronaMalikStep(Protocol):
    """``perona_malik_step``: :math:`u + dt\\,\\nabla\\cdot(g(|\\nabla_b u|^2, \\lambda)\\nabla u)` with the
    named diffusivity ``diffusivity`` (a key of :mod:`ssdops.diffusivity`), ``bc`` and ``ghost_gamma`` as in
    :func:`ssdops.divergence_form`, on the last ``ndim`` axes of ``u``."""

    def __call__(self, *, u: Any, dt: Any, lam: Any, diffusivity: str, bc: str, ghost_gamma: Any,
                 ndim: int) -> Any: ...


class ImplicitSolve(Protocol):
    """``implicit_solve``: :math:`x = (I - dt\\,A)^{-1} u` per image by the Krylov ``method`` (``"cg"`` or
    ``"bicgstab"``); ``u`` and ``diagonals`` already broadcast to one batch shape. A kernel makes the
    solve differentiable in its framework (reverse mode an adjoint solve)."""

    def __call__(self, *, u: Any, diagonals: Any, offsets: tuple, dt: Any, method: str, tol: float,
                 maxiter: int, on_failure: str, x0: Any) -> Any: ...


#: Operation name -> the protocol its kernels follow.
OPERATIONS = {
    "ssd_apply": SSDApply,
    "ssd_apply_transpose": SSDApply,
    "filter_step": FilterStep,
    "perona_malik_step": PeronaMalikStep,
    "implicit_solve": ImplicitSolve,
}

#: Library -> (namespace predicate, top-level module of the framework).
LIBRARIES = {
    "numpy": (array_api_compat.is_numpy_namespace, "numpy"),
    "torch": (array_api_compat.is_torch_namespace, "torch"),
    "jax": (array_api_compat.is_jax_namespace, "jax"),
    "cupy": (array_api_compat.is_cupy_namespace, "cupy"),
    "dask": (array_api_compat.is_dask_namespace, "dask"),
}


class BackendImportWarning(RuntimeWarning):
    """A backend module failed to import for a reason other than its framework being absent."""


#: Operations whose kernels are a framework's rule of differentiation (JAX tracing, PyTorch autograd), not
#: a fast path: :func:`use_generic` keeps them, since the generic Krylov loop reads the host every iteration
#: and cannot run under ``jax.jit`` nor differentiate by an adjoint solve.
DIFFERENTIATION_RULES = frozenset({"implicit_solve"})

_REGISTRY: dict[tuple[str, str], object] = {}
_NDIMS: dict[tuple[str, str], tuple[int, ...]] = {}
_LOADED: set[str] = set()
_GENERIC = contextvars.ContextVar(
    "ssdops_generic", default=os.environ.get("SSDOPS_GENERIC", "") not in ("", "0")
)


def library_of(xp) -> str | None:
    """The library of namespace ``xp`` (a key of :data:`LIBRARIES`), or ``None`` for any other."""
    for library, (is_library, _) in LIBRARIES.items():
        if is_library(xp):
            return library
    return None


def _import(library):
    # Import statements, not importlib: torch.compile traces a first lookup that runs these.
    if library == "numpy":
        from . import _numpy  # noqa: F401
    elif library == "torch":
        from . import _torch  # noqa: F401
    elif library == "jax":
        from . import _jax  # noqa: F401
    elif library == "cupy":
        from . import _cupy  # noqa: F401
    elif library == "dask":
        from . import _dask  # noqa: F401


def _load(library):
    if library in _LOADED:
        return
    _LOADED.add(library)
    try:
        _import(library)
    except ModuleNotFoundError as err:
        framework = LIBRARIES[library][1]
        if err.name is not None and err.name.split(".")[0] == framework:
            return  # the framework is not installed: generic code only
        _warn_import(library, err)
    except Exception as err:  # noqa: BLE001 - any other failure is reported, never swallowed
        _warn_import(library, err)


def _warn_import(library, err):
    warnings.warn(
        f"ssdops.backends: the {library} backend failed to import ({type(err).__name__}: {err}); "
        f"{library} arrays run the generic array-API code (slower, same results)",
        BackendImportWarning,
        stacklevel=4,
    )


def register(name, library, kernel, *, ndims=(1, 2, 3)):
    """Register ``kernel`` as the fast path of operation ``name`` (a key of :data:`OPERATIONS`) for
    ``library`` (a key of :data:`LIBRARIES`), on grids of the dimensions ``ndims``. One registration per
    (operation, library): registering a different kernel again raises ValueError."""
    if name not in OPERATIONS:
        raise ValueError(f"unknown operation {name!r}: one of {tuple(OPERATIONS)}")
    if library not in LIBRARIES:
        raise ValueError(f"unknown library {library!r}: one of {tuple(LIBRARIES)}")
    previous = _REGISTRY.get((name, library))
    if previous is not None and previous is not kernel:
        raise ValueError(f"{name!r} already has a kernel for {library!r}: {previous!r}")
    _REGISTRY[(name, library)] = kernel
    _NDIMS[(name, library)] = tuple(ndims)


def _torch_compiling():
    torch = sys.modules.get("torch")
    return torch is not None and torch.compiler.is_compiling()


def lookup(name, xp, ndim=2):
    """The fast path of operation ``name`` on namespace ``xp`` for a ``ndim``-dimensional grid, or ``None``
    (run the generic code).

    Inside code that ``torch.compile`` traces, the :func:`use_generic` switch is not read (Dynamo cannot
    trace a :class:`contextvars.ContextVar`): compiled code always uses the fast paths.
    """
    if name not in DIFFERENTIATION_RULES and not _torch_compiling() and _GENERIC.get():
        return None
    library = library_of(xp)
    if library is None:
        return None
    _load(library)
    if ndim not in _NDIMS.get((name, library), ()):
        return None
    return _REGISTRY.get((name, library))


def registered(library=None):
    """``{(operation, library): kernel}`` of every kernel loaded so far (of ``library`` only, if given,
    after loading its backend)."""
    if library is not None:
        _load(library)
    return {key: k for key, k in _REGISTRY.items() if library is None or key[1] == library}


def is_generic() -> bool:
    """Whether the generic code is forced here (inside :func:`use_generic`, or by ``SSDOPS_GENERIC=1``)."""
    return _GENERIC.get()


@contextlib.contextmanager
def use_generic(flag: bool = True):
    """Inside the ``with`` block, force (``flag=True``) or release (``False``) the generic array-API path
    (every operation except the :data:`DIFFERENTIATION_RULES`).

    >>> import numpy as np, ssdops
    >>> from ssdops import backends
    >>> with backends.use_generic():
    ...     backends.lookup("ssd_apply", np) is None
    True
    """
    token = _GENERIC.set(bool(flag))
    try:
        yield
    finally:
        _GENERIC.reset(token)
