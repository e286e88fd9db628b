"""The Exposure Level Pipeline: the ordered step registry and :func:`calibrate`."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from romanxr.config import (
    STPIPE_IGNORED,
    ParameterSpec,
    closest,
    coerce_value,
    load_config_file,
    merge_step_options,
    normalize_step_name,
    parameter_specs,
)
from romanxr.errors import ConfigError, InputError

__all__ = [
    "STEPS",
    "StepSpec",
    "calibrate",
    "effective_parameters",
    "get_step",
    "open_exposure",
    "output_name",
    "resolve_step_options",
]

log = logging.getLogger("romanxr")


@dataclass(frozen=True)
class StepSpec:
    """A pipeline step.

    Attributes
    ----------
    name : str
        The name used in ``steps={...}``, on the command line and as accessor method.
    module, function : str
        Where the step function lives (``romanxr.steps.<module>.<function>``).
    cal_step : str or None
        Its key in ``meta.cal_step``.
    suffix : str
        File suffix of its saved intermediate product.
    aliases : tuple of str
        Other accepted spellings (romancal/stpipe names).
    level : {"ramp", "image"}
        What the step takes as input.
    """

    name: str
    module: str
    function: str
    cal_step: str | None
    suffix: str
    aliases: tuple[str, ...] = ()
    level: str = "ramp"
    imaging_only: bool = field(default=False)

    def load(self) -> Callable[..., xr.Dataset]:
        """Import and return the step function."""
        module = importlib.import_module(f"romanxr.steps.{self.module}")
        return getattr(module, self.function)

    @property
    def key(self) -> str:
        """The key of its record in ``attrs["step_parameters"]`` (the ``cal_step`` key)."""
        return self.cal_step or self.name

    def parameters(self) -> dict[str, ParameterSpec]:
        """The step's parameters with defaults and help (from its signature and docstring)."""
        return parameter_specs(self.load())


#: romancal's ExposurePipeline order, with romanxr's stand-alone jump step before ramp_fit.
STEPS: tuple[StepSpec, ...] = (
    StepSpec("dq_init", "dq_init", "dq_init", "dq_init", "dqinit"),
    StepSpec("saturation", "saturation", "saturation", "saturation", "saturation"),
    StepSpec("refpix", "refpix", "refpix", "refpix", "refpix"),
    StepSpec("dark_decay", "dark_decay", "dark_decay", "dark_decay", "dark_decay"),
    StepSpec(
        "wfi18_transient",
        "wfi18_transient",
        "wfi18_transient",
        "wfi18_transient",
        "wfi18_transient",
    ),
    StepSpec("linearity", "linearity", "linearity", "linearity", "linearity"),
    StepSpec("jump", "jump", "jump", None, "jump"),
    StepSpec("ramp_fit", "ramp_fit", "ramp_fit", "ramp_fit", "rampfit", ("rampfit",)),
    StepSpec(
        "dark_current",
        "dark_current",
        "dark_current",
        "dark",
        "darkcurrent",
        ("dark",),
        level="image",
    ),
    StepSpec("assign_wcs", "assign_wcs", "assign_wcs", "assign_wcs", "assignwcs", level="image"),
    StepSpec("photom", "photom", "photom", "photom", "photom", level="image"),
    StepSpec(
        "flatfield",
        "flatfield",
        "flatfield",
        "flat_field",
        "flat",
        ("flat_field", "flat"),
        level="image",
        imaging_only=True,
    ),
)

_BY_KEY = {
    normalize_step_name(alias): s
    for s in STEPS
    for alias in (s.name, *s.aliases, s.cal_step or s.name, s.suffix)
}

#: steps of romancal's ExposurePipeline that romanxr does not run (their options are ignored
#: with a log message, so that pasted ``strun`` arguments and stpipe parameter files work)
ROMANCAL_ONLY_STEPS = {"sourcecatalog": "source_catalog", "tweakreg": "tweakreg"}

