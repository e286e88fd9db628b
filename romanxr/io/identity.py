"""Which file an input is: recorded when it is opened, checked on every read of its blocks.

A Dataset opened from a file reads its pixels lazily, long after the metadata were read. If
the file is replaced (``mv new old``) or rewritten in between, a read would mix the new file's
pixels with the old file's metadata. The identity of a file (device, inode, size and
modification time in nanoseconds) is taken when it is opened; every later read compares the
file it actually opened with it and raises :class:`~romanxr.errors.InputFileError` on a
difference, naming the file.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from romanxr.errors import InputFileError

__all__ = ["FileIdentity", "check_identity", "file_identity", "same_identity"]


class FileIdentity(NamedTuple):
    """What tells one version of a file from another."""

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> FileIdentity:
        """The identity in a ``stat`` result."""
        return cls(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def file_identity(path: str | os.PathLike, fd: int | None = None) -> FileIdentity:
    """The identity of the open file ``fd``, or else of the file now at ``path``."""
    return FileIdentity.of(os.fstat(fd) if fd is not None else os.stat(path))


def check_identity(
    path: str | os.PathLike, expected: FileIdentity | None, fd: int | None = None
) -> None:
    """Raise :class:`InputFileError` if the file (``fd``, else ``path``) is not ``expected``.

    ``expected=None`` (nothing recorded) checks nothing.
    """
    if expected is None:
        return
    try:
        now = file_identity(path, fd)
    except FileNotFoundError:
        raise InputFileError(
            f"{path}: the file was removed after it was opened, before all its data were "
            "read; keep input files in place until the run has finished, then run again"
        ) from None
    same_identity(path, expected, now)


def same_identity(path: str | os.PathLike, expected: FileIdentity, now: FileIdentity) -> None:
    """Raise :class:`InputFileError` naming ``path`` and what differs, if ``now != expected``."""
    if tuple(now) != tuple(expected):
        changed = [
            name for name, a, b in zip(FileIdentity._fields, expected, now, strict=True) if a != b
        ]
        raise InputFileError(
            f"{path}: the file changed after it was opened ({', '.join(changed)} differ): it "
            "was replaced or rewritten while this run was reading it, so its pixels no longer "
            "match the metadata read at the start. Nothing was mixed: run again once the file "
            "is final, and do not replace input files that a run is using"
        )
