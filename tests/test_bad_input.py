"""Bad arguments get the same exception everywhere (issue 11, items 2, 6, 7, 11).

Each public function of ``ssdops.__all__`` that takes arrays or arguments a user can get wrong has its bad
calls listed in CASES, with the exception type and a fragment of its message. Every case runs under every
library of the ``xp`` fixture (numpy, array_api_strict, torch, jax) and both with the backends' fast paths
and under ``ssdops.backends.use_generic()``: argument checks run once at the public boundary, before any
dispatch, so the exception cannot depend on which kernel would have run.
"""
import math

import numpy as np
import pytest

import ssdops
from ssdops import backends
from support import asarray

GRID = (6, 7)
#: bc values that once slipped through a fast path as Dirichlet (case, an unsupported one, no value)
BAD_BCS = ("Neumann", "periodic", None)


def image(xp, shape=GRID, dtype="float64", bad=None):
    """Random values in [0, 1); ``bad`` (NaN or inf) put into the last image of the batch."""
    a = np.random.default_rng(0).uniform(size=shape)
    if bad is not None:
        a[(-1,) * (len(shape) - 2) + (2, 3)] = bad
    return asarray(xp, a, dtype)


def lap(xp, dtype="float64"):
    return ssdops.laplacian(GRID, like=image(xp, dtype=dtype))


def div(xp, bad=None):
    return ssdops.divergence_form(image(xp, bad=bad))


