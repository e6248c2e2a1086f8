"""Registry of fast paths keyed by array namespace.

The ssdops core asks :func:`lookup` for a kernel by name ("ssd_apply", "ssd_apply_transpose",
"filter_step", "perona_malik_step"); ``None`` means "use the generic array-API code", which is always
correct and is the reference every fast path is tested against. Set the environment variable
``SSDOPS_GENERIC=1``, or call ``backends.use_generic(True)``, to force the generic path everywhere (for
comparisons).

The backend module of a namespace is imported the first time a kernel is asked for on that namespace, so
``import ssdops`` imports no framework, and a framework that is not installed (or, for CuPy, has no GPU)
simply has no fast paths.

========================  =======  =======  ===============  ===============
operation                 NumPy    PyTorch  JAX              CuPy
========================  =======  =======  ===============  ===============
ssd_apply                 blocked  Function fused (XLA)     RawKernel
ssd_apply_transpose       blocked  Function fused (XLA)     RawKernel
filter_step               blocked  Function fused (XLA)     RawKernel
perona_malik_step         blocked  fused    fused (XLA)     RawKernel
========================  =======  =======  ===============  ===============
"""
from __future__ import annotations

import os

__all__ = ["lookup", "register", "use_generic"]

_REGISTRY: dict[tuple[str, str], object] = {}
_FORCE_GENERIC = os.environ.get("SSDOPS_GENERIC", "") not in ("", "0")

# Namespace name (as array_api_compat reports it) -> the module that registers its kernels.
_BACKEND_MODULES = {
    "numpy": "numpy_backend",
    "array_api_compat.numpy": "numpy_backend",
    "torch": "torch_backend",
    "array_api_compat.torch": "torch_backend",
    "jax.numpy": "jax_backend",
    "cupy": "cupy_backend",
    "array_api_compat.cupy": "cupy_backend",
}
_LOADED: set[str] = set()


def _key(xp) -> str:
    return getattr(xp, "__name__", type(xp).__name__)


def _import(module):
    # Import statements, not importlib: torch.compile can trace a first lookup that runs these.
    if module == "numpy_backend":
        from . import numpy_backend  # noqa: F401
    elif module == "torch_backend":
        from . import torch_backend  # noqa: F401
    elif module == "jax_backend":
        from . import jax_backend  # noqa: F401
    else:
        from . import cupy_backend  # noqa: F401


def _load(xp_name):
    module = _BACKEND_MODULES.get(xp_name)
    if module is None or module in _LOADED:
        return
    _LOADED.add(module)
    try:
        _import(module)
    except ImportError:
        # The framework (or, for CuPy, its CUDA runtime) is missing: generic code only.
        pass


def register(name, xp_name, kernel):
    """Register ``kernel`` as the fast path for operation ``name`` on the namespace named ``xp_name``."""
    _REGISTRY[(name, xp_name)] = kernel


def lookup(name, xp):
    """The fast path for ``name`` on namespace ``xp``, or ``None`` (generic code)."""
    if _FORCE_GENERIC:
        return None
    key = _key(xp)
    _load(key)
    return _REGISTRY.get((name, key))


class use_generic:
    """Force (``True``) or release (``False``) the generic array-API path for every operation.

    A plain call sets the switch; used as a context manager (``with backends.use_generic():``) it restores
    the previous setting on exit.
    """

    def __init__(self, flag: bool = True):
        global _FORCE_GENERIC
        self._previous = _FORCE_GENERIC
        _FORCE_GENERIC = bool(flag)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _FORCE_GENERIC
        _FORCE_GENERIC = self._previous
        return False
