"""Logging for the command line: stpipe's levels and line format, on the ``romanxr`` logger only.

:func:`configure_logging` is what ``romanxr calibrate --log-level/--log-file/--log-stream/-v``
calls; it never touches the root logger or another package's logger, and nothing is
configured on import, so a notebook stays quiet unless it asks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

from romanxr.errors import ConfigError

__all__ = ["CLI_LEVEL", "LOG_FORMAT", "command_logging", "configure_logging"]

#: stpipe's ``DEFAULT_FORMAT`` (``stpipe._log``), so scripts that scrape strun logs keep working
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"

#: strun's default level, the command line's too
CLI_LEVEL = "INFO"

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_MARK = "_romanxr_cli"


class _CurrentStream(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr``/``sys.stdout`` is at each record (so a
    stream replaced or closed after configuration, as pytest's capture does, is never used)."""

    def __init__(self, name: str) -> None:
        self._which = name
        super().__init__()

    @property
    def stream(self) -> object:  # type: ignore[override]
        return getattr(sys, self._which)

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def _level(level: str | int | None, verbosity: int, default: str | int = "WARNING") -> int:
    if verbosity >= 2 or (verbosity == 1 and level is None and default == CLI_LEVEL):
        return logging.DEBUG  # strun's --verbose: every message
    if verbosity == 1 and level is None:
        return logging.INFO
    if level is None:
        level = default
    if isinstance(level, int):
        return level
    name = str(level).strip().upper()
    if name not in _LEVELS:
        raise ConfigError(f"--log-level {level!r}: expected one of {', '.join(_LEVELS)}")
    return getattr(logging, name)


def configure_logging(
    level: str | int | None = None,
    *,
    verbosity: int = 0,
    log_file: str | os.PathLike | None = None,
    log_stream: str | None = None,
    default: str | int = "WARNING",
) -> logging.Logger:
    """Set the ``romanxr`` logger's level and handlers (replacing those this function added).

    Parameters
    ----------
    level : str or int, optional
        ``DEBUG``/``INFO``/``WARNING``/``ERROR``/``CRITICAL`` (default ``default``).
    verbosity : int
        ``-v`` count: 2 or more is DEBUG; 1 is DEBUG when ``default`` is INFO (strun's
        ``--verbose``), else INFO, when no level is given.
    log_file : path, optional
        Also write the log lines to this file (appended), as strun's ``--log-file``.
    log_stream : {"stderr", "stdout", "null"}, optional
        Where terminal lines go (default stderr), as strun's ``--log-stream``.
    default : str or int
        The level without ``level`` or ``verbosity``: WARNING (quiet) for Python callers,
        :data:`CLI_LEVEL` (INFO, as strun) for the command line.

    Returns
    -------
    logging.Logger
        The ``romanxr`` logger.
    """
    logger = logging.getLogger("romanxr")
    for handler in [h for h in logger.handlers if getattr(h, _MARK, False)]:
        logger.removeHandler(handler)
        handler.close()
    stream = (log_stream or "stderr").strip().lower()
    if stream not in {"stderr", "stdout", "null"}:
        raise ConfigError(f"--log-stream {log_stream!r}: expected stderr, stdout or null")
    handlers: list[logging.Handler] = []
    if stream != "null":
        handlers.append(_CurrentStream(stream))
    if log_file is not None:
        try:
            handlers.append(logging.FileHandler(os.fspath(log_file)))
        except OSError as exc:
            raise ConfigError(f"--log-file {log_file}: cannot open it ({exc})") from exc
    for handler in handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        setattr(handler, _MARK, True)
        logger.addHandler(handler)
    logger.setLevel(_level(level, verbosity, default))
    return logger


@contextlib.contextmanager
def command_logging(
    level: str | int | None = None,
    *,
    verbosity: int = 0,
    log_file: str | os.PathLike | None = None,
    log_stream: str | None = None,
) -> Iterator[logging.Logger]:
    """:func:`configure_logging` for one command (strun's default INFO), undone on exit.

    The ``romanxr`` logger gets back its level and handlers; the handlers added are closed
    (a ``--log-file`` is complete when the command returns).
    """
    logger = logging.getLogger("romanxr")
    saved = (logger.level, list(logger.handlers))
    try:
        yield configure_logging(
            level, verbosity=verbosity, log_file=log_file, log_stream=log_stream, default=CLI_LEVEL
        )
    finally:
        for handler in [h for h in logger.handlers if h not in saved[1]]:
            logger.removeHandler(handler)
            handler.close()
        logger.handlers[:] = saved[1]
        logger.setLevel(saved[0])
