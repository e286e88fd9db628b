"""Process-wide memory allocator settings for batch calibration (issue #7).

A calibration streams thousands of chunk-sized arrays (4-64 MiB) through a few threads. With
glibc's defaults, every thread gets its own heap of at most 64 MiB, arrays of that size are
mapped and unmapped one by one, and each new mapping is zero-filled page by page by the
kernel: on the 2-core benchmark machine that is ~6 s of system time in a 33 s calibration.
:func:`tune_allocator` keeps freed memory in one heap for reuse instead. Peak memory is the
same (it is the high-water mark either way); wall time drops by about a sixth (measured:
20.9 -> 17.6 s for a full-frame exposure, see ``benchmarks/RESULTS.md``).

It changes the allocator of the whole process, so romanxr never calls it on import: the
``romanxr`` command line does, and scripts and notebooks may.

A heap that is never trimmed fragments: after each file of a many-file write the arrays in
use are back to ~0.2 GB, but the free holes between them grow (measured: heap 466 -> 670 MiB
over 6 full-frame files) and the peak resident memory grows with the number of files.
:func:`release_free_memory` hands the free pages back to the system; the writers call it
between files.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["release_free_memory", "tune_allocator"]

# glibc <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def tune_allocator(
    *, arenas: int = 1, mmap_threshold: int = 32 * 2**20, trim_threshold: int = 2 * 2**30
) -> bool:
    """Make glibc's malloc reuse freed chunk-sized arrays instead of returning them.

    Parameters
    ----------
    arenas : int
        Heaps shared by all threads (glibc's ``M_ARENA_MAX``); one heap can grow beyond the
        64 MiB that the per-thread heaps are limited to.
    mmap_threshold : int
        Allocations at least this large (bytes) are mapped directly (``M_MMAP_THRESHOLD``).
    trim_threshold : int
        Free memory kept at the top of the heap before it is returned (``M_TRIM_THRESHOLD``).

    Returns
    -------
    bool
        True when the settings were applied (Linux with glibc); False elsewhere, where this
        does nothing.
    """
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = True
    for option, value in (
        (_M_ARENA_MAX, int(arenas)),
        (_M_MMAP_THRESHOLD, int(mmap_threshold)),
        (_M_TRIM_THRESHOLD, int(trim_threshold)),
    ):
        ok = bool(mallopt(option, value)) and ok
    return ok


def release_free_memory() -> bool:
    """Return the free pages of the malloc heap to the system (glibc's ``malloc_trim(0)``).

    Cheap (a few ms) and safe at any time; the writers call it between files, so that the
    holes a file's chunks leave in the heap do not add up over many files.

    Returns
    -------
    bool
        True when memory was returned; False when there was none to return or this is not
        glibc.
    """
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))
