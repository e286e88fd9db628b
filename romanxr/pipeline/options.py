"""Step options as users give them (keywords, command line, config files) -> per-step values.

Precedence, lowest first, as stpipe's: step defaults < CRDS step-parameter references
(``pars-<step class>``, :func:`crds_step_options`) < config file < keyword arguments / command
line. :func:`parameter_sources` says which of these gave each effective value.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from romanxr.config import (
    STPIPE_IGNORED,
    RecordedOptions,
    closest,
    coerce_value,
    load_config_file,
    merge_step_options,
    normalize_step_name,
)
from romanxr.errors import ConfigError
from romanxr.registry import NOT_RUN_STEPS, STEPS, StepSpec, find_step, get_step

__all__ = [
    "PIPELINE_PARS",
    "CrdsStepOptions",
    "StepOptions",
    "crds_step_options",
    "effective_parameters",
    "export_config",
    "parameter_sources",
    "pars_reftype",
    "requested_steps",
    "resolve_step_options",
]

log = logging.getLogger("romanxr")

#: ``{step name: {parameter: value}}``, step names canonical (:data:`romanxr.registry.STEPS`).
StepOptions = dict[str, dict[str, Any]]

#: the CRDS step-parameter reference of romancal's Exposure Level Pipeline itself
PIPELINE_PARS = "pars-exposurepipeline"


@dataclass(frozen=True)
class CrdsStepOptions:
    """The step parameters CRDS ``pars-*`` references set for one exposure.

    Attributes
    ----------
    options : dict
        ``{step name: {parameter: value}}`` (canonical step names, checked and coerced).
    files : dict
        ``{step name: {parameter: file name}}``: the reference each value came from.
    references : dict
        ``{reftype: file path}`` of every ``pars-*`` reference CRDS selected.
    disabled : bool
        Whether the look-up was turned off (``--disable-crds-steppars``).
    """

    options: StepOptions = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)
    disabled: bool = False


def pars_reftype(spec: StepSpec | str) -> str | None:
    """``pars-<romancal step class in lower case>`` (stpipe's ``Step.get_config_reftype``);
    None for a step romancal does not have (romanxr's stand-alone ``jump``)."""
    if isinstance(spec, str):
        spec = get_step(spec)
    if spec.romancal_class is None:
        return None
    return f"pars-{spec.romancal_class.rsplit('.', 1)[-1].lower()}"


def crds_step_options(
    meta: Mapping[str, Any],
    *,
    context: str | None = None,
    disable: bool | None = None,
) -> CrdsStepOptions:
    """The step parameters CRDS holds for an exposure, as stpipe looks them up.

    One ``pars-<step class>`` reference per step, then ``pars-exposurepipeline`` (whose
    ``steps`` win over the steps' own references, as in stpipe's ``Pipeline``). CRDS not
    configured, or no rules for a type, means none (see :mod:`romanxr.refs.step_pars`).

    Parameters
    ----------
    meta : mapping
        The exposure's ``meta`` tree.
    context : str, optional
        Pinned CRDS context.
    disable : bool, optional
        True: no look-up (``--disable-crds-steppars``). Default: off only when
        ``$STPIPE_DISABLE_CRDS_STEPPARS`` says so, as in stpipe.

    Returns
    -------
    CrdsStepOptions

    Raises
    ------
    ConfigError
        A reference sets a parameter the step does not have (named with the file).
    ReferenceFormatError
        A selected reference cannot be read.
    """
    from romanxr.refs.step_pars import crds_step_parameters, steppars_disabled

    if steppars_disabled(disable):
        log.debug("CRDS step-parameter references disabled")
        return CrdsStepOptions(disabled=True)
    by_type = {pars_reftype(s): s for s in STEPS if pars_reftype(s)}
    found = crds_step_parameters([*by_type, PIPELINE_PARS], meta, context=context)
    layers: list[tuple[str, Mapping[str, Mapping[str, Any]]]] = []
    for reftype, ref in found.items():
        if reftype == PIPELINE_PARS:
            continue
        layers.append((ref.path, {by_type[reftype].name: ref.parameters}))
    if PIPELINE_PARS in found:
        layers.append((found[PIPELINE_PARS].path, found[PIPELINE_PARS].steps))
    options: StepOptions = {}
    files: dict[str, dict[str, str]] = {}
    for path, layer in layers:
        try:
            canonical = _canonical_layer(layer)
        except ConfigError as exc:
            raise ConfigError(
                f"CRDS step-parameter reference {path}: {exc}; pass --disable-crds-steppars "
                "(crds_steppars=False) to run without CRDS step parameters"
            ) from None
        for name, params in canonical.items():
            options.setdefault(name, {}).update(params)
            files.setdefault(name, {}).update(dict.fromkeys(params, Path(path).name))
    return CrdsStepOptions(options, files, {t: r.path for t, r in found.items()})


_CRDS = "crds"
#: the source named for values given as ``steps=`` / ``--steps.<step>.<param>``
GIVEN = "command line/keyword"


def _layers(
    steps: Mapping[str, Mapping[str, Any]] | None,
    config: str | os.PathLike | Mapping[str, Mapping[str, Any]] | None,
    crds: CrdsStepOptions | None,
    given: str,
) -> list[tuple[str, StepOptions]]:
    """(source label, canonical options) per layer, lowest first."""
    file_layer = load_config_file(config) if isinstance(config, str | os.PathLike) else config
    if isinstance(file_layer, RecordedOptions):
        file_layer = _parameters_only(file_layer)
    label = (
        f"config file {Path(config).name}" if isinstance(config, str | os.PathLike) else "config"
    )
    layers: list[tuple[str, StepOptions]] = []
    if crds is not None and crds.options:
        layers.append((_CRDS, crds.options))
    layers += [(label, _canonical_layer(file_layer)), (given, _canonical_layer(steps))]
    return layers


def _merged(
    layers: list[tuple[str, StepOptions]], crds: CrdsStepOptions | None
) -> tuple[StepOptions, dict[str, dict[str, str]]]:
    """The merged options and the source of each value."""
    out: StepOptions = {}
    sources: dict[str, dict[str, str]] = {}
    rank: dict[tuple[str, str], int] = {}
    for i, (label, layer) in enumerate(layers):
        for name, params in layer.items():
            out.setdefault(name, {}).update(params)
            for pname in params:
                rank[(name, pname)] = i
                where = label
                if label == _CRDS and crds is not None:
                    where = f"crds {crds.files[name][pname]}"
                sources.setdefault(name, {})[pname] = where
    # jump's options run inside ramp_fit: one set in a higher layer than ramp_fit's same
    # parameter (a CRDS pars-rampfitstep value under --steps.jump.X) wins over it
    for pname in list(out.get("jump", {})):
        fit = out.get("ramp_fit", {})
        if pname in fit and pname not in {"skip", "save_results"}:
            if rank[("jump", pname)] > rank[("ramp_fit", pname)]:
                del fit[pname]
                del sources["ramp_fit"][pname]
    return out, sources


def resolve_step_options(
    steps: Mapping[str, Mapping[str, Any]] | None = None,
    config: str | os.PathLike | Mapping[str, Mapping[str, Any]] | None = None,
    crds: CrdsStepOptions | None = None,
) -> StepOptions:
    """The options given per step, merged: step defaults < ``crds`` < ``config`` < ``steps``.

    Step names may use any romanxr, romancal or stpipe spelling (``rampfit``, ``flat``,
    ``dark_current``, ``FlatFieldStep``...); parameter names are checked (an unknown one
    raises :class:`ConfigError` naming the closest valid spelling) and values coerced to the
    parameter's type (``"500"`` -> 500.0, ``"true"`` -> True). stpipe's generic parameters
    (``output_dir``, ``suffix``, ``pre_hooks``...), romancal options without a romanxr
    equivalent and the steps romanxr does not run (:data:`romanxr.registry.NOT_RUN_STEPS`)
    are accepted and ignored with a log message.

    Parameters
    ----------
    steps : mapping, optional
        ``{step: {parameter: value}}`` (keyword arguments / command line): the top layer.
    config : path or mapping, optional
        A config file (see :func:`romanxr.config.load_config_file`) or its content.
    crds : CrdsStepOptions, optional
        What CRDS ``pars-*`` references set (:func:`crds_step_options`): the lowest layer
        above the defaults.

    Returns
    -------
    dict
        ``{step name: {parameter: value}}`` with only the parameters that were given;
        :func:`effective_parameters` adds the defaults.
    """
    return _merged(_layers(steps, config, crds, GIVEN), crds)[0]


def requested_steps(
    steps: Mapping[str, Mapping[str, Any]] | None = None,
    config: str | os.PathLike | Mapping[str, Mapping[str, Any]] | None = None,
) -> set[str]:
    """The steps the user asks for by name: an optional step among them that cannot run
    (tweakreg offline with the default ``abs_refcat``) fails instead of being skipped.

    A step is asked for when ``steps`` (keywords / command line) give it ``skip=False`` or
    one of its :attr:`~romanxr.registry.StepSpec.request_options` (tweakreg's
    ``abs_refcat``, source_catalog's ``override_apcorr``/``override_epsf``), or when the
    config file gives one of these a value other than the step's default: a parameter
    dump (``strun --save-parameters``, romancal's own export, a cal's record) lists every
    default and asks for nothing. CRDS ``pars-*`` values never ask.
    """
    layers = _layers(steps, config, None, GIVEN)
    asked: set[str] = set()
    for position, (_, layer) in enumerate(layers):
        top = position == len(layers) - 1
        for name, params in layer.items():
            spec = get_step(name)
            defaults = effective_parameters(spec)
            for pname in ("skip", *spec.request_options):
                if pname not in params or (pname == "skip" and params[pname] is not False):
                    continue
                if top or params[pname] != defaults.get(pname):
                    asked.add(name)
    return asked


def parameter_sources(
    steps: Mapping[str, Mapping[str, Any]] | None = None,
    config: str | os.PathLike | Mapping[str, Mapping[str, Any]] | None = None,
    crds: CrdsStepOptions | None = None,
    *,
    given: str = GIVEN,
) -> dict[str, dict[str, str]]:
    """Where each effective parameter of every step comes from.

    Parameters
    ----------
    steps, config, crds
        As for :func:`resolve_step_options`.
    given : str
        The name of the ``steps`` layer (``romanxr calibrate --show-params`` says
        ``"command line"``).

    Returns
    -------
    dict
        ``{step name: {parameter: source}}`` for every parameter of every step, the source
        one of ``default``, ``crds <pars file>``, ``config file <name>`` (``config`` for a
        mapping) or ``given``.
    """
    _, sources = _merged(_layers(steps, config, crds, given), crds)
    out: dict[str, dict[str, str]] = {}
    for spec in STEPS:
        mine = sources.get(spec.name, {})
        out[spec.name] = {p: mine.get(p, "default") for p in spec.parameters()}
    return out


def _canonical_layer(layer: Mapping[str, Mapping[str, Any]] | None) -> StepOptions:
    out: StepOptions = {}
    for name, params in merge_step_options(layer).items():
        norm = normalize_step_name(name)
        if norm in NOT_RUN_STEPS and find_step(name) is None:
            _ignore_step(NOT_RUN_STEPS[norm], params)
            continue
        spec = get_step(name)
        clean = _checked_parameters(spec, params)
        out.setdefault(spec.name, {}).update(clean)
    return out


def _parameters_only(record: RecordedOptions) -> StepOptions:
    """A product's record without what its steps decided at run time (not parameters)."""
    out: StepOptions = {}
    for name, params in record.items():
        spec = find_step(name)
        if spec is not None:
            known = spec.parameters()
            out[name] = {k: v for k, v in params.items() if k in known}
    # a jump search that ran inside ramp_fit ran with ramp_fit's recorded values (jump's record
    # keeps its own defaults): given both again they would conflict, so ramp_fit's stand
    jump, fit = record.get("jump") or {}, out.get("ramp_fit")
    if jump.get("run_inside") == "ramp_fit" and fit is not None and "jump" in out:
        out["jump"] = {k: v for k, v in out["jump"].items() if k == "skip" or k not in fit}
    return out


def _ignore_step(name: str, params: Mapping[str, Any]) -> None:
    given = {k: v for k, v in params.items() if k not in STPIPE_IGNORED}
    level = logging.DEBUG if set(given) <= {"skip"} else logging.WARNING
    log.log(
        level,
        "romanxr does not run romancal's %s step; ignoring its options (%s)",
        name,
        ", ".join(sorted(given)),
    )


def _checked_parameters(spec: StepSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    specs = spec.parameters()
    clean: dict[str, Any] = {}
    for pname, value in params.items():
        pname = str(pname)
        if pname not in specs:
            if pname in STPIPE_IGNORED or pname in spec.ignored_parameters:
                log.info("steps.%s.%s is a romancal/stpipe option; ignored", spec.name, pname)
                continue
            raise ConfigError(
                f"step {spec.name!r} has no parameter {pname!r}"
                + closest(pname, sorted(specs))
                + f" (romanxr steps {spec.name} lists them)"
            )
        clean[pname] = coerce_value(value, specs[pname], where=f"steps.{spec.name}.")
    return clean


def effective_parameters(
    spec: StepSpec | str, given: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Every parameter of a step with the value it runs with: its defaults updated by ``given``.

    Path-like values become strings (so that the record can be written to ASDF/Zarr).
    """
    if isinstance(spec, str):
        spec = get_step(spec)
    values = {name: p.default for name, p in spec.parameters().items()}
    values.update(given or {})
    return {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in values.items()}


#: romancal's name for a step where it differs from romanxr's (``ExposurePipeline.step_defs``)
_ROMANCAL_NAMES = {"ramp_fit": "rampfit"}
_PIPELINE_CLASS = "romancal.pipeline.exposure_pipeline.ExposurePipeline"
#: romanxr parameters romancal 1.1's step does not have (stpipe refuses them as extra values)
_NOT_IN_ROMANCAL = {"source_catalog": {"override_epsf"}}


def export_config(
    path: str | os.PathLike,
    steps: Mapping[str, Mapping[str, Any]] | None = None,
    config: str | os.PathLike | Mapping[str, Mapping[str, Any]] | None = None,
    crds: CrdsStepOptions | None = None,
) -> Path:
    """Write the effective step parameters as an stpipe parameter file (ASDF).

    The layout is the one ``strun --save-parameters`` writes (``class``, ``name``,
    ``parameters`` and a ``steps`` list of ``{class, name, parameters}``), so romancal's
    ``strun <file> <uncal>`` and :func:`romanxr.calibrate` (``config=``) both read it. Steps
    romancal does not have (romanxr's stand-alone ``jump``) are left out: their parameters
    are those of romancal's ``rampfit``; so are romanxr's parameters romancal lacks.

    Parameters
    ----------
    path : path
        ``*.asdf`` (stpipe reads parameter files as ASDF; TOML is refused).
    steps, config, crds
        As for :func:`resolve_step_options` (with ``crds``, the values CRDS ``pars-*``
        references set are written too, as strun's ``--save-parameters`` writes them).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    given = resolve_step_options(steps, config, crds)
    entries = []
    for spec in STEPS:
        if spec.romancal_class is None:
            continue
        values = effective_parameters(spec, given.get(spec.name))
        for name in _NOT_IN_ROMANCAL.get(spec.name, ()):
            values.pop(name, None)
        entries.append(
            {
                "class": spec.romancal_class,
                "name": _ROMANCAL_NAMES.get(spec.name, spec.name),
                "parameters": values,
            }
        )
    tree = {
        "class": _PIPELINE_CLASS,
        "name": "ExposurePipeline",
        "parameters": {"save_results": True, "suffix": "cal"},
        "steps": entries,
    }
    if path.suffix.lower() != ".asdf":
        raise ConfigError(
            f"--save-parameters {path}: expected a .asdf name (stpipe 1.x reads parameter "
            "files as ASDF only)"
        )
    import asdf

    try:
        asdf.AsdfFile(tree).write_to(path)
    except OSError as exc:
        raise ConfigError(f"--save-parameters {path}: cannot write it ({exc})") from exc
    return path
