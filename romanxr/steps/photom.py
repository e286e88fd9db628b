"""photom: record the photometric calibration of a Level-2 image in its metadata."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from romanxr.dataset import validate_exposure
from romanxr.errors import ReferenceFileError, RomanxrWarning
from romanxr.refs import ReferenceResolver
from romanxr.steps._common import finish_step, get_reference

__all__ = ["NoPhotometryWarning", "photom"]

STEP = "photom"

#: meta.photometry key -> phot_table entry key
_KEYS = {
    "conversion_megajanskys": "photmjsr",
    "conversion_megajanskys_uncertainty": "uncertainty",
    "pixel_area": "pixelareasr",
}


class NoPhotometryWarning(RomanxrWarning):
    """The PHOTOM reference has no entry for the exposure's optical element."""


def _scalar(value: Any) -> float | None:
    if value is None:
        return None
    value = getattr(value, "value", value)  # an astropy Quantity, should a table carry units
    return float(np.asarray(value).item())


def photom(
    ds: xr.Dataset,
    *,
    override_photom: str | None = None,
    resolver: ReferenceResolver | None = None,
) -> xr.Dataset:
    """Copy the photometric conversion for the optical element into ``meta.photometry``.

    Metadata only, as in romancal's photom step: from ``phot_table[optical_element.upper()]`` of the
    PHOTOM reference, ``conversion_megajanskys = photmjsr`` ((MJy/sr)/(DN/s)),
    ``conversion_megajanskys_uncertainty = uncertainty`` and ``pixel_area = pixelareasr`` (sr);
    the table's nulls (spectral elements, DARK) become ``None``. The data are **not** scaled:
    the image stays in DN/s. Runs for every exposure type.

    Parameters
    ----------
    ds : xarray.Dataset
        Level-2 image; reads ``meta.instrument.optical_element``.
    override_photom : path, optional
        PHOTOM reference to use instead of CRDS.
    resolver : ReferenceResolver, optional
        Reference resolution (overrides, CRDS context).

    Returns
    -------
    xarray.Dataset
        Same arrays (nothing computed), new attrs; cal_step ``photom`` = COMPLETE, or SKIPPED
        when the reference resolves to N/A.

    Warns
    -----
    NoPhotometryWarning
        The table has no entry for the optical element: ``meta.photometry`` is left as it is
        and cal_step is still COMPLETE (as romancal does).
    """
    validate_exposure(ds, level="image")
    resolved, ref = get_reference(
        ds, "photom", explicit=override_photom, resolver=resolver, align=False
    )
    if ref is None:
        return finish_step(ds, ds, STEP, "SKIPPED", parameters={}, references=[resolved])
    table = ref.attrs.get("phot_table")
    if not isinstance(table, dict):
        raise ReferenceFileError(
            f"{resolved.name}: photom reference has no phot_table; pass a valid "
            "WfiImgPhotomRefModel file as override_photom"
        )
    element = str((ds.attrs["meta"].get("instrument") or {}).get("optical_element", ""))
    out = finish_step(ds, ds, STEP, "COMPLETE", parameters={}, references=[resolved])
    entry = table.get(element.upper())
    if entry is None:
        warnings.warn(
            f"{resolved.name}: phot_table has no entry for optical element {element!r} "
            f"(entries: {', '.join(sorted(table))}); meta.photometry left unchanged",
            NoPhotometryWarning,
            stacklevel=2,
        )
        return out
    photometry = out.attrs["meta"].setdefault("photometry", {})
    for meta_key, table_key in _KEYS.items():
        photometry[meta_key] = _scalar(entry.get(table_key))
    return out
