"""strun's own options on ``romanxr calibrate``: those romanxr honours, and those it refuses.

Every option of stpipe's ``strun`` parser (``stpipe._cmdline``) is either added here with its
meaning or listed in :data:`REFUSED` with the reason; ``tests/cli/test_strun_options.py``
builds stpipe's parser and fails on an option that is neither.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from romanxr.errors import ConfigError

__all__ = [
    "REFUSED",
    "REFUSED_STEP_PARAMETERS",
    "add_log_options",
    "add_strun_options",
    "check_step_options",
]

#: strun options romanxr refuses, with the reason the user is told
REFUSED: dict[str, str] = {
    "--debug": "romanxr does not start pdb; run 'python -m pdb -m romanxr calibrate ...' "
    "or add -v for the traceback",
    "--logcfg": "deprecated in stpipe and not read by romanxr; use --log-level, --log-file "
    "and --log-stream",
    "--pre_hooks": "romanxr runs no stpipe hooks; call the steps from Python instead",
    "--post_hooks": "romanxr runs no stpipe hooks; call the steps from Python instead",
    "--output_ext": "use --output-format asdf|zarr (or an -o name ending in .asdf/.zarr)",
    "--output_use_model": "romanxr names outputs from the input file (or -o), never from "
    "the model's meta.filename",
    "--output_use_index": "romanxr writes one output per input; there is no index to add",
    "--search_output_file": "romanxr names outputs from the input file (or -o)",
    "--input_dir": "give the input's path instead",
    "--update_version": "romanxr does not migrate datamodel versions",
    "--skip": "skipping the whole pipeline writes nothing; skip steps with "
    "--steps.<step>.skip=true",
    "--on_disk": "romanxr always streams through chunks and needs no on-disk model mode",
}

#: per-step stpipe parameters refused on the command line (``--steps.<step>.<name>``)
REFUSED_STEP_PARAMETERS: dict[str, str] = {
    "output_file": "romanxr names a saved intermediate <input>_<step suffix>.asdf next to "
    "the output; choose its folder with --output-dir",
    "suffix": "romanxr's intermediate suffixes are fixed (romanxr steps lists them)",
    "output_dir": "intermediates go beside the output; use --output-dir for all of them",
    "output_ext": "intermediates are ASDF",
    "output_use_model": "intermediates are named from the input file",
    "output_use_index": "intermediates are named from the input file",
    "search_output_file": "intermediates are named from the input file",
    "input_dir": "steps read the pipeline's data, not files",
    "pre_hooks": "romanxr runs no stpipe hooks",
    "post_hooks": "romanxr runs no stpipe hooks",
    "update_version": "romanxr does not migrate datamodel versions",
}


class _Refuse(argparse.Action):
    """An option strun has that romanxr refuses, with the reason."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("nargs", "?")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        raise ConfigError(f"{option}: not supported by romanxr calibrate ({REFUSED[option]})")


def add_log_options(g: Any) -> None:
    """strun's ``--log-level``, ``--log-file`` and ``--log-stream`` (on a parser or group)."""
    g.add_argument(
        "--log-level",
        "--log_level",
        dest="log_level",
        help="DEBUG, INFO, WARNING, ERROR or CRITICAL (default INFO, as strun); -v is DEBUG",
    )
    g.add_argument(
        "--log-file", "--log_file", dest="log_file", help="also write the log to this file"
    )
    g.add_argument(
        "--log-stream",
        "--log_stream",
        dest="log_stream",
        choices=["stderr", "stdout", "null"],
        help="where log lines go on the terminal (default stderr)",
    )


def add_strun_options(p: argparse.ArgumentParser) -> None:
    """strun's logging, parameter and naming options, and the refused ones."""
    g = p.add_argument_group("strun options")
    g.add_argument(
        "--save-parameters",
        "--save_parameters",
        dest="save_parameters",
        metavar="FILE",
        help="write the effective step parameters as an stpipe parameter file (.asdf) that "
        "romancal's strun and romanxr --config read",
    )
    g.add_argument(
        "--disable-crds-steppars",
        "--disable_crds_steppars",
        dest="disable_crds_steppars",
        action="store_true",
        help="do not look up CRDS step-parameter references (pars-rampfitstep...); by "
        "default they are used, below --config and the command line, as strun does "
        "(STPIPE_DISABLE_CRDS_STEPPARS=true also turns them off)",
    )
    g.add_argument(
        "--show-params",
        "--show_params",
        dest="show_params",
        action="store_true",
        help="print every effective step parameter and where it comes from (default, CRDS "
        "pars-* reference, config file, command line) and stop: nothing is computed",
    )
    add_log_options(g)
    g.add_argument(
        "--suffix",
        help="suffix of the output's name instead of cal (r..._<suffix>.asdf), as strun's --suffix",
    )
    for option in REFUSED:
        g.add_argument(option, action=_Refuse, help=argparse.SUPPRESS)


def check_step_options(step_options: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse the per-step stpipe parameters romanxr would otherwise ignore."""
    for step, params in step_options.items():
        for name in params:
            if name in REFUSED_STEP_PARAMETERS:
                raise ConfigError(
                    f"--steps.{step}.{name}: not supported by romanxr calibrate "
                    f"({REFUSED_STEP_PARAMETERS[name]})"
                )
