"""Read-level classical linearity correction on plain arrays (algorithms.md 4.6).

Per pixel: sanitise the polynomial coefficients, anchor a linear ramp on the first and the
last-but-one unsaturated resultant, rebuild each read of each resultant through the inverse
(forward non-linear) polynomial, optionally add the ADC integral non-linearity of the pixel's
science channel, linearise each read and average them back into the resultant.

The arithmetic follows the reference implementation's precisions so results agree to float32
rounding: the anchor polynomial is evaluated in float32, everything per read in float64.

Speed: the kernel walks one row (and, with INL, one science channel of it) at a time; the
coefficients of that run of pixels are sanitised into float64 scratch rows once and every
per-read loop runs over contiguous pixels without branches, so the compiler vectorises it.
The INL interval of a value is computed directly when the abscissa is consecutive integers
(the usual 0..65535 table) or evenly spaced by a power of two (the simulator's 0, 64, ...,
65535), found from a bucket table of at most one node per bucket (checked, with a binary
search for the rare misses) when it is any other increasing sequence, and by a binary
search otherwise. No floating-point operation is reordered or contracted (no
``fastmath``): results are bit-for-bit those of the plain per-read algorithm.
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

# how the INL interval of a value is found
_INL_NONE = 0
_INL_DIRECT = 1  # abscissa x0, x0 + 1, ...: the interval is floor(v) - x0
_INL_BUCKET = 2  # increasing abscissa: bucket table + one step, checked
_INL_SEARCH = 3  # anything else: binary search (numpy.interp's answer for sorted abscissae)
_INL_STEP = 4  # x0, x0 + s, x0 + 2 s, ... (s a power of two, last gap <= s): floor(v / s) - x0 / s

#: Largest INL bucket table (int32 entries) built for an uneven abscissa.
_MAX_BUCKETS = 1 << 18


def pack_read_pattern(read_pattern: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Flatten an MA table: (all read numbers as float64, start offset of each resultant)."""
    reads = np.array([r for g in read_pattern for r in g], dtype=np.float64)
    starts = np.zeros(len(read_pattern) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([len(g) for g in read_pattern])
    return reads, starts


@njit(cache=True, nogil=True)
def _search(v, xp):  # pragma: no cover - compiled
    """Interval ``j`` (``xp[j] <= v < xp[j + 1]``) of ``xp[0] < v < xp[-1]`` by bisection."""
    lo = 0
    hi = xp.shape[0] - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xp[mid] <= v:
            lo = mid
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True, inline="always")
def _interp_at(v, j, xp, fp):  # pragma: no cover - compiled
    """``numpy.interp(v, xp, fp)`` given the interval ``j`` of ``v`` (any ``j`` in range
    when ``v`` is NaN or outside the nodes); only selects, so loops over it vectorise."""
    n = xp.shape[0]
    xj = xp[j]
    xj1 = xp[j + 1]
    fj = fp[j]
    fj1 = fp[j + 1]
    slope = (fj1 - fj) / (xj1 - xj)
    res = slope * (v - xj) + fj
    alt = slope * (v - xj1) + fj1  # infinite table values: numpy's second try
    if np.isnan(alt) and fj == fj1:
        alt = fj
    if np.isnan(res):
        res = alt
    if xj == v:
        res = fj
    if v >= xp[n - 1]:
        res = fp[n - 1]
    if v <= xp[0]:
        res = fp[0]
    if np.isnan(v):
        res = v
    return res


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
def _inl_direct(vals, flag, w, xp, fp):  # pragma: no cover - compiled
    """``vals += INL(vals)`` for the abscissa ``xp = x0, x0 + 1, ...``: the interval is
    ``floor(v) - x0``. Ends, nodes and NaN are selects, as in numpy.interp; where the table
    is not finite the answer is not certain, ``flag`` is set there; returns how many."""
    n = xp.shape[0]
    x_lo = xp[0]
    x_hi = xp[n - 1]
    f_lo = fp[0]
    f_hi = fp[n - 1]
    special = 0
    for x in range(w):
        v = vals[x]
        xj = np.floor(v if (v > x_lo and v < x_hi) else x_lo)  # == xp[j]
        j = int(xj - x_lo)
        fj = fp[j]
        # slope / 1.0 is the slope: numpy.interp's arithmetic exactly
        res = (fp[j + 1] - fj) * (v - xj) + fj
        if v == xj:
            res = fj
        if v >= x_hi:
            res = f_hi
        if v <= x_lo:
            res = f_lo
        odd = np.isnan(res) and not np.isnan(v)
        flag[x] = odd
        special += odd
        vals[x] = v + res  # NaN v: NaN, as numpy.interp returns v there
    return special


