"""Likelihood ramp fit with jump rejection (Brandt 2024), a row of pixels at a time, with numba.

The model and the per-pixel solver (tridiagonal GLS on resultant differences, the chi-square
jump search) are described in :mod:`romanxr.kernels.ramp_likely_pixel`. This module runs the
same arithmetic on a whole row at once: each step loops over the differences outside and the
pixels inside, so the compiler vectorises it, and the per-pixel sums keep the per-pixel order
(so the same rounding as the scalar fit). A pixel whose chi-square at the first fit exceeds
the one-difference threshold may hold a jump: it alone goes through the scalar fit and search.

The row steps are small njit functions called once per row (scratch rows allocated once
per block, no calls inside the pixel loops). Plain calls, not ``inline="always"``: numba's
inlining reference-counts every array argument at each call, which measured 2 to 4 % slower
here; the calls themselves cost nothing measurable.
"""

from __future__ import annotations

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
    difference_covariance_terms,
    jump_thresholds,
    uniform_slope_weights,
)
from romanxr.kernels.ramp_likely_pixel import likely_fit_pixel

__all__ = ["likely_fit_block", "likely_jump_block"]

_KERNEL = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(**_KERNEL)
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


@njit(**_KERNEL)
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


@njit(**_KERNEL)
def _row_differences(
    data, groupdq, readnoise, gain, inv_dt, first_mask, iy, m, nx, nuse, rn2, inv_gain, d, use
):
    """Differences of row ``iy``, their usable mask and count, read noise squared, 1 / gain."""
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


@njit(**_KERNEL)
def _row_sums(m, nx, use, x, y, d, sf, sb, sa):
    """F, B and A of every pixel: sums over the usable differences, k outer, pixels inner
    (the same order per pixel as the scalar fit, so the same rounding)."""
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


@njit(**_KERNEL)
def _row_rates(nx, sf, sb, sa, inv_gain, search, t1, nuse, fg):
    """Rate / gain of the final covariance from the first fit; a pixel whose chi-square
    exceeds T1 may have a jump: its ``nuse`` turns negative (the scalar path takes it)."""
    for ix in range(nx):
        b = sb[ix]
        a = sa[ix]
        rate = b / sf[ix]
        fg[ix] = rate * inv_gain[ix] if rate > 0 else 0.0
        if search and nuse[ix] >= 3 and a - b * rate > t1:
            nuse[ix] = -nuse[ix]


@njit(**_KERNEL)
def _row_slopes(nx, sf, sb, sa, sslope, schi):
    """Slope and chi-square of every pixel; ``sf`` becomes 1 / F."""
    for ix in range(nx):
        inv_f = 1.0 / sf[ix]
        sf[ix] = inv_f
        s = sb[ix] * inv_f
        sslope[ix] = s
        schi[ix] = sa[ix] - sb[ix] * s


@njit(**_KERNEL)
def _row_variances(m, nx, use, x, inv_f, a_r, b_r, a_p, b_p, svp, svr):
    """Unit Poisson and read-noise variances of the slopes (weights ``x / F``)."""
    for ix in range(nx):
        svp[ix] = 0.0
        svr[ix] = 0.0
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
                w = x[k, ix] * inv_f[ix]
                svp[ix] += w * w * ap
                svr[ix] += w * w * ar
                if k < m - 1 and use[k + 1, ix]:
                    w2 = x[k + 1, ix] * inv_f[ix]
                    svp[ix] += 2.0 * w * w2 * bp
                    svr[ix] += 2.0 * w * w2 * br


@njit(**_KERNEL)
def _row_groups(data, groupdq, uniform_w, iy, nres, nx, gdq_out, n_good, gor, su):
    """Copy the group DQ of row ``iy``; count good resultants, OR the flags, uniform slope."""
    for ix in range(nx):
        su[ix] = 0.0
        n_good[ix] = 0
        gor[ix] = 0
    for k in range(nres):
        uw = uniform_w[k]
        for ix in range(nx):
            gk = groupdq[k, iy, ix]
            gdq_out[k, iy, ix] = gk
            n_good[ix] += (gk & (_G_SAT | _G_DNU)) == 0
            gor[ix] |= gk
            su[ix] += uw * np.float64(data[k, iy, ix])


