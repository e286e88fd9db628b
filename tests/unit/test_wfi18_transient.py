"""wfi18_transient on small cut-outs with full-frame timing."""

from __future__ import annotations

import dask
import numpy as np
import pytest

from romanxr.kernels.timing import read_time_map
from romanxr.kernels.wfi18_transient import double_exponential
from romanxr.steps.wfi18_transient import wfi18_transient
from tests.unit._ramp_factory import make_ramp

FT = 3.0
RP5 = [[1], [2, 3], [4, 5, 6], [7, 8, 9, 10], [11, 12, 13, 14, 15]]


def _no_compute(*args, **kwargs):
    raise RuntimeError("the graph was computed while it should only have been built")


def _glow_ramp(ny=1200, nx=24, y0=0, x0=0, glow=True, detector="WFI18", rp=RP5):
    data = np.ones((len(rp), ny, nx), np.float32)
    if glow:
        y, x = np.arange(y0, y0 + ny), np.arange(x0, x0 + nx)
        t = read_time_map(FT, 18, y=y, x=x)
        sci = ((y >= 4) & (y < 4092))[:, None] & ((x >= 4) & (x < 4092))[None, :]
        data[0] += np.where(sci, double_exponential(t, -0.5, 0.1, 0.1, 0.5), 0).astype(np.float32)
    return make_ramp(data, y0=y0, x0=x0, read_pattern=rp, frame_time=FT, detector=detector)


def test_injected_transient_removed():
    ds = _glow_ramp()
    assert not np.allclose(ds.data.values, 1.0, atol=1e-5)
    out = wfi18_transient(ds)
    assert out.attrs["meta"]["cal_step"]["wfi18_transient"] == "COMPLETE"
    np.testing.assert_allclose(out.data.values, 1.0, atol=1e-5)
    np.testing.assert_array_equal(out.groupdq.values, 0)


def test_flat_data_unchanged():
    ds = _glow_ramp(glow=False)
    out = wfi18_transient(ds)
    np.testing.assert_array_equal(out.data.values, 1.0)
    np.testing.assert_array_equal(out.groupdq.values, 0)


def test_too_few_resultants_masks_rows_below_1000():
    # cut-out straddling absolute row 1000: rows 990..999 are masked, 1000.. not
    ds = _glow_ramp(ny=20, nx=8, y0=990, glow=False, rp=[[1], [2], [3], [4]])
    out = wfi18_transient(ds)
    gdq = out.groupdq.values
    assert np.all(gdq[0, :10] == 129)
    assert np.all(gdq[0, 10:] == 0) and np.all(gdq[1:] == 0)
    np.testing.assert_array_equal(out.data.values, ds.data.values)
    assert out.attrs["meta"]["cal_step"]["wfi18_transient"] == "COMPLETE"
    assert out.attrs["step_parameters"]["wfi18_transient"]["fit"] is False


def test_failed_fit_masks_rows():
    ds = _glow_ramp(ny=40, nx=8, glow=False)
    ds["data"][:] = np.nan
    out = wfi18_transient(ds)
    assert np.all(out.groupdq.values[0] == 129)  # all rows of this cut-out are < 1000
    assert np.all(out.groupdq.values[1:] == 0)


def test_mask_rows_option():
    ds = _glow_ramp(ny=30, nx=8)
    out = wfi18_transient(ds, mask_rows=True)
    assert np.all(out.groupdq.values[0] == 129)
    np.testing.assert_array_equal(out.data.values, ds.data.values)


def test_other_detector_not_applicable():
    ds = _glow_ramp(ny=30, nx=8, detector="WFI01")
    out = wfi18_transient(ds)
    assert out.attrs["meta"]["cal_step"]["wfi18_transient"] == "N/A"
    np.testing.assert_array_equal(out.data.values, ds.data.values)
    np.testing.assert_array_equal(out.groupdq.values, 0)


@pytest.mark.parametrize("glow", [True, False])
def test_numpy_equals_dask_and_lazy(glow):
    ds = _glow_ramp(glow=glow)
    if not glow:
        ds["data"][:] = np.nan  # the fallback path
    eager = wfi18_transient(ds)
    with dask.config.set(scheduler=_no_compute):
        lazy = wfi18_transient(ds.chunk({"y": 300, "x": 10}))
    assert lazy.data.chunks is not None and lazy.groupdq.chunks is not None
    np.testing.assert_array_equal(lazy.data.values, eager.data.values)
    np.testing.assert_array_equal(lazy.groupdq.values, eager.groupdq.values)


def test_input_unmodified():
    ds = _glow_ramp(ny=200, nx=8)
    before = ds.copy(deep=True)
    wfi18_transient(ds)
    wfi18_transient(ds, mask_rows=True)
    assert ds.identical(before) and ds.attrs == before.attrs


def test_fallback_lazy_with_too_few_resultants():
    ds = _glow_ramp(ny=1010, nx=8, rp=[[1], [2], [3]])
    eager = wfi18_transient(ds)
    with dask.config.set(scheduler=_no_compute):
        lazy = wfi18_transient(ds.chunk({"y": 300}))
    np.testing.assert_array_equal(lazy.groupdq.values, eager.groupdq.values)
    assert np.all(eager.groupdq.values[0, :1000] == 129)
    assert np.all(eager.groupdq.values[0, 1000:] == 0)


def test_row_means_skip_unusable_rows_without_touching_warning_filters(monkeypatch, recwarn):
    # warnings filters are process-global: changing them in dask's worker threads races with
    # other threads (a warning seen as an error elsewhere), so the kernel must not touch them
    import warnings

    from romanxr.kernels.wfi18_transient import row_residual_means

    def refuse(*args, **kwargs):
        raise AssertionError("row_residual_means changed the process-wide warning filters")

    rng = np.random.default_rng(5)
    residual = rng.normal(size=(6, 40))
    later = rng.normal(size=(6, 40))
    residual[1, :3] = np.nan
    residual[2] = np.nan
    residual[3, ::2] = np.inf
    monkeypatch.setattr(warnings, "catch_warnings", refuse)
    means = row_residual_means(residual, later)
    assert [str(w.message) for w in recwarn] == []
    assert np.isnan(means[2])
    assert np.all(np.isfinite(np.delete(means, 2)))
    # a partly invalid row averages its finite pixels
    assert abs(means[1]) < 1.0
