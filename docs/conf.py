"""Sphinx configuration of the ssdops documentation.

Build (from the repository root; no network is used):

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Environment variables for quicker builds (the tests use them):

- ``SSDOPS_DOCS_EXAMPLES``: a regular expression; only gallery scripts whose path matches it are run
  (default: every ``plot_*.py``). The others are rendered without their output.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import ssdops

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "ssdops"
author = "ssdops developers"
copyright = "ssdops developers"
release = ssdops.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax shipped in _static: the formulas render without network
    "sphinx.ext.doctest",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "api_coverage",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/README.rst", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "auto_examples/*.md5"]
root_doc = "index"
default_role = "py:obj"
nitpicky = False

# --- no network at build time --------------------------------------------------------------------------
# Cross-references to numpy / scipy / torch documentation would need their intersphinx inventories,
# fetched over the network: the site is built offline, so none are configured.
intersphinx_mapping: dict = {}

# --- autodoc / autosummary -----------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"        # the numpydoc Parameters sections say the types
add_module_names = False

# --- numpydoc ------------------------------------------------------------------------------------------
numpydoc_show_class_members = False     # the class template lists members through autosummary
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_attributes_as_param_list = False
# Validation: every check numpydoc has (but the four below), for the public names whose docstrings are
# complete: api_coverage.COMPLETE (docs/_ext/api_coverage.py), which also requires an Examples section.
# That set only grows; every other name is not validated yet.
from api_coverage import validation_exclude  # noqa: E402

numpydoc_validation_checks = {
    "all",
    "GL01",   # summary on the line after the opening quotes: the project writes it on the first line
    "SS05",   # summary in the infinitive ("Return ..."): the project's summaries say what the result is
    "ES01",   # an extended summary is welcome, not required
    "SA04",   # See Also entries without a description are fine
    "RT02",   # the first line of a Returns entry may be a name
}  # "all" plus codes = every check except those codes
numpydoc_validation_exclude = validation_exclude()

# --- sphinx-gallery ------------------------------------------------------------------------------------
#: Gallery scripts written against an API that has not landed yet, and what they wait for. They are left
#: out of the gallery (neither run nor shown) until it lands: then delete the entry.
PENDING_EXAMPLES = {}
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": os.environ.get("SSDOPS_DOCS_EXAMPLES", r"/plot_"),
    "ignore_pattern": "|".join([r"__init__\.py"] + [re.escape(name) for name in PENDING_EXAMPLES]),
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "gallery_order.GalleryOrder",
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    "doc_module": ("ssdops", "diffnet_torch", "diffnet_jax"),
    "backreferences_dir": "api/generated/backreferences",
    "reference_url": {},
    "min_reported_time": 0,
    "write_computation_times": True,
}

# --- HTML ----------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"ssdops {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_end": ["navbar-icon-links"],
    "icon_links": [],
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None
