"""dark_decay."""

from __future__ import annotations

import dask
import numpy as np
import pytest

from romanxr.errors import ExposureError, ReferenceMismatchError
from romanxr.kernels.dark_decay import dark_decay_signal, resultant_weights
from romanxr.kernels.timing import read_time_map
from romanxr.refs import ReferenceResolver
from romanxr.steps.dark_decay import dark_decay
from tests.unit._ramp_factory import make_ramp, write_decay_reference

RP = [[1], [2, 3], [4, 5, 6], [7]]


def _no_compute(*args, **kwargs):
    raise RuntimeError("the graph was computed while it should only have been built")


@pytest.fixture
def ref(tmp_path):
    return write_decay_reference(tmp_path / "decay.asdf", amplitude=0.4, time_constant=23.0)


def _ramp(ny=12, nx=20, y0=100, x0=3000, **kw):
    rng = np.random.default_rng(5)
    data = rng.normal(1000, 10, (len(RP), ny, nx)).astype(np.float32)
    return make_ramp(data, y0=y0, x0=x0, read_pattern=RP, **kw)


def test_weights_by_hand():
    w = resultant_weights([[1], [2, 3]], 3.0, 23.0)
    np.testing.assert_allclose(w[0], np.exp(0.5 * 3 / 23))
    np.testing.assert_allclose(w[1], (np.exp(-0.5 * 3 / 23) + np.exp(-1.5 * 3 / 23)) / 2)


def test_signal_matches_direct_formula():
    y, x = np.arange(10, 14), np.arange(200, 205)
    sig = dark_decay_signal(3.04, 7, RP, 0.4, 23.0, y, x)
    for i, group in enumerate(RP):
        direct = np.mean(
            [0.4 * np.exp(-read_time_map(3.04, 7, k - 1.5, y, x) / 23.0) for k in group], axis=0
        )
        np.testing.assert_allclose(sig[i], direct, rtol=1e-13)


def test_first_single_read_mean_is_minus_amplitude():
    # upstream check: ft = 3, tau = 23, first resultant a single read -> mean ~ amplitude
    y = x = np.arange(0, 4096, 4)
    sig = dark_decay_signal(3.0, 1, [[1], [2, 3]], 1.0, 23.0, y, x)
    assert abs(sig[0].mean() - 1.0) < 1e-3


def test_step_subtracts_signal_on_cutout(ref):
    ds = _ramp()
    out = dark_decay(ds, override_darkdecaysignal=ref)
    expect = dark_decay_signal(3.04, 1, RP, 0.4, 23.0, ds.y.values, ds.x.values)
    np.testing.assert_allclose(ds.data.values - out.data.values, expect, atol=1e-4)
    assert out.data.dtype == np.float32
    assert out.attrs["meta"]["cal_step"]["dark_decay"] == "COMPLETE"
    assert out.attrs["meta"]["ref_file"]["darkdecaysignal"] == "decay.asdf"
    assert out.attrs["step_parameters"]["dark_decay"]["time_constant"] == 23.0
    assert "dark_decay" not in ds.attrs["meta"]["cal_step"]


def test_linear_in_amplitude_and_decays(tmp_path):
    ds = make_ramp(np.zeros((4, 6, 8), np.float32), read_pattern=RP, y0=50, x0=60)
    one = write_decay_reference(tmp_path / "a1.asdf", amplitude=1.0, time_constant=23.0)
    two = write_decay_reference(tmp_path / "a2.asdf", amplitude=2.0, time_constant=23.0)
    d1 = -dark_decay(ds, override_darkdecaysignal=one).data.values
    d2 = -dark_decay(ds, override_darkdecaysignal=two).data.values
    np.testing.assert_allclose(d2, 2 * d1, rtol=1e-6)
    # early resultants are corrected more than later ones
    assert np.all(d1[0] > d1[1]) and np.all(d1[1] > d1[2]) and np.all(d1[2] > d1[3])


def test_averaging_dilutes(tmp_path):
    one = write_decay_reference(tmp_path / "a.asdf", amplitude=1.0, time_constant=23.0)
    z = np.zeros((2, 4, 4), np.float32)
    single = dark_decay(make_ramp(z, read_pattern=[[1], [2]]), override_darkdecaysignal=one)
    averaged = dark_decay(make_ramp(z, read_pattern=[[1], [2, 3]]), override_darkdecaysignal=one)
    assert np.all(-averaged.data.values[1] < -single.data.values[1])
    np.testing.assert_array_equal(averaged.data.values[0], single.data.values[0])


def test_numpy_equals_dask_and_lazy(ref):
    ds = _ramp(ny=16, nx=24)
    eager = dark_decay(ds, override_darkdecaysignal=ref)
    chunked = ds.chunk({"y": 5, "x": 7})
    with dask.config.set(scheduler=_no_compute):
        lazy = dark_decay(chunked, override_darkdecaysignal=ref)
    assert lazy.data.chunks is not None
    np.testing.assert_array_equal(lazy.data.values, eager.data.values)


def test_input_unmodified(ref):
    ds = _ramp()
    before = ds.copy(deep=True)
    dark_decay(ds, override_darkdecaysignal=ref)
    assert ds.identical(before)
    assert ds.attrs == before.attrs


def test_missing_detector_entry(ref):
    with pytest.raises(ReferenceMismatchError, match="WFI07"):
        dark_decay(_ramp(detector="WFI07"), override_darkdecaysignal=ref)


def test_bad_detector_name(ref):
    with pytest.raises(ExposureError, match="detector"):
        dark_decay(_ramp(detector="NRCA1"), override_darkdecaysignal=ref)


def test_not_applicable_reference_skips():
    ds = _ramp()
    out = dark_decay(ds, resolver=ReferenceResolver(overrides={"darkdecaysignal": "N/A"}))
    assert out.attrs["meta"]["cal_step"]["dark_decay"] == "SKIPPED"
    np.testing.assert_array_equal(out.data.values, ds.data.values)
