"""``romanxr step``: one step on a file (an uncal or a saved intermediate)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from romanxr.cli.options import (
    Command,
    add_crds_context,
    add_output,
    add_overwrite,
    add_progress,
    add_verbose,
    keep_existing,
    output_for,
    progress,
)
from romanxr.cli.strun import add_log_options

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("step", help="step name (romanxr steps lists them)")
    p.add_argument("input", help="input file")
    add_output(p, default="the input's name with the step's suffix")
    add_overwrite(p)
    add_crds_context(p)
    add_progress(p)
    add_verbose(p)
    add_log_options(p.add_argument_group("strun logging options"))


def run(args: argparse.Namespace, step_options: dict[str, dict[str, Any]]) -> int:
    from romanxr import pipeline
    from romanxr.registry import get_step

    spec = get_step(args.step)
    source = Path(args.input)
    out = output_for(args, source, spec.suffix)
    keep_existing(args, out)
    with progress(args.progress, f"{spec.name} {source.name}"):
        pipeline.calibrate(
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


COMMAND = Command(
    name="step",
    help="run one step on a file (uncal or a saved intermediate)",
    description="Run one step: 'romanxr step saturation r..._dqinit.asdf' writes "
    "r..._saturation.asdf. Parameters as --<param>=<value> or --steps.<step>.<param>=...",
    add_arguments=add_arguments,
    run=run,
    takes_step_options=True,
    step_argument="step",
    computes=True,
)
