"""The reference-pixel correction in stages, so that a frame can be corrected band by band.

:mod:`romanxr.kernels.refpix` corrects one whole resultant at a time. The stages here split
the same arithmetic so that no stage needs the whole frame of every resultant at once:

1. **reference stage**: from the reference pixels only (the first and last
   :data:`~romanxr.kernels.refpix.REF_COLUMNS` columns, the trend rows and amp33) each
   resultant's three reference spectra, the trend fit of every channel and the corrected
   amp33 (:func:`reference_inputs`, :func:`reference_resultant`, :func:`stack_references`);
2. **corrections**: per block of channels, the inverse transforms giving each channel's
   correction on any set of rows (:func:`group_corrections`, :func:`corrections_by_resultant`);
3. **bands**: a band of rows corrected with its part of the corrections and the trend fits
   (:func:`correct_band`).

Every element goes through the same float32/float64 operations as in the whole-frame form, so
the result does not depend on how the frame is cut into bands. All functions take plain
ndarrays (coefficients may also be lazily indexed arrays that read their rows on slicing);
:func:`correct_frame` runs the stages on a whole in-memory frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from romanxr.kernels.refpix import (
    CHANNEL_WIDTH,
    REF_COLUMNS,
    ROW_LENGTH,
    channel_corrections,
    channel_fits,
    offset_from_sum,
    read_order,
    reference_spectra,
    spectrum_length,
    subtract_trend,
    trend_rows,
    trend_times,
)

__all__ = [
    "CHANNEL_BLOCK",
    "CORRECTION_BYTES",
    "channel_blocks",
    "coefficient_rows",
    "correct_band",
    "correct_frame",
    "corrections_by_resultant",
    "corrections_from_inputs",
    "edge_columns",
    "group_corrections",
    "prepare",
    "reference_inputs",
    "reference_resultant",
    "reference_stage",
    "row_groups",
    "stack_references",
]

#: Memory that the corrections of one group of rows may take (bytes). A correction needs a
#: whole-frame inverse FFT per channel and resultant, so a frame cut into G groups costs G
#: transforms per channel and resultant, and holds 1/G of the float32 ramp in corrections.
#: (With the scratch file the transforms run once whatever G; 32 MiB is one
#: :data:`~romanxr.schedule.REGION_ROWS` region of a full frame, 8 resultants.)
CORRECTION_BYTES = 32 * 2**20
#: Detector channels whose corrections one task computes.
CHANNEL_BLOCK = 4


def channel_blocks(n_channels: int) -> list[tuple[int, int]]:
    """``(c0, c1)`` of each block of :data:`CHANNEL_BLOCK` detector channels."""
    return [(c, min(c + CHANNEL_BLOCK, n_channels)) for c in range(0, n_channels, CHANNEL_BLOCK)]


def row_groups(edges: np.ndarray, nres: int, nx: int) -> list[list[int]]:
    """Bands (by index; band ``k`` is rows ``edges[k]:edges[k+1]``) grouped so that one
    group's corrections fit :data:`CORRECTION_BYTES`."""
    n_bands = len(edges) - 1
    ny = int(edges[-1])
    total = nres * ny * nx * 4
    n_groups = max(1, min(n_bands, -(-total // CORRECTION_BYTES)))
    return [list(map(int, g)) for g in np.array_split(np.arange(n_bands), n_groups)]


def coefficient_rows(var: Any, c0: int, c1: int) -> np.ndarray:
    """Channels ``c0:c1`` of a coefficient array (only those rows are read from a file).

    complex64: see :func:`~romanxr.kernels.refpix.correct_resultant` (half the time and memory
    of complex128, far below the float32 rounding of the data).
    """
    rows = var[c0:c1]
    values = getattr(rows, "values", rows)  # a lazily indexed array reads its rows here
    return np.asarray(values).astype(np.complex64)


def prepare(block: np.ndarray, bad: np.ndarray | None, n_res: int, remove_offset: bool):
    """Bad reference pixels zeroed and the per-pixel offset removed: ``(block - off, off)``.

    The offset is the float32 mean over resultants (:func:`offset_from_sum`) of the raw values,
    zero on bad reference pixels (which are zero in every resultant).
    """
    frame = np.array(block, dtype=np.float32, copy=True)
    if bad is not None and bad.any():
        frame[:, bad] = 0
    if remove_offset:
        total = np.asarray(block, dtype=np.float32).sum(axis=0)
        if bad is not None:
            total[bad] = 0
        off = offset_from_sum(total, n_res)
    else:
        off = np.zeros(frame.shape[1:], dtype=np.float32)
    frame -= off
    return frame, off


def edge_columns(block: np.ndarray) -> np.ndarray:
    """The first and the last :data:`REF_COLUMNS` columns of ``block``, side by side."""
    return np.concatenate([block[..., :REF_COLUMNS], block[..., -REF_COLUMNS:]], axis=-1)


def reference_inputs(
    edges: np.ndarray,
    ref_rows: np.ndarray,
    bad_edges: np.ndarray,
    bad_rows: np.ndarray,
    amp33: np.ndarray,
    flags: dict[str, bool],
) -> tuple[np.ndarray, ...]:
    """The reference pixels with bad ones zeroed and the offset removed (all resultants).

    Inputs are the raw detector columns 0-3 and the last 4 side by side (``edges``, see
    :func:`edge_columns`), the trend rows (:func:`~romanxr.kernels.refpix.trend_rows`) of
    every column, the same cuts of the bad-pixel mask, and amp33. Returns
    ``(left, right, ref_rows, amp33, amp33_offset)``.
    """
    nres = amp33.shape[0]
    offset = flags["remove_offset"]
    left, _ = prepare(edges[..., :REF_COLUMNS], bad_edges[..., :REF_COLUMNS], nres, offset)
    right, _ = prepare(edges[..., REF_COLUMNS:], bad_edges[..., REF_COLUMNS:], nres, offset)
    ref_rows, _ = prepare(ref_rows, bad_rows, nres, offset)
    amp33, amp_off = prepare(amp33, None, nres, offset)
    return left, right, ref_rows, amp33, amp_off


def reference_resultant(
    inputs: tuple[np.ndarray, ...], r: int, flags: dict[str, bool], workers: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resultant ``r``'s three spectra ``(3, M)`` complex64, trend fits of every detector
    channel ``(n, 2)`` and corrected amp33 (offset restored, before ``abs``)."""
    left, right, ref_rows, amp33, amp_off = inputs
    ny = amp33.shape[1]
    n_det = ref_rows.shape[-1] // CHANNEL_WIDTH
    fit = channel_fits(
        np.concatenate([ref_rows[r], amp33[r][trend_rows(ny)]], axis=1),
        ny,
        flags["remove_trends"],
    )
    spec, amp = reference_spectra(
        left[r],
        right[r][:, ::-1],
        amp33[r],
        (fit[0], fit[n_det - 1], fit[n_det]),
        cosine_interpolate_=flags["cosine_interpolate"],
        fft_interpolate_=flags["fft_interpolate"],
        workers=workers,
    )
    spectra = np.empty((3, spectrum_length(ny)), dtype=np.complex64)
    for i, f in enumerate(spec):
        spectra[i] = f
    return spectra, np.asarray(fit[:n_det], dtype=np.float64), amp + amp_off


def stack_references(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spectra ``(nres, 3, M)``, fits ``(nres, n, 2)`` and amp33 ``(nres, ny, 128)``."""
    return tuple(np.stack([part[i] for part in parts]) for i in range(3))  # type: ignore[return-value]


def reference_stage(
    inputs: tuple[np.ndarray, ...], flags: dict[str, bool], workers: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Everything the correction needs from the reference pixels (:func:`reference_inputs`),
    for all resultants: see :func:`reference_resultant` and :func:`stack_references` (a dask
    graph runs the resultants as tasks of their own)."""
    return stack_references(
        [reference_resultant(inputs, r, flags, workers) for r in range(inputs[3].shape[0])]
    )


def group_corrections(
    spectra: np.ndarray,
    coeffs: tuple[Any, ...],
    c0: int,
    c1: int,
    rows: slice,
    workers: int | None = None,
) -> np.ndarray:
    """Corrections of channels ``c0:c1`` on ``rows``, all resultants, in detector order.

    ``coeffs`` are the reference's gamma/zeta/alpha (only channels ``c0:c1`` are read) or
    those channels' rows already read.
    """
    if not isinstance(coeffs[0], np.ndarray):
        coeffs = tuple(coefficient_rows(v, c0, c1) for v in coeffs)
    gamma, zeta, alpha = coeffs
    nres, _, m = spectra.shape
    ny = (m - 1) * 2 // ROW_LENGTH
    n_sel = len(range(ny)[rows])
    out = np.empty((nres, n_sel, (c1 - c0) * CHANNEL_WIDTH), dtype=np.float32)
    for r in range(nres):
        # each channel's read-order correction goes straight to its detector columns
        views = [
            out[r, :, i * CHANNEL_WIDTH : (i + 1) * CHANNEL_WIDTH][:, ::-1]
            if c % 2
            else out[r, :, i * CHANNEL_WIDTH : (i + 1) * CHANNEL_WIDTH]
            for i, c in enumerate(range(c0, c1))
        ]
        channel_corrections(tuple(spectra[r]), gamma, zeta, alpha, ny, rows, workers, views)
    return out


def corrections_by_resultant(
    spectra: np.ndarray, coeffs: tuple[Any, ...], c0: int, c1: int
) -> Iterator[np.ndarray]:
    """The corrections of channels ``c0:c1`` on every row, one ``(y, columns)`` resultant
    after the other (the coefficients' rows are read once, not per resultant)."""
    loaded = tuple(coefficient_rows(v, c0, c1) for v in coeffs)
    for r in range(spectra.shape[0]):
        yield group_corrections(spectra[r : r + 1], loaded, c0, c1, slice(None))[0]


def corrections_from_inputs(
    inputs: tuple[np.ndarray, ...],
    flags: dict[str, bool],
    coeffs: tuple[Any, ...],
    c0: int,
    c1: int,
    rows: slice,
) -> np.ndarray:
    """:func:`group_corrections` of ``rows`` from the reference inputs (spectra made anew)."""
    nres = inputs[3].shape[0]
    spectra = np.stack([reference_resultant(inputs, r, flags)[0] for r in range(nres)])
    return group_corrections(spectra, coeffs, c0, c1, rows)


def correct_band(
    block: np.ndarray,
    bad: np.ndarray,
    fits: np.ndarray,
    pieces: list[np.ndarray],
    y0: int,
    ny: int,
    rows: slice,
    flags: dict[str, bool],
) -> np.ndarray:
    """Correct a band of rows ``y0 ...`` (all resultants, all columns) of an ``ny``-row frame.

    ``pieces`` are the channel blocks' corrections (:func:`group_corrections`) of the row
    group the band lies in, ``rows`` the band's rows within them. The per-element arithmetic is
    the whole-frame kernel's, so results do not depend on the banding.
    """
    nres = block.shape[0]
    frame, off = prepare(block, bad, nres, flags["remove_offset"])
    band = frame.shape[1]
    t_rows, t_cols = trend_times(ny)
    t_band = t_rows[y0 : y0 + band]
    n_det = fits.shape[1]
    for r in range(nres):
        for c in range(n_det):
            subtract_trend(read_order(frame[r], c), t_band, t_cols, tuple(fits[r, c]))
    col = 0
    for piece in pieces:
        width = piece.shape[-1]
        frame[:, :, col : col + width] -= piece[:, rows]
        col += width
    frame += off
    return frame


def correct_frame(
    d: np.ndarray,
    amp33: np.ndarray,
    bad: np.ndarray,
    coeffs: tuple[Any, ...],
    flags: dict[str, bool],
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """All stages on a whole in-memory ``(resultant, y, x)`` frame: ``(corrected, amp33)``
    (amp33 corrected, offset restored, before ``abs``)."""
    _, ny, nx = d.shape
    rows = trend_rows(ny)
    inputs = reference_inputs(
        edge_columns(d), d[:, rows, :], edge_columns(bad), bad[rows, :], amp33, flags
    )
    spectra, fits, amp33 = reference_stage(inputs, flags, workers)
    pieces = [
        group_corrections(spectra, coeffs, c0, c1, slice(None), workers)
        for c0, c1 in channel_blocks(nx // CHANNEL_WIDTH)
    ]
    corrected = correct_band(d, bad, fits, pieces, 0, ny, slice(None), flags)
    return corrected, amp33
