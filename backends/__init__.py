r"""``ssdops.backends``: one adapter per array library, its kernels, and the one dispatch of the package.

Everything ssdops knows about an array library lives in one module of this folder, ``_<library>.py``,
which exposes an :class:`Adapter` as ``ADAPTER`` and registers the library's kernels: recognising its
arrays, whether code is being traced or compiled, host reads, ``out=`` and memory aliasing, pytree
registration (PyTorch, JAX), dask's chunks. The core (``ssdops/*.py``) names no framework: it asks
:func:`adapter_for` an array's adapter and :func:`dispatch` for an operation. :data:`LIBRARIES` is the one
table of libraries; ``ssdops bench``, ``ssdops compare`` and the tests' ``xp`` fixture read it. A library
absent from the table (or ``array_api_strict``) gets :data:`GENERIC`: the generic array-API code, which is
always correct and is the reference every kernel is tested against.

:func:`dispatch` runs an operation's kernel when one accepts the case (its grid dimension, dtype, boundary
condition and diffusivity, declared at :func:`register`; a kernel may also decline by returning
``NotImplemented``, never by raising) and the generic code otherwise. :func:`use_generic` forces the
generic code inside a ``with`` block (per thread and per asyncio task: a :class:`contextvars.ContextVar`);
the environment variable ``SSDOPS_GENERIC=1`` sets the default for the whole process.

An adapter module is imported the first time its library's arrays show up (or, for :func:`is_traced`,
once its framework is imported), so ``import ssdops`` imports no framework. A module whose framework is
not installed has no fast paths; one that fails to import for any other reason warns once
(:class:`BackendImportWarning`, naming the error) and its library runs the generic code: never a silent
fallback.

Every kernel is called with keywords, in the signature of its operation's protocol below
(:class:`SSDApply`, :class:`FilterStep`, :class:`PeronaMalikStep`, :class:`ImplicitSolve`). Arguments have
been validated by the core before dispatch (shapes, dtypes, boundary conditions, values), so a kernel
never re-checks them and every backend answers a bad call with the same exception.

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.

Notes
-----
The kernels of each library:

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
dimensions: every kernel takes 2-D grids; every NumPy, PyTorch and JAX kernel also 1-D and 3-D ones
(NumPy: the blocked apply over the planes, filter and Perona-Malik steps composed from it; PyTorch: those
NumPy kernels on the CPU without autograd, the generic code under autograd; ``implicit_solve`` 2-D only in
PyTorch); CuPy 2-D and 3-D grids of float32 / float64 with the built-in diffusivities; dask 2-D. Where no
kernel accepts a case, the generic code runs. The README's "Architecture" section lists the steps of
adding a library, a kernel, a diffusivity and a DiffNet task.

Examples
--------
>>> import numpy as np, ssdops
>>> from ssdops import backends
>>> backends.library_of(np), backends.lookup("ssd_apply", np) is not None
('numpy', True)
>>> u = np.random.default_rng(0).random((6, 7))
>>> L = ssdops.divergence_form(u + 1.0)
>>> fast = L @ u
>>> with backends.use_generic():                  # the same product, by the generic array-API code
...     generic = L @ u
>>> bool(np.allclose(fast, generic))
True
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import array_api_compat

if __name__ != "ssdops.backends":
    # The repository folder backends/ is installed as ssdops.backends; imported under another name (from
    # a source checkout with the repository root on sys.path) it would be a second registry.
    raise ImportError(
        f"the repository folder backends/ is the subpackage ssdops.backends; import it as "
        f"'ssdops.backends', not as {__name__!r}"
    )

__all__ = [
    "DIFFERENTIATION_RULES",
    "GENERIC",
    "LIBRARIES",
    "OPERATIONS",
    "Adapter",
    "BackendImportWarning",
    "FilterStep",
    "ImplicitSolve",
    "Kernel",
    "Library",
    "PeronaMalikStep",
    "SSDApply",
    "adapter_for",
    "add_library",
    "compiling",
    "dispatch",
    "is_generic",
    "is_traced",
    "library_of",
    "load_imported",
    "lookup",
    "register",
    "register_type",
    "registered",
    "remove_library",
    "use_generic",
]

Array = Any


class SSDApply(Protocol):
    r"""Kernel protocol of ``ssd_apply`` (:math:`A u`) and ``ssd_apply_transpose`` (:math:`A^\top u`).

    A kernel is called as ``kernel(diagonals=..., offsets=..., u=..., out=None)``: ``diagonals``
    ``(..., K, *grid)``, ``offsets`` a tuple of K d-tuples (``(dy, dx)`` in 2-D), ``u`` ``(..., *grid)``;
    batch axes broadcast. It returns the product, of the broadcast batch shape, in ``u``'s library and
    dtype. ``out`` (validated by the core: the result's shape and dtype, the library of ``u``, no memory
    shared with the inputs) receives the result, which is returned; a library without writable arrays
    raises TypeError.

    See Also
    --------
    lookup : Finds the kernel of a library.
    ssdops.SSD : Calls it in ``op @ u`` (``matvec``) and ``rmatvec``.

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> from ssdops import backends
    >>> kernel = backends.registered("numpy")[("ssd_apply", "numpy")]
    >>> L = ssdops.laplacian((3, 4))
    >>> u = np.arange(12.0).reshape(3, 4)
    >>> Au = kernel(diagonals=L.diagonals, offsets=L.offsets, u=u)
    >>> bool(np.allclose(Au.ravel(), ssdops.to_scipy(L) @ u.ravel()))
    True
    """

    def __call__(self, *, diagonals: Any, offsets: tuple, u: Any, out: Any = None) -> Any: ...


class FilterStep(Protocol):
    r"""Kernel protocol of ``filter_step``: DiffNet's update :math:`u + W_{dt}(\zeta)\,u`.

    A kernel is called as ``kernel(u=..., zeta=..., dt=...)``: ``u`` ``(..., *grid)``, ``zeta``
    ``(..., 2d+1, *grid)`` in the star order (2-D: :data:`ssdops.FIVE_POINT`, the paper's up, left, down,
    right, centre), ``dt`` a number or a 0-d array. It returns the updated images in ``u``'s library and
    dtype; d is read off the shapes (kernels are registered for the dimensions they take, see
    :func:`register`).

    See Also
    --------
    ssdops.filter_step : The public function that dispatches to it.
    lookup : Finds the kernel of a library.

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> from ssdops import backends
    >>> kernel = backends.registered("numpy")[("filter_step", "numpy")]
    >>> u, zeta = np.ones((4, 4)), np.random.default_rng(0).random((5, 4, 4))
    >>> expected = ssdops.explicit_step(u, ssdops.ssd_from_filters(zeta), 0.1)
    >>> bool(np.allclose(kernel(u=u, zeta=zeta, dt=0.1), expected))
    True
    """

    def __call__(self, *, u: Any, zeta: Any, dt: Any) -> Any: ...


class PeronaMalikStep(Protocol):
    r"""Kernel protocol of ``perona_malik_step``: one explicit Perona-Malik step.

    A kernel is called as ``kernel(u=..., dt=..., lam=..., diffusivity=..., bc=..., ghost_gamma=...,
    ndim=...)`` with the named diffusivity ``diffusivity`` (a key of :mod:`ssdops.diffusivity`), ``bc`` and
    ``ghost_gamma`` as in :func:`ssdops.divergence_form`, on the last ``ndim`` axes of ``u``. It returns the
    images after the step, in ``u``'s library and dtype.

    See Also
    --------
    ssdops.perona_malik_step : The public function that dispatches to it.
    ssdops.perona_malik_operator : The operator the step applies.

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> from ssdops import backends
    >>> kernel = backends.registered("numpy")[("perona_malik_step", "numpy")]
    >>> u = np.zeros((4, 4)); u[1:3, 1:3] = 1.0
    >>> v = kernel(u=u, dt=0.1, lam=0.2, diffusivity="perona_malik", bc="neumann", ghost_gamma=None, ndim=2)
    >>> L = ssdops.perona_malik_operator(u, lam=0.2)
    >>> bool(np.allclose(v, u + 0.1 * (L @ u)))
    True
    """

    def __call__(self, *, u: Any, dt: Any, lam: Any, diffusivity: str, bc: str, ghost_gamma: Any,
                 ndim: int) -> Any: ...


class ImplicitSolve(Protocol):
    r"""Kernel protocol of ``implicit_solve``: :math:`x = (I - dt\,A)^{-1} u` per image, by a Krylov method.

    A kernel is called as ``kernel(u=..., diagonals=..., offsets=..., dt=..., method=..., tol=...,
    maxiter=..., on_failure=..., x0=...)`` with ``method`` ``"cg"`` or ``"bicgstab"``, ``u`` and
    ``diagonals`` already broadcast to one batch shape, the other arguments as in
    :func:`ssdops.implicit_step`. A kernel makes the solve differentiable in its framework (reverse mode an
    adjoint solve): it is a rule of differentiation (:data:`DIFFERENTIATION_RULES`), kept under
    :func:`use_generic`.

    See Also
    --------
    ssdops.implicit_step : The public function that dispatches to it.
    DIFFERENTIATION_RULES : The operations :func:`use_generic` keeps.

    Examples
    --------
    >>> from ssdops import backends
    >>> backends.OPERATIONS["implicit_solve"] is backends.ImplicitSolve
    True
    >>> "implicit_solve" in backends.DIFFERENTIATION_RULES
    True
    """

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

#: Operations whose kernels are a framework's rule of differentiation (JAX tracing, PyTorch autograd), not
#: a fast path: :func:`use_generic` keeps them, since the generic Krylov loop reads the host every iteration
#: and cannot run under ``jax.jit`` nor differentiate by an adjoint solve.
DIFFERENTIATION_RULES = frozenset({"implicit_solve"})


# --- adapters -------------------------------------------------------------------------------------------
class Adapter:
    """What ssdops needs to know about one array library; this base class is the generic behaviour.

    A library's module subclasses it and overrides what differs; the base class serves libraries that
    need nothing special (``array_api_strict``, libraries ssdops does not know: :data:`GENERIC`). Every
    method takes arrays already recognised as the library's (:attr:`Library.is_array`).

    Parameters
    ----------
    name : str
        The library's name in :data:`LIBRARIES` (``"generic"`` for :data:`GENERIC`).

    Examples
    --------
    >>> import numpy as np
    >>> from ssdops import backends
    >>> backends.adapter_for(np.ones(2)).name, backends.GENERIC.shares_memory(1, 1)
    ('numpy', False)
    """

    #: ``out=`` can be written (``out[...] = result``); otherwise :meth:`check_out` raises TypeError.
    writable = True
    #: Why ``out=`` is refused, for :meth:`check_out`'s message.
    why_not_writable = ""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<ssdops.backends adapter {self.name!r}>"

    def is_traced(self, x: Any) -> bool:
        """Whether the values behind ``x`` cannot (or must not) be read on the host (see :func:`is_traced`)."""
        return False

    def compiling(self) -> bool:
        """Whether this library's compiler is tracing the calling code (see :func:`compiling`)."""
        return False

    def to_numpy(self, x: Array) -> Any:
        """``x`` as a NumPy array on the host, through DLPack (see :func:`ssdops.to_numpy`)."""
        import numpy as np

        return np.from_dlpack(x)

    def is_all_finite(self, x: Array) -> bool:
        """Whether every element of ``x`` is finite, read on the host once (``x`` not traced).

        One reduction without a temporary: the sum of ``x`` is finite exactly when ``x`` holds no NaN or
        infinity, unless finite values overflow the sum; only then is the elementwise test run. (The
        elementwise ``all(isfinite(x))`` first writes a mask as large as ``x``: it cost as much as a
        Perona-Malik step.)
        """
        import math

        import numpy as np

        xp = array_api_compat.array_namespace(x)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum is answered below, not warned
            total = xp.sum(x)
        if math.isfinite(float(self.to_numpy(total))):
            return True
        return bool(self.to_numpy(xp.all(xp.isfinite(x))))

    def shares_memory(self, a: Array, b: Array) -> bool:
        """Whether ``a`` and ``b`` may overlap in memory (``False`` where the library cannot tell)."""
        return False

    def check_out(self, out: Array) -> None:
        """TypeError when this library's arrays cannot receive a result through ``out=``."""
        if not self.writable:
            raise TypeError(f"out= is not supported for {self.name} arrays ({self.why_not_writable}): use the "
                            "returned array")

    def write(self, out: Array, result: Array) -> Array:
        """``out`` holding ``result`` (returned)."""
        out[...] = result
        return out

    def register_type(self, cls: type, flatten: Callable, unflatten: Callable) -> bool:
        """Make ``cls`` a node of the library's pytrees (see :func:`register_type`); ``False``: not now, ask
        again later (PyTorch cannot register while ``torch.compile`` traces)."""
        return True

    def chunked_like(self, x: Array, like: Array, ndim: int) -> Array:
        """``x`` (``(..., K, *grid)``, built for the image ``like``) laid out as ``like`` along the grid:
        dask's chunks; the array itself elsewhere."""
        return x

    def whole_grid(self, x: Array, ndim: int, what: str | None = None) -> Array:
        """``x`` with its last ``ndim`` axes each in one piece (an FFT needs whole axes): ValueError naming
        ``what`` when they are not, or, for ``what=None``, ``x`` rearranged so (dask's rechunk). The array
        itself for libraries that hold arrays whole."""
        return x

    def persist(self, *arrays: Array) -> tuple[Array, ...]:
        """``arrays`` computed once and kept in (distributed) memory, together (dask's ``persist``), so that
        later reads do not recompute their graphs; the arrays themselves elsewhere."""
        return arrays


