"""``romanxr steps``: the steps and their parameters with defaults and help."""

from __future__ import annotations

import argparse
from typing import Any

from romanxr.cli.options import Command, add_verbose
from romanxr.cli.text import wrap

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("step", nargs="?", help="only this step")
    add_verbose(p)


def run(args: argparse.Namespace, step_options: dict[str, dict[str, Any]]) -> int:
    from romanxr.registry import STEPS, get_step

    specs = [get_step(args.step)] if args.step else list(STEPS)
    for spec in specs:
        func = spec.load()
        summary = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
        alias = f" (also: {', '.join(spec.aliases)})" if spec.aliases else ""
        print(f"{spec.name}{alias}: {summary}")
        for p in spec.parameters().values():
            print(f"    {p.name} = {p.default!r}")
            print(wrap(p.help))
    return 0


COMMAND = Command(
    name="steps",
    help="list steps and their parameters with defaults",
    add_arguments=add_arguments,
    run=run,
)