@njit(**_KERNEL)
def _row_scale(nx, nuse, fg, rn2, sslope, svp, svr, schi):
    """NaN results where no difference is usable; scale the unit variances otherwise."""
    for ix in range(nx):
        if nuse[ix] == 0:
            sslope[ix] = np.nan
            svp[ix] = np.nan
            svr[ix] = np.nan
            schi[ix] = np.nan
        elif nuse[ix] > 0:
            svp[ix] *= fg[ix]
            svr[ix] *= rn2[ix]


@njit(**_KERNEL)
def _row_jump_pixels(
    inputs, iy, nuse, terms, t1, t2, search, jump_cuts_one, pix, r, gq, results, gdq_out, gor
):
    """Pixels of row ``iy`` that need the jump search (few): scalar fit, then their flags.

    ``inputs``: (data, groupdq, readnoise, gain); ``terms`` and ``pix``: the read-pattern
    arrays and the scratch of :func:`likely_fit_pixel`; ``results``: the row's (slope,
    var_poisson, var_rnoise, chisq), overwritten for those pixels."""
    data, groupdq, readnoise, gain = inputs
    sslope, svp, svr, schi = results
    dt, a_r, b_r, a_p, b_p, n_reads = terms
    p_use, p_d, p_alpha, p_beta, p_piv, p_qiv, p_x, p_y, p_cdiag, p_coff, p_work, dropped = pix
    nres = data.shape[0]
    m = nres - 1
    for ix in range(nuse.shape[0]):
        if nuse[ix] >= 0:
            continue
        for k in range(nres):
            r[k] = data[k, iy, ix]
            gq[k] = groupdq[k, iy, ix]
        s, vp, vr, cs, nd = likely_fit_pixel(
            r, gq, readnoise[iy, ix], gain[iy, ix], dt, a_r, b_r, a_p, b_p, n_reads, t1, t2,
            search, jump_cuts_one, p_use, p_d, p_alpha, p_beta, p_piv, p_qiv, p_x, p_y,
            p_cdiag, p_coff, p_work, dropped,
        )  # fmt: skip
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


@njit(**_KERNEL)
def _row_store(pixeldq, iy, nx, n_good, gor, inv_gain, sslope, svp, svr, schi, su, out):
    """Pixel flags and the float32 results of row ``iy`` into the outputs."""
    slope, dq, err, var_p, var_r, chisq, dumo = out
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


@njit(**_KERNEL)
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
    out = (slope, dq, err, var_p, var_r, chisq, dumo)
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
    pix = (p_use, p_d, p_alpha, p_beta, p_piv, p_qiv, p_x, p_y, p_cdiag, p_coff, p_work, dropped)
    r = np.zeros(nres, np.float32)
    gq = np.zeros(nres, np.uint8)
    inputs = (data, groupdq, readnoise, gain)
    terms = (dt, a_r, b_r, a_p, b_p, n_reads)
    results = (sslope, svp, svr, schi)
    for iy in range(ny):
        _row_differences(
            data,
            groupdq,
            readnoise,
            gain,
            inv_dt,
            first_mask,
            iy,
            m,
            nx,
            nuse,
            rn2,
            inv_gain,
            d,
            use,
        )
        _row_median(m, nx, d, work, nfinite, guess)
        for ix in range(nx):
            g0 = guess[ix]
            fg[ix] = g0 * inv_gain[ix] if g0 > 0 else 0.0
        # fit at the rate guess: the rate estimate for the final covariance
        _row_gls(m, nx, fg, rn2, a_r, b_r, a_p, b_p, use, d, beta, ipiv, x, y)
        _row_sums(m, nx, use, x, y, d, sf, sb, sa)
        _row_rates(nx, sf, sb, sa, inv_gain, search, t1, nuse, fg)
        _row_gls(m, nx, fg, rn2, a_r, b_r, a_p, b_p, use, d, beta, ipiv, x, y)
        _row_sums(m, nx, use, x, y, d, sf, sb, sa)
        _row_slopes(nx, sf, sb, sa, sslope, schi)
        _row_variances(m, nx, use, x, sf, a_r, b_r, a_p, b_p, svp, svr)
        _row_groups(data, groupdq, uniform_w, iy, nres, nx, gdq_out, n_good, gor, su)
        _row_scale(nx, nuse, fg, rn2, sslope, svp, svr, schi)
        _row_jump_pixels(
            inputs,
            iy,
            nuse,
            terms,
            t1,
            t2,
            search,
            jump_cuts_one,
            pix,
            r,
            gq,
            results,
            gdq_out,
            gor,
        )
        _row_store(pixeldq, iy, nx, n_good, gor, inv_gain, sslope, svp, svr, schi, su, out)
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
    return _likely_block(
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
