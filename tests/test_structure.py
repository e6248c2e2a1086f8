"""The package's structure as promises: structure tags, immutable operators, the dependency rule.

The rule (README, "Architecture"): backends import only the private kernel module of the core
(``ssdops._kernels``, and ``ssdops._array``), never its public layers; the core imports no framework at import
time; ``ssdops.diffnet``, ``ssdops.tools`` and the DiffNet packages use the public API only.
"""
import ast
import pathlib
import re
import subprocess
import sys

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


@pytest.mark.parametrize("path",
                         sorted((REPO / "ssdops").glob("*.py")) + sorted((REPO / "ssdops" / "solvers").glob("*.py")),
                         ids=lambda p: p.name)
def test_core_imports_no_framework_at_import_time(path):
    tree = ast.parse(path.read_text())
    module_level = _top_level(tree)
    for name, node in _imports(path):
        if id(node) in module_level:
            assert name.split(".")[0] not in FRAMEWORKS, (path.name, name)


@pytest.mark.parametrize("path",
                         sorted((REPO / "ssdops" / "diffnet").glob("*.py"))
                         + sorted((REPO / "ssdops" / "tools").glob("*.py"))
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
    assert (L + N).tags == ssdops.Tags(symmetric=True, laplacian=None,  # two boundary conditions: no DCT/DST
                                       definiteness="negative_definite")  # but a sum of one sign
    G = ssdops.divergence_form(np.ones((4, 5)) + np.arange(5.0))
    assert G.tags == ssdops.Tags(symmetric=True, definiteness="negative_semidefinite")
    assert (G + L).tags.laplacian is None and (G + L).tags.definiteness == "negative_definite"
    assert (L * np.float64(2.0)).tags.laplacian == ("dirichlet", 2.0)
    zero_d = L * np.asarray(2.0)  # a 0-d array may be traced: symmetric, no known scale
    assert zero_d.tags == ssdops.Tags(symmetric=True)
    general = ssdops.SSD(np.ones((5, 4, 5)))
    assert general.tags == ssdops.Tags() and (general + L).tags.symmetric is None
    assert ssdops.select_method(2.0 * L) == "spectral" and ssdops.select_method(G) == "cg"


def test_definiteness_rules():
    D, N = ssdops.laplacian((4, 5), bc="dirichlet"), ssdops.laplacian((4, 5), bc="neumann")
    Id = ssdops.identity((4, 5))
    assert (D.tags.definiteness, N.tags.definiteness) == ("negative_definite", "negative_semidefinite")
    assert Id.tags.definiteness == "positive_definite"
    assert (-N).tags.definiteness == (-2.0 * N).tags.definiteness == "positive_semidefinite"
    assert (3 * D).tags.definiteness == (D * 0.5).tags.definiteness == "negative_definite"
    assert (0.0 * D).tags.definiteness is None and (D * np.asarray(2.0)).tags.definiteness is None
    assert (Id - 0.1 * N).tags.definiteness == "positive_definite"
    assert (Id - 0.0 * N).tags.definiteness is None  # 0 * N claims nothing, so neither does the sum
    assert (Id + 0.1 * N).tags.definiteness is None  # opposite signs
    assert (N - D).tags.definiteness is None and (N + D).tags.definiteness == "negative_definite"
    G = ssdops.divergence_form(np.ones((4, 5)) + np.arange(5.0))
    assert G.tags.definiteness == "negative_semidefinite" and (Id - 0.5 * G).tags.definiteness == "positive_definite"
    ssd = ssdops.SSD(np.ones((5, 4, 5)))
    assert ssd.tags.definiteness is None and (ssd + N).tags.definiteness is None
    assert ssd.T.tags == ssd.tags and G.T.tags == G.tags
    tagged = ssdops.SSD(np.ones((5, 4, 5)), tags=ssdops.Tags(definiteness="negative_semidefinite"))
    assert tagged.T.tags.definiteness == "negative_semidefinite"  # x^T A^T x = x^T A x
    with pytest.raises(ValueError, match="definiteness must be"):
        ssdops.Tags(definiteness="definite")
    # the eigenvalues agree with every claim above
    for op, sign, strict in ((D, -1, True), (N, -1, False), (Id - 0.1 * N, 1, True), (G, -1, False)):
        eig = np.linalg.eigvalsh(ssdops.to_scipy(op).toarray()) * sign
        assert eig.min() > 1e-12 if strict else eig.min() > -1e-12


def test_an_operator_made_by_a_transform_carries_no_tags():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    L = ssdops.divergence_form(jnp.ones((2, 4, 5)), bc="dirichlet")
    assert L.tags.definiteness == "negative_semidefinite"
    u = jnp.ones((2, 4, 5))
    seen = []

    def loss(op):
        seen.append(op.tags)
        return jnp.sum(op @ u)

    grad = jax.grad(loss)(L)
    assert grad.tags == ssdops.Tags() and seen == [ssdops.Tags()]
    assert jax.jit(lambda op: op)(L).tags == ssdops.Tags()
    assert jax.vmap(lambda op: op)(L).tags == ssdops.Tags()
    _, tangent = jax.jvp(lambda op: op, (L,), (L,))
    assert tangent.tags == ssdops.Tags()
    leaves, tree = jax.tree_util.tree_flatten(L)
    assert jax.tree_util.tree_unflatten(tree, leaves).tags == ssdops.Tags()
    torch = pytest.importorskip("torch")
    T = ssdops.divergence_form(torch.ones(2, 4, 5, dtype=torch.float64))
    assert torch.func.vmap(lambda op: op)(T).tags == ssdops.Tags()
    grad = torch.func.grad(lambda op: torch.sum(op @ torch.ones(2, 4, 5, dtype=torch.float64)))(T)
    assert grad.tags == ssdops.Tags() and grad.diagonals.shape == T.diagonals.shape


def test_tags_and_operators_are_immutable():
    L = ssdops.laplacian((3, 3))
    with pytest.raises(AttributeError):
        L.tags = ssdops.Tags()
    with pytest.raises(AttributeError):
        L.diagonals = L.diagonals
    with pytest.raises(AttributeError):
        L._laplacian = ("neumann", 1.0)  # no attribute may be added after construction
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError
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


# --- issue 24: one adapter per library ---------------------------------------------------------------------
CORE_FRAMEWORKS = {"torch", "jax", "cupy", "dask"}
#: The core: ssdops/*.py (the adapters to other libraries, ssdops/interop/, may name what they adapt to).
CORE = sorted((REPO / "ssdops").glob("*.py"))
_FRAMEWORK_HELPER = re.compile(r"is_(torch|jax|cupy|dask)_")


def _error_message_strings(tree):
    """ids of the string constants inside ``raise`` statements and ``warnings.warn`` calls (messages may
    name a framework)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) or (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "warn"):
            ids |= {id(n) for n in ast.walk(node) if isinstance(n, ast.Constant)}
    return ids


def _framework_mentions(path):
    tree = ast.parse(path.read_text())
    messages = _error_message_strings(tree)
    found = []
    for name, node in _imports(path):
        if name.split(".")[0] in CORE_FRAMEWORKS or _FRAMEWORK_HELPER.search(name.rsplit(".", 1)[-1]):
            found.append(f"line {node.lineno}: import {name}")
    for node in ast.walk(tree):
        word = (node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name)
                else node.name if isinstance(node, ast.alias) else None)
        if word is not None and (word in CORE_FRAMEWORKS or _FRAMEWORK_HELPER.match(word)):
            found.append(f"line {node.lineno}: {word}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in messages \
                and node.value.strip().lower() in CORE_FRAMEWORKS:
            found.append(f"line {node.lineno}: {node.value!r}")
    return found


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_the_core_names_no_framework(path):
    """What a framework needs lives in its adapter (backends/_<library>.py): no import of, attribute or
    name equal to, or string equal to torch, jax, cupy, dask in the core (error messages may name them)."""
    assert _framework_mentions(path) == []


def test_the_framework_check_finds_a_mention(tmp_path):
    """The check above can fail: each kind of mention is found."""
    probe = REPO / "ssdops" / "_probe_for_test_structure.py"
    source = ("import torch\nfrom array_api_compat import is_dask_array\nimport sys\n"
              "x = sys.modules['jax']\ny = sys.modules.get('cupy').ndarray\nraise ValueError('torch')\n")
    probe.write_text(source)
    try:
        found = _framework_mentions(probe)
    finally:
        probe.unlink()
    assert sorted({int(f.split(":")[0].split()[1]) for f in found}) == [1, 2, 4, 5], found  # not the message


def _module_name(path):
    parts = path.relative_to(REPO).with_suffix("").parts
    if parts[0] == "backends":
        parts = ("ssdops",) + parts
    return ".".join(p for p in parts if p != "__init__")


def _graph(paths, *, module_level_only=()):
    """Module -> the ssdops modules it imports (at any level; at module level only for ``module_level_only``)."""
    names = {_module_name(p): p for p in paths}
    graph = {}
    for name, path in names.items():
        tree = ast.parse(path.read_text())
        top = _top_level(tree)
        edges = set()
        for imported, node in _imports(path):
            if name in module_level_only and id(node) not in top:
                continue
            target = next((m for m in (imported, imported.rsplit(".", 1)[0]) if m in names), None)
            if target is not None and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph):
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_the_core_has_no_import_circle():
    """No circle among the core's modules, counting imports inside functions too (``_kernels -> _validate ->
    ssd -> _kernels`` was one). The registry loads the adapters on demand (a plugin's import of the core is
    no circle): only its module-level imports count."""
    paths = [p for p in sorted((REPO / "ssdops").glob("*.py")) + sorted((REPO / "ssdops" / "solvers").glob("*.py"))
             if p.name != "__init__.py"] + sorted((REPO / "backends").glob("*.py"))
    graph = _graph(paths, module_level_only={"ssdops.backends"})
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]  # the search finds one


def _python_files():
    skip = {".ci-venv", ".git", "build", "node_modules", ".mypy_cache", ".ruff_cache"}
    return [p for p in REPO.rglob("*.py") if not skip & set(p.relative_to(REPO).parts)]


def test_every_use_generic_is_a_with_block():
    """``use_generic()`` is a context manager: a bare call does nothing (a test once compared the fast path
    with itself so). Python files by their syntax tree, Markdown and reST by their lines."""
    bare = []
    for path in _python_files():
        tree = ast.parse(path.read_text())
        in_with = {id(item.context_expr) for node in ast.walk(tree) if isinstance(node, (ast.With, ast.AsyncWith))
                   for item in node.items}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == \
                    "use_generic" and id(node) not in in_with:
                bare.append(f"{path.relative_to(REPO)}:{node.lineno}")
        for node in ast.walk(tree):  # doctests inside docstrings
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                bare += [f"{path.relative_to(REPO)}:{node.lineno} (docstring)" for line in node.value.splitlines()
                         if re.search(r"use_generic\(", line) and ">>>" in line and "with " not in line]
    for path in [REPO / "README.md", *(REPO / "docs").rglob("*.md"), *(REPO / "docs").rglob("*.rst")]:
        if path.exists():
            bare += [f"{path.relative_to(REPO)}:{i}" for i, line in enumerate(path.read_text().splitlines(), 1)
                     if re.match(r"\s*(>>> |\.\.\. )?(ssdops\.)?(backends\.)?use_generic\(", line)]
    assert bare == []


def test_importing_the_repository_folder_as_backends_fails_clearly():
    """From a source checkout (the repository root on sys.path) ``import backends`` would be a second
    registry: it raises ImportError naming ``ssdops.backends``."""
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); import backends"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "'ssdops.backends'" in result.stderr, result.stderr


def _module_assignments(paths, name):
    return [f"{p.relative_to(REPO)}" for p in paths for node in ast.parse(p.read_text()).body
            if isinstance(node, (ast.Assign, ast.AnnAssign))
            and name in [t.id for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                         if isinstance(t, ast.Name)]]


@pytest.mark.parametrize("name", ["TASKS", "PAPER_PM_ARGS", "FIVE_POINT", "GRID_LETTERS", "LIBRARIES",
                                  "BOUNDARY_CONDITIONS"])
def test_each_constant_is_defined_once(name):
    paths = [p for p in _python_files() if p.relative_to(REPO).parts[0] in ("ssdops", "backends")]
    assert len(_module_assignments(paths, name)) == 1, _module_assignments(paths, name)


def test_the_library_table_is_read_by_bench_compare_and_the_tests():
    from conftest import KNOWN_LIBRARIES, LIBRARIES
    from ssdops.tools import bench, compare

    table = ssdops.backends.LIBRARIES
    assert bench.BACKENDS == tuple(n for n, row in table.items() if row.benchmarked)
    assert compare.FRAMEWORKS == tuple(f for row in table.values() for f in row.compared)
    assert set(LIBRARIES) <= set(KNOWN_LIBRARIES) == {n for n, row in table.items() if row.tested != "never"}
