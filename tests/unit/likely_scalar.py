"""A per-pixel twin of the row-vectorised likelihood block, as a cross-check of the kernel.

Every pixel goes through :func:`romanxr.kernels.ramp_likely_pixel.likely_fit_pixel` (the
scalar fit and jump search) and its flags are set pixel by pixel; the kernel's row steps
must agree with it (to rounding: the kernel multiplies by reciprocals where this divides).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from romanxr.dq import GroupFlag, PixelFlag
from romanxr.kernels.ramp_common import (
    difference_covariance_terms,
    jump_thresholds,
    uniform_slope_weights,
)
from romanxr.kernels.ramp_likely_pixel import likely_fit_pixel

G_DNU = int(GroupFlag.DO_NOT_USE)
G_SAT = int(GroupFlag.SATURATED)
G_JUMP = int(GroupFlag.JUMP_DET)
P_DNU = np.uint32(int(PixelFlag.DO_NOT_USE))
P_SAT = np.uint32(int(PixelFlag.SATURATED))
P_JUMP = np.uint32(int(PixelFlag.JUMP_DET))
P_NO_GAIN = np.uint32(int(PixelFlag.NO_GAIN_VALUE))


@njit(nogil=True, error_model="numpy")
def _pixel_flags(gq, pixeldq, s, g):
    n_good = 0
    any_sat = False
    any_jump = False
    for k in range(gq.shape[0]):
        if gq[k] & (G_SAT | G_DNU) == 0:
            n_good += 1
        if gq[k] & G_SAT:
            any_sat = True
        if gq[k] & G_JUMP:
            any_jump = True
    flags = pixeldq
    if n_good <= 1:
        flags |= P_DNU
    if any_sat:
        flags |= P_SAT
    if any_jump:
        flags |= P_JUMP
    if not np.isfinite(s):
        flags |= P_DNU
    if not (g > 0 and np.isfinite(g)):
        flags |= P_NO_GAIN
    return flags


@njit(nogil=True, error_model="numpy")
def _scalar_block(
    data, groupdq, pixeldq, readnoise, gain, dt, a_r, b_r, a_p, b_p, n_reads, uniform_w, t1, t2,
    search, jump_cuts_one,
):  # fmt: skip
    nres, ny, nx = data.shape
    m = nres - 1
    slope = np.empty((ny, nx), np.float32)
    err = np.empty_like(slope)
    var_p = np.empty_like(slope)
    var_r = np.empty_like(slope)
    chisq = np.empty_like(slope)
    dumo = np.empty_like(slope)
    dq = np.empty((ny, nx), np.uint32)
    gdq_out = np.empty((nres, ny, nx), np.uint8)
    use = np.zeros(m, np.bool_)
    mb = max(m - 1, 1)
    d = np.zeros(m)
    alpha = np.zeros(m)
    piv = np.zeros(m)
    qiv = np.zeros(m)
    x = np.zeros(m)
    y = np.zeros(m)
    cdiag = np.zeros(m)
    work = np.zeros(m)
    beta = np.zeros(mb)
    coff = np.zeros(mb)
    dropped = np.zeros(m, np.uint8)
    r = np.zeros(nres, np.float32)
    gq = np.zeros(nres, np.uint8)
    for iy in range(ny):
        for ix in range(nx):
            for k in range(nres):
                r[k] = data[k, iy, ix]
                gq[k] = groupdq[k, iy, ix]
            s, vp, vr, cs, nd = likely_fit_pixel(
                r, gq, readnoise[iy, ix], gain[iy, ix], dt, a_r, b_r, a_p, b_p, n_reads, t1, t2,
                search, jump_cuts_one, use, d, alpha, beta, piv, qiv, x, y, cdiag, coff, work,
                dropped,
            )  # fmt: skip
            if nd > 0:
                for i in range(m):
                    if dropped[i]:
                        gq[i + 1] |= G_JUMP
            gdq_out[:, iy, ix] = gq
            dq[iy, ix] = _pixel_flags(gq, pixeldq[iy, ix], s, gain[iy, ix])
            s32 = np.float32(s)
            slope[iy, ix] = s32
            var_p[iy, ix] = vp
            var_r[iy, ix] = vr
            err[iy, ix] = np.sqrt(vp + vr)
            chisq[iy, ix] = cs
            su = 0.0
            for k in range(nres):
                su += uniform_w[k] * r[k]
            dumo[iy, ix] = np.float32(su) - s32
    return slope, dq, err, var_p, var_r, chisq, dumo, gdq_out


def likely_fit_block_scalar(
    data, groupdq, pixeldq, readnoise, gain, *, mean_time, n_reads, variance_time,
    rejection_threshold=4.5, jump_cuts_one=False,
):  # fmt: skip
    """:func:`romanxr.kernels.ramp_likely.likely_fit_block`, one pixel at a time."""
    dt, a_r, b_r, a_p, b_p = difference_covariance_terms(mean_time, n_reads, variance_time)
    if b_r.size == 0:
        b_r = b_p = np.zeros(1)
    if rejection_threshold is None:
        t1, t2, search = np.inf, np.inf, False
    else:
        (t1, t2), search = jump_thresholds(rejection_threshold), True
    return _scalar_block(
        np.ascontiguousarray(data, dtype=np.float32),
        np.ascontiguousarray(groupdq, dtype=np.uint8),
        np.ascontiguousarray(pixeldq, dtype=np.uint32),
        np.ascontiguousarray(readnoise, dtype=np.float32),
        np.ascontiguousarray(gain, dtype=np.float32),
        dt, a_r, b_r, a_p, b_p, np.asarray(n_reads, dtype=np.int64),
        uniform_slope_weights(mean_time, n_reads), t1, t2, search, jump_cuts_one,
    )  # fmt: skip
