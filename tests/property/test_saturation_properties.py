"""Property-based tests of the saturation kernel through the step: random valid read patterns,
ramps and thresholds (some NaN) never crash, agree between numpy and dask for any chunking
and pixel growth, leave the input unmodified, and flag consistently."""

from __future__ import annotations

import copy

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from romanxr.dq import GroupFlag, PixelFlag  # noqa: E402
from romanxr.steps.saturation import saturation  # noqa: E402
from tests.property.test_ramp_properties import read_patterns  # noqa: E402
from tests.unit.ramp_testdata import make_ramp  # noqa: E402

SY, SX = 5, 6
FY, FX = SY + 8, SX + 8


@pytest.fixture(scope="module")
def sat_refs(tmp_path_factory):
    """Saturation references: one plain, one with NaN thresholds at two pixels."""
    import roman_datamodels.datamodels as dm

    folder = tmp_path_factory.mktemp("sat")
    out = {}
    for name, nan_at in (("plain", []), ("nan", [(5, 5), (8, 9)])):
        ref = dm.SaturationRefModel.create_fake_data(shape=(FY, FX))
        threshold = np.full((FY, FX), 3000.0, np.float32)
        for yx in nan_at:
            threshold[yx] = np.nan
        ref.data = threshold
        ref.dq = np.zeros((FY, FX), np.uint32)
        out[name] = (folder / f"sat_{name}.asdf", nan_at)
        ref.save(out[name][0])
    return out


@given(
    pattern=read_patterns(min_resultants=1, max_resultants=6),
    seed=st.integers(0, 2**32 - 1),
    grow=st.integers(0, 2),
    chunk=st.integers(3, FY),
    which=st.sampled_from(["plain", "nan"]),
)
def test_saturation_properties(sat_refs, pattern, seed, grow, chunk, which):
    rng = np.random.default_rng(seed)
    rate = rng.uniform(-50.0, 800.0, (SY, SX))
    mean_reads = np.array([np.mean(g) for g in pattern])
    science = (500.0 + rate[None] * mean_reads[:, None, None]).astype(np.float32)
    ds = make_ramp(science, pattern)
    before = ds.copy(deep=True)
    attrs = copy.deepcopy(ds.attrs)
    ref, nan_at = sat_refs[which]
    out_np = saturation(ds, n_pix_grow_sat=grow, override_saturation=ref)
    out_dk = saturation(
        ds.chunk({"y": chunk, "x": chunk}), n_pix_grow_sat=grow, override_saturation=ref
    ).compute()
    assert ds.identical(before) and ds.attrs == attrs
    for name in ("groupdq", "pixeldq", "data"):
        np.testing.assert_array_equal(out_np[name].values, out_dk[name].values, err_msg=name)
    gdq = out_np["groupdq"].values
    data = ds["data"].values
    sat = (gdq & GroupFlag.SATURATED) != 0
    # once saturated, saturated for the rest of the ramp
    assert np.all(sat[1:] >= sat[:-1])
    # without growth: every resultant at or above the threshold is flagged
    threshold = np.full(data.shape[1:], 3000.0)
    for yx in nan_at:
        threshold[yx] = np.nan
    if grow == 0:
        above = data >= threshold[None]
        assert np.all(sat[above])
    # NaN thresholds: never SATURATED there, and NO_SAT_CHECK in pixeldq
    pdq = out_np["pixeldq"].values
    for yx in nan_at:
        if grow == 0:
            assert not sat[(slice(None), *yx)].any()
        assert pdq[yx] & PixelFlag.NO_SAT_CHECK
    # A/D floor: data <= 0 gets AD_FLOOR | DO_NOT_USE
    floor = data <= 0
    assert np.all((gdq[floor] & GroupFlag.AD_FLOOR) != 0)
    assert np.all((gdq[floor] & GroupFlag.DO_NOT_USE) != 0)
