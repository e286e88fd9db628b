"""wfi18_transient step: remove the first-read glow of detector WFI18."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr
from dask.base import tokenize

from romanxr.dataset import BORDER, read_pattern_info, validate_exposure
from romanxr.dq import GroupFlag
from romanxr.kernels.timing import FRAME_SIZE, column_time, row_time
from romanxr.kernels.wfi18_transient import (
    MIN_RESULTANTS,
    first_read_residual,
    fit_transient,
    mask_transient_rows,
    row_residual_means,
    subtract_transient,
)
from romanxr.schedule.graph import prelude
from romanxr.steps._common import apply_kernel, finish_step
from romanxr.steps.dark_decay import detector_number

__all__ = ["wfi18_transient", "wfi18_transient_from"]

STEP = "wfi18_transient"
SCA = 18
MASK_FLAG = int(GroupFlag.DO_NOT_USE | GroupFlag.WFI18_TRANSIENT)
#: romancal starts the fit's time constants at the mean read time of science rows 300 and 1000.
_TAU_GUESS_ROWS = (BORDER + 300, BORDER + 1000)


def _chunks_like(arr: xr.DataArray, ref: xr.DataArray) -> xr.DataArray:
    if ref.chunks is None:
        return arr
    chunks = dict(zip(ref.dims, ref.chunks, strict=True))
    return arr.chunk({d: chunks[d] for d in arr.dims if d in chunks})


def _span(inside: np.ndarray) -> slice:
    """The slice of the (contiguous) True run of ``inside``; empty when there is none."""
    where = np.flatnonzero(inside)
    return slice(int(where[0]), int(where[-1]) + 1) if where.size else slice(0, 0)


def wfi18_transient(ds: xr.Dataset, *, mask_rows: bool = False) -> xr.Dataset:
    """Correct (or mask) the WFI18 first-read transient.

    * Detector other than WFI18: nothing changes, ``cal_step = "N/A"``.
    * ``mask_rows`` or fewer than 5 resultants: ``groupdq[0]`` at absolute rows 0..999 gets
      DO_NOT_USE | WFI18_TRANSIENT (129); data unchanged.
    * Otherwise, on the science pixels (absolute 4..4091 in y and x) of the Dataset:
      ``res = d0 - (d1 - rate (t1 - t0))`` with ``rate = (d2 - d1)/(t2 - t1)`` (resultant mean
      times); per row, the 3-sigma-clipped mean of ``res`` over pixels whose ``d4 - d3`` is at or
      below the row median; a double exponential in the row's mean read time
      ``T(ft, 18, 0)`` is fitted to these means and evaluated at every pixel's read time, then
      subtracted from resultant 0 (science pixels only). If the fit fails the rows are masked as
      above instead. ``cal_step = "COMPLETE"``.

    Difference from romancal 1.1.0: its bright-pixel mask is ``diff > np.median(diff, axis=1)``,
    which broadcasts the row medians along the *columns* (pixel (r, c) is compared with the
    median of row c) and only runs because a full frame is square. Here each pixel is compared
    with its own row's median, which is what the mask is meant to do. On frames whose rows have
    uniform residuals both give the same result (see the parity tests).

    The row statistics and fit are a reduction (whole rows, then one small fit); their result is
    applied blockwise, so a dask-backed input stays lazy. Computed from ``ds`` itself, every
    band waits in memory for the fit; :func:`romanxr.calibrate` (and the command line) take
    the statistics from a twin instead (:func:`wfi18_transient_from`), with the same result.
    Cut-outs use their own rows and columns with full-frame timing; the start values of the
    time constants come from the full-frame rows 304 and 1004 as in romancal.

    Parameters
    ----------
    ds : xarray.Dataset
        A ramp after dq_init.
    mask_rows : bool
        WFI18 only: flag rows 0..999 of the first resultant DO_NOT_USE | WFI18_TRANSIENT
        instead of fitting and subtracting the transient.

    Returns
    -------
    xarray.Dataset
        The corrected (or flagged) ramp; ``cal_step.wfi18_transient`` COMPLETE or N/A.
    """
    return _transient(ds, mask_rows, None)


def wfi18_transient_from(
    ds: xr.Dataset, statistics: Callable[[], xr.Dataset], *, mask_rows: bool = False
) -> xr.Dataset:
    """:func:`wfi18_transient` with the fit's row statistics taken from another ramp.

    The fit needs every row of the first five resultants before any row can be corrected.
    Taken from ``ds`` itself, every band of ``ds`` (and of the steps before it) waits, held
    in memory, until the last band has been read: at full frame, the whole ramp. Taken from
    a *twin* (the same values built under other task names, e.g. the earlier steps run
    again on a clone of the exposure), the twin's bands are made, reduced to row means and
    dropped, and the bands of ``ds`` are made only when they are corrected. The result is
    the same as :func:`wfi18_transient`'s; the price is computing the earlier steps twice.

    Parameters
    ----------
    ds : xarray.Dataset
        A ramp after dq_init.
    statistics : callable
        Returns the twin of ``ds``; called only when a fit is made (WFI18, fitting).
    mask_rows : bool
        As for :func:`wfi18_transient`.

    Returns
    -------
    xarray.Dataset
        As :func:`wfi18_transient`.
    """
    return _transient(ds, mask_rows, statistics)


def _transient(
    ds: xr.Dataset, mask_rows: bool, statistics: Callable[[], xr.Dataset] | None
) -> xr.Dataset:
    validate_exposure(ds)  # dims, dtypes and read_pattern, even where the step is N/A
    detector, _ = detector_number(ds)
    if detector != "WFI18":
        return finish_step(ds, ds, STEP, "N/A", parameters={"mask_rows": mask_rows})
    info = read_pattern_info(ds)
    ft = info.frame_time
    data, groupdq = ds["data"], ds["groupdq"]
    y, x = ds["y"].values, ds["x"].values
    forced = bool(mask_rows) or len(info) < MIN_RESULTANTS
    params = {"mask_rows": bool(mask_rows), "fit": not forced}

    if forced:
        fit = xr.DataArray(np.zeros(5), dims=("param",))
    else:
        in_y = (y >= BORDER) & (y < FRAME_SIZE - BORDER)
        in_x = (x >= BORDER) & (x < FRAME_SIZE - BORDER)
        source = data if statistics is None else statistics()["data"]
        # the science columns (a slice: dask indexes each chunk); every row, so the row
        # means keep the bands' chunks, and the science rows are taken from the means
        sci = source.isel(x=_span(in_x))
        d = [sci.isel(resultant=i).reset_coords(drop=True) for i in range(5)]
        # float32 differences, float64 from the division on (romancal's promotion)
        residual = first_read_residual(d[0], d[1], d[2], info.mean_time[:3])
        later = d[4] - d[3]
        if residual.chunks is not None:
            residual = residual.chunk({"x": -1})
            later = later.chunk({"x": -1})
        row_means = xr.apply_ufunc(
            row_residual_means,
            residual,
            later,
            input_core_dims=[["x"], ["x"]],
            dask="parallelized",
            output_dtypes=[np.float64],
        )
        col_sci = column_time(ft, SCA, x[in_x])
        row_times = row_time(ft, SCA, y[in_y]) + (col_sci.mean() if col_sci.size else 0.0)
        full_cols = column_time(ft, SCA, np.arange(BORDER, FRAME_SIZE - BORDER))
        tau_guesses = tuple(
            float(t) for t in row_time(ft, SCA, np.array(_TAU_GUESS_ROWS)) + full_cols.mean()
        )
        if row_means.chunks is not None:
            # band by band before the bands of the result (see graph.prelude)
            token = tokenize(row_means.data.name)
            row_means = row_means.copy(data=prelude(row_means.data, f"wfi18-rows-{token}", True))
        row_means = row_means.isel(y=_span(in_y))
        if row_means.chunks is not None:
            row_means = row_means.chunk({"y": -1})
        fit = xr.apply_ufunc(
            fit_transient,
            row_means,
            input_core_dims=[["y"]],
            output_core_dims=[["param"]],
            dask="parallelized",
            output_dtypes=[np.float64],
            dask_gufunc_kwargs={"output_sizes": {"param": 5}},
            kwargs={"row_times": row_times, "tau_guesses": tau_guesses},
        )
        if fit.chunks is not None:
            fit = fit.copy(data=prelude(fit.data, f"wfi18-fit-{tokenize(fit.data.name)}"))

    in_y_all = xr.DataArray((y >= BORDER) & (y < FRAME_SIZE - BORDER), dims=("y",))
    in_x_all = xr.DataArray((x >= BORDER) & (x < FRAME_SIZE - BORDER), dims=("x",))
    row_t = xr.DataArray(row_time(ft, SCA, y), dims=("y",))
    col_t = xr.DataArray(column_time(ft, SCA, x), dims=("x",))
    ys = xr.DataArray(y, dims=("y",))
    row_t, in_y_all, ys = (_chunks_like(a, data) for a in (row_t, in_y_all, ys))
    col_t, in_x_all = (_chunks_like(a, data) for a in (col_t, in_x_all))

    def _subtract(block, rt, ct, iy, ix, p):
        science = np.ravel(iy)[:, None] & np.ravel(ix)[None, :]
        return subtract_transient(block, np.ravel(rt), np.ravel(ct), science, p)

    def _mask(block, yy, p):
        return mask_transient_rows(block, np.ravel(yy), p, MASK_FLAG)

    out = ds.copy(deep=False)
    if not forced:
        (new_data,) = apply_kernel(
            _subtract,
            [data, row_t, col_t, in_y_all, in_x_all, fit],
            output_dims=[data.dims],
            output_dtypes=[data.dtype],
        )
        out["data"] = new_data.assign_attrs(data.attrs)
    (new_dq,) = apply_kernel(
        _mask, [groupdq, ys, fit], output_dims=[groupdq.dims], output_dtypes=[groupdq.dtype]
    )
    out["groupdq"] = new_dq.assign_attrs(groupdq.attrs)
    return finish_step(out, ds, STEP, "COMPLETE", parameters=params)