def _cases():
    c = []

    def case(name, call, error, match):
        c.append(pytest.param(call, error, match, id=name))

    # --- construction and grids (item 11) ---------------------------------------------------------
    case("SSD-diagonals-2d", lambda xp: ssdops.SSD(image(xp)), ValueError, "diagonals")
    case("SSD-duplicate-offsets",
         lambda xp: ssdops.SSD(image(xp, (2,) + GRID), ((0, 0), (0, 0))), ValueError, "distinct")
    case("SSD-zero-length-axis", lambda xp: ssdops.SSD(image(xp, (5, 0, 3))), ValueError, "zero-length")
    case("SSD-integer-diagonals", lambda xp: ssdops.SSD(xp.ones((5, 3, 3), dtype=xp.int64)), TypeError,
         "floating")
    case("identity-zero-length-axis", lambda xp: ssdops.identity((0, 3), like=image(xp)), ValueError,
         "zero-length")
    case("laplacian-fractional-grid", lambda xp: ssdops.laplacian((4.7, 6.2), like=image(xp)), TypeError,
         "integers")
    case("laplacian-zero-length-axis", lambda xp: ssdops.laplacian((0, 4), like=image(xp)), ValueError,
         "zero-length")
    for bc in BAD_BCS:
        case(f"laplacian-bc-{bc}", lambda xp, bc=bc: ssdops.laplacian(GRID, bc=bc, like=image(xp)),
             ValueError, "boundary condition")
        case(f"divergence_form-bc-{bc}", lambda xp, bc=bc: ssdops.divergence_form(image(xp), bc=bc),
             ValueError, "boundary condition")
        case(f"gradient-bc-{bc}", lambda xp, bc=bc: ssdops.gradient(image(xp), bc=bc), ValueError,
             "boundary condition")
        case(f"divergence-bc-{bc}", lambda xp, bc=bc: ssdops.divergence(image(xp, (2,) + GRID), bc=bc),
             ValueError, "boundary condition")
        case(f"heat-bc-{bc}", lambda xp, bc=bc: ssdops.heat(image(xp), 1.0, bc=bc), ValueError,
             "boundary condition")
        case(f"perona_malik-bc-{bc}", lambda xp, bc=bc: ssdops.perona_malik(
            image(xp), steps=2, dt=0.1, lam=0.2, bc=bc), ValueError, "boundary condition")
        case(f"perona_malik_step-bc-{bc}", lambda xp, bc=bc: ssdops.perona_malik_step(
            image(xp), dt=0.1, lam=0.2, bc=bc), ValueError, "boundary condition")
        case(f"perona_malik_step-unchecked-bc-{bc}", lambda xp, bc=bc: ssdops.perona_malik_step(
            image(xp), dt=0.1, lam=0.2, bc=bc, check_stable=False), ValueError, "boundary condition")
        case(f"perona_malik_operator-bc-{bc}", lambda xp, bc=bc: ssdops.perona_malik_operator(
            image(xp), lam=0.2, bc=bc), ValueError, "boundary condition")
    case("divergence_form-gamma-1d", lambda xp: ssdops.divergence_form(image(xp, (5,))), ValueError, "shape")
    case("divergence_form-zero-length-axis", lambda xp: ssdops.divergence_form(image(xp, (4, 0))),
         ValueError, "zero-length")
    case("divergence_form-ghost-neumann",
         lambda xp: ssdops.divergence_form(image(xp), bc="neumann", ghost_gamma=0.0), ValueError, "ghost_gamma")
    for ghost in (math.nan, math.inf, -0.5):
        case(f"divergence_form-ghost-{ghost}",
             lambda xp, g=ghost: ssdops.divergence_form(image(xp), bc="dirichlet", ghost_gamma=g), ValueError,
             "ghost_gamma")
    case("divergence-p-shape", lambda xp: ssdops.divergence(image(xp, (3,) + GRID)), ValueError, "shape")
    case("divergence-zero-length-axis", lambda xp: ssdops.divergence(image(xp, (2, 0, 4))), ValueError,
         "zero-length")
    case("gradient-1d", lambda xp: ssdops.gradient(image(xp, (5,))), ValueError, "shape")
    case("ssd_from_filters-4-filters", lambda xp: ssdops.ssd_from_filters(image(xp, (4,) + GRID)), ValueError,
         "shape")

    # --- explicit steps (item 7) ------------------------------------------------------------------
    case("explicit_step-grid-mismatch", lambda xp: ssdops.explicit_step(image(xp, (5, 5)), lap(xp), 0.1),
         ValueError, "grid")
    case("explicit_step-not-an-operator", lambda xp: ssdops.explicit_step(image(xp), image(xp), 0.1),
         TypeError, "SSD")
    for dt, match in ((-0.1, ">= 0"), (math.nan, "finite"), (math.inf, "finite"), (0.3, "stability limit")):
        case(f"explicit_step-checked-dt-{dt}",
             lambda xp, dt=dt: ssdops.explicit_step(image(xp), lap(xp), dt, check_stable=True), ValueError, match)
    case("explicit_step-checked-nan-operator",
         lambda xp: ssdops.explicit_step(image(xp), div(xp, bad=math.nan), 0.1, check_stable=True), ValueError,
         "NaN or inf")
    case("stable_dt-nan-gamma", lambda xp: ssdops.stable_dt(div(xp, bad=math.nan)), ValueError, "NaN or inf")
    case("stable_dt-not-an-operator", lambda xp: ssdops.stable_dt(image(xp)), TypeError, "SSD")
    case("to_scipy-not-an-operator", lambda xp: ssdops.to_scipy(image(xp)), TypeError, "SSD")
    case("from_scipy-fractional-grid",
         lambda xp: ssdops.from_scipy(ssdops.to_scipy(ssdops.laplacian(GRID)), (4.7, 6.2)), TypeError, "integers")
    case("identity-fractional-grid", lambda xp: ssdops.identity((4.7, 6.2), like=image(xp)), TypeError, "integers")
    case("psnr-bad-ndim", lambda xp: ssdops.psnr(image(xp), image(xp), ndim=4), ValueError, "ndim")
    case("heat-bad-ndim", lambda xp: ssdops.heat(image(xp), 1.0, ndim=0), ValueError, "ndim")
    case("heat-volume-too-few-axes", lambda xp: ssdops.heat(image(xp), 1.0, ndim=3), ValueError, "D, H, W")
    case("filter_step-zeta-shape", lambda xp: ssdops.filter_step(image(xp), image(xp, (4,) + GRID), 0.1),
         ValueError, "shape")
    case("filter_step-grid-mismatch",
         lambda xp: ssdops.filter_step(image(xp, (5, 5)), image(xp, (5,) + GRID), 0.1), ValueError, "grid")
    case("filter_step-zero-length-axis",
         lambda xp: ssdops.filter_step(image(xp, (3, 0)), image(xp, (5, 3, 0)), 0.1), ValueError, "zero-length")

    # --- implicit steps (item 2) ------------------------------------------------------------------
    for method in ("cg", "bicgstab", "spectral"):
        op = lap if method == "spectral" else div
        for bad in (math.nan, math.inf):
            case(f"implicit_step-{method}-u-{bad}-in-batch", lambda xp, op=op, m=method, bad=bad:
                 ssdops.implicit_step(image(xp, (3,) + GRID, bad=bad), op(xp), 0.5, method=m), ValueError,
                 "NaN or inf")
        for dt, match in ((math.nan, "finite"), (math.inf, "finite"), (-0.1, ">= 0")):
            case(f"implicit_step-{method}-dt-{dt}", lambda xp, op=op, m=method, dt=dt:
                 ssdops.implicit_step(image(xp), op(xp), dt, method=m), ValueError, match)
        if method != "spectral":
            case(f"implicit_step-{method}-nan-operator", lambda xp, m=method:
                 ssdops.implicit_step(image(xp), div(xp, bad=math.nan), 0.5, method=m), ValueError, "NaN or inf")
            case(f"implicit_step-{method}-nan-x0", lambda xp, m=method:
                 ssdops.implicit_step(image(xp), div(xp), 0.5, method=m, x0=image(xp, bad=math.nan)),
                 ValueError, "NaN or inf")
    # -1 * Laplacian is positive semi-definite: I - dt (-L) = I + dt L is indefinite for dt > 1/8-ish
    case("implicit_step-spectral-indefinite",
         lambda xp: ssdops.implicit_step(image(xp), -1.0 * lap(xp), 1.0), ValueError, "indefinite")
    case("implicit_step-spectral-not-laplacian",
         lambda xp: ssdops.implicit_step(image(xp), div(xp), 0.5, method="spectral"), ValueError, "laplacian")
    case("implicit_step-method", lambda xp: ssdops.implicit_step(image(xp), div(xp), 0.5, method="lu"),
         ValueError, "method")
    case("implicit_step-on_failure",
         lambda xp: ssdops.implicit_step(image(xp), div(xp), 0.5, on_failure="ignore"), ValueError, "on_failure")
    case("implicit_step-maxiter-0", lambda xp: ssdops.implicit_step(image(xp), div(xp), 0.5, maxiter=0),
         ValueError, "maxiter")
    case("implicit_step-tol-below-float32-floor", lambda xp: ssdops.implicit_step(
        image(xp, dtype="float32"), ssdops.divergence_form(image(xp, dtype="float32")), 0.5, tol=1e-8),
         ValueError, "tol")
    case("implicit_step-grid-mismatch", lambda xp: ssdops.implicit_step(image(xp, (5, 5)), div(xp), 0.5),
         ValueError, "grid")
    case("implicit_step-mixed-dtypes",
         lambda xp: ssdops.implicit_step(image(xp, dtype="float32"), div(xp), 0.5), TypeError, "dtype")
    case("implicit_step-not-an-operator", lambda xp: ssdops.implicit_step(image(xp), image(xp), 0.5),
         TypeError, "SSD")
    case("select_method-not-an-operator", lambda xp: ssdops.select_method(image(xp)), TypeError, "SSD")

    # --- diffusion processes (items 2, 7) ---------------------------------------------------------
    for T, match in ((math.inf, "finite"), (math.nan, "finite"), (-1.0, ">= 0")):
        for method in ("exact", "explicit", "implicit"):
            case(f"heat-{method}-T-{T}", lambda xp, T=T, m=method: ssdops.heat(image(xp), T, method=m),
                 ValueError, match)
    case("heat-method", lambda xp: ssdops.heat(image(xp), 1.0, method="crank-nicolson"), ValueError, "method")
    case("heat-steps-0", lambda xp: ssdops.heat(image(xp), 1.0, method="explicit", steps=0), ValueError, "steps")
    case("heat-explicit-unstable", lambda xp: ssdops.heat(image(xp), 1.0, method="explicit", steps=2),
         ValueError, "stability limit")
    case("heat-1d", lambda xp: ssdops.heat(image(xp, (5,)), 1.0), ValueError, "shape")
    case("heat-zero-length-axis", lambda xp: ssdops.heat(image(xp, (0, 5)), 1.0), ValueError, "zero-length")
    for scheme in ("explicit", "semi-implicit"):
        kw = dict(steps=2, lam=0.2, scheme=scheme)
        for dt, match in ((-0.2, ">= 0"), (math.nan, "finite"), (math.inf, "finite")):
            case(f"perona_malik-{scheme}-dt-{dt}", lambda xp, dt=dt, kw=kw: ssdops.perona_malik(
                image(xp), dt=dt, **kw), ValueError, match)
        for lam in (0.0, -0.2, math.nan):
            case(f"perona_malik-{scheme}-lam-{lam}", lambda xp, lam=lam, kw=kw: ssdops.perona_malik(
                image(xp), dt=0.1, **{**kw, "lam": lam}), ValueError, "lam")
        case(f"perona_malik-{scheme}-nan-u0", lambda xp, kw=kw: ssdops.perona_malik(
            image(xp, bad=math.nan), dt=0.1, **kw), ValueError, "NaN or inf")
    case("perona_malik-semi-implicit-nan-u0-unchecked", lambda xp: ssdops.perona_malik(
        image(xp, bad=math.nan), steps=2, dt=0.1, lam=0.2, scheme="semi-implicit", check_finite=False),
         ValueError, "NaN or inf")
    case("perona_malik-ghost-neumann", lambda xp: ssdops.perona_malik(
        image(xp), steps=2, dt=0.1, lam=0.2, bc="neumann", ghost_gamma=0.0), ValueError, "ghost_gamma")
    case("perona_malik-scheme", lambda xp: ssdops.perona_malik(
        image(xp), steps=2, dt=0.1, lam=0.2, scheme="implicit"), ValueError, "scheme")
    case("perona_malik-steps", lambda xp: ssdops.perona_malik(image(xp), steps=-1, dt=0.1, lam=0.2),
         ValueError, "steps")
    case("perona_malik-diffusivity", lambda xp: ssdops.perona_malik(
        image(xp), steps=2, dt=0.1, lam=0.2, diffusivity="huber"), ValueError, "diffusivity")
    for checked in (True, False):
        kw = dict(check_stable=checked)
        case(f"perona_malik_step-ghost-neumann-checked-{checked}", lambda xp, kw=kw: ssdops.perona_malik_step(
            image(xp), dt=0.1, lam=0.2, bc="neumann", ghost_gamma=0.0, **kw), ValueError, "ghost_gamma")
        for lam in (0.0, -0.2, math.nan):
            case(f"perona_malik_step-lam-{lam}-checked-{checked}",
                 lambda xp, lam=lam, kw=kw: ssdops.perona_malik_step(image(xp), dt=0.1, lam=lam, **kw),
                 ValueError, "lam")
        case(f"perona_malik_step-diffusivity-checked-{checked}", lambda xp, kw=kw: ssdops.perona_malik_step(
            image(xp), dt=0.1, lam=0.2, diffusivity="huber", **kw), ValueError, "diffusivity")
    # on a constant image gamma = g(0) = 1 everywhere: the stability limit is 1/4
    for dt, match in ((-0.2, ">= 0"), (math.nan, "finite"), (0.3, "stability limit")):
        case(f"perona_malik_step-checked-dt-{dt}", lambda xp, dt=dt: ssdops.perona_malik_step(
            xp.zeros(GRID, dtype=xp.float64), dt=dt, lam=0.2), ValueError, match)
    case("perona_malik_operator-lam-0", lambda xp: ssdops.perona_malik_operator(image(xp), lam=0.0),
         ValueError, "lam")

    # --- analysis and testing helpers -------------------------------------------------------------
    for name in ("row_sums", "smoothing_level", "split_zero_mean", "is_symmetric", "spectrum"):
        case(f"{name}-not-an-operator", lambda xp, f=getattr(ssdops, name): f(image(xp)),  # noqa: B008 - bound now
             TypeError, "SSD")
    case("spectrum-which", lambda xp: ssdops.spectrum(lap(xp), which="XX"), ValueError, "which")
    case("spectrum-k-0", lambda xp: ssdops.spectrum(lap(xp), k=0), ValueError, "k must")
    case("dot_test-mixed-dtypes", lambda xp: ssdops.dot_test(
        lambda v: v, lambda v: v, image(xp, dtype="float32"), image(xp)), TypeError, "dtype")
    return c


