"""Logging for the command line: stpipe's levels and line format, on the ``romanxr`` logger only.

:func:`configure_logging` is what ``romanxr calibrate --log-level/--log-file/--log-stream/-v``
calls; it never touches the root logger or another package's logger, and nothing is
configured on import, so a notebook stays quiet unless it asks.
"""

from __future__ import annotations

import logging
import os
import sys

from romanxr.errors import ConfigError

__all__ = ["LOG_FORMAT", "configure_logging"]

#: stpipe's ``DEFAULT_FORMAT`` (``stpipe._log``), so scripts that scrape strun logs keep working
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_MARK = "_romanxr_cli"


def _level(level: str | int | None, verbosity: int) -> int:
    if verbosity >= 2:
        return logging.DEBUG
    if verbosity == 1 and level is None:
        return logging.INFO
    if level is None:
        return logging.WARNING
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
) -> logging.Logger:
    """Set the ``romanxr`` logger's level and handlers (replacing those this function added).

    Parameters
    ----------
    level : str or int, optional
        ``DEBUG``/``INFO``/``WARNING``/``ERROR``/``CRITICAL`` (default WARNING: quiet).
    verbosity : int
        ``-v`` count: 1 is INFO when no level is given, 2 or more is DEBUG.
    log_file : path, optional
        Also write the log lines to this file (appended), as strun's ``--log-file``.
    log_stream : {"stderr", "stdout", "null"}, optional
        Where terminal lines go (default stderr), as strun's ``--log-stream``.

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
        handlers.append(logging.StreamHandler(sys.stdout if stream == "stdout" else sys.stderr))
    if log_file is not None:
        try:
            handlers.append(logging.FileHandler(os.fspath(log_file)))
        except OSError as exc:
            raise ConfigError(f"--log-file {log_file}: cannot open it ({exc})") from exc
    for handler in handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        setattr(handler, _MARK, True)
        logger.addHandler(handler)
    logger.setLevel(_level(level, verbosity))
    return logger
