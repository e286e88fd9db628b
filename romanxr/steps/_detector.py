"""Helpers shared by the detector-level steps (dq_init, saturation, linearity)."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from romanxr.errors import ExposureError
from romanxr.refs import ReferenceResolver, ResolvedReference
from romanxr.steps._common import get_reference

__all__ = ["require_ramp", "resolve"]


def require_ramp(ds: xr.Dataset, step: str) -> None:
    missing = [v for v in ("pixeldq", "groupdq") if v not in ds]
    if missing or ds["data"].dtype != np.float32:
        raise ExposureError(
            f"{step} needs a ramp (float32 data with pixeldq and groupdq); this Dataset lacks "
            f"{missing or 'float32 data'}: run romanxr.steps.dq_init.dq_init (ds.roman.dq_init()) "
            "first"
        )


def resolve(ds: xr.Dataset, reftype: str, explicit: Any, resolver: ReferenceResolver | None):
    """``get_reference``, also accepting the string "N/A" as an explicit "no reference"."""
    if isinstance(explicit, str) and explicit.strip().upper() == "N/A":
        return ResolvedReference(reftype, None, "argument"), None
    return get_reference(ds, reftype, explicit=explicit, resolver=resolver)
