"""dark_current: subtract the dark-current rate from a Level-2 slope image."""

from __future__ import annotations

import numpy as np
import xarray as xr

from romanxr.dataset import validate_exposure
from romanxr.dq import PixelFlag
from romanxr.refs import ReferenceResolver
from romanxr.schedule import chunk_like
from romanxr.steps._common import finish_step, get_reference

__all__ = ["dark_current"]

STEP = "dark"


def dark_current(
    ds: xr.Dataset,
    *,
    override_dark: str | None = None,
    resolver: ReferenceResolver | None = None,
) -> xr.Dataset:
    """Subtract the dark rate from the slope image.

    ``data -= dark_slope`` and ``dq |= dark.dq`` at the image's pixels. The DARK reference is
    full frame (4096x4096, coords 0..4095); the image's absolute ``y``/``x`` coordinates
    (4..4091 on a full frame) select its science pixels, which is romancal's
    ``[4:-4, 4:-4]`` trim. ``err``, ``var_poisson``, ``var_rnoise`` are unchanged (the dark
    uncertainty is deliberately not propagated, as in romancal) and so is ``dumo`` (a
    difference of two slopes, so the dark cancels).

    Difference from romancal 1.1.0: where ``dark_slope`` is NaN, romanxr subtracts 0 and sets
    ``UNRELIABLE_DARK`` in ``dq`` (the documentation's intent); romancal subtracts the NaN,
    making the pixel's data NaN.

    Parameters
    ----------
    ds : xarray.Dataset
        Level-2 image (dims ``(y, x)``), data in DN/s.
    override_dark : path, optional
        DARK reference to use instead of CRDS.
    resolver : ReferenceResolver, optional
        Reference resolution (overrides, CRDS context).

    Returns
    -------
    xarray.Dataset
        New Dataset (input untouched, nothing computed); cal_step ``dark`` = COMPLETE, or
        SKIPPED when the reference resolves to N/A. DQ bits touched: the reference's dq bits,
        ``UNRELIABLE_DARK``.

    Raises
    ------
    ReferenceMismatchError
        If the reference does not cover the image's pixels.
    """
    validate_exposure(ds, level="image")
    resolved, ref = get_reference(ds, "dark", explicit=override_dark, resolver=resolver)
    if ref is None:
        return finish_step(ds, ds, STEP, "SKIPPED", parameters={}, references=[resolved])
    data = ds["data"]
    dark = chunk_like(ref["dark_slope"], data)
    dark_dq = chunk_like(ref["dq"], data).astype(np.uint32)
    missing = np.isnan(dark)
    flags = dark_dq | xr.where(missing, np.uint32(PixelFlag.UNRELIABLE_DARK), np.uint32(0))
    dark = xr.where(missing, np.float32(0), dark).astype(data.dtype)

    out = ds.copy(deep=False)
    out["data"] = (data - dark).astype(data.dtype).assign_attrs(data.attrs)
    dq = ds["dq"] if "dq" in ds else xr.zeros_like(data, dtype=np.uint32)
    out["dq"] = (dq | flags.astype(np.uint32)).astype(np.uint32).assign_attrs(dq.attrs)
    return finish_step(out, ds, STEP, "COMPLETE", parameters={}, references=[resolved])
