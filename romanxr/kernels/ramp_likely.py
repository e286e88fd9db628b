"""Likelihood ramp fit with jump rejection (Brandt 2024), on plain arrays with numba.

The fit works on resultant differences ``d_i = (R_{i+1} - R_i) / dt_i`` (DN/s), whose covariance
is tridiagonal. Every solve here is an O(m) tridiagonal elimination (m = number of differences)
with scratch arrays allocated once per block, so a pixel costs a few hundred flops.

Generalised least squares over the usable differences U gives ``F = 1'C^-1 1``,
``B = 1'C^-1 d``, ``A = d'C^-1 d``, slope ``a = B / F``, ``chisq = A - B^2 / F`` and
``var(a) = 1 / F``. Unusable differences are cut out of the system (their row and column
removed), which is the same as giving each a free offset.

Jump search: with the residual ``z = C^-1 (d - a 1)``, freeing difference k improves chi-square
by ``z_k^2 / (Cinv_kk - x_k^2 / F)`` (x = C^-1 1); freeing a pair uses the 2x2 version. The
diagonal and first off-diagonal of ``C^-1`` come from the forward and backward pivots of the
tridiagonal elimination.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from romanxr.kernels.ramp_common import (
    difference_covariance_terms,
    jump_thresholds,
    uniform_slope_weights,
)

__all__ = ["likely_fit_block", "likely_fit_pixel", "likely_jump_block"]

# flag values (same as romanxr.dq); plain ints for numba
_G_DNU = 1
_G_SAT = 2
_G_JUMP = 4
_P_DNU = np.uint32(1)
_P_SAT = np.uint32(2)
_P_JUMP = np.uint32(4)
_P_NO_GAIN = np.uint32(1 << 19)


@njit(cache=True, nogil=True, error_model="numpy")
def _covariance(m, rate_over_gain, rn2, a_r, b_r, a_p, b_p, use, alpha, beta):
    """Fill alpha/beta for one pixel; cut rows of unusable differences out of the system."""
    for i in range(m):
        if use[i]:
            alpha[i] = rn2 * a_r[i] + rate_over_gain * a_p[i]
        else:
            alpha[i] = 1.0  # isolated 1x1 block; its right-hand sides are zero
    for i in range(m - 1):
        if use[i] and use[i + 1]:
            beta[i] = rn2 * b_r[i] + rate_over_gain * b_p[i]
        else:
            beta[i] = 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def _solve(m, alpha, beta, use, d, piv, x, y):
    """Solve C x = u and C y = d (u = usable mask, d zero where unusable); return F, B, A."""
    piv[0] = alpha[0]
    x[0] = 1.0 if use[0] else 0.0
    y[0] = d[0] if use[0] else 0.0
    for i in range(1, m):
        l = beta[i - 1] / piv[i - 1]
        piv[i] = alpha[i] - l * beta[i - 1]
        x[i] = (1.0 if use[i] else 0.0) - l * x[i - 1]
        y[i] = (d[i] if use[i] else 0.0) - l * y[i - 1]
    x[m - 1] /= piv[m - 1]
    y[m - 1] /= piv[m - 1]
    for i in range(m - 2, -1, -1):
        x[i] = (x[i] - beta[i] * x[i + 1]) / piv[i]
        y[i] = (y[i] - beta[i] * y[i + 1]) / piv[i]
    f = 0.0
    b = 0.0
    a = 0.0
    for i in range(m):
        if use[i]:
            f += x[i]
            b += y[i]
            a += d[i] * y[i]
    return f, b, a


@njit(cache=True, nogil=True, error_model="numpy")
def _inverse_bands(m, alpha, beta, piv, qiv, cdiag, coff):
    """Diagonal and first off-diagonal of C^-1 from forward (piv) and backward pivots."""
    qiv[m - 1] = alpha[m - 1]
    for i in range(m - 2, -1, -1):
        qiv[i] = alpha[i] - beta[i] * beta[i] / qiv[i + 1]
    for i in range(m):
        s = alpha[i]
        if i > 0:
            s -= beta[i - 1] * beta[i - 1] / piv[i - 1]
        if i < m - 1:
            s -= beta[i] * beta[i] / qiv[i + 1]
        cdiag[i] = 1.0 / s
    for i in range(m - 1):
        coff[i] = -beta[i] * cdiag[i + 1] / piv[i]


@njit(cache=True, nogil=True, error_model="numpy")
def _median(values, m, work):
    """Median of the finite entries of values[:m] (NaN if none)."""
    k = 0
    for i in range(m):
        v = values[i]
        if np.isfinite(v):
            j = k
            while j > 0 and work[j - 1] > v:
                work[j] = work[j - 1]
                j -= 1
            work[j] = v
            k += 1
    if k == 0:
        return np.nan
    if k % 2 == 1:
        return work[k // 2]
    return 0.5 * (work[k // 2 - 1] + work[k // 2])


@njit(cache=True, nogil=True, error_model="numpy")
def likely_fit_pixel(
    resultants,
    gdq,
    readnoise,
    gain,
    dt,
    a_r,
    b_r,
    a_p,
    b_p,
    n_reads,
    t1,
    t2,
    search,
    jump_cuts_one,
    use,
    d,
    alpha,
    beta,
    piv,
    qiv,
    x,
    y,
    cdiag,
    coff,
    work,
    dropped,
):
    """Fit one pixel. Returns (slope, var_poisson, var_rnoise, chisq, n_dropped).

    ``dropped[i]`` is set to 1 for each difference removed by the jump search. With
    ``jump_cuts_one`` a JUMP_DET flag on resultant k removes only difference k-1 (the flag as
    written by the jump search); otherwise any flag on either end removes a difference.
    """
    m = resultants.shape[0] - 1
    nuse = 0
    for i in range(m):
        d[i] = (np.float64(resultants[i + 1]) - np.float64(resultants[i])) / dt[i]
        first = gdq[i]
        if jump_cuts_one:
            first = first & ~_G_JUMP
        ok = first == 0 and gdq[i + 1] == 0 and np.isfinite(d[i])
        use[i] = ok
        dropped[i] = 0
        if ok:
            nuse += 1
    if nuse == 0:
        return np.nan, np.nan, np.nan, np.nan, 0
    rn2 = np.float64(readnoise) * np.float64(readnoise)
    g = np.float64(gain)
    inv_gain = 1.0 / g if (g > 0 and np.isfinite(g)) else 0.0
    guess = _median(d, m, work)
    if not (guess > 0):
        guess = 0.0
    _covariance(m, guess * inv_gain, rn2, a_r, b_r, a_p, b_p, use, alpha, beta)
    f, bsum, asum = _solve(m, alpha, beta, use, d, piv, x, y)
    rate = bsum / f
    ndrop = 0
    if search and nuse >= 3:
        for _ in range(m):
            a = bsum / f
            # no omission can improve chi-square by more than chi-square itself
            if not (asum - bsum * a > t1):
                break
            _inverse_bands(m, alpha, beta, piv, qiv, cdiag, coff)
            best1 = 0.0
            k1 = -1
            rate1 = a
            for k in range(m):
                if use[k]:
                    zk = y[k] - a * x[k]
                    s = cdiag[k] - x[k] * x[k] / f
                    dchi = zk * zk / s
                    if dchi > best1:
                        best1 = dchi
                        k1 = k
                        rate1 = a - x[k] * (zk / s) / f
            best2 = 0.0
            k2 = -1
            rate2 = a
            for k in range(m - 1):
                if n_reads[k + 1] <= 1:
                    continue
                if use[k] and use[k + 1]:
                    z0 = y[k] - a * x[k]
                    z1 = y[k + 1] - a * x[k + 1]
                    s00 = cdiag[k] - x[k] * x[k] / f
                    s11 = cdiag[k + 1] - x[k + 1] * x[k + 1] / f
                    s01 = coff[k] - x[k] * x[k + 1] / f
                    det = s00 * s11 - s01 * s01
                    c0 = (s11 * z0 - s01 * z1) / det
                    c1 = (s00 * z1 - s01 * z0) / det
                    dchi = z0 * c0 + z1 * c1
                    r2 = a - (x[k] * c0 + x[k + 1] * c1) / f
                elif use[k] or use[k + 1]:
                    # one of the pair is already out: same as freeing the other alone
                    j = k if use[k] else k + 1
                    zj = y[j] - a * x[j]
                    s = cdiag[j] - x[j] * x[j] / f
                    dchi = zj * zj / s
                    r2 = a - x[j] * (zj / s) / f
                else:
                    continue
                if dchi > best2:
                    best2 = dchi
                    k2 = k
                    rate2 = r2
            if best1 - t1 > best2 - t2:
                if not (best1 > t1):
                    break
                use[k1] = False
                dropped[k1] = 1
                nuse -= 1
                ndrop += 1
                rate = rate1
            else:
                if not (best2 > t2):
                    break
                for j in range(k2, k2 + 2):
                    if use[j]:
                        use[j] = False
                        dropped[j] = 1
                        nuse -= 1
                        ndrop += 1
                rate = rate2
            if nuse <= 3:
                break
            _covariance(m, guess * inv_gain, rn2, a_r, b_r, a_p, b_p, use, alpha, beta)
            f, bsum, asum = _solve(m, alpha, beta, use, d, piv, x, y)
    # final fit with the covariance at the (non-negative) rate estimate
    if not (rate > 0):
        rate = 0.0
    fg = rate * inv_gain
    _covariance(m, fg, rn2, a_r, b_r, a_p, b_p, use, alpha, beta)
    f, bsum, asum = _solve(m, alpha, beta, use, d, piv, x, y)
    slope = bsum / f
    chisq = asum - bsum * bsum / f
    var_p = 0.0
    var_r = 0.0
    for i in range(m):
        if use[i]:
            w = x[i] / f
            var_p += w * w * fg * a_p[i]
            var_r += w * w * rn2 * a_r[i]
            if i < m - 1 and use[i + 1]:
                w2 = x[i + 1] / f
                var_p += 2.0 * w * w2 * fg * b_p[i]
                var_r += 2.0 * w * w2 * rn2 * b_r[i]
    return slope, var_p, var_r, chisq, ndrop


@njit(cache=True, nogil=True, error_model="numpy")
def _likely_block_scalar(
    data,
    groupdq,
    pixeldq,
    readnoise,
    gain,
    dt,
    a_r,
    b_r,
    a_p,
    b_p,
    n_reads,
    uniform_w,
    t1,
    t2,
    search,
    jump_cuts_one,
):
    nres, ny, nx = data.shape
    m = nres - 1
    slope = np.empty((ny, nx), np.float32)
    err = np.empty((ny, nx), np.float32)
    var_p = np.empty((ny, nx), np.float32)
    var_r = np.empty((ny, nx), np.float32)
    chisq = np.empty((ny, nx), np.float32)
    dumo = np.empty((ny, nx), np.float32)
    dq = np.empty((ny, nx), np.uint32)
    gdq_out = np.empty((nres, ny, nx), np.uint8)
    use = np.zeros(m, np.bool_)
    d = np.zeros(m)
    alpha = np.zeros(m)
    beta = np.zeros(max(m - 1, 1))
    piv = np.zeros(m)
    qiv = np.zeros(m)
    x = np.zeros(m)
    y = np.zeros(m)
    cdiag = np.zeros(m)
    coff = np.zeros(max(m - 1, 1))
    work = np.zeros(m)
    dropped = np.zeros(m, np.uint8)
    r = np.zeros(nres, np.float32)
    gq = np.zeros(nres, np.uint8)
    for iy in range(ny):
        for ix in range(nx):
            for k in range(nres):
                r[k] = data[k, iy, ix]
                gq[k] = groupdq[k, iy, ix]
            s, vp, vr, cs, nd = likely_fit_pixel(
                r,
                gq,
                readnoise[iy, ix],
                gain[iy, ix],
                dt,
                a_r,
                b_r,
                a_p,
                b_p,
                n_reads,
                t1,
                t2,
                search,
                jump_cuts_one,
                use,
                d,
                alpha,
                beta,
                piv,
                qiv,
                x,
                y,
                cdiag,
                coff,
                work,
                dropped,
            )
            if nd > 0:
                for i in range(m):
                    if dropped[i]:
                        gq[i + 1] |= _G_JUMP
            n_good = 0
            any_sat = False
            any_jump = False
            for k in range(nres):
                gdq_out[k, iy, ix] = gq[k]
                if gq[k] & (_G_SAT | _G_DNU) == 0:
                    n_good += 1
                if gq[k] & _G_SAT:
                    any_sat = True
                if gq[k] & _G_JUMP:
                    any_jump = True
            flags = pixeldq[iy, ix]
            if n_good <= 1:
                flags |= _P_DNU
            if any_sat:
                flags |= _P_SAT
            if any_jump:
                flags |= _P_JUMP
            if not np.isfinite(s):
                flags |= _P_DNU
            g = gain[iy, ix]
            if not (g > 0 and np.isfinite(g)):
                flags |= _P_NO_GAIN
            dq[iy, ix] = flags
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


@njit(cache=True, nogil=True, error_model="numpy")
def _row_gls(m, nx, rate_over_gain, rn2, a_r, b_r, a_p, b_p, use, d, beta, ipiv, x, y):
    """Tridiagonal GLS for a whole row of pixels at once (k outer, pixels inner: vectorises).

    Returns nothing; leaves x = C^-1 u and y = C^-1 d (zero outside U) per pixel.
    """
    # alpha (diagonal) is formed on the fly; beta is kept for the back substitution
    ar = a_r[0]
    ap = a_p[0]
    for ix in range(nx):
        ok = use[0, ix]
        alpha0 = rn2[ix] * ar + rate_over_gain[ix] * ap if ok else 1.0
        ipiv[0, ix] = 1.0 / alpha0
        x[0, ix] = 1.0 if ok else 0.0
        y[0, ix] = d[0, ix] if ok else 0.0
    for k in range(1, m):
        ar = a_r[k]
        ap = a_p[k]
        br = b_r[k - 1]
        bp = b_p[k - 1]
        for ix in range(nx):
            ok = use[k, ix]
            if ok and use[k - 1, ix]:
                b = rn2[ix] * br + rate_over_gain[ix] * bp
            else:
                b = 0.0
            beta[k - 1, ix] = b
            alpha_k = rn2[ix] * ar + rate_over_gain[ix] * ap if ok else 1.0
            l = b * ipiv[k - 1, ix]
            ipiv[k, ix] = 1.0 / (alpha_k - l * b)
            u = 1.0 if ok else 0.0
            x[k, ix] = u - l * x[k - 1, ix]
            y[k, ix] = (d[k, ix] if ok else 0.0) - l * y[k - 1, ix]
    for ix in range(nx):
        x[m - 1, ix] *= ipiv[m - 1, ix]
        y[m - 1, ix] *= ipiv[m - 1, ix]
    for k in range(m - 2, -1, -1):
        for ix in range(nx):
            x[k, ix] = (x[k, ix] - beta[k, ix] * x[k + 1, ix]) * ipiv[k, ix]
            y[k, ix] = (y[k, ix] - beta[k, ix] * y[k + 1, ix]) * ipiv[k, ix]


@njit(cache=True, nogil=True, error_model="numpy")
def _row_median(m, nx, d, work, nfinite, out):
    """Median of the finite d[:, ix] for every pixel of a row (NaN if none).

    Each pixel's values are sorted by a fixed network of compare-exchanges on whole rows
    (branch-free min/max, so it vectorises over pixels; m is small), NaN sorting last as +inf.
    Same value as the scalar median: an even count gives ``0.5 * a + 0.5 * b``, which equals
    ``0.5 * (a + b)`` exactly in binary floating point (barring overflow).
    """
    for ix in range(nx):
        nfinite[ix] = 0
    for k in range(m):
        for ix in range(nx):
            v = d[k, ix]
            fin = v == v
            nfinite[ix] += fin
            work[k, ix] = v if fin else np.inf
    for i in range(1, m):
        for j in range(i, 0, -1):
            for ix in range(nx):
                lo = work[j - 1, ix]
                hi = work[j, ix]
                work[j - 1, ix] = lo if lo < hi else hi
                work[j, ix] = hi if lo < hi else lo
    for ix in range(nx):
        n = nfinite[ix]
        half = n // 2
        if n == 0:
            out[ix] = np.nan
        elif n % 2 == 1:
            out[ix] = work[half, ix]
        else:
            out[ix] = 0.5 * work[half - 1, ix] + 0.5 * work[half, ix]


@njit(cache=True, nogil=True, error_model="numpy")
def _likely_block(
    data,
    groupdq,
    pixeldq,
    readnoise,
    gain,
    dt,
    a_r,
    b_r,
    a_p,
    b_p,
    n_reads,
    uniform_w,
    t1,
    t2,
    search,
    jump_cuts_one,
):
    """Row-vectorised likelihood fit; pixels that need a jump search take the scalar path."""
    nres, ny, nx = data.shape
    m = nres - 1
    slope = np.empty((ny, nx), np.float32)
    err = np.empty((ny, nx), np.float32)
    var_p = np.empty((ny, nx), np.float32)
    var_r = np.empty((ny, nx), np.float32)
    chisq = np.empty((ny, nx), np.float32)
    dumo = np.empty((ny, nx), np.float32)
    dq = np.empty((ny, nx), np.uint32)
    gdq_out = np.empty((nres, ny, nx), np.uint8)
    # row scratch (m, nx)
    use = np.zeros((m, nx), np.bool_)
    d = np.zeros((m, nx))
    beta = np.zeros((max(m - 1, 1), nx))
    ipiv = np.zeros((m, nx))
    x = np.zeros((m, nx))
    y = np.zeros((m, nx))
    rn2 = np.zeros(nx)
    inv_gain = np.zeros(nx)
    fg = np.zeros(nx)
    nuse = np.zeros(nx, np.int64)
    work = np.zeros((m, nx))
    nfinite = np.zeros(nx, np.int64)
    guess = np.zeros(nx)
    inv_dt = 1.0 / dt
    # with jump_cuts_one a JUMP_DET on the first resultant of a difference does not cut it
    first_mask = np.uint8(0xFF & ~_G_JUMP) if jump_cuts_one else np.uint8(0xFF)
    # per-row sums and results
    sf = np.zeros(nx)
    sb = np.zeros(nx)
    sa = np.zeros(nx)
    svp = np.zeros(nx)
    svr = np.zeros(nx)
    su = np.zeros(nx)
    sslope = np.zeros(nx)
    schi = np.zeros(nx)
    n_good = np.zeros(nx, np.int64)
    gor = np.zeros(nx, np.uint8)
    # pixel scratch for the scalar jump-search path
    p_use = np.zeros(m, np.bool_)
    p_d = np.zeros(m)
    p_alpha = np.zeros(m)
    p_beta = np.zeros(max(m - 1, 1))
    p_piv = np.zeros(m)
    p_qiv = np.zeros(m)
    p_x = np.zeros(m)
    p_y = np.zeros(m)
    p_cdiag = np.zeros(m)
    p_coff = np.zeros(max(m - 1, 1))
    p_work = np.zeros(m)
    dropped = np.zeros(m, np.uint8)
    r = np.zeros(nres, np.float32)
    gq = np.zeros(nres, np.uint8)
    for iy in range(ny):
        for ix in range(nx):
            nuse[ix] = 0
            rn = np.float64(readnoise[iy, ix])
            rn2[ix] = rn * rn
            g = np.float64(gain[iy, ix])
            inv_gain[ix] = 1.0 / g if (g > 0 and np.isfinite(g)) else 0.0
        for k in range(m):
            idt = inv_dt[k]
            for ix in range(nx):
                dk = (np.float64(data[k + 1, iy, ix]) - np.float64(data[k, iy, ix])) * idt
                fin = np.isfinite(dk)
                d[k, ix] = dk if fin else np.nan
                # branch-free, so that it vectorises
                ok = ((groupdq[k, iy, ix] & first_mask) == 0) & (groupdq[k + 1, iy, ix] == 0) & fin
                use[k, ix] = ok
                nuse[ix] += ok
        _row_median(m, nx, d, work, nfinite, guess)
        for ix in range(nx):
            g0 = guess[ix]
            fg[ix] = g0 * inv_gain[ix] if g0 > 0 else 0.0
        # fit at the rate guess: the rate estimate for the final covariance
        _row_gls(m, nx, fg, rn2, a_r, b_r, a_p, b_p, use, d, beta, ipiv, x, y)
        for ix in range(nx):
            sf[ix] = 0.0
            sb[ix] = 0.0
            sa[ix] = 0.0
        for k in range(m):
            for ix in range(nx):
                if use[k, ix]:
                    sf[ix] += x[k, ix]
                    sb[ix] += y[k, ix]
                    sa[ix] += d[k, ix] * y[k, ix]
        for ix in range(nx):
            b = sb[ix]
            a = sa[ix]
            rate = b / sf[ix]
            fg[ix] = rate * inv_gain[ix] if rate > 0 else 0.0
            # a pixel whose chi-square exceeds T1 may have a jump: flag it for the scalar path
            if search and nuse[ix] >= 3 and a - b * rate > t1:
                nuse[ix] = -nuse[ix]
        _row_gls(m, nx, fg, rn2, a_r, b_r, a_p, b_p, use, d, beta, ipiv, x, y)
        # sums over the usable differences, k outer and pixels inner (same order per pixel as
        # the scalar path, so the same rounding)
        for ix in range(nx):
            sf[ix] = 0.0
            sb[ix] = 0.0
            sa[ix] = 0.0
            svp[ix] = 0.0
            svr[ix] = 0.0
            su[ix] = 0.0
            n_good[ix] = 0
            gor[ix] = 0
        for k in range(m):
            for ix in range(nx):
                if use[k, ix]:
                    sf[ix] += x[k, ix]
                    sb[ix] += y[k, ix]
                    sa[ix] += d[k, ix] * y[k, ix]
        for ix in range(nx):
            inv_f = 1.0 / sf[ix]
            sf[ix] = inv_f
            s = sb[ix] * inv_f
            sslope[ix] = s
            schi[ix] = sa[ix] - sb[ix] * s
        for k in range(m):
            ap = a_p[k]
            ar = a_r[k]
            if k < m - 1:
                bp = b_p[k]
                br = b_r[k]
            else:
                bp = 0.0
                br = 0.0
            for ix in range(nx):
                if use[k, ix]:
                    w = x[k, ix] * sf[ix]
                    svp[ix] += w * w * ap
                    svr[ix] += w * w * ar
                    if k < m - 1 and use[k + 1, ix]:
                        w2 = x[k + 1, ix] * sf[ix]
                        svp[ix] += 2.0 * w * w2 * bp
                        svr[ix] += 2.0 * w * w2 * br
        for k in range(nres):
            uw = uniform_w[k]
            for ix in range(nx):
                gk = groupdq[k, iy, ix]
                gdq_out[k, iy, ix] = gk
                n_good[ix] += (gk & (_G_SAT | _G_DNU)) == 0
                gor[ix] |= gk
                su[ix] += uw * np.float64(data[k, iy, ix])
        for ix in range(nx):
            if nuse[ix] == 0:
                sslope[ix] = np.nan
                svp[ix] = np.nan
                svr[ix] = np.nan
                schi[ix] = np.nan
            elif nuse[ix] > 0:
                svp[ix] *= fg[ix]
                svr[ix] *= rn2[ix]
        # pixels that need the jump search (few): scalar fit, then their flags again
        for ix in range(nx):
            if nuse[ix] >= 0:
                continue
            for k in range(nres):
                r[k] = data[k, iy, ix]
                gq[k] = groupdq[k, iy, ix]
            s, vp, vr, cs, nd = likely_fit_pixel(
                r,
                gq,
                readnoise[iy, ix],
                gain[iy, ix],
                dt,
                a_r,
                b_r,
                a_p,
                b_p,
                n_reads,
                t1,
                t2,
                search,
                jump_cuts_one,
                p_use,
                p_d,
                p_alpha,
                p_beta,
                p_piv,
                p_qiv,
                p_x,
                p_y,
                p_cdiag,
                p_coff,
                p_work,
                dropped,
            )
            sslope[ix] = s
            svp[ix] = vp
            svr[ix] = vr
            schi[ix] = cs
            if nd > 0:
                for i in range(m):
                    if dropped[i]:
                        gq[i + 1] |= _G_JUMP
                        gdq_out[i + 1, iy, ix] = gq[i + 1]
                        gor[ix] |= _G_JUMP
        for ix in range(nx):
            s = sslope[ix]
            flags = pixeldq[iy, ix]
            if n_good[ix] <= 1:
                flags |= _P_DNU
            if gor[ix] & _G_SAT:
                flags |= _P_SAT
            if gor[ix] & _G_JUMP:
                flags |= _P_JUMP
            if not np.isfinite(s):
                flags |= _P_DNU
            if inv_gain[ix] == 0.0:
                flags |= _P_NO_GAIN
            dq[iy, ix] = flags
            s32 = np.float32(s)
            slope[iy, ix] = s32
            vp = svp[ix]
            vr = svr[ix]
            var_p[iy, ix] = vp
            var_r[iy, ix] = vr
            err[iy, ix] = np.sqrt(vp + vr)
            chisq[iy, ix] = schi[ix]
            dumo[iy, ix] = np.float32(su[ix]) - s32
    return slope, dq, err, var_p, var_r, chisq, dumo, gdq_out


def _prepare(mean_time, n_reads, variance_time, rejection_threshold):
    dt, a_r, b_r, a_p, b_p = difference_covariance_terms(mean_time, n_reads, variance_time)
    if b_r.size == 0:  # numba wants non-empty arrays
        b_r = np.zeros(1)
        b_p = np.zeros(1)
    n = np.asarray(n_reads, dtype=np.int64)
    w = uniform_slope_weights(mean_time, n_reads)
    if rejection_threshold is None:
        t1, t2, search = np.inf, np.inf, False
    else:
        (t1, t2), search = jump_thresholds(rejection_threshold), True
    return dt, a_r, b_r, a_p, b_p, n, w, t1, t2, search


def _check(data: np.ndarray) -> None:
    if data.shape[0] < 4:
        raise ValueError(
            f"the likelihood fit needs at least 4 resultants, got {data.shape[0]}; "
            "use algorithm='ols_cas22'"
        )


def likely_fit_block(
    data: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    readnoise: np.ndarray,
    gain: np.ndarray,
    *,
    mean_time: np.ndarray,
    n_reads: np.ndarray,
    variance_time: np.ndarray,
    rejection_threshold: float | None = 4.5,
    jump_cuts_one: bool = False,
    vectorised: bool = True,
) -> tuple[np.ndarray, ...]:
    """Likelihood ramp fit of a block of pixels.

    Parameters
    ----------
    data : ndarray (nres, ny, nx)
        Resultants (DN).
    groupdq : ndarray uint8 (nres, ny, nx)
        Group flags; any bit removes both differences touching that resultant, except that with
        ``jump_cuts_one`` a JUMP_DET bit removes only the difference ending at the resultant.
    pixeldq : ndarray uint32 (ny, nx)
        Input pixel flags (carried into ``dq``).
    readnoise : ndarray (ny, nx)
        Read noise of a single read (DN).
    gain : ndarray (ny, nx)
        Gain (e-/DN); a non-positive or non-finite gain drops the Poisson term and sets
        NO_GAIN_VALUE.
    mean_time, n_reads, variance_time : ndarray (nres,)
        Read-pattern timing (``t_bar``, ``n``, ``tau``).
    rejection_threshold : float or None
        Jump rejection threshold in sigma (``None``: no jump search).
    jump_cuts_one : bool
        See ``groupdq``.
    vectorised : bool
        Use the row-vectorised path (default); ``False`` runs every pixel through the scalar
        per-pixel fit (same results to rounding; kept as a cross-check).

    Returns
    -------
    slope, dq, err, var_poisson, var_rnoise, chisq, dumo : ndarray (ny, nx)
        float32 except ``dq`` (uint32). Units DN/s, (DN/s)^2.
    groupdq_out : ndarray uint8 (nres, ny, nx)
        ``groupdq`` with JUMP_DET on the later resultant of every rejected difference.
    """
    _check(data)
    dt, a_r, b_r, a_p, b_p, n, w, t1, t2, search = _prepare(
        mean_time, n_reads, variance_time, rejection_threshold
    )
    block = _likely_block if vectorised else _likely_block_scalar
    return block(
        np.ascontiguousarray(data, dtype=np.float32),
        np.ascontiguousarray(groupdq, dtype=np.uint8),
        np.ascontiguousarray(pixeldq, dtype=np.uint32),
        np.ascontiguousarray(readnoise, dtype=np.float32),
        np.ascontiguousarray(gain, dtype=np.float32),
        dt,
        a_r,
        b_r,
        a_p,
        b_p,
        n,
        w,
        t1,
        t2,
        search,
        jump_cuts_one,
    )


def likely_jump_block(
    data: np.ndarray,
    groupdq: np.ndarray,
    readnoise: np.ndarray,
    gain: np.ndarray,
    *,
    mean_time: np.ndarray,
    n_reads: np.ndarray,
    variance_time: np.ndarray,
    rejection_threshold: float = 4.5,
) -> np.ndarray:
    """Run only the likelihood jump search; return ``groupdq`` with JUMP_DET added (uint8)."""
    pixeldq = np.zeros(data.shape[1:], np.uint32)
    return likely_fit_block(
        data,
        groupdq,
        pixeldq,
        readnoise,
        gain,
        mean_time=mean_time,
        n_reads=n_reads,
        variance_time=variance_time,
        rejection_threshold=rejection_threshold,
    )[-1]
