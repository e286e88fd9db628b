"""Read-level classical linearity correction on plain arrays.

Per pixel: sanitise the polynomial coefficients, anchor a linear ramp on the first and the
last-but-one unsaturated resultant, rebuild each read of each resultant through the inverse
(forward non-linear) polynomial, optionally add the ADC integral non-linearity of the pixel's
science channel, linearise each read and average them back into the resultant.

The arithmetic follows the reference implementation's precisions so results agree to float32
rounding: the anchor polynomial is evaluated in float32, everything per read in float64.

Speed: the kernel walks one row (and, with INL, one science channel of it) at a time; the
coefficients of that run of pixels are sanitised into float64 scratch rows once and every
per-read loop runs over contiguous pixels without branches, so the compiler vectorises it.
The INL lookup is in :mod:`romanxr.kernels.linearity_inl`. The kernel's per-block and
per-row steps are ``@njit(inline="always")`` helpers, spliced into it by numba before
compiling; the per-read work stays in its own loops (an inlined call per read still costs
reference counting of its array arguments: measured up to 10 % slower). No
floating-point operation is reordered or contracted (no ``fastmath``): results are
bit-for-bit those of the plain per-read algorithm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from romanxr.dq import GroupFlag, PixelFlag
from romanxr.kernels.linearity_inl import (
    INL_BUCKET,
    INL_DIRECT,
    INL_NONE,
    INL_STEP,
    _inl_bucket,
    _inl_direct,
    _inl_fix,
    _inl_step,
    inl_tables,
)

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
def _horner_rows(c, v, out, w, add):  # pragma: no cover - compiled
    """float64 Horner of the scratch coefficients ``c[:, :w]`` at ``v[:w]`` into ``out``.

    ``((c[n-1] v + c[n-2]) v + ...) v + c[0]``, always in that order; with ``add`` the
    result is added to ``out`` instead. Common orders are
    written out so that each pixel is one straight expression and the loop vectorises;
    others loop over the coefficients outside the pixel loop.
    """
    n = c.shape[0]
    if n == 7:
        c6, c5, c4, c3, c2, c1, c0 = c[6], c[5], c[4], c[3], c[2], c[1], c[0]
        for x in range(w):
            t = v[x]
            r = (
                ((((c6[x] * t + c5[x]) * t + c4[x]) * t + c3[x]) * t + c2[x]) * t + c1[x]
            ) * t + c0[x]
            if add:
                out[x] += r
            else:
                out[x] = r
    elif n == 3:
        c2, c1, c0 = c[2], c[1], c[0]
        for x in range(w):
            t = v[x]
            r = (c2[x] * t + c1[x]) * t + c0[x]
            if add:
                out[x] += r
            else:
                out[x] = r
    elif n == 2:
        c1, c0 = c[1], c[0]
        for x in range(w):
            r = c1[x] * v[x] + c0[x]
            if add:
                out[x] += r
            else:
                out[x] = r
    elif n == 4:
        c3, c2, c1, c0 = c[3], c[2], c[1], c[0]
        for x in range(w):
            t = v[x]
            r = ((c3[x] * t + c2[x]) * t + c1[x]) * t + c0[x]
            if add:
                out[x] += r
            else:
                out[x] = r
    elif n == 5:
        c4, c3, c2, c1, c0 = c[4], c[3], c[2], c[1], c[0]
        for x in range(w):
            t = v[x]
            r = (((c4[x] * t + c3[x]) * t + c2[x]) * t + c1[x]) * t + c0[x]
            if add:
                out[x] += r
            else:
                out[x] = r
    elif n == 6:
        c5, c4, c3, c2, c1, c0 = c[5], c[4], c[3], c[2], c[1], c[0]
        for x in range(w):
            t = v[x]
            r = ((((c5[x] * t + c4[x]) * t + c3[x]) * t + c2[x]) * t + c1[x]) * t + c0[x]
            if add:
                out[x] += r
            else:
                out[x] = r
    else:
        tmp = np.empty(w, dtype=np.float64)
        top = c[n - 1]
        for x in range(w):
            tmp[x] = top[x] * v[x]
        for j in range(n - 2, 0, -1):
            cj = c[j]
            for x in range(w):
                tmp[x] = (tmp[x] + cj[x]) * v[x]
        c0 = c[0]
        for x in range(w):
            r = tmp[x] + c0[x]
            if add:
                out[x] += r
            else:
                out[x] = r


@njit(cache=True, nogil=True)
def _horner32_rows(c, v, out, w):  # pragma: no cover - compiled
    """:func:`_horner_rows` in float32 arithmetic (``c`` holds float32 values)."""
    n = c.shape[0]
    top = c[n - 1]
    for x in range(w):
        out[x] = np.float32(top[x]) * v[x]
    for j in range(n - 2, 0, -1):
        cj = c[j]
        for x in range(w):
            out[x] = (out[x] + np.float32(cj[x])) * v[x]
    c0 = c[0]
    for x in range(w):
        out[x] = out[x] + np.float32(c0[x])


@njit(cache=True, nogil=True)
def _load_coeffs(src, y, lo, hi, ldq, nlc, dst, bad, pdq):  # pragma: no cover - compiled
    """Copy ``src[:, y, lo:hi]`` (as float32 values) into float64 ``dst``; identity where
    NO_LIN_CORR in ``ldq``, NaN or a zero linear term (the last two flag ``pdq``)."""
    nc = src.shape[0]
    w = hi - lo
    for x in range(w):
        bad[x] = False
    for k in range(nc):
        row = dst[k]
        for x in range(w):
            c = np.float32(src[k, y, lo + x])
            bad[x] |= np.isnan(c)
            row[x] = c
    if nc > 1:
        c1 = dst[1]
        for x in range(w):
            bad[x] |= c1[x] == 0
    for x in range(w):
        if bad[x]:
            pdq[y, lo + x] |= nlc
        if bad[x] or (ldq[y, lo + x] & nlc) != 0:
            for k in range(nc):
                dst[k, x] = 0.0
            if nc > 1:
                dst[1, x] = 1.0


@njit(cache=True, nogil=True, inline="always")
def _read_means(reads, starts):  # pragma: no cover - compiled
    """Mean read number of each resultant and the most reads in one resultant."""
    nres = starts.shape[0] - 1
    mean_read = np.empty(nres, dtype=np.float64)
    max_reads = 0
    for i in range(nres):
        s = 0.0
        for k in range(starts[i], starts[i + 1]):
            s += reads[k]
        mean_read[i] = s / (starts[i + 1] - starts[i])
        max_reads = max(max_reads, starts[i + 1] - starts[i])
    return mean_read, max_reads


@njit(cache=True, nogil=True, inline="always")
def _widest(tiles):  # pragma: no cover - compiled
    """Most columns in one tile."""
    width = 0
    for t in range(tiles.shape[0] - 1):
        width = max(width, tiles[t + 1] - tiles[t])
    return width


@njit(cache=True, nogil=True, inline="always")
def _anchors(
    data, gdq, cl, y, lo, w, mean_read, lasts, d32, dl32, f32, lf32, first, rate
):  # pragma: no cover
    """First value and rate (per mean read) of the linear ramp of each pixel of a run:
    anchored on the first and last-but-one unsaturated resultant, linearised in float32."""
    nres = data.shape[0]
    sat = np.uint8(_SAT)
    for x in range(w):
        n_unsat = 0
        for i in range(nres):
            n_unsat += (gdq[i, y, lo + x] & sat) == 0
        last = min(max(n_unsat - 1, 2) - 1, nres - 1)
        lasts[x] = last
        d32[x] = data[0, y, lo + x]
        dl32[x] = data[last, y, lo + x]
    _horner32_rows(cl, d32, f32, w)
    _horner32_rows(cl, dl32, lf32, w)
    for x in range(w):
        last = lasts[x]
        f = d32[x] if (gdq[0, y, lo + x] & sat) != 0 else f32[x]
        lf = dl32[x] if (gdq[last, y, lo + x] & sat) != 0 else lf32[x]
        first[x] = np.float64(f)
        if last > 0:
            rate[x] = np.float64(np.float32(lf - f)) / (mean_read[last] - mean_read[0])
        else:
            rate[x] = 0.0


@njit(cache=True, nogil=True, inline="always")
def _flag_clamped(gout, grow, acc, n, w, clamp, i, y, lo):  # pragma: no cover - compiled
    """DO_NOT_USE on the clipped resultants of a run (rare)."""
    for x in range(w):
        if (grow[x] & np.uint8(_SAT)) == 0 and abs(np.float32(acc[x] / n)) > clamp:
            gout[i, y, lo + x] |= np.uint8(_DNU)


@njit(cache=True, nogil=True)
def _correct(
    data,
    gdq,
    lin_in,
    ilin_in,
    ldq,
    pdq,
    reads,
    starts,
    channel,
    tiles,
    inl_x,
    inl_y,
    mode,
    bucket,
    slopes,
    inv_width,
    bucket_x0,
    clamp,
):  # pragma: no cover - compiled
    nres, ny, nx = data.shape
    nlc = np.uint32(_NO_LIN_CORR)
    sat = np.uint8(_SAT)
    out = np.empty((nres, ny, nx), dtype=np.float32)
    gout = np.empty((0, 0, 0), dtype=np.uint8)  # a copy of gdq once something is clamped
    clamped = False
    mean_read, max_reads = _read_means(reads, starts)
    width = _widest(tiles)
    lim = np.float32(clamp)
    x_lo = inl_x[0]
    x_hi = inl_x[inl_x.shape[0] - 1]
    cl = np.empty((lin_in.shape[0], width), dtype=np.float64)
    ci = np.empty((ilin_in.shape[0], width), dtype=np.float64)
    first = np.empty(width, dtype=np.float64)
    rate = np.empty(width, dtype=np.float64)
    obs = np.empty((max_reads, width), dtype=np.float64)
    shift = np.empty(width, dtype=np.float64)
    vals = np.empty(width, dtype=np.float64)
    acc = np.empty(width, dtype=np.float64)
    flag = np.empty(width, dtype=np.bool_)
    lasts = np.empty(width, dtype=np.int64)
    d32 = np.empty(width, dtype=np.float32)
    dl32 = np.empty(width, dtype=np.float32)
    f32 = np.empty(width, dtype=np.float32)
    lf32 = np.empty(width, dtype=np.float32)
    for t in range(tiles.shape[0] - 1):
        lo = tiles[t]
        hi = tiles[t + 1]
        w = hi - lo
        for y in range(ny):
            fp = inl_y[channel[y, lo]]
            ch_slopes = slopes[channel[y, lo]]
            _load_coeffs(lin_in, y, lo, hi, ldq, nlc, cl, flag, pdq)
            _load_coeffs(ilin_in, y, lo, hi, ldq, nlc, ci, flag, pdq)
            _anchors(data, gdq, cl, y, lo, w, mean_read, lasts, d32, dl32, f32, lf32, first, rate)
            for i in range(nres):
                a = starts[i]
                n = starts[i + 1] - a
                drow = data[i, y, lo:hi]
                for x in range(w):
                    shift[x] = 0.0
                for k in range(n):
                    since = reads[a + k] - mean_read[0]
                    for x in range(w):
                        vals[x] = first[x] + rate[x] * since
                    _horner_rows(ci, vals, obs[k], w, False)
                    for x in range(w):
                        shift[x] += obs[k, x]
                for x in range(w):
                    shift[x] = np.float64(drow[x]) - shift[x] / n
                for x in range(w):
                    acc[x] = 0.0
                for k in range(n):
                    for x in range(w):
                        vals[x] = obs[k, x] + shift[x]
                    if mode != INL_NONE:
                        if mode == INL_DIRECT:
                            special = _inl_direct(vals, flag, w, inl_x, fp)
                        elif mode == INL_STEP:
                            special = _inl_step(
                                vals, flag, w, inl_x, fp, ch_slopes, inv_width, bucket_x0
                            )
                        elif mode == INL_BUCKET:
                            special = _inl_bucket(
                                vals, flag, w, inl_x, fp, ch_slopes, bucket, inv_width
                            )
                        else:  # search
                            flag[:w] = True
                            special = 1
                        if special:
                            _inl_fix(obs[k], shift, vals, flag, w, x_lo, x_hi, inl_x, fp)
                    _horner_rows(cl, vals, acc, w, True)
                grow = gdq[i, y, lo:hi]
                orow = out[i, y, lo:hi]
                n_over = 0
                for x in range(w):
                    issat = (grow[x] & sat) != 0
                    value = np.float32(acc[x] / n)
                    over = abs(value) > clamp
                    value = (lim if value > 0 else -lim) if over else value
                    orow[x] = drow[x] if issat else value
                    n_over += over and not issat
                if n_over:
                    if not clamped:  # rare: flag the clamped resultants DO_NOT_USE in a copy
                        gout = gdq.copy()
                        clamped = True
                    _flag_clamped(gout, grow, acc, n, w, clamp, i, y, lo)
    return out, gout, clamped


def _column_tiles(channel: np.ndarray, nx: int, split: bool) -> np.ndarray:
    """Column runs of one science channel (whole rows when ``split`` is False)."""
    if not split or nx == 0 or channel.ndim == 0:
        return np.array([0, nx], dtype=np.int64)
    rows = channel.reshape(-1, channel.shape[-1])
    changes = (np.diff(rows, axis=-1) != 0).any(axis=0)
    if changes.size == 0:
        return np.array([0, nx], dtype=np.int64)
    breaks = np.flatnonzero(changes) + 1
    return np.concatenate([[0], breaks, [nx]]).astype(np.int64)


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
        polynomial coefficients, lowest order first. Read as they are (any layout; other
        float types are rounded to float32 as they are read), never modified.
    lin_dq : ndarray, uint32, (y, x)
        DQ of the linearity reference (OR'ed into ``pixeldq``; NO_LIN_CORR -> identity for
        both polynomials).
    channel : ndarray, int, broadcastable to (y, x)
        0-based science channel of each pixel (absolute column // 128), row of
        ``inl_corrections`` to use; it must depend on the column only.
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
    ny, nx = data.shape[1:]
    ldq = np.broadcast_to(np.asarray(lin_dq, dtype=np.uint32), (ny, nx))
    pdq = np.asarray(pixeldq, dtype=np.uint32) | ldq
    lin = _float32_or_wider(lin_coeffs)
    ilin = _float32_or_wider(ilin_coeffs)
    use_inl = inl_values is not None and inl_corrections is not None
    ch = np.asarray(channel, dtype=np.int64)
    if use_inl:
        tiles = _column_tiles(ch, nx, True)
        ch = np.broadcast_to(ch, (ny, nx))
        inl_x, inl_y, mode, bucket, inv_width, x0s, slopes = inl_tables(inl_values, inl_corrections)
    else:
        tiles = _column_tiles(ch, nx, False)
        ch = np.zeros((1, 1), dtype=np.int64)
        inl_x = np.zeros(2, dtype=np.float64)
        inl_y = np.zeros((1, 2), dtype=np.float64)
        mode, bucket, inv_width, x0s = INL_NONE, np.zeros(1, np.int32), 0.0, 0.0
        slopes = inl_y
    if ny == 0 or nx == 0:
        return data.copy(), gdq.copy(), pdq
    out, gout, clamped = _correct(
        data,
        gdq,
        lin,
        ilin,
        ldq,
        pdq,
        np.asarray(reads, dtype=np.float64),
        np.asarray(starts, dtype=np.int64),
        ch,
        tiles,
        inl_x,
        inl_y,
        mode,
        bucket,
        slopes,
        inv_width,
        x0s,
        float(clamp),
    )
    # unchanged group DQ is passed through, not copied
    return out, (gout if clamped else gdq), pdq


def _float32_or_wider(coeffs: np.ndarray) -> np.ndarray:
    """Coefficients without a copy when float32/float64 (the kernel rounds to float32)."""
    a = np.asarray(coeffs)
    if a.dtype in (np.float32, np.float64):
        return a
    return a.astype(np.float32)