#: The adapter of libraries without a module of their own: the generic array-API code, DLPack host reads.
GENERIC = Adapter("generic")


@dataclasses.dataclass(frozen=True)
class Library:
    """One row of :data:`LIBRARIES`: an array library and where its adapter lives.

    Parameters
    ----------
    name : str
        The library's name (``"torch"``), as :func:`library_of` answers it.
    framework : str
        Its top-level import name; its adapter is imported only once this module is.
    is_namespace, is_array : callable
        Predicates recognising the library's namespaces and arrays without importing it
        (``array_api_compat.is_torch_namespace`` / ``is_torch_array``).
    load : callable or None
        Imports and returns the adapter module (``ssdops.backends._torch``, exposing ``ADAPTER`` and
        registering kernels) with an ``import`` statement: ``torch.compile`` may trace a library's first use,
        and Dynamo traces ``import`` statements but refuses ``importlib``. ``None``: :data:`GENERIC`.
    adapter : Adapter, optional
        The adapter itself, for a library added at run time with :func:`add_library` (no module).
    benchmarked : bool
        ``ssdops bench`` times it.
    compared : tuple of str
        The framework names ``ssdops compare`` runs it as (``("jax", "jax.jit")``).
    tested : str
        The tests' ``xp`` fixture: ``"always"``, ``"gpu"`` (with a GPU only) or ``"never"``.
    """

    name: str
    framework: str
    is_namespace: Callable[[Any], bool]
    is_array: Callable[[Any], bool]
    load: Callable[[], Any] | None = None
    adapter: Adapter | None = None
    benchmarked: bool = False
    compared: tuple[str, ...] = ()
    tested: str = "never"


