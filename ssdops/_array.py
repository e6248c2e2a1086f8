"""Array-API plumbing shared by every module: namespaces, devices, dtypes, host reads.

Public functions take arrays from any library; they call :func:`namespace` once at the boundary and pass
``xp`` to private helpers. Nothing here copies data to the host except :func:`to_numpy`, which says so.
"""
from __future__ import annotations

import sys
from typing import Any, TypeAlias

import numpy as np
from array_api_compat import array_namespace, device

from . import backends

__all__ = ["MIN_ARRAY_API_VERSION", "Array", "Scalar", "is_traced", "like_namespace", "namespace", "to_numpy"]

#: An array of any array-API library (NumPy, PyTorch, JAX, CuPy, dask, ...): the libraries share no base
#: class that a static checker could name.
Array: TypeAlias = Any
#: A Python number or a 0-d array (traced under a transform).
Scalar: TypeAlias = "float | Array"


def namespace(*arrays):
    """The common array namespace of ``arrays`` (``None`` entries ignored).

    Raises TypeError when the arrays come from different libraries, or are not floating point; ValueError
    when they live on different devices; TypeError when their floating dtypes differ (no silent promotion:
    build operators with ``like=`` to match an image's dtype); TypeError when the library implements a
    version of the array API standard older than :data:`MIN_ARRAY_API_VERSION`.
    """
    arrays = [a for a in arrays if a is not None]
    try:
        xp = array_namespace(*arrays)
    except TypeError as err:
        libs = sorted({type(a).__module__.split(".")[0] + "." + type(a).__name__ for a in arrays})
        raise TypeError(f"mixed array libraries in one call: {', '.join(libs)} ({err})") from None
    _check_version(xp)
    first = arrays[0]
    for a in arrays:
        if not xp.isdtype(a.dtype, "real floating"):
            raise TypeError(f"expected a real floating-point array, got dtype {a.dtype}")
    for a in arrays[1:]:
        # A traced JAX value has no device (None): nothing to compare.
        if None not in (device(a), device(first)) and device(a) != device(first):
            raise ValueError(f"arrays on different devices: {device(first)} and {device(a)}")
        if a.dtype != first.dtype:
            raise TypeError(
                f"mixed floating dtypes {first.dtype} and {a.dtype}; cast one, or build the operator "
                "with like=<image> so that it takes the image's dtype"
            )
    return xp


def like_namespace(like):
    """(xp, dtype, device) of ``like``; NumPy float64 on the CPU for ``None``."""
    if like is None:
        like = np.empty(0, dtype=np.float64)
    xp = namespace(like)
    return xp, like.dtype, device(like)


def chunked_like(diagonals, like, ndim):
    """Diagonals ``(..., K, *grid)`` built for the image ``like`` laid out as it is along the grid (the
    adapter's :meth:`~ssdops.backends.Adapter.chunked_like`: dask's chunks); unchanged for ``like=None``."""
    if like is None:
        return diagonals
    return backends.adapter_for(like).chunked_like(diagonals, like, ndim)


def to_numpy(x):
    r"""Copy ``x`` to a NumPy array on the host (explicitly a host round-trip: for export and analysis).

    Each library's adapter reads its arrays (:mod:`ssdops.backends`): NumPy, PyTorch, CuPy and JAX arrays
    directly, a dask array by computing it (the whole graph behind it runs), any other library through
    DLPack.

    Parameters
    ----------
    x : array
        An array of any library (a PyTorch tensor that requires grad is detached first), or a NumPy scalar.

    Returns
    -------
    numpy.ndarray
        The values, of the same shape; the same dtype except PyTorch's bfloat16, widened to float32
        (exactly).

    Raises
    ------
    TypeError
        If NumPy cannot import the library's array through DLPack; the message names the library and the
        ssdops function that needed the values.

    See Also
    --------
    to_scipy : The operator as a host sparse matrix.

    Notes
    -----
    The one function of ssdops that copies device data to the host on purpose; every other function works
    where its arrays live. For a CuPy array this is ``x.get()``, for a PyTorch tensor
    ``x.detach().cpu().numpy()``, for a dask array ``x.compute()``; otherwise ``numpy.from_dlpack(x)``.
    The values are unchanged: :math:`\mathtt{to\_numpy}(x)_i = x_i` for every index :math:`i`.

    References
    ----------
    .. [1] Consortium for Python Data API Standards, "Python array API standard", version 2023.12
           (DLPack data interchange), https://data-apis.org/array-api/.

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> ssdops.to_numpy(np.float32(2.0))
    array(2., dtype=float32)
    >>> ssdops.to_numpy(ssdops.laplacian((2, 3)).diagonals).shape
    (5, 2, 3)
    """
    try:
        return np.asarray(backends.adapter_for(x).to_numpy(x))
    except (AttributeError, TypeError, BufferError, RuntimeError) as err:
        library = type(x).__module__.split(".")[0]
        known = ", ".join(entry.name for entry in backends.LIBRARIES.values() if entry.load is not None)
        raise TypeError(
            f"{_public_caller()} needs to read a {library} array on the host, and NumPy cannot import "
            f"{library}'s {type(x).__name__} through DLPack ({type(err).__name__}: {err}); convert the "
            f"input to an array of one of {known} first"
        ) from err


def _public_caller():
    """``ssdops.<name>`` of the outermost ssdops function on the stack (the one the user called)."""
    name = "ssdops"
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module == "ssdops" or module.startswith("ssdops."):
            name = f"ssdops.{frame.f_code.co_name}"
        frame = frame.f_back
    return name


#: The oldest version of the array API standard ssdops works with: 2023.12 added ``minimum`` / ``maximum``
#: (used by :func:`ssdops.stable_dt`) and ``__dlpack__(max_version=...)``, which ``np.from_dlpack`` calls.
MIN_ARRAY_API_VERSION = "2023.12"
_SUPPORTED: set[type] = set()


def _check_version(xp):
    """TypeError when namespace ``xp`` implements an array API standard older than the minimum (checked
    once per namespace and version: ``array_api_strict`` can change its version at run time)."""
    version = getattr(xp, "__array_api_version__", None)
    # Keyed by the namespace's name, not the module object: torch.compile traces string comparisons only.
    key = (getattr(xp, "__name__", type(xp).__name__), version)
    if key in _SUPPORTED:
        return
    # Versions are "YYYY.MM" strings: their order is the order of the strings.
    if version is None or str(version) < MIN_ARRAY_API_VERSION:
        raise TypeError(
            f"ssdops needs an array library implementing the array API standard {MIN_ARRAY_API_VERSION} "
            f"or later; {getattr(xp, '__name__', xp)} implements {version or 'no stated version'} "
            "(upgrade the library, or for array_api_strict set api_version='2023.12' or later)"
        )
    _SUPPORTED.add(key)


def is_traced(x) -> bool:
    """Whether the values behind ``x`` cannot (or must not) be read on the host (every imported framework's
    adapter is asked: :func:`ssdops.backends.is_traced`)."""
    return backends.is_traced(x)
