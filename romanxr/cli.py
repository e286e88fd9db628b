"""The ``romanxr`` command line.

``romanxr calibrate r..._uncal.asdf --steps.jump.rejection_threshold=500`` runs the Exposure
Level Pipeline like ``strun romancal.pipeline.ExposurePipeline ...`` does, and accepts the same
spellings (a pasted ``romancal.pipeline.ExposurePipeline`` class name is ignored,
``--steps.<step>.<param>=<value>``, ``--save_results``, ``--output_file``, ``--output_dir``).

Exit codes: 0 success, 1 unexpected error, 2 usage error, 3 bad input, 4 reference-file
problem, 5 output could not be written.
"""

from __future__ import annotations

import argparse
import logging
import sys
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

_STPIPE_CLASSES = {"romancal.pipeline.ExposurePipeline", "roman_elp", "ExposurePipeline"}


def _steps_help() -> str:
    from romanxr.pipeline import STEPS

    lines = ["step parameters (--steps.<step>.<parameter>=<value>):"]
    for spec in STEPS:
        try:
            params = spec.parameters()
        except ImportError:
            lines.append(f"  {spec.name}: (not available in this installation)")
            continue
        alias = f" (also: {', '.join(spec.aliases)})" if spec.aliases else ""
        lines.append(f"  {spec.name}{alias}")
        for p in params.values():
            text = f" {p.help}" if p.help else ""
            lines.append(f"    --steps.{spec.name}.{p.name}={p.default!r}{text}")
    return "\n".join(lines)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to generate the CLI reference in the docs)."""
    parser = argparse.ArgumentParser(
        prog="romanxr",
        description="Calibrate Roman WFI exposures (uncal.asdf -> cal.asdf) with xarray/dask.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    cal = sub.add_parser(
        "calibrate",
        help="run the Exposure Level Pipeline on an uncal file",
        formatter_class=_HelpFormatter,
        epilog="",  # filled lazily in main() so that -h lists every step parameter
    )
    cal.add_argument("inputs", nargs="+", metavar="INPUT", help="*_uncal.asdf file")
    cal.add_argument("-o", "--output", "--output_file", dest="output", help="output path")
    cal.add_argument("--output-dir", "--output_dir", dest="output_dir", help="output folder")
    cal.add_argument("--config", help="TOML/YAML/stpipe parameter file")
    cal.add_argument("--crds-context", "--crds_context", dest="crds_context")
    cal.add_argument(
        "--save-intermediate",
        "--save_intermediate",
        dest="save_intermediate",
        default="",
        help="comma-separated step names whose outputs are saved too (e.g. refpix,ramp_fit)",
    )
    cal.add_argument(
        "--output-format",
        "--output_format",
        dest="output_format",
        choices=["asdf", "zarr"],
        default="asdf",
    )
    cal.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    cal.add_argument("--start-at", "--start_at", dest="start_at")
    cal.add_argument("--stop-after", "--stop_after", dest="stop_after")
    cal.add_argument(
        "--save-results",
        "--save_results",
        dest="save_results",
        action="store_true",
        help="accepted for stpipe compatibility (always on)",
    )
    cal.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    cal.add_argument("-v", "--verbose", action="count", default=0, dest="verbose_sub")

    one = sub.add_parser("step", help="run one step on a file (saved intermediates too)")
    one.add_argument("step", help="step name")
    one.add_argument("input")
    one.add_argument("-o", "--output", "--output_file", dest="output")
    one.add_argument("--overwrite", action="store_true")
    one.add_argument("--crds-context", "--crds_context", dest="crds_context")
    one.add_argument("--no-progress", dest="progress", action="store_false")

    steps = sub.add_parser("steps", help="list steps and their parameters")
    steps.add_argument("step", nargs="?", help="only this step")

    refs = sub.add_parser("refs", help="which reference file each step would use (no compute)")
    refs.add_argument("input")
    refs.add_argument("--crds-context", "--crds_context", dest="crds_context")

    info = sub.add_parser("info", help="summarise a Roman file")
    info.add_argument("input")

    demo = sub.add_parser("demo", help="simulate an exposure with references and calibrate it")
    demo.add_argument("--output", default="demo-output", help="folder for everything written")
    demo.add_argument("--size", type=int, default=256, help="frame size in pixels (with border)")
    demo.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def _collect_step_options(extra: list[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Pull ``--steps.a.b=c`` (or ``--steps.a.b c``) out of the unparsed arguments."""
    from romanxr.config import parse_step_option

    options: dict[str, dict[str, Any]] = {}
    rest: list[str] = []
    i = 0
    while i < len(extra):
        token = extra[i]
        if token.startswith("--steps."):
            if "=" not in token and i + 1 < len(extra):
                token = f"{token}={extra[i + 1]}"
                i += 1
            step, param, value = parse_step_option(token)
            options.setdefault(step, {})[param] = value
        else:
            rest.append(token)
        i += 1
    return options, rest


def _progress(enabled: bool):
    import contextlib

    if not enabled or not sys.stderr.isatty():
        return contextlib.nullcontext()
    from dask.diagnostics import ProgressBar

    return ProgressBar(out=sys.stderr)


