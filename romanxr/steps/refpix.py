"""refpix step: reference-pixel correction from the border columns and amp33 (algorithms.md 4.3)."""

from __future__ import annotations

import contextlib
import itertools
import operator
import os
from typing import Any

import numpy as np
import xarray as xr

from romanxr.dataset import validate_exposure
from romanxr.dq import PixelFlag
from romanxr.errors import ExposureError, ReferenceMismatchError
from romanxr.kernels.refpix import (
    CHANNEL_WIDTH,
    REF_COLUMNS,
    ROW_LENGTH,
    _read_order,
    channel_corrections,
    channel_fits,
    offset_from_sum,
    reference_spectra,
    spectrum_length,
    subtract_trend,
    trend_rows,
    trend_times,
)
from romanxr.refs import ReferenceResolver
from romanxr.steps._common import finish_step, get_reference

__all__ = ["refpix"]

STEP = "refpix"
#: Memory that the corrections of one group of rows may take (bytes). A correction needs a
#: whole-frame inverse FFT per channel and resultant, so a frame cut into G groups costs G
#: transforms per channel and resultant, and holds 1/G of the float32 ramp in corrections.
CORRECTION_BYTES = 64 * 2**20
#: Detector channels whose corrections one task computes.
CHANNEL_BLOCK = 4