@njit(cache=True, nogil=True)
def _inl_step(vals, flag, w, xp, fp, slope, inv_step, x0s):  # pragma: no cover - compiled
    """``vals += INL(vals)`` for ``xp = x0 + k s`` (``s`` a power of two dividing ``x0``; the
    last gap may be shorter): ``v / s`` and its floor are exact, so the interval
    ``floor(v / s) - x0 / s`` is exact too. ``flag`` as in :func:`_inl_direct`."""
    n = xp.shape[0]
    x_lo = xp[0]
    x_hi = xp[n - 1]
    f_lo = fp[0]
    f_hi = fp[n - 1]
    special = 0
    for x in range(w):
        v = vals[x]
        u = v if (v > x_lo and v < x_hi) else x_lo
        j = min(int(np.floor(u * inv_step) - x0s), n - 2)
        xj = xp[j]
        fj = fp[j]
        res = slope[j] * (v - xj) + fj
        if v == xj:
            res = fj
        if v >= x_hi:
            res = f_hi
        if v <= x_lo:
            res = f_lo
        odd = np.isnan(res) and not np.isnan(v)
        flag[x] = odd
        special += odd
        vals[x] = v + res
    return special


@njit(cache=True, nogil=True)
def _inl_bucket(vals, flag, w, xp, fp, slope, bucket, inv_width):  # pragma: no cover - compiled
    """``vals += INL(vals)`` for an increasing abscissa ``xp``, the interval taken from the
    bucket table and one step; ``flag`` (and the count returned) as in :func:`_inl_direct`,
    also where the interval found is not the value's (rounding of the bucket index)."""
    n = xp.shape[0]
    x_lo = xp[0]
    x_hi = xp[n - 1]
    f_lo = fp[0]
    f_hi = fp[n - 1]
    nbucket = bucket.shape[0]
    special = 0
    for x in range(w):
        v = vals[x]
        inside = v > x_lo and v < x_hi
        u = v if inside else x_lo
        j = np.intp(bucket[min(int((u - x_lo) * inv_width), nbucket - 1)])
        j += np.intp(xp[j + 1] <= u)  # arithmetic, not a branch: the loop vectorises
        xj = xp[j]
        fj = fp[j]
        res = slope[j] * (v - xj) + fj
        if v == xj:
            res = fj
        if v >= x_hi:
            res = f_hi
        if v <= x_lo:
            res = f_lo
        odd = (np.isnan(res) and not np.isnan(v)) or (inside and (xj > u or xp[j + 1] <= u))
        flag[x] = odd
        special += odd
        vals[x] = v + res
    return special


@njit(cache=True, nogil=True)
def _inl_fix(obs, shift, vals, flag, w, x_lo, x_hi, xp, fp):  # pragma: no cover - compiled
    """Redo ``vals = obs + shift + INL(obs + shift)`` with a search where ``flag`` says the
    fast lookup's answer is not certain (NaN, outside the nodes, on a node, bucket misses)."""
    for x in range(w):
        if not flag[x]:
            continue
        v = obs[x] + shift[x]
        inside = v > x_lo and v < x_hi
        j = 0
        if inside:
            j = _search(v, xp)
        vals[x] = v + _interp_at(v, j, xp, fp)


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
    sat = np.uint8(_SAT)
    dnu = np.uint8(_DNU)
    nlc = np.uint32(_NO_LIN_CORR)
    out = np.empty((nres, ny, nx), dtype=np.float32)
    gout = np.empty((0, 0, 0), dtype=np.uint8)  # a copy of gdq once something is clamped
    clamped = False
    mean_read = np.empty(nres, dtype=np.float64)
    max_reads = 0
    for i in range(nres):
        s = 0.0
        for k in range(starts[i], starts[i + 1]):
            s += reads[k]
        mean_read[i] = s / (starts[i + 1] - starts[i])
        max_reads = max(max_reads, starts[i + 1] - starts[i])
    width = 0
    for t in range(tiles.shape[0] - 1):
        width = max(width, tiles[t + 1] - tiles[t])
    lim = np.float32(clamp)
    nl = lin_in.shape[0]
    ni = ilin_in.shape[0]
    cl = np.empty((nl, width), dtype=np.float64)
    ci = np.empty((ni, width), dtype=np.float64)
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
    nval = inl_x.shape[0]
    x_lo = inl_x[0]
    x_hi = inl_x[nval - 1]
    for t in range(tiles.shape[0] - 1):
        lo = tiles[t]
        hi = tiles[t + 1]
        w = hi - lo
        for y in range(ny):
            fp = inl_y[channel[y, lo]]
            _load_coeffs(lin_in, y, lo, hi, ldq, nlc, cl, flag, pdq)
            _load_coeffs(ilin_in, y, lo, hi, ldq, nlc, ci, flag, pdq)
            # anchors: first and last-but-one unsaturated resultant, linearised in float32
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
            for i in range(nres):
                a = starts[i]
                n = starts[i + 1] - a
                drow = data[i, y, lo:hi]
                # reads on the line, through the inverse polynomial; their mean goes to D_i
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
                    acc[x] = 0.0
                for k in range(n):
                    for x in range(w):
                        vals[x] = obs[k, x] + shift[x]
                    if mode == _INL_DIRECT:
                        special = _inl_direct(vals, flag, w, inl_x, fp)
                        if special:
                            _inl_fix(obs[k], shift, vals, flag, w, x_lo, x_hi, inl_x, fp)
                    elif mode == _INL_STEP:
                        special = _inl_step(
                            vals, flag, w, inl_x, fp, slopes[channel[y, lo]], inv_width, bucket_x0
                        )
                        if special:
                            _inl_fix(obs[k], shift, vals, flag, w, x_lo, x_hi, inl_x, fp)
                    elif mode == _INL_BUCKET:
                        special = _inl_bucket(
                            vals, flag, w, inl_x, fp, slopes[channel[y, lo]], bucket, inv_width
                        )
                        if special:
                            _inl_fix(obs[k], shift, vals, flag, w, x_lo, x_hi, inl_x, fp)
                    elif mode == _INL_SEARCH:
                        flag[:w] = True
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
                if n_over:  # rare: flag the clamped resultants DO_NOT_USE in a copy
                    if not clamped:
                        gout = gdq.copy()
                        clamped = True
                    for x in range(w):
                        if (grow[x] & sat) == 0 and abs(np.float32(acc[x] / n)) > clamp:
                            gout[i, y, lo + x] |= dnu
    return out, gout, clamped


