"""Compile the ramp-fit kernels in a helper process while a cold first run does the rest.

The first run after an install compiles every numba kernel (tens of seconds of CPU; the
likelihood ramp fit alone is about half of it) before the first pixel is done, one kernel
after another, on one core. :func:`start` (called by ``romanxr calibrate``) looks in numba's
cache: when the ramp-fit kernel is not there it starts ``python -m romanxr.kernels.warm`` to
compile it on another core, while this process reads the files, builds the graph and compiles
the earlier steps' kernels itself. :func:`wait` (called by the ramp-fit and jump steps just
before their kernel runs) waits for that helper, so the kernel is then loaded from the cache
rather than compiled a second time. With a warm cache nothing is started and :func:`wait`
returns at once.

``romanxr demo`` starts the helper even earlier, before it simulates its exposure, through
:func:`compiling_ahead`, which also reaps the helper when the block ends, however it ends.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["GROUPS", "cache_is_cold", "compiling_ahead", "start", "wait"]

#: helper group -> (kernel module, name of its top-level compiled function)
GROUPS = {"ramp_likely": ("romanxr.kernels.ramp_likely", "_likely_block")}
#: the longest a step waits for a helper (seconds) before it compiles the kernel itself
WAIT_LIMIT = 600.0

_HELPERS: dict[str, subprocess.Popen] = {}
_LOCK = threading.Lock()


def _cache_folders(source: Path) -> list[Path]:
    """Where numba keeps the cache of functions defined in ``source``."""
    configured = os.environ.get("NUMBA_CACHE_DIR")
    if configured:  # numba then uses this folder only
        return [Path(configured)]
    # beside the source, or numba's per-user folder where that is not writable
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "numba"
    return [source.parent / "__pycache__", user]


def cache_is_cold(group: str) -> bool:
    """True when numba's cache holds no index for the group's kernel (nothing compiled yet).

    Looks for numba's index file (``<module>.<function>-<line>.py<ver>.nbi``) without
    importing numba or the kernel. An index left by an older version of the source counts
    as warm: numba then recompiles in this process, as it always did.
    """
    module, function = GROUPS[group]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False
    source = Path(spec.origin)
    pattern = f"{source.stem}.{function}-*.nbi"
    for folder in _cache_folders(source):
        if folder.is_dir() and next(folder.rglob(pattern), None) is not None:
            return False
    return True


def start(group: str = "ramp_likely") -> bool:
    """Start a helper compiling ``group`` when the cache is cold; whether one was started."""
    with _LOCK:
        if group in _HELPERS or not cache_is_cold(group):
            return False
        command = [sys.executable, "-m", "romanxr.kernels.warm", group]
        try:
            helper = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            return False  # no helper: the kernel compiles in this process, as before
        _HELPERS[group] = helper
    return True


def wait(group: str = "ramp_likely", limit: float = WAIT_LIMIT) -> None:
    """Wait for the helper compiling ``group``, if one runs (at most ``limit`` seconds)."""
    with _LOCK:
        helper = _HELPERS.get(group)
    if helper is None:
        return
    try:
        helper.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        helper.kill()
        helper.wait()


def _reap(helper: subprocess.Popen) -> None:
    """End ``helper`` if it still runs, and collect its exit status (no zombie is left)."""
    with contextlib.suppress(OSError):
        if helper.poll() is None:
            helper.kill()
        helper.wait()


@contextlib.contextmanager
def compiling_ahead(*groups: str) -> Iterator[list[str]]:
    """Start a helper for each cold group for the duration of a block.

    Inside the block, the steps that use a group's kernel wait for its helper (:func:`wait`)
    as they do after :func:`start`. When the block ends (normally, by an exception or by an
    interrupt) every helper it started is ended if it still runs and reaped; numba writes its
    cache files whole, so an interrupted helper leaves no broken entry behind.

    Parameters
    ----------
    *groups : str
        Names in :data:`GROUPS`; default ``("ramp_likely",)``.

    Yields
    ------
    list of str
        The groups a helper was started for (empty with a warm cache).
    """
    started = [group for group in groups or ("ramp_likely",) if start(group)]
    try:
        yield started
    finally:
        for group in started:
            with _LOCK:
                helper = _HELPERS.pop(group, None)
            if helper is not None:
                _reap(helper)


@atexit.register
def _stop() -> None:
    """A helper does not outlive its command (an interrupted run, an error)."""
    for helper in list(_HELPERS.values()):
        _reap(helper)
