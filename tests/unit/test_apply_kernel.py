"""apply_kernel: same results on numpy and dask, chunks reach the kernel in their own layout."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from romanxr.steps._common import apply_kernel

NRES, NY, NX = 3, 6, 8


def _inputs(chunked):
    data = np.arange(NRES * NY * NX, dtype=np.float32).reshape(NRES, NY, NX)
    cube = xr.DataArray(data, dims=("resultant", "y", "x"))
    column = xr.DataArray(np.arange(NX, dtype=np.float32) * 100, dims=("x",))
    plane = xr.DataArray(np.ones((NY, NX), np.float32), dims=("y", "x"))
    if chunked:
        cube = cube.chunk({"resultant": -1, "y": 3, "x": 4})
        column = column.chunk({"x": 4})
        plane = plane.chunk({"y": 3, "x": 4})
    return cube, column, plane


def _kernel(cube, column, plane, seen=None):
    if seen is not None:
        seen.append((cube.shape, cube.flags["C_CONTIGUOUS"], column.shape, plane.shape))
    total = cube.sum(axis=0) + column + plane
    return total, cube * 2


@pytest.mark.parametrize("chunked", [False, True])
def test_results_and_dims(chunked):
    cube, column, plane = _inputs(chunked)
    with dask.config.set(scheduler="sync"):
        total, doubled = apply_kernel(
            _kernel,
            [cube, column, plane],
            output_dims=[("y", "x"), ("resultant", "y", "x")],
            output_dtypes=[np.float32, np.float32],
        )
        assert total.dims == ("y", "x") and doubled.dims == ("resultant", "y", "x")
        assert isinstance(total.data, da.Array) == chunked
        expected = cube.values.sum(axis=0) + column.values + 1
        np.testing.assert_array_equal(total.values, expected)
        np.testing.assert_array_equal(doubled.values, cube.values * 2)


def test_dask_chunks_arrive_whole_and_in_stored_layout():
    cube, column, plane = _inputs(True)
    # chunks stored C-contiguous, as a file reader delivers them, must reach the kernel
    # unchanged: not transposed, not copied
    parts = [np.ascontiguousarray(cube.values[:, :, i : i + 4]) for i in (0, 4)]
    cube = cube.copy(data=da.concatenate([da.from_array(p, chunks=p.shape) for p in parts], 2))
    column = column.chunk({"x": 4})
    plane = plane.chunk({"y": NY, "x": 4})
    seen = []
    total, _ = apply_kernel(
        _kernel,
        [cube, column, plane],
        output_dims=[("y", "x"), ("resultant", "y", "x")],
        output_dtypes=[np.float32, np.float32],
        kwargs={"seen": seen},
    )
    assert not seen  # nothing computed while building
    with dask.config.set(scheduler="sync"):
        total.compute()
    assert len(seen) == 2
    for cube_shape, contiguous, column_shape, plane_shape in seen:
        assert cube_shape == (NRES, NY, 4) and contiguous
        assert column_shape == (4,) and plane_shape == (NY, 4)