def _is_strict_array(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "array_api_strict"


# Each library's adapter module, imported by an import statement (see Library.load).
def _load_numpy() -> Any:
    from . import _numpy
    return _numpy


def _load_torch() -> Any:
    from . import _torch
    return _torch


def _load_jax() -> Any:
    from . import _jax
    return _jax


def _load_cupy() -> Any:
    from . import _cupy
    return _cupy


def _load_dask() -> Any:
    from . import _dask
    return _dask


#: The array libraries, in the order they are recognised. Adding one: its adapter module ``_<name>.py``
#: here, its loader above and one row (README, "Architecture").
LIBRARIES: dict[str, Library] = {lib.name: lib for lib in (
    Library("numpy", "numpy", array_api_compat.is_numpy_namespace, array_api_compat.is_numpy_array,
            _load_numpy, benchmarked=True, compared=("numpy",), tested="always"),
    Library("torch", "torch", array_api_compat.is_torch_namespace, array_api_compat.is_torch_array,
            _load_torch, benchmarked=True, compared=("torch",), tested="always"),
    Library("jax", "jax", array_api_compat.is_jax_namespace, array_api_compat.is_jax_array,
            _load_jax, benchmarked=True, compared=("jax", "jax.jit"), tested="always"),
    Library("cupy", "cupy", array_api_compat.is_cupy_namespace, array_api_compat.is_cupy_array,
            _load_cupy, benchmarked=True, compared=("cupy",), tested="gpu"),
    Library("dask", "dask", array_api_compat.is_dask_namespace, array_api_compat.is_dask_array, _load_dask),
    Library("array_api_strict", "array_api_strict", array_api_compat.is_array_api_strict_namespace,
            _is_strict_array, compared=("array_api_strict",), tested="always"),
)}


def add_library(library: Library) -> None:
    """Add a library to :data:`LIBRARIES` at run time (its :attr:`Library.adapter` given, or a module).

    ValueError for a name already in the table. Its arrays then get its adapter and, without kernels of
    its own, the generic code.

    >>> from ssdops import backends
    >>> backends.add_library(backends.LIBRARIES["numpy"])
    Traceback (most recent call last):
        ...
    ValueError: library 'numpy' is already in ssdops.backends.LIBRARIES
    """
    if library.name in LIBRARIES:
        raise ValueError(f"library {library.name!r} is already in ssdops.backends.LIBRARIES")
    LIBRARIES[library.name] = library
    if library.adapter is not None:
        _install(library.name, library.adapter)


def remove_library(name: str) -> None:
    """Remove a library added by :func:`add_library` (its arrays then get :data:`GENERIC`); ValueError for
    the built-in ones."""
    if LIBRARIES[name].adapter is None:
        raise ValueError(f"library {name!r} is built in: it cannot be removed")
    del LIBRARIES[name]
    _ADAPTERS.pop(name, None)
    _LOADED.discard(name)
    _ACTIVE[:] = [_ADAPTERS[n] for n in LIBRARIES if n in _ADAPTERS]


class BackendImportWarning(RuntimeWarning):
    r"""A backend module failed to import for a reason other than its framework being absent.

    Issued once per library on the library's first use (:func:`adapter_for`, :func:`lookup`,
    :func:`registered`); that library's arrays then run the generic array-API code (slower, same results)
    with the :data:`GENERIC` adapter: never a silent fallback.
    The message names the library and the import error.

    Raises
    ------
    BackendImportWarning
        Only where the warning filter turns it into an exception (``warnings.simplefilter("error")``,
        ``pytest -W error``); otherwise it is issued, not raised.

    See Also
    --------
    lookup : Loads the backends.
    use_generic : Forces the generic code on purpose.

    Notes
    -----
    For an operation :math:`n` of a library :math:`\ell` whose backend failed to import,
    :math:`\mathrm{lookup}(n, \ell) = \text{None}`: the core runs the generic kernels of
    ``ssdops._kernels``, the reference every fast path is tested against. A framework that is not installed
    at all (``ModuleNotFoundError`` for the framework itself) is not reported.

    References
    ----------
    .. [1] Python documentation, "warnings: Warning control",
           https://docs.python.org/3/library/warnings.html.

    Examples
    --------
    >>> import warnings
    >>> from ssdops import backends
    >>> issubclass(backends.BackendImportWarning, RuntimeWarning)
    True
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", backends.BackendImportWarning)   # a broken backend fails loudly
    ...     kernels = backends.registered("numpy")
    >>> ("ssd_apply", "numpy") in kernels
    True
    """


_ADAPTERS: dict[str, Adapter] = {}
_ACTIVE: list[Adapter] = []  # the adapters loaded, in table order: asked by is_traced and compiling
_TYPES: list[tuple[type, Callable, Callable]] = []
_PENDING: list[tuple[Adapter, type, Callable, Callable]] = []
_LOADED: set[str] = set()
_GENERIC = contextvars.ContextVar(
    "ssdops_generic", default=os.environ.get("SSDOPS_GENERIC", "") not in ("", "0")
)


def _import(library: str) -> Adapter:
    """Import the adapter module of ``library`` (registering its kernels) and return its ``ADAPTER``."""
    load = LIBRARIES[library].load
    if load is None:
        return GENERIC
    return load().ADAPTER


def _load(library: str) -> Adapter:
    """The adapter of ``library``, its module imported on the first call (see the module docstring)."""
    adapter = _ADAPTERS.get(library)
    if adapter is not None:
        return adapter
    if library in _LOADED:
        return GENERIC
    _LOADED.add(library)
    entry = LIBRARIES[library]
    adapter = GENERIC
    try:
        adapter = entry.adapter or _import(library)
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] != entry.framework:
            _warn_import(library, err)
        # else: the framework is not installed, generic code only
    except Exception as err:  # noqa: BLE001 - any other failure is reported, never swallowed
        _warn_import(library, err)
    if adapter is not GENERIC:
        _install(library, adapter)
    return adapter


