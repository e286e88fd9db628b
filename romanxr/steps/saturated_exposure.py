"""The fully-saturated short-circuit of the exposure pipeline, as in romancal's ExposurePipeline.

Right after ``saturation``, an exposure in which every pixel is saturated carries no signal;
the pipeline then skips the remaining steps and emits a defined zeroed Level-2 image.

Deciding *whether* an exposure is fully saturated needs the pixel DQ, so it computes:
:func:`fully_saturated` gives the answer as a lazy 0-d DataArray (a cheap boolean reduction over
``groupdq`` and ``pixeldq``; it stops nothing and reads nothing until computed), and
:func:`is_fully_saturated` computes it. A pipeline that wants to stay lazy end to end can skip
the check and ask later; romanxr's pipeline computes it only when asked to honour the
short-circuit.
"""

from __future__ import annotations

import copy

import dask.array as da
import numpy as np
import xarray as xr

from romanxr.dataset import BORDER, CAL_STEP_KEYS, RAMP_DIMS, get_meta
from romanxr.dq import GroupFlag, PixelFlag
from romanxr.errors import ExposureError
from romanxr.io.product import L2_ARRAY_DIMS

__all__ = [
    "SKIPPED_AFTER_SATURATION",
    "flag_fully_saturated",
    "fully_saturated",
    "is_fully_saturated",
    "saturated_image",
]

#: cal_step keys romancal sets to SKIPPED in the zeroed image.
SKIPPED_AFTER_SATURATION = (
    "refpix",
    "dark_decay",
    "wfi18_transient",
    "linearity",
    "dark",
    "ramp_fit",
    "assign_wcs",
    "flat_field",
    "photom",
    "source_catalog",
)

_BORDER_SLICES = {
    "left": {"x": slice(None, BORDER)},
    "right": {"x": slice(-BORDER, None)},
    "top": {"y": slice(None, BORDER)},
    "bottom": {"y": slice(-BORDER, None)},
}


def _require(ds: xr.Dataset, names: tuple[str, ...]) -> None:
    missing = [n for n in names if n not in ds]
    if missing:
        raise ExposureError(
            f"the ramp has no {', '.join(missing)}; the saturation short-circuit runs after "
            "dq_init and saturation"
        )


def fully_saturated(ds: xr.Dataset) -> xr.DataArray:
    """Lazy 0-d boolean: is every pixel of the ramp saturated?

    True when every element of ``groupdq`` has SATURATED (all resultants, all pixels, border
    included) or every ``pixeldq`` element has SATURATED, as romancal's pipeline tests.
    """
    _require(ds, ("groupdq", "pixeldq"))
    group = ((ds["groupdq"] & np.uint8(GroupFlag.SATURATED)) != 0).all()
    pixel = ((ds["pixeldq"] & np.uint32(PixelFlag.SATURATED)) != 0).all()
    return group | pixel


def is_fully_saturated(ds: xr.Dataset) -> bool:
    """Compute :func:`fully_saturated` (reads ``groupdq`` and ``pixeldq``)."""
    return bool(fully_saturated(ds).values)


#: The name the issue uses for the check.
flag_fully_saturated = is_fully_saturated


def _zeros(template: xr.DataArray, dtype) -> xr.DataArray:
    if template.chunks is not None:
        values = da.zeros(template.shape, dtype=dtype, chunks=template.chunks)
    else:
        values = np.zeros(template.shape, dtype=dtype)
    return xr.DataArray(values, dims=template.dims, coords=template.coords)


def _frame(var: xr.DataArray, dims: tuple[str, ...]) -> xr.DataArray:
    """Relabel a carried full-frame array with the L2 dims (``frame_y``/``frame_x``...)."""
    var = var.reset_coords(drop=True)
    var = var.drop_vars([d for d in var.dims if d in var.coords])
    return xr.DataArray(var.data, dims=dims, attrs=var.attrs)


