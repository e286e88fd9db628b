"""ramp_fit step: golden values through reference files, output layout, laziness, errors."""

from __future__ import annotations

import copy

import dask
import numpy as np
import pytest
import xarray as xr

from romanxr.errors import ConfigError, ExposureError
from romanxr.steps.ramp_fit import jump_indices, ramp_fit
from tests.unit.ramp_testdata import SIMPLE_RESULTANTS, make_ramp, write_refs

# romancal's own tests; float16 fields compared after a float16 cast
LIKELY = {
    (1, 0.01): {
        "data": [0.54824126, 0.54824126, 0.21930373, 0.6579057],
        "err": [0.2452, 0.2452, 0.155, 0.2686],
        "var_poisson": [0.06012, 0.06012, 0.02405, 0.07214],
        "var_rnoise": [2.4e-06] * 4,
        "chisq": [0.4, 1.6, 0.9995, 3.0],
    },
    (5, 0.01): {
        "data": [0.54822373, 0.54822373, 0.21932559, 0.32894737],
        "err": [0.1097, 0.1097, 0.0694, 0.10406],
        "var_poisson": [0.012024, 0.012024, 0.00481, 0.01082],
        "var_rnoise": [2.384e-06, 2.384e-06, 2.384e-06, 1.085e-05],
        "chisq": [1.998, 7.996, 4.992, 0.0],
    },
    (1, 100.0): {
        "data": [0.5263168, 0.5263168, 0.23026292, 0.72367984],
        "err": [14.71] * 4,
        "var_poisson": [0.05887, 0.05887, 0.02576, 0.08093],
        "var_rnoise": [216.4] * 4,
        "chisq": [2.0e-05, 1.2e-04, 3.0e-05, 1.8e-04],
    },
}
CAS22 = {
    (1, 0.01): {
        "data": [0.52631587, 0.52631587, 0.23026317, 0.7236843],
        "err": [0.24262409, 0.24262409, 0.16048454, 0.28450054],
        "var_poisson": [0.05886428, 0.05886428, 0.02575312, 0.08093839],
        "var_rnoise": [2.164128e-06] * 4,
    },
    (5, 0.01): {
        "data": [0.526316, 0.526316, 0.230263, 0.701852],
        "err": [0.108513, 0.108513, 0.071783, 0.124624],
        "var_poisson": [0.011772858, 0.011772858, 0.005150624, 0.0155289],
    },
    (1, 100.0): {
        "data": [0.5263158, 0.5263158, 0.23026316, 0.7236842],
        "err": [14.712976, 14.712976, 14.711851, 14.713726],
        "var_rnoise": [216.4128] * 4,
    },
}


@pytest.fixture
def refs(tmp_path):
    def make(gain, readnoise, shape=(10, 10)):
        sub = tmp_path / f"g{gain}_r{readnoise}_{shape[0]}x{shape[1]}"
        sub.mkdir(exist_ok=True)
        return write_refs(sub, shape, gain=gain, readnoise=readnoise)

    return make


def _check(out, expected):
    for var, want in expected.items():
        got = out[var].values.ravel()
        if var == "data":
            np.testing.assert_allclose(got, want, rtol=1e-5, err_msg=var)
        else:
            np.testing.assert_allclose(
                got.astype(np.float16).astype(np.float64), want, rtol=1e-3, atol=1e-7, err_msg=var
            )


@pytest.mark.parametrize("case", list(LIKELY))
def test_likely_golden(refs, case):
    rn, g = refs(gain=case[0], readnoise=case[1])
    out = ramp_fit(
        make_ramp(SIMPLE_RESULTANTS),
        include_var_rnoise=True,
        override_readnoise=rn,
        override_gain=g,
    )
    _check(out, LIKELY[case])
    if case == (5, 0.01):
        assert out["dq"].values.ravel().tolist() == [0, 0, 0, 4]
        assert jump_indices(out).tolist() == [[2, 1, 1]]


@pytest.mark.parametrize("use_jump", [True, False])
@pytest.mark.parametrize("case", list(CAS22))
def test_cas22_golden(refs, case, use_jump):
    rn, g = refs(gain=case[0], readnoise=case[1])
    out = ramp_fit(
        make_ramp(SIMPLE_RESULTANTS),
        algorithm="ols_cas22",
        use_ramp_jump_detection=use_jump,
        include_var_rnoise=True,
        override_readnoise=rn,
        override_gain=g,
    )
    _check(out, CAS22[case])
    assert (out["chisq"].values == 0).all()
    assert "jumps" not in out


