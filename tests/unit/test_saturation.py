"""saturation: hand-computed flags for every rule, growth at chunk edges, laziness."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import romanxr
from romanxr.errors import ExposureError, ReferenceMismatchError
from romanxr.steps.saturation import saturation
from tests.unit.detector_helpers import (
    make_ramp,
    raise_if_dask_computes,
    snapshot,
    write_saturation,
    write_uncal,
)

SAT, DNU, ADF, NSC = 2, 1, 64, 1 << 21


def _one_pixel(tmp_path, ramp, read_pattern=None, threshold=1000.0, ref_dq=0, **kw):
    """Run saturation on a 2x2 frame whose pixel (0, 0) holds ``ramp`` (the others 10 DN)."""
    ramp = np.asarray(ramp, dtype=np.uint16)
    data = np.full((ramp.size, 2, 2), 10, np.uint16)
    data[:, 0, 0] = ramp
    ds = make_ramp(tmp_path, data, read_pattern=read_pattern)
    thresh = np.full((2, 2), 1000.0, np.float32)
    thresh[0, 0] = threshold
    dq = np.zeros((2, 2), np.uint32)
    dq[0, 0] = ref_dq
    ref = write_saturation(tmp_path / "sat.asdf", thresh, dq)
    return saturation(ds, override_saturation=ref, **kw)


def _gdq(out):
    return out["groupdq"].values[:, 0, 0].tolist()


def test_threshold_crossing_flags_from_there_on(tmp_path):
    out = _one_pixel(tmp_path, [500, 900, 1000, 1200, 800])
    # >= threshold from resultant 2; stays saturated even when the value drops
    assert _gdq(out) == [0, 0, SAT, SAT, SAT]
    assert out["data"].values[:, 0, 0].tolist() == [500, 900, 1000, 1200, 800]
    assert out.attrs["meta"]["cal_step"]["saturation"] == "COMPLETE"
    assert out.attrs["meta"]["ref_file"]["saturation"] == "sat.asdf"
    assert out.attrs["step_parameters"]["saturation"] == {"n_pix_grow_sat": 0, "backup": 0}


def test_nan_threshold_never_flags_and_sets_no_sat_check(tmp_path):
    out = _one_pixel(tmp_path, [60000, 65535, 65535], threshold=np.nan)
    assert _gdq(out) == [0, 0, 0]
    assert out["pixeldq"].values[0, 0] == NSC
    assert out["pixeldq"].values[1, 1] == 0


def test_no_sat_check_never_flags(tmp_path):
    out = _one_pixel(tmp_path, [2000, 65535, 65535], ref_dq=NSC | 4)
    assert _gdq(out) == [0, 0, 0]
    assert out["pixeldq"].values[0, 0] == NSC | 4  # reference dq propagated


def test_ad_floor_only_on_that_resultant(tmp_path):
    out = _one_pixel(tmp_path, [100, 0, 200, 0])
    assert _gdq(out) == [0, ADF | DNU, 0, ADF | DNU]


def test_dilution_of_multi_read_resultant(tmp_path):
    # resultant 2 averages reads 3 and 4: dilution 3.5 / 4 = 0.875 -> 875 DN is suspect
    rp = [[1], [2], [3, 4], [5]]
    out = _one_pixel(tmp_path, [100, 200, 900, 1000], read_pattern=rp)
    assert _gdq(out) == [0, 0, DNU, SAT]
    # below the diluted threshold: left alone
    out = _one_pixel(tmp_path, [100, 200, 870, 1000], read_pattern=rp)
    assert _gdq(out) == [0, 0, 0, SAT]


def test_dilution_not_applied_to_single_read_resultants(tmp_path):
    out = _one_pixel(tmp_path, [100, 200, 999, 1000])
    assert _gdq(out) == [0, 0, 0, SAT]


def test_second_resultant_rule(tmp_path):
    # rp[1] has 2 reads; D0 * 4 / 1 = 400 < 1000; D1 - D0 = 500 > (1000 - 100) / 2 = 450;
    # resultant 2 saturated, resultant 1 not -> resultant 1 DO_NOT_USE
    rp = [[1], [2, 3], [4], [5]]
    out = _one_pixel(tmp_path, [100, 600, 1000, 1000], read_pattern=rp)
    assert _gdq(out) == [0, DNU, SAT, SAT]
    # a jump of 440 <= 450 is not suspicious
    out = _one_pixel(tmp_path, [100, 540, 1000, 1000], read_pattern=rp)
    assert _gdq(out) == [0, 0, SAT, SAT]
    # resultant 0 extrapolates to saturation by resultant 2 (300 * 4 >= 1000): not applied
    out = _one_pixel(tmp_path, [300, 700, 1000, 1000], read_pattern=rp)
    assert _gdq(out) == [0, 0, SAT, SAT]


@pytest.mark.parametrize(
    ("backup", "expected"),
    [(0, [0, 0, 0, SAT]), (1, [0, 0, SAT, SAT]), (2, [0, SAT, SAT, SAT]), (3, [0, SAT, SAT, SAT])],
)
def test_backup(tmp_path, backup, expected):
    # multi-read resultants 1 and 2 get SATURATED copied back one step per iteration;
    # resultant 0 (one read) never does
    rp = [[1], [2, 3], [4, 5], [6]]
    out = _one_pixel(tmp_path, [100, 200, 300, 1000], read_pattern=rp, backup=backup)
    assert _gdq(out) == expected


def _grow_case(tmp_path, n, chunks):
    """9x9 frame, one pixel at (4, 4) saturating in resultant 1."""
    data = np.full((3, 9, 9), 100, np.uint16)
    data[1:, 4, 4] = 5000
    ds = make_ramp(tmp_path, data, chunks=chunks, name=f"g{n}_uncal.asdf")
    ref = write_saturation(tmp_path / "s.asdf", np.full((9, 9), 1000.0))
    return ds, ref


@pytest.mark.parametrize("n", [1, 2])
def test_grow_square_box(tmp_path, n):
    ds, ref = _grow_case(tmp_path, n, None)
    out = saturation(ds, override_saturation=ref, n_pix_grow_sat=n)
    gdq = out["groupdq"].values
    box = np.zeros((9, 9), np.uint8)
    box[4 - n : 5 + n, 4 - n : 5 + n] = SAT  # 4-neighbours and diagonals
    assert not gdq[0].any()
    np.testing.assert_array_equal(gdq[1], box)
    np.testing.assert_array_equal(gdq[2], box)
    # distance n + 1 is not flagged
    assert gdq[1, 4, 4 + n + 1] == 0 and gdq[1, 4 - n - 1, 4] == 0


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("chunks", [{"y": 2, "x": 2}, {"y": 3, "x": 4}, {"y": 1, "x": 9}])
def test_grow_numpy_equals_dask_at_chunk_edges(tmp_path, n, chunks):
    rng = np.random.default_rng(n)
    rp = [[1], [2, 3], [4], [5, 6, 7], [8]]
    data = rng.integers(0, 1400, size=(5, 11, 13)).astype(np.uint16)
    data = np.sort(data, axis=0)
    path = write_uncal(tmp_path / "c_uncal.asdf", data, read_pattern=rp)
    from romanxr.steps.dq_init import dq_init

    thresh = rng.uniform(900, 1300, size=(11, 13)).astype(np.float32)
    ref = write_saturation(tmp_path / "s.asdf", thresh)
    eager = saturation(
        dq_init(romanxr.open_uncal(path, chunks=None), override_mask="N/A"),
        override_saturation=ref,
        n_pix_grow_sat=n,
        backup=1,
    )
    lazy_in = dq_init(romanxr.open_uncal(path, chunks=chunks), override_mask="N/A")
    with raise_if_dask_computes():
        lazy = saturation(lazy_in, override_saturation=ref, n_pix_grow_sat=n, backup=1)
    assert lazy["groupdq"].chunks is not None
    got = lazy.compute()
    assert (got["groupdq"].values & SAT).any() and (got["groupdq"].values & DNU).any()
    xr.testing.assert_identical(got, eager.compute())


def test_lazy_numpy_equals_dask_and_input_unmodified(tmp_path):
    rng = np.random.default_rng(0)
    data = np.sort(rng.integers(0, 1500, size=(4, 6, 7)), axis=0).astype(np.uint16)
    path = write_uncal(tmp_path / "l_uncal.asdf", data, read_pattern=[[1], [2, 3], [4], [5]])
    ref = write_saturation(tmp_path / "s.asdf", np.full((6, 7), 1000.0))
    from romanxr.steps.dq_init import dq_init

    lazy = dq_init(romanxr.open_uncal(path, chunks={"y": 4, "x": 3}), override_mask="N/A")
    before, attrs = snapshot(lazy.copy())
    with raise_if_dask_computes():
        out = saturation(lazy, override_saturation=ref)
    eager = saturation(
        dq_init(romanxr.open_uncal(path, chunks=None), override_mask="N/A"), override_saturation=ref
    )
    xr.testing.assert_identical(out.compute(), eager.compute())
    xr.testing.assert_identical(lazy.compute(), before)
    assert lazy.attrs == attrs and "saturation" not in lazy.attrs.get("step_parameters", {})


def test_na_reference_skips(tmp_path):
    ds = make_ramp(tmp_path, np.full((3, 2, 2), 5, np.uint16))
    out = saturation(ds, override_saturation="N/A")
    assert out.attrs["meta"]["cal_step"]["saturation"] == "SKIPPED"
    xr.testing.assert_identical(out["groupdq"], ds["groupdq"])


def test_mismatched_reference_raises(tmp_path):
    ds = make_ramp(tmp_path, np.full((3, 4, 4), 5, np.uint16))
    ref = write_saturation(tmp_path / "s.asdf", np.full((2, 2), 1000.0))
    with pytest.raises(ReferenceMismatchError, match="saturation"):
        saturation(ds, override_saturation=ref)


def test_needs_a_ramp(tmp_path):
    path = write_uncal(tmp_path / "x_uncal.asdf", np.ones((3, 2, 2)))
    with pytest.raises(ExposureError, match="dq_init"):
        saturation(romanxr.open_uncal(path), override_saturation="N/A")


@pytest.mark.parametrize("kw", [{"n_pix_grow_sat": -1}, {"backup": -2}])
def test_negative_parameters_are_config_errors(tmp_path, kw):
    from romanxr.errors import ConfigError

    ds = make_ramp(tmp_path, np.full((3, 2, 2), 5, np.uint16))
    with pytest.raises(ConfigError, match="must be >= 0"):
        saturation(ds, override_saturation="N/A", **kw)
