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
(NumPy: the blocked apply over the planes, filter and Perona-Malik steps composed from it; PyTorch: those NumPy
kernels on the CPU without autograd, the generic code under autograd; ``implicit_solve`` 2-D only in PyTorch);
CuPy 2-D and 3-D (one CUDA kernel family); dask 2-D (:func:`register`'s ``ndims``); where a library has no kernel for a dimension,
:func:`lookup` answers ``None`` and the generic code runs.

Adding a kernel: write (or reuse) the generic code in ``ssdops._kernels`` first; implement the protocol in
the library's module using only ``ssdops._kernels``; :func:`register` it at the module's end; test it
against the generic code under :func:`use_generic` (``tests/test_backends.py``); add a row to
``ssdops bench``.

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
    r"""Kernel protocol of ``ssd_apply`` (:math:`A u`) and ``ssd_apply_transpose`` (:math:`A^\top u`).

    A kernel is called as ``kernel(diagonals=..., offsets=..., u=..., out=None)``: ``diagonals``
    ``(..., K, *grid)``, ``offsets`` a tuple of K d-tuples (``(dy, dx)`` in 2-D), ``u`` ``(..., *grid)``;
    batch axes broadcast. It returns the product, of the broadcast batch shape, in ``u``'s library and
    dtype. ``out`` (validated by the core: the result's shape and dtype, the library of ``u``, no memory
    shared with the inputs) receives the result, which is returned; a library without writable arrays
    raises TypeError.

    Parameters
    ----------
    *args : tuple
        Not accepted: a protocol is a type for static checkers, never instantiated.
    **kwargs : dict
        Not accepted, as ``*args``.

    Raises
    ------
    TypeError
        On instantiation: protocols cannot be instantiated. A kernel raises nothing of its own for bad
        arguments (but ``out=`` on a library without writable arrays: TypeError): the core has validated
        them before dispatch, so every backend answers a bad call with the core's exception.

    See Also
    --------
    lookup : Finds the kernel of a library.
    ssdops.SSD : Calls it in ``op @ u`` (``matvec``) and ``rmatvec``.

    Notes
    -----
    Products only over in-grid neighbours:

    .. math::

       (A u)[p] = \sum_k d_k[p]\, u[p + o_k], \qquad (A^\top u)[q] = \sum_k d_k[q - o_k]\, u[q - o_k].

    References
    ----------
    .. [1] S. Arridge and A. Hauptmann, "Networks for nonlinear diffusion problems in imaging",
           J. Math. Imaging Vision, 2019, Definition 2.7 and section 4.3.1 (filters as images multiplied
           with shifted copies).

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

    Parameters
    ----------
    *args : tuple
        Not accepted: a protocol is a type for static checkers, never instantiated.
    **kwargs : dict
        Not accepted, as ``*args``.

    Raises
    ------
    TypeError
        On instantiation: protocols cannot be instantiated. A kernel raises nothing of its own for bad
        arguments: the core has validated them before dispatch, so every backend answers a bad call with
        the core's exception.

    See Also
    --------
    ssdops.filter_step : The public function that dispatches to it.
    lookup : Finds the kernel of a library.

    Notes
    -----
    In 2-D, over in-grid neighbours,

    .. math:: u[p] + \Delta t\,\Bigl(\sum_{k=1}^{4} \zeta_k[p]\, u[p + o_k] - \zeta_5[p]\, u[p]\Bigr).

    References
    ----------
    .. [1] S. Arridge and A. Hauptmann, "Networks for nonlinear diffusion problems in imaging",
           J. Math. Imaging Vision, 2019, eq. (4.7).

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

    Parameters
    ----------
    *args : tuple
        Not accepted: a protocol is a type for static checkers, never instantiated.
    **kwargs : dict
        Not accepted, as ``*args``.

    Raises
    ------
    TypeError
        On instantiation: protocols cannot be instantiated. A kernel raises nothing of its own for bad
        arguments: the core has validated them before dispatch, so every backend answers a bad call with
        the core's exception.

    See Also
    --------
    ssdops.perona_malik_step : The public function that dispatches to it.
    ssdops.perona_malik_operator : The operator the step applies.

    Notes
    -----
    With backward differences :math:`\nabla_b` (the ghost convention of ``bc``),

    .. math:: u + \Delta t\,\nabla\cdot\bigl(g(|\nabla_b u|^2, \lambda)\,\nabla u\bigr)
              = \bigl(I + \Delta t\,L(\gamma)\bigr)\,u,

    fused: the operator :math:`L(\gamma)` is never stored.

    References
    ----------
    .. [1] S. Arridge and A. Hauptmann, "Networks for nonlinear diffusion problems in imaging",
           J. Math. Imaging Vision, 2019, eqs. (2.10) and (5.1).
    .. [2] P. Perona and J. Malik, "Scale-space and edge detection using anisotropic diffusion",
           IEEE Trans. Pattern Anal. Mach. Intell. 12(7), 629-639, 1990.

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

    Parameters
    ----------
    *args : tuple
        Not accepted: a protocol is a type for static checkers, never instantiated.
    **kwargs : dict
        Not accepted, as ``*args``.

    Raises
    ------
    TypeError
        On instantiation: protocols cannot be instantiated. A kernel raises nothing of its own for bad
        arguments: the core has validated them before dispatch, so every backend answers a bad call with
        the core's exception.

    See Also
    --------
    ssdops.implicit_step : The public function that dispatches to it.
    DIFFERENTIATION_RULES : The operations :func:`use_generic` keeps.

    Notes
    -----
    The forward solve and the reverse mode, with an output cotangent :math:`\bar x`:

    .. math::

       (I - \Delta t\,A)\,x = u, \qquad (I - \Delta t\,A^\top)\,w = \bar x, \qquad \bar u = w, \qquad
       \bar\theta = w^\top \partial_\theta(\Delta t\,A(\theta))\,x.

    References
    ----------
    .. [1] S. Arridge and A. Hauptmann, "Networks for nonlinear diffusion problems in imaging",
           J. Math. Imaging Vision, 2019, eq. (2.11).

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

#: Library -> (namespace predicate, top-level module of the framework).
LIBRARIES = {
    "numpy": (array_api_compat.is_numpy_namespace, "numpy"),
    "torch": (array_api_compat.is_torch_namespace, "torch"),
    "jax": (array_api_compat.is_jax_namespace, "jax"),
    "cupy": (array_api_compat.is_cupy_namespace, "cupy"),
    "dask": (array_api_compat.is_dask_namespace, "dask"),
}


class BackendImportWarning(RuntimeWarning):
    r"""A backend module failed to import for a reason other than its framework being absent.

    Issued once per library by :func:`lookup` (or :func:`registered`) on the library's first use; that
    library's arrays then run the generic array-API code (slower, same results): never a silent fallback.
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
    r"""Register ``kernel`` as the fast path of operation ``name`` for ``library``.

    One registration per (operation, library); registering the same kernel again is allowed.

    Parameters
    ----------
    name : str
        The operation, a key of :data:`OPERATIONS`.
    library : str
        The library, a key of :data:`LIBRARIES`.
    kernel : callable
        The kernel, following the operation's protocol (called with keywords).
    ndims : tuple of int, default (1, 2, 3)
        The grid dimensions the kernel takes; :func:`lookup` answers ``None`` for the others.

    Raises
    ------
    ValueError
        For an unknown ``name`` or ``library``, or a different kernel registered before for
        (``name``, ``library``).

    See Also
    --------
    lookup : Finds a registered kernel.
    registered : Lists the registered kernels.

    Notes
    -----
    The registry maps :math:`(\mathrm{name}, \mathrm{library}) \mapsto (\mathrm{kernel}, \mathrm{ndims})`.
    A backend module registers its kernels at its end; write the generic code in ``ssdops._kernels`` first and
    test the kernel against it under :func:`use_generic`.

    References
    ----------
    .. [1] S. Arridge and A. Hauptmann, "Networks for nonlinear diffusion problems in imaging",
           J. Math. Imaging Vision, 2019, section 4.3.1 (the operations these kernels implement).

    Examples
    --------
    >>> from ssdops import backends
    >>> backends.register("ssd_apply", "fortran", print)
    Traceback (most recent call last):
        ...
    ValueError: unknown library 'fortran': one of ('numpy', 'torch', 'jax', 'cupy', 'dask')
    """
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
    r"""The fast path of operation ``name`` on namespace ``xp`` for a ``ndim``-dimensional grid, or ``None``.

    ``None`` means "run the generic code": inside :func:`use_generic` (except for the
    :data:`DIFFERENTIATION_RULES`), for a library without a kernel for the operation or the dimension, and
    for a library ssdops has no backend for. A library's backend module is imported on its first lookup.
    Inside code that ``torch.compile`` traces, the :func:`use_generic` switch is not read (Dynamo cannot
    trace a :class:`contextvars.ContextVar`): compiled code always uses the fast paths.

    Parameters
    ----------
    name : str
        The operation, a key of :data:`OPERATIONS` (an unknown name finds nothing).
    xp : module
        The array namespace of the arguments.
    ndim : int, default 2
        The grid dimension of the call.

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
        Once per library, when its backend module fails to import for a reason other than its framework
        being absent (that library then runs the generic code).

    See Also
    --------
    register : Adds a kernel.
    use_generic : Forces the generic code.

    Notes
    -----
    The dispatch rule:

    .. math::

       \mathrm{lookup}(n, x_p, d) = \begin{cases} \text{None} & \text{generic forced and } n \notin
       \text{DIFFERENTIATION\_RULES}, \\ \mathrm{kernel}(n, \ell) & d \in \mathrm{ndims}(n, \ell), \\
       \text{None} & \text{otherwise}, \end{cases} \qquad \ell = \mathrm{library\_of}(x_p).

    References
    ----------
    .. [1] S. Arridge and A. Hauptmann, "Networks for nonlinear diffusion problems in imaging",
           J. Math. Imaging Vision, 2019, section 4.3.1.

    Examples
    --------
    >>> import numpy as np
    >>> from ssdops import backends
    >>> backends.lookup("ssd_apply", np) is backends.registered("numpy")[("ssd_apply", "numpy")]
    True
    >>> backends.lookup("ssd_apply", np, ndim=4) is None      # no kernel takes 4-D grids
    True
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


def _numpy_kernel(name, ndim=2):
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


def registered(library=None):
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
    loaded on demand, so without ``library`` only the backends used so far are listed.

    References
    ----------
    .. [1] S. Arridge and A. Hauptmann, "Networks for nonlinear diffusion problems in imaging",
           J. Math. Imaging Vision, 2019, section 4.3.1.

    Examples
    --------
    >>> from ssdops import backends
    >>> sorted(op for op, library in backends.registered("numpy"))
    ['filter_step', 'perona_malik_step', 'ssd_apply', 'ssd_apply_transpose']
    """
    if library is not None:
        _load(library)
    return {key: k for key, k in _REGISTRY.items() if library is None or key[1] == library}


def is_generic() -> bool:
    r"""Whether the generic code is forced here (inside :func:`use_generic`, or by ``SSDOPS_GENERIC=1``).

    Returns
    -------
    bool
        The switch of the current thread or asyncio task.

    Raises
    ------
    None
        Never raises: it reads a :class:`contextvars.ContextVar`.

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
def use_generic(flag: bool = True):
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
