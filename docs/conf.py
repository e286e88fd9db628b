"""Sphinx configuration of the romanxr documentation (``make docs``; tests build it with -W)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's romanxr
sys.path.insert(0, str(HERE / "_ext"))
# the notebooks are executed at build time by a kernel in a subprocess: it imports this
# checkout's romanxr, draws its figures inline (an inherited MPLBACKEND=Agg would show none),
# writes into a temporary folder and never asks a CRDS server; this process draws with Agg
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
import matplotlib  # noqa: E402

matplotlib.use("Agg")
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(HERE.parent), os.environ.get("PYTHONPATH", "")) if p
)
os.environ.setdefault("CRDS_SERVER_URL", "https://crds-offline.invalid")

import romanxr  # noqa: E402

project = "romanxr"
author = "the romanxr developers"
copyright = "romanxr developers, BSD-3-Clause"
release = version = romanxr.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "romanxr_docgen",
    "myst_nb",
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

# notebooks/*.ipynb, copied into generated/notebooks/ by romanxr_docgen, are executed on every
# build (on small simulated data, seconds each) so that the pages show their outputs; an
# exception or failed assert in a cell fails the build
nb_execution_mode = "force"
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
