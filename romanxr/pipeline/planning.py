"""The plan of a pipeline run: which steps run, with which parameters, and what else happens.

:func:`plan` is pure: from the resolved step options and the exposure's metadata (its level,
ramp or image, and its exposure type; no pixel is read) it decides, step by step, whether the
step runs or is skipped and why, the keyword arguments it gets, the parameters recorded for it,
whether its output is saved, and where the saturated-exposure check happens. Every decision is
in the returned list of :class:`StepRun`, so ``romanxr calibrate --dry-run`` and ``romanxr refs``
print exactly what :func:`romanxr.pipeline.execute` then does.

The plan is built in three passes:

1. every selected step on its own (:func:`_decide`): run, or skip (``skip=True``, or an
   imaging-only step on another exposure type);
2. rewrites: the ``jump`` search folds into ``ramp_fit`` (:func:`fold_jump`); the optional
   steps (source_catalog, tweakreg) that run by default but lack what they need (their
   references, a local ``abs_refcat``) are skipped (:func:`settle_optional`);
3. checks that the steps fit the data (an image step needs an image), and the saturated exit.

Asking where the references of the optional steps are is the one look-up the plan does (CRDS
or the overrides; no reference file is read).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import xarray as xr

from romanxr.dataset import exposure_type
from romanxr.errors import ConfigError, InputError, ReferenceFileError
from romanxr.pipeline.options import effective_parameters
from romanxr.refs import ReferenceResolver, ResolvedReference
from romanxr.registry import STEPS, StepSpec, get_step

log = logging.getLogger("romanxr")

__all__ = [
    "FOLD",
    "RUN",
    "SKIP",
    "PlannedReference",
    "StepRun",
    "fold_jump",
    "optional_skip_reason",
    "plan",
    "references_of",
    "settle_optional",
]

#: :attr:`StepRun.action` values
RUN, SKIP, FOLD = "run", "skip", "fold"

#: after this step the pipeline checks whether every pixel is saturated
SATURATION_CHECK_AFTER = "saturation"


@dataclass(frozen=True)
class StepRun:
    """One step of a planned run.

    Attributes
    ----------
    spec : StepSpec
        The step.
    action : {"run", "skip", "fold"}
        ``run``: call the step function. ``skip``: pass the data on, with ``meta.cal_step``
        SKIPPED when the step has a cal_step key. ``fold``: the step's work is done by a later
        step (the jump search inside ``ramp_fit``).
    reason : str
        Why the step is skipped or folded (empty when it runs).
    arguments : dict
        The keyword arguments the step function gets (besides ``resolver``).
    record : dict
        Its effective parameters, defaults included, recorded in
        ``attrs["step_parameters"][spec.key]`` (the step may add what it decided at run time).
    record_after : str or None
        Record the parameters only once this step has run (a ``jump`` record tells
        ``ramp_fit`` the search already ran), or at the end if it does not run.
    save : bool
        Also write the step's output (an intermediate product, named by ``spec.suffix``).
    check_saturated : bool
        After the step, stop with the zeroed image if every pixel is saturated.
    requested : bool
        The user asked for the step by name (see :func:`romanxr.pipeline.requested_steps`):
        an optional step that cannot run then fails instead of being skipped.
    """

    spec: StepSpec
    action: str
    reason: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    record_after: str | None = None
    save: bool = False
    check_saturated: bool = False
    requested: bool = False

    @property
    def name(self) -> str:
        """The step's name."""
        return self.spec.name


