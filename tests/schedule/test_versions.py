"""romanxr.schedule relies on dask internals: pin the versions it is known to work with.

When a dask (or xarray) release outside the range appears, re-check the modules named in the
message (the tests of tests/schedule and tests/unit/test_refpix.py exercise them), then move
the bound.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import xarray as xr
from packaging.version import Version

from romanxr.schedule import chunk_anchors, clone

#: (oldest, newest) (year, month) of dask releases checked: dask._task_spec.DataNode exists
#: from 2024.12; 2026.8 is the version in the development environment.
DASK_KNOWN = ((2024, 12), (2026, 12))
#: xarray: Variable._data (romanxr.schedule.reads) behaves the same over this range.
XARRAY_KNOWN = ((2024, 6), (2026, 12))

DASK_MODULES = (
    "romanxr/schedule/regions.py (dask._task_spec.DataNode, dask.threaded.get on a raw graph), "
    "romanxr/schedule/graph.py (HighLevelGraph layers of legacy tuple tasks, graph_manipulation"
    ".clone keeping rechunk names, to_delayed(optimize_graph=False)) and "
    "romanxr/schedule/banded.py"
)


def _year_month(version: str) -> tuple[int, int]:
    v = Version(version)
    return v.major, v.minor


def test_dask_is_a_version_the_internals_are_known_to_work_with():
    got = _year_month(dask.__version__)
    low, high = DASK_KNOWN
    assert low <= got <= high, (
        f"dask {dask.__version__} is outside the checked range {low}..{high}: re-check "
        f"{DASK_MODULES}, then update DASK_KNOWN in {__file__}"
    )


def test_xarray_is_a_version_the_reference_reads_are_known_to_work_with():
    got = _year_month(xr.__version__)
    low, high = XARRAY_KNOWN
    assert low <= got <= high, (
        f"xarray {xr.__version__} is outside the checked range {low}..{high}: re-check "
        f"romanxr/schedule/reads.py (Variable._data), then update XARRAY_KNOWN in {__file__}"
    )


def test_the_dask_internals_used_are_there():
    from dask._task_spec import DataNode

    assert DataNode("k", np.ones(2)).key == "k"
    x = da.ones((4, 6), chunks=(2, 3)) + 1
    twin = clone(x).rechunk((2, -1))
    # a clone shares no task with the original: reading it holds none of x's chunks
    assert not set(twin.__dask_graph__()) & set(x.__dask_graph__())
    np.testing.assert_array_equal(twin.compute(), x.compute())
    anchors = chunk_anchors(x)
    assert anchors.shape == x.numblocks and anchors[1, 0].key == (x.name, 1, 0)
