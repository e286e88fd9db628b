"""Build something once per test session, whichever xdist worker asks for it first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

#: the file in the build folder that holds the build's exit code once it has finished
EXIT_CODE = "exit-code"


def build_once(root: Path, build: Callable[[Path], int]) -> int:
    """``build(root)``'s exit code, running it only if no process has built ``root`` yet.

    The check and the build happen under a file lock beside ``root``, so of several xdist
    workers that need the same build at once, one builds and the others wait for it and read
    its exit code (a failed build is not retried: every test that needs it fails alike).
    """
    from filelock import FileLock

    done = root / EXIT_CODE
    with FileLock(f"{root}.lock"):
        if not done.exists():
            root.mkdir(parents=True, exist_ok=True)
            done.write_text(str(build(root)))
        return int(done.read_text())