def _install(library: str, adapter: Adapter) -> None:
    _ADAPTERS[library] = adapter
    _LOADED.add(library)
    _ACTIVE[:] = [_ADAPTERS[name] for name in LIBRARIES if name in _ADAPTERS]
    for cls, flatten, unflatten in _TYPES:
        if not adapter.register_type(cls, flatten, unflatten):
            _PENDING.append((adapter, cls, flatten, unflatten))


def _warn_import(library: str, err: BaseException) -> None:
    warnings.warn(
        f"ssdops.backends: the {library} backend failed to import ({type(err).__name__}: {err}); "
        f"{library} arrays run the generic array-API code (slower, same results)",
        BackendImportWarning,
        stacklevel=5,
    )


def load_imported() -> list[Adapter]:
    """The adapters of every framework imported so far, loading those not loaded yet (so that their pytree
    registrations are in place: ``jax.jit`` can take an operator of NumPy arrays once JAX is imported)."""
    for entry in LIBRARIES.values():
        if entry.name not in _LOADED and entry.load is not None and \
                sys.modules.get(entry.framework) is not None:
            _load(entry.name)
    if _PENDING and not _compiling_loaded():
        for item in list(_PENDING):
            if item[0].register_type(*item[1:]):
                _PENDING.remove(item)
    return _ACTIVE


