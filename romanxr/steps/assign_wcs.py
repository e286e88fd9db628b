"""assign_wcs: attach a gwcs (pixel -> V2/V3 -> DVA-corrected V2/V3 -> ICRS) to an image."""

from __future__ import annotations

import xarray as xr

from romanxr.dataset import validate_exposure
from romanxr.errors import ReferenceFileError
from romanxr.refs import ReferenceResolver
from romanxr.steps._common import finish_step, get_reference
from romanxr.wcs import build_wcs, s_region, science_offset

__all__ = ["assign_wcs"]

STEP = "assign_wcs"


def assign_wcs(
    ds: xr.Dataset,
    *,
    override_distortion: str | None = None,
    resolver: ReferenceResolver | None = None,
) -> xr.Dataset:
    """Attach the world coordinate system of a Level-2 image.

    Metadata only: no pixel values are read or changed, nothing is computed.

    Parameters
    ----------
    ds : xarray.Dataset
        Level-2 image, dims ``(y, x)``. Reads ``meta.wcsinfo.{v2_ref, v3_ref, roll_ref,
        ra_ref, dec_ref}`` and ``meta.velocity_aberration.scale_factor``.
    override_distortion : path, optional
        DISTORTION reference to use instead of CRDS.
    resolver : ReferenceResolver, optional
        Reference resolution (overrides, CRDS context).

    Returns
    -------
    xarray.Dataset
        Same arrays; ``meta.wcs`` = a :class:`gwcs.WCS` with frames ``detector``, ``v2v3``,
        ``v2v3vacorr``, ``world`` whose input is the **array index** (column, row) of ``ds``:
        for a full-frame image (``x``/``y`` coords starting at 4) that is the science-area
        pixel the distortion reference is written for, i.e. ``absolute coordinate - 4``; a
        cut-out gets a leading shift (see :mod:`romanxr.wcs`). ``meta.wcsinfo.s_region`` is
        updated from the bounding-box corners unless a corner is NaN. cal_step
        ``assign_wcs`` = COMPLETE, or SKIPPED when the distortion resolves to N/A.
        Sky coordinates per pixel: :func:`romanxr.wcs.world_coords`.

    Raises
    ------
    ExposureError
        Pointing metadata missing or placeholder (-999999), or non-contiguous pixel coords.
    ReferenceFileError
        Distortion reference missing, or without ``coordinate_distortion_transform``.
    """
    validate_exposure(ds, level="image")
    resolved, ref = get_reference(
        ds, "distortion", explicit=override_distortion, resolver=resolver, align=False
    )
    parameters: dict = {}
    if ref is None:
        return finish_step(ds, ds, STEP, "SKIPPED", parameters=parameters, references=[resolved])
    transform = ref.attrs.get("coordinate_distortion_transform")
    if transform is None or not hasattr(transform, "n_inputs"):
        raise ReferenceFileError(
            f"{resolved.name}: distortion reference has no coordinate_distortion_transform "
            "model; pass a valid DISTORTION reference as override_distortion"
        )
    meta = ds.attrs["meta"]
    shape = (ds.sizes["y"], ds.sizes["x"])
    wcs = build_wcs(transform, meta, shape, offset=science_offset(ds))
    out = finish_step(ds, ds, STEP, "COMPLETE", parameters=parameters, references=[resolved])
    out_meta = out.attrs["meta"]
    out_meta["wcs"] = wcs
    region = s_region(wcs)
    if region is not None:
        wcsinfo = out_meta.setdefault("wcsinfo", {})
        wcsinfo["s_region"] = region
    return out
