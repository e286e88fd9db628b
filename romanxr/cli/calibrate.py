"""``romanxr calibrate``: the Exposure Level Pipeline on a file, as ``strun`` runs it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from romanxr.cli import batch
from romanxr.cli.options import (
    Command,
    add_config,
    add_crds_context,
    add_output,
    add_overwrite,
    add_progress,
    add_selection,
    add_verbose,
    keep_existing,
    output_for,
    parse_bool,
    progress,
    run_arguments,
    step_list,
)
from romanxr.cli.strun import add_strun_options, check_step_options
from romanxr.cli.text import plan_lines, wrap
from romanxr.errors import ConfigError

__all__ = ["COMMAND"]

#: stpipe class names and aliases of romancal's Exposure Level Pipeline (ignored if pasted)
STPIPE_CLASSES = {
    "romancal.pipeline.ExposurePipeline",
    "romancal.pipeline.exposure_pipeline.ExposurePipeline",
    "ExposurePipeline",
    "roman_elp",
}
_CONFIG_SUFFIXES = {".toml", ".yaml", ".yml", ".cfg"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="*_uncal.asdf file(s) (or saved intermediates with --start-at), a quoted glob, "
        "a romancal *_asn.json association or a folder; a leading stpipe class name or "
        "parameter file is accepted as strun takes it",
    )
    add_output(p)
    add_config(p)
    add_crds_context(p)
    p.add_argument(
        "--save-intermediate",
        "--save_intermediate",
        dest="save_intermediate",
        default="",
        help="comma-separated steps whose outputs are saved too (e.g. refpix,ramp_fit: "
        "*_refpix.asdf, *_rampfit.asdf)",
    )
    p.add_argument(
        "--output-format",
        "--output_format",
        dest="output_format",
        choices=["asdf", "zarr"],
        default=None,
        help="format of the output (default: by the -o suffix, else asdf)",
    )
    add_overwrite(p)
    add_selection(p)
    p.add_argument(
        "--save-results",
        "--save_results",
        dest="save_results",
        nargs="?",
        const=True,
        default=True,
        type=parse_bool,
        help="accepted for stpipe compatibility; the result is always written",
    )
    p.add_argument(
        "--dry-run",
        "--dry_run",
        dest="dry_run",
        action="store_true",
        help="print the plan (each step, whether it runs and why, its effective parameters, "
        "the files it would write) and stop: nothing is computed or written",
    )
    add_progress(p)
    batch.add_arguments(p)
    add_verbose(p)
    add_strun_options(p)


def steps_help() -> str:
    """Every step parameter as ``--steps.<step>.<parameter>=<default>`` with its help."""
    from romanxr.registry import STEPS

    lines = [
        "step parameters (--steps.<step>.<parameter>=<value>; romancal step names such as",
        "rampfit, dark_current, flat work too):",
    ]
    for spec in STEPS:
        alias = f" (also: {', '.join(spec.aliases)})" if spec.aliases else ""
        lines.append(f"  {spec.name}{alias}")
        for p in spec.parameters().values():
            lines.append(f"    --steps.{spec.name}.{p.name}={p.default!r}")
            lines.append(wrap(p.help))
    lines += [
        "",
        "exit codes: 0 ok, 1 unexpected error, 2 usage error, 3 bad input, 4 reference-file "
        "problem, 5 output not written",
    ]
    return "\n".join(lines)


def is_config_file(path: str) -> bool:
    """Whether a positional argument is an stpipe parameter file rather than an exposure."""
    p = Path(path)
    if p.suffix.lower() in _CONFIG_SUFFIXES:
        return True
    if p.suffix.lower() != ".asdf" or not p.is_file():
        return False
    try:
        import asdf

        with asdf.open(p, lazy_load=True, memmap=False) as af:
            return "roman" not in af.tree and ("steps" in af.tree or "class" in af.tree)
    except Exception:
        return False


def inputs_and_config(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """The input files, and the parameter file (``--config`` or a leading one, as strun
    takes it); a pasted stpipe class name is dropped."""
    inputs = [i for i in args.inputs if i not in STPIPE_CLASSES]
    config = args.config
    if len(inputs) >= 2 and is_config_file(inputs[0]):
        if config:
            raise ConfigError(f"two parameter files: {inputs[0]} and --config {config}")
        config = inputs.pop(0)
    return inputs, config


def input_and_config(args: argparse.Namespace) -> tuple[Path, str | None]:
    """The one input file and the parameter file (see :func:`inputs_and_config`)."""
    inputs, config = inputs_and_config(args)
    if len(inputs) != 1:
        raise ConfigError(f"calibrate takes one input file, got {inputs or 'none'}")
    return Path(inputs[0]), config


def run(args: argparse.Namespace, step_options: dict[str, dict[str, Any]]) -> int:
    from romanxr.schedule import compile_ahead

    if not args.dry_run:
        # a cold numba cache: the ramp-fit kernel compiles on another core meanwhile
        compile_ahead.start("ramp_likely")
    from romanxr import pipeline
    from romanxr.registry import STEPS, get_step

    check_step_options(step_options)
    inputs, config = inputs_and_config(args)
    if batch.is_batch(inputs):  # several files, a pattern, an association, a folder
        if args.show_params:
            raise ConfigError("--show-params shows the parameters of one exposure; give one file")
        return batch.run(args, step_options, inputs, config)
    source, config = input_and_config(args)
    # a partial run is named after its last step (r..._linearity.asdf), a whole one _cal
    last = get_step(args.stop_after) if args.stop_after else STEPS[-1]
    suffix = args.suffix or ("cal" if last is STEPS[-1] else last.suffix)
    out = output_for(args, source, suffix, create=not args.dry_run)
    save = step_list(args.save_intermediate)
    crds = None
    if args.save_parameters or args.show_params or args.dry_run:
        crds = crds_layer(args, source)
    if args.save_parameters:
        pipeline.export_config(args.save_parameters, steps=step_options, config=config, crds=crds)
    if args.show_params:
        return show_params(source, config, step_options, crds)
    if args.dry_run:
        return dry_run(args, source, config, out, save, step_options, crds)
    keep_existing(args, out)
    from romanxr.schedule import local_threads

    with local_threads(), progress(args.progress, f"calibrate {source.name}"):
        pipeline.calibrate(source, output=out, **run_arguments(args, step_options, config))
    print(out)
    return 0


def dry_run(
    args: argparse.Namespace,
    source: Path,
    config: str | None,
    out: Path,
    save: list[str],
    step_options: dict[str, dict[str, Any]],
    crds: Any = None,
) -> int:
    """Print the plan :func:`romanxr.calibrate` would carry out, and the files it would write."""
    from romanxr.pipeline import (
        intermediate_path,
        open_exposure,
        plan,
        requested_steps,
        resolve_step_options,
    )
    from romanxr.refs import ReferenceResolver
    from romanxr.registry import override_options

    options = resolve_step_options(step_options, config, crds)
    runs = plan(
        options,
        open_exposure(source),
        start_at=args.start_at,
        stop_after=args.stop_after,
        save_intermediate=save,
        source=source,
        requested=requested_steps(step_options, config),
        resolver=ReferenceResolver(context=args.crds_context, option_hints=override_options()),
    )
    print(f"plan for {source} (dry run: nothing computed or written)")
    for line in plan_lines(runs):
        print(line)
    writes = [intermediate_path(source, r.spec.suffix, out) for r in runs if r.save] + [out]
    for path in writes:
        note = (
            " (exists: refused with --no-overwrite)" if path.exists() and not args.overwrite else ""
        )
        print(f"writes {path}{note}")
    return 0


def crds_layer(args: argparse.Namespace, source: Path) -> Any:
    """The CRDS ``pars-*`` step parameters of the input (none with --disable-crds-steppars)."""
    from romanxr.pipeline import crds_step_options, open_exposure

    meta = open_exposure(source).attrs.get("meta", {})
    disable = True if args.disable_crds_steppars else None
    return crds_step_options(meta, context=args.crds_context, disable=disable)


def show_params(
    source: Path, config: str | None, step_options: dict[str, dict[str, Any]], crds: Any
) -> int:
    """Print every step's effective parameters with where each value comes from."""
    from romanxr.pipeline import effective_parameters, parameter_sources, resolve_step_options
    from romanxr.registry import STEPS

    options = resolve_step_options(step_options, config, crds)
    sources = parameter_sources(step_options, config, crds, given="command line")
    used = (
        "disabled"
        if crds.disabled
        else ", ".join(f"{t} {Path(p).name}" for t, p in crds.references.items()) or "none"
    )
    print(f"effective step parameters for {source} (CRDS step parameters: {used})")
    for spec in STEPS:
        values = effective_parameters(spec, options.get(spec.name))
        for name, value in values.items():
            print(f"  --steps.{spec.name}.{name}={value!r}  [{sources[spec.name][name]}]")
    return 0


COMMAND = Command(
    name="calibrate",
    help="run the Exposure Level Pipeline on an uncal file",
    description="Run the Exposure Level Pipeline: INPUT_uncal.asdf -> INPUT_cal.asdf. "
    "strun arguments can be pasted after 'romanxr calibrate'.",
    add_arguments=add_arguments,
    run=run,
    epilog=steps_help,
    takes_step_options=True,
    computes=True,
)