def plan(
    options: Mapping[str, Mapping[str, Any]],
    exposure: xr.Dataset,
    *,
    start_at: str | None = None,
    stop_after: str | None = None,
    save_intermediate: Iterable[str] = (),
    check_saturated: bool = True,
    source: str | os.PathLike | None = None,
    requested: Collection[str] | None = None,
    resolver: ReferenceResolver | None = None,
) -> list[StepRun]:
    """Plan a pipeline run on ``exposure`` (reads its metadata only, no pixel).

    Parameters
    ----------
    options : mapping
        ``{step name: {parameter: value}}`` as :func:`romanxr.pipeline.resolve_step_options`
        returns it (``skip`` and ``save_results`` included).
    exposure : xarray.Dataset
        The data the first step gets: its dims say ramp or image, its
        ``meta.exposure.type`` whether imaging-only steps run.
    start_at, stop_after : str, optional
        Plan only part of the pipeline (any step spelling).
    save_intermediate : iterable of str
        Steps whose output is also written.
    check_saturated : bool
        Check for a fully saturated exposure after ``saturation``.
    source : path, optional
        The input's file, named in error messages.
    requested : collection of str, optional
        The steps the user asked for by name (:func:`romanxr.pipeline.requested_steps`).
        Default: every step whose ``options`` set ``skip=False`` or one of its
        ``request_options``.
    resolver : ReferenceResolver, optional
        Where the optional steps' references are looked up (default: the environment's
        CRDS settings).

    Returns
    -------
    list of StepRun
        One per selected step, in pipeline order.

    Raises
    ------
    ConfigError
        ``start_at`` after ``stop_after``; an intermediate of a step outside the run;
        conflicting jump and ramp_fit options.
    InputError
        The steps do not fit the data (an uncal not starting at dq_init, an image step on a
        ramp...).
    ReferenceFileError
        An optional step asked for by name whose references cannot be found.
    """
    selected = _selection(start_at, stop_after)
    saves = _saves(options, save_intermediate, selected)
    where = f"{source}: " if source is not None else ""
    _check_first(exposure, selected[0], where)
    if requested is None:
        requested = _asked_in(options)
    runs = [
        _decide(
            spec, options.get(spec.name, {}), exposure, spec.name in saves, spec.name in requested
        )
        for spec in selected
    ]
    runs = fold_jump(runs, options)
    runs = settle_optional(runs, exposure, resolver)
    _check_levels(runs, exposure)
    if check_saturated:
        runs = _saturated_exit(runs)
    return runs


def _selection(start_at: str | None, stop_after: str | None) -> tuple[StepSpec, ...]:
    names = [s.name for s in STEPS]
    first = names.index(get_step(start_at).name) if start_at else 0
    last = names.index(get_step(stop_after).name) if stop_after else len(names) - 1
    if first > last:
        raise ConfigError(f"start_at={start_at!r} comes after stop_after={stop_after!r}")
    return STEPS[first : last + 1]


def _saves(
    options: Mapping[str, Mapping[str, Any]],
    save_intermediate: Iterable[str],
    selected: Sequence[StepSpec],
) -> set[str]:
    saves = {get_step(n).name for n in save_intermediate}
    saves |= {n for n, p in options.items() if p.get("save_results")}
    missing = sorted(saves - {s.name for s in selected})
    if missing:
        raise ConfigError(f"cannot save the output of {missing}: not in this run")
    return saves


def _check_first(ds: xr.Dataset, first: StepSpec, where: str) -> None:
    """The first step must fit the product: an uncal needs dq_init, a ramp a ramp step."""
    dims = ds["data"].dims if "data" in ds else ()
    is_ramp = "resultant" in dims
    is_raw = is_ramp and "groupdq" not in ds
    if first.name != "dq_init" and is_raw:
        raise InputError(
            f"{where}a Level-1 (uncal) exposure must start at dq_init, not {first.name!r}; "
            "run the earlier steps or start from a saved intermediate (--save-intermediate)"
        )
    if first.level == "ramp" and not is_ramp:
        raise InputError(
            f"{where}step {first.name!r} needs a ramp but this is a Level-2 image; start at an "
            "image step (dark_current, assign_wcs, photom, flatfield, source_catalog, tweakreg)"
        )
    if first.name == "dq_init" and is_ramp and not is_raw:
        raise InputError(
            f"{where}this ramp has already been through dq_init; start at a later step (--start-at)"
        )


