"""The ``romanxr`` command line.

``romanxr calibrate r..._uncal.asdf --steps.jump.rejection_threshold=500`` runs the Exposure
Level Pipeline like ``strun romancal.pipeline.ExposurePipeline ...`` does, and accepts the same
spellings: a pasted ``romancal.pipeline.ExposurePipeline``/``roman_elp`` class name is ignored,
a leading stpipe parameter file is read as ``--config``, ``--steps.<step>.<param>=<value>``
(or ``--steps.<step>.<param> <value>``) with romancal step names (``rampfit``,
``dark_current``, ``flat``...), ``--save_results``, ``--output_file``, ``--output_dir``.
``--dry-run`` prints the plan instead of running it.

Subcommands: ``calibrate``, ``step`` (one step, e.g. on a saved intermediate), ``steps`` (list
parameters), ``refs`` (which reference files, no compute), ``info`` (summarize a file),
``demo``, ``warm`` (compile the kernels into numba's cache; ``make`` runs it at install).

Logging goes through the ``romanxr`` logger only, in stpipe's line format: INFO by default as
strun logs, ``-v`` debug (strun's ``--verbose``), ``--log-level``/``--log-file``/
``--log-stream`` as strun's; the logger is put back as it was when the command returns. A
dask progress bar is shown on a terminal (``--progress`` forces it, ``--no-progress`` turns
it off).

Exit codes: 0 success, 1 unexpected error, 2 usage error (bad option, step or parameter),
3 bad input file, 4 reference-file problem, 5 output could not be written.

Layout: one module per subcommand (``romanxr/cli/<name>.py``), each defining a
:class:`~romanxr.cli.options.Command` (``COMMAND``) with its options and what it runs;
:mod:`romanxr.cli.options` holds what they share. A new subcommand is a new module listed in
:data:`COMMANDS`; a new option goes into its subcommand's ``add_arguments`` (or, shared, into an
``add_<what>`` function of :mod:`romanxr.cli.options`).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Collection, Sequence
from typing import Any

from romanxr.cli import calibrate, demo, info, refs, step, steps, warm
from romanxr.cli.options import (
    EXIT_CODES,
    CliParser,
    Command,
    UsageError,
    collect_step_options,
    join_values,
)
from romanxr.errors import (
    ConfigError,
    InputError,
    OutputError,
    ReferenceFileError,
    RomanxrError,
)
from romanxr.logsetup import command_logging

__all__ = ["COMMANDS", "EXIT_CODES", "build_parser", "main"]

#: The subcommands, in the order ``romanxr -h`` lists them.
COMMANDS: tuple[Command, ...] = tuple(
    m.COMMAND for m in (calibrate, step, steps, refs, info, demo, warm)
)
_BY_NAME = {c.name: c for c in COMMANDS}

#: errors -> (exit code, message prefix); the first matching class wins
_ERRORS: tuple[tuple[Any, str, str], ...] = (
    (UsageError, "usage", ""),
    (ConfigError, "usage", "romanxr: usage error: "),
    (ReferenceFileError, "reference", "romanxr: reference file problem: "),
    (OutputError, "output", "romanxr: cannot write output: "),
    ((InputError, FileNotFoundError, IsADirectoryError), "input", "romanxr: bad input: "),
    (RomanxrError, "error", "romanxr: error: "),
)


def build_parser(epilogs: bool | Collection[str] = True) -> argparse.ArgumentParser:
    """The argument parser (also used to generate the CLI reference in the docs).

    Parameters
    ----------
    epilogs : bool or collection of str
        Which subcommands get their long epilog (``calibrate``: every step parameter, which
        imports every step): all (True), none (False), or those named.
    """
    fmt = argparse.RawDescriptionHelpFormatter
    parser = CliParser(
        prog="romanxr",
        description="Calibrate Roman WFI exposures (uncal.asdf -> cal.asdf) with xarray/dask.",
        formatter_class=fmt,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("--version", action="store_true", help="print romanxr's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser)
    parser.subcommand_parsers = {}  # type: ignore[attr-defined]
    for command in COMMANDS:
        wanted = epilogs if isinstance(epilogs, bool) else command.name in epilogs
        p = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            formatter_class=fmt,
            epilog=command.epilog() if wanted and command.epilog else None,
        )
        command.add_arguments(p)
        parser.subcommand_parsers[command.name] = p  # type: ignore[attr-defined]
    return parser


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string a parser accepts (for did-you-mean suggestions)."""
    return [s for action in parser._actions for s in action.option_strings]


def _run(args: argparse.Namespace, extra: list[str], known_options: list[str]) -> int:
    """Run the parsed subcommand; ``extra`` holds the ``--steps.<step>.<param>`` options."""
    command = _BY_NAME[args.command]
    default_step = getattr(args, command.step_argument) if command.step_argument else None
    step_options = collect_step_options(extra, default_step, known_options)
    if step_options and not command.takes_step_options:
        raise ConfigError(f"--steps options do not apply to {command.name!r}")
    if command.computes:
        # chunk-sized arrays reused instead of mapped anew (romanxr.schedule)
        from romanxr.schedule import tune_allocator

        tune_allocator()
        # a first run compiles the numba kernels (tens of seconds): say so after 2 s
        from romanxr.cli.compiling import announcing_compilation

        with announcing_compilation():
            return command.run(args, step_options)
    return command.run(args, step_options)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``romanxr`` console script; returns the exit code."""
    argv = join_values(list(sys.argv[1:] if argv is None else argv))
    asks_help = any(a in ("-h", "--help") for a in argv)
    verbosity = 0
    try:
        parser = build_parser(epilogs=argv[:1] if asks_help else False)
        args, extra = parser.parse_known_args(argv)
        if args.version:
            from romanxr._version import __version__

            print(f"romanxr {__version__}")
            return 0
        if args.command is None:
            # a mistyped top-level option (romanxr --verison) is named, with a suggestion
            collect_step_options(extra, None, _option_strings(parser))
            parser.print_help(sys.stderr)
            return EXIT_CODES["usage"]
        verbosity = max(args.verbose, getattr(args, "verbose_sub", 0) or 0)
        known = _option_strings(parser.subcommand_parsers[args.command]) + _option_strings(parser)
        with command_logging(
            getattr(args, "log_level", None),
            verbosity=verbosity,
            log_file=getattr(args, "log_file", None),
            log_stream=getattr(args, "log_stream", None),
        ):
            return _run(args, extra, known)
    except KeyboardInterrupt:
        print("romanxr: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        return _report(exc, verbose=verbosity > 0)


def _report(exc: Exception, *, verbose: bool) -> int:
    """Print an error the way users should see it and return its exit code."""
    for kinds, code, prefix in _ERRORS:
        if isinstance(exc, kinds):
            # an error that knows its command-line wording (e.g. --overwrite) uses it
            text = exc.cli_message() if hasattr(exc, "cli_message") else exc
            print(f"{prefix}{text}", file=sys.stderr)
            return EXIT_CODES[code]
    print(f"romanxr: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
    if verbose:
        traceback.print_exc()
    else:
        print("(run with -v for the traceback)", file=sys.stderr)
    return EXIT_CODES["error"]
