"""Input preparation shared by ``ramp_fit`` and ``jump``: checks, references, chunk alignment."""

from __future__ import annotations

from typing import Any

import xarray as xr

from romanxr.dataset import ReadPatternInfo, validate_exposure
from romanxr.errors import ExposureError, ReferenceNotFoundError
from romanxr.kernels.ramp_likely import likely_fit_block, likely_jump_block
from romanxr.refs import ReferenceResolver, ResolvedReference
from romanxr.schedule import chunk_like
from romanxr.schedule.compile_ahead import wait
from romanxr.steps._common import get_reference

#: ``attrs["step_parameters"]`` key written by the stand-alone jump step.
JUMP_KEY = "jump"
LIKELY_MIN_RESULTANTS = 4
#: No fitter can measure a slope from one resultant.
MIN_RESULTANTS = 2


def likely_fit(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """:func:`~romanxr.kernels.ramp_likely.likely_fit_block`, once a helper compiling it for
    a cold first run is done (:func:`romanxr.schedule.compile_ahead.wait`)."""
    wait("ramp_likely")
    return likely_fit_block(*args, **kwargs)


def likely_jump(*args: Any, **kwargs: Any) -> Any:
    """:func:`~romanxr.kernels.ramp_likely.likely_jump_block`, after the same wait."""
    wait("ramp_likely")
    return likely_jump_block(*args, **kwargs)


def check_ramp(ds: xr.Dataset, step: str) -> ReadPatternInfo:
    """Validate a ramp Dataset for ramp fitting (metadata only, never computes)."""
    info = validate_exposure(ds, level="ramp")
    assert info is not None
    name = (ds.attrs.get("meta") or {}).get("filename") or "the exposure"
    for var in ("groupdq", "pixeldq"):
        if var not in ds:
            raise ExposureError(
                f"{name}: {step} needs the '{var}' variable, which dq_init creates; run "
                "romanxr.steps.dq_init.dq_init (ds.roman.dq_init()) first"
            )
    if len(info) < MIN_RESULTANTS:
        raise ExposureError(
            f"{name}: {step} needs at least {MIN_RESULTANTS} resultants to measure a count "
            f"rate, but meta.exposure.read_pattern has {len(info)}; a single-resultant "
            "exposure cannot be ramp-fitted"
        )
    return info


def check_likely_resultants(info: ReadPatternInfo, step: str, name: str = "the exposure") -> None:
    """The likelihood fit needs >= 4 resultants (3 differences); say what to use instead."""
    if len(info) < LIKELY_MIN_RESULTANTS:
        raise ExposureError(
            f"{name}: {step} with the likelihood algorithm needs at least "
            f"{LIKELY_MIN_RESULTANTS} resultants, but meta.exposure.read_pattern has "
            f"{len(info)}; use algorithm='ols_cas22' for such short ramps"
        )


def ramp_references(
    ds: xr.Dataset,
    override_readnoise: Any,
    override_gain: Any,
    resolver: ReferenceResolver | None,
    step: str,
) -> tuple[list[ResolvedReference], xr.DataArray, xr.DataArray]:
    """Read noise (DN per read) and gain (e-/DN) arrays aligned and chunked like ``ds``."""
    resolved = []
    arrays = []
    for reftype, explicit in (("readnoise", override_readnoise), ("gain", override_gain)):
        res, ref = get_reference(ds, reftype, explicit=explicit, resolver=resolver)
        if ref is None or "data" not in ref:
            raise ReferenceNotFoundError(
                f"{step} needs a {reftype} reference but it resolved to N/A; pass "
                f"override_{reftype}=<file> (or --steps.{step}.override_{reftype}=...)"
            )
        resolved.append(res)
        arrays.append(ref["data"])
    # chunk before casting: on dask input the reference is then read (and cast) chunk by
    # chunk in the workers instead of whole, serially, while the graph is built
    arrays = [chunk_like(a, ds["data"]).astype("float32") for a in arrays]
    return resolved, *arrays  # type: ignore[return-value]


def ramp_variables(ds: xr.Dataset) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """data, groupdq, pixeldq with the resultant dim whole in one chunk."""
    data, gdq, pdq = ds["data"], ds["groupdq"], ds["pixeldq"]
    if data.chunks is not None:
        data = data.chunk({"resultant": -1})
        gdq = gdq.chunk({"resultant": -1, "y": data.chunksizes["y"], "x": data.chunksizes["x"]})
        pdq = pdq.chunk({"y": data.chunksizes["y"], "x": data.chunksizes["x"]})
    return data, gdq, pdq


def jump_step_ran(ds: xr.Dataset) -> bool:
    """Whether the stand-alone jump step already flagged this ramp."""
    params = ds.attrs.get("step_parameters") or {}
    return JUMP_KEY in params
