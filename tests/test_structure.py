"""The package's structure as promises: structure tags, immutable operators, the dependency rule.

The rule (README, "Architecture"): backends import only the private kernel module of the core
(``ssdops._kernels``, and ``ssdops._array``), never its public layers; the core imports no framework at import
time; ``ssdops.diffnet``, ``ssdops.tools`` and the DiffNet packages use the public API only.
"""
import ast
import pathlib

import numpy as np
import pytest

import ssdops

REPO = pathlib.Path(__file__).resolve().parents[1]
CORE_PRIVATE = {"ssdops._kernels", "ssdops._array"}
FRAMEWORKS = {"torch", "jax", "cupy", "dask", "equinox", "optax", "pylops"}


def _imports(path):
    """Absolute module names imported by the file at ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    if path.parent.name == "backends" and path.parent.parent == REPO:
        package = "ssdops.backends"
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(a.name, node) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names += [(f"{base}.{a.name}" if base and not node.module else base, node) for a in node.names]
    return names


def _top_level(tree):
    """Import nodes executed at import time (module level, not inside functions)."""
    return {id(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}


@pytest.mark.parametrize("path", sorted((REPO / "backends").glob("_*.py")), ids=lambda p: p.name)
def test_backends_import_only_the_private_kernel_module(path):
    for name, _ in _imports(path):
        if name.startswith("ssdops") and not name.startswith("ssdops.backends"):
            assert name in CORE_PRIVATE or name.startswith("ssdops._kernels"), (path.name, name)


@pytest.mark.parametrize("path", sorted((REPO / "ssdops").glob("*.py")) + sorted((REPO / "ssdops" / "solvers").glob("*.py")),
                         ids=lambda p: p.name)
def test_core_imports_no_framework_at_import_time(path):
    tree = ast.parse(path.read_text())
    module_level = _top_level(tree)
    for name, node in _imports(path):
        if id(node) in module_level:
            assert name.split(".")[0] not in FRAMEWORKS, (path.name, name)


@pytest.mark.parametrize("path", sorted((REPO / "ssdops" / "diffnet").glob("*.py")) + sorted((REPO / "ssdops" / "tools").glob("*.py"))
                         + sorted((REPO / "diffnet_torch").glob("*.py")) + sorted((REPO / "diffnet_jax").glob("*.py")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_upper_layers_use_the_public_api(path):
    for name, _ in _imports(path):
        parts = name.split(".")
        if parts[0] == "ssdops" and len(parts) > 1 and parts[1] not in ("diffnet", "tools"):
            private = parts[1].startswith("_") and not parts[1].startswith("__")
            assert not private, (path.name, name)


# --------------------------------------------------------------------------- tags and immutability


def test_tags_are_set_at_construction_and_carried_by_the_algebra():
    L = ssdops.laplacian((4, 5), bc="dirichlet")
    assert L.tags == ssdops.Tags(symmetric=True, laplacian=("dirichlet", 1.0))
    assert (2.5 * L).tags.laplacian == ("dirichlet", 2.5)
    assert (L + 2.0 * L).tags.laplacian == ("dirichlet", 3.0)
    assert (L - L).tags.laplacian == ("dirichlet", 0.0)
    assert L.T.tags == L.tags
    N = ssdops.laplacian((4, 5), bc="neumann")
    assert (L + N).tags == ssdops.Tags(symmetric=True, laplacian=None)  # two boundary conditions: no DCT/DST
    G = ssdops.divergence_form(np.ones((4, 5)) + np.arange(5.0))
    assert G.tags == ssdops.Tags(symmetric=True) and (G + L).tags.laplacian is None
    assert (L * np.float64(2.0)).tags.laplacian == ("dirichlet", 2.0)
    zero_d = L * np.asarray(2.0)  # a 0-d array may be traced: symmetric, no known scale
    assert zero_d.tags == ssdops.Tags(symmetric=True)
    general = ssdops.SSD(np.ones((5, 4, 5)))
    assert general.tags == ssdops.Tags() and (general + L).tags.symmetric is None
    assert ssdops.select_method(2.0 * L) == "spectral" and ssdops.select_method(G) == "cg"


def test_tags_and_operators_are_immutable():
    L = ssdops.laplacian((3, 3))
    with pytest.raises(AttributeError):
        L.tags = ssdops.Tags()
    with pytest.raises(AttributeError):
        L.diagonals = L.diagonals
    with pytest.raises(AttributeError):
        L._laplacian = ("neumann", 1.0)  # no attribute may be added after construction
    with pytest.raises(Exception):
        L.tags.symmetric = False


def test_tags_keyword():
    d = np.ones((5, 3, 3))
    with pytest.raises(TypeError, match="either symmetric= or tags="):
        ssdops.SSD(d, symmetric=True, tags=ssdops.Tags())
    with pytest.raises(TypeError, match="ssdops.Tags"):
        ssdops.SSD(d, tags={"symmetric": True})
    assert ssdops.SSD(d, tags=ssdops.Tags(symmetric=False)).symmetric is False


# --------------------------------------------------------------------------- N-D type


@pytest.mark.parametrize("offsets, grid", [(ssdops.THREE_POINT, (6,)), (ssdops.FIVE_POINT, (3, 4)),
                                           (ssdops.SEVEN_POINT, (2, 3, 4)), (ssdops.TWENTY_SEVEN_POINT, (1, 3, 1))])
def test_grid_dimension_is_the_length_of_the_offsets(offsets, grid):
    op = ssdops.SSD(np.ones((2, len(offsets)) + grid), offsets)
    assert op.ndim == len(grid) and op.grid_shape == grid and op.batch_shape == (2,)
    assert ssdops.identity(grid).grid_shape == grid and ssdops.identity(grid).ndim == len(grid)
    u = np.arange(float(np.prod(grid))).reshape(grid)
    np.testing.assert_array_equal(ssdops.identity(grid) @ u, u)


def test_offsets_must_share_one_dimension():
    with pytest.raises(ValueError, match="one length d"):
        ssdops.SSD(np.ones((2, 3, 3)), ((0, 0), (1,)))
    with pytest.raises(ValueError, match="one length d"):
        ssdops.SSD(np.ones((1, 2, 2, 2, 2)), ((0, 0, 0, 0),))
    with pytest.raises(ValueError, match=r"expected shape \(\.\.\., 7, D, H, W\)"):
        ssdops.SSD(np.ones((5, 3, 3)), ssdops.SEVEN_POINT)
