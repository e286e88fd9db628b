"""What every ``romanxr`` subcommand shares: the parser class, the :class:`Command` each
subcommand module defines, the common options, and the strun-style ``--steps.<step>.<param>``
arguments.

A new option for one subcommand goes into that subcommand's ``add_arguments``; an option
several subcommands take gets an ``add_<what>`` function here, called by each of them.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from romanxr.errors import ConfigError, OutputError

__all__ = [
    "EXIT_CODES",
    "CliParser",
    "Command",
    "UsageError",
    "add_config",
    "add_crds_context",
    "add_output",
    "add_progress",
    "add_selection",
    "add_verbose",
    "collect_step_options",
    "join_values",
    "output_for",
    "parse_bool",
    "progress",
    "step_list",
]

EXIT_CODES = {"ok": 0, "error": 1, "usage": 2, "input": 3, "reference": 4, "output": 5}


class UsageError(Exception):
    """argparse wanted to exit with a usage error."""


class CliParser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}")


@dataclass(frozen=True)
class Command:
    """A subcommand: its parser and what it runs.

    Attributes
    ----------
    name, help : str
        ``romanxr <name>``, and its line in ``romanxr -h``.
    add_arguments : callable
        Adds the subcommand's options to its parser.
    run : callable
        ``run(args, step_options) -> exit code``; ``step_options`` are the
        ``--steps.<step>.<param>=<value>`` arguments as ``{step: {param: value}}``.
    description : str, optional
        The text at the top of ``romanxr <name> -h``.
    epilog : callable, optional
        Text at the end of ``-h``, made only when help is asked for (it may be slow).
    takes_step_options : bool
        Whether ``--steps.<step>.<param>`` options apply.
    step_argument : str, optional
        The parsed argument naming a step whose parameters may also be given as bare
        ``--<param>=<value>`` (``romanxr step saturation --n_pix_grow_sat=1``).
    computes : bool
        Whether it computes pixels (the allocator is tuned for it).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, dict[str, dict[str, Any]]], int]
    description: str | None = None
    epilog: Callable[[], str] | None = None
    takes_step_options: bool = False
    step_argument: str | None = None
    computes: bool = False


def parse_bool(text: str) -> bool:
    """``true``/``false`` and their usual spellings (argparse type)."""
    low = str(text).strip().lower()
    if low in {"true", "yes", "on", "1", "t", "y"}:
        return True
    if low in {"false", "no", "off", "0", "f", "n"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


# ---------------------------------------------------------------- shared options


def add_verbose(p: argparse.ArgumentParser) -> None:
    """``-v``/``-vv`` after the subcommand (also accepted before it)."""
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        dest="verbose_sub",
        help="every log message (DEBUG), as strun's --verbose",
    )


def add_progress(p: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--no-progress`` (default: a bar only on a terminal)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show the progress bar redrawn in place (default: on a terminal or in a notebook; "
        "elsewhere one line per step)",
    )
    g.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress output"
    )


def add_output(p: argparse.ArgumentParser, default: str = "the input's name with _cal") -> None:
    """``-o/--output`` (strun's ``--output_file``) and ``--output-dir``; outputs go to the
    current directory by default, as strun writes them."""
    p.add_argument(
        "-o",
        "--output",
        "--output_file",
        "--output-file",
        dest="output",
        help=f"output path (default: {default}, by the Roman naming rule, in the current "
        "directory as strun writes it; not next to the input)",
    )
    p.add_argument(
        "--output-dir",
        "--output_dir",
        dest="output_dir",
        help="folder for every output (default: the current directory, as strun)",
    )


def add_overwrite(p: argparse.ArgumentParser) -> None:
    """``--overwrite``/``--no-overwrite``: outputs are replaced by default, as strun does.

    The replacement is atomic (a complete new file takes the old one's name), so a failed
    run leaves the old output in place.
    """
    p.add_argument(
        "--overwrite",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="replace existing outputs, as strun does (default); --no-overwrite refuses "
        "before computing anything",
    )


def keep_existing(args: argparse.Namespace, out: Path) -> None:
    """With ``--no-overwrite``, refuse an existing output before anything is computed."""
    if not args.overwrite and out.exists():
        raise OutputError(
            f"{out} already exists and --no-overwrite keeps it; remove the option to replace "
            "it (as strun does), or choose another name with -o/--output-dir"
        )


def add_config(p: argparse.ArgumentParser, what: str = "command line wins") -> None:
    """``--config FILE``: step parameters from a TOML/YAML/stpipe file."""
    p.add_argument("--config", help=f"TOML/YAML/stpipe parameter file ({what})")


def add_crds_context(p: argparse.ArgumentParser) -> None:
    """``--crds-context roman_NNNN.pmap``."""
    p.add_argument(
        "--crds-context", "--crds_context", dest="crds_context", help="e.g. roman_0055.pmap"
    )


