"""Degenerate exposures (item 8): errors at graph-building time, or a defined result.

Every pixel saturated: the pipeline's zeroed image is tested in
``tests/unit/test_saturated_exposure.py`` (``test_zeroed_image``, numpy and dask).
"""

from __future__ import annotations

import dask
import numpy as np
import pytest

import romanxr
from romanxr.errors import ExposureError
from romanxr.steps.jump import jump
from romanxr.steps.ramp_fit import ramp_fit
from tests.unit.ramp_testdata import make_ramp, write_refs

SY, SX = 2, 3


def _raise_on_compute(*args, **kwargs):
    raise AssertionError("computed while building the graph")


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    return write_refs(tmp_path_factory.mktemp("deg"), (SY + 8, SX + 8), gain=2.0, readnoise=5.0)


def _ramp(nres, **kwargs):
    science = 1000.0 + np.cumsum(np.full((nres, SY, SX), 50.0, np.float32), axis=0)
    return make_ramp(science.astype(np.float32), [[i + 1] for i in range(nres)], **kwargs)


@pytest.mark.parametrize("algorithm", ["likely", "ols_cas22"])
def test_single_resultant_is_refused_before_compute(refs, algorithm):
    rn, gain = refs
    with (
        dask.config.set(scheduler=_raise_on_compute),
        pytest.raises(ExposureError, match=r"at least 2 resultants.*has 1"),
    ):
        ramp_fit(
            _ramp(1, chunks={"y": 5}),
            algorithm=algorithm,
            override_readnoise=rn,
            override_gain=gain,
        )


def test_single_resultant_jump_step(refs):
    rn, gain = refs
    with pytest.raises(ExposureError, match="at least 2 resultants"):
        jump(_ramp(1), override_readnoise=rn, override_gain=gain)


@pytest.mark.parametrize("nres", [2, 3])
def test_too_few_resultants_for_the_likely_fit(refs, nres):
    rn, gain = refs
    with (
        dask.config.set(scheduler=_raise_on_compute),
        pytest.raises(ExposureError, match=f"at least 4 resultants.*has {nres}.*ols_cas22"),
    ):
        ramp_fit(_ramp(nres, chunks={"y": 5}), override_readnoise=rn, override_gain=gain)


@pytest.mark.parametrize("nres", [2, 3])
def test_short_ramps_fit_with_ols_cas22(refs, nres):
    rn, gain = refs
    out = ramp_fit(_ramp(nres), algorithm="ols_cas22", override_readnoise=rn, override_gain=gain)
    np.testing.assert_allclose(out["data"].values, 50.0 / 3.04, rtol=1e-5)
    assert np.all(out["dq"].values == 0)


def test_truncated_exposure_with_its_read_pattern_calibrates(refs):
    """``meta.exposure.truncated``: the read_pattern lists the resultants actually taken."""
    rn, gain = refs
    ds = _ramp(5)
    ds.attrs["meta"]["exposure"]["truncated"] = True
    out = ramp_fit(ds, override_readnoise=rn, override_gain=gain)
    np.testing.assert_allclose(out["data"].values, 50.0 / 3.04, rtol=1e-5)
    assert out.attrs["meta"]["exposure"]["truncated"] is True


def test_truncated_data_with_the_full_ma_table_fail_at_open(tmp_path):
    """Data cut short but the MA table of the full exposure: a typed error at open."""
    import roman_datamodels.datamodels as dm

    model = dm.ScienceRawModel.create_fake_data(shape=(3, 16, 16))
    model.meta.exposure.read_pattern = [[1], [2], [3], [4], [5], [6]]
    model.meta.exposure.frame_time = 3.04
    model.meta.exposure.truncated = True
    path = tmp_path / "t_uncal.asdf"
    model.save(path)
    with pytest.raises(ExposureError, match="describes 6 resultants but the data have 3"):
        romanxr.open_uncal(path)
