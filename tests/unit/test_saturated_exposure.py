"""The fully-saturated short-circuit: the check and the zeroed Level-2 image."""

from __future__ import annotations

import copy

import dask
import numpy as np
import pytest
import xarray as xr

from romanxr.dq import GroupFlag, PixelFlag
from romanxr.errors import ExposureError
from romanxr.steps.saturated_exposure import (
    SKIPPED_AFTER_SATURATION,
    flag_fully_saturated,
    fully_saturated,
    is_fully_saturated,
    saturated_image,
)
from tests.unit._image_factories import raise_on_compute

NRES, NY, NX = 3, 12, 14
SAT = int(GroupFlag.SATURATED)


def make_ramp(groupdq=SAT, pixeldq=0, chunks=None):
    rng = np.random.default_rng(3)
    data = rng.uniform(60000, 65000, (NRES, NY, NX)).astype(np.float32)
    gdq = np.full((NRES, NY, NX), groupdq, np.uint8)
    pdq = np.full((NY, NX), pixeldq, np.uint32)
    pdq[2, 3] |= PixelFlag.HOT
    gdq[0, 5, 6] |= GroupFlag.JUMP_DET
    ds = xr.Dataset(
        {
            "data": (("resultant", "y", "x"), data),
            "groupdq": (("resultant", "y", "x"), gdq),
            "pixeldq": (("y", "x"), pdq),
            "amp33": (("resultant", "y", "amp33_x"), np.ones((NRES, NY, 128), np.uint16)),
        },
        coords={
            "resultant": np.arange(NRES),
            "y": np.arange(NY),
            "x": np.arange(NX),
            "mean_time": ("resultant", 3.04 * np.arange(1, NRES + 1)),
        },
        attrs={
            "meta": {
                "exposure": {"type": "WFI_IMAGE", "read_pattern": [[1], [2], [3]]},
                "cal_step": {"dq_init": "COMPLETE", "saturation": "COMPLETE"},
            }
        },
    )
    return ds.chunk(chunks) if chunks else ds


def test_check_all_groups_saturated():
    assert is_fully_saturated(make_ramp()) is True
    assert flag_fully_saturated is is_fully_saturated


def test_check_all_pixeldq_saturated():
    assert is_fully_saturated(make_ramp(groupdq=0, pixeldq=int(PixelFlag.SATURATED)))


def test_check_one_unsaturated_element_is_enough():
    ds = make_ramp()
    gdq = ds["groupdq"].values.copy()
    gdq[0, 0, 0] = 0  # first resultant of one (border) pixel still good
    assert not is_fully_saturated(ds.assign(groupdq=(ds["groupdq"].dims, gdq)))


def test_check_is_lazy_until_asked():
    ds = make_ramp(chunks={"y": 5})
    with dask.config.set(scheduler=raise_on_compute):
        flag = fully_saturated(ds)
    assert flag.chunks is not None and flag.ndim == 0
    assert bool(flag.compute())


@pytest.mark.parametrize("chunks", [None, {"y": 5}])
def test_zeroed_image(chunks):
    ds = make_ramp(chunks=chunks)
    attrs = copy.deepcopy(ds.attrs)
    with dask.config.set(scheduler=raise_on_compute):
        out = saturated_image(ds)
    if chunks:
        assert out["data"].chunks is not None and out["dq"].chunks is not None
    assert out["data"].dims == ("y", "x")
    np.testing.assert_array_equal(out["y"].values, np.arange(4, NY - 4))
    np.testing.assert_array_equal(out["x"].values, np.arange(4, NX - 4))
    assert "var_rnoise" not in out  # as romancal's zeroed image
    for name in ("data", "err", "var_poisson", "chisq", "dumo"):
        assert out[name].dtype == np.float32
        assert not out[name].values.any(), name
    pdq = ds["pixeldq"].values
    gdq0 = ds["groupdq"].values[0]
    expected = (pdq | gdq0 | PixelFlag.SATURATED)[4:-4, 4:-4]
    np.testing.assert_array_equal(out["dq"].values, expected)
    assert out["dq"].dtype == np.uint32
    # groupdq's JUMP_DET at (5, 6) and pixeldq's HOT border pixel (2, 3): only the first lands
    assert out["dq"].sel(y=5, x=6).values & PixelFlag.JUMP_DET
    assert not (out["dq"].values & PixelFlag.HOT).any()
    # carried arrays on full-frame dims
    assert out["amp33"].dims == ("resultant", "frame_y", "amp33_x")
    np.testing.assert_array_equal(
        out["border_ref_pix_left"].values, ds["data"].values[:, :, :4].astype(np.float32)
    )
    assert out["border_ref_pix_top"].dims == ("resultant", "ref_row", "frame_x")
    np.testing.assert_array_equal(out["dq_border_ref_pix_bottom"].values, pdq[-4:, :])
    meta = out.attrs["meta"]
    for step in SKIPPED_AFTER_SATURATION:
        assert meta["cal_step"][step] == "SKIPPED"
    assert meta["cal_step"]["dq_init"] == "COMPLETE"
    assert meta["cal_step"]["saturation"] == "COMPLETE"
    assert meta["product_type"] == "l2"
    assert meta["photometry"]["conversion_megajanskys"] == -999999
    assert meta["wcs"] is None and meta["cal_logs"] == []
    assert ds.attrs == attrs  # input untouched


def test_needs_dq_arrays():
    with pytest.raises(ExposureError, match="groupdq"):
        saturated_image(make_ramp().drop_vars("groupdq"))
