"""flatfield: divide a Level-2 image by the pixel flat (the last ELP calibration step)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from romanxr.dataset import is_imaging, validate_exposure
from romanxr.dq import PixelFlag
from romanxr.refs import ReferenceResolver, align_to_exposure
from romanxr.schedule import chunk_like
from romanxr.steps._common import finish_step, get_reference

__all__ = ["flatfield"]

STEP = "flat_field"


def flatfield(
    ds: xr.Dataset,
    *,
    include_var_flat: bool = False,
    override_flat: str | None = None,
    resolver: ReferenceResolver | None = None,
) -> xr.Dataset:
    """Flat-field a Level-2 image.

    Where the flat is NaN or 0, or its dq has ``NO_FLAT_FIELD``, the flat is taken as 1 and
    ``NO_FLAT_FIELD`` goes to ``dq``. Then ``data /= flat``, ``dumo /= flat``,
    ``var_poisson /= flat**2``, ``var_rnoise /= flat**2`` (when present), ``err /= flat``,
    ``dq |= flat dq``. With ``include_var_flat``: ``var_flat = data_new**2 * flat_err**2 /
    flat**2`` and ``err = sqrt(err**2 + var_flat)``.

    Only exposure types WFI_IMAGE, WFI_LOLO and WFI_WFSC are flat-fielded; for the others
    (spectral, darks, flats) the step records ``SKIPPED`` without reading a reference, as
    romancal's exposure pipeline does.

    Differences from romancal 1.1.0: a flat whose shape is not the detector's science area (or
    the image's own, or does not cover the image's pixels: the rule of every reference, see
    :func:`romanxr.refs.align_to_exposure`) raises :class:`ReferenceMismatchError`; romancal
    logs a warning and records SKIPPED. A flat covering the full 4088x4088 science area serves
    any cut-out of it (pixels are matched by coordinate; the flat's coords start at 4). Flat
    values that are NaN, 0, +inf, -inf or negative are flagged ``NO_FLAT_FIELD`` and not
    applied (divisor 1); romancal flags only NaN and 0, and divides by the others (giving 0,
    or a negative flux).

    Parameters
    ----------
    ds : xarray.Dataset
        Level-2 image (dims ``(y, x)``).
    include_var_flat : bool
        Compute ``var_flat`` from the flat's ``err`` and add it to ``err``.
    override_flat : path, optional
        FLAT reference to use instead of CRDS.
    resolver : ReferenceResolver, optional
        Reference resolution (overrides, CRDS context).

    Returns
    -------
    xarray.Dataset
        New Dataset (input untouched, nothing computed); cal_step ``flat_field`` = COMPLETE,
        or SKIPPED (non-imaging exposure, or the flat resolves to N/A). DQ bits touched: the
        flat's dq bits, ``NO_FLAT_FIELD``.
    """
    validate_exposure(ds, level="image")
    parameters = {"include_var_flat": bool(include_var_flat)}
    if not is_imaging(ds):
        return finish_step(ds, ds, STEP, "SKIPPED", parameters=parameters)
    resolved, ref = get_reference(
        ds, "flat", explicit=override_flat, resolver=resolver, align=False
    )
    if ref is None:
        return finish_step(ds, ds, STEP, "SKIPPED", parameters=parameters, references=[resolved])
    ref = align_to_exposure(ref, ds, resolved)  # the shape rule of every reference

    data = ds["data"]
    flat = chunk_like(ref["data"], data).astype(np.float32)
    flat_dq = chunk_like(ref["dq"], data).astype(np.uint32)
    no_flat = np.uint32(PixelFlag.NO_FLAT_FIELD)
    # NaN, 0, +-inf and negative flat values cannot be divided by (romancal 1.1.0: NaN, 0)
    invalid = ~np.isfinite(flat) | (flat <= 0)
    flat_dq = (flat_dq | xr.where(invalid, no_flat, np.uint32(0))).astype(np.uint32)
    flat = xr.where((flat_dq & no_flat) != 0, np.float32(1), flat).astype(np.float32)
    flat2 = flat * flat

    def scaled(name: str, divisor: xr.DataArray) -> xr.DataArray:
        # float16 arrays read from a cal file are promoted: float16 is a storage format only
        var = ds[name]
        dtype = np.result_type(var.dtype, np.float32)
        return (var.astype(dtype) / divisor).astype(dtype).assign_attrs(var.attrs)

    out = ds.copy(deep=False)
    out["data"] = scaled("data", flat)
    if "dumo" in ds:
        out["dumo"] = scaled("dumo", flat)
    out["var_poisson"] = scaled("var_poisson", flat2)
    if "var_rnoise" in ds:
        out["var_rnoise"] = scaled("var_rnoise", flat2)
    err = scaled("err", flat)
    if include_var_flat:
        flat_err = chunk_like(ref["err"], data).astype(np.float32)
        var_flat = (out["data"] ** 2 * flat_err**2 / flat2).astype(err.dtype)
        out["var_flat"] = var_flat.assign_attrs(ds["var_poisson"].attrs)
        err = np.sqrt(err**2 + var_flat).astype(err.dtype).assign_attrs(ds["err"].attrs)
    out["err"] = err
    dq = ds["dq"]
    out["dq"] = (dq | flat_dq).astype(np.uint32).assign_attrs(dq.attrs)
    return finish_step(out, ds, STEP, "COMPLETE", parameters=parameters, references=[resolved])
