r"""Rule tables for the definiteness an operator's :class:`ssdops.Tags` carry through the algebra.

In the spirit of lineax's ``_tags.py``: a tag is a claim about the matrix, and every operation that keeps
a claim does so by an explicit rule below; anything else (a transform's copy, a 0-d array scale, a sum of
opposite signs) carries none. Definiteness is that of the quadratic form :math:`x^\top A x` over real
:math:`x`:

==========================  ===========================================================================
value                       claim
==========================  ===========================================================================
``"positive_definite"``     :math:`x^\top A x > 0` for every :math:`x \ne 0`
``"positive_semidefinite"`` :math:`x^\top A x \ge 0`
``"negative_definite"``     :math:`x^\top A x < 0` for every :math:`x \ne 0`
``"negative_semidefinite"`` :math:`x^\top A x \le 0`
``None``                    unknown
==========================  ===========================================================================

Rules (``s`` a Python number, ``c`` the Laplacian tag's scale):

- ``c * laplacian(bc="neumann")``: negative semidefinite for ``c > 0`` (constants are in the null space),
  positive semidefinite for ``c < 0``; Dirichlet: negative / positive definite; ``c == 0``: unknown.
- ``identity``: positive definite.
- ``divergence_form(gamma)``: negative semidefinite (:math:`-D^\top \operatorname{diag}(g) D` with face
  diffusivities :math:`g \ge 0`; ``gamma >= 0`` is its documented contract, not checked).
- ``A + B``: same sign, both known: that sign, definite when either is; otherwise unknown. So
  ``I - dt * L`` with ``L`` negative semidefinite and ``dt >= 0`` is positive definite.
- ``s * A``: ``s > 0`` keeps, ``s < 0`` flips the sign, ``s == 0`` unknown; an array scale: unknown (its
  sign cannot be read without a host round-trip or while traced).
- ``A.T``: keeps (:math:`x^\top A^\top x = x^\top A x`).
- Anything made by a transform (gradients, cotangents, tangents, vmapped copies): unknown.
"""
from __future__ import annotations

import math
import numbers

__all__ = ["DEFINITENESS", "add", "check", "from_laplacian", "scale"]

# value -> (sign, strict)
_PARTS = {
    "positive_definite": (1, True),
    "positive_semidefinite": (1, False),
    "negative_definite": (-1, True),
    "negative_semidefinite": (-1, False),
}
_NAMES = {parts: name for name, parts in _PARTS.items()}
DEFINITENESS = tuple(_PARTS)


def _nonzero_number(x):
    """Whether ``x`` is a finite, non-zero real number known on the host (not an array, not a bool)."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x) and x != 0


def check(definiteness):
    """``definiteness`` if it is one of :data:`DEFINITENESS` or ``None``; ValueError otherwise."""
    if definiteness is not None and definiteness not in _PARTS:
        raise ValueError(f"definiteness must be None or one of {DEFINITENESS}, got {definiteness!r}")
    return definiteness


def from_laplacian(laplacian):
    """The definiteness of ``c * laplacian(bc=bc)`` for the Laplacian tag ``(bc, c)`` (or None)."""
    if not laplacian or not _nonzero_number(laplacian[1]):
        return None
    sign = -1 if laplacian[1] > 0 else 1  # the Laplacian itself is negative (semi)definite
    return _NAMES[(sign, laplacian[0] == "dirichlet")]


def add(a, b):
    """The definiteness of ``A + B`` from those of ``A`` and ``B``."""
    if a is None or b is None:
        return None
    (sign_a, strict_a), (sign_b, strict_b) = _PARTS[a], _PARTS[b]
    if sign_a != sign_b:
        return None
    return _NAMES[(sign_a, strict_a or strict_b)]


def scale(definiteness, scalar):
    """The definiteness of ``scalar * A``: only a Python number's sign is read (see the module table)."""
    if definiteness is None or not _nonzero_number(scalar):
        return None
    sign, strict = _PARTS[definiteness]
    return _NAMES[(sign if scalar > 0 else -sign, strict)]
