"""The ``romanxr`` command line.

``romanxr calibrate r..._uncal.asdf --steps.jump.rejection_threshold=500`` runs the Exposure
Level Pipeline like ``strun romancal.pipeline.ExposurePipeline ...`` does, and accepts the same
spellings: a pasted ``romancal.pipeline.ExposurePipeline``/``roman_elp`` class name is ignored,
a leading stpipe parameter file is read as ``--config``, ``--steps.<step>.<param>=<value>``
(or ``--steps.<step>.<param> <value>``) with romancal step names (``rampfit``,
``dark_current``, ``flat``...), ``--save_results``, ``--output_file``, ``--output_dir``.

Subcommands: ``calibrate``, ``step`` (one step, e.g. on a saved intermediate), ``steps`` (list
parameters), ``refs`` (which reference files, no compute), ``info`` (summarize a file),
``demo``.

Logging goes through the ``romanxr`` logger only (quiet by default, ``-v`` info, ``-vv``
debug); a dask progress bar is shown on a terminal (``--progress`` forces it,
``--no-progress`` turns it off).

Exit codes: 0 success, 1 unexpected error, 2 usage error (bad option, step or parameter),
3 bad input file, 4 reference-file problem, 5 output could not be written.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from romanxr.errors import (
    ConfigError,
    InputError,
    OutputError,
    ReferenceFileError,
    RomanxrError,
)

__all__ = ["EXIT_CODES", "build_parser", "main"]

EXIT_CODES = {"ok": 0, "error": 1, "usage": 2, "input": 3, "reference": 4, "output": 5}

log = logging.getLogger("romanxr")

#: stpipe class names and aliases of romancal's Exposure Level Pipeline (ignored if pasted)
_STPIPE_CLASSES = {
    "romancal.pipeline.ExposurePipeline",
    "romancal.pipeline.exposure_pipeline.ExposurePipeline",
    "ExposurePipeline",
    "roman_elp",
}
_CONFIG_SUFFIXES = {".toml", ".yaml", ".yml", ".cfg"}


class _UsageError(Exception):
    """argparse wanted to exit with a usage error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise _UsageError(f"{self.prog}: {message}")


def _bool(text: str) -> bool:
    low = str(text).strip().lower()
    if low in {"true", "yes", "on", "1", "t", "y"}:
        return True
    if low in {"false", "no", "off", "0", "f", "n"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _steps_help() -> str:
    from romanxr.pipeline import STEPS

    lines = [
        "step parameters (--steps.<step>.<parameter>=<value>; romancal step names such as",
        "rampfit, dark_current, flat work too):",
    ]
    for spec in STEPS:
        alias = f" (also: {', '.join(spec.aliases)})" if spec.aliases else ""
        lines.append(f"  {spec.name}{alias}")
        for p in spec.parameters().values():
            lines.append(f"    --steps.{spec.name}.{p.name}={p.default!r}")
            lines.append(_wrap(p.help))
    lines += [
        "",
        "exit codes: 0 ok, 1 unexpected error, 2 usage error, 3 bad input, 4 reference-file "
        "problem, 5 output not written",
    ]
    return "\n".join(lines)


def _wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, width=96, initial_indent=" " * 8, subsequent_indent=" " * 8)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-v", "--verbose", action="count", default=0, dest="verbose_sub", help="more log output"
    )


