"""Measurement helpers shared by the benchmark scripts (Linux: reads /proc).

Peak memory of a child process must not be read from ``ru_maxrss`` (``os.wait4``,
``resource.getrusage``) when the parent is large: Linux carries the parent's resident
high-water mark into the child at ``exec`` (the forked copy of the parent counts), so a
``python -c pass`` started from a 1 GiB parent reports a 1 GiB peak. Two ways round it here:

- in the measured process itself, :func:`peak_rss_bytes` reads ``VmHWM``, which belongs to the
  process's own address space and starts afresh at ``exec``;
- for a whole command, :func:`run_measured` starts it under ``/usr/bin/time`` (a small process,
  so nothing large is inherited) and also samples the resident size of the command's whole
  process tree, which is what matters for a command that starts worker processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "CATALOG_STEPS",
    "PeakRSS",
    "ProcessUsage",
    "calibration_only",
    "peak_rss_bytes",
    "rss_bytes",
    "run_measured",
]

#: the steps after the calibration proper, on by default for imaging exposures since issue 15;
#: the benchmarks that time the calibration skip them explicitly, so that their figures stay
#: comparable with the earlier ones (bench_catalog.py measures these two)
CATALOG_STEPS = ("source_catalog", "tweakreg")


def calibration_only(steps: dict | None = None) -> dict:
    """``steps`` (romanxr.calibrate's) with source_catalog and tweakreg skipped."""
    out = {name: dict(options) for name, options in (steps or {}).items()}
    for name in CATALOG_STEPS:
        out.setdefault(name, {})["skip"] = True
    return out


def _status_kib(field: str, pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes() -> int:
    """Current resident set size of this process (bytes)."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size of this process's own address space (``VmHWM``, bytes)."""
    return _status_kib("VmHWM") * 1024


class PeakRSS:
    """Context manager sampling the resident set size in a thread while the block runs.

    Attributes ``start`` and ``peak`` (bytes) are set; ``added`` is ``peak - start``.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval

    def __enter__(self) -> PeakRSS:
        self.start = rss_bytes()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def added(self) -> int:
        """Peak minus the resident size at the start (bytes)."""
        return self.peak - self.start


@dataclass
class ProcessUsage:
    """What one command cost: exit code, wall and CPU seconds, peak memory."""

    returncode: int
    wall_s: float
    cpu_s: float
    #: the largest single process's peak (GNU time's %M)
    peak_bytes: int
    #: the largest sampled sum over the command's process tree (workers included)
    tree_peak_bytes: int

    @property
    def peak_gib(self) -> float:
        """The larger of the two peaks, in GiB."""
        return max(self.peak_bytes, self.tree_peak_bytes) / 2**30


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


def _tree_rss(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _status_kib("VmRSS", p) * 1024
        todo.extend(_children(p))
    return total


def run_measured(
    cmd: list[Any],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
    interval: float = 0.2,
) -> ProcessUsage:
    """Run ``cmd`` to the end under ``/usr/bin/time`` and return what it cost.

    ``env`` is added to this process's environment. Wall time is measured here; CPU time
    (user + system, the command's waited-for children included) and the single-process peak
    come from GNU time; the process-tree peak is sampled every ``interval`` seconds.
    """
    gnu_time = shutil.which("time", path="/usr/bin:/bin") or "/usr/bin/time"
    if not os.path.exists(gnu_time):
        raise SystemExit("the benchmarks need GNU time (/usr/bin/time): apt install time")
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as fh:
        record = Path(fh.name)
    try:
        full = [gnu_time, "-q", "-f", "%e %U %S %M", "-o", str(record), *map(str, cmd)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            full, env={**os.environ, **(env or {})}, cwd=cwd, stdout=stdout, stderr=stderr
        )
        tree_peak = 0
        while proc.poll() is None:
            tree_peak = max(tree_peak, _tree_rss(proc.pid))
            time.sleep(interval)
        wall = time.perf_counter() - t0
        fields = record.read_text().split()[-4:]
    finally:
        record.unlink(missing_ok=True)
    user, system, max_kib = float(fields[1]), float(fields[2]), int(fields[3])
    # the time process itself is a few MiB of the tree sum: leave it in, it is small
    return ProcessUsage(proc.returncode, wall, user + system, max_kib * 1024, tree_peak)
