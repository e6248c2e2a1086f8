"""Exceptions and warnings of ssdops (re-exported by :mod:`ssdops`).

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
"""
from __future__ import annotations

__all__ = ["ConvergenceError", "ConvergenceWarning"]


class ConvergenceError(RuntimeError):
    r"""An iterative solve stopped before reaching its tolerance.

    A :class:`RuntimeError`; its message names the solver, the true relative residual reached, ``tol`` and
    the iterations taken.

    Raises
    ------
    ConvergenceError
        Raised by :func:`ssdops.implicit_step` (and ``perona_malik(..., scheme="semi-implicit")``, whose
        steps are implicit solves) with ``on_failure="raise"``, the default, when the true residual of the
        returned iterate is still above ``tol`` after ``maxiter`` iterations.

    See Also
    --------
    ConvergenceWarning : Issued instead with ``on_failure="warn"``.
    implicit_step : The solver that raises it.

    Notes
    -----
    Convergence is judged per image on the true relative residual of the returned :math:`x`,

    .. math:: \frac{\| u - (I - \Delta t\,A)\,x \|_2}{\| u \|_2} \le \mathrm{tol},

    computed with one product after the iterations, not the recurrence of the Krylov method.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (2.11) (the implicit step being solved).

    Examples
    --------
    >>> import numpy as np, ssdops
    >>> u = np.random.default_rng(0).random((8, 8))
    >>> L = ssdops.divergence_form(np.ones((8, 8)))
    >>> try:
    ...     ssdops.implicit_step(u, L, 5.0, maxiter=1)
    ... except ssdops.ConvergenceError as err:
    ...     print(str(err)[:30])
    implicit_step did not converge
    """


class ConvergenceWarning(RuntimeWarning):
    r"""Issued instead of :class:`ConvergenceError` with ``on_failure="warn"``.

    A :class:`RuntimeWarning` with the message :class:`ConvergenceError` would have had; the solver then
    returns its last iterate.

    Raises
    ------
    ConvergenceWarning
        Only where the warning filter turns it into an exception (``warnings.simplefilter("error")``,
        ``pytest -W error``); otherwise it is issued, not raised.

    See Also
    --------
    ConvergenceError : Raised instead with ``on_failure="raise"`` (the default).
    implicit_step : The solver that issues it.

    Notes
    -----
    Issued when the true relative residual :math:`\|u - (I - \Delta t\,A)x\|_2 / \|u\|_2` of the last
    iterate is above ``tol`` after ``maxiter`` iterations.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), eq. (2.11) (the implicit step being solved).

    Examples
    --------
    >>> import warnings, numpy as np, ssdops
    >>> u = np.random.default_rng(0).random((8, 8))
    >>> L = ssdops.divergence_form(np.ones((8, 8)))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     x = ssdops.implicit_step(u, L, 5.0, maxiter=1, on_failure="warn")
    >>> caught[0].category is ssdops.ConvergenceWarning, x.shape
    (True, (8, 8))
    """