#: romancal parameters without a romanxr equivalent, ignored per step: the snowball options
#: only matter with ``expand_large_events`` (not implemented, see ramp_fit) and dask sets
#: the parallelism
_ROMANCAL_IGNORED = {
    "ramp_fit": frozenset(
        {
            "maximum_cores",
            "min_sat_area",
            "min_jump_area",
            "expand_factor",
            "sat_required_snowball",
            "min_sat_radius_extend",
            "sat_expand",
            "edge_size",
        }
    )
}


def get_step(name: str) -> StepSpec:
    """Look a step up by name, alias or stpipe spelling (``rampfit``, ``FlatFieldStep``...).

    Raises
    ------
    ConfigError
        Unknown name; the message names the closest valid step.
    """
    try:
        return _BY_KEY[normalize_step_name(name)]
    except KeyError:
        raise ConfigError(
            f"unknown step {name!r}" + closest(name, [s.name for s in STEPS])
        ) from None


def resolve_step_options(
    steps: Mapping[str, Mapping[str, Any]] | None = None,
    config: str | os.PathLike | Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
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
    out: dict[str, dict[str, Any]] = {}
    for layer in (file_layer, steps):
        for name, params in _canonical_layer(layer).items():
            out.setdefault(name, {}).update(params)
    return out


def _canonical_layer(layer: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict]:
    out: dict[str, dict[str, Any]] = {}
    for name, params in merge_step_options(layer).items():
        norm = normalize_step_name(name)
        if norm in ROMANCAL_ONLY_STEPS and norm not in _BY_KEY:
            given = {k: v for k, v in params.items() if k not in STPIPE_IGNORED}
            level = logging.DEBUG if set(given) <= {"skip"} else logging.WARNING
            log.log(
                level,
                "romanxr does not run romancal's %s step; ignoring its options (%s)",
                ROMANCAL_ONLY_STEPS[norm],
                ", ".join(sorted(given)),
            )
            continue
        spec = get_step(name)
        specs = spec.parameters()
        clean: dict[str, Any] = {}
        for pname, value in params.items():
            pname = str(pname)
            if pname not in specs:
                if pname in STPIPE_IGNORED or pname in _ROMANCAL_IGNORED.get(spec.name, ()):
                    log.info("steps.%s.%s is a romancal/stpipe option; ignored", spec.name, pname)
                    continue
                raise ConfigError(
                    f"step {spec.name!r} has no parameter {pname!r}"
                    + closest(pname, sorted(specs))
                    + f" (romanxr steps {spec.name} lists them)"
                )
            clean[pname] = coerce_value(value, specs[pname], where=f"steps.{spec.name}.")
        out.setdefault(spec.name, {}).update(clean)
    return out


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


def _is_imaging(ds: xr.Dataset) -> bool:
    exp_type = ds.attrs.get("meta", {}).get("exposure", {}).get("type", "WFI_IMAGE")
    return exp_type in {"WFI_IMAGE", "WFI_LOLO", "WFI_WFSC"}


def open_exposure(path: str | os.PathLike, chunks: Any = "default") -> xr.Dataset:
    """Open any Roman exposure product lazily: uncal, a saved ramp intermediate, cal, or Zarr.

    Parameters
    ----------
    path : path-like
        ``*_uncal.asdf``, ``*_<step>.asdf`` (ramp intermediates), ``*_cal.asdf`` or ``*.zarr``.
    chunks
        Dask chunks (see :func:`romanxr.open_uncal`).
    """
    path = Path(path)
    if path.suffix == ".zarr" or path.is_dir():
        from romanxr.io import open_zarr

        return open_zarr(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; give the path of a *_uncal.asdf file")
    from romanxr.io import chunk_dataset, open_roman_asdf

    stat = path.stat()
    token = f"{path.resolve()}-{stat.st_mtime_ns}"
    return chunk_dataset(open_roman_asdf(path), chunks, token=token)


def calibrate(
    data: str | os.PathLike | xr.Dataset,
    *,
    steps: Mapping[str, Mapping[str, Any]] | None = None,
    config: str | os.PathLike | Mapping[str, Any] | None = None,
    output: str | os.PathLike | None = None,
    output_format: str | None = None,
    overwrite: bool = False,
    save_results: bool = False,
    crds_context: str | None = None,
    overrides: Mapping[str, str | os.PathLike] | None = None,
    start_at: str | None = None,
    stop_after: str | None = None,
    save_intermediate: Iterable[str] = (),
    chunks: Any = "default",
    check_saturated: bool = True,
) -> xr.Dataset:
    """Run the Exposure Level Pipeline lazily and return the calibrated Dataset.

    The steps run in romancal's order (:data:`STEPS`): dq_init, saturation, refpix,
    dark_decay, wfi18_transient, linearity, jump, ramp_fit, dark_current, assign_wcs, photom,
    flatfield. ``ds.roman.dq_init().roman.saturation()...`` chained by hand gives the same
    result.

    Parameter precedence, lowest first: step defaults < ``config`` file < ``steps``. The
    effective value of every parameter of every step that ran (defaults included) is
    recorded in ``attrs["step_parameters"][<cal_step key>]``, which the cal.asdf and Zarr
    writers store.

    Parameters
    ----------
    data : path or Dataset
        A ``*_uncal.asdf`` path (opened lazily), a saved ramp intermediate or cal file (with
        ``start_at``), or an exposure Dataset.
    steps : mapping, optional
        Per-step options, romancal style: ``{"jump": {"rejection_threshold": 500},
        "linearity": {"skip": True}, "flatfield": {"override_flat": "f.asdf"}}``. Step names
        in romancal/stpipe spellings (``rampfit``, ``dark_current``, ``flat``,
        ``flat_field``) are accepted; ``{"<step>": {"save_results": True}}`` saves that
        step's output like ``save_intermediate``.
    config : path or mapping, optional
        A TOML/YAML/stpipe parameter file (see :func:`romanxr.config.load_config_file`);
        ``steps`` wins over it.
    output : path, optional
        Write the result there (``.asdf`` or ``.zarr`` by suffix).
    output_format : {"asdf", "zarr"}, optional
        Format of the ``save_results`` output (default asdf).
    overwrite : bool
        Replace existing outputs.
    save_results : bool
        Without ``output``: write ``<input>_cal.asdf`` next to the input by the Roman naming
        rule (``r..._uncal.asdf`` -> ``r..._cal.asdf``).
    crds_context : str, optional
        Pin the CRDS context (e.g. ``roman_0055.pmap``).
    overrides : mapping reftype -> path, optional
        Reference overrides for every step (``override_<reftype>`` per step also works and
        wins).
    start_at, stop_after : str, optional
        Run only part of the pipeline (for resuming from saved intermediates).
    save_intermediate : iterable of str
        Step names whose output is also written next to the output (or input), named by the
        step's suffix: ``_dqinit``, ``_saturation``, ``_refpix``, ``_rampfit``...
    chunks
        Dask chunks used to open a path (see :func:`romanxr.open_uncal`).
    check_saturated : bool
        After ``saturation``, test whether every pixel is saturated and, if so, return the
        defined zeroed image (algorithms.md section 1). The test is the one computation
        ``calibrate`` does before you ask: a reduction over the saturation flags. Pass False
        to keep the call entirely lazy.

    Returns
    -------
    xarray.Dataset
        The (lazy) Level-2 image, or the last step's output with ``stop_after``.

    Raises
    ------
    ConfigError
        Unknown step/parameter, bad value, inconsistent options.
    InputError
        The input cannot be read or is not the product the first step needs.
    ReferenceFileError
        A reference file cannot be resolved or does not fit.
    OutputError
        An output exists (without ``overwrite``) or cannot be written.

    Notes
    -----
    The ``jump`` step (``rejection_threshold``...) runs inside ``ramp_fit`` when both are in
    the run: the same likelihood search, the same flags, one pass over the ramp. It runs on
    its own when the pipeline stops after it or its output is saved. ``jump.skip=True``
    turns the jump search off (``ramp_fit`` then runs with ``rejection_threshold=None``
    unless that is set for it explicitly).
    """
    from romanxr.refs import ReferenceResolver

    options = resolve_step_options(steps, config)
    source_path: Path | None = None
    if isinstance(data, xr.Dataset):
        ds = data
        if ds.encoding.get("source"):
            source_path = Path(ds.encoding["source"])
    else:
        source_path = Path(data)
        ds = open_exposure(source_path, chunks=chunks)
    resolver = ReferenceResolver(
        overrides={k: os.fspath(v) for k, v in (overrides or {}).items()}, context=crds_context
    )

    names = [s.name for s in STEPS]
    first = names.index(get_step(start_at).name) if start_at else 0
    last = names.index(get_step(stop_after).name) if stop_after else len(names) - 1
    if first > last:
        raise ConfigError(f"start_at={start_at!r} comes after stop_after={stop_after!r}")
    intermediates = {get_step(n).name for n in save_intermediate}
    intermediates |= {n for n, p in options.items() if p.get("save_results")}
    selected = STEPS[first : last + 1]
    if not set(intermediates) <= {s.name for s in selected}:
        missing = sorted(set(intermediates) - {s.name for s in selected})
        raise ConfigError(f"cannot save the output of {missing}: not in this run")
    _check_level(ds, selected[0], source_path)

    out_path = _output_path(output, save_results, source_path, output_format)
    if out_path is not None:
        from romanxr.io.atomic import check_output_path

        check_output_path(
            out_path,
            overwrite=overwrite,
            inputs=[str(source_path)] if source_path else [],
            kind="directory" if out_path.suffix == ".zarr" else "file",
        )
    if intermediates and source_path is None and out_path is None:
        raise ConfigError("saving intermediates needs an input path or output=...")

    selected_names = {spec.name for spec in selected}
    folded_jump: dict[str, Any] | None = None
    deferred: dict[str, dict[str, Any]] = {}
    for spec in selected:
        params = dict(options.get(spec.name, {}))
        skip = bool(params.pop("skip", False))
        params.pop("save_results", None)
        effective = effective_parameters(spec, {**params, "skip": skip})
        effective.pop("save_results", None)
        if spec.level == "image" and not skip and "resultant" in ds["data"].dims:
            raise InputError(
                f"step {spec.name!r} needs a Level-2 image but the data are still a ramp; "
                "run ramp_fit first (or --start-at an earlier step)"
            )
        if spec.name == "jump" and skip and "ramp_fit" in selected_names:
            # the jump search lives in ramp_fit's likelihood fit: switch it off there too, and
            # record jump only afterwards (a "jump" record tells ramp_fit the search ran)
            folded_jump = {"rejection_threshold": None}
            deferred[spec.key] = effective
            log.info("step jump skipped")
            continue
        fold = _fold_jump(spec, selected_names, intermediates) and not options.get(
            "ramp_fit", {}
        ).get("skip", False)
        if spec.name == "jump" and not skip and fold:
            # the likelihood jump search runs inside ramp_fit with the same threshold: one pass
            # over the ramp instead of two, identical flags (see romanxr.steps.jump)
            folded_jump = params
            deferred[spec.key] = {**effective, "run_inside": "ramp_fit"}
            continue
        if spec.name == "ramp_fit" and folded_jump is not None:
            params = _merge_jump_into_ramp_fit(folded_jump, params, options.get("ramp_fit", {}))
            effective.update(params)
        if skip or (spec.imaging_only and not _is_imaging(ds)):
            log.info("step %s skipped", spec.name)
            if spec.cal_step:
                from romanxr.steps._common import skip_step

                # SKIPPED also for flatfield on a spectroscopic exposure, as romancal records
                ds = skip_step(ds, spec.cal_step, "SKIPPED")
            ds = _record(ds, spec.key, effective)
            continue
        func = spec.load()
        log.info("step %s with %s", spec.name, params or "defaults")
        ds = func(ds, resolver=resolver, **params) if _takes_resolver(func) else func(ds, **params)
        ds = _record(
            ds, spec.key, {**effective, **ds.attrs.get("step_parameters", {}).get(spec.key, {})}
        )
        if spec.name == "ramp_fit":
            for key, value in deferred.items():
                ds = _record(ds, key, value)
            deferred = {}
        if spec.name == "saturation" and check_saturated and last > names.index("saturation"):
            from romanxr.steps.saturated_exposure import is_fully_saturated, saturated_image

            # a few rows settle it for almost every exposure (one unsaturated pixel is
            # enough), so the whole ramp is only read here when those rows are saturated
            sample = ds.isel(y=slice(0, min(ds.sizes["y"], 8)))
            if is_fully_saturated(sample) and is_fully_saturated(ds):
                log.warning("every pixel is saturated: writing the zeroed image")
                ds = saturated_image(ds)
                break
        if spec.name in intermediates:
            target = intermediate_path(source_path or out_path, spec.suffix, out_path)
            log.info("writing %s", target)
            write(ds, target, overwrite=overwrite)
    for key, value in deferred.items():
        ds = _record(ds, key, value)
    if out_path is not None:
        log.info("writing %s", out_path)
        write(ds, out_path, overwrite=overwrite)
    return ds


def _record(ds: xr.Dataset, key: str, parameters: Mapping[str, Any]) -> xr.Dataset:
    """A shallow copy of ``ds`` whose ``step_parameters[key]`` is ``parameters``."""
    import copy

    attrs = dict(ds.attrs)
    records = copy.deepcopy(dict(attrs.get("step_parameters") or {}))
    records[key] = dict(parameters)
    attrs["step_parameters"] = records
    out = ds.copy(deep=False)
    out.attrs = attrs
    return out


def _check_level(ds: xr.Dataset, first: StepSpec, source: Path | None) -> None:
    """The first step must fit the product: an uncal needs dq_init, a ramp a ramp step."""
    where = f"{source}: " if source is not None else ""
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
            "image step (dark_current, assign_wcs, photom, flatfield)"
        )
    if first.name == "dq_init" and is_ramp and not is_raw:
        raise InputError(
            f"{where}this ramp has already been through dq_init; start at a later step (--start-at)"
        )


def _fold_jump(spec: StepSpec, selected: set[str], intermediates: set[str]) -> bool:
    return "ramp_fit" in selected and spec.name not in intermediates


def _merge_jump_into_ramp_fit(
    jump_params: Mapping[str, Any], params: dict, given: Mapping[str, Any]
) -> dict:
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


def _takes_resolver(func: Callable[..., Any]) -> bool:
    import inspect

    return "resolver" in inspect.signature(func).parameters


def output_name(source: Path, suffix: str = "cal", ext: str = ".asdf") -> Path:
    """Apply the Roman naming rule: replace a known product suffix (``_uncal``...) by ``suffix``."""
    stem = source.name
    for ext_known in (".asdf", ".zarr"):
        if stem.endswith(ext_known):
            stem = stem[: -len(ext_known)]
    known = {"uncal", "cal"} | {s.suffix for s in STEPS}
    base, _, last = stem.rpartition("_")
    if base and last in known:
        stem = base
    return source.with_name(f"{stem}_{suffix}{ext}")


def intermediate_path(source: Path, suffix: str, out_path: Path | None) -> Path:
    """Where a saved intermediate goes: next to the output (or input), with its suffix."""
    folder = out_path.parent if out_path is not None else source.parent
    return folder / output_name(source, suffix).name


def _output_path(
    output: str | os.PathLike | None,
    save_results: bool,
    source: Path | None,
    output_format: str | None,
) -> Path | None:
    if output is not None:
        return Path(output)
    if not save_results:
        return None
    if source is None:
        raise ConfigError("save_results=True needs an input path or output=...")
    ext = ".zarr" if output_format == "zarr" else ".asdf"
    return output_name(source, "cal", ext)


def write(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a Dataset to ``.asdf`` (roman_datamodels) or ``.zarr`` (Zarr v3) by suffix."""
    path = Path(path)
    if path.suffix == ".zarr":
        from romanxr.io.zarr_io import to_zarr

        return to_zarr(ds, path, overwrite=overwrite)
    from romanxr.io.asdf_writer import to_asdf

    return to_asdf(ds, path, overwrite=overwrite)
