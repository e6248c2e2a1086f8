"""Batched Krylov solvers written against the array API, one file per solver.

Each solves ``A x = b`` for a batch of images at once: inner products are taken per image (over the last
two axes), every image has its own step lengths and stops changing once its residual
``||b - A x|| <= tol * ||b||``. The loop ends when all images have converged (one boolean read on the host
per iteration) or after ``maxiter`` iterations. With ``host_reads=False`` (traced values: ``jax.jit``,
``torch.func`` transforms, ``torch.compile``) nothing is read: every call runs ``maxiter`` iterations,
converged images taking zero steps, and ``SolveInfo.converged`` is ``None`` (unknown). They return
``(x, SolveInfo)``.
"""
from .bicgstab import bicgstab
from .cg import cg
from .common import SolveInfo

__all__ = ["SolveInfo", "bicgstab", "cg"]
