"""Sphinx configuration of the romanxr documentation (``make docs``; tests build it with -W)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's romanxr
sys.path.insert(0, str(HERE / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")

import romanxr  # noqa: E402

project = "romanxr"
author = "the romanxr developers"
copyright = "romanxr developers, BSD-3-Clause"
release = version = romanxr.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "romanxr_docgen",
]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
templates_path: list[str] = []
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpy-style docstrings carry the types
autodoc_default_options = {"show-inheritance": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True
napoleon_use_rtype = False

html_theme = "alabaster"
html_title = f"romanxr {release}"
html_static_path = ["_static"]
html_css_files = ["romanxr.css"]
# "--save-intermediate" must stay two hyphens in parameter tables and prose
smartquotes = False
