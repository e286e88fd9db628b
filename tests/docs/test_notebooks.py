"""The committed notebooks: the five expected, each stripped of outputs.

They are executed once per test run, by the documentation build (myst-nb renders them into the
site with their outputs): ``tests/docs/test_docs_build.py`` fails on a cell that raises or a
failed ``assert`` (the build runs with -W) and checks the executed notebooks' outputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

nbformat = pytest.importorskip("nbformat")


def test_there_are_six_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert names == [
        "01_quickstart.ipynb",
        "02_tutorial_exercise.ipynb",
        "03_out_of_core.ipynb",
        "04_compare_romancal.ipynb",
        "05_whole_exposure.ipynb",
        "06_catalog.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: outputs are committed; strip them"
            assert cell.execution_count is None, f"{path.name}: execution counts committed"
