"""``romanxr info``: what a Roman file holds (uncal, ramp intermediate, cal), from metadata."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from romanxr.cli.options import Command, add_verbose

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="the file")
    add_verbose(p)


def _kind(ds: xr.Dataset) -> str:
    dims = ds["data"].dims if "data" in ds else ()
    if "resultant" not in dims:
        return "image (Level 2)"
    return "ramp (Level 1 uncal)" if "groupdq" not in ds else "ramp (calibrated intermediate)"


def _exposure_lines(meta: dict[str, Any]) -> list[str]:
    exposure = meta.get("exposure", {})
    instrument = meta.get("instrument", {})
    pattern = exposure.get("read_pattern")
    nres = len(pattern) if pattern is not None else "?"
    return [
        f"detector:    {instrument.get('detector', '?')}  optical element "
        f"{instrument.get('optical_element', '?')}",
        f"exposure:    {exposure.get('type', '?')}  start {exposure.get('start_time', '?')}",
        f"MA table:    {exposure.get('ma_table_name', '?')} "
        f"(number {exposure.get('ma_table_number', '?')}), {nres} resultants, frame_time "
        f"{exposure.get('frame_time', '?')} s",
    ]


def _provenance_lines(ds: xr.Dataset) -> list[str]:
    meta = ds.attrs.get("meta", {})
    lines = []
    cal_step = meta.get("cal_step") or {}
    if cal_step:
        lines.append("cal_step:    " + ", ".join(f"{k}={v}" for k, v in cal_step.items()))
    ref_file = {
        k: v
        for k, v in (meta.get("ref_file") or {}).items()
        if isinstance(v, str) and v not in {"?", "N/A", ""}
    }
    if ref_file:
        lines.append("ref_file:    " + ", ".join(f"{k}={v}" for k, v in ref_file.items()))
    context = ((meta.get("ref_file") or {}).get("crds") or {}).get("context")
    if context:
        lines.append(f"crds:        {context}")
    params = ds.attrs.get("step_parameters") or {}
    lines += [f"parameters:  {step}: {values}" for step, values in params.items()]
    return lines


def run(args: argparse.Namespace, step_options: dict[str, dict[str, Any]]) -> int:
    from romanxr.pipeline import open_exposure

    ds = open_exposure(args.input, chunks=None)
    meta = ds.attrs.get("meta", {})
    print(f"file:        {args.input}")
    print(f"product:     {_kind(ds)}  model_type {meta.get('model_type', '?')}")
    for line in _exposure_lines(meta):
        print(line)
    sizes = ", ".join(f"{d}={n}" for d, n in ds.sizes.items())
    print(f"dims:        {sizes}")
    for name, var in ds.data_vars.items():
        print(f"  {name:22s} {var.dtype!s:8s} {var.dims}")
    for line in _provenance_lines(ds):
        print(line)
    return 0


COMMAND = Command(
    name="info",
    help="summarize a Roman file (uncal, ramp intermediate, cal)",
    add_arguments=add_arguments,
    run=run,
)
