r"""SSD operators as lineax linear operators (JAX), for ``lx.linear_solve`` and its solvers.

lineax is imported only when :func:`as_lineax` is called: ``pip install ssdops[lineax]``.
"""
from __future__ import annotations

from ..ssd import SSD

__all__ = ["as_lineax"]

# SSD definiteness -> the lineax tag names (lineax 0.1 has semidefinite tags only; CG needs one of them)
_DEFINITENESS_TAGS = {
    "positive_definite": "positive_semidefinite_tag",
    "positive_semidefinite": "positive_semidefinite_tag",
    "negative_definite": "negative_semidefinite_tag",
    "negative_semidefinite": "negative_semidefinite_tag",
}

_CLASSES = None


def _classes():
    """The two lineax-side classes, built once on first use (equinox and lineax load only then)."""
    global _CLASSES
    if _CLASSES is None:
        import equinox as eqx
        import lineax as lx

        class MatVec(eqx.Module):
            """``v -> op @ v`` as a pytree: the diagonals are its leaf, so ``jit`` and ``grad`` see them."""

            op: SSD

            def __call__(self, v):
                return self.op @ v

        class SSDLinearOperator(lx.FunctionLinearOperator):
            """``lx.FunctionLinearOperator`` of ``op @ v`` whose transpose applies ``op.T`` (the SSD's own
            transpose and fast paths) rather than ``jax.linear_transpose``; the lineax tags follow lineax's
            ``transpose_tags``."""

            def transpose(self):
                if lx.is_symmetric(self):
                    return self
                return SSDLinearOperator(MatVec(self.fn.op.T), self.out_structure(), lx.transpose_tags(self.tags),
                                         closure_convert=False)

        _CLASSES = MatVec, SSDLinearOperator
    return _CLASSES


def as_lineax(op):
    r"""The operator as a lineax linear operator on arrays of shape ``batch_shape + grid_shape``.

    ``mv(v)`` is ``op @ v``; ``transpose()`` is ``as_lineax(op.T)``; the lineax tags come from
    :attr:`SSD.tags`: ``symmetric=True`` gives ``lx.symmetric_tag``, a positive (negative) definite or
    semidefinite ``definiteness`` gives ``lx.positive_semidefinite_tag`` (``lx.negative_semidefinite_tag``),
    which :class:`lineax.CG` requires. An operator whose tags say nothing gets no lineax tags, so ``lx.CG``
    refuses it rather than trusting an unchecked claim.

    Parameters
    ----------
    op : SSD
        The operator, batched or not, with JAX or NumPy diagonals (NumPy diagonals are converted to JAX
        arrays of the same dtype).

    Returns
    -------
    lineax.FunctionLinearOperator
        A subclass of it, with ``in_structure() == out_structure() ==
        jax.ShapeDtypeStruct(op.batch_shape + op.grid_shape, op.dtype)``. The diagonals are a pytree leaf of
        the operator: ``jax.jit`` and ``jax.grad`` see through it.

    Raises
    ------
    TypeError
        If ``op`` is not an :class:`SSD`, or its diagonals are neither JAX nor NumPy arrays.
    ImportError
        If lineax is not installed.

    See Also
    --------
    aslinearoperator : The operator for scipy.
    as_pylops : The operator for PyLops.
    Tags : The structure (symmetry, definiteness) handed to lineax.

    Notes
    -----
    lineax 0.1 has no *definite* tags; a definite SSD is tagged semidefinite, which is what ``lx.CG``
    checks. :math:`I - \Delta t\,L` with :math:`L` a Laplacian (or any negative semidefinite SSD) and a Python
    number :math:`\Delta t \ge 0` is tagged positive (semi)definite by the rules of :class:`Tags`, so it needs
    no tag by hand.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, lineax as lx, ssdops  # doctest: +SKIP
    >>> L = ssdops.laplacian((8, 8), like=jnp.zeros(1))  # doctest: +SKIP
    >>> A = ssdops.as_lineax(ssdops.identity((8, 8), like=jnp.zeros(1)) - 0.5 * L)  # doctest: +SKIP
    >>> lx.is_positive_semidefinite(A), lx.is_symmetric(A)  # doctest: +SKIP
    (True, True)
    >>> u = jnp.ones((8, 8))  # doctest: +SKIP
    >>> x = lx.linear_solve(A, u, lx.CG(rtol=1e-6, atol=1e-6)).value  # doctest: +SKIP
    >>> bool(jnp.allclose(x, u))  # constants are in the Laplacian's null space  # doctest: +SKIP
    True
    """
    if not isinstance(op, SSD):
        raise TypeError(f"as_lineax takes an ssdops.SSD, got {type(op).__name__}")
    import jax
    import jax.numpy as jnp
    import lineax as lx
    import numpy as np

    diagonals = op.diagonals
    if isinstance(diagonals, np.ndarray):
        op = SSD(jnp.asarray(diagonals), op.offsets, tags=op.tags)
    elif not isinstance(diagonals, jax.Array):
        raise TypeError(
            f"as_lineax needs an SSD with JAX (or NumPy) diagonals, got {type(diagonals).__module__}."
            f"{type(diagonals).__name__}"
        )
    tags = []
    if op.tags.symmetric:
        tags.append(lx.symmetric_tag)
    if op.tags.definiteness is not None:
        tags.append(getattr(lx, _DEFINITENESS_TAGS[op.tags.definiteness]))
    structure = jax.ShapeDtypeStruct(op.batch_shape + op.grid_shape, op.dtype)
    matvec, cls = _classes()
    return cls(matvec(op), structure, tuple(tags), closure_convert=False)