def test_output_layout_and_provenance(refs):
    rn, g = refs(gain=5, readnoise=0.01)
    ds = make_ramp(SIMPLE_RESULTANTS)
    out = ramp_fit(ds, include_var_rnoise=True, override_readnoise=rn, override_gain=g)
    for var in ("data", "dq", "err", "var_poisson", "var_rnoise", "chisq", "dumo"):
        assert out[var].dims == ("y", "x")
    assert out["y"].values.tolist() == [4, 5] and out["x"].values.tolist() == [4, 5]
    assert out["data"].dtype == np.float32 and out["dq"].dtype == np.uint32
    assert out["err"].dtype == np.float32
    assert out["amp33"].dims == ("resultant", "frame_y", "amp33_x")
    assert out["border_ref_pix_left"].dims == ("resultant", "frame_y", "ref_col")
    assert out["border_ref_pix_top"].dims == ("resultant", "ref_row", "frame_x")
    assert out["dq_border_ref_pix_bottom"].dims == ("ref_row", "frame_x")
    np.testing.assert_array_equal(out["amp33"].values, ds["amp33"].values)
    assert out["jumps"].dims == ("resultant", "y", "x")
    meta = out.attrs["meta"]
    assert meta["cal_step"]["ramp_fit"] == "COMPLETE"
    assert meta["cal_step"]["dq_init"] == "COMPLETE"
    assert meta["cal_step"]["flat_field"] == "INCOMPLETE"
    assert meta["ref_file"]["readnoise"] == "readnoise.asdf"
    assert meta["ref_file"]["gain"] == "gain.asdf"
    assert meta["model_type"] == "ImageModel" and meta["product_type"] == "l2"
    assert meta["photometry"]["pixel_area"] == -999999
    params = out.attrs["step_parameters"]["ramp_fit"]
    assert params["algorithm"] == "likely" and params["rejection_threshold"] == 4.5
    assert "groupdq" not in out and "pixeldq" not in out


def test_dumo_uniform_minus_optimal(refs):
    rn, g = refs(gain=0.01, readnoise=1000.0)
    out = ramp_fit(make_ramp(SIMPLE_RESULTANTS), override_readnoise=rn, override_gain=g)
    np.testing.assert_allclose(out["dumo"].values, 0, atol=1e-5)  # read-noise limit
    rn, g = refs(gain=10, readnoise=0.01)
    out = ramp_fit(make_ramp(SIMPLE_RESULTANTS), override_readnoise=rn, override_gain=g)
    assert np.abs(out["dumo"].values).max() > 1e-2  # photon limit


def test_var_rnoise_left_out_by_default_as_romancal(refs):
    rn, g = refs(gain=5, readnoise=0.01)
    out = ramp_fit(make_ramp(SIMPLE_RESULTANTS), override_readnoise=rn, override_gain=g)
    assert "var_rnoise" not in out
    assert out.attrs["step_parameters"]["ramp_fit"]["include_var_rnoise"] is False
    kept = ramp_fit(
        make_ramp(SIMPLE_RESULTANTS),
        include_var_rnoise=True,
        override_readnoise=rn,
        override_gain=g,
    )
    # what is left out can be rebuilt: err**2 = var_poisson + var_rnoise
    np.testing.assert_allclose(
        out["err"].values ** 2 - out["var_poisson"].values, kept["var_rnoise"].values, rtol=1e-3
    )


def test_include_var_rnoise_false_and_record_jumps_false(refs):
    rn, g = refs(gain=5, readnoise=0.01)
    out = ramp_fit(
        make_ramp(SIMPLE_RESULTANTS),
        include_var_rnoise=False,
        record_jumps=False,
        override_readnoise=rn,
        override_gain=g,
    )
    assert "var_rnoise" not in out and "jumps" not in out


def test_cutout_keeps_absolute_science_pixels(refs):
    """Without border arrays (a cut-out), only pixels in the detector border are cut."""
    ds = make_ramp(SIMPLE_RESULTANTS, border_arrays=False)
    ds = ds.assign_coords(y=ds["y"] + 100, x=ds["x"] + 2)  # x 2..11: columns 2, 3 are border
    rn, g = refs(gain=1, readnoise=5.0, shape=(4096, 16))
    out = ramp_fit(ds, override_readnoise=rn, override_gain=g)
    assert out["y"].values.tolist() == list(range(100, 110))
    assert out["x"].values.tolist() == list(range(4, 12))
    assert "amp33" not in out


