"""Lazy reading of Roman ASDF files into xarray Datasets.

Opening a file parses its YAML tree and block headers only; pixel data are read when a chunk
is computed. Arrays are reached through :class:`AsdfBackendArray`, which holds the path and the
key of the array (never an open file), so graphs pickle and run on ``dask.distributed``
workers that open the file themselves.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from romanxr.dataset import (
    AMP33_DIM,
    RAMP_DIMS,
    resultant_coords,
    validate_read_pattern,
)
from romanxr.errors import FileFormatError, RomanxrError, WrongProductError

__all__ = [
    "AsdfBackendArray",
    "default_chunks",
    "open_roman_asdf",
    "product_kind",
    "to_plain",
    "verify_checksums",
]

#: Roman tag name (without version) -> product kind understood by romanxr.
_KIND_BY_TAG = {
    "wfi_science_raw": "uncal",
    "ramp": "ramp",
    "wfi_image": "cal",
}
_EXPECTED_TAG = {"uncal": "wfi_science_raw", "cal": "wfi_image", "ramp": "ramp"}
_SUPPORTED_MAJOR = {"wfi_science_raw": 2, "wfi_image": 2, "ramp": 2}


def to_plain(obj: Any) -> Any:
    """Convert a Roman/ASDF node tree to nested ``dict``/``list`` (leaves kept as they are)."""
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        # lists, tuples and asdf's lazy list nodes (UserList) alike
        return [to_plain(v) for v in obj]
    return obj


def _tag_of(node: Any) -> str | None:
    tag = getattr(node, "tag", None) or getattr(node, "_tag", None)
    if tag is None and hasattr(node, "_read_tag"):
        tag = node._read_tag
    return str(tag) if tag else None


def product_kind(tag: str | None) -> tuple[str | None, str | None, int | None]:
    """Split a Roman tag into (kind, name, major version)."""
    if not tag:
        return None, None, None
    name_version = tag.rsplit("/", 1)[-1]
    name, _, version = name_version.partition("-")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = None
    if name.endswith("_ref") or "reference_files" in tag:
        return "reference", name, major
    return _KIND_BY_TAG.get(name), name, major


# --------------------------------------------------------------------------------------------
# Array access: memory-mapped for raw blocks, decompressed once per process for compressed ones.


#: Bytes of whole rows read at a time when a selection takes a strip of columns.
_BAND_BYTES = 4 * 2**20


class _BlockLayout:
    """Where one C-ordered array lies in an ASDF file, for reading parts of it.

    Raw blocks are read with ``os.pread``; lz4 blocks (roman_datamodels' default) are a
    sequence of independently compressed chunks of about 4 MiB (asdf's framing: a 4-byte
    big-endian compressed length, then an lz4 block that starts with its little-endian
    decompressed size), so a slice is served by decompressing only the chunks that overlap
    it. The layout holds offsets only (a few hundred bytes), never pixel data or an open file.
    """

    def __init__(
        self,
        path: str,
        data_offset: int,
        used_size: int,
        compressed: bool,
        shape: tuple[int, ...],
        dtype: np.dtype,
    ) -> None:
        self.path = path
        self.shape = shape
        self.dtype = dtype
        self.data_offset = int(data_offset)
        self.compressed = compressed
        # per compressed chunk: payload offset in the file, payload length, uncompressed start
        self.chunk_offsets: list[int] = []
        self.chunk_lengths: list[int] = []
        self.chunk_starts: list[int] = []
        if compressed:
            self._index(int(used_size))

    def _index(self, used_size: int) -> None:
        pos, start = self.data_offset, 0
        end = self.data_offset + used_size
        with open(self.path, "rb") as fh:
            fd = fh.fileno()
            while pos < end:
                head = os.pread(fd, 8, pos)
                if len(head) < 8:
                    raise FileFormatError(f"{self.path}: truncated lz4 block at byte {pos}")
                length = int.from_bytes(head[:4], "big")
                size = int.from_bytes(head[4:8], "little")
                self.chunk_offsets.append(pos + 4)
                self.chunk_lengths.append(length)
                self.chunk_starts.append(start)
                pos += 4 + length
                start += size
        self.chunk_starts.append(start)
        total = int(np.prod(self.shape)) * self.dtype.itemsize
        if start < total:
            raise FileFormatError(
                f"{self.path}: lz4 block holds {start} bytes, the array needs {total}; the file "
                "is truncated or corrupt"
            )

    def read_bytes(
        self, fd: int, start: int, stop: int, out: memoryview, memo: dict | None = None
    ) -> None:
        """Uncompressed bytes ``[start, stop)`` of the array into ``out``.

        ``memo`` keeps the last two decompressed chunks between calls, so a series of small
        reads in file order decompresses each chunk once.
        """
        if not self.compressed:
            got = os.preadv(fd, [out], self.data_offset + start)
            if got != stop - start:
                raise FileFormatError(f"{self.path}: short read at byte {start}")
            return
        import bisect

        import lz4.block

        first = bisect.bisect_right(self.chunk_starts, start) - 1
        pos = 0
        i = first
        while pos < stop - start:
            c0 = self.chunk_starts[i]
            chunk = memo.get(i) if memo is not None else None
            if chunk is None:
                payload = os.pread(fd, self.chunk_lengths[i], self.chunk_offsets[i])
                chunk = lz4.block.decompress(payload)
                if memo is not None:
                    if len(memo) >= 2:
                        memo.pop(next(iter(memo)))
                    memo[i] = chunk
            lo = start + pos - c0
            hi = min(len(chunk), stop - c0)
            out[pos : pos + hi - lo] = chunk[lo:hi]
            pos += hi - lo
            i += 1

    def _read_banded(self, norm: list, split: int) -> np.ndarray | None:
        """Selection that restricts dim ``split`` under many leading indices (a column strip).

        Reads whole rows of dim ``split - 1`` in bands of about :data:`_BAND_BYTES` and copies
        the selected part of each band out, so memory stays at the output plus one band and
        every lz4 chunk is decompressed once. Returns None for selections it does not handle
        (then the general path reads them).
        """
        shape = self.shape
        band_dim = split - 1
        for k in norm[: split + 1]:
            if isinstance(k, tuple) and k[2] != 1:
                return None
        lead = [list(range(*k)) if isinstance(k, tuple) else [k] for k in norm[:band_dim]]
        bk = norm[band_dim]
        b0, b1 = (bk[0], bk[1]) if isinstance(bk, tuple) else (bk, bk + 1)
        if b1 <= b0:
            return None
        row = int(np.prod(shape[split:], dtype=np.int64)) * self.dtype.itemsize
        per_band = max(1, _BAND_BYTES // max(row, 1))
        sel = norm[split]
        s0, s1 = (sel[0], sel[1]) if isinstance(sel, tuple) else (sel, sel + 1)
        counts = [len(r) for r in lead]
        out = np.empty((*counts, b1 - b0, s1 - s0, *shape[split + 1 :]), dtype=self.dtype)
        buf = np.empty((per_band, *shape[split:]), dtype=self.dtype)
        view = memoryview(buf.reshape(-1).view(np.uint8))
        elems = [int(np.prod(shape[i + 1 :], dtype=np.int64)) for i in range(band_dim)]
        memo: dict[int, bytes] = {}
        with open(self.path, "rb") as fh:
            fd = fh.fileno()
            for idx in np.ndindex(*counts):
                first = sum(lead[d][i] * elems[d] for d, i in enumerate(idx))
                base = first * self.dtype.itemsize
                for r0 in range(b0, b1, per_band):
                    n = min(per_band, b1 - r0)
                    start = base + r0 * row
                    self.read_bytes(fd, start, start + n * row, view[: n * row], memo)
                    out[idx][r0 - b0 : r0 - b0 + n] = buf[:n, s0:s1]
        inner: list[Any] = [slice(None) if isinstance(k, tuple) else 0 for k in norm[:band_dim]]
        inner.append(slice(None) if isinstance(bk, tuple) else 0)
        inner.append(slice(None) if isinstance(sel, tuple) else 0)
        return out[tuple(inner)]

    def read(self, key: tuple) -> np.ndarray:
        """``array[key]`` for a tuple of ints/slices (basic indexing), reading only what it needs.

        Whole rows of the trailing dims are read at once, one read per index of the leading
        dims (e.g. per resultant of a ``(resultant, y, x)`` ramp, a band of rows each).
        """
        shape = self.shape
        itemsize = self.dtype.itemsize
        key = tuple(key) + (slice(None),) * (len(shape) - len(key))
        if not shape:
            out = np.empty((), dtype=self.dtype)
            with open(self.path, "rb") as fh:
                self.read_bytes(fh.fileno(), 0, itemsize, memoryview(out.reshape(1).view(np.uint8)))
            return out
        norm: list[Any] = []
        for k, n in zip(key, shape, strict=True):
            if isinstance(k, slice):
                norm.append(k.indices(n))
            else:
                k = int(k)
                norm.append(k + n if k < 0 else k)

        def count(k: Any) -> int:
            return len(range(*k)) if isinstance(k, tuple) else 1

        # split = the last dim the key restricts; the dims after it are read as whole rows,
        # the dims before it one index at a time (moved left if that makes too many reads)
        split = len(shape) - 1
        while split > 0 and norm[split] == (0, shape[split], 1):
            split -= 1
        if split >= 2 and int(np.prod([count(k) for k in norm[:split]])) > 4096:
            banded = self._read_banded(norm, split)
            if banded is not None:
                return banded
        while split > 0 and int(np.prod([count(k) for k in norm[:split]])) > 4096:
            split -= 1
        ax = norm[split]
        if isinstance(ax, tuple):
            a0, a1, step = ax
            lo, hi = (a0, a1) if step > 0 else (a1 + 1, a0 + 1)
            lo = max(lo, 0)
            hi = max(min(hi, shape[split]), lo)
        else:
            lo, hi = ax, ax + 1
        lead = [list(range(*k)) if isinstance(k, tuple) else [k] for k in norm[:split]]
        counts = [len(r) for r in lead]
        buf = np.empty((*counts, hi - lo, *shape[split + 1 :]), dtype=self.dtype)
        if buf.size:
            row = int(np.prod(shape[split + 1 :], dtype=np.int64)) * itemsize
            span = (hi - lo) * row
            elems = [int(np.prod(shape[i + 1 :], dtype=np.int64)) for i in range(split)]
            view = memoryview(buf.reshape(-1).view(np.uint8))
            memo: dict[int, bytes] = {}
            with open(self.path, "rb") as fh:
                fd = fh.fileno()
                for n, idx in enumerate(np.ndindex(*counts)):
                    first = sum(lead[d][i] * elems[d] for d, i in enumerate(idx))
                    start = first * itemsize + lo * row
                    self.read_bytes(fd, start, start + span, view[n * span : (n + 1) * span], memo)
        # the rest of the selection, inside what was read
        inner: list[Any] = [slice(None) if isinstance(k, tuple) else 0 for k in norm[:split]]
        if isinstance(ax, tuple):
            a0, a1, step = ax
            inner.append(slice(a0 - lo, (a1 - lo) if a1 - lo >= 0 else None, step))
        else:
            inner.append(0)
        inner.extend(key[split + 1 :])
        return buf[tuple(inner)]


def _layout(path: str, keys: tuple[str, ...]) -> _BlockLayout | None:
    """The block layout of the array at ``keys``, or None when it cannot be read in parts
    (other compression, strided/offset views, inline arrays...)."""
    import asdf

    with asdf.config_context() as cfg:
        cfg.validate_on_read = False
        with asdf.open(path, lazy_load=True, memmap=False, lazy_tree=True) as af:
            node: Any = af.tree
            for key in keys:
                node = node[key]
            source = getattr(node, "_source", None)
            if not isinstance(source, int) or getattr(node, "_array", None) is not None:
                return None
            if getattr(node, "_offset", 0) not in (0, None) or getattr(node, "_strides", None):
                return None
            if getattr(node, "_order", "C") not in ("C", "A", None):
                return None
            try:
                shape = tuple(int(s) for s in node._shape)
                dtype = np.dtype(node._dtype)
                block = af._blocks.blocks[source]
                header = block.header
            except Exception:
                return None
            compression = bytes(header.get("compression", b"\0\0\0\0")).rstrip(b"\0")
            if compression not in (b"", b"lz4"):
                return None
            if compression == b"" and header["data_size"] < int(np.prod(shape)) * dtype.itemsize:
                return None
            return _BlockLayout(
                path, block.data_offset, header["used_size"], compression == b"lz4", shape, dtype
            )


class _ArrayCache:
    """Per-process LRU of what reading an array needs, keyed by file identity and tree key.

    For raw and lz4 blocks that is a :class:`_BlockLayout` (offsets only): every read takes
    just the bytes of its chunk, so memory does not grow with the number or size of the
    files. Other encodings fall back to the whole array, decompressed once per process and
    kept here (up to ``max_entries`` of them).
    """

    def __init__(self, max_entries: int = 8, max_layouts: int = 256) -> None:
        self.max_entries = max_entries
        self.max_layouts = max_layouts
        # values: (array, open AsdfFile); the file stays open while a memmap may use it
        self._items: OrderedDict[tuple, tuple[np.ndarray, Any]] = OrderedDict()
        self._layouts: OrderedDict[tuple, _BlockLayout | None] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}

    @staticmethod
    def _ident(path: str, keys: tuple[str, ...]) -> tuple:
        stat = os.stat(path)
        return (os.path.abspath(path), stat.st_mtime_ns, stat.st_size, keys)

    def layout(self, path: str, keys: tuple[str, ...]) -> _BlockLayout | None:
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
            layout = _layout(path, keys)
            with self._lock:
                self._layouts[ident] = layout
                while len(self._layouts) > self.max_layouts:
                    self._layouts.popitem(last=False)
                self._key_locks.pop(("layout", *ident), None)
        return layout

    def get(self, path: str, keys: tuple[str, ...]) -> np.ndarray:
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
        with self._lock:
            entries = list(self._items.values())
            self._items.clear()
            self._layouts.clear()
        for _, handle in entries:
            handle.close()


_CACHE = _ArrayCache()


def _load_array(path: str, keys: tuple[str, ...]) -> tuple[np.ndarray, Any]:
    import asdf

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


class AsdfBackendArray(BackendArray):
    """A lazily read array inside a Roman ASDF file.

    Parameters
    ----------
    path : str
        File path.
    keys : tuple of str
        Keys from the tree root to the array, e.g. ``("roman", "data")``.
    shape, dtype
        Declared by the block header / ndarray tag.
    """

    def __init__(self, path: str, keys: tuple[str, ...], shape: tuple[int, ...], dtype) -> None:
        self.path = str(path)
        self.keys = tuple(keys)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._raw_getitem
        )

    def _raw_getitem(self, key: tuple) -> np.ndarray:
        layout = _CACHE.layout(self.path, self.keys)
        if layout is not None and layout.shape == self.shape:
            # only the bytes of this chunk are read (and decompressed)
            return np.array(layout.read(key), dtype=self.dtype, copy=True)
        array = _CACHE.get(self.path, self.keys)
        # copy so callers never hold views on a memmap or on the shared cache
        return np.array(array[key], dtype=self.dtype, copy=True)


# --------------------------------------------------------------------------------------------


#: Largest float32 ramp chunk the default chunking makes (bytes).
MAX_CHUNK_BYTES = 16 * 2**20
#: Smallest one (bytes); below this, per-task overhead dominates.
MIN_CHUNK_BYTES = 4 * 2**20
#: Memory a chunk needs while it runs the pipeline, in multiples of its float32 size (the
#: ramp fit's work arrays dominate), used to fit the chunks of all threads in memory.
WORKING_SET_FACTOR = 16


def _available_memory() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None


def _dask_threads() -> int:
    try:
        import dask

        workers = dask.config.get("num_workers", None)
    except Exception:
        workers = None
    return int(workers or os.cpu_count() or 1)


def default_chunks(shape: Mapping[str, int], target_bytes: int | None = None) -> dict[str, int]:
    """Default dask chunks: the whole ``resultant`` dim, whole rows, a band of ``y``.

    Parameters
    ----------
    shape : mapping dim -> size
        Sizes of ``resultant``, ``y`` and ``x``.
    target_bytes : int, optional
        Size of one float32 chunk of the ramp. By default it is chosen from the memory
        available and the number of dask threads, so that every thread's chunk, with its
        working set (:data:`WORKING_SET_FACTOR` times the chunk), fits in a quarter of the
        available memory, clipped to [:data:`MIN_CHUNK_BYTES`, :data:`MAX_CHUNK_BYTES`]
        (16 MiB, i.e. 128 rows of a 4096-column 8-resultant ramp, on an ordinary machine:
        measured, 64 MiB chunks cost 0.7 GiB more peak memory for the same CPU time).

    Returns
    -------
    dict
        ``{"resultant": -1, "y": rows, "x": -1}``.
    """
    nres = int(shape.get("resultant", 1))
    nx = int(shape.get("x", 1))
    ny = int(shape.get("y", 1))
    if target_bytes is None:
        target_bytes = MAX_CHUNK_BYTES
        available = _available_memory()
        if available:
            fit = available // (4 * WORKING_SET_FACTOR * _dask_threads())
            target_bytes = int(min(MAX_CHUNK_BYTES, max(MIN_CHUNK_BYTES, fit)))
    rows = max(1, target_bytes // max(1, nres * nx * 4))
    rows = min(ny, rows)
    return {"resultant": -1, "y": int(rows), "x": -1}


def _check_blocks(af: Any, path: str) -> None:
    """Make sure every binary block the header announces lies inside the file."""
    size = os.path.getsize(path)
    try:
        blocks = list(af._blocks.blocks)
    except Exception as exc:  # the block index itself is unreadable
        raise FileFormatError(
            f"{path}: the ASDF binary blocks cannot be read ({exc}); the file is truncated or "
            "corrupt: download or write it again"
        ) from exc
    for i, block in enumerate(blocks):
        try:
            with open(path, "rb") as fh:
                # block layout: 4-byte magic, 2-byte big-endian header size, header, data;
                # asdf's block offset points just past the magic
                fh.seek(int(block.offset))
                header_size = int.from_bytes(fh.read(2), "big")
            end = int(block.offset) + 2 + header_size + int(block.header["allocated_size"])
        except Exception as exc:
            raise FileFormatError(
                f"{path}: binary block {i} has an unreadable header ({exc}); the file is "
                "truncated or corrupt: download or write it again"
            ) from exc
        if end > size:
            raise FileFormatError(
                f"{path}: binary block {i} ends at byte {end} but the file has only {size} "
                "bytes; the file is truncated: download or write it again"
            )


def _open_asdf(path: str):
    import asdf

    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(5)
    if head != b"#ASDF":
        raise FileFormatError(
            f"{path}: not an ASDF file (it does not start with '#ASDF'); romanxr reads Roman "
            "ASDF products such as *_uncal.asdf and *_cal.asdf"
        )
    try:
        # validate the tree against the Roman schemas at open (explicitly: asdf announces that
        # validation on read will be off by default); the reader's own checks come after
        if asdf.get_config().validate_on_read:
            # (a config context of its own would rebuild asdf's extension list: ~0.1 s each)
            af = asdf.open(path, lazy_load=True, memmap=False, lazy_tree=True)
        else:
            with asdf.config_context() as cfg:
                cfg.validate_on_read = True
                af = asdf.open(path, lazy_load=True, memmap=False, lazy_tree=True)
        tree = af.tree
        roman = tree.get("roman") if hasattr(tree, "get") else None
    except Exception as exc:
        if type(exc).__name__ == "ValidationError" and hasattr(exc, "absolute_path"):
            where = ".".join(str(p) for p in exc.absolute_path) or "the tree"
            raise FileFormatError(
                f"{path}: {where} does not follow the Roman data model schema "
                f"({getattr(exc, 'message', exc)}); the file was written wrongly or edited: "
                "fix that field or write the file again"
            ) from exc
        raise FileFormatError(
            f"{path}: the ASDF tree cannot be parsed ({type(exc).__name__}: {exc}); the file is "
            "truncated or corrupt"
        ) from exc
    try:
        if roman is None:
            keys = sorted(str(k) for k in tree if not str(k).startswith("asdf_library"))
            raise WrongProductError(
                f"{path}: ASDF file without a 'roman' node (top-level keys: "
                f"{', '.join(keys) or 'none'}); expected a Roman datamodel file "
                "(e.g. an L1 wfi_science_raw *_uncal.asdf)"
            )
        _check_blocks(af, path)
    except BaseException:
        af.close()  # never leave the file open behind an error
        raise
    return af, roman


def verify_checksums(path: str | os.PathLike) -> None:
    """Read every binary block of an ASDF file and compare it with its recorded MD5 checksum.

    Opening a file (:func:`open_roman_asdf`) checks the structure only: the ``#ASDF`` magic,
    the YAML tree, and that every block the header announces lies inside the file. Damaged
    bytes *inside* a block can only be found by reading the block: a compressed block that no
    longer decompresses raises :class:`FileFormatError` naming the file when its chunk is
    computed, but some damage (e.g. inside an lz4 literal run) decompresses into wrong pixel
    values without any error. This function finds that too, at the cost of reading the whole
    file once; run it on files of doubtful origin before calibrating.

    Raises
    ------
    FileFormatError
        If a block's bytes do not match its checksum, or the file cannot be read.
    """
    import hashlib

    path = str(Path(path))
    af, _ = _open_asdf(path)
    try:
        blocks = list(af._blocks.blocks)
        with open(path, "rb") as fh:
            for i, block in enumerate(blocks):
                header = block.header
                expected = bytes(header.get("checksum", b""))
                if not any(expected):  # an all-zero checksum means "not computed"
                    continue
                fh.seek(int(block.offset))  # just past the block magic
                header_size = int.from_bytes(fh.read(2), "big")
                fh.seek(int(block.offset) + 2 + header_size)
                used = fh.read(int(header["used_size"]))
                if hashlib.md5(used, usedforsecurity=False).digest() != expected:
                    raise FileFormatError(
                        f"{path}: binary block {i} does not match its MD5 checksum; the file is "
                        "corrupt: download or write it again"
                    )
    finally:
        af.close()
    return None


class _CheckedArray(AsdfBackendArray):
    """:class:`AsdfBackendArray` whose read errors name the file (raised inside a compute).

    Damage inside a block's payload is not visible when the file is opened; when a chunk is
    read, a decompression or I/O failure becomes a :class:`FileFormatError` that names the
    file and the array instead of a bare ``zlib.error``/``OSError`` from deep inside dask.
    """

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        try:
            return super().__getitem__(key)
        except (RomanxrError, KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            where = ".".join(self.keys)
            raise FileFormatError(
                f"{self.path}: reading {where} failed ({type(exc).__name__}: {exc}); the file "
                "is corrupt or was changed after it was opened: download or write it again "
                "(romanxr.io.asdf_reader.verify_checksums checks every block)"
            ) from exc


def _array_var(path: str, name: str, node: Any, dims: tuple[str, ...]) -> xr.Variable:
    shape = tuple(node.shape)
    if len(shape) != len(dims):
        raise WrongProductError(
            f"{path}: roman.{name} has {len(shape)} dimensions {shape}, expected {len(dims)} {dims}"
        )
    arr = _CheckedArray(path, ("roman", name), shape, node.dtype)
    return xr.Variable(dims, indexing.LazilyIndexedArray(arr))


def _open_uncal_vars(path: str, roman: Any, meta: dict) -> tuple[dict, dict]:
    data = roman["data"]
    if len(data.shape) != 3:
        raise WrongProductError(
            f"{path}: roman.data has shape {tuple(data.shape)}; a Level-1 ramp has 3 dims "
            "(resultant, y, x)"
        )
    if np.dtype(data.dtype) != np.uint16:
        raise WrongProductError(f"{path}: roman.data is {data.dtype}; Level-1 data are uint16")
    nres, ny, nx = (int(s) for s in data.shape)
    exposure = meta.get("exposure", {})
    info = validate_read_pattern(
        exposure.get("read_pattern"), exposure.get("frame_time"), nres, source=path
    )
    variables = {"data": _array_var(path, "data", data, RAMP_DIMS)}
    optional = {
        "amp33": ("resultant", "y", AMP33_DIM),
        "resultantdq": RAMP_DIMS,
        "reference_read": ("y", "x"),
        "reference_amp33": ("y", AMP33_DIM),
    }
    for name, dims in optional.items():
        if name in roman and roman[name] is not None:
            variables[name] = _array_var(path, name, roman[name], dims)
    coords: dict[str, Any] = dict(resultant_coords(info))
    coords["y"] = np.arange(ny, dtype=np.int64)
    coords["x"] = np.arange(nx, dtype=np.int64)
    if "amp33" in variables:
        coords[AMP33_DIM] = np.arange(variables["amp33"].shape[-1], dtype=np.int64)
    return variables, coords


#: Level-2 arrays and their dims. ``frame_y``/``frame_x`` index the full frame (with the border)
#: and ``ref_col``/``ref_row`` the 4 border columns/rows, so they never clash with the trimmed
#: image dims ``y``/``x``.
L2_ARRAY_DIMS = {
    "data": ("y", "x"),
    "dq": ("y", "x"),
    "err": ("y", "x"),
    "var_poisson": ("y", "x"),
    "var_rnoise": ("y", "x"),
    "var_flat": ("y", "x"),
    "chisq": ("y", "x"),
    "dumo": ("y", "x"),
    "amp33": ("resultant", "frame_y", AMP33_DIM),
    "border_ref_pix_left": ("resultant", "frame_y", "ref_col"),
    "border_ref_pix_right": ("resultant", "frame_y", "ref_col"),
    "border_ref_pix_top": ("resultant", "ref_row", "frame_x"),
    "border_ref_pix_bottom": ("resultant", "ref_row", "frame_x"),
    "dq_border_ref_pix_left": ("frame_y", "ref_col"),
    "dq_border_ref_pix_right": ("frame_y", "ref_col"),
    "dq_border_ref_pix_top": ("ref_row", "frame_x"),
    "dq_border_ref_pix_bottom": ("ref_row", "frame_x"),
}
#: Width of the reference-pixel border on each side of a full frame.
BORDER = 4


def _open_cal_vars(path: str, roman: Any, meta: dict) -> tuple[dict, dict]:
    variables = {}
    seen: dict[str, int] = {}
    for name, dims in L2_ARRAY_DIMS.items():
        node = roman[name] if name in roman else None
        if node is None or not hasattr(node, "shape"):
            continue
        shape = tuple(int(s) for s in node.shape)
        if len(shape) != len(dims) or any(
            seen.get(d, n) != n for d, n in zip(dims, shape, strict=True)
        ):
            # inconsistent with the other arrays (e.g. placeholder arrays): keep it, on its own dims
            dims = tuple(f"{name}_dim_{i}" for i in range(len(shape)))
        seen.update(zip(dims, shape, strict=True))
        variables[name] = _array_var(path, name, node, dims)
    if "data" not in variables or variables["data"].ndim != 2:
        raise WrongProductError(f"{path}: a Level-2 image needs a 2-D roman.data")
    ny, nx = variables["data"].shape
    coords: dict[str, Any] = {
        "y": np.arange(BORDER, BORDER + ny, dtype=np.int64),
        "x": np.arange(BORDER, BORDER + nx, dtype=np.int64),
    }
    sizes = {d: s for v in variables.values() for d, s in zip(v.dims, v.shape, strict=True)}
    for dim in ("frame_y", "frame_x", "ref_col", "ref_row", AMP33_DIM):
        if dim in sizes:
            coords[dim] = np.arange(sizes[dim], dtype=np.int64)
    exposure = meta.get("exposure", {})
    if "resultant" in sizes:
        try:
            info = validate_read_pattern(
                exposure.get("read_pattern"),
                exposure.get("frame_time"),
                sizes["resultant"],
                source=path,
            )
            coords.update(resultant_coords(info))
        except Exception:
            coords["resultant"] = np.arange(sizes["resultant"], dtype=np.int64)
    return variables, coords


#: Ramp (``RampModel``, saved intermediates) arrays and their dims.
RAMP_ARRAY_DIMS = {
    "data": RAMP_DIMS,
    "pixeldq": ("y", "x"),
    "groupdq": RAMP_DIMS,
    "amp33": ("resultant", "y", AMP33_DIM),
    **{k: v for k, v in L2_ARRAY_DIMS.items() if "border_ref_pix" in k},
}
#: Default dims of the extra ``jump_indices`` array (rows of (resultant, y, x)).
JUMP_INDICES_DIMS = ("jump", "jump_axis")


def _open_ramp_vars(path: str, roman: Any, meta: dict) -> tuple[dict, dict]:
    variables = {}
    for name, dims in RAMP_ARRAY_DIMS.items():
        if name in roman and roman[name] is not None and hasattr(roman[name], "shape"):
            variables[name] = _array_var(path, name, roman[name], dims)
    if "data" not in variables:
        raise WrongProductError(f"{path}: a ramp needs a 3-D roman.data")
    nres, ny, nx = variables["data"].shape
    exposure = meta.get("exposure", {})
    info = validate_read_pattern(
        exposure.get("read_pattern"), exposure.get("frame_time"), nres, source=path
    )
    coords: dict[str, Any] = dict(resultant_coords(info))
    coords["y"] = np.arange(ny, dtype=np.int64)
    coords["x"] = np.arange(nx, dtype=np.int64)
    sizes = {d: s for v in variables.values() for d, s in zip(v.dims, v.shape, strict=True)}
    for dim in ("frame_y", "frame_x", "ref_col", "ref_row", AMP33_DIM):
        if dim in sizes:
            coords[dim] = np.arange(sizes[dim], dtype=np.int64)
    return variables, coords


def _apply_romanxr_node(path: str, tree: Any, roman: Any, variables: dict, coords: dict) -> dict:
    """Extras romanxr's writer keeps beside the roman node; returns extra attrs."""
    node = tree.get("romanxr") if hasattr(tree, "get") else None
    node = to_plain(node) if node is not None else {}
    if "jump_indices" in roman and hasattr(roman["jump_indices"], "shape"):
        dims = tuple(node.get("dims", {}).get("jump_indices", JUMP_INDICES_DIMS))
        variables["jump_indices"] = _array_var(path, "jump_indices", roman["jump_indices"], dims)
    for dim, values in (node.get("coords") or {}).items():
        if dim in coords and len(values) == len(coords[dim]):
            coords[dim] = np.asarray(values, dtype=np.int64)
    attrs = {}
    for key in ("step_parameters", "frame_shape"):
        if key in node:
            attrs[key] = node[key]
    return attrs


def _frame_shape_of(variables: Mapping[str, xr.Variable]) -> tuple[int, int] | None:
    """The whole frame's shape: the ramp's (y, x), or the full-frame arrays an image carries."""
    data = variables.get("data")
    if data is not None and data.ndim == 3 and data.dims[-2:] == ("y", "x"):
        return int(data.shape[-2]), int(data.shape[-1])
    sizes = {d: n for v in variables.values() for d, n in zip(v.dims, v.shape, strict=True)}
    if "frame_y" in sizes and "frame_x" in sizes:
        return sizes["frame_y"], sizes["frame_x"]
    if data is not None and data.ndim == 2:
        return int(data.shape[0]) + 2 * BORDER, int(data.shape[1]) + 2 * BORDER
    return None


def open_roman_asdf(
    path: str | os.PathLike,
    *,
    expect: str | None = None,
    drop_variables: Any = None,
) -> xr.Dataset:
    """Open a Roman ASDF product as a lazily indexed (not yet dask-backed) Dataset.

    Parameters
    ----------
    path : path-like
        The file.
    expect : {"uncal", "cal", "ramp"}, optional
        Raise :class:`WrongProductError` if the file is another product.
    drop_variables : iterable of str, optional
        Variables not to expose.

    Returns
    -------
    xarray.Dataset
        See :mod:`romanxr.dataset` for the layout. ``attrs["meta"]`` holds the metadata tree.
    """
    path = str(Path(path))
    af, roman = _open_asdf(path)
    try:
        tag = _tag_of(roman)
        kind, name, major = product_kind(tag)
        if kind is None or kind == "reference":
            if expect is not None:
                raise WrongProductError(
                    f"{path}: expected a {_EXPECTED_TAG[expect]} ({expect}) product but the "
                    f"file holds {name or 'an untagged roman node'} ({tag})"
                )
            raise WrongProductError(f"{path}: unsupported Roman product {tag}")
        if expect is not None and kind != expect:
            raise WrongProductError(
                f"{path}: expected a {_EXPECTED_TAG[expect]} ({expect}) product but the file "
                f"is a {name} ({kind}) product; "
                + (
                    "use romanxr.open_cal() for calibrated images"
                    if kind == "cal"
                    else "use romanxr.open_uncal() for Level-1 ramps"
                )
            )
        if major is not None and major > _SUPPORTED_MAJOR.get(name, major):
            raise WrongProductError(
                f"{path}: {tag} is newer than this romanxr understands "
                f"(supports {name}-{_SUPPORTED_MAJOR[name]}.x); upgrade romanxr"
            )
        if "meta" not in roman:
            raise WrongProductError(f"{path}: roman node has no 'meta'")
        meta = to_plain(roman["meta"])
        if kind == "cal":
            variables, coords = _open_cal_vars(path, roman, meta)
        elif kind == "ramp":
            variables, coords = _open_ramp_vars(path, roman, meta)
        else:
            variables, coords = _open_uncal_vars(path, roman, meta)
        extra_attrs = _apply_romanxr_node(path, af.tree, roman, variables, coords)
    finally:
        af.close()
    if drop_variables:
        drop = {drop_variables} if isinstance(drop_variables, str) else set(drop_variables)
        variables = {k: v for k, v in variables.items() if k not in drop}
    attrs: dict[str, Any] = {"meta": meta}
    frame = _frame_shape_of(variables)
    if frame is not None:
        attrs["frame_shape"] = list(frame)
    attrs.update(extra_attrs)
    ds = xr.Dataset(variables, coords=coords, attrs=attrs)
    ds.encoding["source"] = path
    return ds