def _configure_logging(verbosity: int) -> None:
    # only romanxr's own logger: never the root logger or other packages'
    logger = logging.getLogger("romanxr")
    if not any(getattr(h, "_romanxr_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        handler._romanxr_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(
        logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    )


def _cmd_calibrate(args: argparse.Namespace, step_options: dict) -> int:
    from romanxr.pipeline import calibrate

    inputs = [i for i in args.inputs if i not in _STPIPE_CLASSES]
    if len(inputs) != 1:
        raise ConfigError(f"calibrate takes one input file, got {inputs or 'none'}")
    source = Path(inputs[0])
    from romanxr.pipeline import output_name

    ext = ".zarr" if args.output_format == "zarr" else ".asdf"
    out = Path(args.output) if args.output else output_name(source, "cal", ext)
    if args.output_dir:
        out = Path(args.output_dir) / out.name
    save = [s for s in args.save_intermediate.split(",") if s]
    with _progress(args.progress):
        calibrate(
            source,
            steps=step_options,
            config=args.config,
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
    from romanxr.pipeline import calibrate, get_step, output_name

    spec = get_step(args.step)
    source = Path(args.input)
    out = Path(args.output) if args.output else output_name(source, spec.suffix)
    with _progress(args.progress):
        calibrate(
            source,
            steps={spec.name: step_options.get(spec.name, {}), **step_options},
            output=out,
            overwrite=args.overwrite,
            crds_context=args.crds_context,
            start_at=spec.name,
            stop_after=spec.name,
        )
    print(out)
    return 0


def _cmd_steps(args: argparse.Namespace) -> int:
    from romanxr.pipeline import STEPS, get_step

    specs = [get_step(args.step)] if args.step else list(STEPS)
    for spec in specs:
        func = spec.load()
        summary = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
        print(f"{spec.name}: {summary}")
        for p in spec.parameters().values():
            print(f"    {p.name} = {p.default!r}  {p.help}")
    return 0


def _cmd_refs(args: argparse.Namespace) -> int:
    from romanxr.io import open_uncal
    from romanxr.pipeline import STEPS
    from romanxr.refs import REFTYPES_BY_STEP, ReferenceResolver

    ds = open_uncal(args.input)
    resolver = ReferenceResolver(context=args.crds_context)
    failures = 0
    for spec in STEPS:
        for reftype in REFTYPES_BY_STEP.get(spec.cal_step or spec.name, ()):
            try:
                ref = resolver.resolve(reftype, ds)
                where = ref.source + (f" ({ref.context})" if ref.context else "")
                print(f"{spec.name:16s} {reftype:22s} {ref.path or 'N/A'}  [{where}]")
            except ReferenceFileError as exc:
                failures += 1
                print(f"{spec.name:16s} {reftype:22s} ERROR: {exc}")
    return EXIT_CODES["reference"] if failures else 0


def _cmd_info(args: argparse.Namespace) -> int:
    from romanxr.io import open_roman_asdf

    ds = open_roman_asdf(args.input)
    meta = ds.attrs["meta"]
    exposure = meta.get("exposure", {})
    instrument = meta.get("instrument", {})
    print(f"file:        {args.input}")
    print(f"model:       {meta.get('model_type', '?')}")
    print(
        f"detector:    {instrument.get('detector', '?')}  filter: "
        f"{instrument.get('optical_element', '?')}"
    )
    print(f"exposure:    {exposure.get('type', '?')}  start {exposure.get('start_time', '?')}")
    print(
        f"MA table:    {exposure.get('ma_table_name', '?')}  read_pattern "
        f"{exposure.get('read_pattern', '?')}"
    )
    print(
        "arrays:      "
        + ", ".join(f"{k}{tuple(v.shape)} {v.dtype}" for k, v in ds.data_vars.items())
    )
    if "cal_step" in meta:
        print("cal_step:    " + ", ".join(f"{k}={v}" for k, v in meta["cal_step"].items()))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from romanxr.demo import run_demo

    run_demo(Path(args.output), size=args.size, progress=args.progress)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``romanxr`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if len(argv) >= 2 and argv[0] == "calibrate" and any(a in ("-h", "--help") for a in argv):
        sub = parser._subparsers._group_actions[0].choices["calibrate"]  # type: ignore[union-attr]
        sub.epilog = _steps_help()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_CODES["usage"]
    _configure_logging(max(args.verbose, getattr(args, "verbose_sub", 0) or 0))
    try:
        step_options, rest = _collect_step_options(extra)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        if args.command == "calibrate":
            return _cmd_calibrate(args, step_options)
        if args.command == "step":
            return _cmd_step(args, step_options)
        if step_options:
            raise ConfigError(f"--steps options only apply to calibrate/step, not {args.command}")
        return {"steps": _cmd_steps, "refs": _cmd_refs, "info": _cmd_info, "demo": _cmd_demo}[
            args.command
        ](args)
    except ConfigError as exc:
        print(f"romanxr: usage error: {exc}", file=sys.stderr)
        return EXIT_CODES["usage"]
    except ReferenceFileError as exc:
        print(f"romanxr: reference file problem: {exc}", file=sys.stderr)
        return EXIT_CODES["reference"]
    except OutputError as exc:
        print(f"romanxr: cannot write output: {exc}", file=sys.stderr)
        return EXIT_CODES["output"]
    except (InputError, FileNotFoundError) as exc:
        print(f"romanxr: bad input: {exc}", file=sys.stderr)
        return EXIT_CODES["input"]
    except RomanxrError as exc:
        print(f"romanxr: error: {exc}", file=sys.stderr)
        return EXIT_CODES["error"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
