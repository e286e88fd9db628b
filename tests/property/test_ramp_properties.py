"""Property-based tests of the ramp kernels through ``ramp_fit`` (both fitters, jump detection
on and off): random valid read patterns and ramps never crash, give finite results wherever a
pixel has usable data, flag exactly the pixels without a result, agree between numpy and
dask, and leave the input unmodified.

Examples per test: profile ``ci`` (25, the default) or ``HYPOTHESIS_PROFILE=thorough`` (500);
see ``tests/conftest.py``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from romanxr.dq import GroupFlag, PixelFlag  # noqa: E402
from romanxr.errors import ExposureError  # noqa: E402
from romanxr.steps.ramp_fit import ramp_fit  # noqa: E402
from tests.unit.ramp_testdata import make_ramp, write_refs  # noqa: E402

NY, NX = 3, 4  # science area; make_ramp adds the 4-pixel border
GAIN, READNOISE = 2.0, 5.0


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    return write_refs(
        tmp_path_factory.mktemp("prop"), (NY + 8, NX + 8), gain=GAIN, readnoise=READNOISE
    )


@st.composite
def read_patterns(draw, min_resultants=1, max_resultants=8):
    """Strictly increasing 1-based reads grouped into resultants, with optional skipped reads."""
    n = draw(st.integers(min_resultants, max_resultants))
    pattern, read = [], 0
    for _ in range(n):
        read += draw(st.integers(1, 3))  # a gap of up to 2 skipped reads
        size = draw(st.integers(1, 4))
        pattern.append(list(range(read, read + size)))
        read += size - 1
    return pattern


@st.composite
def ramps(draw, min_resultants=1):
    pattern = draw(read_patterns(min_resultants=min_resultants))
    nres = len(pattern)
    frame_time = draw(st.sampled_from([3.04, 0.5, 10.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    mean_reads = np.array([np.mean(g) for g in pattern])
    rate = rng.uniform(-2.0, 200.0, (NY, NX))  # DN/s, a few slightly negative
    science = (
        1000.0
        + rate[None] * (mean_reads[:, None, None] * frame_time)
        + rng.normal(0.0, READNOISE, (nres, NY, NX))
    ).astype(np.float32)
    groupdq = np.zeros((nres, NY, NX), np.uint8)
    flag_kind = draw(st.sampled_from(["none", "saturated_tail", "random", "all_saturated"]))
    if flag_kind == "saturated_tail":  # saturation from some resultant on, as the step flags
        start = rng.integers(0, nres, (NY, NX))
        groupdq[np.arange(nres)[:, None, None] >= start[None]] = GroupFlag.SATURATED
    elif flag_kind == "random":
        bits = np.array([0, 0, 0, GroupFlag.DO_NOT_USE, GroupFlag.SATURATED], np.uint8)
        groupdq = rng.choice(bits, (nres, NY, NX))
    elif flag_kind == "all_saturated":
        groupdq[:] = GroupFlag.SATURATED
    if draw(st.booleans()):  # a cosmic ray in one pixel
        k = int(rng.integers(1, max(2, nres)))
        science[k:, 1, 2] += 5000.0
    return pattern, frame_time, science, groupdq


def _fit(ds, algorithm, jumps, refs):
    rn, gain = refs
    return ramp_fit(
        ds,
        algorithm=algorithm,
        use_ramp_jump_detection=jumps,
        include_var_rnoise=True,
        override_readnoise=rn,
        override_gain=gain,
    )


def _usable(groupdq):
    """Per pixel: the number of resultants without SATURATED/DO_NOT_USE."""
    bad = (groupdq & (GroupFlag.SATURATED | GroupFlag.DO_NOT_USE)) != 0
    return (~bad).sum(axis=0)


@pytest.mark.parametrize("algorithm", ["likely", "ols_cas22"])
@pytest.mark.parametrize("jumps", [True, False], ids=["jump", "nojump"])
@given(case=ramps())
def test_ramp_fit_properties(refs, algorithm, jumps, case):
    pattern, frame_time, science, groupdq = case
    nres = len(pattern)
    ds = make_ramp(science, pattern, frame_time=frame_time, groupdq=groupdq)
    before = ds.copy(deep=True)
    attrs_before = copy.deepcopy(ds.attrs)
    if nres < 2:
        with pytest.raises(ExposureError, match="at least 2 resultants"):
            _fit(ds.chunk({"y": 5}), algorithm, jumps, refs)
        return
    if algorithm == "likely" and nres < 4:
        # too few resultants for the likelihood fit: a typed error at graph-building time
        with pytest.raises(ExposureError, match="at least 4 resultants"):
            _fit(ds.chunk({"y": 5}), algorithm, jumps, refs)
        return
    out_np = _fit(ds, algorithm, jumps, refs)
    out_dask = _fit(ds.chunk({"y": 5, "x": 6}), algorithm, jumps, refs).compute()

    # input unmodified (values and attrs)
    assert ds.identical(before) and ds.attrs == attrs_before

    # numpy == dask, bit for bit
    for name in ("data", "dq", "err", "var_poisson", "var_rnoise"):
        np.testing.assert_array_equal(out_np[name].values, out_dask[name].values, err_msg=name)

    data, dq = out_np["data"].values, out_np["dq"].values
    err = out_np["err"].values
    usable = _usable(groupdq)
    do_not_use = (dq & PixelFlag.DO_NOT_USE) != 0
    # DQ consistent: a NaN slope is always flagged DO_NOT_USE (likely gives NaN there, ols_cas22
    # a 0 as romancal does), and every pixel not flagged has a finite slope and error
    assert np.all(do_not_use[np.isnan(data)])
    assert np.all(np.isfinite(data[~do_not_use])) and np.all(np.isfinite(err[~do_not_use]))
    assert np.all(err[~do_not_use] >= 0)
    # no usable resultant -> DO_NOT_USE; two unflagged leading resultants -> a result
    assert np.all(do_not_use[usable == 0])
    leading_good = ((groupdq[:2] & (GroupFlag.SATURATED | GroupFlag.DO_NOT_USE)) == 0).all(0)
    assert not np.any(do_not_use[leading_good])
    # flags only ever added: the input pixeldq (0 here) bits plus ramp-fit bits, all known
    known = np.bitwise_or.reduce([int(f) for f in PixelFlag])
    assert np.all((dq & ~np.uint32(known)) == 0)


@given(pattern=read_patterns(min_resultants=1, max_resultants=12), ft=st.floats(0.01, 100.0))
def test_valid_read_patterns_give_consistent_coords(pattern, ft):
    """mean_time increases, n_reads counts the reads, first <= last read."""
    science = np.zeros((len(pattern), NY, NX), np.float32)
    ds = make_ramp(science, pattern, frame_time=ft, border_arrays=False)
    n_reads = ds["n_reads"].values
    assert list(n_reads) == [len(g) for g in pattern]
    assert np.all(np.diff(ds["mean_time"].values) > 0)
    assert np.all(ds["variance_time"].values >= 0)