def _compiling_loaded() -> bool:
    return any(adapter.compiling() for adapter in _ACTIVE)


def library_of(xp: Any) -> str | None:
    r"""The library of namespace ``xp`` (a key of :data:`LIBRARIES`), or ``None`` for any other.

    Parameters
    ----------
    xp : module
        An array namespace: the library's module (``numpy``, ``torch``, ``jax.numpy``, ...) or its
        ``array_api_compat`` wrapper.

    Returns
    -------
    str or None
        ``"numpy"``, ``"torch"``, ``"jax"``, ``"cupy"`` or ``"dask"``; ``None`` for any other namespace
        (``array_api_strict``, for example: the generic code runs there).

    Raises
    ------
    AttributeError
        If ``xp`` is not a module-like namespace (it has no ``__name__``).

    See Also
    --------
    lookup : Uses it to pick the kernels.
    LIBRARIES : The libraries and their predicates.

    Notes
    -----
    Recognised with ``array_api_compat.is_<library>_namespace``, so a NumPy array and its
    ``array_api_compat`` wrapper namespace find the same kernels: for a namespace :math:`x_p`,
    :math:`\mathrm{library\_of}(x_p) = \ell` for the first library :math:`\ell` whose predicate holds.

    References
    ----------
    .. [1] Consortium for Python Data API Standards, "Python array API standard", version 2023.12,
           https://data-apis.org/array-api/.

    Examples
    --------
    >>> import numpy as np
    >>> from array_api_compat import array_namespace
    >>> from ssdops import backends
    >>> backends.library_of(np), backends.library_of(array_namespace(np.ones(2)))
    ('numpy', 'numpy')
    """
    for entry in LIBRARIES.values():
        if entry.is_namespace(xp):
            return entry.name
    return None


def adapter_for(x: Any) -> Adapter:
    """The :class:`Adapter` of array ``x``'s library (:data:`GENERIC` for a library not in the table).

    >>> import numpy as np
    >>> from ssdops import backends
    >>> backends.adapter_for(np.zeros(1)).name, backends.adapter_for([1.0]) is backends.GENERIC
    ('numpy', True)
    """
    for entry in LIBRARIES.values():
        if entry.is_array(x):
            return _load(entry.name)
    return GENERIC


def is_traced(x: Any) -> bool:
    """Whether the values behind ``x`` cannot (or must not) be read on the host, so value checks that need
    them (finite values, stability limits, ``lam > 0``, a Krylov loop's convergence test) are skipped.

    Every imported framework's adapter is asked: a JAX tracer (under ``jit``, ``grad``, ``vmap``); a
    PyTorch tensor wrapped by a ``torch.func`` transform, and anything at all while a ``torch.func``
    transform runs or ``torch.compile`` traces (Python numbers included: a check on a number would be baked
    into the graph).

    >>> import numpy as np
    >>> from ssdops import backends
    >>> backends.is_traced(np.ones(2)), backends.is_traced(0.5)
    (False, False)
    """
    return any(adapter.is_traced(x) for adapter in load_imported())


