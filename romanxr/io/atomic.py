"""Atomic output: write to a temporary sibling, then move it over the target in one step.

A writer never leaves a half-written product at the path the user asked for. The data go to a
hidden sibling ``.<name>.romanxr-tmp-<pid>-<random>`` in the same directory (so the final
``rename`` stays on one file system and is atomic); only when the write has finished is it moved
onto the target. On any exception, ``KeyboardInterrupt`` included, the temporary is removed and
a previous good product at the target is left untouched.

A run killed hard (``SIGKILL``, power loss) cannot clean up after itself; the next write to the
same target removes the temporaries whose process is gone (the process id is part of the name)
or that are older than :data:`STALE_SECONDS`.

Directories (Zarr stores) cannot be replaced by ``os.replace`` when the target exists. On Linux
the two paths are swapped atomically with ``renameat2(RENAME_EXCHANGE)``, so there is no moment
where neither the old nor the new store exists. Where that call is unavailable (other systems,
some file systems) the old store is first renamed aside and then the new one moved in: between
those two renames (microseconds) the target path does not exist; should the second rename fail
the old store is put back.

Without ``overwrite`` the absence of the target is checked twice: before any compute (so a
clash is reported at once) and again by the final move itself, which must not replace anything
that appeared meanwhile (another run writing the same output). That move is
``renameat2(RENAME_NOREPLACE)`` on Linux; elsewhere a file is ``link``-ed to its final name
(which fails if the name exists) and a directory claims the name with ``mkdir`` first. When the
move finds the target taken, the finished result is removed and :class:`OutputExistsError` is
raised: the product already at the target, the other writer's, is left as it is.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from romanxr.errors import OutputError, OutputExistsError

__all__ = [
    "STALE_SECONDS",
    "atomic_target",
    "check_output_path",
    "clean_stale_temporaries",
    "temporary_name",
]

#: Temporaries older than this are removed even if a process with their pid is alive (the pid
#: may have been reused by an unrelated process).
STALE_SECONDS = 24 * 3600

_TMP_MARK = ".romanxr-tmp-"
_OLD_MARK = ".romanxr-old-"

# temporaries this process is writing right now (never cleaned as stray)
_ACTIVE: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


def temporary_name(target: Path, kind: str = "tmp") -> Path:
    """A fresh hidden sibling of ``target``: ``.<name>.romanxr-<kind>-<pid>-<random>``."""
    mark = _TMP_MARK if kind == "tmp" else _OLD_MARK
    return target.with_name(f".{target.name}{mark}{os.getpid()}-{secrets.token_hex(4)}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clean_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``target`` left behind by writers that were killed.

    A temporary is stray when the process that made it is gone, or it is older than
    :data:`STALE_SECONDS`. Temporaries this process is still writing are kept.

    Returns
    -------
    list of Path
        What was removed.
    """
    target = Path(target)
    directory = target.parent
    removed: list[Path] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    prefixes = (f".{target.name}{_TMP_MARK}", f".{target.name}{_OLD_MARK}")
    now = time.time()
    for entry in entries:
        name = entry.name
        prefix = next((p for p in prefixes if name.startswith(p)), None)
        if prefix is None:
            continue
        with _ACTIVE_LOCK:
            if str(entry) in _ACTIVE:
                continue
        pid_text = name[len(prefix) :].split("-", 1)[0]
        try:
            pid = int(pid_text)
        except ValueError:
            continue
        try:
            age = now - entry.lstat().st_mtime
        except FileNotFoundError:
            continue
        if pid == os.getpid() or not _pid_alive(pid) or age > STALE_SECONDS:
            _remove(entry)
            removed.append(entry)
    return removed


def _same_file(a: Path, b: str | os.PathLike) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b) or (
            os.path.exists(b) and a.exists() and os.path.samefile(a, b)
        )
    except OSError:
        return False


