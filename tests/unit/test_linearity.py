"""linearity: identity fallbacks, INL lookup, read-level reconstruction, clamp, laziness."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from romanxr.errors import ReferenceMismatchError
from romanxr.steps.linearity import linearity
from tests.unit.detector_helpers import (
    make_ramp,
    raise_if_dask_computes,
    snapshot,
    write_inl,
    write_linearity,
)

NO_LIN_CORR, DNU, SAT = 1 << 20, 1, 2


def _coeffs(shape, *terms):
    c = np.zeros((max(len(terms), 2), *shape), np.float32)
    for k, t in enumerate(terms):
        c[k] = t
    return c


def _refs(tmp_path, shape, lin_terms=(0, 2), inv_terms=(0, 0.5), lin_dq=None):
    lin = write_linearity(tmp_path / "lin.asdf", _coeffs(shape, *lin_terms), lin_dq)
    ilin = write_linearity(tmp_path / "ilin.asdf", _coeffs(shape, *inv_terms), inverse=True)
    return lin, ilin


def _run(ds, lin, ilin, inl="N/A"):
    return linearity(
        ds,
        override_linearity=lin,
        override_inverselinearity=ilin,
        override_integralnonlinearity=inl,
    )


def test_inl_lookup_romancal_example(tmp_path):
    """coeffs 2x, inverse 0.5x, INL +1: 0 -> 2 and 100 -> 202 (romancal's own test)."""
    data = np.zeros((3, 4, 4), np.uint16)
    data[:, :, 2:] = 100
    ds = make_ramp(tmp_path, data)
    lin, ilin = _refs(tmp_path, (4, 4))
    inl = write_inl(tmp_path / "inl.asdf", np.arange(65536), {1: np.ones(65536)})
    out = _run(ds, lin, ilin, inl)
    expected = np.where(data == 0, 2.0, 202.0).astype(np.float32)
    np.testing.assert_array_equal(out["data"].values, expected)
    assert out["data"].dtype == np.float32
    assert out.attrs["meta"]["cal_step"]["linearity"] == "COMPLETE"
    assert out.attrs["meta"]["ref_file"]["integralnonlinearity"] == "inl.asdf"
    # without INL the same references just double the data
    plain = _run(ds, lin, ilin)
    np.testing.assert_array_equal(plain["data"].values, 2 * data.astype(np.float32))
    assert plain.attrs["meta"]["ref_file"]["integralnonlinearity"] == "N/A"


def test_inl_channel_from_absolute_column(tmp_path):
    """Columns 126..127 are science channel 1, 128..130 channel 2, also in a cut-out."""
    data = np.full((2, 2, 260), 100, np.uint16)
    ds = make_ramp(tmp_path, data)
    lin, ilin = _refs(tmp_path, (2, 260))
    value = np.arange(65536)
    inl = write_inl(
        tmp_path / "inl.asdf",
        value,
        {1: np.full(65536, 1.0), 2: np.full(65536, 5.0), 3: np.full(65536, 9.0)},
    )
    out = _run(ds.isel(x=slice(126, 131)), lin, ilin, inl)
    assert out["x"].values.tolist() == [126, 127, 128, 129, 130]
    np.testing.assert_array_equal(out["data"].values[0, 0], [202, 202, 210, 210, 210])
    full = _run(ds, lin, ilin, inl)
    assert full["data"].values[0, 0, 259] == 2 * (100 + 9)


def test_identity_for_nan_zero_slope_and_flagged_pixels(tmp_path):
    data = np.full((3, 2, 3), 1000, np.uint16)
    ds = make_ramp(tmp_path, data)
    c = _coeffs((2, 3), 0, 2)
    c[0, 0, 0] = np.nan  # NaN coefficient
    c[1, 0, 1] = 0.0  # zero linear term
    lin_dq = np.zeros((2, 3), np.uint32)
    lin_dq[0, 2] = NO_LIN_CORR  # flagged in the reference
    lin_dq[1, 0] = 1 << 16  # other bits just propagate
    lin = write_linearity(tmp_path / "lin.asdf", c, lin_dq)
    ilin = write_linearity(tmp_path / "ilin.asdf", _coeffs((2, 3), 0, 0.5), inverse=True)
    out = _run(ds, lin, ilin)
    values = out["data"].values
    np.testing.assert_array_equal(values[:, 0, :], 1000)  # unchanged
    np.testing.assert_array_equal(values[:, 1, :], 2000)  # corrected
    pdq = out["pixeldq"].values
    assert pdq[0].tolist() == [NO_LIN_CORR] * 3
    assert pdq[1].tolist() == [1 << 16, 0, 0]


def test_nan_in_inverse_only_flags_and_uses_identity_inverse(tmp_path):
    data = np.full((3, 1, 2), 1000, np.uint16)
    ds = make_ramp(tmp_path, data)
    lin = write_linearity(tmp_path / "lin.asdf", _coeffs((1, 2), 0, 2))
    ic = _coeffs((1, 2), 0, 0.5)
    ic[0, 0, 0] = np.nan
    ilin = write_linearity(tmp_path / "ilin.asdf", ic, inverse=True)
    out = _run(ds, lin, ilin)
    # single-read resultants: the inverse only sets the read shape, the shift restores D
    np.testing.assert_array_equal(out["data"].values, 2000)
    assert out["pixeldq"].values.tolist() == [[NO_LIN_CORR, 0]]


def test_read_level_reconstruction_hand_computed(tmp_path):
    """P(x) = x + 0.001 x^2, Q = identity, reads [[1], [2, 3]], D = [10, 25].

    L0 = P(10) = 10.1, Ll = P(25) = 25.625, rate = 15.525 / 1.5 = 10.35 per read.
    Resultant 1: reads 20.45, 30.8, shifted by 25 - 25.625 to 19.825, 30.175;
    P -> 20.218030625, 31.085530625; mean 25.651780625 (not P(25) = 25.625).
    """
    data = np.zeros((2, 1, 1), np.uint16)
    data[:, 0, 0] = [10, 25]
    ds = make_ramp(tmp_path, data, read_pattern=[[1], [2, 3]])
    lin, ilin = _refs(tmp_path, (1, 1), lin_terms=(0, 1, 0.001), inv_terms=(0, 1))
    out = _run(ds, lin, ilin)
    np.testing.assert_allclose(out["data"].values[:, 0, 0], [10.1, 25.651780625], rtol=1e-6)


def test_saturated_resultants_kept(tmp_path):
    data = np.full((4, 1, 2), 100, np.uint16)
    ds = make_ramp(tmp_path, data)
    gdq = ds["groupdq"].values.copy()
    gdq[2:, 0, 0] = SAT
    ds = ds.assign(groupdq=(ds["groupdq"].dims, gdq))
    lin, ilin = _refs(tmp_path, (1, 2))
    out = _run(ds, lin, ilin)
    assert out["data"].values[:, 0, 0].tolist() == [200, 200, 100, 100]
    assert out["data"].values[:, 0, 1].tolist() == [200] * 4


def test_clamp_beyond_1e6(tmp_path):
    data = np.full((3, 1, 2), 20000, np.uint16)
    ds = make_ramp(tmp_path, data)
    c = _coeffs((1, 2), 0, 2)
    c[1, 0, 0] = 100.0  # 20000 -> 2e6
    ic = _coeffs((1, 2), 0, 0.5)
    ic[1, 0, 0] = 0.01
    lin = write_linearity(tmp_path / "lin.asdf", c)
    ilin = write_linearity(tmp_path / "ilin.asdf", ic, inverse=True)
    out = _run(ds, lin, ilin)
    assert out["data"].values[:, 0, 0].tolist() == [1e6] * 3
    assert out["groupdq"].values[:, 0, 0].tolist() == [DNU] * 3
    assert out["data"].values[:, 0, 1].tolist() == [40000] * 3
    assert out["groupdq"].values[:, 0, 1].tolist() == [0] * 3


@pytest.mark.parametrize("missing", ["linearity", "inverselinearity"])
def test_skipped_unless_both_polynomials(tmp_path, missing):
    ds = make_ramp(tmp_path, np.full((3, 2, 2), 100, np.uint16))
    lin, ilin = _refs(tmp_path, (2, 2))
    refs = {"linearity": lin, "inverselinearity": ilin, missing: "N/A"}
    out = _run(ds, refs["linearity"], refs["inverselinearity"])
    assert out.attrs["meta"]["cal_step"]["linearity"] == "SKIPPED"
    xr.testing.assert_identical(out["data"], ds["data"])
    assert out.attrs["meta"]["ref_file"][missing] == "N/A"


def test_mismatched_reference_raises(tmp_path):
    ds = make_ramp(tmp_path, np.full((3, 4, 4), 100, np.uint16))
    lin, ilin = _refs(tmp_path, (2, 2))
    with pytest.raises(ReferenceMismatchError, match="linearity"):
        _run(ds, lin, ilin)


def test_lazy_numpy_equals_dask_and_input_unmodified(tmp_path):
    rng = np.random.default_rng(2)
    rp = [[1], [2, 3], [4, 5, 6], [7]]
    data = np.sort(rng.integers(100, 30000, size=(4, 5, 300)), axis=0).astype(np.uint16)
    shape = (5, 300)
    a = rng.uniform(0, 2e-6, size=shape)
    lin, ilin = _refs(tmp_path, shape, lin_terms=(0, 1, a), inv_terms=(0, 1, -a, 2 * a**2))
    inl = write_inl(
        tmp_path / "inl.asdf",
        np.arange(0, 65536, 8),
        {k: np.sin(np.arange(0, 65536, 8) / (100.0 * k)) for k in (1, 2, 3)},
    )
    lazy = make_ramp(tmp_path, data, read_pattern=rp, chunks={"y": 2, "x": 70}, name="a_uncal.asdf")
    before, attrs = snapshot(lazy.copy())
    with raise_if_dask_computes():
        out = _run(lazy, lin, ilin, inl)
    assert out["data"].chunks is not None
    eager = _run(make_ramp(tmp_path, data, read_pattern=rp, name="b_uncal.asdf"), lin, ilin, inl)
    got = out.compute()
    np.testing.assert_array_equal(got["data"].values, eager["data"].values)
    np.testing.assert_array_equal(got["groupdq"].values, eager["groupdq"].values)
    np.testing.assert_array_equal(got["pixeldq"].values, eager["pixeldq"].values)
    assert not np.array_equal(got["data"].values, data.astype(np.float32))
    xr.testing.assert_identical(lazy.compute(), before)
    assert lazy.attrs == attrs


def test_inl_non_uniform_abscissa(tmp_path):
    """Unequally spaced lookup nodes: linear interpolation between the bracketing nodes.

    Identity polynomials, D = 100: INL(100) = 1 + (3 - 1) * (100 - 10) / (1000 - 10).
    """
    ds = make_ramp(tmp_path, np.full((2, 1, 1), 100, np.uint16))
    lin, ilin = _refs(tmp_path, (1, 1), lin_terms=(0, 1), inv_terms=(0, 1))
    value = np.array([0, 10, 1000, 65535])
    inl = write_inl(tmp_path / "inl.asdf", value, {1: np.array([0.0, 1.0, 3.0, 5.0])})
    out = _run(ds, lin, ilin, inl)
    np.testing.assert_allclose(out["data"].values, 100 + 1 + 2 * 90 / 990, rtol=1e-7)
