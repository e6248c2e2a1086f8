"""Build-time checks that the API reference covers the public API and that complete docstrings stay complete.

1. Every name in ``__all__`` of :data:`PUBLIC_MODULES` must be listed in a page of ``docs/api/`` (an
   ``autosummary`` entry, a ``.. data::`` / ``.. autodata::`` directive for constants, or a
   ``.. module::`` / ``.. automodule::`` directive for a module). A missing name is a Sphinx warning, so
   ``-W`` fails the build.
2. numpydoc validates the docstrings of the names in :data:`COMPLETE` only (``validation_exclude``); for
   those, this extension also requires an ``Examples`` section, which numpydoc does not check. ``Raises``,
   ``Notes`` and ``References`` appear where they have content (no "Never raises" padding; the paper is
   cited once per module). A name joins :data:`COMPLETE` when its docstring passes; it never leaves it. The
   kernel protocols of ``ssdops.backends`` are not in it: their docstrings give the calling convention and
   point to the public functions.
"""
from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

#: The modules whose ``__all__`` is the public API documented by the reference.
PUBLIC_MODULES = ("ssdops", "ssdops.diffusivity", "ssdops.backends", "diffnet_torch", "diffnet_jax")

#: Names (fully qualified, as autosummary documents them) whose docstrings have every numpydoc section.
COMPLETE: frozenset[str] = frozenset({
    "diffnet_jax.Conv",
    "diffnet_jax.DiffNet",
    "diffnet_jax.DiffusionLayer",
    "diffnet_jax.FilterEstimator",
    "diffnet_jax.LinearDiffusionLayer",
    "diffnet_jax.LinearDiffusionNet",
    "diffnet_jax.build_model",
    "diffnet_jax.count_parameters",
    "diffnet_jax.load_state_dict",
    "diffnet_jax.load_weights",
    "diffnet_jax.save_weights",
    "diffnet_jax.state_dict",
    "diffnet_torch.DiffNet",
    "diffnet_torch.DiffusionLayer",
    "diffnet_torch.FilterEstimator",
    "diffnet_torch.LinearDiffusionLayer",
    "diffnet_torch.LinearDiffusionNet",
    "diffnet_torch.UNet",
    "diffnet_torch.build_model",
    "diffnet_torch.count_parameters",
    "diffnet_torch.load_weights",
    "diffnet_torch.save_weights",
    "ssdops.ConvergenceError",
    "ssdops.ConvergenceWarning",
    "ssdops.SSD",
    "ssdops.Tags",
    "ssdops.add_noise",
    "ssdops.as_pylops",
    "ssdops.aslinearoperator",
    "ssdops.backends",
    "ssdops.backends.BackendImportWarning",
    "ssdops.backends.is_generic",
    "ssdops.backends.library_of",
    "ssdops.backends.lookup",
    "ssdops.backends.register",
    "ssdops.backends.registered",
    "ssdops.backends.use_generic",
    "ssdops.diffusivity",
    "ssdops.diffusivity.charbonnier",
    "ssdops.diffusivity.linear",
    "ssdops.diffusivity.perona_malik",
    "ssdops.diffusivity.perona_malik_exp",
    "ssdops.diffusivity.resolve",
    "ssdops.diffusivity.total_variation",
    "ssdops.divergence",
    "ssdops.divergence_form",
    "ssdops.dot_test",
    "ssdops.explicit_step",
    "ssdops.filter_step",
    "ssdops.from_scipy",
    "ssdops.gradient",
    "ssdops.heat",
    "ssdops.identity",
    "ssdops.implicit_step",
    "ssdops.is_symmetric",
    "ssdops.laplacian",
    "ssdops.perona_malik",
    "ssdops.perona_malik_operator",
    "ssdops.perona_malik_step",
    "ssdops.psnr",
    "ssdops.relative_l2",
    "ssdops.row_sums",
    "ssdops.select_method",
    "ssdops.smoothing_level",
    "ssdops.spectral_radius",
    "ssdops.spectrum",
    "ssdops.split_zero_mean",
    "ssdops.ssd_from_filters",
    "ssdops.stable_dt",
    "ssdops.to_numpy",
    "ssdops.to_scipy",
})

#: Sections numpydoc's validation does not check but the project requires of a complete docstring.
REQUIRED_SECTIONS = ("Examples",)

_ENTRY = re.compile(r"^\s+(~?[A-Za-z_][\w.]*)\s*$")
_DATA = re.compile(r"^\.\.\s+(?:(?:auto)?data|(?:auto)?module)::\s+([\w.]+)")
_CURRENT = re.compile(r"^\.\.\s+currentmodule::\s+([\w.]+)")
_AUTOSUMMARY = re.compile(r"^\.\.\s+autosummary::")


def public_names():
    """``{module.name}`` of every public name: the ``__all__`` of each module in :data:`PUBLIC_MODULES`."""
    names = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        names.update(f"{module_name}.{name}" for name in module.__all__)
    return names


def validation_exclude():
    """numpydoc's ``numpydoc_validation_exclude``: one pattern matching every name not in :data:`COMPLETE`."""
    complete = "|".join(re.escape(name) for name in sorted(COMPLETE))
    return {rf"^(?!(?:{complete})$)"}


def documented_names(api_dir):
    """The fully qualified names listed by the reStructuredText pages under ``api_dir``."""
    found = set()
    for page in sorted(Path(api_dir).glob("*.rst")):
        module = None
        in_autosummary = False
        for line in page.read_text().splitlines():
            if match := _CURRENT.match(line):
                module = match.group(1)
                continue
            if match := _DATA.match(line):
                name = match.group(1)
                found.add(name if module is None or name.startswith(module + ".") else f"{module}.{name}")
                continue
            if _AUTOSUMMARY.match(line):
                in_autosummary = True
                continue
            if in_autosummary:
                if line.strip() and not line.startswith((" ", "\t")):
                    in_autosummary = False
                elif (match := _ENTRY.match(line)) and not line.strip().startswith(":"):
                    name = match.group(1).lstrip("~")
                    found.add(f"{module}.{name}" if module else name)
    return found


def check_coverage(app):
    """Warn about every public name that no API page lists."""
    documented = documented_names(Path(app.srcdir) / "api")
    for name in sorted(public_names() - documented):
        logger.warning("public name %s is not in the API reference (docs/api/*.rst)", name,
                       type="api_coverage")


def remove_stale_pages(app, config):
    """Delete generated API pages of names no page lists any more (autosummary never deletes them, and a
    stale page is a "not in any toctree" warning)."""
    generated = Path(app.srcdir) / "api" / "generated"
    listed = documented_names(Path(app.srcdir) / "api")
    for page in generated.glob("*.rst"):
        if page.stem not in listed:
            page.unlink()


def check_sections(app, what, name, obj, options, lines):
    """For a name in :data:`COMPLETE`, warn about each required section its docstring lacks."""
    if name not in COMPLETE:
        return
    from numpydoc.docscrape import NumpyDocString

    doc = NumpyDocString(inspect.getdoc(obj) or "")
    required = REQUIRED_SECTIONS
    missing = [section for section in required if not doc[section]]
    if missing:
        logger.warning("docstring of %s lacks the section(s) %s", name, ", ".join(missing), type="api_coverage")


def setup(app):
    app.connect("config-inited", remove_stale_pages)
    app.connect("builder-inited", check_coverage)
    app.connect("autodoc-process-docstring", check_sections, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
