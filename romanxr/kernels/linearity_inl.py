"""The ADC integral non-linearity (INL) lookup of the linearity kernel, on plain arrays.

``INL(v)`` is ``numpy.interp(v, xp, fp)`` on the channel's table. The interval of a value is
computed directly when the abscissa is consecutive integers (the usual 0..65535 table) or
evenly spaced by a power of two (the simulator's 0, 64, ..., 65535), found from a bucket table
of at most one node per bucket (checked, with a binary search for the rare misses) when it is
any other increasing sequence, and by a binary search otherwise. Every lookup loops over a
run of contiguous pixels with selects instead of branches, so the compiler vectorises it; no
floating-point operation is reordered or contracted: the results are numpy.interp's bit for
bit. The kernel picks the lookup by mode in its own read loop (a dispatch function between
them, even a numba-inlined one, measured 1 to 4 % slower).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "INL_BUCKET",
    "INL_DIRECT",
    "INL_NONE",
    "INL_SEARCH",
    "INL_STEP",
    "inl_plan",
    "inl_tables",
]

# how the INL interval of a value is found
INL_NONE = 0
INL_DIRECT = 1  # abscissa x0, x0 + 1, ...: the interval is floor(v) - x0
INL_BUCKET = 2  # increasing abscissa: bucket table + one step, checked
INL_SEARCH = 3  # anything else: binary search (numpy.interp's answer for sorted abscissae)
INL_STEP = 4  # x0, x0 + s, x0 + 2 s, ... (s a power of two, last gap <= s): floor(v / s) - x0 / s

#: Largest INL bucket table (int32 entries) built for an uneven abscissa.
_MAX_BUCKETS = 1 << 18


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


@njit(cache=True, nogil=True, inline="always")
def _table_ends(xp, fp):  # pragma: no cover - compiled
    """First and last abscissa and value of a lookup table (once per row, outside the loop)."""
    n = xp.shape[0]
    return xp[0], xp[n - 1], fp[0], fp[n - 1]


@njit(cache=True, nogil=True, inline="always")
def _at_nodes_and_ends(v, res, xj, fj, x_lo, x_hi, f_lo, f_hi):  # pragma: no cover - compiled
    """numpy.interp's exact answers: the node value on a node, the end values at and beyond
    the ends (selects: scalars only, so inlining costs nothing)."""
    if v == xj:
        res = fj
    if v >= x_hi:
        res = f_hi
    if v <= x_lo:
        res = f_lo
    return res


@njit(cache=True, nogil=True)
def _inl_direct(vals, flag, w, xp, fp):  # pragma: no cover - compiled
    """``vals += INL(vals)`` for the abscissa ``xp = x0, x0 + 1, ...``: the interval is
    ``floor(v) - x0``. Ends, nodes and NaN are selects, as in numpy.interp; where the table
    is not finite the answer is not certain, ``flag`` is set there; returns how many."""
    x_lo, x_hi, f_lo, f_hi = _table_ends(xp, fp)
    special = 0
    for x in range(w):
        v = vals[x]
        xj = np.floor(v if (v > x_lo and v < x_hi) else x_lo)  # == xp[j]
        j = int(xj - x_lo)
        fj = fp[j]
        # slope / 1.0 is the slope: numpy.interp's arithmetic exactly
        res = (fp[j + 1] - fj) * (v - xj) + fj
        res = _at_nodes_and_ends(v, res, xj, fj, x_lo, x_hi, f_lo, f_hi)
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
    x_lo, x_hi, f_lo, f_hi = _table_ends(xp, fp)
    special = 0
    for x in range(w):
        v = vals[x]
        u = v if (v > x_lo and v < x_hi) else x_lo
        j = min(int(np.floor(u * inv_step) - x0s), n - 2)
        xj = xp[j]
        fj = fp[j]
        res = slope[j] * (v - xj) + fj
        res = _at_nodes_and_ends(v, res, xj, fj, x_lo, x_hi, f_lo, f_hi)
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
    x_lo, x_hi, f_lo, f_hi = _table_ends(xp, fp)
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
        res = _at_nodes_and_ends(v, res, xj, fj, x_lo, x_hi, f_lo, f_hi)
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


def inl_plan(inl_x: np.ndarray) -> tuple[int, np.ndarray, float, float]:
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
        return INL_SEARCH, none, 0.0, 0.0
    x0 = inl_x[0]
    if x0 == np.floor(x0) and abs(x0) < 2**52 and (inl_x == x0 + np.arange(n)).all():
        return INL_DIRECT, none, 0.0, 0.0
    step = gaps[0]
    if (
        np.frexp(step)[0] == 0.5  # a power of two
        and abs(x0) < 2**52
        and x0 / step == np.floor(x0 / step)
        and (inl_x[:-1] == x0 + step * np.arange(n - 1)).all()
        and gaps[-1] <= step
    ):
        return INL_STEP, none, float(1 / step), float(x0 / step)
    span = inl_x[-1] - x0
    nbucket = int(np.floor(span / gaps.min())) + 2
    if nbucket > max(4 * n, _MAX_BUCKETS):  # very uneven nodes: search
        return INL_SEARCH, none, 0.0, 0.0
    inv_width = nbucket / span
    edges = x0 + np.arange(nbucket) / inv_width
    bucket = np.clip(np.searchsorted(inl_x, edges, side="right") - 1, 0, n - 2)
    return INL_BUCKET, bucket.astype(np.int32), float(inv_width), 0.0


def inl_tables(
    inl_values: np.ndarray, inl_corrections: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, float, float, np.ndarray]:
    """The kernel's INL inputs: (abscissa float64, table float64 (channel, n), mode, bucket
    table, buckets (or steps) per DN, x0 in steps, node slopes (channel, n - 1))."""
    inl_x = np.ascontiguousarray(inl_values, dtype=np.float32).astype(np.float64)
    inl_y = np.ascontiguousarray(inl_corrections, dtype=np.float64)
    if inl_x.size == 1:  # one node: numpy.interp is that constant everywhere
        inl_x = np.repeat(inl_x, 2)
        inl_y = np.repeat(inl_y, 2, axis=-1)
    mode, bucket, inv_width, x0s = inl_plan(inl_x)
    slopes = inl_y[:, :1]
    if mode in (INL_BUCKET, INL_STEP):  # the division numpy.interp does, once per node
        slopes = np.diff(inl_y, axis=-1) / np.diff(inl_x)
    return inl_x, inl_y, mode, bucket, inv_width, x0s, slopes
