"""``romanxr warm``: compile the numba kernels now, so that the first calibration is fast."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from romanxr.cli.options import Command, add_verbose

__all__ = ["COMMAND"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_verbose(p)


def run(args: argparse.Namespace, step_options: dict[str, dict[str, Any]]) -> int:
    from romanxr.demo import warm_kernels

    print("romanxr: compiling kernels into numba's cache…", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    warm_kernels()
    print(f"romanxr: kernels ready ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return 0


COMMAND = Command(
    name="warm",
    help="compile the kernels into numba's cache (the first run after an install is then fast)",
    add_arguments=add_arguments,
    run=run,
)
