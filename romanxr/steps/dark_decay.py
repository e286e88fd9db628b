"""dark_decay step: subtract the decaying dark signal after a reset."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from romanxr.dataset import get_meta, validate_exposure
from romanxr.errors import ExposureError, ReferenceMismatchError
from romanxr.kernels.dark_decay import (
    dark_decay_factors,
    resultant_weights,
    subtract_dark_decay,
)
from romanxr.refs import ReferenceResolver
from romanxr.steps._common import apply_kernel, finish_step, get_reference

__all__ = ["dark_decay", "detector_number"]

STEP = "dark_decay"


def detector_number(ds: xr.Dataset) -> tuple[str, int]:
    """``("WFInn", nn)`` from ``meta.instrument.detector``; ExposureError if missing or odd."""
    detector = get_meta(ds).get("instrument", {}).get("detector")
    if not isinstance(detector, str) or not detector.upper().startswith("WFI"):
        raise ExposureError(
            f"meta.instrument.detector must be 'WFI01'..'WFI18', got {detector!r}; "
            "set it in attrs['meta']['instrument']['detector']"
        )
    try:
        sca = int(detector[3:])
    except ValueError as exc:
        raise ExposureError(
            f"meta.instrument.detector must be 'WFI01'..'WFI18', got {detector!r}"
        ) from exc
    if not 1 <= sca <= 18:
        raise ExposureError(f"meta.instrument.detector must be 'WFI01'..'WFI18', got {detector!r}")
    return detector.upper(), sca


def _decay_entry(ref: xr.Dataset, detector: str, name: str) -> tuple[float, float]:
    table = ref.attrs.get("decay_table") or {}
    entry = table.get(detector)
    amplitude = entry.get("amplitude") if isinstance(entry, dict) else None
    tau = entry.get("time_constant") if isinstance(entry, dict) else None
    if amplitude is None or tau is None:
        raise ReferenceMismatchError(
            f"{name}: darkdecaysignal decay_table has no amplitude/time_constant for {detector}; "
            "use a reference that covers this detector (override_darkdecaysignal=...)"
        )
    if not float(tau) > 0:
        raise ReferenceMismatchError(
            f"{name}: darkdecaysignal decay_table.{detector}.time_constant must be > 0 s, got {tau}"
        )
    return float(amplitude), float(tau)


def dark_decay(
    ds: xr.Dataset,
    *,
    override_darkdecaysignal: Any = None,
    resolver: ReferenceResolver | None = None,
) -> xr.Dataset:
    """Subtract the dark-decay signal from every resultant.

    For resultant ``i`` with reads ``k`` (1-based),
    ``data[i] -= mean_k A * exp(-T(ft, sca, k - 1.5) / tau)`` with the pixel read-time map ``T``
    of :mod:`romanxr.kernels.timing`, evaluated at the Dataset's absolute ``y``/``x`` so cut-outs
    get the full-frame geometry. ``A`` (DN) and ``tau`` (s) come from the DARKDECAYSIGNAL
    reference's ``decay_table.WFInn``. No DQ or variance change. Lazy (per ``(y, x)`` chunk).

    Parameters
    ----------
    ds : xarray.Dataset
        Ramp with float32 ``data`` (resultant, y, x).
    override_darkdecaysignal : path, optional
        Use this reference instead of resolving one.
    resolver : ReferenceResolver, optional
        Overrides/CRDS settings for reference resolution.

    Returns
    -------
    xarray.Dataset
        New Dataset; ``meta.cal_step.dark_decay = "COMPLETE"``. When the reference resolves to
        N/A the data pass through unchanged and the step is recorded ``SKIPPED`` (romancal would
        fail here).

    Raises
    ------
    ReferenceMismatchError
        The reference has no usable entry for this detector.
    """
    info = validate_exposure(ds)  # dims, dtypes and read_pattern before anything else
    detector, sca = detector_number(ds)
    resolved, ref = get_reference(
        ds, "darkdecaysignal", explicit=override_darkdecaysignal, resolver=resolver
    )
    if ref is None:
        return finish_step(ds, ds, STEP, "SKIPPED", parameters={}, references=[resolved])
    amplitude, tau = _decay_entry(ref, detector, resolved.name)
    weights = resultant_weights(info.read_pattern, info.frame_time, tau)
    e_row, e_col = dark_decay_factors(
        info.frame_time, sca, amplitude, tau, ds["y"].values, ds["x"].values
    )
    row = xr.DataArray(e_row, dims=("y",), coords={"y": ds["y"]})
    col = xr.DataArray(e_col, dims=("x",), coords={"x": ds["x"]})
    data = ds["data"]
    if data.chunks is not None:
        chunks = dict(zip(data.dims, data.chunks, strict=True))
        row = row.chunk({"y": chunks["y"]})
        col = col.chunk({"x": chunks["x"]})
    (corrected,) = apply_kernel(
        lambda d, r, c: subtract_dark_decay(d, np.ravel(r), np.ravel(c), weights),
        [data, row, col],
        output_dims=[data.dims],
        output_dtypes=[data.dtype],
    )
    out = ds.copy(deep=False)
    out["data"] = corrected.assign_attrs(data.attrs)
    params = {"amplitude": amplitude, "time_constant": tau, "sca": sca}
    return finish_step(out, ds, STEP, "COMPLETE", parameters=params, references=[resolved])