def _asked_in(options: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The steps ``options`` ask for by name (``skip=False`` or a request option)."""
    asked = set()
    for spec in STEPS:
        given = options.get(spec.name) or {}
        if given.get("skip", True) is False or any(o in given for o in spec.request_options):
            asked.add(spec.name)
    return asked


def _decide(
    spec: StepSpec, given: Mapping[str, Any], ds: xr.Dataset, save: bool, requested: bool
) -> StepRun:
    """Run or skip one step, on its own (before any rewrite)."""
    arguments = dict(given)
    skip = bool(arguments.pop("skip", False))
    arguments.pop("save_results", None)
    record = effective_parameters(spec, {**arguments, "skip": skip})
    record.pop("save_results", None)
    step = StepRun(spec, RUN, "", arguments, record, save=save, requested=requested)
    if skip:
        return replace(step, action=SKIP, reason=f"steps.{spec.name}.skip is set")
    if not spec.applies_to(ds):
        kind = f"a {'/'.join(spec.exposure_types)}" if spec.exposure_types else "an imaging"
        reason = f"not {kind} exposure ({exposure_type(ds) or 'no meta.exposure.type'})"
        return replace(step, action=SKIP, reason=reason)
    return step


def fold_jump(runs: Sequence[StepRun], options: Mapping[str, Mapping[str, Any]]) -> list[StepRun]:
    """Rewrite a plan so that the jump search runs inside ``ramp_fit``.

    The likelihood jump search lives in ramp_fit's fit: with both steps in the run, ramp_fit
    searches with jump's options (the same flags in one pass over the ramp instead of two;
    see :mod:`romanxr.steps.jump`), and jump's record (with ``run_inside="ramp_fit"``) is
    written after ramp_fit's. jump still runs on its own when its output is saved or ramp_fit
    is skipped. A skipped jump switches the search off in ramp_fit too
    (``rejection_threshold=None`` unless set for ramp_fit explicitly).
    """
    runs = list(runs)
    index = {r.name: i for i, r in enumerate(runs)}
    if "jump" not in index or "ramp_fit" not in index:
        return runs
    jump, fit = runs[index["jump"]], runs[index["ramp_fit"]]
    if jump.action == SKIP:
        folded: Mapping[str, Any] = {"rejection_threshold": None}
        runs[index["jump"]] = replace(jump, record_after="ramp_fit")
    elif not jump.save and fit.action == RUN:
        folded = jump.arguments
        runs[index["jump"]] = replace(
            jump,
            action=FOLD,
            reason="runs inside ramp_fit: one pass over the ramp",
            arguments={},
            record={**jump.record, "run_inside": "ramp_fit"},
            record_after="ramp_fit",
        )
    else:
        return runs
    arguments = _merge_jump_into_ramp_fit(folded, fit.arguments, options.get("ramp_fit", {}))
    runs[index["ramp_fit"]] = replace(fit, arguments=arguments, record={**fit.record, **arguments})
    return runs


def _merge_jump_into_ramp_fit(
    jump_params: Mapping[str, Any], params: Mapping[str, Any], given: Mapping[str, Any]
) -> dict[str, Any]:
    merged = dict(params)
    if jump_params.get("rejection_threshold", 0) is None:  # jump skipped
        if "rejection_threshold" not in given and str(merged.get("algorithm", "likely")) == (
            "likely"
        ):
            merged["rejection_threshold"] = None
        return merged
    algorithm = str(merged.get("algorithm", "likely")).lower()
    for name, value in jump_params.items():
        if name == "rejection_threshold" and algorithm != "likely":
            raise ConfigError(
                "steps.jump.rejection_threshold applies to the likelihood jump search; with "
                "ramp_fit algorithm='ols_cas22' set steps.ramp_fit.threshold_intercept/"
                "threshold_constant instead"
            )
        if name in merged and merged[name] != value:
            raise ConfigError(
                f"steps.jump.{name}={value!r} conflicts with steps.ramp_fit.{name}="
                f"{merged[name]!r}; set it in one place"
            )
        merged[name] = value
    return merged


def optional_skip_reason(
    run: StepRun, exposure: xr.Dataset | None = None, resolver: ReferenceResolver | None = None
) -> str:
    """Why an optional step that runs by default cannot run: its precheck's complaint.

    ``""`` means it can run. Optional steps are those with
    :attr:`romanxr.registry.StepSpec.optional` set (source_catalog, tweakreg).

    A step the user asked for (``run.requested``) gets the precheck's error instead.

    Raises
    ------
    ConfigError, ReferenceFileError
        ``run.requested`` and the precheck fails (tweakreg offline with the default
        ``abs_refcat``: the error names ``--steps.tweakreg.abs_refcat``).
    """
    try:
        run.spec.check_arguments(run.arguments, exposure, resolver)
    except (ConfigError, ReferenceFileError) as exc:
        if run.requested or not run.spec.optional:
            raise
        log.debug("step %s cannot run by default: %s", run.name, exc)
        if isinstance(exc, ReferenceFileError):
            return f"no {'/'.join(run.spec.reftypes)} reference"
        option = run.spec.request_options[0]
        return f"no usable {option} ({run.record.get(option)!r}): --steps.{run.name}.{option}=FILE"
    return ""


def settle_optional(
    runs: Sequence[StepRun],
    exposure: xr.Dataset | None = None,
    resolver: ReferenceResolver | None = None,
) -> list[StepRun]:
    """The optional steps' pass of the plan: each planned one is checked
    (:func:`optional_skip_reason`) and SKIPPED when it runs by default but cannot (recorded
    with ``skip=True``, so that the record given back as a config reproduces the run).
    tweakreg aligns the source catalog: when it runs, source_catalog is asked for too (its
    references must be found), and it is skipped when source_catalog is."""
    runs = list(runs)
    index = {r.name: i for i, r in enumerate(runs)}
    tweak = runs[index["tweakreg"]] if "tweakreg" in index else None
    if tweak is not None and tweak.action == RUN:
        tweak = _settled(tweak, exposure, resolver)
        runs[index["tweakreg"]] = tweak
    for i, run in enumerate(runs):
        if run.name == "tweakreg" or run.action != RUN:
            continue
        if run.name == "source_catalog" and tweak is not None and tweak.action == RUN:
            run = replace(run, requested=True)
        runs[i] = _settled(run, exposure, resolver)
    if "source_catalog" in index and tweak is not None and tweak.action == RUN:
        cat = runs[index["source_catalog"]]
        if cat.action != RUN:
            runs[index["tweakreg"]] = _skipped(
                tweak, f"no source catalog (source_catalog: {cat.reason})"
            )
    return runs


def _settled(
    run: StepRun, exposure: xr.Dataset | None, resolver: ReferenceResolver | None
) -> StepRun:
    if not run.spec.precheck:
        return run
    reason = optional_skip_reason(run, exposure, resolver)
    return _skipped(run, reason) if reason else run


def _skipped(run: StepRun, reason: str) -> StepRun:
    return replace(run, action=SKIP, reason=reason, record={**run.record, "skip": True})


def _check_levels(runs: Sequence[StepRun], ds: xr.Dataset) -> None:
    """An image step that is not skipped needs an image: ramp_fit must have run before it."""
    is_ramp = "resultant" in (ds["data"].dims if "data" in ds else ())
    for run in runs:
        if run.spec.level == "image" and not run.record.get("skip") and is_ramp:
            raise InputError(
                f"step {run.name!r} needs a Level-2 image but the data are still a ramp; "
                "run ramp_fit first (or --start-at an earlier step)"
            )
        if run.action == RUN:
            is_ramp = run.spec.result_level == "ramp"


def _saturated_exit(runs: Sequence[StepRun]) -> list[StepRun]:
    """The saturated-exposure check goes after saturation when it runs and steps follow."""
    runs = list(runs)
    for i, run in enumerate(runs[:-1]):
        if run.name == SATURATION_CHECK_AFTER and run.action == RUN:
            runs[i] = replace(run, check_saturated=True)
    return runs


@dataclass(frozen=True)
class PlannedReference:
    """The reference file a planned step would use (or why it cannot be found).

    Attributes
    ----------
    run : StepRun
        The step.
    reftype : str
        The reference type.
    resolved : ResolvedReference or None
        The file and the rule that chose it (``source``: argument, override or crds).
    error : ReferenceFileError or None
        Why it could not be resolved.
    """

    run: StepRun
    reftype: str
    resolved: ResolvedReference | None = None
    error: ReferenceFileError | None = None


def references_of(
    run: StepRun, exposure: xr.Dataset, resolver: ReferenceResolver
) -> list[PlannedReference]:
    """The reference files a planned step would read, resolved as the step resolves them
    (its ``override_<reftype>`` argument > the resolver's overrides > CRDS); none unless it
    runs. Reads no reference file, only asks where each one is."""
    if run.action != RUN:
        return []
    found = []
    for reftype in run.spec.reftypes:
        explicit = run.arguments.get(f"override_{reftype}")
        try:
            ref = resolver.resolve(reftype, exposure, explicit=explicit)
        except ReferenceFileError as exc:
            found.append(PlannedReference(run, reftype, error=exc))
            continue
        found.append(PlannedReference(run, reftype, ref))
    return found