def _inl_plan(inl_x: np.ndarray) -> tuple[int, np.ndarray, float, float]:
    """How to find INL intervals: (mode, bucket table, buckets (or steps) per DN, x0 in
    steps).

    Buckets narrower than the smallest node gap hold at most one node, so the interval of a
    value is its bucket's first interval or the next one (the kernel checks which, and
    searches where rounding put a value in a neighbouring bucket).
    """
    none = np.zeros(1, dtype=np.int32)
    n = inl_x.size
    gaps = np.diff(inl_x)
    if n < 2 or not (gaps > 0).all() or not np.isfinite(inl_x).all():
        return _INL_SEARCH, none, 0.0, 0.0
    x0 = inl_x[0]
    if x0 == np.floor(x0) and abs(x0) < 2**52 and (inl_x == x0 + np.arange(n)).all():
        return _INL_DIRECT, none, 0.0, 0.0
    step = gaps[0]
    if (
        np.frexp(step)[0] == 0.5  # a power of two
        and abs(x0) < 2**52
        and x0 / step == np.floor(x0 / step)
        and (inl_x[:-1] == x0 + step * np.arange(n - 1)).all()
        and gaps[-1] <= step
    ):
        return _INL_STEP, none, float(1 / step), float(x0 / step)
    span = inl_x[-1] - x0
    nbucket = int(np.floor(span / gaps.min())) + 2
    if nbucket > max(4 * n, _MAX_BUCKETS):  # very uneven nodes: search
        return _INL_SEARCH, none, 0.0, 0.0
    inv_width = nbucket / span
    edges = x0 + np.arange(nbucket) / inv_width
    bucket = np.clip(np.searchsorted(inl_x, edges, side="right") - 1, 0, n - 2)
    return _INL_BUCKET, bucket.astype(np.int32), float(inv_width), 0.0


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
        inl_x = np.ascontiguousarray(inl_values, dtype=np.float32).astype(np.float64)
        inl_y = np.ascontiguousarray(inl_corrections, dtype=np.float64)
        if inl_x.size == 1:  # one node: numpy.interp is that constant everywhere
            inl_x = np.repeat(inl_x, 2)
            inl_y = np.repeat(inl_y, 2, axis=-1)
        mode, bucket, inv_width, x0s = _inl_plan(inl_x)
        slopes = inl_y[:, :1]
        if mode in (_INL_BUCKET, _INL_STEP):  # the division numpy.interp does, once per node
            slopes = np.diff(inl_y, axis=-1) / np.diff(inl_x)
    else:
        tiles = _column_tiles(ch, nx, False)
        ch = np.zeros((1, 1), dtype=np.int64)
        inl_x = np.zeros(2, dtype=np.float64)
        inl_y = np.zeros((1, 2), dtype=np.float64)
        mode, bucket, inv_width, x0s = _INL_NONE, np.zeros(1, np.int32), 0.0, 0.0
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
