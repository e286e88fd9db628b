"""Per-process cache of what reading an array of an ASDF file needs.

Arrays are reached by path and tree key (never through an open file, so graphs pickle and
run on ``dask.distributed`` workers); each process keeps here, per file identity (path,
device, inode, size, mtime) and key, the array's
:class:`~romanxr.io.block_reader.BlockLayout` or, for encodings the block reader does not
take apart, the whole array. One lock per key makes threads that ask for the same array at
once wait for a single load.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from romanxr.io.asdf_setup import prepare_asdf
from romanxr.io.block_reader import BlockLayout, block_layout
from romanxr.io.identity import FileIdentity

__all__ = ["CACHE", "ArrayCache"]


class ArrayCache:
    """Per-process LRU of what reading an array needs, keyed by file identity and tree key.

    For raw and lz4 blocks that is a :class:`BlockLayout` (offsets only): every read takes
    just the bytes of its chunk, so memory does not grow with the number or size of the
    files. Other encodings fall back to the whole array, decompressed once per process and
    kept here (up to ``max_entries`` of them).
    """

    def __init__(self, max_entries: int = 8, max_layouts: int = 256) -> None:
        self.max_entries = max_entries
        self.max_layouts = max_layouts
        # values: (array, open AsdfFile); the file stays open while a memmap may use it
        self._items: OrderedDict[tuple, tuple[np.ndarray, Any]] = OrderedDict()
        self._layouts: OrderedDict[tuple, BlockLayout | None] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}

    @staticmethod
    def _ident(path: str, keys: tuple[str, ...]) -> tuple:
        return (os.path.abspath(path), *FileIdentity.of(os.stat(path)), keys)

    def layout(self, path: str, keys: tuple[str, ...]) -> BlockLayout | None:
        """The block layout of the array (None: read it whole with :meth:`get`)."""
        ident = self._ident(path, keys)
        with self._lock:
            if ident in self._layouts:
                self._layouts.move_to_end(ident)
                return self._layouts[ident]
            key_lock = self._key_locks.setdefault(("layout", *ident), threading.Lock())
        with key_lock:
            with self._lock:
                if ident in self._layouts:
                    return self._layouts[ident]
            layout = block_layout(path, keys, FileIdentity(*ident[1:5]))
            with self._lock:
                self._layouts[ident] = layout
                while len(self._layouts) > self.max_layouts:
                    self._layouts.popitem(last=False)
                self._key_locks.pop(("layout", *ident), None)
        return layout

    def get(self, path: str, keys: tuple[str, ...]) -> np.ndarray:
        """The whole array, loaded once per process (a memmap for raw blocks)."""
        ident = self._ident(path, keys)
        with self._lock:
            if ident in self._items:
                self._items.move_to_end(ident)
                return self._items[ident][0]
            key_lock = self._key_locks.setdefault(ident, threading.Lock())
        with key_lock:
            with self._lock:
                if ident in self._items:
                    return self._items[ident][0]
            entry = _load_array(path, keys)
            evicted = []
            with self._lock:
                self._items[ident] = entry
                while len(self._items) > self.max_entries:
                    evicted.append(self._items.popitem(last=False)[1])
                self._key_locks.pop(ident, None)
        for _, handle in evicted:
            handle.close()
        return entry[0]

    def clear(self) -> None:
        """Forget everything (and close the files kept open for memmaps)."""
        with self._lock:
            entries = list(self._items.values())
            self._items.clear()
            self._layouts.clear()
        for _, handle in entries:
            handle.close()


#: The cache of this process.
CACHE = ArrayCache()
# the files kept open for memmaps are closed when the interpreter exits, not left to the
# garbage collector (which warns about each with a ResourceWarning)
atexit.register(CACHE.clear)


def _load_array(path: str, keys: tuple[str, ...]) -> tuple[np.ndarray, Any]:
    asdf = prepare_asdf()

    # memmap=True gives a view on disk for uncompressed blocks; compressed blocks are
    # decompressed into memory once and kept in the cache. The tree was validated when the
    # Dataset was opened; validating it again for every array costs more than the read.
    with asdf.config_context() as cfg:
        cfg.validate_on_read = False
        af = asdf.open(path, lazy_load=True, memmap=True, lazy_tree=True)
    try:
        node: Any = af.tree
        for key in keys:
            node = node[key]
        array = np.asarray(node)
    except BaseException:
        af.close()
        raise
    if not isinstance(array, np.memmap) and getattr(array, "base", None) is None:
        af.close()  # a decompressed in-memory copy needs no open file
    return array, af