def compiling() -> bool:
    """Whether a framework's compiler (``torch.compile``) is tracing the calling code.

    >>> from ssdops import backends
    >>> backends.compiling()
    False
    """
    return any(adapter.compiling() for adapter in load_imported())


def register_type(cls: type, flatten: Callable, unflatten: Callable) -> None:
    """Register ``cls`` as a pytree node in every library that has pytrees (PyTorch, JAX), now and as
    their adapters load.

    ``flatten(obj)`` returns ``(children, aux)``: a tuple of arrays and hashable static data;
    ``unflatten(aux, children)`` rebuilds the object (children may be anything a transform puts there:
    tracers, batched tensors, ``None``, integers of ``in_dims``). :class:`ssdops.SSD` is registered so.
    """
    entry = (cls, flatten, unflatten)
    if entry in _TYPES:
        return
    _TYPES.append(entry)
    for adapter in list(_ADAPTERS.values()):
        if not adapter.register_type(cls, flatten, unflatten):
            _PENDING.append((adapter, cls, flatten, unflatten))


# --- kernels and dispatch -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Kernel:
    """A kernel and the cases it takes (``None``: any), as :func:`register` records it.

    A case outside the declaration never reaches the kernel; a kernel may also decline a case it finds
    out about late by returning ``NotImplemented`` (the generic code then runs). It never raises for a case
    it lacks. ``native``: the kernel runs the compiled CPU kernels of ``backends/native/``;
    ``numpy_on_host``: the cases in which it hands its arrays' memory to NumPy's kernel (``ssdops bench``
    names what runs each kernel from these two).
    """

    operation: str
    library: str
    function: Callable[..., Any]
    ndims: tuple[int, ...] = (1, 2, 3)
    dtypes: tuple[str, ...] | None = None
    bcs: tuple[str, ...] | None = None
    diffusivities: tuple[str, ...] | None = None
    native: bool = False
    numpy_on_host: str | None = None

    def accepts(self, ndim: int, dtype: Any = None, bc: str | None = None, diffusivity: str | None = None) -> bool:
        """Whether the case (grid dimension, dtype, boundary condition, diffusivity name) is declared."""
        return (ndim in self.ndims
                and (dtype is None or self.dtypes is None or dtype_name(dtype) in self.dtypes)
                and (bc is None or self.bcs is None or bc in self.bcs)
                and (diffusivity is None or self.diffusivities is None or diffusivity in self.diffusivities))


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for every library's float32 (``torch.float32``, ``numpy.float32``, ``dtype('float32')``)."""
    return str(dtype).rsplit(".", 1)[-1]


_REGISTRY: dict[tuple[str, str], Kernel] = {}


def register(name: str, library: str, kernel: Callable[..., Any], *, ndims: tuple[int, ...] = (1, 2, 3),
             dtypes: tuple[str, ...] | None = None, bcs: tuple[str, ...] | None = None,
             diffusivities: tuple[str, ...] | None = None, native: bool = False,
             numpy_on_host: str | None = None) -> None:
    r"""Register ``kernel`` as the fast path of operation ``name`` for ``library``, for the cases declared.

    One registration per (operation, library); registering the same kernel with the same declaration again
    is allowed.

    Parameters
    ----------
    name : str
        The operation, a key of :data:`OPERATIONS`.
    library : str
        The library, a key of :data:`LIBRARIES`.
    kernel : callable
        The kernel, following the operation's protocol (called with keywords).
    ndims : tuple of int, default (1, 2, 3)
        The grid dimensions the kernel takes.
    dtypes, bcs, diffusivities : tuple of str, optional
        The dtype names (``"float32"``), boundary conditions and diffusivity names it takes (default: all).
    native : bool, default False
        Whether the kernel runs the compiled CPU kernels of ``backends/native/``.
    numpy_on_host : str, optional
        When the kernel hands its arrays' memory to NumPy's kernel (for example ``"each chunk"``).

    Raises
    ------
    ValueError
        For an unknown ``name`` or ``library``, or a different kernel (or the same one declared otherwise)
        registered before for (``name``, ``library``).

    See Also
    --------
    lookup : Finds the kernel that accepts a case.
    registered : Lists the registered kernels.

    Notes
    -----
    The registry maps :math:`(\mathrm{name}, \mathrm{library})` to a :class:`Kernel`: the function and the
    cases it declares. An adapter module registers its kernels at its end; write the generic code in
    ``ssdops._kernels`` first and test the kernel against it inside ``with use_generic():``.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 4.3.1 (the operations these kernels implement).

    Examples
    --------
    >>> from ssdops import backends
    >>> backends.register("ssd_apply", "fortran", print)
    Traceback (most recent call last):
        ...
    ValueError: unknown library 'fortran': one of ('numpy', 'torch', 'jax', 'cupy', 'dask', 'array_api_strict')
    """
    if name not in OPERATIONS:
        raise ValueError(f"unknown operation {name!r}: one of {tuple(OPERATIONS)}")
    if library not in LIBRARIES:
        raise ValueError(f"unknown library {library!r}: one of {tuple(LIBRARIES)}")
    previous = _REGISTRY.get((name, library))
    if previous is not None and previous.function is not kernel:
        raise ValueError(f"{name!r} already has a kernel for {library!r}: {previous.function!r}")
    record = Kernel(name, library, kernel, tuple(ndims), dtypes, bcs, diffusivities, native, numpy_on_host)
    if previous is not None and previous != record:
        raise ValueError(f"{name!r} for {library!r} is registered already, declared otherwise: {previous!r}")
    _REGISTRY[(name, library)] = record