CASES = _cases()


@pytest.mark.parametrize("generic", [False, True], ids=["fast-paths", "generic"])
@pytest.mark.parametrize("call,error,match", CASES)
def test_bad_argument_same_exception_everywhere(xp, generic, call, error, match):
    with backends.use_generic(generic), pytest.raises(error, match=match):
        call(xp)


def test_every_public_function_has_a_case():
    """The audit: every public function (not class, constant, exception or submodule) of ``ssdops`` has
    at least one bad-argument case, or is listed here with the reason it has none."""
    import inspect

    elsewhere = {
        # metrics and interop are other modules' checks (test_diffnet_safety, test_interop)
        "add_noise", "relative_l2", "as_pylops", "aslinearoperator",
        "as_deepinv", "heat_physics", "perona_malik_physics",  # their bad arguments: test_deepinv
        "as_lineax", "as_odl",  # their bad arguments: test_lineax, test_odl
        "to_numpy",  # accepts any array; its TypeError for an unreadable library is tested in test_backends
        "spectral_radius",  # = spectrum(op, k=1): its cases are spectrum's
    }
    functions = {name for name in ssdops.__all__
                 if inspect.isfunction(getattr(ssdops, name)) and name not in elsewhere}
    covered = {p.id.split("-")[0] for p in CASES}
    assert functions - covered == set()
