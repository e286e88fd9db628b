"""refpix step: reference-pixel correction from the border columns and amp33."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import xarray as xr

from romanxr.dataset import validate_exposure
from romanxr.dq import PixelFlag
from romanxr.errors import ExposureError, ReferenceMismatchError
from romanxr.kernels import refpix_stages as stages
from romanxr.kernels.refpix import CHANNEL_WIDTH, REF_COLUMNS, spectrum_length, trend_rows
from romanxr.refs import ReferenceResolver
from romanxr.schedule import BorderStage, stream_border_stage
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


#: The staged numerics, streamed by :func:`romanxr.schedule.stream_border_stage`.
_STAGE = BorderStage(
    inputs=stages.reference_inputs,
    resultant=stages.reference_resultant,
    stack=stages.stack_references,
    block_frames=stages.corrections_by_resultant,
    block_rows=stages.corrections_from_inputs,
    band=stages.correct_band,
    groups=stages.row_groups,
    blocks=stages.channel_blocks,
    channel_width=CHANNEL_WIDTH,
)


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
    """Reference-pixel correction from the border reference columns and amp33.

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

    Differences from romancal 1.1.0 (intended behaviour):
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

    Memory: with dask the step streams by bands of rows
    (:func:`romanxr.schedule.stream_border_stage`): the reference pixels, read from a clone of
    the input graph, give spectra and trend fits; per block of channels one task computes the
    corrections of every row once into a scratch file (:mod:`romanxr.schedule.scratch`), which
    each group of rows reads its part of (or, where the file cannot be read, computes anew);
    each band is then corrected on its own. Results equal the whole-frame computation (the
    numpy path) bit for bit.

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
        where = {"rows": trend_rows(ny), "edge": REF_COLUMNS, "side_name": "amp33"}
        corrected, amp_corr = stream_border_stage(
            d, b, a, _STAGE, params, coeffs, name="refpix", token=token, **where
        )
    else:
        corrected, amp_corr = stages.correct_frame(
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
        if old.shape != (nres, ny, REF_COLUMNS):
            continue  # not laid out like this frame's rows; leave the dq_init copy
        values = corrected[:, :, cols].astype(old.dtype)
        out[name] = xr.DataArray(values, dims=old.dims, coords=old.coords, attrs=old.attrs)
    return finish_step(out, ds, STEP, "COMPLETE", parameters=params, references=[resolved])
