"""refpix step: reference-pixel correction from the border columns and amp33 (algorithms.md 4.3)."""

from __future__ import annotations

import itertools
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
    correct_resultant,
    offset_from_sum,
    spectrum_length,
)
from romanxr.refs import ReferenceResolver
from romanxr.steps._common import finish_step, get_reference

__all__ = ["refpix"]

STEP = "refpix"


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


def _coefficients(ref: xr.Dataset, name: str, n_channels: int, ny: int) -> tuple[np.ndarray, ...]:
    m = spectrum_length(ny)
    arrays = []
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
        # complex64: see correct_resultant (half the time and memory, far below data rounding)
        arrays.append(np.asarray(ref[key].values).astype(np.complex64))
    return tuple(arrays)


def _correct_stack(
    data: np.ndarray,
    amp33: np.ndarray,
    offset: np.ndarray,
    bad: np.ndarray,
    coeffs: tuple[np.ndarray, ...],
    flags: dict[str, bool],
    workers: int,
) -> np.ndarray:
    """(r, y, x) data + (r, y, 128) amp33 -> (r, y, x + 128) corrected, offset restored."""
    nres, ny, nx = data.shape
    out = np.empty((nres, ny, nx + CHANNEL_WIDTH), dtype=np.float32)
    frame = np.empty((ny, nx + CHANNEL_WIDTH), dtype=np.float32)
    bad = np.reshape(bad, (ny, nx))
    offset = np.reshape(offset, (ny, nx + CHANNEL_WIDTH))
    for r in range(nres):
        frame[:, :nx] = data[r]
        frame[:, :nx][bad] = 0
        frame[:, nx:] = amp33[r]
        frame -= offset
        out[r] = correct_resultant(
            frame,
            *coeffs,
            remove_trends_=flags["remove_trends"],
            cosine_interpolate_=flags["cosine_interpolate"],
            fft_interpolate_=flags["fft_interpolate"],
            workers=workers,
        )
        out[r] += offset
    return out


def _correct_pieces(
    data_pieces: list[np.ndarray],
    amp_pieces: list[np.ndarray],
    offset: np.ndarray,
    bad: np.ndarray,
    coeffs: tuple[np.ndarray, ...],
    flags: dict[str, bool],
    bounds: list[tuple[int, int]],
) -> list[np.ndarray]:
    """One resultant: row bands in, corrected frame, row bands (views of it) out."""
    data = np.concatenate(data_pieces, axis=1)
    amp33 = np.concatenate(amp_pieces, axis=1)
    out = _correct_stack(data, amp33, offset, bad, coeffs, flags, 1)
    del data, amp33
    return [out[:, lo:hi] for lo, hi in bounds]


def _lazy_corrected(d, a, offset, bad, coeffs, flags):
    """Dask graph of the corrected ``(resultant, y, x + 128)`` ramp, one resultant per task.

    Each task takes its resultant's row bands straight from the upstream chunks and hands its
    corrected frame back as the same row bands, so the only whole-frame copies are inside the
    running tasks: no separate regrouping of the input into frames and of the output back into
    bands (which held up to two more copies of the ramp).
    """
    import operator

    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    nres, _, nx = d.shape
    ychunks = d.chunks[1]
    d1 = d.rechunk({0: 1, 2: -1})
    a1 = a.rechunk({0: 1, 1: ychunks, 2: -1})
    offset = offset.rechunk((-1, -1))
    bad = bad.rechunk((-1, -1))
    edges = np.concatenate([[0], np.cumsum(ychunks)]).astype(int)
    bounds = [(int(lo), int(hi)) for lo, hi in itertools.pairwise(edges)]
    token = tokenize(d1, a1, offset, bad, coeffs, flags)
    frame_name = f"refpix-frame-{token}"
    name = f"refpix-{token}"
    dkeys = d1.__dask_keys__()
    akeys = a1.__dask_keys__()
    okey = offset.__dask_keys__()[0][0]
    bkey = bad.__dask_keys__()[0][0]
    dsk: dict = {}
    for r in range(nres):
        dsk[(frame_name, r)] = (
            _correct_pieces,
            [dkeys[r][k][0] for k in range(len(ychunks))],
            [akeys[r][k][0] for k in range(len(ychunks))],
            okey,
            bkey,
            coeffs,
            flags,
            bounds,
        )
        for k in range(len(ychunks)):
            dsk[(name, r, k, 0)] = (operator.getitem, (frame_name, r), k)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[d1, a1, offset, bad])
    chunks = ((1,) * nres, ychunks, (nx + CHANNEL_WIDTH,))
    return da.Array(graph, name, chunks=chunks, dtype=np.float32)


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

    Memory: with dask the step computes the offset as a separate reduction and then corrects
    one whole resultant per task; each task gathers its resultant's row bands from the
    upstream chunks and returns the corrected frame as the same row bands, so the ramp is held
    about twice (input bands until the last resultant is done, corrected bands until the next
    step regroups them by pixel) plus one frame per running task; with numpy it loops over
    resultants.

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
    coeffs = _coefficients(ref, resolved.name, nx // CHANNEL_WIDTH, ny)
    workers = _workers()

    data = ds["data"].transpose("resultant", "y", "x")
    amp33 = ds["amp33"].transpose("resultant", "y", "amp33_x")
    if "pixeldq" in ds:
        bad = (ds["pixeldq"].transpose("y", "x") & np.uint32(PixelFlag.BAD_REF_PIXEL)) != 0
    else:
        bad = xr.zeros_like(data.isel(resultant=0), dtype=bool)
    lazy = any(v.chunks is not None for v in (data, amp33, bad))

    if lazy:
        import dask.array as da

        d = da.asarray(data.data).astype(np.float32)
        a = da.asarray(amp33.data).astype(np.float32)
        b = da.asarray(bad.data)
        if remove_offset:
            # bad reference pixels are zero in every resultant, so their sum is zero
            det_total = da.where(b, np.float32(0), d.sum(axis=0))
            total = da.concatenate([det_total, a.sum(axis=0)], axis=1)
            offset = total.map_blocks(offset_from_sum, nres, dtype=np.float32)
        else:
            offset = da.zeros((ny, nx + CHANNEL_WIDTH), dtype=np.float32)
        combined = _lazy_corrected(d, a, offset, b, coeffs, params)
    else:
        d = np.asarray(data.values, dtype=np.float32)
        a = np.asarray(amp33.values, dtype=np.float32)
        b = np.asarray(bad.values)
        if remove_offset:
            det_total = d.sum(axis=0)
            det_total[b] = 0  # bad reference pixels are zero in every resultant
            total = np.concatenate([det_total, a.sum(axis=0)], axis=1)
            offset = offset_from_sum(total, nres)
        else:
            offset = np.zeros((ny, nx + CHANNEL_WIDTH), dtype=np.float32)
        combined = _correct_stack(d, a, offset, b, coeffs, params, workers)

    corrected = combined[:, :, :nx]
    amp_values = abs(combined[:, :, nx:]).astype(ds["amp33"].dtype)
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