def _workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _check_geometry(ds: xr.Dataset) -> tuple[int, int, int]:
    if "amp33" not in ds:
        raise ExposureError(
            "refpix needs the 'amp33' variable (resultant, y, amp33_x) of the Level-1 file; "
            "open the exposure with romanxr.open_uncal() or skip the step"
        )
    nres, ny, nx = (ds.sizes[d] for d in ("resultant", "y", "x"))
    x = np.asarray(ds["x"].values)
    if ds.sizes.get("amp33_x") != CHANNEL_WIDTH or ds["amp33"].dims != (
        "resultant",
        "y",
        "amp33_x",
    ):
        raise ExposureError(
            f"refpix needs amp33 with dims (resultant, y, amp33_x) and 128 columns, got "
            f"{ds['amp33'].dims} {ds['amp33'].shape}"
        )
    whole_rows = (
        nx % CHANNEL_WIDTH == 0
        and (nx // CHANNEL_WIDTH) % 2 == 0
        and x.size
        and x[0] == 0
        and np.array_equal(x, np.arange(nx))
    )
    if not whole_rows:
        raise ExposureError(
            f"refpix needs whole detector rows: x must run 0..{nx - 1 if nx else 0} contiguously "
            f"over an even number of 128-column channels (got x {x.min() if x.size else '-'}.."
            f"{x.max() if x.size else '-'}, {nx} columns), because the correction is driven by "
            "the left (x 0-3) and right (last 4 columns) reference pixels of every row. Cut "
            "columns after refpix, or skip the step (steps=... without 'refpix' / "
            "--steps.refpix.skip=true)"
        )
    return nres, ny, nx


def _coefficient_vars(ref: xr.Dataset, name: str, n_channels: int, ny: int) -> tuple[Any, ...]:
    """gamma, zeta, alpha as (lazy) Variables, after checking their shapes."""
    m = spectrum_length(ny)
    out = []
    for key in ("gamma", "zeta", "alpha"):
        if key not in ref:
            raise ReferenceMismatchError(f"{name}: refpix reference has no '{key}' array")
        shape = tuple(ref[key].shape)
        if shape != (n_channels, m):
            raise ReferenceMismatchError(
                f"{name}: refpix {key} has shape {shape}, but an exposure with {ny} rows and "
                f"{n_channels} channels needs ({n_channels}, {m}) (M = rows * 140 / 2 + 1); "
                "use a refpix reference made for this frame size (override_refpix=...)"
            )
        out.append(ref[key].variable)
    return tuple(out)


def _coefficient_rows(var: Any, c0: int, c1: int) -> np.ndarray:
    """Channels ``c0:c1`` of a coefficient array (only those rows are read from the file).

    complex64: see :func:`~romanxr.kernels.refpix.correct_resultant` (half the time and memory
    of complex128, far below the float32 rounding of the data).
    """
    rows = var[c0:c1]
    values = rows.values if isinstance(rows, xr.Variable) else np.asarray(rows)
    return np.asarray(values).astype(np.complex64)


def _prepare(block: np.ndarray, bad: np.ndarray | None, n_res: int, remove_offset: bool):
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


def _reference_inputs(
    edges: np.ndarray,
    ref_rows: np.ndarray,
    amp33: np.ndarray,
    bad_edges: np.ndarray,
    bad_rows: np.ndarray,
    flags: dict[str, bool],
) -> tuple[np.ndarray, ...]:
    """The reference pixels with bad ones zeroed and the offset removed (all resultants).

    Inputs are the raw detector columns 0-3 and the last 4 side by side (``edges``, see
    :func:`_edge_columns`), the trend rows (:func:`~romanxr.kernels.refpix.trend_rows`) of
    every column, and amp33. Returns ``(left, right, ref_rows, amp33, amp33_offset)``.
    """
    nres = amp33.shape[0]
    offset = flags["remove_offset"]
    left, _ = _prepare(edges[..., :REF_COLUMNS], bad_edges[..., :REF_COLUMNS], nres, offset)
    right, _ = _prepare(edges[..., REF_COLUMNS:], bad_edges[..., REF_COLUMNS:], nres, offset)
    ref_rows, _ = _prepare(ref_rows, bad_rows, nres, offset)
    amp33, amp_off = _prepare(amp33, None, nres, offset)
    return left, right, ref_rows, amp33, amp_off


def _reference_resultant(
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


def _stack_references(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spectra ``(nres, 3, M)``, fits ``(nres, n, 2)`` and amp33 ``(nres, ny, 128)``."""
    return tuple(np.stack([part[i] for part in parts]) for i in range(3))  # type: ignore[return-value]


def _reference_stage(
    edges: np.ndarray,
    ref_rows: np.ndarray,
    amp33: np.ndarray,
    bad_edges: np.ndarray,
    bad_rows: np.ndarray,
    flags: dict[str, bool],
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Everything the correction needs from the reference pixels, for all resultants: see
    :func:`_reference_inputs`, :func:`_reference_resultant` and :func:`_stack_references`
    (the dask path runs the resultants as tasks of their own)."""
    inputs = _reference_inputs(edges, ref_rows, amp33, bad_edges, bad_rows, flags)
    return _stack_references(
        [_reference_resultant(inputs, r, flags, workers) for r in range(amp33.shape[0])]
    )


def _group_corrections(
    spectra: np.ndarray,
    coeffs: tuple[Any, ...],
    c0: int,
    c1: int,
    rows: slice,
    workers: int | None = None,
    *after: Any,
) -> np.ndarray:
    """Corrections of channels ``c0:c1`` on ``rows``, all resultants, in detector order.

    ``coeffs`` are the reference's gamma/zeta/alpha (only channels ``c0:c1`` are read) or
    those channels' rows already read. ``after`` only orders the task after others (their
    values are ignored).
    """
    if not isinstance(coeffs[0], np.ndarray):
        coeffs = tuple(_coefficient_rows(v, c0, c1) for v in coeffs)
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


def _spill_path(token: str, block: int) -> str:
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"romanxr-refpix-{token}-{block}.f32")


#: Scratch files older than this (s) are left over from interrupted runs and removed.
STALE_SPILL_AGE = 6 * 3600


def _remove_stale_spills(folder: str) -> None:
    import glob
    import time

    now = time.time()
    for name in glob.glob(os.path.join(folder, "romanxr-refpix-*.f32*")):
        with contextlib.suppress(OSError):
            if now - os.path.getmtime(name) > STALE_SPILL_AGE:
                os.unlink(name)


def _spill_corrections(
    spectra: np.ndarray, coeffs: tuple[Any, ...], c0: int, c1: int, path: str
) -> str | None:
    """Corrections of channels ``c0:c1`` on every row, to a scratch file; its path.

    One inverse transform per channel and resultant gives every row at once; the rows are
    kept on disk (raw float32, ``(resultant, y, columns)``), so that each group of rows reads
    its part back instead of transforming again (or holding the whole frame's corrections in
    memory). Returns None when the file cannot be written: the groups then compute their rows
    themselves.
    """
    nres, _, m = spectra.shape
    ny = (m - 1) * 2 // ROW_LENGTH
    width = (c1 - c0) * CHANNEL_WIDTH
    _remove_stale_spills(os.path.dirname(path))
    part = f"{path}.{os.getpid()}.part"
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError:
        return None
    loaded = tuple(_coefficient_rows(v, c0, c1) for v in coeffs)  # read once, not per resultant
    try:
        for r in range(nres):
            rows = _group_corrections(spectra[r : r + 1], loaded, c0, c1, slice(None))
            view = memoryview(np.ascontiguousarray(rows[0])).cast("B")
            offset = r * ny * width * 4
            while view:
                done = os.pwrite(fd, view, offset)
                view, offset = view[done:], offset + done
        os.close(fd)
        fd = -1
        with contextlib.suppress(OSError):  # a new file: no group has read it yet
            os.unlink(path + READS_SUFFIX)
        os.replace(part, path)
    except OSError:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(part)
        return None
    return path


#: Next to a scratch file, one byte per group that has read it.
READS_SUFFIX = ".reads"


def _count_read(spilled: str) -> int:
    """Record one more read of ``spilled``; the number of reads so far.

    An ``O_APPEND`` write of one byte is atomic, so groups that run at the same time, in
    threads or in worker processes on this machine, each count once.
    """
    fd = os.open(spilled + READS_SUFFIX, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, b"r")
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def _spilled_corrections(
    spilled: str | None,
    inputs: tuple[np.ndarray, ...],
    flags: dict[str, bool],
    coeffs: tuple[Any, ...],
    c0: int,
    c1: int,
    rows: slice,
    n_groups: int,
    *after: Any,
) -> np.ndarray:
    """Rows ``rows`` of :func:`_spill_corrections`' file, or computed here if it is not there
    (e.g. a worker on another machine). The file is deleted once all ``n_groups`` groups have
    read it (:func:`_count_read`), in whatever order the scheduler runs them.

    The fallback starts again from the reference inputs (:func:`_reference_inputs`), not the
    spectra: those are three times larger and would be held until the last group.
    """
    amp33 = inputs[3]
    nres, ny = amp33.shape[:2]
    width = (c1 - c0) * CHANNEL_WIDTH
    lo, hi, _ = rows.indices(ny)
    if spilled is not None:
        try:
            out = np.empty((nres, hi - lo, width), dtype=np.float32)
            with open(spilled, "rb") as fh:
                for r in range(nres):
                    start = (r * ny + lo) * width * 4
                    got = os.preadv(fh.fileno(), [memoryview(out[r]).cast("B")], start)
                    if got != out[r].nbytes:
                        raise OSError(f"{spilled}: short read")
        except OSError:
            pass
        else:
            # the rows are read: a failure to count only leaves the file to the stale sweep
            with contextlib.suppress(OSError):
                if _count_read(spilled) >= n_groups:
                    for name in (spilled, spilled + READS_SUFFIX):
                        with contextlib.suppress(OSError):
                            os.unlink(name)
            return out
    spectra = np.stack([_reference_resultant(inputs, r, flags)[0] for r in range(nres)])
    return _group_corrections(spectra, coeffs, c0, c1, rows)


def _correct_band(
    block: np.ndarray,
    bad: np.ndarray,
    fits: np.ndarray,
    y0: int,
    ny: int,
    pieces: list[np.ndarray],
    rows: slice,
    flags: dict[str, bool],
) -> np.ndarray:
    """Correct a band of rows ``y0 ...`` (all resultants, all columns) of an ``ny``-row frame.

    ``pieces`` are the channel blocks' corrections (:func:`_group_corrections`) of the row
    group the band lies in, ``rows`` the band's rows within them. The per-element arithmetic is
    the whole-frame kernel's, so results do not depend on the banding.
    """
    nres = block.shape[0]
    frame, off = _prepare(block, bad, nres, flags["remove_offset"])
    band = frame.shape[1]
    t_rows, t_cols = trend_times(ny)
    t_band = t_rows[y0 : y0 + band]
    n_det = fits.shape[1]
    for r in range(nres):
        for c in range(n_det):
            subtract_trend(_read_order(frame[r], c), t_band, t_cols, tuple(fits[r, c]))
    col = 0
    for piece in pieces:
        width = piece.shape[-1]
        frame[:, :, col : col + width] -= piece[:, rows]
        col += width
    frame += off
    return frame


def _edge_columns(block: np.ndarray) -> np.ndarray:
    """The first and the last :data:`REF_COLUMNS` columns of ``block``, side by side."""
    return np.concatenate([block[..., :REF_COLUMNS], block[..., -REF_COLUMNS:]], axis=-1)


def _cut_reference(block: np.ndarray, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge columns (:func:`_edge_columns`) and rows ``inside`` (axis -2) of one chunk."""
    return _edge_columns(block), np.array(block[..., inside, :], copy=True)


def _reference_cuts(x: Any, rows: np.ndarray) -> tuple[Any, Any]:
    """Edge columns and rows ``rows`` (axis -2) of a dask array, each as one small chunk.

    ``x`` has one chunk along every axis but -2. One task per chunk cuts both (the trend rows
    lie in the first and the last band), so each chunk of ``x`` is made once: with a cut of
    its own per piece, dask's optimizer fused the chunk's whole input chain (file reads,
    pixel-DQ steps) into every cut. The merges that follow hold only the cut pieces.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    if np.any(np.diff(rows) <= 0):  # fewer than 8 rows: trend rows repeat (tiny frames)
        return _reference_cuts(x, np.unique(rows))[0], x[..., rows, :].rechunk(-1)
    token = tokenize(x.name, rows)
    cut, e_name, r_name = (f"refpix-{k}-{token}" for k in ("cut", "edges", "rows"))
    lead = (0,) * (x.ndim - 2)
    bounds = np.concatenate([[0], np.cumsum(x.chunks[-2])])
    cuts: dict = {}
    pick_edges: dict = {}
    pick_rows: dict = {}
    counts = []
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        inside = rows[(rows >= lo) & (rows < hi)] - lo
        cuts[(cut, i)] = (_cut_reference, (x.name, *lead, i, 0), inside)
        pick_edges[(e_name, *lead, i, 0)] = (operator.getitem, (cut, i), 0)
        if inside.size:
            pick_rows[(r_name, *lead, len(counts), 0)] = (operator.getitem, (cut, i), 1)
            counts.append(int(inside.size))
    base = x.__dask_graph__()
    graph = HighLevelGraph(
        {**base.layers, cut: cuts, e_name: pick_edges, r_name: pick_rows},
        {**base.dependencies, cut: {x.name}, e_name: {cut}, r_name: {cut}},
    )
    edges = da.Array(graph, e_name, (*x.chunks[:-1], (2 * REF_COLUMNS,)), dtype=x.dtype)
    cut_rows = da.Array(graph, r_name, (*x.chunks[:-2], tuple(counts), x.chunks[-1]), dtype=x.dtype)
    return edges.rechunk(-1), cut_rows.rechunk(-1)


def _row_groups(edges: np.ndarray, nres: int, nx: int) -> list[list[int]]:
    """Bands (by index) grouped so that one group's corrections fit :data:`CORRECTION_BYTES`."""
    n_bands = len(edges) - 1
    ny = int(edges[-1])
    total = nres * ny * nx * 4
    n_groups = max(1, min(n_bands, -(-total // CORRECTION_BYTES)))
    return [list(map(int, g)) for g in np.array_split(np.arange(n_bands), n_groups)]


def _single_chunk_task(key: str, func: Any, arrays: list, *extra: Any) -> Any:
    """A Delayed of ``func(*arrays, *extra)`` on arrays of one chunk each.

    Not ``dask.delayed(func)(*arrays)``: that optimizes each array's graph on its own, so the
    tasks it fuses (here: the pixel-DQ steps and file reads of every band) are computed again
    under new names next to the same tasks of the main graph. The task refers to the
    arrays' own chunk keys instead.
    """
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    for x in arrays:
        if x.npartitions != 1:
            raise ValueError(f"{key}: expected single-chunk arrays, got chunks {x.chunks}")
    task = (func, *[(x.name, *(0,) * x.ndim) for x in arrays], *extra)
    return Delayed(key, HighLevelGraph.from_collections(key, {key: task}, dependencies=arrays))


def _lazy_corrected(d, a, b, coeffs, flags, token):
    """Dask graph of the corrected ramp and amp33, streaming by bands of rows.

    Stages: (1) one small task reads the reference pixels (detector columns 0-3 and the last
    4, the trend rows, amp33) from a *clone* of the input graph, so the science bands are not
    held while it waits for the last band, and turns them into spectra and trend fits; (2) per
    group of row bands and block of :data:`CHANNEL_BLOCK` channels, one task inverse-transforms
    the corrections and keeps the group's rows; (3) each band is corrected on its own. Only one
    group's corrections (bounded by :data:`CORRECTION_BYTES`) need to be held at a time.
    """
    import dask
    import dask.array as da
    from dask.graph_manipulation import clone
    from dask.highlevelgraph import HighLevelGraph

    nres, ny, nx = d.shape
    n_det = nx // CHANNEL_WIDTH
    whole = {0: -1, 2: -1}
    # clone before rechunking: cloned rechunk layers keep their names in this dask version
    # The bad-pixel mask too: made from the pixel DQ steps' own reads of the mask and
    # saturation references, it would otherwise be computed for every band at once and held
    # (~0.3 GB for a full frame) until each band's correction comes up. Its clone re-reads
    # those references instead (it does not depend on the ramp).
    twin = clone(d).rechunk(whole)
    d = d.rechunk(whole)
    ychunks = d.chunks[1]
    b_twin = clone(b).rechunk((ychunks, -1))
    b = b.rechunk((ychunks, -1))
    rows = trend_rows(ny)
    inputs = _single_chunk_task(
        f"refpix-inputs-{token}",
        _reference_inputs,
        [*_reference_cuts(twin, rows), a.rechunk(-1), *_reference_cuts(b_twin, rows)],
        flags,
    )
    per_resultant = [
        dask.delayed(_reference_resultant, pure=True)(
            inputs, r, flags, dask_key_name=f"refpix-resultant-{token}-{r}"
        )
        for r in range(nres)
    ]
    reference = dask.delayed(_stack_references, pure=True, nout=3)(
        per_resultant, dask_key_name=f"refpix-reference-{token}"
    )
    spectra, fits, _ = reference
    edges = np.concatenate([[0], np.cumsum(ychunks)]).astype(int)
    blocks = [(c, min(c + CHANNEL_BLOCK, n_det)) for c in range(0, n_det, CHANNEL_BLOCK)]
    dkeys = d.__dask_keys__()
    bkeys = b.__dask_keys__()
    first_band = d.to_delayed(optimize_graph=False)[0, :, 0]  # see _single_chunk_task
    parts = []
    groups = _row_groups(edges, nres, nx)
    spills = [
        dask.delayed(_spill_corrections, pure=True)(
            spectra,
            coeffs,
            c0,
            c1,
            _spill_path(token, j),
            dask_key_name=f"refpix-spill-{token}-{j}",
        )
        for j, (c0, c1) in enumerate(blocks)
    ]
    for g, bands in enumerate(groups):
        lo, hi = int(edges[bands[0]]), int(edges[bands[-1] + 1])
        # Ordering anchor: a group's corrections also wait for the read of its first band.
        # dask's local scheduler runs newly ready tasks first and input reads in priority
        # order, so the corrections of a group are made when its bands come up, not all at
        # once as soon as the spectra exist (which would hold every group's corrections).
        corr = [
            dask.delayed(_spilled_corrections, pure=True)(
                spills[j],
                inputs,
                flags,
                coeffs,
                c0,
                c1,
                slice(lo, hi),
                len(groups),
                first_band[bands[0]],
                dask_key_name=f"refpix-corrections-{token}-{g}-{j}",
            )
            for j, (c0, c1) in enumerate(blocks)
        ]
        name = f"refpix-{token}-{g}"
        dsk = {}
        for i, k in enumerate(bands):
            y0, y1 = int(edges[k]), int(edges[k + 1])
            dsk[(name, 0, i, 0)] = (
                _correct_band,
                dkeys[0][k][0],
                bkeys[k][0],
                fits.key,
                y0,
                ny,
                [c.key for c in corr],
                slice(y0 - lo, y1 - lo),
                flags,
            )
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=[d, b, fits, *corr])
        part = da.Array(
            graph,
            name,
            chunks=((nres,), ychunks[bands[0] : bands[-1] + 1], (nx,)),
            dtype=np.float32,
        )
        parts.append(part)
    corrected = da.concatenate(parts, axis=1)
    # not da.from_delayed: that copies the delayed's task into the array's fused task, so the
    # reference stage ran twice (once for the spectra, once for amp33)
    amp_name = f"refpix-amp33-{token}"
    amp_graph = HighLevelGraph.from_collections(
        amp_name, {(amp_name, 0, 0, 0): (operator.getitem, reference.key, 2)}, [reference]
    )
    amp = da.Array(amp_graph, amp_name, chunks=((nres,), (ny,), (CHANNEL_WIDTH,)), dtype=np.float32)
    return corrected, amp


def _eager_corrected(d, a, bad, coeffs, flags, workers):
    """numpy path: the same stages on the whole frame."""
    _, ny, nx = d.shape
    rows = trend_rows(ny)
    spectra, fits, amp33 = _reference_stage(
        _edge_columns(d),
        d[:, rows, :],
        a,
        _edge_columns(bad),
        bad[rows, :],
        flags,
        workers,
    )
    pieces = [
        _group_corrections(
            spectra, coeffs, c, min(c + CHANNEL_BLOCK, nx // CHANNEL_WIDTH), slice(None), workers
        )
        for c in range(0, nx // CHANNEL_WIDTH, CHANNEL_BLOCK)
    ]
    corrected = _correct_band(d, bad, fits, 0, ny, pieces, slice(None), flags)
    return corrected, amp33


def refpix(
    ds: xr.Dataset,
    *,
    remove_offset: bool = True,
    remove_trends: bool = True,
    cosine_interpolate: bool = True,
    fft_interpolate: bool = True,
    override_refpix: Any = None,
    resolver: ReferenceResolver | None = None,
) -> xr.Dataset:
    """Reference-pixel correction (algorithms.md 4.3).

    Pixels flagged BAD_REF_PIXEL in ``pixeldq`` are zeroed first (always). Then, optionally, the
    per-pixel mean over resultants is removed (``remove_offset``); each resultant is viewed as
    33 read-order channel time series (odd channels reversed, 12 zero pad columns per row), each
    channel's time trend fitted on the top/bottom 4 rows is removed (``remove_trends``), the
    amp33 channel's zeros are filled by sine-weighted interpolation (``cosine_interpolate``) and
    its pads by 3 FFT low-pass iterations (``fft_interpolate``), and every detector channel has
    ``irfft((F_L gamma + F_R zeta + F_A alpha) 2M)`` subtracted. The offset is added back.

    Outputs: ``data`` corrected (float32); ``amp33 = |corrected amp33|`` cast to uint16;
    ``border_ref_pix_left``/``right`` (if present) replaced by the corrected first/last 4
    columns. No DQ or variance change.

    Differences from romancal 1.1.0 (intended behaviour, algorithms.md section 8 item 4):
    romancal's step passes its four switches positionally to a function whose first switch is
    ``zero_bad_ref_pix``, so ``remove_offset=False`` there disables bad-reference-pixel zeroing
    instead, ``remove_trends=False`` disables the offset, ``cosine_interpolate=False`` the
    trends, ``fft_interpolate=False`` the cosine interpolation, and FFT interpolation is always
    on. Here each switch does what its name says and bad reference pixels are always zeroed.
    With the defaults both agree (to float32 rounding). A one-resultant exposure gets the
    offset removed as its own value (romancal divides by zero and returns NaN).

    Geometry: any number of rows (the reference must then have ``M = rows * 70 + 1``
    frequencies), and ``x`` must run over whole rows of an even number of 128-column channels
    starting at 0 (4096 for a real detector) with ``amp33`` present; a cut-out in ``x`` lacks
    the left/right reference columns and raises :class:`~romanxr.errors.ExposureError` (the
    user skips the step explicitly if they want it uncorrected).

    Memory: with dask the step streams by bands of rows. One task turns the reference pixels
    (read from a clone of the input graph) into spectra and trend fits; one task per block of
    :data:`CHANNEL_BLOCK` channels inverse-transforms the corrections of every row once and
    keeps them in a scratch file in the temp directory; each group of rows (at most
    :data:`CORRECTION_BYTES`) reads its part back (or, where the file cannot be seen, computes
    it); once every group has read the file it is deleted, in whatever order the scheduler
    ran them. Each band is corrected on its own. Results equal the whole-frame computation
    bit for bit. With numpy the same stages run on the whole frame.

    Parameters
    ----------
    ds : xarray.Dataset
        A ramp after dq_init (float32 ``data``, ``amp33``, ``pixeldq``).
    remove_offset : bool
        Remove each pixel's mean over resultants first (added back at the end).
    remove_trends : bool
        Remove each channel's time trend fitted on the top/bottom 4 rows.
    cosine_interpolate : bool
        Fill the amp33 channel's zeros by sine-weighted interpolation.
    fft_interpolate : bool
        Fill the amp33 channel's pad columns by FFT low-pass iterations.
    override_refpix : path, optional
        REFPIX reference file to use instead of CRDS's (``"N/A"`` skips the step).
    resolver : ReferenceResolver, optional
        Overrides and CRDS settings for reference lookup.

    Returns
    -------
    xarray.Dataset
        ``cal_step.refpix = "COMPLETE"``; ``"SKIPPED"`` when the reference resolves to N/A.

    Raises
    ------
    ExposureError
        No amp33, or not whole detector rows.
    ReferenceMismatchError
        gamma/zeta/alpha shapes do not fit ``(channels, rows * 70 + 1)``.
    """
    validate_exposure(ds)  # dims, dtypes and read_pattern before anything else
    params = {
        "remove_offset": bool(remove_offset),
        "remove_trends": bool(remove_trends),
        "cosine_interpolate": bool(cosine_interpolate),
        "fft_interpolate": bool(fft_interpolate),
    }
    nres, ny, nx = _check_geometry(ds)
    resolved, ref = get_reference(
        ds, "refpix", explicit=override_refpix, resolver=resolver, align=False
    )
    if ref is None:
        return finish_step(ds, ds, STEP, "SKIPPED", parameters=params, references=[resolved])
    coeffs = _coefficient_vars(ref, resolved.name, nx // CHANNEL_WIDTH, ny)

    data = ds["data"].transpose("resultant", "y", "x")
    amp33 = ds["amp33"].transpose("resultant", "y", "amp33_x")
    if "pixeldq" in ds:
        bad = (ds["pixeldq"].transpose("y", "x") & np.uint32(PixelFlag.BAD_REF_PIXEL)) != 0
    else:
        bad = xr.zeros_like(data.isel(resultant=0), dtype=bool)
    lazy = any(v.chunks is not None for v in (data, amp33, bad))

    if lazy:
        import dask.array as da
        from dask.base import tokenize

        d = da.asarray(data.data).astype(np.float32)
        a = da.asarray(amp33.data).astype(np.float32)
        b = da.asarray(bad.data)
        token = tokenize(d.name, a.name, b.name, resolved.path, resolved.name, params)
        corrected, amp_corr = _lazy_corrected(d, a, b, coeffs, params, token)
    else:
        corrected, amp_corr = _eager_corrected(
            np.asarray(data.values, dtype=np.float32),
            np.asarray(amp33.values, dtype=np.float32),
            np.asarray(bad.values),
            coeffs,
            params,
            _workers(),
        )

    amp_values = abs(amp_corr).astype(ds["amp33"].dtype)
    if lazy:
        # hand the next (per-pixel) steps their usual layout: resultant whole, (y, x) chunks
        if data.chunks is not None:
            corrected = corrected.rechunk(data.data.chunks)
        if amp33.chunks is not None:
            amp_values = amp_values.rechunk(amp33.data.chunks)
    out = ds.copy(deep=False)
    out["data"] = xr.DataArray(corrected, dims=data.dims, coords=data.coords, attrs=data.attrs)
    out["amp33"] = xr.DataArray(amp_values, dims=amp33.dims, coords=amp33.coords, attrs=amp33.attrs)
    for name, cols in (
        ("border_ref_pix_left", slice(0, REF_COLUMNS)),
        ("border_ref_pix_right", slice(nx - REF_COLUMNS, nx)),
    ):
        if name not in ds:
            continue
        old = ds[name]
        if (
            old.ndim != 3
            or old.shape[0] != nres
            or old.shape[1] != ny
            or old.shape[2] != REF_COLUMNS
        ):
            continue  # not laid out like this frame's rows; leave the dq_init copy
        values = corrected[:, :, cols].astype(old.dtype)
        out[name] = xr.DataArray(values, dims=old.dims, coords=old.coords, attrs=old.attrs)
    return finish_step(out, ds, STEP, "COMPLETE", parameters=params, references=[resolved])
