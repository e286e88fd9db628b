"""The per-pixel likelihood fit (Brandt 2024) with its jump search, on plain arrays with numba.

The fit works on resultant differences ``d_i = (R_{i+1} - R_i) / dt_i`` (DN/s), whose covariance
is tridiagonal. Every solve here is an O(m) tridiagonal elimination (m = number of differences)
with scratch arrays the caller allocates once per block, so a pixel costs a few hundred flops.

Generalised least squares over the usable differences U gives ``F = 1'C^-1 1``,
``B = 1'C^-1 d``, ``A = d'C^-1 d``, slope ``a = B / F``, ``chisq = A - B^2 / F`` and
``var(a) = 1 / F``. Unusable differences are cut out of the system (their row and column
removed), which is the same as giving each a free offset.

Jump search: with the residual ``z = C^-1 (d - a 1)``, freeing difference k improves chi-square
by ``z_k^2 / (Cinv_kk - x_k^2 / F)`` (x = C^-1 1); freeing a pair uses the 2x2 version. The
diagonal and first off-diagonal of ``C^-1`` come from the forward and backward pivots of the
tridiagonal elimination.

:mod:`romanxr.kernels.ramp_likely` fits whole rows at once and sends here only the pixels
that need the jump search.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from romanxr.kernels.ramp_common import _G_JUMP

__all__ = ["likely_fit_pixel"]


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
def _differences(resultants, gdq, dt, jump_cuts_one, d, use, dropped):
    """Fill the differences ``d`` and their usable mask; return how many are usable."""
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
    return nuse


@njit(cache=True, nogil=True, error_model="numpy")
def _best_single(m, use, x, y, cdiag, a, f):
    """Best chi-square improvement from freeing one difference: (gain, index, new rate)."""
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
    return best1, k1, rate1


@njit(cache=True, nogil=True, error_model="numpy")
def _pair_gain(k, use, x, y, cdiag, coff, a, f):
    """Chi-square improvement and new rate from freeing differences k and k + 1 (both usable:
    the 2x2 update; one already out: the same as freeing the other alone)."""
    if use[k] and use[k + 1]:
        z0 = y[k] - a * x[k]
        z1 = y[k + 1] - a * x[k + 1]
        s00 = cdiag[k] - x[k] * x[k] / f
        s11 = cdiag[k + 1] - x[k + 1] * x[k + 1] / f
        s01 = coff[k] - x[k] * x[k + 1] / f
        det = s00 * s11 - s01 * s01
        c0 = (s11 * z0 - s01 * z1) / det
        c1 = (s00 * z1 - s01 * z0) / det
        return z0 * c0 + z1 * c1, a - (x[k] * c0 + x[k + 1] * c1) / f
    j = k if use[k] else k + 1
    zj = y[j] - a * x[j]
    s = cdiag[j] - x[j] * x[j] / f
    return zj * zj / s, a - x[j] * (zj / s) / f


@njit(cache=True, nogil=True, error_model="numpy")
def _best_pair(m, use, n_reads, x, y, cdiag, coff, a, f):
    """Best chi-square improvement from freeing a pair: (gain, first index, new rate)."""
    best2 = 0.0
    k2 = -1
    rate2 = a
    for k in range(m - 1):
        if n_reads[k + 1] <= 1 or not (use[k] or use[k + 1]):
            continue
        dchi, r2 = _pair_gain(k, use, x, y, cdiag, coff, a, f)
        if dchi > best2:
            best2 = dchi
            k2 = k
            rate2 = r2
    return best2, k2, rate2


@njit(cache=True, nogil=True, error_model="numpy")
def _drop(lo, hi, use, dropped):
    """Free the usable differences in lo..hi-1; return how many were freed."""
    n = 0
    for j in range(lo, hi):
        if use[j]:
            use[j] = False
            dropped[j] = 1
            n += 1
    return n


@njit(cache=True, nogil=True, error_model="numpy")
def _jump_search(
    m, fg0, rn2, a_r, b_r, a_p, b_p, n_reads, t1, t2, use, d, alpha, beta, piv, qiv, x, y,
    cdiag, coff, dropped, nuse, f, bsum, asum, rate,
):  # fmt: skip
    """Free differences (one or a pair at a time) while that improves chi-square by more
    than the thresholds; return the rate estimate and how many differences were freed."""
    ndrop = 0
    for _ in range(m):
        a = bsum / f
        # no omission can improve chi-square by more than chi-square itself
        if not (asum - bsum * a > t1):
            break
        _inverse_bands(m, alpha, beta, piv, qiv, cdiag, coff)
        best1, k1, rate1 = _best_single(m, use, x, y, cdiag, a, f)
        best2, k2, rate2 = _best_pair(m, use, n_reads, x, y, cdiag, coff, a, f)
        if best1 - t1 > best2 - t2:
            if not (best1 > t1):
                break
            n = _drop(k1, k1 + 1, use, dropped)
            rate = rate1
        else:
            if not (best2 > t2):
                break
            n = _drop(k2, k2 + 2, use, dropped)
            rate = rate2
        nuse -= n
        ndrop += n
        if nuse <= 3:
            break
        _covariance(m, fg0, rn2, a_r, b_r, a_p, b_p, use, alpha, beta)
        f, bsum, asum = _solve(m, alpha, beta, use, d, piv, x, y)
    return rate, ndrop


@njit(cache=True, nogil=True, error_model="numpy")
def _variances(m, use, x, f, fg, rn2, a_r, b_r, a_p, b_p):
    """Poisson and read-noise variance of the GLS slope (weights ``x / F``)."""
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
    return var_p, var_r


@njit(cache=True, nogil=True, error_model="numpy")
def likely_fit_pixel(
    resultants, gdq, readnoise, gain, dt, a_r, b_r, a_p, b_p, n_reads, t1, t2, search,
    jump_cuts_one, use, d, alpha, beta, piv, qiv, x, y, cdiag, coff, work, dropped,
):  # fmt: skip
    """Fit one pixel. Returns (slope, var_poisson, var_rnoise, chisq, n_dropped).

    ``dropped[i]`` is set to 1 for each difference removed by the jump search. With
    ``jump_cuts_one`` a JUMP_DET flag on resultant k removes only difference k-1 (the flag as
    written by the jump search); otherwise any flag on either end removes a difference.

    ``dt, a_r, b_r, a_p, b_p`` come from
    :func:`~romanxr.kernels.ramp_common.difference_covariance_terms`, ``n_reads`` (int64) are
    the reads per resultant; ``use`` (bool), ``d``, ``alpha``, ``piv``, ``qiv``, ``x``, ``y``,
    ``cdiag``, ``work`` and ``dropped`` (uint8) are scratch arrays of ``m`` entries,
    ``beta`` and ``coff`` of ``max(m - 1, 1)``, allocated once by the caller. (Flat arguments,
    not tuples: unpacking a tuple of arrays costs reference counting per pixel, measured 4 %
    on the whole block.)
    """
    m = resultants.shape[0] - 1
    nuse = _differences(resultants, gdq, dt, jump_cuts_one, d, use, dropped)
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
        fg0 = guess * inv_gain
        rate, ndrop = _jump_search(
            m, fg0, rn2, a_r, b_r, a_p, b_p, n_reads, t1, t2, use, d, alpha, beta, piv, qiv,
            x, y, cdiag, coff, dropped, nuse, f, bsum, asum, rate,
        )  # fmt: skip
    # final fit with the covariance at the (non-negative) rate estimate
    if not (rate > 0):
        rate = 0.0
    fg = rate * inv_gain
    _covariance(m, fg, rn2, a_r, b_r, a_p, b_p, use, alpha, beta)
    f, bsum, asum = _solve(m, alpha, beta, use, d, piv, x, y)
    slope = bsum / f
    chisq = asum - bsum * bsum / f
    var_p, var_r = _variances(m, use, x, f, fg, rn2, a_r, b_r, a_p, b_p)
    return slope, var_p, var_r, chisq, ndrop
