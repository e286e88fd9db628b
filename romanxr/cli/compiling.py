"""Say so when numba compiles: ``compiling kernels (first run only)…``.

The kernels are compiled on their first call after an install and cached on disk
(``cache=True``, in ``__pycache__`` or ``NUMBA_CACHE_DIR``); a first run therefore spends
tens of seconds in numba before any pixel is done. A command that computes listens for
numba's compile events (which fire on cache misses only) and prints one line on stderr once
compilation has gone on for :data:`NOTICE_AFTER` seconds, so a silent first run does not look
like a hang.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["NOTICE", "NOTICE_AFTER", "announce_compilation", "announcing_compilation"]

#: seconds of compiling before the line is printed
NOTICE_AFTER = 2.0
NOTICE = "romanxr: compiling kernels (first run only; `romanxr warm` does it ahead)…"


class _Watch:
    """Counts compilations in progress; a timer started by the first prints the notice."""

    def __init__(self, stream: TextIO, after: float) -> None:
        self.stream = stream
        self.after = after
        self.lock = threading.Lock()
        self.active = 0
        self.timer: threading.Timer | None = None
        self.said = False

    def start(self) -> None:
        with self.lock:
            self.active += 1
            if self.timer is None and not self.said:
                self.timer = threading.Timer(self.after, self.check)
                self.timer.daemon = True
                self.timer.start()

    def end(self) -> None:
        with self.lock:
            self.active -= 1

    def check(self) -> None:
        with self.lock:
            self.timer = None
            if self.active <= 0 or self.said:
                return  # short compilations only: wait for the next one
            self.said = True
        with contextlib.suppress(ValueError, OSError):  # the stream may be gone by now
            print(NOTICE, file=self.stream, flush=True)

    def stop(self) -> None:
        """Cancel a pending notice (the command is over)."""
        with self.lock:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            self.said = True


def announce_compilation(stream: TextIO | None = None, after: float = NOTICE_AFTER) -> Any:
    """Print :data:`NOTICE` on ``stream`` (stderr) once numba compiles for ``after`` seconds.

    Returns the registered numba listener (``numba.core.event.unregister`` removes it); its
    ``watch`` attribute counts the compilations in progress.
    """
    from numba.core import event

    _watch = watch = _Watch(stream or sys.stderr, after)

    class Listener(event.Listener):
        watch = _watch

        def on_start(self, ev: Any) -> None:
            watch.start()

        def on_end(self, ev: Any) -> None:
            watch.end()

    listener = Listener()
    event.register("numba:compile", listener)
    return listener


@contextlib.contextmanager
def announcing_compilation(
    stream: TextIO | None = None, after: float = NOTICE_AFTER
) -> Iterator[Any]:
    """:func:`announce_compilation` for the length of a command: the listener is removed and
    a pending notice cancelled at the end, so nothing prints after the command returned."""
    from numba.core import event

    listener = announce_compilation(stream, after)
    try:
        yield listener
    finally:
        listener.watch.stop()
        event.unregister("numba:compile", listener)
