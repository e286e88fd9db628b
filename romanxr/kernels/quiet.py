"""Warnings ignored inside a block, safely when several threads run such blocks at once.

``warnings.catch_warnings`` saves the process's whole filter list on entry and puts it back
on exit. When two threads of dask's pool overlap in such blocks, the first to leave restores
the list it saved and so drops the other thread's "ignore" filter while that thread is still
inside: a warning meant to be silenced is then shown (or, in a test run that makes warnings
errors, raised). :func:`ignoring` instead adds one filter per category, shared by every block
that asks for it and counted, and removes it when the last such block ends, whichever thread
ends it; nothing else in the list is touched.

The filters are process-wide while any block is open (as with ``catch_warnings``, which
has no per-thread filters before Python 3.14): a warning of the same category from another
thread in that time is ignored too.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator

__all__ = ["ignoring"]

_LOCK = threading.Lock()
#: category -> [the filter entry installed, how many blocks are inside]
_ACTIVE: dict[type[Warning], list] = {}


def _mutated() -> None:
    # what warnings.filterwarnings calls after changing the list (clears the once/default
    # registries' cached decisions); private in CPython, hence the guard
    hook = getattr(warnings, "_filters_mutated", None)
    if hook is not None:
        hook()


@contextlib.contextmanager
def ignoring(*categories: type[Warning]) -> Iterator[None]:
    """Ignore warnings of ``categories`` (and their subclasses) inside the block.

    Parameters
    ----------
    *categories : Warning subclasses
        What to ignore (``Warning``: everything).
    """
    with _LOCK:
        for category in categories:
            slot = _ACTIVE.get(category)
            if slot is None:
                entry = ("ignore", None, category, None, 0)
                warnings.filters.insert(0, entry)
                _ACTIVE[category] = [entry, 1]
            else:
                slot[1] += 1
        _mutated()
    try:
        yield
    finally:
        with _LOCK:
            for category in categories:
                slot = _ACTIVE[category]
                slot[1] -= 1
                if slot[1] == 0:
                    del _ACTIVE[category]
                    # by identity: an equal filter of someone else's stays
                    for i, entry in enumerate(warnings.filters):
                        if entry is slot[0]:
                            del warnings.filters[i]
                            break
            _mutated()
