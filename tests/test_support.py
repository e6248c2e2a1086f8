"""The test infrastructure itself: the library markers of the ``xp`` fixture and the Hypothesis
database key of each property (tests/conftest.py, tests/support.py)."""
import array_api_compat
import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase

from support import is_jax, run_property


@pytest.mark.skip_libraries("jax", reason="checks skip_libraries itself")
def test_skip_libraries_leaves_the_library_out(xp):
    assert not is_jax(xp)


@pytest.mark.xfail_libraries("numpy", reason="checks xfail_libraries itself", raises=AssertionError)
def test_xfail_libraries_expects_the_failure(xp):
    # strict: passing under numpy, or failing under any other library, fails the run
    assert not array_api_compat.is_numpy_namespace(xp)


def _fails_from(threshold):
    def body(x):
        assert x < threshold

    return body


def _first_example(node_id):
    """The first example ``run_property`` hands a passing body under ``node_id``: a replayed
    failure when the database holds one for that key."""
    seen = []
    run_property(node_id, np, st.integers(0, 10**6), seen.append)
    return seen[0]


def test_each_property_has_its_own_database_key():
    """Two properties with the same body code but different node ids save their failures under
    different keys, and each replays only its own failure."""
    database = InMemoryExampleDatabase()
    previous = settings.get_current_profile_name()
    settings.register_profile("database-key-check", settings.get_profile(previous), database=database)
    settings.load_profile("database-key-check")
    try:
        keys = []
        for node_id, threshold in (("tests/a.py::test_one[numpy]", 1000), ("tests/a.py::test_one[torch]", 2000)):
            before = {k for k, v in database.data.items() if v}
            with pytest.raises(AssertionError):
                run_property(node_id, np, st.integers(0, 10**6), _fails_from(threshold))
            keys.append({k for k, v in database.data.items() if v} - before)
        assert keys[0] and keys[1], keys
        assert not keys[0] & keys[1]
        # the shrunk failures: 1000 for the first node, 2000 for the second, and neither replays
        # into the other (with one shared key both would, smallest first)
        assert _first_example("tests/a.py::test_one[numpy]") == 1000
        assert _first_example("tests/a.py::test_one[torch]") == 2000
    finally:
        settings.load_profile(previous)