def add_selection(p: argparse.ArgumentParser) -> None:
    """``--start-at`` / ``--stop-after``: a part of the pipeline."""
    p.add_argument("--start-at", "--start_at", dest="start_at", help="first step to run")
    p.add_argument("--stop-after", "--stop_after", dest="stop_after", help="last step to run")


def step_list(text: str) -> list[str]:
    """``"refpix, ramp_fit"`` -> ``["refpix", "ramp_fit"]``."""
    return [s.strip() for s in text.split(",") if s.strip()]


def run_arguments(
    args: argparse.Namespace, step_options: dict[str, dict[str, Any]], config: str | None
) -> dict[str, Any]:
    """The keywords of a pipeline run that ``calibrate`` takes from the command line, the same
    for one file (:func:`romanxr.pipeline.calibrate`) and for a batch (``dt.roman.calibrate``)."""
    return {
        "steps": step_options,
        "config": config,
        "crds_context": args.crds_context,
        "start_at": args.start_at,
        "stop_after": args.stop_after,
        "save_intermediate": step_list(args.save_intermediate),
        "overwrite": args.overwrite,
        # --disable-crds-steppars: no pars-* look-up; else stpipe's default (look them up
        # unless $STPIPE_DISABLE_CRDS_STEPPARS says no)
        "crds_steppars": False if getattr(args, "disable_crds_steppars", False) else None,
    }


# ---------------------------------------------------------------- strun-style arguments

_BOOL_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0", "t", "f", "y", "n"}


def join_values(argv: list[str]) -> list[str]:
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


def _unrecognized(unknown: list[str], known_options: Sequence[str]) -> UsageError:
    """The usage error for arguments nobody takes, with a did-you-mean for near misses."""
    import difflib

    # compare with '-' and '_' alike (strun users type --output_dir), and answer in the
    # spelling the user typed when the option has both
    spellings: dict[str, list[str]] = {}
    for option in known_options:
        if option.startswith("--"):
            spellings.setdefault(option[2:].replace("-", "_"), []).append(option)
    notes = []
    for token in unknown:
        name = token.split("=", 1)[0]
        if not name.startswith("--"):
            continue
        best = difflib.get_close_matches(name[2:].replace("-", "_"), list(spellings), 1, 0.75)
        if best:
            options = spellings[best[0]]
            dashed = "-" in name[2:] and "_" not in name[2:]
            pick = next((o for o in options if ("-" in o[2:]) == dashed), options[0])
            notes.append(
                f"did you mean {pick}?" if len(unknown) == 1 else f"{name}: did you mean {pick}?"
            )
    hint = f" ({'; '.join(notes)})" if notes else ""
    return UsageError(f"romanxr: unrecognized arguments: {' '.join(unknown)}{hint}")


def collect_step_options(
    extra: list[str],
    default_step: str | None = None,
    known_options: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """Pull ``--steps.a.b=c`` (or ``--steps.a.b c``) out of the unparsed arguments.

    With ``default_step`` (``romanxr step``), ``--<param>=<value>`` also sets that step's
    parameter. Anything else is a usage error, which suggests the closest of
    ``known_options`` (the subcommand's own options) for a mistyped one.
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
        raise _unrecognized(unknown, known_options)
    return options


# ---------------------------------------------------------------- running


def progress(enabled: bool | None, label: str) -> contextlib.AbstractContextManager:
    """The labelled progress bar of one calibration on stderr (``None``: a bar redrawn in
    place on a terminal; elsewhere one line per step, unless the INFO log already gives
    them; False: nothing)."""
    import logging

    from romanxr.schedule.progress import progress_for

    if enabled is None and not _isatty(sys.stderr):
        if logging.getLogger("romanxr").isEnabledFor(logging.INFO):
            # strun's INFO log already says each step, one line each: it is the progress
            return contextlib.nullcontext()
    return progress_for(enabled, label, sys.stderr)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def output_for(args: argparse.Namespace, source: Path, suffix: str, *, create: bool = True) -> Path:
    """The output path from ``-o``/``--output-dir``/``--output-format`` (default: the input's
    name with ``suffix`` in the current directory, where strun writes it); an explicit
    ``--output-dir`` is created (as strun does) unless ``create`` is False."""
    from romanxr.pipeline import output_name

    fmt = getattr(args, "output_format", None)
    ext = ".zarr" if fmt == "zarr" else ".asdf"
    if args.output:
        out = Path(args.output)
        if not out.suffix:
            out = out.with_name(out.name + ext)
    else:
        out = Path(output_name(source, suffix, ext).name)  # relative: the current directory
    if args.output_dir:
        folder = Path(args.output_dir)
        if create:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"cannot create --output-dir {folder}: {exc}") from exc
        out = folder / out.name
    return out
