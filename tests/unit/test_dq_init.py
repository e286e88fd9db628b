"""dq_init: ramp layout, guide window, reference read, mask, borders, provenance, laziness."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr

import romanxr
from romanxr.dataset import CAL_STEP_KEYS
from romanxr.errors import ReferenceMismatchError
from romanxr.steps.dq_init import dq_init
from tests.unit.detector_helpers import (
    raise_if_dask_computes,
    snapshot,
    write_mask,
    write_uncal,
)

NY, NX = 8, 10


def _data(nres=3):
    return (np.arange(nres * NY * NX).reshape(nres, NY, NX) % 5000 + 100).astype(np.uint16)


@pytest.fixture
def exposure(tmp_path):
    """An L1 file with everything dq_init consumes, and a mask."""
    rng = np.random.default_rng(5)
    resultantdq = np.zeros((3, NY, NX), np.uint8)
    resultantdq[1, 2, 3] = 8  # DROPOUT
    path = write_uncal(
        tmp_path / "e_uncal.asdf",
        _data(),
        resultantdq=resultantdq,
        reference_read=np.full((NY, NX), 5),
        reference_amp33=np.full((NY, 128), 10),
        amp33=np.full((3, NY, 128), 65530),
        guide_window=(2, 5, 1, 3),
        data_encoding_offset=7,
    )
    mask_dq = rng.choice([0, 1, 2, 1 << 9, 1 << 31], size=(NY, NX)).astype(np.uint32)
    mask = write_mask(tmp_path / "mask.asdf", mask_dq)
    return path, mask, mask_dq


def _gw_expected(expand=0):
    pdq = np.zeros((NY, NX), np.uint32)
    pdq[:, 2:5] = 16  # the columns of the window, every row
    y0, y1, x0, x1 = 1 - expand, 3 + expand, 2 - expand, 5 + expand
    pdq[max(y0, 0) : y1, max(x0, 0) : x1] |= 17
    return pdq


def test_layout_dtypes_and_values(exposure):
    path, mask, mask_dq = exposure
    out = dq_init(romanxr.open_uncal(path, chunks=None), override_mask=mask)
    assert out["data"].dtype == np.float32 and out["data"].dims == ("resultant", "y", "x")
    assert out["pixeldq"].dtype == np.uint32 and out["pixeldq"].dims == ("y", "x")
    assert out["groupdq"].dtype == np.uint8 and out["groupdq"].dims == ("resultant", "y", "x")
    for gone in ("resultantdq", "reference_read", "reference_amp33"):
        assert gone not in out
    # data + reference_read - data_encoding_offset = data + 5 - 7
    np.testing.assert_array_equal(out["data"].values, _data().astype(np.float32) - 2)
    # amp33: 65530 + 10 - 7 overflows uint16: clipped, not wrapped (documented)
    assert out["amp33"].dtype == np.uint16
    assert (out["amp33"].values == 65533).all()
    # resultantdq becomes groupdq
    expected_gdq = np.zeros((3, NY, NX), np.uint8)
    expected_gdq[1, 2, 3] = 8
    np.testing.assert_array_equal(out["groupdq"].values, expected_gdq)
    # mask bits OR'ed onto the guide-window flags
    np.testing.assert_array_equal(out["pixeldq"].values, _gw_expected() | mask_dq)


def test_amp33_sum_in_wide_type(tmp_path):
    path = write_uncal(
        tmp_path / "a_uncal.asdf",
        _data(),
        amp33=np.full((3, NY, 128), 65000),
        reference_amp33=np.full((NY, 128), 400),
        data_encoding_offset=100,
    )
    out = dq_init(romanxr.open_uncal(path, chunks=None), override_mask="N/A")
    # 65000 + 400 - 100: uint16 arithmetic would wrap to 64; the wide sum is exact
    assert (out["amp33"].values == 65300).all()


@pytest.mark.parametrize("expand", [0, 1, 2])
def test_guide_window(exposure, expand):
    path, *_ = exposure
    out = dq_init(
        romanxr.open_uncal(path, chunks=None), override_mask="N/A", expand_gw_flagging=expand
    )
    np.testing.assert_array_equal(out["pixeldq"].values, _gw_expected(expand))
    assert out.attrs["step_parameters"]["dq_init"] == {"expand_gw_flagging": expand}


def test_guide_window_plain_assignment_on_ramp_input(exposure):
    """The window columns are *set* to 16 (plain assignment): on a ramp input that already has
    pixeldq, other bits in those columns are replaced, as romancal does."""
    path, *_ = exposure
    ramp = dq_init(romanxr.open_uncal(path, chunks=None), override_mask="N/A")
    ramp = ramp.assign(pixeldq=xr.full_like(ramp["pixeldq"], 4))
    again = dq_init(ramp, override_mask="N/A")
    expected = np.full((NY, NX), 4, np.uint32)
    expected[:, 2:5] = 16
    expected[1:3, 2:5] |= 17
    np.testing.assert_array_equal(again["pixeldq"].values, expected)


def test_invalid_guide_window_flags_nothing(tmp_path):
    # create_fake_data's placeholder window is -999999: not on the detector
    path = write_uncal(tmp_path / "n_uncal.asdf", _data())
    out = dq_init(romanxr.open_uncal(path, chunks=None), override_mask="N/A")
    assert not out["pixeldq"].values.any()


def test_borders_full_width_strip(tmp_path):
    """A whole 8 x 4096 frame: its outer 4 columns/rows on each side are the border."""
    data = np.random.default_rng(0).integers(0, 60000, size=(2, 8, 4096), dtype=np.uint16)
    path = write_uncal(tmp_path / "w_uncal.asdf", data)
    mask_dq = np.random.default_rng(1).integers(0, 2**16, size=(8, 4096)).astype(np.uint32)
    mask = write_mask(tmp_path / "m.asdf", mask_dq)
    out = dq_init(romanxr.open_uncal(path, chunks={"x": 1024}), override_mask=mask)
    d = data.astype(np.float32)
    left, right, top = (
        out["border_ref_pix_left"],
        out["border_ref_pix_right"],
        out["border_ref_pix_top"],
    )
    assert left.dims == ("resultant", "y", "ref_col") and top.dims == ("resultant", "ref_row", "x")
    np.testing.assert_array_equal(left.values, d[:, :, :4])
    np.testing.assert_array_equal(right.values, d[:, :, -4:])
    np.testing.assert_array_equal(top.values, d[:, :4, :])  # rows 0..3 are "top" (romancal)
    np.testing.assert_array_equal(out["dq_border_ref_pix_left"].values, mask_dq[:, :4])
    np.testing.assert_array_equal(out["dq_border_ref_pix_right"].values, mask_dq[:, -4:])
    np.testing.assert_array_equal(out["dq_border_ref_pix_top"].values, mask_dq[:4, :])
    assert out["border_ref_pix_left"].dtype == np.float32
    assert out["dq_border_ref_pix_top"].dtype == np.uint32
    # the frame has 8 rows: its last 4 are "bottom" (rows 0..3 "top", as romancal names them)
    np.testing.assert_array_equal(out["border_ref_pix_bottom"].values, d[:, -4:, :])


def test_cutout_without_border_has_no_border_arrays(exposure):
    path, mask, _ = exposure
    # columns 4..5 of the 8x10 frame lie inside its 4-column borders; rows are all kept
    ds = romanxr.open_uncal(path, chunks=None).isel(x=slice(4, 6))
    assert ds.attrs["frame_shape"] == [NY, NX]
    out = dq_init(ds, override_mask=mask)
    assert [v for v in out.data_vars if v.startswith("border")] == [
        "border_ref_pix_top",
        "border_ref_pix_bottom",
    ]
    # the full-frame mask is aligned by absolute coordinates
    assert out["pixeldq"].sizes == {"y": NY, "x": 2}


def test_cal_step_initialised(exposure):
    path, mask, _ = exposure
    ds = romanxr.open_uncal(path, chunks=None)
    ds.attrs["meta"].setdefault("cal_step", {})["refpix"] = "COMPLETE"
    out = dq_init(ds, override_mask=mask)
    cal_step = out.attrs["meta"]["cal_step"]
    assert cal_step["dq_init"] == "COMPLETE"
    assert cal_step["refpix"] == "COMPLETE"  # already set: kept
    for key in CAL_STEP_KEYS:
        if key not in ("dq_init", "refpix"):
            assert cal_step[key] == "INCOMPLETE", key
    assert out.attrs["meta"]["ref_file"]["mask"] == "mask.asdf"


def test_mask_na_marks_skipped_but_converts(exposure):
    path, *_ = exposure
    out = dq_init(romanxr.open_uncal(path, chunks=None), override_mask="N/A")
    assert out.attrs["meta"]["cal_step"]["dq_init"] == "SKIPPED"
    assert out["data"].dtype == np.float32 and "groupdq" in out


def test_mask_shape_mismatch_raises(exposure, tmp_path):
    path, *_ = exposure
    small = write_mask(tmp_path / "small.asdf", np.zeros((4, 4)))
    with pytest.raises(ReferenceMismatchError, match="mask"):
        dq_init(romanxr.open_uncal(path, chunks=None), override_mask=small)


def test_lazy_numpy_equals_dask_and_input_unmodified(exposure):
    path, mask, _ = exposure
    lazy = romanxr.open_uncal(path, chunks={"y": 3, "x": 4})
    before, attrs_before = snapshot(romanxr.open_uncal(path, chunks={"y": 3, "x": 4}))
    with raise_if_dask_computes():
        out = dq_init(lazy, override_mask=mask, expand_gw_flagging=1)
    assert out["data"].chunks is not None and out["pixeldq"].chunks is not None
    eager = dq_init(romanxr.open_uncal(path, chunks=None), override_mask=mask, expand_gw_flagging=1)
    xr.testing.assert_identical(out.compute(), eager.compute())
    xr.testing.assert_identical(lazy.compute(), before)
    assert lazy.attrs == attrs_before


def test_negative_expand_is_a_config_error(exposure):
    from romanxr.errors import ConfigError

    path, *_ = exposure
    with pytest.raises(ConfigError, match="expand_gw_flagging"):
        dq_init(romanxr.open_uncal(path, chunks=None), override_mask="N/A", expand_gw_flagging=-1)


def test_bottom_border_is_rows_4092_to_4095(tmp_path):
    """A tall cut-out (rows 0..4095, columns 0..5 of an 8-column frame): "bottom" holds rows
    4092..4095 as in romancal (the rad schema text calls these rows "top"); the right border
    (columns 4..7) is not in the cut-out."""
    data = np.random.default_rng(2).integers(0, 60000, size=(2, 4096, 8), dtype=np.uint16)
    path = write_uncal(tmp_path / "t_uncal.asdf", data)
    cutout = romanxr.open_uncal(path, chunks={"y": 1000}).isel(x=slice(0, 6))
    out = dq_init(cutout, override_mask="N/A")
    bottom = out["border_ref_pix_bottom"]
    assert bottom.dims == ("resultant", "ref_row", "x") and bottom.shape == (2, 4, 6)
    np.testing.assert_array_equal(bottom.values, data[:, 4092:, :6].astype(np.float32))
    np.testing.assert_array_equal(out["border_ref_pix_top"].values, data[:, :4, :6])
    assert out["dq_border_ref_pix_bottom"].shape == (4, 6)
    assert "border_ref_pix_right" not in out


def test_two_exposures_of_one_shape_share_no_pixel_dq_chunk(exposure):
    # dask names zeros by shape and dtype only: the pixel DQ (and the mask read anchored on
    # it) of two exposures of one shape, or of an exposure and its twin (wfi18_transient),
    # would be the same tasks, and a region-by-region writer would keep them for both.
    from romanxr.schedule.graph import clone

    path, mask, _ = exposure
    ds = romanxr.open_uncal(path, chunks={"y": 4})
    one = dq_init(ds, override_mask=mask)
    two = dq_init(clone(ds), override_mask=mask)
    graphs = [dict(d["pixeldq"].data.__dask_graph__()) for d in (one, two)]
    shared = sorted(set(graphs[0]) & set(graphs[1]), key=str)
    # only coordinate vectors (the guide window's row and column ranges) may be shared
    values = dask.get(graphs[0], shared) if shared else []
    assert all(min(np.shape(v), default=1) == 1 for v in values), shared
    np.testing.assert_array_equal(one["pixeldq"].values, two["pixeldq"].values)
    expected = dq_init(romanxr.open_uncal(path, chunks=None), override_mask=mask)
    np.testing.assert_array_equal(one["pixeldq"].values, expected["pixeldq"].values)
