"""Casertano et al. (2022) kernel: golden values, segments, jump splitting, statistics."""

from __future__ import annotations

import numpy as np
import pytest
from ramp_testdata import fit_block

from romanxr.dataset import ReadPatternInfo
from romanxr.kernels.ramp_cas22 import cas22_fit_block


def _fit(data, rp, readnoise, gain, groupdq=None, frame_time=3.04, **kw):
    return fit_block(cas22_fit_block, data, rp, readnoise, gain, groupdq, frame_time, **kw)


def test_power_law_weights_single_segment_by_hand():
    # 3 resultants, high S/N -> power 10 weights are |(t - tmid)/tscale|^10 * 11n/(1+10n)
    rp = [[1], [2], [3]]
    info = ReadPatternInfo(rp, 1.0)
    ramp = np.array([1000.0, 2000.0, 3000.0], np.float32)
    slope, _dq, _err, vp, vr, chisq, _dumo, _gdq = _fit(ramp, rp, 1.0, 1.0, frame_time=1.0)
    # middle resultant has zero weight: slope = (R2 - R0) / 2, read var = 2 sigma^2 / 4
    assert slope[0, 0] == pytest.approx(1000.0)
    assert vr[0, 0] == pytest.approx(0.5)
    # Poisson: K = (-1/2, 0, 1/2); sum K^2 tau + 2 K0 K2 t0 = (1 + 3)/4 - 1/2 = 1/2 per unit rate
    assert vp[0, 0] == pytest.approx(0.5 * 1000.0)
    assert chisq[0, 0] == 0
    assert info.n_reads.tolist() == [1, 1, 1]


def test_segments_split_on_any_flag_and_combine_by_read_variance():
    rp = [[1], [2], [3], [4], [5], [6], [7]]
    t = ReadPatternInfo(rp, 3.04).mean_time
    ramp = (3.0 * t).astype(np.float32)
    ramp[4:] += 1000.0  # offset hidden behind the flagged resultant
    gdq = np.zeros(7, np.uint8)
    gdq[3] = 8  # DROPOUT splits [0..2] and [4..6]
    slope, dq, _err, _vp, vr, _chisq, _dumo, _out_gdq = _fit(ramp, rp, 5.0, 1.0, groupdq=gdq)
    assert slope[0, 0] == pytest.approx(3.0, rel=1e-5)
    assert dq[0, 0] == 0
    # two equal 3-resultant segments: combined read variance is half of one segment's
    one = _fit(ramp[:3], rp[:3], 5.0, 1.0)[4][0, 0]
    assert vr[0, 0] == pytest.approx(one / 2, rel=1e-5)


def test_jump_detected_and_both_resultants_flagged():
    rp = [[1], [2], [3], [4], [5], [6], [7], [8]]
    t = ReadPatternInfo(rp, 3.04).mean_time
    ramp = (5.0 * t).astype(np.float32)
    ramp[5:] += 500.0
    slope, dq, _err, _vp, _vr, _chisq, _dumo, gdq = _fit(ramp, rp, 5.0, 1.0)
    assert np.flatnonzero(gdq[:, 0, 0]).tolist() == [4, 5]
    assert dq[0, 0] == 4
    assert slope[0, 0] == pytest.approx(5.0, rel=1e-4)
    no_jump = _fit(ramp, rp, 5.0, 1.0, use_jump=False)
    assert no_jump[0][0, 0] > 10.0 and not no_jump[-1].any()


def test_threshold_parameters_change_detection():
    rp = [[1], [2], [3], [4], [5], [6]]
    t = ReadPatternInfo(rp, 3.04).mean_time
    ramp = (5.0 * t).astype(np.float32)
    ramp[3:] += 100.0  # a jump well above 5.5 sigma but far below 50
    found = _fit(ramp, rp, 5.0, 1.0)[-1].any()
    strict = _fit(ramp, rp, 5.0, 1.0, threshold_intercept=50.0)[-1].any()
    assert found and not strict


def test_no_segments_gives_zero_slope_and_do_not_use():
    rp = [[1], [2], [3], [4]]
    gdq = np.array([2, 2, 2, 2], np.uint8)
    slope, dq, err, *_ = _fit(np.arange(4.0), rp, 5.0, 1.0, groupdq=gdq)
    assert slope[0, 0] == 0 and err[0, 0] == 0
    assert dq[0, 0] == 1 | 2


def test_works_with_fewer_than_four_resultants():
    rp = [[1], [2, 3]]
    t = ReadPatternInfo(rp, 3.04).mean_time
    slope = _fit((7.0 * t).astype(np.float32), rp, 5.0, 1.0)[0]
    assert slope[0, 0] == pytest.approx(7.0, rel=1e-5)


@pytest.mark.slow
def test_uncertainty_matches_scatter():
    from tests.unit.ramp_testdata import monte_carlo_ramps

    rp, resultants, true_rate = monte_carlo_ramps()
    slope, _dq, err, *_ = _fit(resultants, rp, 20.0, 1.0)
    slope, err = slope[0], err[0]
    residuals = (slope - true_rate) / err
    np.testing.assert_allclose(np.std(slope), np.mean(err), rtol=0.05)
    assert abs(np.mean(residuals)) < 0.1
    np.testing.assert_allclose(np.std(residuals), 1.0, rtol=0.05)
