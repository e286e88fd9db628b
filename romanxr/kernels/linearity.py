"""Read-level classical linearity correction on plain arrays (algorithms.md 4.6).

Per pixel: sanitise the polynomial coefficients, anchor a linear ramp on the first and the
last-but-one unsaturated resultant, rebuild each read of each resultant through the inverse
(forward non-linear) polynomial, optionally add the ADC integral non-linearity of the pixel's
science channel, linearise each read and average them back into the resultant.

The arithmetic follows the reference implementation's precisions so results agree to float32
rounding: the anchor polynomial is evaluated in float32, everything per read in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from romanxr.dq import GroupFlag, PixelFlag

__all__ = ["CLAMP", "linearity_correction", "pack_read_pattern"]

#: Corrected values beyond +-CLAMP DN are clipped and flagged DO_NOT_USE (romancal's guard).
CLAMP = 1.0e6

_SAT = int(GroupFlag.SATURATED)
_DNU = int(GroupFlag.DO_NOT_USE)
_NO_LIN_CORR = int(PixelFlag.NO_LIN_CORR)


def pack_read_pattern(read_pattern: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Flatten an MA table: (all read numbers as float64, start offset of each resultant)."""
    reads = np.array([r for g in read_pattern for r in g], dtype=np.float64)
    starts = np.zeros(len(read_pattern) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([len(g) for g in read_pattern])
    return reads, starts


@njit(cache=True, nogil=True)
def _horner32(c, y, x, v):  # pragma: no cover - compiled
    n = c.shape[0]
    r = np.float32(c[n - 1, y, x] * v)
    for j in range(n - 2, 0, -1):
        r = np.float32(r + c[j, y, x])
        r = np.float32(r * v)
    return np.float32(r + c[0, y, x])


@njit(cache=True, nogil=True)
def _horner64(c, y, x, v):  # pragma: no cover - compiled
    n = c.shape[0]
    r = np.float64(c[n - 1, y, x]) * v
    for j in range(n - 2, 0, -1):
        r += np.float64(c[j, y, x])
        r *= v
    return r + np.float64(c[0, y, x])


@njit(cache=True, nogil=True)
def _interp(v, xp, fp):  # pragma: no cover - compiled
    """``numpy.interp`` for one value (clamped at both ends, exact at the nodes)."""
    n = xp.shape[0]
    if np.isnan(v):
        return v
    if v <= xp[0]:
        return fp[0]
    if v >= xp[n - 1]:
        return fp[n - 1]
    lo = 0
    hi = n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xp[mid] <= v:
            lo = mid
        else:
            hi = mid
    if xp[lo] == v:
        return fp[lo]
    slope = (fp[lo + 1] - fp[lo]) / (xp[lo + 1] - xp[lo])
    res = slope * (v - xp[lo]) + fp[lo]
    if np.isnan(res):
        res = slope * (v - xp[lo + 1]) + fp[lo + 1]
        if np.isnan(res) and fp[lo] == fp[lo + 1]:
            res = fp[lo]
    return res


@njit(cache=True, nogil=True)
def _sanitise(coeffs, lin_dq, pdq, no_lin_corr):  # pragma: no cover - compiled
    """Identity coefficients where flagged, NaN or with a zero linear term (in place)."""
    nc, ny, nx = coeffs.shape
    for y in range(ny):
        for x in range(nx):
            bad = False
            for k in range(nc):
                if np.isnan(coeffs[k, y, x]):
                    bad = True
            if nc > 1 and coeffs[1, y, x] == 0:
                bad = True
            if bad:
                pdq[y, x] |= no_lin_corr
            if bad or (lin_dq[y, x] & no_lin_corr) != 0:
                for k in range(nc):
                    coeffs[k, y, x] = 0.0
                if nc > 1:
                    coeffs[1, y, x] = 1.0


@njit(cache=True, nogil=True)
def _horner_row(c, v, out):  # pragma: no cover - compiled
    """float64 Horner on a run of pixels (``c`` is (coeff, pixel)): coefficient loop outside so
    the pixel loop vectorises."""
    n = c.shape[0]
    m = v.shape[0]
    for x in range(m):
        out[x] = np.float64(c[n - 1, x]) * v[x]
    for j in range(n - 2, 0, -1):
        for x in range(m):
            out[x] = (out[x] + np.float64(c[j, x])) * v[x]
    for x in range(m):
        out[x] += np.float64(c[0, x])


@njit(cache=True, nogil=True)
def _interp_uniform(v, x0, inv_step, xp, fp, c):  # pragma: no cover - compiled
    """``_interp`` on row ``c`` of ``fp`` for equally spaced nodes: the interval is computed,
    not searched (a slope table was tried: the extra cache line costs more than the division).
    """
    n = xp.shape[0]
    if np.isnan(v):
        return v
    if v <= xp[0]:
        return fp[c, 0]
    if v >= xp[n - 1]:
        return fp[c, n - 1]
    j = int((v - x0) * inv_step)
    j = min(max(j, 0), n - 2)
    # guard against rounding: the same interval a binary search finds
    while j > 0 and xp[j] > v:
        j -= 1
    while j < n - 2 and xp[j + 1] <= v:
        j += 1
    if xp[j] == v:
        return fp[c, j]
    slope = (fp[c, j + 1] - fp[c, j]) / (xp[j + 1] - xp[j])
    res = slope * (v - xp[j]) + fp[c, j]
    if np.isnan(res):
        res = slope * (v - xp[j + 1]) + fp[c, j + 1]
        if np.isnan(res) and fp[c, j] == fp[c, j + 1]:
            res = fp[c, j]
    return res


@njit(cache=True, nogil=True)
def _correct(
    data, gdq, lin, ilin, reads, starts, channel, tiles, inl_x, inl_y, use_inl, uniform, clamp
):  # pragma: no cover - compiled
    nres, ny, nx = data.shape
    sat = np.uint8(_SAT)
    dnu = np.uint8(_DNU)
    out = np.empty_like(data)
    gout = gdq.copy()
    mean_read = np.empty(nres, dtype=np.float64)
    max_reads = 0
    for i in range(nres):
        s = 0.0
        for k in range(starts[i], starts[i + 1]):
            s += reads[k]
        mean_read[i] = s / (starts[i + 1] - starts[i])
        max_reads = max(max_reads, starts[i + 1] - starts[i])
    x0 = inl_x[0]
    span = inl_x[inl_x.shape[0] - 1] - x0
    inv_step = (inl_x.shape[0] - 1) / span if span > 0 else 0.0
    first = np.empty(nx, dtype=np.float32)
    rate = np.empty(nx, dtype=np.float64)
    obs = np.empty((max_reads, nx), dtype=np.float64)
    total = np.empty(nx, dtype=np.float64)
    shifted = np.empty(nx, dtype=np.float64)
    lin_read = np.empty(nx, dtype=np.float64)
    acc = np.empty(nx, dtype=np.float64)
    # Column tiles of one science channel each, so the INL lookups of a tile stay within one
    # channel's table (cache-resident) instead of roaming over all 32 tables.
    for t in range(tiles.shape[0] - 1):
        lo = tiles[t]
        hi = tiles[t + 1]
        for y in range(ny):
            # anchors: first and last-but-one unsaturated resultant, linearised in float32
            for x in range(lo, hi):
                n_unsat = 0
                for i in range(nres):
                    if (gdq[i, y, x] & sat) == 0:
                        n_unsat += 1
                last = min(max(n_unsat - 1, 2) - 1, nres - 1)
                d0 = data[0, y, x]
                f = d0 if (gdq[0, y, x] & sat) != 0 else _horner32(lin, y, x, d0)
                dl = data[last, y, x]
                lf = dl if (gdq[last, y, x] & sat) != 0 else _horner32(lin, y, x, dl)
                first[x] = f
                if last > 0:
                    rate[x] = np.float64(np.float32(lf - f)) / (mean_read[last] - mean_read[0])
                else:
                    rate[x] = 0.0
            for i in range(nres):
                a = starts[i]
                n = starts[i + 1] - a
                for x in range(lo, hi):
                    total[x] = 0.0
                for k in range(n):
                    since = reads[a + k] - mean_read[0]
                    for x in range(lo, hi):
                        lin_read[x] = np.float64(first[x]) + rate[x] * since
                    _horner_row(ilin[:, y, lo:hi], lin_read[lo:hi], obs[k, lo:hi])
                    for x in range(lo, hi):
                        total[x] += obs[k, x]
                for x in range(lo, hi):
                    total[x] = np.float64(data[i, y, x]) - total[x] / n  # the shift
                    acc[x] = 0.0
                for k in range(n):
                    for x in range(lo, hi):
                        shifted[x] = obs[k, x] + total[x]
                    if use_inl:
                        for x in range(lo, hi):
                            v = shifted[x]
                            if uniform:
                                shifted[x] = v + _interp_uniform(
                                    v, x0, inv_step, inl_x, inl_y, channel[y, x]
                                )
                            else:
                                shifted[x] = v + _interp(v, inl_x, inl_y[channel[y, x]])
                    _horner_row(lin[:, y, lo:hi], shifted[lo:hi], lin_read[lo:hi])
                    for x in range(lo, hi):
                        acc[x] += lin_read[x]
                for x in range(lo, hi):
                    di = data[i, y, x]
                    if (gdq[i, y, x] & sat) != 0:
                        out[i, y, x] = di
                        continue
                    value = np.float32(acc[x] / n)
                    if abs(value) > clamp:
                        value = np.float32(clamp) if value > 0 else np.float32(-clamp)
                        gout[i, y, x] |= dnu
                    out[i, y, x] = value
    return out, gout


def linearity_correction(
    data: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    lin_coeffs: np.ndarray,
    ilin_coeffs: np.ndarray,
    lin_dq: np.ndarray,
    channel: np.ndarray,
    *,
    reads: np.ndarray,
    starts: np.ndarray,
    inl_values: np.ndarray | None = None,
    inl_corrections: np.ndarray | None = None,
    clamp: float = CLAMP,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linearise one block of resultants, read by read.

    Parameters
    ----------
    data : ndarray, float32, (resultant, y, x)
        Resultants (DN, observed).
    groupdq : ndarray, uint8, (resultant, y, x)
        SATURATED resultants are passed through unchanged.
    pixeldq : ndarray, uint32, (y, x)
        Pixel DQ on input.
    lin_coeffs, ilin_coeffs : ndarray, float32, (coeff, y, x)
        Linearity (observed -> linear DN) and inverse linearity (linear -> observed DN)
        polynomial coefficients, lowest order first.
    lin_dq : ndarray, uint32, (y, x)
        DQ of the linearity reference (OR'ed into ``pixeldq``; NO_LIN_CORR -> identity for
        both polynomials).
    channel : ndarray, int, broadcastable to (y, x)
        0-based science channel of each pixel (absolute column // 128), row of
        ``inl_corrections`` to use.
    reads, starts : ndarray
        MA table from :func:`pack_read_pattern`.
    inl_values : ndarray, (n,), optional
        INL lookup abscissa (DN); with ``inl_corrections`` (channel, n) enables the INL term.
    clamp : float
        Corrected values beyond +-clamp are clipped and flagged DO_NOT_USE.

    Returns
    -------
    data, groupdq, pixeldq
        float32 corrected resultants, uint8 group DQ (DO_NOT_USE where clamped), uint32 pixel
        DQ (``| lin_dq``, NO_LIN_CORR where a polynomial had NaNs or a zero linear term).
    """
    data = np.asarray(data, dtype=np.float32)  # any layout: numba reads it strided
    gdq = np.asarray(groupdq, dtype=np.uint8)
    ldq = np.ascontiguousarray(lin_dq, dtype=np.uint32)
    pdq = np.asarray(pixeldq, dtype=np.uint32) | ldq
    lin = np.array(lin_coeffs, dtype=np.float32, copy=True, order="C")
    ilin = np.array(ilin_coeffs, dtype=np.float32, copy=True, order="C")
    _sanitise(lin, ldq, pdq, np.uint32(_NO_LIN_CORR))
    _sanitise(ilin, ldq, pdq, np.uint32(_NO_LIN_CORR))
    ch = np.ascontiguousarray(np.broadcast_to(np.asarray(channel, dtype=np.int64), data.shape[1:]))
    use_inl = inl_values is not None and inl_corrections is not None
    nx = data.shape[-1]
    if use_inl and ch.shape[0]:
        # runs of columns of one channel (the channel depends on the column only); without INL
        # whole rows vectorise better
        breaks = np.flatnonzero(np.diff(ch[0])) + 1
        tiles = np.concatenate([[0], breaks, [nx]]).astype(np.int64)
    else:
        tiles = np.array([0, nx], dtype=np.int64)
    if use_inl:
        inl_x = np.ascontiguousarray(inl_values, dtype=np.float32).astype(np.float64)
        inl_y = np.ascontiguousarray(inl_corrections, dtype=np.float64)
        gaps = np.diff(inl_x)
        uniform = bool(gaps.size and (gaps > 0).all() and (gaps == gaps[0]).all())
    else:
        inl_x = np.zeros(1, dtype=np.float64)
        inl_y = np.zeros((1, 1), dtype=np.float64)
        ch = np.zeros_like(ch)
        uniform = False
    out, gout = _correct(
        data,
        gdq,
        lin,
        ilin,
        np.asarray(reads, dtype=np.float64),
        np.asarray(starts, dtype=np.int64),
        ch,
        tiles,
        inl_x,
        inl_y,
        use_inl,
        uniform,
        float(clamp),
    )
    return out, gout, pdq
