"""A readable summary of an exposure Dataset: ``ds.roman.summary()`` and ``ds.roman`` in Jupyter.

It answers the questions an astronomer asks first: which exposure, detector and filter; which
MA table; is it a ramp or an image, lazy or in memory; which calibration steps ran, with which
reference files and parameters.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import xarray as xr

from romanxr.registry import find_step

__all__ = ["ExposureSummary", "StepRecord", "summarize"]


@dataclass(frozen=True)
class StepRecord:
    """One ``meta.cal_step`` entry with its references and parameters.

    Attributes
    ----------
    step : str
        The ``meta.cal_step`` key (``dq_init``, ``dark``, ``flat_field``...).
    status : str
        ``COMPLETE``, ``SKIPPED``, ``N/A`` or ``INCOMPLETE``.
    references : dict
        reftype -> file name from ``meta.ref_file``.
    parameters : dict
        What the step ran with (``attrs["step_parameters"]``).
    """

    step: str
    status: str
    references: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExposureSummary:
    """What an exposure Dataset holds; prints as text and renders as HTML in Jupyter.

    Attributes
    ----------
    file : str or None
        The file it was opened from.
    level : str
        ``"ramp"`` (dims resultant, y, x) or ``"image"`` (y, x).
    shape : dict
        Sizes of the ``data`` dims.
    lazy : bool
        Whether ``data`` is a dask array (nothing read yet).
    exposure, detector, optical_element : str
        ``meta.exposure.type``, ``meta.instrument.detector``, ``meta.instrument.optical_element``.
    start_time : str
        ``meta.exposure.start_time``.
    ma_table : str
        MA table name and number.
    read_pattern : list of list of int
        Reads averaged into each resultant.
    exposure_time : float or None
        ``meta.exposure.exposure_time`` (s).
    steps : list of StepRecord
        Every ``meta.cal_step`` entry that is not INCOMPLETE, in file order.
    crds_context : str or None
        ``meta.ref_file.crds.context`` when known.
    """

    file: str | None
    level: str
    shape: dict[str, int]
    lazy: bool
    exposure: str
    detector: str
    optical_element: str
    start_time: str
    ma_table: str
    read_pattern: list[list[int]]
    exposure_time: float | None
    steps: list[StepRecord]
    crds_context: str | None = None

    def rows(self) -> list[tuple[str, str]]:
        """The header lines as (label, value) pairs."""
        shape = " x ".join(f"{k}={v}" for k, v in self.shape.items())
        pattern = _pattern_text(self.read_pattern)
        rows = [
            ("file", self.file or "(in memory)"),
            ("level", f"{self.level} ({shape}; {'lazy, dask' if self.lazy else 'in memory'})"),
            ("exposure", f"{self.exposure}, start {self.start_time}"),
            ("detector", self.detector),
            ("filter", self.optical_element),
            ("MA table", f"{self.ma_table}: {len(self.read_pattern)} resultants {pattern}"),
        ]
        if self.exposure_time is not None:
            rows.append(("exposure time", f"{self.exposure_time:.2f} s"))
        if self.crds_context:
            rows.append(("CRDS context", self.crds_context))
        return rows

    def __str__(self) -> str:
        lines = [f"{label + ':':15s}{value}" for label, value in self.rows()]
        if self.steps:
            lines.append("steps:")
            for s in self.steps:
                refs = ", ".join(s.references.values())
                params = _params_text(s.parameters)
                text = f"  {s.step:16s}{s.status:10s}{refs}"
                if params:
                    text += f"  ({params})"
                lines.append(text.rstrip())
        else:
            lines.append("steps:         none run yet (a Level-1 exposure)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(
            f"<tr><th style='text-align:left'>{esc(k)}</th><td style='text-align:left'>"
            f"{esc(v)}</td></tr>"
            for k, v in self.rows()
        )
        body = "".join(
            f"<tr><td style='text-align:left'>{esc(s.step)}</td>"
            f"<td style='text-align:left'>{esc(s.status)}</td>"
            f"<td style='text-align:left'>{esc(', '.join(s.references.values()))}</td>"
            f"<td style='text-align:left'><code>{esc(_params_text(s.parameters))}</code></td></tr>"
            for s in self.steps
        )
        steps = (
            "<table><tr><th>step</th><th>status</th><th>reference files</th>"
            f"<th>parameters</th></tr>{body}</table>"
            if self.steps
            else "<p>No calibration step has run yet (a Level-1 exposure).</p>"
        )
        return (
            "<div class='romanxr-summary'><strong>Roman WFI exposure</strong>"
            f"<table>{head}</table>{steps}</div>"
        )


def _pattern_text(pattern: list[list[int]], limit: int = 8) -> str:
    parts = [f"[{r[0]}]" if len(r) == 1 else f"[{r[0]}..{r[-1]}]" if r else "[]" for r in pattern]
    if len(parts) > limit:
        parts = [*parts[: limit - 1], "...", parts[-1]]
    return " ".join(parts)


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


def summarize(ds: xr.Dataset) -> ExposureSummary:
    """Summarise an exposure Dataset (reads only metadata; never computes pixels).

    Parameters
    ----------
    ds : xarray.Dataset
        A ramp or image Dataset made by romanxr.

    Returns
    -------
    ExposureSummary
        ``print()`` it, or let Jupyter render it as a table.
    """
    meta = ds.attrs.get("meta", {}) or {}
    exposure = meta.get("exposure", {}) or {}
    instrument = meta.get("instrument", {}) or {}
    ref_file = meta.get("ref_file", {}) or {}
    data = ds["data"] if "data" in ds else None
    context = (ref_file.get("crds", {}) or {}).get("context")
    exposure_time = exposure.get("exposure_time")
    return ExposureSummary(
        file=ds.encoding.get("source") or meta.get("filename"),
        level="ramp" if data is not None and "resultant" in data.dims else "image",
        shape=dict(data.sizes) if data is not None else dict(ds.sizes),
        lazy=bool(data is not None and data.chunks is not None),
        exposure=str(exposure.get("type", "?")),
        detector=str(instrument.get("detector", "?")),
        optical_element=str(instrument.get("optical_element", "?")),
        start_time=str(exposure.get("start_time", "?")),
        ma_table=_ma_table(exposure),
        read_pattern=[list(map(int, r)) for r in exposure.get("read_pattern", []) or []],
        exposure_time=float(exposure_time) if exposure_time is not None else None,
        steps=_step_records(meta, ds.attrs.get("step_parameters", {}) or {}),
        crds_context=None if context in (None, "?") else str(context),
    )


def _ma_table(exposure: dict[str, Any]) -> str:
    name = exposure.get("ma_table_name", "?")
    number = exposure.get("ma_table_number")
    return f"{name} (#{number})" if number is not None else str(name)


def _step_records(meta: dict[str, Any], params: dict[str, Any]) -> list[StepRecord]:
    """One record per ``meta.cal_step`` entry that ran or was decided (not a bare INCOMPLETE),
    with the reference files of the steps that completed, then romanxr's jump step (which has
    no cal_step key)."""
    ref_file = meta.get("ref_file", {}) or {}
    steps = []
    for key, status in (meta.get("cal_step", {}) or {}).items():
        status = str(status)
        if status == "INCOMPLETE" and key not in params:
            continue
        spec = find_step(key)
        reftypes = spec.reftypes if spec is not None and status == "COMPLETE" else ()
        refs = {
            r: str(ref_file[r])
            for r in reftypes
            if r in ref_file and str(ref_file[r]) not in ("?", "N/A")
        }
        steps.append(StepRecord(key, status, refs, dict(params.get(key, {}) or {})))
    if "jump" in params:  # romanxr's jump step has no cal_step key
        steps.append(StepRecord("jump", "COMPLETE", {}, dict(params["jump"])))
    return steps
