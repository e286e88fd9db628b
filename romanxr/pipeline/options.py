"""Step options as users give them (keywords, command line, config files) -> per-step values.

Precedence, lowest first: step defaults < config file < keyword arguments / command line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
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
from romanxr.registry import NOT_RUN_STEPS, StepSpec, find_step, get_step

__all__ = ["StepOptions", "effective_parameters", "export_config", "resolve_step_options"]

log = logging.getLogger("romanxr")

#: ``{step name: {parameter: value}}``, step names canonical (:data:`romanxr.registry.STEPS`).
StepOptions = dict[str, dict[str, Any]]


def resolve_step_options(
    steps: Mapping[str, Mapping[str, Any]] | None = None,
    config: str | os.PathLike | Mapping[str, Mapping[str, Any]] | None = None,
) -> StepOptions:
    """The options given per step, merged: step defaults < ``config`` < ``steps``.

    Step names may use any romanxr, romancal or stpipe spelling (``rampfit``, ``flat``,
    ``dark_current``, ``FlatFieldStep``...); parameter names are checked (an unknown one
    raises :class:`ConfigError` naming the closest valid spelling) and values coerced to the
    parameter's type (``"500"`` -> 500.0, ``"true"`` -> True). stpipe's generic parameters
    (``output_dir``, ``suffix``, ``pre_hooks``...), romancal options without a romanxr
    equivalent and the steps romanxr does not run (``source_catalog``, ``tweakreg``) are
    accepted and ignored with a log message.

    Parameters
    ----------
    steps : mapping, optional
        ``{step: {parameter: value}}`` (keyword arguments / command line): the top layer.
    config : path or mapping, optional
        A config file (see :func:`romanxr.config.load_config_file`) or its content.

    Returns
    -------
    dict
        ``{step name: {parameter: value}}`` with only the parameters that were given;
        :func:`effective_parameters` adds the defaults.
    """
    file_layer = load_config_file(config) if isinstance(config, str | os.PathLike) else config
    if isinstance(file_layer, RecordedOptions):
        file_layer = _parameters_only(file_layer)
    out: StepOptions = {}
    for layer in (file_layer, steps):
        for name, params in _canonical_layer(layer).items():
            out.setdefault(name, {}).update(params)
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
    steps, config
        As for :func:`resolve_step_options`.

    Returns
    -------
    Path
        ``path``.
    """
    from romanxr.registry import STEPS

    path = Path(path)
    given = resolve_step_options(steps, config)
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
