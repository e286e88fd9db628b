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
    ParameterSpec,
    closest,
    coerce_value,
    load_config_file,
    merge_step_options,
    parameter_specs,
)
from romanxr.errors import ConfigError

__all__ = ["STEPS", "StepSpec", "calibrate", "get_step", "resolve_step_options"]

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

_BY_NAME = {alias: s for s in STEPS for alias in (s.name, *s.aliases)}


def get_step(name: str) -> StepSpec:
    """Look a step up by name or alias; a clear error names the closest valid step."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(
            f"unknown step {name!r}" + closest(name, [s.name for s in STEPS])
        ) from None


def resolve_step_options(
    steps: Mapping[str, Mapping[str, Any]] | None = None,
    config: str | os.PathLike | Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Effective non-default options per step: defaults < config file < ``steps``.

    Step names and parameter names are checked (unknown ones raise :class:`ConfigError`
    naming the closest valid spelling) and values coerced to the parameter's type.
    """
    file_layer = load_config_file(config) if isinstance(config, str | os.PathLike) else config
    merged = merge_step_options(file_layer, steps)
    out: dict[str, dict[str, Any]] = {}
    for name, params in merged.items():
        spec = get_step(name)
        specs = spec.parameters()
        clean: dict[str, Any] = {}
        for pname, value in params.items():
            if pname not in specs:
                raise ConfigError(
                    f"step {spec.name!r} has no parameter {pname!r}" + closest(pname, sorted(specs))
                )
            clean[pname] = coerce_value(value, specs[pname], where=f"steps.{spec.name}.")
        out.setdefault(spec.name, {}).update(clean)
    return out


