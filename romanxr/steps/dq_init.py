"""dq_init: turn a Level-1 exposure into the ramp layout and initialise its data quality.

Pure xarray arithmetic (lazy on dask): no kernel is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from romanxr.dataset import (
    BORDER,
    CAL_STEP_KEYS,
    DETECTOR_SIZE,
    frame_shape,
    get_meta,
    validate_exposure,
)
from romanxr.dq import GROUP_DTYPE, PIXEL_DTYPE, PixelFlag
from romanxr.errors import ConfigError
from romanxr.refs import ReferenceResolver
from romanxr.schedule import chunk_like
from romanxr.steps._common import finish_step
from romanxr.steps._detector import resolve

__all__ = ["dq_init"]

_GW = np.uint32(PixelFlag.GW_AFFECTED_DATA)
_GW_WINDOW = np.uint32(PixelFlag.DO_NOT_USE | PixelFlag.GW_AFFECTED_DATA)


def _window_slice(start: int, stop: int, size: int) -> tuple[int, int]:
    """Python slice semantics of ``[start:stop]`` on an axis of ``size`` elements."""
    lo, hi, _ = slice(start, stop).indices(size)
    return lo, max(lo, hi)


def _guide_window(meta: dict, expand: int) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Columns of the guide-window stripe and the (expanded) window, or empty ranges."""
    gs = meta.get("guide_star") or {}
    try:
        xs, xe, ys, ye = (
            int(gs[k]) for k in ("window_xstart", "window_xstop", "window_ystart", "window_ystop")
        )
    except (KeyError, TypeError, ValueError):
        return (0, 0), (0, 0, 0, 0)
    n = DETECTOR_SIZE
    if not (0 <= xs < n and 0 <= ys < n):
        return (0, 0), (0, 0, 0, 0)
    stripe = _window_slice(xs, xe, n)
    if expand > 0:
        xs, xe = int(np.clip(xs - expand, 0, n)), int(np.clip(xe + expand, 0, n))
        ys, ye = int(np.clip(ys - expand, 0, n)), int(np.clip(ye + expand, 0, n))
    return stripe, (*_window_slice(ys, ye, n), *_window_slice(xs, xe, n))


def _in_range(coord: xr.DataArray, lo: int, hi: int) -> xr.DataArray:
    return (coord >= lo) & (coord < hi)


def _has(coord: xr.DataArray, values: range) -> bool:
    return bool(np.isin(np.asarray(values), np.asarray(coord.values)).all())


def _border_arrays(
    data: xr.DataArray, pixeldq: xr.DataArray, frame: tuple[int, int]
) -> dict[str, xr.DataArray]:
    """Copies of the 4-pixel reference border; only the sides the Dataset actually contains."""
    out: dict[str, xr.DataArray] = {}
    ny, nx = frame
    left = range(0, BORDER)
    # romancal calls rows 0..3 "top" and the last 4 rows "bottom"; the rad schema text says the
    # opposite. We follow the code so files compare bit for bit.
    sides = {
        "left": ("x", left, "ref_col"),
        "right": ("x", range(nx - BORDER, nx), "ref_col"),
        "top": ("y", left, "ref_row"),
        "bottom": ("y", range(ny - BORDER, ny), "ref_row"),
    }
    for side, (dim, cols, new_dim) in sides.items():
        if not _has(data[dim], cols):
            continue
        sel = {dim: list(cols)}
        part = data.sel(sel).rename({dim: new_dim}).drop_vars(new_dim)
        dq_part = pixeldq.sel(sel).rename({dim: new_dim}).drop_vars(new_dim)
        part = part.assign_coords({new_dim: np.arange(BORDER)})
        dq_part = dq_part.assign_coords({new_dim: np.arange(BORDER)})
        out[f"border_ref_pix_{side}"] = part.transpose("resultant", ...)
        out[f"dq_border_ref_pix_{side}"] = dq_part
    return out