def _add_progress(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show a progress bar (default: only on a terminal)",
    )
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to generate the CLI reference in the docs)."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="romanxr",
        description="Calibrate Roman WFI exposures (uncal.asdf -> cal.asdf) with xarray/dask.",
        formatter_class=fmt,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    cal = sub.add_parser(
        "calibrate",
        help="run the Exposure Level Pipeline on an uncal file",
        description="Run the Exposure Level Pipeline: INPUT_uncal.asdf -> INPUT_cal.asdf. "
        "strun arguments can be pasted after 'romanxr calibrate'.",
        formatter_class=fmt,
        epilog="",  # filled in main() so that -h lists every step parameter
    )
    cal.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="*_uncal.asdf file (or a saved intermediate with --start-at); a leading stpipe "
        "class name or parameter file is accepted as strun takes it",
    )
    cal.add_argument(
        "-o",
        "--output",
        "--output_file",
        "--output-file",
        dest="output",
        help="output path (default: the input's name with _cal, by the Roman naming rule)",
    )
    cal.add_argument(
        "--output-dir", "--output_dir", dest="output_dir", help="folder for every output"
    )
    cal.add_argument("--config", help="TOML/YAML/stpipe parameter file (command line wins)")
    cal.add_argument(
        "--crds-context", "--crds_context", dest="crds_context", help="e.g. roman_0055.pmap"
    )
    cal.add_argument(
        "--save-intermediate",
        "--save_intermediate",
        dest="save_intermediate",
        default="",
        help="comma-separated steps whose outputs are saved too (e.g. refpix,ramp_fit: "
        "*_refpix.asdf, *_rampfit.asdf)",
    )
    cal.add_argument(
        "--output-format",
        "--output_format",
        dest="output_format",
        choices=["asdf", "zarr"],
        default=None,
        help="format of the output (default: by the -o suffix, else asdf)",
    )
    cal.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    cal.add_argument("--start-at", "--start_at", dest="start_at", help="first step to run")
    cal.add_argument("--stop-after", "--stop_after", dest="stop_after", help="last step to run")
    cal.add_argument(
        "--save-results",
        "--save_results",
        dest="save_results",
        nargs="?",
        const=True,
        default=True,
        type=_bool,
        help="accepted for stpipe compatibility; the result is always written",
    )
    _add_progress(cal)
    _add_common(cal)

    one = sub.add_parser(
        "step",
        help="run one step on a file (uncal or a saved intermediate)",
        description="Run one step: 'romanxr step saturation r..._dqinit.asdf' writes "
        "r..._saturation.asdf. Parameters as --<param>=<value> or --steps.<step>.<param>=...",
        formatter_class=fmt,
    )
    one.add_argument("step", help="step name (romanxr steps lists them)")
    one.add_argument("input", help="input file")
    one.add_argument("-o", "--output", "--output_file", "--output-file", dest="output")
    one.add_argument("--output-dir", "--output_dir", dest="output_dir")
    one.add_argument("--overwrite", action="store_true")
    one.add_argument("--crds-context", "--crds_context", dest="crds_context")
    _add_progress(one)
    _add_common(one)

    steps = sub.add_parser("steps", help="list steps and their parameters with defaults")
    steps.add_argument("step", nargs="?", help="only this step")
    _add_common(steps)

    refs = sub.add_parser(
        "refs",
        help="which reference file each step would use, and from where (no compute)",
        formatter_class=fmt,
    )
    refs.add_argument("input")
    refs.add_argument("--crds-context", "--crds_context", dest="crds_context")
    refs.add_argument("--config", help="TOML/YAML/stpipe parameter file (override_* options)")
    _add_common(refs)

    info = sub.add_parser("info", help="summarize a Roman file (uncal, ramp intermediate, cal)")
    info.add_argument("input")
    _add_common(info)

    demo = sub.add_parser("demo", help="simulate an exposure with references and calibrate it")
    demo.add_argument("--output", default="demo-output", help="folder for everything written")
    demo.add_argument(
        "--size",
        type=int,
        default=256,
        help="frame size in pixels with the border, a multiple of 256",
    )
    _add_progress(demo)
    _add_common(demo)
    return parser