def _cr_ramp(nres=8, n=12, seed=5):
    rng = np.random.default_rng(seed)
    rp = [[i + 1] for i in range(nres)]
    t = 3.04 * np.arange(1, nres + 1)
    science = 20.0 * t[:, None, None] + rng.normal(0, 5, (nres, n, n))
    hits = rng.random((n, n)) < 0.3
    start = rng.integers(1, nres, (n, n))
    for y, x in zip(*np.nonzero(hits), strict=True):
        science[start[y, x] :, y, x] += rng.uniform(100, 400)
    return make_ramp(science.astype(np.float32), rp), hits


def test_rejection_threshold_really_changes_result(refs):
    ds, hits = _cr_ramp()
    rn, g = refs(gain=1, readnoise=5.0, shape=(20, 20))
    default = ramp_fit(ds, override_readnoise=rn, override_gain=g)
    loose = ramp_fit(ds, rejection_threshold=500, override_readnoise=rn, override_gain=g)
    n_default = int(default["jumps"].any("resultant").sum())
    n_loose = int(loose["jumps"].any("resultant").sum())
    assert n_default >= 0.8 * hits.sum() and n_loose == 0
    assert not np.allclose(default["data"].values, loose["data"].values)
    assert loose.attrs["step_parameters"]["ramp_fit"]["rejection_threshold"] == 500


@pytest.mark.parametrize("algorithm", ["likely", "ols_cas22"])
def test_numpy_equals_dask_lazy_and_input_unmodified(refs, algorithm):
    ds, _ = _cr_ramp()
    rn, g = refs(gain=1, readnoise=5.0, shape=(20, 20))
    before = ds.copy(deep=True)
    attrs_before = copy.deepcopy(ds.attrs)
    eager = ramp_fit(ds, algorithm=algorithm, override_readnoise=rn, override_gain=g)
    lazy_in = ds.chunk({"y": 7, "x": 9, "resultant": 3})

    def forbid(*args, **kwargs):
        raise AssertionError("the graph was computed while it was being built")

    with dask.config.set(scheduler=forbid):
        lazy = ramp_fit(lazy_in, algorithm=algorithm, override_readnoise=rn, override_gain=g)
    assert lazy["data"].chunks is not None
    xr.testing.assert_identical(eager, lazy.compute())
    xr.testing.assert_identical(ds, before)
    assert ds.attrs == attrs_before


def test_fewer_than_four_resultants(refs):
    ds = make_ramp(SIMPLE_RESULTANTS[:3], [[1], [2], [3]])
    rn, g = refs(gain=1, readnoise=5.0)
    with pytest.raises(ExposureError, match="ols_cas22"):
        ramp_fit(ds, override_readnoise=rn, override_gain=g)
    out = ramp_fit(ds, algorithm="ols_cas22", override_readnoise=rn, override_gain=g)
    assert np.isfinite(out["data"].values).all()


def test_bad_parameters_and_inputs(refs):
    rn, g = refs(gain=1, readnoise=5.0)
    ds = make_ramp(SIMPLE_RESULTANTS)
    with pytest.raises(ConfigError, match="algorithm"):
        ramp_fit(ds, algorithm="ols", override_readnoise=rn, override_gain=g)
    with pytest.raises(ConfigError, match="not implemented"):
        ramp_fit(ds, expand_large_events=True, override_readnoise=rn, override_gain=g)
    with pytest.raises(ConfigError):
        ramp_fit(ds, rejection_threshold=-1, override_readnoise=rn, override_gain=g)
    with pytest.raises(ExposureError, match="dq_init"):
        ramp_fit(ds.drop_vars("groupdq"), override_readnoise=rn, override_gain=g)
    bad = ds.copy()
    bad.attrs = copy.deepcopy(ds.attrs)
    bad.attrs["meta"]["exposure"]["read_pattern"] = [[1], [2], [3]]
    with pytest.raises(ExposureError, match="read_pattern"):
        ramp_fit(bad, override_readnoise=rn, override_gain=g)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["likely", "ols_cas22"])
def test_uncertainty_matches_scatter_through_step(refs, algorithm):
    from tests.unit.ramp_testdata import monte_carlo_ramps

    rp, resultants, true_rate = monte_carlo_ramps()
    ds = make_ramp(resultants, rp)
    rn, g = refs(gain=1, readnoise=20.0, shape=(ds.sizes["y"], ds.sizes["x"]))
    out = ramp_fit(ds, algorithm=algorithm, override_readnoise=rn, override_gain=g)
    slope = out["data"].values[0]
    err = out["err"].values[0]
    residuals = (slope - true_rate) / err
    np.testing.assert_allclose(np.std(slope), np.mean(err), rtol=0.05)
    assert abs(np.mean(residuals)) < 0.1
    np.testing.assert_allclose(np.std(residuals), 1.0, rtol=0.05)