def lookup(name: str, xp: Any, ndim: int = 2, *, dtype: Any = None, bc: str | None = None,
           diffusivity: str | None = None) -> Callable[..., Any] | None:
    r"""The kernel of operation ``name`` on namespace ``xp`` that accepts the case, or ``None``.

    ``None`` means "run the generic code": inside :func:`use_generic` (except for the
    :data:`DIFFERENTIATION_RULES`), for a library without a kernel for the operation or the case, and for a
    library ssdops has no backend for. A library's adapter module is imported on its first use. Inside code
    that ``torch.compile`` traces, the :func:`use_generic` switch is not read (Dynamo cannot trace a
    :class:`contextvars.ContextVar`): compiled code always uses the fast paths.

    Parameters
    ----------
    name : str
        The operation, a key of :data:`OPERATIONS` (an unknown name finds nothing).
    xp : module
        The array namespace of the arguments.
    ndim : int, default 2
        The grid dimension of the call.
    dtype : dtype, optional
        The dtype of the call (any library's: compared by name, ``"float32"``); ``None``: not asked.
    bc : str, optional
        The boundary condition of the call; ``None``: not asked.
    diffusivity : str, optional
        The diffusivity name of the call (:func:`ssdops.diffusivity.resolve`); ``None``: not asked.

    Returns
    -------
    callable or None
        The registered kernel, called with keywords in its protocol's signature, or ``None``.

    Raises
    ------
    AttributeError
        If ``xp`` is not a module-like namespace (see :func:`library_of`).

    Warns
    -----
    BackendImportWarning
        Once per library, when its adapter module fails to import for a reason other than its framework
        being absent (that library then runs the generic code).

    See Also
    --------
    register : Adds a kernel with the cases it takes.
    dispatch : Runs the kernel found here, or the generic code.
    use_generic : Forces the generic code.

    Notes
    -----
    The dispatch rule, for a case :math:`c` (grid dimension, dtype, boundary condition, diffusivity):

    .. math::

       \mathrm{lookup}(n, x_p, c) = \begin{cases} \text{None} & \text{generic forced and } n \notin
       \text{DIFFERENTIATION\_RULES}, \\ \mathrm{kernel}(n, \ell) & c \text{ declared by } \mathrm{kernel}(n,
       \ell), \\ \text{None} & \text{otherwise}, \end{cases} \qquad \ell = \mathrm{library\_of}(x_p).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 4.3.1.

    Examples
    --------
    >>> import numpy as np
    >>> from ssdops import backends
    >>> backends.lookup("ssd_apply", np) is backends.registered("numpy")[("ssd_apply", "numpy")]
    True
    >>> backends.lookup("ssd_apply", np, ndim=4) is None      # no kernel takes 4-D grids
    True
    """
    if name not in DIFFERENTIATION_RULES and not compiling() and _GENERIC.get():
        return None
    library = library_of(xp)
    if library is None:
        return None
    _load(library)
    kernel = _REGISTRY.get((name, library))
    if kernel is None or not kernel.accepts(ndim, dtype, bc, diffusivity):
        return None
    return kernel.function


def dispatch(name: str, xp: Any, generic: Callable[[], Any], arguments: dict[str, Any], *, ndim: int,
             dtype: Any = None, bc: str | None = None, diffusivity: str | None = None) -> Any:
    """Operation ``name``: ``kernel(**arguments)``, the kernel of ``xp``'s library for the case (grid
    dimension ``ndim``, ``dtype``, ``bc``, ``diffusivity`` name) where one accepts it, else (or when the
    kernel returns ``NotImplemented``) ``generic()``. Every call site of the core dispatches so.

    >>> import numpy as np, ssdops
    >>> from ssdops import backends
    >>> L, u = ssdops.laplacian((3, 3)), np.ones((3, 3))
    >>> arguments = dict(diagonals=L.diagonals, offsets=L.offsets, u=u)
    >>> bool(np.allclose(backends.dispatch("ssd_apply", np, lambda: "generic", arguments, ndim=2), L @ u))
    True
    >>> backends.dispatch("ssd_apply", np, lambda: "generic", arguments, ndim=4)     # no kernel for 4-D
    'generic'
    """
    kernel = lookup(name, xp, ndim, dtype=dtype, bc=bc, diffusivity=diffusivity)
    if kernel is not None:
        result = kernel(**arguments)
        if result is not NotImplemented:
            return result
    return generic()


