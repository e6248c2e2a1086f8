"""Exceptions and warnings of ssdops (re-exported by :mod:`ssdops`)."""
from __future__ import annotations

__all__ = ["ConvergenceError", "ConvergenceWarning"]


class ConvergenceError(RuntimeError):
    """An iterative solve stopped before reaching its tolerance."""


class ConvergenceWarning(RuntimeWarning):
    """Issued instead of :class:`ConvergenceError` with ``on_failure="warn"``."""
