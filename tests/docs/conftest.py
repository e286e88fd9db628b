"""The documentation site, built once per test session for every test that reads it.

The build (Sphinx with -W, executing the notebooks) is the most expensive thing the suite
does, so it must never run twice. Its tests carry ``xdist_group("docs_build")`` and live in one
module (``make test`` distributes by module), and the fixture builds under a file lock in the
folder all xdist workers of the session share: a worker that gets there second reads the site
the first one built instead of building its own, whatever the distribution mode.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.docs._site import build_once

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _session_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every xdist worker of this session shares (the base temp without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _build(root: Path) -> int:
    """``make docs`` into ``root/html``; the executed notebooks land in ``root/jupyter_execute``."""
    from sphinx.cmd.build import build_main

    saved = dict(os.environ)
    # the notebooks write only into this folder and never reach the network
    os.environ["ROMANXR_NB_DIR"] = str(root / "notebook-files")
    os.environ["CRDS_SERVER_URL"] = "https://crds-offline.invalid"
    try:
        # -W: any warning (a broken docstring, a missing page, a bad reference, a notebook
        # cell that raises) fails the build
        return build_main(["-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(root / "html")])
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The HTML site, built once per session with -W; the executed notebooks lie in
    ``jupyter_execute`` beside it (myst-nb's folder)."""
    root = _session_folder(tmp_path_factory) / "docs-site"
    code = build_once(root, _build)
    assert code == 0, "sphinx-build -W failed; run `make docs` to see the warnings"
    return root / "html"
