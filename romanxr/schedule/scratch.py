"""Scratch files: one private directory per run, safe on machines shared with other users.

Every scratch file romanxr makes (refpix's corrections, the ASDF writer's chunk store) lives
in one directory per process, made on the first request with :func:`tempfile.mkdtemp` (mode
0700, so no other user can list it, read it or plant a name in it) under
``$ROMANXR_TMPDIR``, else ``$TMPDIR``, else the system's temporary directory. A full-frame
calibration needs about 64 MiB there per resultant for refpix and the size of the output's
arrays for the writer.

* Files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and opened with ``O_NOFOLLOW``:
  a name that already exists, a symlink above all, is never written through.
* The directory is removed at exit (:mod:`atexit`) and on SIGTERM, SIGINT and SIGHUP (the
  signal's previous or default behaviour follows the cleanup; Python's own SIGINT handling
  raises KeyboardInterrupt, and the directory goes at exit).
* ``kill -9`` leaves the directory behind. Its name records the process id and a start
  token (boot id and the process's start time), so the first scratch request of a later run
  removes the directories of runs that are dead: their pid is gone, or is now another
  process with another start time. Age does not matter, so a long run is never swept.

Worker processes on the same machine (a ``LocalCluster``) open files by the full path that
the graph carries; a worker that cannot see the file (another machine) recomputes instead.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "ENV_VAR",
    "count_read",
    "read_rows",
    "run_dir",
    "scratch_path",
    "temporary_file",
    "write_frames",
]

#: Environment variable naming the folder for scratch directories (before ``TMPDIR``).
ENV_VAR = "ROMANXR_TMPDIR"
#: Next to a file written by :func:`write_frames`, one byte per reader that has read it.
READS_SUFFIX = ".reads"
_NAME = re.compile(r"^romanxr-(\d+)-([0-9a-z.]+)-[^/]+$")
_CREATE = os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_OPEN = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")

_lock = threading.RLock()
_state: dict[str, Any] = {"dir": None, "pid": None, "signals": False}
_previous: dict[int, Any] = {}


def base_dir() -> str:
    """The folder that holds the run directories: ``$ROMANXR_TMPDIR``, ``$TMPDIR`` or the
    system default."""
    for var in (ENV_VAR, "TMPDIR"):
        if os.environ.get(var):
            return os.environ[var]
    return tempfile.gettempdir()


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def start_token(pid: int) -> str:
    """``<boot id>.<start time>`` of process ``pid`` (Linux); ``x`` where it is not known."""
    stat = _read(f"/proc/{pid}/stat")
    boot = _read("/proc/sys/kernel/random/boot_id")
    if stat is None or boot is None:
        return "x"
    start = stat[stat.rindex(")") + 2 :].split()[19]  # field 22: start time in clock ticks
    return f"{boot.strip().replace('-', '')[:8]}.{start}"


def _alive(pid: int, token: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    return token == "x" or start_token(pid) in (token, "x")


def sweep(folder: str) -> list[str]:
    """Remove this user's run directories in ``folder`` whose run is dead; their paths."""
    removed = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            match = _NAME.match(entry.name)
            if match is None or not entry.is_dir(follow_symlinks=False):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                    continue
                if _alive(int(match.group(1)), match.group(2)):
                    continue
                shutil.rmtree(entry.path)
                removed.append(entry.path)
    return removed


def run_dir() -> str:
    """This process's private scratch directory (made, after a :func:`sweep`, on first use).

    Raises OSError when it cannot be made.
    """
    with _lock:
        pid = os.getpid()
        if _state["dir"] is not None and _state["pid"] == pid and os.path.isdir(_state["dir"]):
            return _state["dir"]
        folder = base_dir()
        sweep(folder)
        path = tempfile.mkdtemp(prefix=f"romanxr-{pid}-{start_token(pid)}-", dir=folder)
        _state.update(dir=path, pid=pid)
        if not _state["signals"]:
            atexit.register(cleanup)
            _install_signal_handlers()
        return path


def cleanup() -> None:
    """Remove this process's scratch directory (a later request makes a new one)."""
    with _lock:
        path, pid = _state["dir"], _state["pid"]
        _state["dir"] = None
    if path is not None and pid == os.getpid():
        shutil.rmtree(path, ignore_errors=True)