def _is_imaging(ds: xr.Dataset) -> bool:
    exp_type = ds.attrs.get("meta", {}).get("exposure", {}).get("type", "WFI_IMAGE")
    return exp_type in {"WFI_IMAGE", "WFI_LOLO", "WFI_WFSC"}


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

    Parameters
    ----------
    data : path or Dataset
        A ``*_uncal.asdf`` path (opened lazily), or an exposure Dataset (a saved intermediate
        works with ``start_at``).
    steps : mapping, optional
        Per-step options, romancal style: ``{"jump": {"rejection_threshold": 500},
        "linearity": {"skip": True}, "flatfield": {"override_flat": "f.asdf"}}``. Step aliases
        (``rampfit``, ``dark``, ``flat``, ``flat_field``) are accepted.
    config : path or mapping, optional
        A TOML/YAML/stpipe parameter file; ``steps`` wins over it.
    output : path, optional
        Write the result there (``.asdf`` or ``.zarr``).
    output_format : {"asdf", "zarr"}, optional
        Output format when ``output``/``save_results`` gives none by suffix.
    overwrite : bool
        Replace an existing output.
    save_results : bool
        Write ``<input>_cal.asdf`` next to the input (the Roman naming rule) when no
        ``output`` is given.
    crds_context : str, optional
        Pin the CRDS context (e.g. ``roman_0055.pmap``).
    overrides : mapping reftype -> path, optional
        Reference overrides for every step (``override_<reftype>`` per step also works).
    start_at, stop_after : str, optional
        Run only part of the pipeline (for resuming from saved intermediates).
    save_intermediate : iterable of str
        Step names whose output is also written (``_refpix``, ``_rampfit``... suffixes).
    chunks
        Dask chunks used to open a path (see :func:`romanxr.open_uncal`).
    check_saturated : bool
        After ``saturation``, test whether every pixel is saturated and, if so, return the
        defined zeroed image (algorithms.md section 1). The test is the one computation
        ``calibrate`` does before you ask: a reduction over the saturation flags. Pass False
        to keep the call entirely lazy.

    Notes
    -----
    The ``jump`` step (``rejection_threshold``...) runs inside ``ramp_fit`` when both are in
    the run: the same likelihood search, the same flags, one pass over the ramp. It runs on
    its own when the pipeline stops after it or its output is saved.

    Returns
    -------
    xarray.Dataset
        The (lazy) Level-2 image, or the last step's output with ``stop_after``. Effective
        parameters of every step are in ``attrs["step_parameters"]``.
    """
    from romanxr.refs import ReferenceResolver

    options = resolve_step_options(steps, config)
    source_path: Path | None = None
    if isinstance(data, xr.Dataset):
        ds = data
        if ds.encoding.get("source"):
            source_path = Path(ds.encoding["source"])
    else:
        from romanxr.io import open_cal, open_uncal

        source_path = Path(data)
        try:
            ds = open_uncal(source_path, chunks=chunks)
        except Exception:
            if start_at is None:
                raise
            ds = open_cal(source_path, chunks=chunks)
    resolver = ReferenceResolver(overrides=dict(overrides or {}), context=crds_context)

    names = [s.name for s in STEPS]
    first = names.index(get_step(start_at).name) if start_at else 0
    last = names.index(get_step(stop_after).name) if stop_after else len(names) - 1
    if first > last:
        raise ConfigError(f"start_at={start_at!r} comes after stop_after={stop_after!r}")
    intermediates = {get_step(n).name for n in save_intermediate}

    out_path = _output_path(output, save_results, source_path, output_format)
    if out_path is not None:
        from romanxr.io.atomic import check_output_path

        check_output_path(out_path, overwrite=overwrite, inputs=[source_path])

    selected = STEPS[first : last + 1]
    selected_names = {spec.name for spec in selected}
    folded_jump: dict[str, Any] | None = None
    for spec in selected:
        params = dict(options.get(spec.name, {}))
        skip = params.pop("skip", False)
        if spec.level == "image" and "resultant" in ds["data"].dims:
            raise ConfigError(f"step {spec.name!r} needs an image; run ramp_fit first")
        if spec.name == "jump" and not skip and _fold_jump(spec, selected_names, intermediates):
            # the likelihood jump search runs inside ramp_fit with the same threshold: one pass
            # over the ramp instead of two, identical flags (see romanxr.steps.jump)
            folded_jump = params
            continue
        if spec.name == "ramp_fit" and folded_jump is not None:
            params = _merge_jump_into_ramp_fit(folded_jump, params)
        if skip or (spec.imaging_only and not _is_imaging(ds)):
            log.info("step %s skipped", spec.name)
            if spec.cal_step:
                from romanxr.steps._common import skip_step

                ds = skip_step(ds, spec.cal_step)
            continue
        func = spec.load()
        log.info("step %s with %s", spec.name, params or "defaults")
        ds = func(ds, resolver=resolver, **params) if _takes_resolver(func) else func(ds, **params)
        if spec.name == "ramp_fit" and folded_jump is not None:
            ds.attrs.setdefault("step_parameters", {})["jump"] = {
                "rejection_threshold": params.get("rejection_threshold", 4.5),
                "run_inside": "ramp_fit",
            }
        if spec.name == "saturation" and check_saturated and last > names.index("saturation"):
            from romanxr.steps.saturated_exposure import is_fully_saturated, saturated_image

            if is_fully_saturated(ds):
                log.warning("every pixel is saturated: writing the zeroed image")
                ds = saturated_image(ds)
                break
        if spec.name in intermediates and source_path is not None:
            from romanxr.io.asdf_writer import to_asdf

            target = intermediate_path(source_path, spec.suffix, out_path)
            to_asdf(ds, target, overwrite=overwrite)
    if out_path is not None:
        write(ds, out_path, overwrite=overwrite)
    return ds


def _fold_jump(spec: StepSpec, selected: set[str], intermediates: set[str]) -> bool:
    return "ramp_fit" in selected and spec.name not in intermediates


def _merge_jump_into_ramp_fit(jump_params: Mapping[str, Any], params: dict) -> dict:
    merged = dict(params)
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