def saturated_image(ds_ramp: xr.Dataset) -> xr.Dataset:
    """The defined Level-2 image of a fully saturated ramp.

    ``data = err = var_poisson = 0`` (float32), ``dq = pixeldq | groupdq[0] |
    SATURATED`` trimmed to the science area (positions ``[4:-4, 4:-4]``: the ramp must be a
    full frame with its reference border), the carried amp33/border arrays copied, and
    cal_step ``SKIPPED`` for every step after saturation (refpix, dark_decay, wfi18_transient,
    linearity, ramp_fit, dark, assign_wcs, photom, flat_field, source_catalog).
    ``meta.photometry`` gets the -999999 placeholders, ``meta.wcs`` None, ``meta.cal_logs``
    an empty list, ``meta.product_type`` "l2", ``meta.model_type`` "ImageModel".

    Differences from romancal 1.1.0 (documented, asserted by the parity tests): ``dumo`` and
    ``chisq`` are 0 (romancal stores the uniform-weight slope of the saturated resultants as
    ``dumo``, a number without meaning). There is no ``var_rnoise``, as in romancal (and as
    ramp_fit's default).

    Builds a graph only (nothing is computed); the input is not modified. Call it when
    :func:`is_fully_saturated` says so; it does not check.

    Parameters
    ----------
    ds_ramp : xarray.Dataset
        Ramp after saturation: ``data`` (resultant, y, x), ``pixeldq``, ``groupdq``.

    Returns
    -------
    xarray.Dataset
        Level-2 image with dims ``(y, x)`` (absolute coords 4..ny-5) plus the carried arrays
        on ``frame_y``/``frame_x``.
    """
    _require(ds_ramp, ("data", "groupdq", "pixeldq"))
    if ds_ramp["data"].dims != RAMP_DIMS:
        raise ExposureError(f"the ramp's data must have dims {RAMP_DIMS}")
    meta = get_meta(ds_ramp)
    ny, nx = ds_ramp.sizes["y"], ds_ramp.sizes["x"]
    if ny <= 2 * BORDER or nx <= 2 * BORDER:
        raise ExposureError(
            f"the ramp is {ny}x{nx} pixels; a full frame with its {BORDER}-pixel reference "
            "border is needed to build the Level-2 image"
        )
    science = {"y": slice(BORDER, -BORDER), "x": slice(BORDER, -BORDER)}
    pixeldq = ds_ramp["pixeldq"].astype(np.uint32)
    first = ds_ramp["groupdq"].isel(resultant=0, drop=True).astype(np.uint32)
    dq = (pixeldq | first | np.uint32(PixelFlag.SATURATED)).astype(np.uint32)
    dq = dq.transpose("y", "x").isel(science).reset_coords(drop=True)
    template = dq
    variables: dict[str, xr.DataArray] = {"data": _zeros(template, np.float32), "dq": dq}
    for name in ("err", "var_poisson", "chisq", "dumo"):
        variables[name] = _zeros(template, np.float32)

    # carried full-frame arrays: taken from the ramp when dq_init made them, else sliced from
    # the ramp's data/pixeldq exactly as dq_init does
    if "amp33" in ds_ramp:
        variables["amp33"] = _frame(ds_ramp["amp33"], L2_ARRAY_DIMS["amp33"])
    for side, where in _BORDER_SLICES.items():
        for prefix, source in (("border_ref_pix_", "data"), ("dq_border_ref_pix_", "pixeldq")):
            name = prefix + side
            dims = L2_ARRAY_DIMS[name]
            if name in ds_ramp:
                variables[name] = _frame(ds_ramp[name], dims)
            else:
                var = ds_ramp[source].isel(where)
                if source == "data":
                    var = var.astype(np.float32)
                variables[name] = _frame(var, dims)

    out = xr.Dataset(variables)
    coords = {"y": ds_ramp["y"].values[BORDER:-BORDER], "x": ds_ramp["x"].values[BORDER:-BORDER]}
    for dim in ("frame_y", "frame_x"):
        if dim in out.dims:
            coords[dim] = ds_ramp[dim[-1]].values
    for dim in ("ref_col", "ref_row", "amp33_x"):
        if dim in out.dims:
            coords[dim] = np.arange(out.sizes[dim], dtype=np.int64)
    if "resultant" in out.dims:
        resultant_coords = {
            k: v for k, v in ds_ramp.coords.items() if v.dims == ("resultant",) or k == "resultant"
        }
        coords.update(resultant_coords)
    out = out.assign_coords(coords)

    attrs = copy.deepcopy(dict(ds_ramp.attrs))
    new_meta = attrs.setdefault("meta", {})
    new_meta["product_type"] = "l2"
    new_meta["model_type"] = "ImageModel"
    old_steps = meta.get("cal_step") or {}
    cal_step = {key: old_steps.get(key, "INCOMPLETE") for key in CAL_STEP_KEYS}
    cal_step.update(dict.fromkeys(SKIPPED_AFTER_SATURATION, "SKIPPED"))
    new_meta["cal_step"] = cal_step
    new_meta["cal_logs"] = []
    new_meta["photometry"] = {
        "conversion_megajanskys": -999999,
        "conversion_megajanskys_uncertainty": -999999,
        "pixel_area": -999999,
    }
    new_meta.setdefault("wcs", None)
    attrs.setdefault("step_parameters", {})["saturated_exposure"] = {"fully_saturated": True}
    out.attrs = attrs
    return out