def check_output_path(
    path: str | os.PathLike,
    *,
    overwrite: bool,
    inputs: Iterable[str] = (),
    kind: str = "file",
) -> Path:
    """Check that ``path`` can be written; raise :class:`OutputError` (before any compute).

    Parameters
    ----------
    path : path-like
        The output.
    overwrite : bool
        Whether an existing output may be replaced.
    inputs : iterable of str
        Files the data are (lazily) read from; the output may not be one of them.
    kind : {"file", "directory"}
        What the output will be (for the messages).

    Returns
    -------
    Path
        The absolute output path.
    """
    target = Path(os.path.abspath(os.fspath(path)))
    directory = target.parent
    if not directory.is_dir():
        raise OutputError(
            f"{target}: the output directory {directory} does not exist; create it first "
            f"(e.g. mkdir -p {directory}) or write somewhere else"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError(
            f"{target}: the output directory {directory} is not writable; choose a writable "
            "directory or fix its permissions"
        )
    for source in inputs:
        if source and _same_file(target, source):
            raise OutputError(
                f"{target}: this is the input file the data are still read from; writing over "
                "it would corrupt the lazily read arrays. Write to another path (e.g. a new "
                "suffix) or load the data first (ds.load()) and open a different output"
            )
    if os.path.lexists(target):
        if not overwrite:
            raise OutputExistsError(target, computed=False)
        if kind == "file" and target.is_dir():
            raise OutputError(
                f"{target}: a directory is in the way of the output file; remove it or choose "
                "another path"
            )
    return target


_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2


def _rename_exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` atomically (Linux renameat2). False when not supported."""
    return _renameat2(a, b, _RENAME_EXCHANGE)


def _renameat2(a: Path, b: Path, flag: int) -> bool:
    """``renameat2(a, b, flag)``; False when the call or the flag is unsupported here."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    res = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), flag)
    if res == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _move_no_replace(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target``; ``FileExistsError`` if ``target`` exists at that moment."""
    if _renameat2(tmp, target, _RENAME_NOREPLACE):
        return
    if tmp.is_dir():
        # claim the name: mkdir fails if anything is there; rename onto an empty dir replaces it
        os.mkdir(target)
        try:
            os.rename(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.rmdir(target)
            raise
        return
    os.link(tmp, target)  # fails with EEXIST if the name is taken
    os.unlink(tmp)


def _move_into_place(tmp: Path, target: Path) -> None:
    if not os.path.lexists(target):
        os.replace(tmp, target)
        return
    if not target.is_dir() or target.is_symlink():
        if tmp.is_dir():
            # a file at the target, a directory to put there: rename the file aside first
            _replace_via_aside(tmp, target)
        else:
            os.replace(tmp, target)
        return
    if _rename_exchange(tmp, target):
        _remove(tmp)  # now holds the old content
        return
    _replace_via_aside(tmp, target)


def _replace_via_aside(tmp: Path, target: Path) -> None:
    """Rename ``target`` aside, put ``tmp`` in its place (restoring it on failure), drop it."""
    aside = temporary_name(target, "old")
    os.replace(target, aside)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(aside, target)
        raise
    _remove(aside)


def _fsync(path: Path) -> None:
    """Flush a written file (or a directory entry) to disk, so the rename cannot overtake it
    after a crash. Files inside a directory tree (Zarr) are not synced one by one."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync directories
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_target(target: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling path to write; move it onto ``target`` when the block succeeds.

    Stray temporaries of earlier killed runs are removed first. If the block raises (any
    ``BaseException``), the temporary is removed and ``target`` is left as it was.

    Parameters
    ----------
    target : path-like
        The final path.
    overwrite : bool
        Whether the final move may replace a product at ``target``. Without it the move fails
        if ``target`` exists at that moment (even if it did not when the write began): the
        temporary is removed and :class:`~romanxr.errors.OutputExistsError` raised.
    """
    target = Path(target)
    clean_stale_temporaries(target)
    tmp = temporary_name(target)
    with _ACTIVE_LOCK:
        _ACTIVE.add(str(tmp))
    try:
        try:
            yield tmp
            if not os.path.lexists(tmp):
                raise OutputError(f"{target}: the writer produced no output at {tmp}")
            _fsync(tmp)
            if overwrite:
                _move_into_place(tmp, target)
            else:
                _move_no_replace(tmp, target)
            _fsync(target.parent)
        except FileExistsError as exc:
            raise OutputExistsError(target) from exc
        except OutputError:
            raise
        except OSError as exc:
            raise OutputError(
                f"{target}: writing failed ({type(exc).__name__}: {exc}); nothing was written "
                "at the target and a previous version, if any, is unchanged. Check free space "
                "and permissions, then write again"
            ) from exc
    except BaseException:
        _remove_settled(tmp)
        raise
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(str(tmp))


#: After a failed write, how long a temporary directory must stay gone before it counts as
#: removed, and how long to keep trying (seconds).
_SETTLE, _SETTLE_LIMIT = 0.05, 5.0


def _remove_settled(tmp: Path) -> None:
    """Remove a failed write's temporary, again if it comes back.

    When one chunk of a Zarr write fails (a full disk), the error reaches here while other
    threads of the same compute may still be writing chunks, and zarr's store creates the
    missing folders of a chunk it writes: a chunk written after the first removal would bring
    the temporary back. So the removal is repeated until the path has stayed absent for
    :data:`_SETTLE` seconds (bounded by :data:`_SETTLE_LIMIT`).
    """
    _remove(tmp)
    deadline = time.monotonic() + _SETTLE_LIMIT
    while time.monotonic() < deadline:
        time.sleep(_SETTLE)
        if not os.path.lexists(tmp):
            return
        _remove(tmp)
