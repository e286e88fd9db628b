"""Optimal-weight ramp fit (Casertano et al. 2022) with the Sharma & Casertano (2024) jump test.

Works in electrons (resultants and read noise multiplied by the gain); results are returned in
DN/s. Each pixel is split into segments of consecutive unflagged resultants; each segment gets
the power-law weighted least-squares slope; a jump test on single and double resultant
differences splits segments further; accepted segments are combined with inverse read-noise
variance weights. All per-pixel work is in numba with scratch arrays allocated once per block.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from romanxr.kernels.ramp_common import (
    _G_DNU,
    _G_JUMP,
    _G_SAT,
    _P_DNU,
    _P_JUMP,
    _P_NO_GAIN,
    _P_SAT,
    uniform_slope_weights,
)

__all__ = ["cas22_fit_block"]


@njit(cache=True, nogil=True)
def _power(snr):
    # Casertano et al. (2022) table 2; a NaN signal-to-noise falls through to the top row
    if snr < 5.0:
        return 0.0
    if snr < 10.0:
        return 0.4
    if snr < 20.0:
        return 1.0
    if snr < 50.0:
        return 3.0
    if snr < 100.0:
        return 6.0
    return 10.0


@njit(cache=True, nogil=True)
def _fit_segment(r, t, tau, n, rn2, s, e, w):
    """Slope, read variance and unit Poisson variance of resultants s..e (inclusive)."""
    if e - s + 1 <= 1:
        return np.nan, np.nan, np.nan
    smax = r[e] - r[s]
    if not (smax > 0):
        smax = 0.0
    power = _power(smax / math.sqrt(rn2 + smax))
    t_mid = 0.5 * (t[s] + t[e])
    t_scale = 0.5 * (t[e] - t[s])
    if t_scale == 0:
        t_scale = 1.0
    f0 = 0.0
    f1 = 0.0
    f2 = 0.0
    for j in range(s, e + 1):
        wj = (1.0 + power) * n[j] / (1.0 + power * n[j]) * abs((t[j] - t_mid) / t_scale) ** power
        w[j] = wj
        f0 += wj
        f1 += wj * t[j]
        f2 += wj * t[j] * t[j]
    det = f0 * f2 - f1 * f1
    if det == 0:
        return 0.0, 0.0, 0.0
    slope = 0.0
    var_r = 0.0
    var_p = 0.0
    cum = 0.0  # sum of K_i t_i over earlier resultants
    for j in range(s, e + 1):
        k = (f0 * t[j] - f1) * w[j] / det
        slope += k * r[j]
        var_r += k * k * rn2 / n[j]
        var_p += k * k * tau[j] + 2.0 * k * cum
        cum += k * t[j]
    return slope, var_r, var_p


@njit(cache=True, nogil=True)
def _stat(r, t, tau, n, rn2, i, j, slope, correct):
    dtij = t[j] - t[i]
    delta = (r[j] - r[i]) / dtij - slope
    var = (rn2 * (1.0 / n[i] + 1.0 / n[j]) + slope * (tau[i] + tau[j] - 2.0 * t[i])) / (dtij * dtij)
    return delta / math.sqrt(var + correct) if var + correct >= 0 else np.nan


@njit(cache=True, nogil=True)
def _max_stat(r, t, tau, n, rn2, s, e, slope):
    """Largest jump statistic over a segment and the index of its first resultant."""
    if s == e:
        return 0, np.nan
    correct = -slope / (t[e] - t[s])
    best = _stat(r, t, tau, n, rn2, e - 1, e, slope, correct)
    arg = e - 1
    for i in range(s, e - 1):
        s1 = _stat(r, t, tau, n, rn2, i, i + 1, slope, correct)
        s2 = _stat(r, t, tau, n, rn2, i, i + 2, slope, correct)
        # fmax semantics: a NaN loses to a number
        st = s2 if (s1 != s1 or s2 > s1) else s1
        if st > best:
            best = st
            arg = i
    return arg, best


@njit(cache=True, nogil=True, inline="always")
def _pixel_flags(gq, flags, slope_dn, err, g, gdq_o, iy, ix):
    """Pixel DQ from the group flags of one pixel (copied into ``gdq_o``) and its fit.

    Inlined into the block by numba (a call per pixel would cost time; so would splitting
    the segment loop out of the block: measured 8 % slower)."""
    all_sat = True
    all_bad = True
    any_jump = False
    for k in range(gq.shape[0]):
        gdq_o[k, iy, ix] = gq[k]
        if gq[k] & _G_SAT == 0:
            all_sat = False
        if gq[k] & (_G_SAT | _G_DNU) == 0:
            all_bad = False
        if gq[k] & _G_JUMP:
            any_jump = True
    if any_jump:
        flags |= _P_JUMP
    if all_sat:
        flags |= _P_SAT
    if all_bad or not np.isfinite(slope_dn) or not (err > 0):
        flags |= _P_DNU
    if g <= 0 or not np.isfinite(g):
        flags |= _P_NO_GAIN
    return flags


@njit(cache=True, nogil=True)
def _cas22_block(data, groupdq, pixeldq, readnoise, gain, t, tau, n, uniform_w, use_jump, b0, b1):
    nres, ny, nx = data.shape
    slope_o = np.empty((ny, nx), np.float32)
    err_o = np.empty((ny, nx), np.float32)
    vp_o = np.empty((ny, nx), np.float32)
    vr_o = np.empty((ny, nx), np.float32)
    dumo_o = np.empty((ny, nx), np.float32)
    dq_o = np.empty((ny, nx), np.uint32)
    gdq_o = np.empty((nres, ny, nx), np.uint8)
    r = np.zeros(nres)
    w = np.zeros(nres)
    gq = np.zeros(nres, np.uint8)
    stack_s = np.zeros(nres + 1, np.int64)
    stack_e = np.zeros(nres + 1, np.int64)
    for iy in range(ny):
        for ix in range(nx):
            g = np.float64(gain[iy, ix])
            rn = np.float64(readnoise[iy, ix]) * g
            rn2 = rn * rn
            su = 0.0
            for k in range(nres):
                v = np.float64(data[k, iy, ix])
                su += uniform_w[k] * v
                r[k] = v * g
                gq[k] = groupdq[k, iy, ix]
            # initial segments: runs of unflagged resultants, pushed in time order
            top = 0
            start = -1
            for k in range(nres):
                if gq[k] == 0:
                    if start < 0:
                        start = k
                elif start >= 0:
                    stack_s[top] = start
                    stack_e[top] = k - 1
                    top += 1
                    start = -1
            if start >= 0:
                stack_s[top] = start
                stack_e[top] = nres - 1
                top += 1
            if g == 0:
                top = 0  # a zero gain: nothing to fit (the result is NaN, flagged below)
            wsum = 0.0
            slope_acc = 0.0
            vr_acc = 0.0
            vp_acc = 0.0
            while top > 0:
                top -= 1
                s = stack_s[top]
                e = stack_e[top]
                a, vr, vp = _fit_segment(r, t, tau, n, rn2, s, e, w)
                if use_jump:
                    arg, best = _max_stat(r, t, tau, n, rn2, s, e, a)
                    clip = a
                    if not (clip > 1.0):
                        clip = 1.0
                    if not (clip < 1e4):
                        clip = 1e4
                    if best > b0 - b1 * math.log10(clip):
                        gq[arg] |= _G_JUMP
                        gq[arg + 1] |= _G_JUMP
                        if arg > s:
                            stack_s[top] = s
                            stack_e[top] = arg - 1
                            top += 1
                        if arg + 1 < e:
                            stack_s[top] = arg + 2
                            stack_e[top] = e
                            top += 1
                        continue
                if a == a:
                    wt = 0.0 if vr == 0 else 1.0 / vr
                    wsum += wt
                    slope_acc += wt * a
                    vr_acc += wt * wt * vr
                    vp_acc += wt * wt * vp
            if wsum != 0:
                slope_acc /= wsum
                vr_acc /= wsum * wsum
                vp_acc /= wsum * wsum
            vp_acc *= max(slope_acc, 0.0)
            if g == 0:  # no conversion back to DN: NaN, flagged NO_GAIN_VALUE and DO_NOT_USE
                slope_dn = np.nan
                vr_dn = np.nan
                vp_dn = np.nan
            else:
                slope_dn = slope_acc / g
                vr_dn = vr_acc / (g * g)
                vp_dn = vp_acc / (g * g)
            err = math.sqrt(vr_dn + vp_dn) if vr_dn + vp_dn >= 0 else np.nan
            dq_o[iy, ix] = _pixel_flags(gq, pixeldq[iy, ix], slope_dn, err, g, gdq_o, iy, ix)
            s32 = np.float32(slope_dn)
            slope_o[iy, ix] = s32
            vr_o[iy, ix] = vr_dn
            vp_o[iy, ix] = vp_dn
            err_o[iy, ix] = err
            dumo_o[iy, ix] = np.float32(su) - s32
    return slope_o, dq_o, err_o, vp_o, vr_o, dumo_o, gdq_o


def cas22_fit_block(
    data: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    readnoise: np.ndarray,
    gain: np.ndarray,
    *,
    mean_time: np.ndarray,
    n_reads: np.ndarray,
    variance_time: np.ndarray,
    use_jump: bool = True,
    threshold_intercept: float = 5.5,
    threshold_constant: float = 1.0 / 3.0,
) -> tuple[np.ndarray, ...]:
    """Casertano et al. (2022) ramp fit of a block of pixels.

    Parameters
    ----------
    data : ndarray (nres, ny, nx)
        Resultants (DN).
    groupdq : ndarray uint8 (nres, ny, nx)
        Group flags; any bit ends a segment.
    pixeldq : ndarray uint32 (ny, nx)
        Input pixel flags.
    readnoise, gain : ndarray (ny, nx)
        Read noise per read (DN) and gain (e-/DN).
    mean_time, n_reads, variance_time : ndarray (nres,)
        Read-pattern timing.
    use_jump : bool
        Run the Sharma & Casertano (2024) jump test.
    threshold_intercept, threshold_constant : float
        Jump threshold ``b0 - b1 * log10(clip(rate_e, 1, 1e4))`` in sigma.

    Returns
    -------
    slope, dq, err, var_poisson, var_rnoise, chisq, dumo : ndarray (ny, nx)
        float32 (``dq`` uint32; ``chisq`` zeros: this fitter has none). DN/s, (DN/s)^2.
    groupdq_out : ndarray uint8 (nres, ny, nx)
        ``groupdq`` with JUMP_DET on both resultants around each detected jump.
    """
    t = np.asarray(mean_time, dtype=np.float64)
    n = np.asarray(n_reads, dtype=np.float64)
    tau = np.asarray(variance_time, dtype=np.float64)
    w = uniform_slope_weights(t, n)
    slope, dq, err, vp, vr, dumo, gdq = _cas22_block(
        np.ascontiguousarray(data, dtype=np.float32),
        np.ascontiguousarray(groupdq, dtype=np.uint8),
        np.ascontiguousarray(pixeldq, dtype=np.uint32),
        np.ascontiguousarray(readnoise, dtype=np.float32),
        np.ascontiguousarray(gain, dtype=np.float32),
        t,
        tau,
        n,
        w,
        bool(use_jump),
        float(threshold_intercept),
        float(threshold_constant),
    )
    chisq = np.zeros(slope.shape, np.float32)
    return slope, dq, err, vp, vr, chisq, dumo, gdq
