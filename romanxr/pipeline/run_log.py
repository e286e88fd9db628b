"""The log lines of a run, for ``meta.cal_logs``, recorded the way romancal records them.

romancal stores the log lines of the run in the ``cal_logs`` of every image it returns, one
string per record formatted as ``<UTC time>Z :: <logger> :: <LEVEL> :: <message>`` (e.g.
``2026-01-02T03:04:05.678Z :: stpipe.step :: INFO :: Step dq_init done``). romanxr does the
same with the records of its own ``romanxr`` logger (INFO and above), whatever its level:
:func:`recording_logs` lowers the logger to INFO only for the recorder; what terminal, file
or notebook handlers show stays what the logger's level let through before (quiet by
default), and no other package's logger is touched.

Runs in several threads at once (a batch) each record every romanxr line of that time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["CAL_LOG_FORMAT", "CAL_LOG_TIME_FORMAT", "recording_logs"]

#: romancal's format of a ``cal_logs`` line (times in UTC)
CAL_LOG_FORMAT = "%(asctime)s.%(msecs)03dZ :: %(name)s :: %(levelname)s :: %(message)s"
CAL_LOG_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
#: lowest level recorded
RECORD_LEVEL = logging.INFO

_LOCK = threading.Lock()


def _formatter() -> logging.Formatter:
    formatter = logging.Formatter(CAL_LOG_FORMAT, datefmt=CAL_LOG_TIME_FORMAT)
    formatter.converter = time.gmtime
    return formatter


class _Gate(logging.Handler):
    """Stands in for the logger's handlers while runs record: every record at INFO or above
    goes to each recording, and on to the original handlers (and the parents', when the
    logger propagated) only when the logger's own level would have let it through."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(RECORD_LEVEL)
        self.setFormatter(_formatter())
        self.logger = logger
        self.level_before = logger.level
        self.shown_from = logger.getEffectiveLevel()
        self.handlers_before = list(logger.handlers)
        self.propagate_before = logger.propagate
        self.recordings: list[list[str]] = []

    def install(self) -> None:
        self.logger.handlers = [self]
        self.logger.propagate = False
        self.logger.setLevel(min(RECORD_LEVEL, self.shown_from))

    def restore(self) -> None:
        added = [h for h in self.logger.handlers if h is not self and h not in self.handlers_before]
        self.logger.handlers = self.handlers_before + added
        self.logger.propagate = self.propagate_before
        self.logger.setLevel(self.level_before)

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= RECORD_LEVEL:
            line = self.format(record)
            for lines in list(self.recordings):
                lines.append(line)
        if record.levelno < self.shown_from:
            return
        # what Logger.callHandlers would have done without the gate
        found = 0
        for handler in self.handlers_before:
            found += 1
            if record.levelno >= handler.level:
                handler.handle(record)
        parent = self.logger.parent if self.propagate_before else None
        while parent is not None:
            for handler in parent.handlers:
                found += 1
                if record.levelno >= handler.level:
                    handler.handle(record)
            parent = parent.parent if parent.propagate else None
        last = logging.lastResort
        if not found and last is not None and record.levelno >= last.level:
            last.handle(record)


_GATES: dict[str, _Gate] = {}


@contextmanager
def recording_logs(name: str = "romanxr") -> Iterator[list[str]]:
    """Record the log lines of logger ``name`` (and its children) while the block runs.

    Parameters
    ----------
    name : str
        The logger (``romanxr``).

    Yields
    ------
    list of str
        The lines so far, in romancal's ``cal_logs`` format; it grows while the block runs.
    """
    lines: list[str] = []
    with _LOCK:
        gate = _GATES.get(name)
        if gate is None:
            gate = _GATES[name] = _Gate(logging.getLogger(name))
            gate.install()
        gate.recordings.append(lines)
    try:
        yield lines
    finally:
        with _LOCK:
            gate.recordings.remove(lines)
            if not gate.recordings:
                gate.restore()
                del _GATES[name]