def dq_init(
    ds: xr.Dataset,
    *,
    expand_gw_flagging: int = 0,
    override_mask: Any = None,
    resolver: ReferenceResolver | None = None,
) -> xr.Dataset:
    """Convert a Level-1 exposure to the ramp layout and initialise its DQ arrays.

    Parameters
    ----------
    ds : xarray.Dataset
        A Level-1 exposure from :func:`romanxr.open_uncal` (``data`` uint16, ``amp33``, and
        optionally ``resultantdq``, ``reference_read``, ``reference_amp33``). A ramp that
        already has ``pixeldq``/``groupdq`` is accepted too (as romancal does) and its DQ is
        kept apart from the guide-window columns (plain assignment, see below).
    expand_gw_flagging : int, default 0
        Widen the guide window by this many pixels on every side (clipped to the detector)
        before flagging it ``DO_NOT_USE | GW_AFFECTED_DATA``.
    override_mask : path-like, optional
        MASK reference file to use instead of the resolver's/CRDS's choice.
    resolver : ReferenceResolver, optional
        Reference resolution (overrides, CRDS context). Default: the environment's.

    Returns
    -------
    xarray.Dataset
        ``data`` float32 (DN), ``pixeldq`` uint32 (y, x), ``groupdq`` uint8 (resultant, y, x),
        ``amp33`` uint16, and the reference-border copies ``border_ref_pix_{left,right}``
        (resultant, y, ref_col), ``border_ref_pix_{top,bottom}`` (resultant, ref_row, x) with
        their ``dq_border_ref_pix_*``. ``resultantdq``, ``reference_read`` and
        ``reference_amp33`` are consumed.

    Notes
    -----
    In order:

    1. ``data`` -> float32; ``groupdq`` = ``resultantdq`` (else zeros); ``pixeldq`` = zeros.
       Every required ``meta.cal_step`` key not yet set becomes ``INCOMPLETE``; a boolean
       ``meta.exposure.data_problem`` becomes ``"True"`` / ``None``.
    2. Guide window (``meta.guide_star.window_{x,y}{start,stop}``, science-frame pixels): if
       ``0 <= xstart < 4096`` and ``0 <= ystart < 4096``, the columns ``xstart:xstop`` (all
       rows) are *set* to GW_AFFECTED_DATA (16), then the window (expanded by
       ``expand_gw_flagging``) gets ``|= DO_NOT_USE | GW_AFFECTED_DATA`` (17).
    3. ``data += reference_read``; ``amp33 += reference_amp33``.
    4. ``data -= meta.instrument.data_encoding_offset`` (default 0), same for ``amp33``.
    5. ``pixeldq |= mask.dq``.
    6. Border copies, taken after 3-4.

    Differences from romancal 1.1.0 (intended behaviour):

    * ``amp33`` sums are done in a wide integer type and clipped to 0..65535 before going back
      to uint16; romancal adds in uint16 and wraps around on overflow.
    * The guide window validity test and the clipping of the expanded window use the
      detector size (4096) on both axes; romancal uses the row count of the array for both.
      Coordinates are absolute detector pixels, so the two agree on real (4096x4096) frames.
    * A mask whose shape does not cover the exposure raises
      :class:`~romanxr.errors.ReferenceMismatchError`; romancal logs and marks the step
      SKIPPED. A mask resolving to N/A marks ``dq_init`` SKIPPED, the conversion still happens.
    * Border arrays are the outer 4 columns/rows of the whole frame
      (:func:`romanxr.dataset.frame_shape`, the file's array shape), made only for the sides a
      cut-out still contains; romancal copies the array's edges whatever they are. On a whole
      frame the two agree. Rows 0..3 are called "top" and the last 4 rows "bottom", as
      romancal does (the rad schema descriptions say the opposite).

    DQ bits touched: pixel GW_AFFECTED_DATA, DO_NOT_USE and every bit of the mask.
    """
    validate_exposure(ds)
    meta = get_meta(ds)
    expand = int(expand_gw_flagging)
    if expand < 0:
        raise ConfigError(f"dq_init: expand_gw_flagging must be >= 0, got {expand_gw_flagging!r}")

    data = ds["data"].astype(np.float32)
    pixeldq, groupdq = _initial_dq(ds, data)
    pixeldq = _flag_guide_window(ds, pixeldq, *_guide_window(meta, expand))
    # 3-4. reference read and encoding offset
    offset = int((meta.get("instrument") or {}).get("data_encoding_offset") or 0)
    if "reference_read" in ds:
        data = data + ds["reference_read"].astype(np.float32)
    if offset:
        data = data - np.float32(offset)
    data = data.astype(np.float32).transpose("resultant", "y", "x")
    amp33 = _amp33(ds, offset) if "amp33" in ds else None

    # 5. mask
    resolved, mask = resolve(ds, "mask", override_mask, resolver)
    status = "SKIPPED"
    if mask is not None:
        mask_dq = chunk_like(mask["dq"], pixeldq).astype(PIXEL_DTYPE)
        pixeldq = (pixeldq | mask_dq).astype(PIXEL_DTYPE)
        status = "COMPLETE"

    drop = [v for v in ("resultantdq", "reference_read", "reference_amp33") if v in ds]
    out = ds.drop_vars(drop)
    out = out.assign(data=data, pixeldq=pixeldq, groupdq=groupdq)
    if amp33 is not None:
        out = out.assign(amp33=amp33)
    # 6. reference border copies (old ones, from a ramp input, are replaced)
    stale = [v for v in out.data_vars if v.startswith(("border_ref_pix_", "dq_border_ref_pix_"))]
    out = out.drop_vars(stale).assign(_border_arrays(data, pixeldq, frame_shape(ds)))

    result = finish_step(
        out,
        ds,
        "dq_init",
        status,
        parameters={"expand_gw_flagging": expand},
        references=[resolved],
    )
    _ramp_meta(result.attrs["meta"])
    return result


