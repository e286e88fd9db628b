"""Saturation flagging on plain arrays.

``flag_saturation(data, groupdq, threshold, threshold_dq, ...)`` works on one block of pixels,
``(resultant, y, x)``. With ``n_grow > 0`` the result of a pixel depends on pixels up to
``2 * n_grow`` away (the forward SATURATED planes are grown by ``n_grow``, and the dilution
flags computed from them are grown by ``n_grow`` again), so callers that cut a frame into
blocks must give each block a halo of :func:`halo` pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit

from romanxr.dq import GroupFlag, PixelFlag

__all__ = ["ATOD_LIMIT", "flag_saturation", "halo", "read_pattern_arrays", "saturation_flags"]

#: Hard DN limit of the 16-bit A/D converter.
ATOD_LIMIT = 65535.0
_ATOD_PLUS_ONE = ATOD_LIMIT + 1

_SAT = int(GroupFlag.SATURATED)
_DNU = int(GroupFlag.DO_NOT_USE)
_LOW = int(GroupFlag.AD_FLOOR | GroupFlag.DO_NOT_USE)
_NO_SAT_CHECK_INT = int(PixelFlag.NO_SAT_CHECK)


def halo(n_grow: int) -> int:
    """Pixels of neighbourhood a block needs for exact results with ``n_grow``."""
    return 2 * int(n_grow)


def read_pattern_arrays(read_pattern: Sequence[Sequence[int]]) -> tuple[np.ndarray, ...]:
    """(mean read number, last read number, reads per resultant) as float64/float64/int64."""
    mean = np.array([np.mean(g) for g in read_pattern], dtype=np.float64)
    last = np.array([g[-1] for g in read_pattern], dtype=np.float64)
    n = np.array([len(g) for g in read_pattern], dtype=np.int64)
    return mean, last, n


@njit(cache=True, nogil=True)
def _dilate(mask, n):  # pragma: no cover - compiled
    """Binary dilation with a (2n+1)x(2n+1) square box; outside the block counts as False."""
    ny, nx = mask.shape
    rows = np.zeros((ny, nx), dtype=np.bool_)
    for y in range(ny):
        for x in range(nx):
            if mask[y, x]:
                lo = max(0, x - n)
                hi = min(nx, x + n + 1)
                for k in range(lo, hi):
                    rows[y, k] = True
    out = np.zeros((ny, nx), dtype=np.bool_)
    for y in range(ny):
        lo = max(0, y - n)
        hi = min(ny, y + n + 1)
        for x in range(nx):
            if rows[y, x]:
                for k in range(lo, hi):
                    out[k, x] = True
    return out


@njit(cache=True, nogil=True, inline="always")
def _second_resultant_row(data, gdq, thresh, y, mean_read, last_read, n_reads):  # pragma: no cover
    """Rule 3 on row ``y`` (``thresh``: that row's thresholds): a saturating event in the
    last read(s) of resultant 1 makes it DO_NOT_USE."""
    sat = np.uint8(_SAT)
    for x in range(data.shape[2]):
        s = thresh[x]
        d0 = data[0, y, x]
        d1 = data[1, y, x]
        expected = np.float64(d0) / mean_read[0] * last_read[2]
        # float32 arithmetic, as the reference implementation does
        step = np.float32(d1 - d0)
        room = np.float32(np.float32(s - d0) / np.float32(n_reads[1]))
        if (
            expected < np.float64(s)
            and step > room
            and (gdq[2, y, x] & sat) != 0
            and (gdq[1, y, x] & sat) == 0
        ):
            gdq[1, y, x] |= np.uint8(_DNU)


@njit(cache=True, nogil=True, inline="always")
def _backup_row(gdq, y, n_reads, backup):  # pragma: no cover - compiled
    """Rule 4 on row ``y``, romancal's "backup": SATURATED copied one multi-read resultant
    earlier, ``backup`` times."""
    sat = np.uint8(_SAT)
    for _ in range(backup):
        for g in range(gdq.shape[0] - 1):
            if n_reads[g] > 1:
                for x in range(gdq.shape[2]):
                    gdq[g, y, x] |= gdq[g + 1, y, x] & sat


@njit(cache=True, nogil=True, inline="always")
def _block_start(gdq_in, raw_thresh, thresh_dq):  # pragma: no cover - compiled
    """C-ordered copy of the group DQ, per-pixel threshold (A/D limit + 1 where not checked)
    and the not-checked mask: inputs may arrive in any memory layout."""
    nres, ny, nx = gdq_in.shape
    gdq = np.empty((nres, ny, nx), dtype=np.uint8)
    for g in range(nres):
        for y in range(ny):
            for x in range(nx):
                gdq[g, y, x] = gdq_in[g, y, x]
    thresh = np.empty((ny, nx), dtype=np.float32)
    no_check = np.empty((ny, nx), dtype=np.bool_)
    for y in range(ny):
        for x in range(nx):
            t = raw_thresh[y, x]
            skip = np.isnan(t) or (thresh_dq[y, x] & _NO_SAT_CHECK_INT) != 0
            no_check[y, x] = skip
            thresh[y, x] = np.float32(_ATOD_PLUS_ONE) if skip else t
    return gdq, thresh, no_check


@njit(cache=True, nogil=True, inline="always")
def _forward(data, gdq, thresh, n_grow):  # pragma: no cover - compiled
    """Rule 1: cumulative threshold crossing (grown by ``n_grow``), A/D floor."""
    nres, ny, nx = data.shape
    sat = np.uint8(_SAT)
    low = np.uint8(_LOW)
    crossed = np.zeros((ny, nx), dtype=np.bool_)
    for g in range(nres):
        for y in range(ny):
            for x in range(nx):
                d = data[g, y, x]
                if d >= thresh[y, x]:
                    crossed[y, x] = True
                if crossed[y, x]:
                    gdq[g, y, x] |= sat
                if d <= 0:
                    gdq[g, y, x] |= low
        if n_grow > 0:
            grown = _dilate((gdq[g] & sat) != 0, n_grow)
            for y in range(ny):
                for x in range(nx):
                    if grown[y, x]:
                        gdq[g, y, x] |= sat


@njit(cache=True, nogil=True, inline="always")
def _backward(data, gdq, thresh, no_check, mean_read, last_read, n_grow):  # pragma: no cover
    """Rule 2: multi-read resultants averaged below the threshold before a SATURATED one
    become DO_NOT_USE (grown by ``n_grow``)."""
    nres, ny, nx = data.shape
    sat = np.uint8(_SAT)
    dnu = np.uint8(_DNU)
    for g in range(nres - 2, -1, -1):
        dilution = mean_read[g] / last_read[g]
        if dilution == 1.0:
            continue
        partial = np.zeros((ny, nx), dtype=np.bool_)
        for y in range(ny):
            for x in range(nx):
                factor = 1.0 if no_check[y, x] else dilution
                if (
                    data[g, y, x] >= np.float64(thresh[y, x]) * factor
                    and (gdq[g, y, x] & (sat | dnu)) == 0
                    and (gdq[g + 1, y, x] & sat) != 0
                ):
                    partial[y, x] = True
        if n_grow > 0:
            partial = _dilate(partial, n_grow)
        for y in range(ny):
            for x in range(nx):
                if partial[y, x]:
                    gdq[g, y, x] |= dnu


@njit(cache=True, nogil=True)
def _flag(
    data, gdq_in, raw_thresh, thresh_dq, mean_read, last_read, n_reads, n_grow, backup
):  # pragma: no cover
    """The four rules on a block, with growth (rules 1 and 2 need whole planes)."""
    nres, ny = data.shape[:2]
    gdq, thresh, no_check = _block_start(gdq_in, raw_thresh, thresh_dq)
    _forward(data, gdq, thresh, n_grow)
    _backward(data, gdq, thresh, no_check, mean_read, last_read, n_grow)
    # rules 3 and 4 are per pixel
    for y in range(ny):
        if nres > 2:
            _second_resultant_row(data, gdq, thresh[y], y, mean_read, last_read, n_reads)
        _backup_row(gdq, y, n_reads, backup)
    return gdq


@njit(cache=True, nogil=True, inline="always")
def _row_start(
    pdq_in, raw_thresh, thresh_dq, y, pdq, thresh, no_check, crossed
):  # pragma: no cover
    """Thresholds, not-checked mask and pixel DQ (``| threshold dq``, NO_SAT_CHECK where the
    threshold is NaN) of row ``y``; clears ``crossed``."""
    nsc = np.uint32(_NO_SAT_CHECK_INT)
    atod = np.float32(_ATOD_PLUS_ONE)
    for x in range(thresh.shape[0]):
        t = raw_thresh[y, x]
        q = thresh_dq[y, x]
        nan = np.isnan(t)
        skip = nan or (q & nsc) != 0
        no_check[x] = skip
        thresh[x] = atod if skip else t
        pdq[y, x] = pdq_in[y, x] | q | (nsc if nan else np.uint32(0))
        crossed[x] = False


@njit(cache=True, nogil=True, inline="always")
def _row_forward(data, gdq_in, gdq, y, thresh, crossed):  # pragma: no cover - compiled
    """Rule 1 on row ``y``: cumulative threshold crossing, A/D floor (no branches)."""
    sat = np.uint8(_SAT)
    low = np.uint8(_LOW)
    zero = np.uint8(0)
    for g in range(data.shape[0]):
        for x in range(data.shape[2]):
            d = data[g, y, x]
            c = crossed[x] or d >= thresh[x]
            crossed[x] = c
            gdq[g, y, x] = gdq_in[g, y, x] | (sat if c else zero) | (low if d <= 0 else zero)


@njit(cache=True, nogil=True, inline="always")
def _row_backward(data, gdq, y, thresh, no_check, mean_read, last_read):  # pragma: no cover
    """Rule 2 on row ``y``: multi-read resultants averaged below the threshold."""
    sat = np.uint8(_SAT)
    dnu = np.uint8(_DNU)
    for g in range(data.shape[0] - 2, -1, -1):
        dilution = mean_read[g] / last_read[g]
        if dilution == 1.0:
            continue
        for x in range(data.shape[2]):
            factor = 1.0 if no_check[x] else dilution
            cur = gdq[g, y, x]
            if (
                data[g, y, x] >= np.float64(thresh[x]) * factor
                and (cur & (sat | dnu)) == 0
                and (gdq[g + 1, y, x] & sat) != 0
            ):
                gdq[g, y, x] = cur | dnu


@njit(cache=True, nogil=True)
def _flag_rows(
    data, gdq_in, pdq_in, raw_thresh, thresh_dq, mean_read, last_read, n_reads, backup
):  # pragma: no cover - compiled
    """:func:`_flag` without growth, one row at a time (every rule is per pixel), with the
    pixel DQ (``| threshold dq``, NO_SAT_CHECK where the threshold is NaN) in the same pass.
    The rows of a block stay in cache and the pixel loops have no branches."""
    nres, ny, nx = data.shape
    gdq = np.empty((nres, ny, nx), dtype=np.uint8)
    pdq = np.empty((ny, nx), dtype=np.uint32)
    thresh = np.empty(nx, dtype=np.float32)
    no_check = np.empty(nx, dtype=np.bool_)
    crossed = np.empty(nx, dtype=np.bool_)
    for y in range(ny):
        _row_start(pdq_in, raw_thresh, thresh_dq, y, pdq, thresh, no_check, crossed)
        _row_forward(data, gdq_in, gdq, y, thresh, crossed)
        _row_backward(data, gdq, y, thresh, no_check, mean_read, last_read)
        if nres > 2:
            _second_resultant_row(data, gdq, thresh, y, mean_read, last_read, n_reads)
        _backup_row(gdq, y, n_reads, backup)
    return gdq, pdq


def saturation_flags(
    data: np.ndarray,
    groupdq: np.ndarray,
    pixeldq: np.ndarray,
    threshold: np.ndarray,
    threshold_dq: np.ndarray,
    *,
    mean_read: np.ndarray,
    last_read: np.ndarray,
    n_reads: np.ndarray,
    backup: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`flag_saturation` without growth, also returning the new pixel DQ.

    Returns
    -------
    groupdq : ndarray, uint8, (resultant, y, x)
        As :func:`flag_saturation` with ``n_grow=0``.
    pixeldq : ndarray, uint32, (y, x)
        ``pixeldq | threshold_dq``, plus NO_SAT_CHECK where the threshold is NaN.
    """
    data = np.asarray(data, dtype=np.float32)
    shape = data.shape[1:]
    return _flag_rows(
        data,
        np.asarray(groupdq, dtype=np.uint8),
        np.broadcast_to(np.asarray(pixeldq, dtype=np.uint32), shape),
        np.broadcast_to(np.asarray(threshold, dtype=np.float32), shape),
        np.broadcast_to(np.asarray(threshold_dq, dtype=np.uint32), shape),
        np.asarray(mean_read, dtype=np.float64),
        np.asarray(last_read, dtype=np.float64),
        np.asarray(n_reads, dtype=np.int64),
        int(backup),
    )


def flag_saturation(
    data: np.ndarray,
    groupdq: np.ndarray,
    threshold: np.ndarray,
    threshold_dq: np.ndarray,
    *,
    mean_read: np.ndarray,
    last_read: np.ndarray,
    n_reads: np.ndarray,
    n_grow: int = 0,
    backup: int = 0,
) -> np.ndarray:
    """Return the group DQ of one block with saturation flags added.

    Parameters
    ----------
    data : ndarray, float32, (resultant, y, x)
        Resultants (DN).
    groupdq : ndarray, uint8, (resultant, y, x)
        Group DQ on input (not modified).
    threshold : ndarray, float32, (y, x)
        Saturation threshold (DN); NaN means "do not check".
    threshold_dq : ndarray, uint32, (y, x)
        DQ of the saturation reference; NO_SAT_CHECK pixels are never flagged SATURATED.
    mean_read, last_read, n_reads : ndarray, (resultant,)
        Mean and last 1-based read number and read count of each resultant.
    n_grow : int
        Half-width of the square box SATURATED (and dilution DO_NOT_USE) flags grow by.
    backup : int
        Times SATURATED is copied to the previous resultant when that has several reads.

    Returns
    -------
    ndarray, uint8, (resultant, y, x)
        SATURATED from the crossing resultant on; AD_FLOOR | DO_NOT_USE where data <= 0;
        DO_NOT_USE on partially saturated multi-read resultants and by the second-resultant
        rule.
    """
    if int(n_grow) == 0:
        pdq = np.zeros(np.shape(data)[1:], dtype=np.uint32)
        return saturation_flags(
            data,
            groupdq,
            pdq,
            threshold,
            threshold_dq,
            mean_read=mean_read,
            last_read=last_read,
            n_reads=n_reads,
            backup=backup,
        )[0]
    data = np.asarray(data, dtype=np.float32)
    gdq = np.asarray(groupdq, dtype=np.uint8)
    shape = data.shape[1:]
    thresh = np.broadcast_to(np.asarray(threshold, dtype=np.float32), shape)
    tdq = np.broadcast_to(np.asarray(threshold_dq, dtype=np.uint32), shape)
    return _flag(
        data,
        gdq,
        thresh,
        tdq,
        np.asarray(mean_read, dtype=np.float64),
        np.asarray(last_read, dtype=np.float64),
        np.asarray(n_reads, dtype=np.int64),
        int(n_grow),
        int(backup),
    )
