"""Text the subcommands print: wrapped help, and a pipeline plan step by step."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `romanxr -h` must not import the pipeline
    from romanxr.pipeline import StepRun

__all__ = ["plan_lines", "wrap"]


def wrap(text: str, indent: int = 8) -> str:
    """``text`` filled to 96 columns, indented."""
    return textwrap.fill(
        text, width=96, initial_indent=" " * indent, subsequent_indent=" " * indent
    )


def action_text(run: StepRun) -> str:
    """``run``, ``skip (why)`` or ``fold (why)``, plus what happens after the step."""
    from romanxr.pipeline.planning import RUN

    text = run.action if run.action == RUN else f"{run.action} ({run.reason})"
    if run.save:
        text += f"; its output is saved (_{run.spec.suffix})"
    if run.check_saturated:
        text += "; then, if every pixel is saturated, the zeroed image and stop"
    return text


def plan_lines(runs: Sequence[StepRun]) -> list[str]:
    """One line per step (position, name, action) and one per effective parameter."""
    lines = []
    for position, run in enumerate(runs, start=1):
        lines.append(f"{position:2d}. {run.name:16s} {action_text(run)}")
        lines += [f"        {k} = {v!r}" for k, v in run.record.items() if k != "skip"]
    return lines