def _collect_step_options(
    extra: list[str], default_step: str | None = None
) -> dict[str, dict[str, Any]]:
    """Pull ``--steps.a.b=c`` (or ``--steps.a.b c``) out of the unparsed arguments.

    With ``default_step`` (``romanxr step``), ``--<param>=<value>`` also sets that step's
    parameter. Anything else is a usage error.
    """
    from romanxr.config import parse_step_option

    options: dict[str, dict[str, Any]] = {}
    unknown: list[str] = []
    i = 0
    while i < len(extra):
        token = extra[i]
        if default_step and token.startswith("--") and not token.startswith("--steps."):
            token = f"--steps.{default_step}.{token[2:]}"
        if token.startswith("--steps."):
            if "=" not in token:
                if i + 1 >= len(extra) or extra[i + 1].startswith("--"):
                    raise ConfigError(f"{token}: expected {token}=<value>")
                token = f"{token}={extra[i + 1]}"
                i += 1
            step, param, value = parse_step_option(token)
            options.setdefault(step, {})[param] = value
        else:
            unknown.append(token)
        i += 1
    if unknown:
        raise _UsageError(f"romanxr: unrecognized arguments: {' '.join(unknown)}")
    return options


def _progress(enabled: bool | None) -> contextlib.AbstractContextManager:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return contextlib.nullcontext()
    from dask.diagnostics import ProgressBar

    return ProgressBar(out=sys.stderr)