def _on_signal(signum: int, frame: Any) -> None:
    cleanup()
    previous = _previous.get(signum)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_signal_handlers() -> None:
    """Clean up on SIGTERM/SIGINT/SIGHUP (only possible from the main thread; elsewhere the
    directory is removed at exit or by the next run's sweep)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for name in _SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        previous = signal.getsignal(signum)
        if previous in (signal.SIG_IGN, _on_signal) or previous is None:
            continue
        if previous is signal.default_int_handler:
            # Python's own SIGINT: KeyboardInterrupt, then atexit at exit. Not removing the
            # directory here keeps an interactive session (which goes on after Ctrl-C) usable.
            continue
        _previous[signum] = previous
        signal.signal(signum, _on_signal)
    _state["signals"] = True


def scratch_path(name: str) -> str | None:
    """Path for a file ``name`` in the run directory; None when there is no run directory."""
    try:
        return os.path.join(run_dir(), name)
    except OSError:
        return None


def temporary_file(prefix: str = "scratch-") -> Any:
    """A new unbuffered read-write file in the run directory, already unlinked (so it leaves
    nothing behind whichever way the process ends). Raises OSError."""
    path = os.path.join(run_dir(), f"{prefix}{secrets.token_hex(8)}")
    fd = os.open(path, os.O_RDWR | _CREATE, 0o600)
    with contextlib.suppress(OSError):
        os.unlink(path)
    return os.fdopen(fd, "r+b", buffering=0)


def write_frames(path: str | None, frames: Iterable[np.ndarray]) -> str | None:
    """Write ``frames`` one after the other (raw C order) to ``path``; ``path``, or None
    when the file could not be written.

    The file appears at ``path`` only once complete (written under a private name, then
    renamed), with an empty read counter next to it (:func:`count_read`).
    """
    if path is None:
        return None
    part = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.part"
    try:
        fd = os.open(part, os.O_WRONLY | _CREATE, 0o600)
    except OSError:
        return None
    try:
        offset = 0
        for frame in frames:
            view = memoryview(np.ascontiguousarray(frame)).cast("B")
            while view:
                done = os.pwrite(fd, view, offset)
                view, offset = view[done:], offset + done
        os.close(fd)
        fd = -1
        with contextlib.suppress(FileNotFoundError):  # a counter of an earlier compute
            os.unlink(path + READS_SUFFIX)
        os.close(os.open(path + READS_SUFFIX, os.O_WRONLY | _CREATE, 0o600))
        os.replace(part, path)
    except OSError:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(part)
        return None
    return path


def read_rows(
    path: str | None, shape: tuple[int, int, int], dtype: Any, rows: slice
) -> np.ndarray | None:
    """Rows ``rows`` of every frame of a :func:`write_frames` file of frames ``shape[1:]``;
    None when the file cannot be read (e.g. on another machine)."""
    if path is None:
        return None
    n, ny, width = shape
    lo, hi, _ = rows.indices(ny)
    out = np.empty((n, hi - lo, width), dtype=dtype)
    item = out.dtype.itemsize
    try:
        fd = os.open(path, os.O_RDONLY | _OPEN)
    except OSError:
        return None
    try:
        for r in range(n):
            got = os.preadv(fd, [memoryview(out[r]).cast("B")], (r * ny + lo) * width * item)
            if got != out[r].nbytes:
                return None
    except OSError:
        return None
    finally:
        os.close(fd)
    return out


def count_read(path: str, readers: int) -> None:
    """Record one more read of ``path``; remove it once ``readers`` reads are counted.

    An ``O_APPEND`` write of one byte is atomic, so readers that run at the same time, in
    threads or in worker processes on this machine, each count once, in any order. A failure
    to count leaves the file to the directory's cleanup.
    """
    with contextlib.suppress(OSError):
        fd = os.open(path + READS_SUFFIX, os.O_WRONLY | os.O_APPEND | _OPEN)
        try:
            os.write(fd, b"r")
            count = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if count >= readers:
            for name in (path, path + READS_SUFFIX):
                with contextlib.suppress(OSError):
                    os.unlink(name)
