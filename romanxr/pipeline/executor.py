"""Run a plan: the executor loop of the pipeline.

Step by step (see :class:`romanxr.pipeline.StepRun`): call the step function or record the
skip, record the effective parameters, save an intermediate, and after ``saturation`` stop with
the zeroed image when every pixel is saturated. Every decision was taken by the plan; this loop
only carries them out.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import xarray as xr

from romanxr.pipeline.planning import FOLD, RUN, StepRun
from romanxr.refs import ReferenceResolver
from romanxr.steps import skip_step

__all__ = ["execute"]

log = logging.getLogger("romanxr")

#: what the executor calls to write an intermediate product: ``save(run, ds)``
SaveIntermediate = Callable[[StepRun, xr.Dataset], Any]


def execute(
    runs: Sequence[StepRun],
    ds: xr.Dataset,
    *,
    resolver: ReferenceResolver | None = None,
    save: SaveIntermediate | None = None,
) -> xr.Dataset:
    """Carry out a plan on ``ds`` and return the (lazy) result.

    Parameters
    ----------
    runs : sequence of StepRun
        The plan (:func:`romanxr.pipeline.plan`).
    ds : xarray.Dataset
        The exposure the plan was made for.
    resolver : ReferenceResolver, optional
        Reference resolution for the steps that read references.
    save : callable, optional
        ``save(run, result)`` writes the output of each step planned with ``save=True``.

    Returns
    -------
    xarray.Dataset
        The last step's output (or the zeroed image of a fully saturated exposure), with
        ``attrs["step_parameters"]`` holding the record of every planned step.
    """
    from romanxr.schedule.progress import note_step

    pending: list[StepRun] = []
    start = ds
    for index, run in enumerate(runs):
        if run.action != RUN:
            ds = _pass(run, ds)
            if run.record_after:
                pending.append(run)
            else:
                ds = _record(ds, run.spec.key, run.record)
            continue
        log.info("step %s with %s", run.name, run.arguments or "defaults")
        note_step(run.name)
        twin = _twin_builder(runs[:index], start, resolver) if run.spec.from_twin else None
        ds = run.spec.apply(ds, run.arguments, resolver, twin=twin)
        ran = ds.attrs.get("step_parameters", {}).get(run.spec.key, {})
        ds = _record(ds, run.spec.key, {**run.record, **ran})
        ds, pending = _flush(ds, pending, after=run.name)
        if run.check_saturated and _fully_saturated(ds):
            from romanxr.steps.saturated_exposure import saturated_image

            log.warning("every pixel is saturated: writing the zeroed image")
            ds = _skip_rest(saturated_image(ds), runs[index + 1 :])
            break
        if run.save and save is not None:
            save(run, ds)
    ds, _ = _flush(ds, pending)
    return ds


def _twin_builder(
    before: Sequence[StepRun], start: xr.Dataset, resolver: ReferenceResolver | None
) -> Callable[[], xr.Dataset]:
    """``twin()``: the steps that ran in ``before`` run again on a clone of ``start``.

    The clone gives every earlier step its own task names (refpix its own scratch files),
    and the reference reads anchored on the data follow; so the twin shares no band task
    with the main chain. See ``StepSpec.from_twin``."""

    def twin() -> xr.Dataset:
        from romanxr.schedule.graph import clone

        ds = clone(start)
        for run in before:
            if run.action == RUN:
                ds = run.spec.apply(ds, run.arguments, resolver)
        return ds

    return twin


def _pass(run: StepRun, ds: xr.Dataset) -> xr.Dataset:
    """A step that does not run: SKIPPED in ``meta.cal_step`` (as romancal records it, also
    for flatfield on a spectroscopic exposure), or nothing for a folded step."""
    if run.action == FOLD:
        log.debug("step %s %s", run.name, run.reason)
        return ds
    log.info("step %s skipped: %s", run.name, run.reason or "skip is set")
    return skip_step(ds, run.spec.cal_step, "SKIPPED") if run.spec.cal_step else ds


def _skip_rest(ds: xr.Dataset, rest: Sequence[StepRun]) -> xr.Dataset:
    """After the saturated exit every later step is SKIPPED in ``meta.cal_step``,
    source_catalog and tweakreg included (romancal records both SKIPPED for a saturated
    exposure; its zeroed image alone leaves tweakreg INCOMPLETE)."""
    for run in rest:
        if run.spec.cal_step:
            ds = skip_step(ds, run.spec.cal_step, "SKIPPED")
    return ds


def _flush(
    ds: xr.Dataset, pending: list[StepRun], after: str | None = None
) -> tuple[xr.Dataset, list[StepRun]]:
    """Write the deferred records waiting for step ``after`` (all of them when None)."""
    left = []
    for run in pending:
        if after is None or run.record_after == after:
            ds = _record(ds, run.spec.key, run.record)
        else:
            left.append(run)
    return ds, left


def _fully_saturated(ds: xr.Dataset) -> bool:
    from romanxr.steps.saturated_exposure import is_fully_saturated

    # a few rows settle it for almost every exposure (one unsaturated pixel is enough), so
    # the whole ramp is only read here when those rows are saturated
    sample = ds.isel(y=slice(0, min(ds.sizes["y"], 8)))
    return is_fully_saturated(sample) and is_fully_saturated(ds)


def _record(ds: xr.Dataset, key: str, parameters: Mapping[str, Any]) -> xr.Dataset:
    """A shallow copy of ``ds`` whose ``step_parameters[key]`` is ``parameters``."""
    attrs = dict(ds.attrs)
    records = copy.deepcopy(dict(attrs.get("step_parameters") or {}))
    records[key] = dict(parameters)
    attrs["step_parameters"] = records
    out = ds.copy(deep=False)
    out.attrs = attrs
    return out