def _numpy_kernel(name: str, ndim: int = 2) -> Callable[..., Any]:
    """NumPy's kernel of ``name`` for ``ndim``-D grids, whatever :func:`use_generic` says here: the kernels of
    libraries whose arrays can lend NumPy their memory (dask blocks, PyTorch CPU tensors) run it. RuntimeError
    when it is missing (the NumPy backend failed to import: see :class:`BackendImportWarning`)."""
    import numpy

    with use_generic(False):
        kernel = lookup(name, numpy, ndim)
    if kernel is None:
        raise RuntimeError(f"ssdops.backends: the NumPy kernel {name!r} for {ndim}-D grids is missing "
                           "(see BackendImportWarning)")
    return kernel


def registered(library: str | None = None) -> dict[tuple[str, str], Callable[..., Any]]:
    r"""Every kernel loaded so far, as ``{(operation, library): kernel}``.

    Parameters
    ----------
    library : str, optional
        Only the kernels of this library (a key of :data:`LIBRARIES`), after loading its backend.

    Returns
    -------
    dict
        ``{(operation, library): kernel}``; empty for a library without kernels.

    Raises
    ------
    BackendImportWarning
        Only where warnings are errors (``warnings.simplefilter("error")``): issued, not raised, when the
        backend of ``library`` fails to import for a reason other than its framework being absent.

    See Also
    --------
    register : Adds a kernel.
    lookup : The kernel one call gets.

    Notes
    -----
    The keys are the pairs :math:`(\mathrm{operation}, \mathrm{library})` of :func:`register`; a backend is
    loaded on demand, so without ``library`` only the backends used so far are listed. Whether a kernel runs
    the compiled CPU kernels of ``backends/native/`` (built at install when a C++17 compiler was found;
    otherwise ``ssdops.backends._native.REASON`` says why not) is its record's ``native``
    (:func:`declarations`).

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 4.3.1.

    Examples
    --------
    >>> from ssdops import backends
    >>> sorted(op for op, library in backends.registered("numpy"))
    ['filter_step', 'perona_malik_step', 'ssd_apply', 'ssd_apply_transpose']
    """
    if library is not None:
        _load(library)
    return {key: k.function for key, k in _REGISTRY.items() if library is None or key[1] == library}


def declarations(library: str | None = None) -> dict[tuple[str, str], Kernel]:
    """The :class:`Kernel` records behind :func:`registered`: each kernel with the cases it declares."""
    if library is not None:
        _load(library)
    return {key: k for key, k in _REGISTRY.items() if library is None or key[1] == library}


def is_generic() -> bool:
    r"""Whether the generic code is forced here (inside :func:`use_generic`, or by ``SSDOPS_GENERIC=1``).

    Returns
    -------
    bool
        The switch of the current thread or asyncio task.

    See Also
    --------
    use_generic : Sets the switch.

    Notes
    -----
    The switch :math:`s \in \{\mathrm{True}, \mathrm{False}\}` defaults to ``SSDOPS_GENERIC`` not in
    ``("", "0")`` and is set per thread and per asyncio task by :func:`use_generic`.

    References
    ----------
    .. [1] Python documentation, "contextvars: Context Variables",
           https://docs.python.org/3/library/contextvars.html.

    Examples
    --------
    >>> from ssdops import backends
    >>> with backends.use_generic():
    ...     backends.is_generic()
    True
    """
    return _GENERIC.get()


@contextlib.contextmanager
def use_generic(flag: bool = True) -> Iterator[None]:
    r"""Inside the ``with`` block, force or release the generic array-API path.

    Every operation except the :data:`DIFFERENTIATION_RULES` then runs the generic code, the reference the
    fast paths are tested against; the results agree to rounding.

    Parameters
    ----------
    flag : bool, default True
        ``True`` forces the generic code; ``False`` releases it (inside an outer ``use_generic()`` or with
        ``SSDOPS_GENERIC=1``).

    Yields
    ------
    None
        The switch holds inside the block and is reset on leaving it, also on an exception.

    Raises
    ------
    ValueError
        If ``bool(flag)`` does (an array of several elements, for example); raised on entering the block.

    See Also
    --------
    is_generic : Reads the switch.
    lookup : Answers ``None`` while the switch is on.

    Notes
    -----
    The switch is a :class:`contextvars.ContextVar`: per thread and per asyncio task. Code traced by
    ``torch.compile`` does not read it. For an operation :math:`n` outside the differentiation rules,
    :math:`\mathrm{lookup}(n, \cdot) = \text{None}` inside the block.

    References
    ----------
    .. [1] Python documentation, "contextvars: Context Variables",
           https://docs.python.org/3/library/contextvars.html.

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> from ssdops import backends
    >>> with backends.use_generic():
    ...     backends.lookup("ssd_apply", np) is None
    True
    >>> with backends.use_generic(), backends.use_generic(False):
    ...     backends.is_generic()
    False
    """
    token = _GENERIC.set(bool(flag))
    try:
        yield
    finally:
        _GENERIC.reset(token)