def _configure_logging(verbosity: int) -> None:
    """Level and one stderr handler on the ``romanxr`` logger; no other logger is touched."""
    logger = logging.getLogger("romanxr")
    if not any(getattr(h, "_romanxr_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
        handler._romanxr_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(
        logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    )


def _is_config_file(path: str) -> bool:
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


def _output_for(args: argparse.Namespace, source: Path, suffix: str) -> Path:
    from romanxr.pipeline import output_name

    fmt = args.output_format if hasattr(args, "output_format") else None
    if args.output:
        out = Path(args.output)
        if not out.suffix:
            out = out.with_name(out.name + (".zarr" if fmt == "zarr" else ".asdf"))
    else:
        out = output_name(source, suffix, ".zarr" if fmt == "zarr" else ".asdf")
    if args.output_dir:
        folder = Path(args.output_dir)
        try:  # an explicit output folder is created (as strun does)
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create --output-dir {folder}: {exc}") from exc
        out = folder / out.name
    return out


def _cmd_calibrate(args: argparse.Namespace, step_options: dict) -> int:
    from romanxr.pipeline import calibrate

    inputs = [i for i in args.inputs if i not in _STPIPE_CLASSES]
    config = args.config
    if len(inputs) == 2 and _is_config_file(inputs[0]):
        if config:
            raise ConfigError(f"two parameter files: {inputs[0]} and --config {config}")
        config = inputs.pop(0)
    if len(inputs) != 1:
        raise ConfigError(f"calibrate takes one input file, got {inputs or 'none'}")
    source = Path(inputs[0])
    from romanxr.pipeline import STEPS, get_step

    # a partial run is named after its last step (r..._linearity.asdf), a whole one _cal
    last = get_step(args.stop_after) if args.stop_after else STEPS[-1]
    out = _output_for(args, source, "cal" if last is STEPS[-1] else last.suffix)
    save = [s.strip() for s in args.save_intermediate.split(",") if s.strip()]
    with _progress(args.progress):
        calibrate(
            source,
            steps=step_options,
            config=config,
            output=out,
            overwrite=args.overwrite,
            crds_context=args.crds_context,
            start_at=args.start_at,
            stop_after=args.stop_after,
            save_intermediate=save,
        )
    print(out)
    return 0


def _cmd_step(args: argparse.Namespace, step_options: dict) -> int:
    from romanxr.pipeline import calibrate, get_step

    spec = get_step(args.step)
    source = Path(args.input)
    out = _output_for(args, source, spec.suffix)
    with _progress(args.progress):
        calibrate(
            source,
            steps=step_options,
            output=out,
            overwrite=args.overwrite,
            crds_context=args.crds_context,
            start_at=spec.name,
            stop_after=spec.name,
            check_saturated=False,
        )
    print(out)
    return 0


def _cmd_steps(args: argparse.Namespace, step_options: dict) -> int:
    from romanxr.pipeline import STEPS, get_step

    specs = [get_step(args.step)] if args.step else list(STEPS)
    for spec in specs:
        func = spec.load()
        summary = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
        alias = f" (also: {', '.join(spec.aliases)})" if spec.aliases else ""
        print(f"{spec.name}{alias}: {summary}")
        for p in spec.parameters().values():
            print(f"    {p.name} = {p.default!r}")
            print(_wrap(p.help))
    return 0


def _cmd_refs(args: argparse.Namespace, step_options: dict) -> int:
    from romanxr.pipeline import STEPS, _is_imaging, open_exposure, resolve_step_options
    from romanxr.refs import REFTYPES_BY_STEP, ReferenceResolver

    options = resolve_step_options(step_options, args.config)
    ds = open_exposure(args.input)
    resolver = ReferenceResolver(context=args.crds_context)
    failures = 0
    print(f"{'step':16s} {'reftype':22s} reference  [source]")
    for spec in STEPS:
        params = options.get(spec.name, {})
        # jump reads the ramp_fit references (its search runs inside ramp_fit by default)
        reftypes = REFTYPES_BY_STEP.get("ramp_fit" if spec.name == "jump" else spec.key, ())
        if params.get("skip"):
            print(f"{spec.name:16s} {'-':22s} skipped (--steps.{spec.name}.skip)")
            continue
        if spec.imaging_only and not _is_imaging(ds):
            print(f"{spec.name:16s} {'-':22s} N/A (not an imaging exposure)")
            continue
        if not reftypes:
            print(f"{spec.name:16s} {'-':22s} (no reference file)")
            continue
        for reftype in reftypes:
            explicit = params.get(f"override_{reftype}")
            try:
                ref = resolver.resolve(reftype, ds, explicit=explicit)
            except ReferenceFileError as exc:
                failures += 1
                print(f"{spec.name:16s} {reftype:22s} ERROR: {exc}")
                continue
            where = ref.source + (f" {ref.context}" if ref.context else "")
            print(f"{spec.name:16s} {reftype:22s} {ref.path or 'N/A'}  [{where}]")
    return EXIT_CODES["reference"] if failures else 0


def _cmd_info(args: argparse.Namespace, step_options: dict) -> int:
    from romanxr.pipeline import open_exposure

    ds = open_exposure(args.input, chunks=None)
    meta = ds.attrs.get("meta", {})
    exposure = meta.get("exposure", {})
    instrument = meta.get("instrument", {})
    dims = ds["data"].dims if "data" in ds else ()
    if "resultant" in dims:
        kind = "ramp (Level 1 uncal)" if "groupdq" not in ds else "ramp (calibrated intermediate)"
    else:
        kind = "image (Level 2)"
    print(f"file:        {args.input}")
    print(f"product:     {kind}  model_type {meta.get('model_type', '?')}")
    print(
        f"detector:    {instrument.get('detector', '?')}  optical element "
        f"{instrument.get('optical_element', '?')}"
    )
    print(f"exposure:    {exposure.get('type', '?')}  start {exposure.get('start_time', '?')}")
    pattern = exposure.get("read_pattern")
    nres = len(pattern) if pattern is not None else "?"
    print(
        f"MA table:    {exposure.get('ma_table_name', '?')} "
        f"(number {exposure.get('ma_table_number', '?')}), {nres} resultants, frame_time "
        f"{exposure.get('frame_time', '?')} s"
    )
    sizes = ", ".join(f"{d}={n}" for d, n in ds.sizes.items())
    print(f"dims:        {sizes}")
    for name, var in ds.data_vars.items():
        print(f"  {name:22s} {var.dtype!s:8s} {var.dims}")
    cal_step = meta.get("cal_step") or {}
    if cal_step:
        print("cal_step:    " + ", ".join(f"{k}={v}" for k, v in cal_step.items()))
    ref_file = {
        k: v
        for k, v in (meta.get("ref_file") or {}).items()
        if isinstance(v, str) and v not in {"?", "N/A", ""}
    }
    if ref_file:
        print("ref_file:    " + ", ".join(f"{k}={v}" for k, v in ref_file.items()))
    context = ((meta.get("ref_file") or {}).get("crds") or {}).get("context")
    if context:
        print(f"crds:        {context}")
    params = ds.attrs.get("step_parameters") or {}
    for step, values in params.items():
        print(f"parameters:  {step}: {values}")
    return 0


def _cmd_demo(args: argparse.Namespace, step_options: dict) -> int:
    from romanxr.demo import run_demo

    progress = sys.stderr.isatty() if args.progress is None else args.progress
    run_demo(Path(args.output), size=args.size, progress=progress)
    return 0


_COMMANDS = {
    "calibrate": _cmd_calibrate,
    "step": _cmd_step,
    "steps": _cmd_steps,
    "refs": _cmd_refs,
    "info": _cmd_info,
    "demo": _cmd_demo,
}


_BOOL_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0", "t", "f", "y", "n"}


def _join_values(argv: list[str]) -> list[str]:
    """``--steps.a.b VALUE`` -> ``--steps.a.b=VALUE`` (so VALUE is never taken for the input)
    and a bare ``--save_results`` -> ``--save_results=true`` (strun accepts both)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        following = argv[i + 1] if i + 1 < len(argv) else None
        if token.startswith("--steps.") and "=" not in token and following is not None:
            if not following.startswith("--"):
                token = f"{token}={following}"
                i += 1
        elif token in {"--save_results", "--save-results"}:
            if following is not None and following.lower() in _BOOL_WORDS:
                token = f"{token}={following}"
                i += 1
            else:
                token = f"{token}=true"
        out.append(token)
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``romanxr`` console script; returns the exit code."""
    argv = _join_values(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    if argv and argv[0] == "calibrate" and any(a in ("-h", "--help") for a in argv):
        sub = parser._subparsers._group_actions[0].choices["calibrate"]  # type: ignore[union-attr]
        sub.epilog = _steps_help()
    verbosity = 0
    try:
        args, extra = parser.parse_known_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_CODES["usage"]
        verbosity = max(args.verbose, getattr(args, "verbose_sub", 0) or 0)
        _configure_logging(verbosity)
        default_step = args.step if args.command == "step" else None
        step_options = _collect_step_options(extra, default_step)
        if step_options and args.command not in {"calibrate", "step", "refs"}:
            raise ConfigError(f"--steps options do not apply to {args.command!r}")
        if args.command in {"calibrate", "step", "demo"}:
            # chunk-sized arrays reused instead of mapped anew (romanxr.schedule)
            from romanxr.schedule import tune_allocator

            tune_allocator()
        return _COMMANDS[args.command](args, step_options)
    except _UsageError as exc:
        print(f"{exc}", file=sys.stderr)
        return EXIT_CODES["usage"]
    except ConfigError as exc:
        print(f"romanxr: usage error: {exc}", file=sys.stderr)
        return EXIT_CODES["usage"]
    except ReferenceFileError as exc:
        print(f"romanxr: reference file problem: {exc}", file=sys.stderr)
        return EXIT_CODES["reference"]
    except OutputError as exc:
        print(f"romanxr: cannot write output: {exc}", file=sys.stderr)
        return EXIT_CODES["output"]
    except (InputError, FileNotFoundError, IsADirectoryError) as exc:
        print(f"romanxr: bad input: {exc}", file=sys.stderr)
        return EXIT_CODES["input"]
    except RomanxrError as exc:
        print(f"romanxr: error: {exc}", file=sys.stderr)
        return EXIT_CODES["error"]
    except KeyboardInterrupt:
        print("romanxr: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"romanxr: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if verbosity:
            traceback.print_exc()
        else:
            print("(run with -v for the traceback)", file=sys.stderr)
        return EXIT_CODES["error"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
