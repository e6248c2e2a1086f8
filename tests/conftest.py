"""Fixtures, Hypothesis profiles and hooks; references and helpers live in tests/support.py and the
Hypothesis strategies in tests/strategies.py.

``xp`` is the one way a test gets an array namespace: numpy, array_api_strict, torch, jax (with
x64), and cupy where it imports and sees a GPU. A test leaves libraries out with
``@pytest.mark.skip_libraries("jax", reason=...)`` or expects them to fail with
``@pytest.mark.xfail_libraries("torch", reason=...)``. ``torch`` and ``jax`` give the framework
modules themselves, for tests of framework features (autograd, jax.grad).
"""
import functools
import importlib.util
import os

import pytest
from hypothesis import HealthCheck, settings

import support

settings.register_profile(
    "dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def _cupy_with_gpu():
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # a CUDA-less install raises from the runtime: no GPU to test on
        return False


def _table():
    from ssdops.backends import LIBRARIES as table  # the one library table

    return table


#: The ``xp`` libraries: the table's rows marked ``tested`` (``"gpu"`` ones only with a GPU to test on).
LIBRARIES = tuple(name for name, row in _table().items()
                  if row.tested == "always" or (row.tested == "gpu" and _cupy_with_gpu()))
KNOWN_LIBRARIES = tuple(name for name, row in _table().items() if row.tested != "never")


def _import(name):
    """The library ``name`` (skipping the test when it is not installed); JAX with x64 enabled."""
    module = pytest.importorskip(name)
    if name == "jax":
        module.config.update("jax_enable_x64", True)
    return module


def _namespace(name):
    """The array namespace of library ``name``: array_api_compat's wrapper where the library's own
    namespace is not the standard one."""
    module = _import(name)
    if name in ("numpy", "torch", "cupy"):
        import array_api_compat

        return array_api_compat.array_namespace(module.empty(0))
    if name == "jax":
        import jax.numpy

        return jax.numpy
    return module


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "skip_libraries(*names, reason): skip the test's xp parametrizations for these libraries",
    )
    config.addinivalue_line(
        "markers",
        "xfail_libraries(*names, reason, raises=None): the test is expected to fail for these "
        "libraries (strict: an unexpected pass fails)",
    )


def pytest_collection_modifyitems(config, items):
    """Turn skip_libraries / xfail_libraries into skip / xfail marks on the matching ``xp`` items."""
    for item in items:
        for marker in item.iter_markers():
            if marker.name not in ("skip_libraries", "xfail_libraries"):
                continue
            unknown = set(marker.args) - set(KNOWN_LIBRARIES)
            if not marker.args or unknown or not marker.kwargs.get("reason"):
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.{marker.name} needs library names out of "
                    f"{KNOWN_LIBRARIES} and a reason=...; got {marker.args}, {marker.kwargs}"
                    + (f" (unknown: {sorted(unknown)})" if unknown else "")
                )
            callspec = getattr(item, "callspec", None)
            if callspec is None or "xp" not in callspec.params:
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{marker.name} needs the xp fixture")
            if callspec.params["xp"] not in marker.args:
                continue
            if marker.name == "skip_libraries":
                item.add_marker(pytest.mark.skip(reason=marker.kwargs["reason"]))
            else:
                item.add_marker(pytest.mark.xfail(reason=marker.kwargs["reason"],
                                                  raises=marker.kwargs.get("raises"), strict=True))


@pytest.fixture(params=LIBRARIES)
def xp(request):
    """The array namespace under test (numpy, array_api_strict, torch, jax with x64, cupy)."""
    return _namespace(request.param)


@pytest.fixture
def torch():
    """The torch module (the test is skipped without it)."""
    return _import("torch")


@pytest.fixture
def jax():
    """The jax module, with x64 enabled (the test is skipped without it)."""
    return _import("jax")


@pytest.fixture(params=["float32", "float64"])
def dtype_name(request):
    return request.param


@pytest.fixture
def property_check(request):
    """``property_check(xp, *strategies, fixed=())``: a decorator running its body now as a
    Hypothesis property (``support.property_check``) under this test's own database key."""
    return functools.partial(support.property_check, request.node.nodeid)
