""":func:`calibrate`: the Exposure Level Pipeline in one call (plan, then execute)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from romanxr.errors import ConfigError
from romanxr.pipeline.executor import execute
from romanxr.pipeline.options import (
    crds_step_options,
    parameter_sources,
    requested_steps,
    resolve_step_options,
)
from romanxr.pipeline.planning import StepRun, plan
from romanxr.pipeline.products import (
    has_catalog,
    intermediate_path,
    measured,
    open_exposure,
    output_path,
    wcs_path,
    write,
    write_products,
)
from romanxr.pipeline.run_log import recording_logs
from romanxr.refs import ReferenceResolver
from romanxr.registry import override_options

__all__ = ["calibrate"]

log = logging.getLogger("romanxr")


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
    crds_steppars: bool | None = None,
) -> xr.Dataset:
    """Run the Exposure Level Pipeline lazily and return the calibrated Dataset.

    The steps run in romancal's order (:data:`romanxr.registry.STEPS`): dq_init, saturation,
    refpix, dark_decay, wfi18_transient, linearity, jump, ramp_fit, dark_current, assign_wcs,
    photom, flatfield, source_catalog, tweakreg. The last two run by default on WFI_IMAGE
    and WFI_LOLO exposures, as in romancal; a default run that lacks what it needs
    (APCORR/EPSF references; a local ``abs_refcat``, since the default ``GAIADR3_S3`` needs
    the network) is SKIPPED with the reason logged at INFO, while asking for the step
    (``skip=False``, ``abs_refcat=...``) makes that an error. With ``output``, the catalog
    and segmentation map are written beside the cal (``_cat.parquet``, ``_segm.asdf``).
    ``ds.roman.dq_init().roman.saturation()...`` chained by hand gives the
    same result. What runs, with which parameters, is decided first by
    :func:`romanxr.pipeline.plan` (``romanxr calibrate --dry-run`` prints it) and then carried
    out by :func:`romanxr.pipeline.execute`.

    Parameter precedence, lowest first, as in stpipe: step defaults < CRDS step-parameter
    references (``pars-<step class>``, e.g. ``pars-rampfitstep``) < ``config`` file <
    ``steps``. The effective value of every parameter of every step that ran (defaults
    included) is recorded in ``attrs["step_parameters"][<cal_step key>]`` and where it came
    from in ``attrs["parameter_sources"]``, which the cal.asdf and Zarr writers store.

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
        defined zeroed image (as romancal's exposure pipeline does). The test is the one
        computation ``calibrate`` does before you ask: a reduction over the saturation flags.
        Pass False to keep the call entirely lazy.
    crds_steppars : bool, optional
        Look up CRDS ``pars-*`` step-parameter references (True), or not (False, strun's
        ``--disable-crds-steppars``). Default: look them up unless
        ``$STPIPE_DISABLE_CRDS_STEPPARS`` is true, as stpipe does.

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
    unless that is set for it explicitly). See :func:`romanxr.pipeline.fold_jump`.
    """
    arguments = dict(locals())
    with recording_logs() as lines:
        return _calibrate(lines=lines, **arguments)


def _calibrate(
    data: str | os.PathLike | xr.Dataset,
    *,
    steps: Mapping[str, Mapping[str, Any]] | None,
    config: str | os.PathLike | Mapping[str, Any] | None,
    output: str | os.PathLike | None,
    output_format: str | None,
    overwrite: bool,
    save_results: bool,
    crds_context: str | None,
    overrides: Mapping[str, str | os.PathLike] | None,
    start_at: str | None,
    stop_after: str | None,
    save_intermediate: Iterable[str],
    chunks: Any,
    check_saturated: bool,
    crds_steppars: bool | None,
    lines: list[str],
) -> xr.Dataset:
    """:func:`calibrate`'s work, while ``lines`` records the run's log lines."""
    ds, source = _open(data, chunks)
    crds = crds_step_options(
        ds.attrs.get("meta", {}),
        context=crds_context,
        disable=None if crds_steppars is None else not crds_steppars,
    )
    options = resolve_step_options(steps, config, crds)
    resolver = ReferenceResolver(
        overrides={k: os.fspath(v) for k, v in (overrides or {}).items()},
        context=crds_context,
        option_hints=override_options(),
    )
    runs = plan(
        options,
        ds,
        start_at=start_at,
        stop_after=stop_after,
        save_intermediate=save_intermediate,
        check_saturated=check_saturated,
        source=source,
        requested=requested_steps(steps, config),
        resolver=resolver,
    )
    out_path = output_path(output, save_results, source, output_format)
    if out_path is not None:
        from romanxr.io.atomic import check_output_path

        inputs = [str(source)] if source else []
        check_output_path(
            out_path,
            overwrite=overwrite,
            inputs=inputs,
            kind="directory" if out_path.suffix == ".zarr" else "file",
        )
        if out_path.suffix != ".zarr":
            check_output_path(wcs_path(out_path), overwrite=overwrite, inputs=inputs)
        if any(r.name == "source_catalog" and r.action == "run" for r in runs):
            from romanxr.io.catalog_io import catalog_paths

            for target in catalog_paths(out_path):
                check_output_path(target, overwrite=overwrite, inputs=inputs)
    if any(run.save for run in runs) and source is None and out_path is None:
        raise ConfigError("saving intermediates needs an input path or output=...")

    def save(run: StepRun, result: xr.Dataset) -> None:
        target = intermediate_path(source or out_path, run.spec.suffix, out_path)
        log.info("writing %s", target)
        write(result, target, overwrite=overwrite)

    ds = execute(runs, ds, resolver=resolver, save=save)
    ds = _with_sources(ds, runs, parameter_sources(steps, config, crds), crds)
    if out_path is not None:
        log.info("writing %s", out_path)
        if has_catalog(ds):
            log.info("and its catalog and segmentation map (_cat.parquet, _segm.asdf)")
        # measured first: the image and its catalog in one computation, which the returned
        # Dataset keeps (its meta.cal_logs then has the lines above)
        ds = with_cal_logs(measured(ds), lines)
        write_products(ds, out_path, overwrite=overwrite, wcs=True)
        return ds
    return with_cal_logs(ds, lines)


def with_cal_logs(ds: xr.Dataset, lines: list[str]) -> xr.Dataset:
    """A shallow copy of a Level-2 image with ``meta.cal_logs`` = the run's log lines (as
    romancal records them in every image it returns); a ramp is returned as it is."""
    if "data" not in ds or ds["data"].ndim != 2:
        return ds
    attrs = dict(ds.attrs)
    attrs["meta"] = {**attrs.get("meta", {}), "cal_logs": list(lines)}
    out = ds.copy(deep=False)
    out.attrs = attrs
    return out


def _open(data: str | os.PathLike | xr.Dataset, chunks: Any) -> tuple[xr.Dataset, Path | None]:
    """The exposure Dataset and the file it comes from (None when not known)."""
    if isinstance(data, xr.Dataset):
        source = data.encoding.get("source")
        return data, Path(source) if source else None
    return open_exposure(data, chunks=chunks), Path(data)


def _with_sources(
    ds: xr.Dataset,
    runs: Iterable[StepRun],
    sources: Mapping[str, Mapping[str, str]],
    crds: Any,
) -> xr.Dataset:
    """A shallow copy of ``ds`` recording where each planned step's parameters came from
    (``attrs["parameter_sources"][<cal_step key>]``) and which CRDS ``pars-*`` references
    were used (``attrs["crds_step_parameters"]``: ``{reftype: file name}``, or
    ``"disabled"``)."""
    out = ds.copy(deep=False)
    attrs = dict(ds.attrs)
    recorded = {}
    for run in runs:
        names = {k: v for k, v in sources.get(run.name, {}).items() if k != "save_results"}
        recorded[run.spec.key] = names
    attrs["parameter_sources"] = recorded
    attrs["crds_step_parameters"] = (
        "disabled" if crds.disabled else {t: Path(p).name for t, p in crds.references.items()}
    )
    out.attrs = attrs
    return out
