"""NaN, zero and negative values in references and in user-built float data (item 7): defined
DQ flags and NaN (or documented) output, never a divide-by-zero; flags counted exactly.

Flat NaN/0 (NO_FLAT_FIELD, flat taken as 1) and dark NaN (UNRELIABLE_DARK) are also covered in
``tests/unit/test_flatfield.py`` / ``test_dark_current.py``; photom does not scale the data in
romancal 1.1 (it records the conversion only), so a NaN or 0 photmjsr divides nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from romanxr.dq import PixelFlag
from romanxr.steps.flatfield import flatfield
from romanxr.steps.ramp_fit import ramp_fit
from tests.unit._image_factories import NX, NY, open_image, write_flat, write_image
from tests.unit.ramp_testdata import make_ramp, write_refs

PATTERN = [[1], [2], [3], [4], [5]]
RATE = 100.0 / 3.04  # 100 DN per read, frame time 3.04 s
SY, SX = 3, 4
NO_GAIN, DNU = PixelFlag.NO_GAIN_VALUE, PixelFlag.DO_NOT_USE


def _science():
    return (1000.0 + np.cumsum(np.full((5, SY, SX), 100.0, np.float32), axis=0)).astype(np.float32)


@pytest.fixture(scope="module")
def bad_gain(tmp_path_factory):
    gain = np.full((SY + 8, SX + 8), 2.0, np.float32)
    gain[4, 4] = np.nan  # science pixel (0, 0)
    gain[4, 5] = 0.0  # (0, 1)
    gain[5, 6] = -1.0  # (1, 2)
    return write_refs(tmp_path_factory.mktemp("gain"), gain.shape, gain=gain, readnoise=5.0)


@pytest.fixture(scope="module")
def good_gain(tmp_path_factory):
    return write_refs(tmp_path_factory.mktemp("g"), (SY + 8, SX + 8), gain=2.0, readnoise=5.0)


@pytest.mark.parametrize("chunks", [None, {"y": 5}], ids=["numpy", "dask"])
@pytest.mark.parametrize("algorithm", ["likely", "ols_cas22"])
def test_nan_zero_negative_gain(bad_gain, algorithm, chunks):
    rn, gain = bad_gain
    out = ramp_fit(
        make_ramp(_science(), PATTERN, chunks=chunks),
        algorithm=algorithm,
        override_readnoise=rn,
        override_gain=gain,
    ).compute()
    dq, data = out["dq"].values, out["data"].values
    no_gain = (dq & NO_GAIN) != 0
    expected = np.zeros((SY, SX), bool)
    expected[0, 0] = expected[0, 1] = expected[1, 2] = True
    np.testing.assert_array_equal(no_gain, expected)  # exactly the 3 pixels
    assert int(no_gain.sum()) == 3
    good = ~expected
    np.testing.assert_allclose(data[good], RATE, rtol=1e-5)
    if algorithm == "likely":
        # the Poisson term is dropped: finite slope, zero Poisson variance
        np.testing.assert_allclose(data[expected], RATE, rtol=1e-5)
        assert np.all(out["var_poisson"].values[expected] == 0)
        assert int(((dq & DNU) != 0).sum()) == 0
    else:
        # ols_cas22: NaN and 0 gains cannot convert back to DN: NaN, DO_NOT_USE (a 0 gain divided
        # by zero inside the kernel before); a negative gain keeps romancal's value
        assert np.isnan(data[0, 0]) and np.isnan(data[0, 1])
        np.testing.assert_array_equal(np.argwhere((dq & DNU) != 0).tolist(), [[0, 0], [0, 1]])


@pytest.mark.parametrize("chunks", [None, {"y": 5}], ids=["numpy", "dask"])
@pytest.mark.parametrize("algorithm", ["likely", "ols_cas22"])
def test_nan_in_user_built_float_data(good_gain, algorithm, chunks):
    rn, gain = good_gain
    science = _science()
    science[2, 1, 1] = np.nan  # one resultant of one pixel
    science[:, 2, 3] = np.nan  # a whole pixel
    out = ramp_fit(
        make_ramp(science, PATTERN, chunks=chunks),
        algorithm=algorithm,
        override_readnoise=rn,
        override_gain=gain,
    ).compute()
    dq, data = out["dq"].values, out["data"].values
    dnu = (dq & DNU) != 0
    assert not np.isfinite(data[2, 3]) or algorithm == "ols_cas22"
    if algorithm == "likely":
        # a NaN difference is unusable: the pixel keeps a slope from the others
        np.testing.assert_allclose(data[1, 1], RATE, rtol=1e-5)
        assert np.isnan(data[2, 3])
        np.testing.assert_array_equal(np.argwhere(dnu).tolist(), [[2, 3]])
    else:
        # ols_cas22 gives such pixels 0 and DO_NOT_USE (its convention for unusable pixels)
        np.testing.assert_array_equal(np.argwhere(dnu).tolist(), [[1, 1], [2, 3]])
        assert data[1, 1] == 0 and data[2, 3] == 0
    others = ~np.isin(np.arange(SY * SX).reshape(SY, SX), [1 * SX + 1, 2 * SX + 3])
    np.testing.assert_allclose(data[others], RATE, rtol=1e-5)


def test_flat_nan_and_zero_are_counted(tmp_path):
    image = write_image(tmp_path / "r_cal.asdf")
    nan_at, zero_at = [(1, 1), (3, 4), (7, 2)], [(2, 2), (0, 9)]
    flat = write_flat(tmp_path / "flat.asdf", nan_at=nan_at, zero_at=zero_at)
    ds = open_image(image, "dask")
    out = flatfield(ds, override_flat=flat).compute()
    before = ds["dq"].values
    added = (out["dq"].values & ~before & PixelFlag.NO_FLAT_FIELD) != 0
    flagged = (out["dq"].values & PixelFlag.NO_FLAT_FIELD) != 0
    assert int(flagged.sum()) == len(nan_at) + len(zero_at)
    assert sorted(map(tuple, np.argwhere(flagged).tolist())) == sorted(nan_at + zero_at)
    assert int(added.sum()) == len(nan_at) + len(zero_at)
    # flat taken as 1 there: data unchanged, and finite everywhere
    for yx in nan_at + zero_at:
        assert out["data"].values[yx] == pytest.approx(ds["data"].values[yx])
    assert np.all(np.isfinite(out["data"].values)) and out["data"].shape == (NY, NX)
