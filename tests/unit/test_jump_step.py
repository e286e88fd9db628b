"""Stand-alone jump step: flags, tuning, hand-off to ramp_fit, laziness, errors."""

from __future__ import annotations

import copy

import dask
import numpy as np
import pytest
import xarray as xr

from romanxr.errors import ConfigError, ExposureError, RomanxrWarning
from romanxr.steps.jump import jump
from romanxr.steps.ramp_fit import ramp_fit
from tests.unit.ramp_testdata import SIMPLE_RESULTANTS, make_ramp, write_refs


def _cr_ramp(nres=8, n=12, seed=11, read_pattern=None):
    rng = np.random.default_rng(seed)
    rp = read_pattern or [[i + 1] for i in range(nres)]
    t = 3.04 * np.array([np.mean(g) for g in rp])
    nres = len(rp)
    science = 20.0 * t[:, None, None] + rng.normal(0, 5, (nres, n, n))
    hits = rng.random((n, n)) < 0.3
    start = rng.integers(1, nres, (n, n))
    for y, x in zip(*np.nonzero(hits), strict=True):
        science[start[y, x] :, y, x] += rng.uniform(100, 400)
    return make_ramp(science.astype(np.float32), rp), hits


@pytest.fixture
def refs(tmp_path):
    return write_refs(tmp_path, (20, 20), gain=1.0, readnoise=5.0)


def test_flags_jumps_and_records_parameters(refs):
    rn, g = refs
    ds, hits = _cr_ramp()
    out = jump(ds, override_readnoise=rn, override_gain=g)
    flagged = (out["groupdq"].values & 4).any(axis=0)[4:-4, 4:-4]
    assert flagged[hits].mean() > 0.8
    assert out["groupdq"].dtype == np.uint8
    np.testing.assert_array_equal(out["data"].values, ds["data"].values)
    params = out.attrs["step_parameters"]["jump"]
    assert params["rejection_threshold"] == 4.5
    assert "jump" not in out.attrs["meta"]["cal_step"]
    assert out.attrs["meta"]["ref_file"]["readnoise"] == "readnoise.asdf"


def test_threshold_500_finds_fewer_jumps(refs):
    rn, g = refs
    ds, hits = _cr_ramp()
    n_default = int((jump(ds, override_readnoise=rn, override_gain=g)["groupdq"] & 4).sum())
    n_500 = int(
        (
            jump(ds, rejection_threshold=500, override_readnoise=rn, override_gain=g)["groupdq"] & 4
        ).sum()
    )
    assert n_default >= 0.8 * hits.sum()
    assert n_500 == 0


@pytest.mark.parametrize(
    "read_pattern",
    [None, [[1], [2, 3, 4], [5], [6, 7, 8], [9], [10, 11], [12]]],
)
def test_jump_then_ramp_fit_equals_ramp_fit_alone(refs, read_pattern):
    rn, g = refs
    ds, _ = _cr_ramp(read_pattern=read_pattern)
    alone = ramp_fit(ds, override_readnoise=rn, override_gain=g)
    flagged = jump(ds, override_readnoise=rn, override_gain=g)
    after = ramp_fit(flagged, override_readnoise=rn, override_gain=g)
    for var in ("data", "dq", "err", "var_poisson", "chisq", "jumps"):
        xr.testing.assert_allclose(alone[var], after[var], rtol=1e-6)
    assert after.attrs["step_parameters"]["ramp_fit"]["jump_search"] == "jump step"
    # a tuned jump step is what the fit follows (no second search inside ramp_fit)
    strict = jump(ds, rejection_threshold=500, override_readnoise=rn, override_gain=g)
    refit = ramp_fit(strict, override_readnoise=rn, override_gain=g)
    assert not refit["jumps"].any()
    with pytest.warns(RomanxrWarning, match="already flagged"):
        ramp_fit(strict, rejection_threshold=6.0, override_readnoise=rn, override_gain=g)


def test_numpy_equals_dask_lazy_and_input_unmodified(refs):
    rn, g = refs
    ds, _ = _cr_ramp()
    before = ds.copy(deep=True)
    attrs_before = copy.deepcopy(ds.attrs)
    eager = jump(ds, override_readnoise=rn, override_gain=g)

    def forbid(*args, **kwargs):
        raise AssertionError("the graph was computed while it was being built")

    with dask.config.set(scheduler=forbid):
        lazy = jump(ds.chunk({"y": 5, "x": 8}), override_readnoise=rn, override_gain=g)
    assert lazy["groupdq"].chunks is not None
    np.testing.assert_array_equal(eager["groupdq"].values, lazy["groupdq"].values)
    xr.testing.assert_identical(ds, before)
    assert ds.attrs == attrs_before


def test_errors(refs):
    rn, g = refs
    short = make_ramp(SIMPLE_RESULTANTS[:3], [[1], [2], [3]])
    with pytest.raises(ExposureError, match="ols_cas22"):
        jump(short, override_readnoise=rn, override_gain=g)
    with pytest.raises(ConfigError):
        jump(make_ramp(SIMPLE_RESULTANTS), rejection_threshold=float("nan"))