def _zeros_like(template: xr.DataArray, dtype: Any) -> xr.DataArray:
    """``xr.zeros_like(template, dtype=dtype)``, on dask named after ``template``'s graph.

    dask names an array of zeros by its shape, chunks and dtype only, so two exposures of one
    shape (or an exposure and its twin, see ``wfi18_transient_from``) would share those
    chunks and everything computed from them alone (the mask read, the DQ flags), and a
    writer that keeps shared results for later bands would keep them all.
    """
    if template.chunks is None:
        return xr.zeros_like(template, dtype=dtype)
    import dask.array as da
    from dask.base import tokenize

    name = f"zeros-{tokenize(template.data.name, np.dtype(dtype).str)}"
    zeros = da.zeros(template.shape, dtype=dtype, chunks=template.data.chunks, name=name)
    return template.copy(data=zeros)


def _initial_dq(ds: xr.Dataset, data: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Step 1: ``pixeldq`` and ``groupdq`` kept from a ramp, else from ``resultantdq``/zeros."""
    if "pixeldq" in ds:
        pixeldq = ds["pixeldq"].astype(PIXEL_DTYPE)
    else:
        pixeldq = _zeros_like(data.isel(resultant=0, drop=True), PIXEL_DTYPE)
    if "groupdq" in ds:
        groupdq = ds["groupdq"].astype(GROUP_DTYPE)
    elif "resultantdq" in ds:
        groupdq = ds["resultantdq"].astype(GROUP_DTYPE)
    else:
        groupdq = _zeros_like(data, GROUP_DTYPE)
    return pixeldq, groupdq


def _flag_guide_window(
    ds: xr.Dataset,
    pixeldq: xr.DataArray,
    stripe: tuple[int, int],
    window: tuple[int, int, int, int],
) -> xr.DataArray:
    """Step 2: GW_AFFECTED_DATA set on the stripe's columns, then DO_NOT_USE |
    GW_AFFECTED_DATA added in the window; (y, x) order."""
    cs, ce = stripe
    ys, ye, xs, xe = window
    if ce > cs:
        pixeldq = xr.where(_in_range(ds["x"], cs, ce), _GW, pixeldq).astype(PIXEL_DTYPE)
    if ye > ys and xe > xs:
        # built as (dask pixeldq) + (1-D terms) so nothing full-frame is made eagerly
        inside = (
            _zeros_like(pixeldq, np.uint8)
            + _in_range(ds["y"], ys, ye).astype(np.uint8)
            + _in_range(ds["x"], xs, xe).astype(np.uint8)
        ) == 2
        pixeldq = (pixeldq | xr.where(inside, _GW_WINDOW, np.uint32(0))).astype(PIXEL_DTYPE)
    return pixeldq.transpose("y", "x")


def _amp33(ds: xr.Dataset, offset: int) -> xr.DataArray:
    """Steps 3-4 on ``amp33``, in a wide integer type, clipped back to uint16."""
    amp = ds["amp33"].astype(np.int64)
    if "reference_amp33" in ds:
        amp = amp + ds["reference_amp33"].astype(np.int64)
    if offset:
        amp = amp - offset
    amp33 = amp.clip(0, np.iinfo(np.uint16).max).astype(np.uint16)
    if amp33.dims != ds["amp33"].dims:
        amp33 = amp33.transpose(*ds["amp33"].dims)
    return amp33


def _ramp_meta(meta: dict[str, Any]) -> None:
    """Every required cal_step key set, data_problem as romancal writes it, RampModel."""
    cal_step = meta.setdefault("cal_step", {})
    for key in CAL_STEP_KEYS:
        cal_step.setdefault(key, "INCOMPLETE")
    exposure = meta.get("exposure")
    if isinstance(exposure, dict) and isinstance(exposure.get("data_problem"), bool):
        exposure["data_problem"] = "True" if exposure["data_problem"] else None
    if "model_type" in meta:
        meta["model_type"] = "RampModel"
