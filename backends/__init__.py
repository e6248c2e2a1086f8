"""Registry of fast paths keyed by array namespace.

The ssdops core asks :func:`lookup` for a kernel by name ("ssd_apply", "ssd_apply_transpose", ...);
``None`` means "use the generic array-API code", which is always correct and is the reference every fast
path is tested against. Set the environment variable ``SSDOPS_GENERIC=1``, or call
``backends.use_generic(True)``, to force the generic path everywhere (for comparisons).
"""
from __future__ import annotations

import os

__all__ = ["lookup", "register", "use_generic"]

_REGISTRY: dict[tuple[str, str], object] = {}
_FORCE_GENERIC = os.environ.get("SSDOPS_GENERIC", "") not in ("", "0")


def _key(xp) -> str:
    return getattr(xp, "__name__", type(xp).__name__)


def register(name, xp_name, kernel):
    """Register ``kernel`` as the fast path for operation ``name`` on the namespace named ``xp_name``."""
    _REGISTRY[(name, xp_name)] = kernel


def lookup(name, xp):
    """The fast path for ``name`` on namespace ``xp``, or ``None`` (generic code)."""
    if _FORCE_GENERIC or not _REGISTRY:
        return None
    return _REGISTRY.get((name, _key(xp)))


def use_generic(flag: bool = True):
    """Force (``True``) or release (``False``) the generic array-API path for every operation."""
    global _FORCE_GENERIC
    _FORCE_GENERIC = bool(flag)
