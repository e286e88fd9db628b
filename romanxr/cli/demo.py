"""``romanxr demo``: simulate an exposure with its references, calibrate it, plot it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from romanxr.cli.options import Command, add_progress, add_verbose

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default="demo-output", help="folder for everything written")
    p.add_argument(
        "--size",
        type=int,
        default=256,
        help="frame size in pixels with the border, a multiple of 256",
    )
    p.add_argument(
        "--detectors",
        type=int,
        default=1,
        help="simulate and calibrate WFI01 ... WFI<N> of one exposure (18: all) and draw "
        "them in their focal-plane layout; default 1 (the one-detector demo)",
    )
    add_progress(p)
    add_verbose(p)


def run(args: argparse.Namespace, step_options: dict[str, dict[str, Any]]) -> int:
    from romanxr.demo import run_demo, run_exposure_demo

    if args.detectors != 1:
        run_exposure_demo(Path(args.output), detectors=args.detectors, size=args.size)
        return 0
    run_demo(Path(args.output), size=args.size, progress=args.progress)
    return 0


COMMAND = Command(
    name="demo",
    help="simulate an exposure with references and calibrate it",
    add_arguments=add_arguments,
    run=run,
    computes=True,
)
