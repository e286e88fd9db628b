"""Reading parts of one array straight from its ASDF block (raw or lz4).

Why not asdf's own lazy loading: asdf 5.4 opens files lazily (``lazy_load=True``), but the
first access to an array reads and decompresses its *whole* block (``read_block_data`` in
``asdf/_block/io.py``), whatever slice is asked for; only raw blocks can be read in part,
through ``memmap=True``. This module reads only the lz4 pieces (:mod:`romanxr.io.blocks`) or
raw bytes under the requested slice, from a layout of offsets that pickles and holds no file.

Measured with ``python benchmarks/bench_asdf_reads.py --uncal FILE`` (2026-12-07, asdf 5.4.0,
2 shared cores, one process; FILE from ``romanxr.testing.simulate_exposure((2048, 2048),
seed=1)``: ``roman.data`` (8, 2048, 2048) uint16 = 64 MiB, roman_datamodels' lz4, copied raw
and zlib by asdf). Median of 3 runs, each from a closed file; peak RSS above the start.
"one band" = 128 rows, all resultants (a default dask chunk); "all bands" = the 16 bands in
turn, as a graph's chunks read it (asdf: one open file):

======  =========  ===================  ===================
blocks  read       romanxr              asdf
======  =========  ===================  ===================
lz4     one band   0.027 s, +24 MiB     0.135 s, +84 MiB
lz4     all bands  0.162 s, +28 MiB     0.137 s, +84 MiB
lz4     full       0.065 s, +150 MiB    0.146 s, +146 MiB
raw     one band   0.008 s, +8 MiB      0.007 s, +17 MiB  (memmap)
raw     all bands  0.020 s, +12 MiB     0.013 s, +72 MiB  (memmap)
raw     full       0.027 s, +126 MiB    0.015 s, +124 MiB (memmap)
zlib    one band   0.497 s, +68 MiB     0.512 s, +68 MiB
======  =========  ===================  ===================

So ours is kept for lz4, the blocks of every Roman product: a chunk costs 1/5 of the time and
1/3.5 of the memory, and memory does not grow with the array (asdf holds the whole
decompressed block, 256 MiB for a full-frame ramp, per array and per process, for as long as
the file is open). Sweeping a whole array band by band, asdf is 15% faster (each lz4 piece
is decompressed once instead of once per band it overlaps). For raw blocks asdf's memmap is
as fast (7 ms more for the 64 MiB sweep) but its resident memory grows with what was touched
while the file stays open (+72 against +12 MiB); the raw path here is four lines of the same
code, so it stays too. zlib and bzp2 are one compressed stream that cannot be entered in the
middle: those arrays are read by asdf, whole, once per process (:mod:`romanxr.io.cache`;
same figures for both columns).
"""

from __future__ import annotations

import bisect
import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from romanxr.errors import FileFormatError
from romanxr.io.asdf_setup import prepare_asdf
from romanxr.io.blocks import LZ4_FRAME_START, LZ4_PIECE_HEAD, lz4_piece_head
from romanxr.io.identity import FileIdentity, check_identity

__all__ = ["BlockLayout", "block_layout"]

#: Bytes of whole rows read at a time when a selection takes a strip of columns.
_BAND_BYTES = 4 * 2**20
#: Most reads one selection makes along its leading dims before it reads bigger spans.
_MAX_READS = 4096


def _count(k: Any) -> int:
    return len(range(*k)) if isinstance(k, tuple) else 1


class BlockLayout:
    """Where one C-ordered array lies in an ASDF file, for reading parts of it.

    Raw blocks are read with ``os.pread``; lz4 blocks (roman_datamodels' default) are a
    sequence of independently compressed pieces of about 4 MiB (see :mod:`romanxr.io.blocks`),
    so a slice is served by decompressing only the pieces that overlap it. The layout holds
    offsets only (a few hundred bytes), never pixel data or an open file.
    """

    def __init__(
        self,
        path: str,
        data_offset: int,
        used_size: int,
        compressed: bool,
        shape: tuple[int, ...],
        dtype: np.dtype,
        identity: FileIdentity | None = None,
    ) -> None:
        self.path = path
        #: the file the offsets belong to; every read checks it still is that file
        self.identity = identity
        self.shape = shape
        self.dtype = dtype
        self.data_offset = int(data_offset)
        self.compressed = compressed
        # per compressed piece: payload offset in the file, payload length, uncompressed start
        self.chunk_offsets: list[int] = []
        self.chunk_lengths: list[int] = []
        self.chunk_starts: list[int] = []
        if compressed:
            self._index(int(used_size))

    @contextlib.contextmanager
    def _open(self) -> Iterator[int]:
        """The file's descriptor, once it is checked to be the file the layout was made from."""
        with open(self.path, "rb") as fh:
            check_identity(self.path, self.identity, fh.fileno())
            yield fh.fileno()

    def _index(self, used_size: int) -> None:
        pos, start = self.data_offset, 0
        end = self.data_offset + used_size
        with self._open() as fd:
            while pos < end:
                head = os.pread(fd, LZ4_PIECE_HEAD, pos)
                if len(head) < LZ4_PIECE_HEAD:
                    raise FileFormatError(f"{self.path}: truncated lz4 block at byte {pos}")
                length, size = lz4_piece_head(head)
                self.chunk_offsets.append(pos + LZ4_FRAME_START)
                self.chunk_lengths.append(length)
                self.chunk_starts.append(start)
                pos += LZ4_FRAME_START + length
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

        ``memo`` keeps the last two decompressed pieces between calls, so a series of small
        reads in file order decompresses each piece once.
        """
        if not self.compressed:
            got = os.preadv(fd, [out], self.data_offset + start)
            if got != stop - start:
                raise FileFormatError(f"{self.path}: short read at byte {start}")
            return
        import lz4.block

        pos = 0
        i = bisect.bisect_right(self.chunk_starts, start) - 1
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
            out[pos : pos + hi - lo] = memoryview(chunk)[lo:hi]  # one copy, not two
            pos += hi - lo
            i += 1

    def _elems(self, ndim: int) -> list[int]:
        """Elements per index of each of the first ``ndim`` dims."""
        return [int(np.prod(self.shape[i + 1 :], dtype=np.int64)) for i in range(ndim)]

    def _read_banded(self, norm: list, split: int) -> np.ndarray | None:
        """Selection that restricts dim ``split`` under many leading indices (a column strip).

        Reads whole rows of dim ``split - 1`` in bands of about :data:`_BAND_BYTES` and copies
        the selected part of each band out, so memory stays at the output plus one band and
        every lz4 piece is decompressed once. Returns None for selections it does not handle
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
        elems = self._elems(band_dim)
        memo: dict[int, bytes] = {}
        with self._open() as fd:
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

    def _normalize(self, key: tuple) -> list[Any]:
        """Each index as an int (negative ones wrapped) or a ``slice.indices`` tuple."""
        norm: list[Any] = []
        for k, n in zip(key, self.shape, strict=True):
            if isinstance(k, slice):
                norm.append(k.indices(n))
            else:
                k = int(k)
                norm.append(k + n if k < 0 else k)
        return norm

    def _read_scalar(self) -> np.ndarray:
        out = np.empty((), dtype=self.dtype)
        with self._open() as fd:
            view = memoryview(out.reshape(1).view(np.uint8))
            self.read_bytes(fd, 0, self.dtype.itemsize, view)
        return out

    def _read_spans(self, norm: list, split: int, lo: int, hi: int) -> np.ndarray:
        """Rows ``[lo, hi)`` of dim ``split`` (whole trailing dims) for every leading index."""
        shape = self.shape
        itemsize = self.dtype.itemsize
        lead = [list(range(*k)) if isinstance(k, tuple) else [k] for k in norm[:split]]
        counts = [len(r) for r in lead]
        buf = np.empty((*counts, hi - lo, *shape[split + 1 :]), dtype=self.dtype)
        if not buf.size:
            return buf
        row = int(np.prod(shape[split + 1 :], dtype=np.int64)) * itemsize
        span = (hi - lo) * row
        elems = self._elems(split)
        view = memoryview(buf.reshape(-1).view(np.uint8))
        memo: dict[int, bytes] = {}
        with self._open() as fd:
            for n, idx in enumerate(np.ndindex(*counts)):
                first = sum(lead[d][i] * elems[d] for d, i in enumerate(idx))
                start = first * itemsize + lo * row
                self.read_bytes(fd, start, start + span, view[n * span : (n + 1) * span], memo)
        return buf

    def read(self, key: tuple) -> np.ndarray:
        """``array[key]`` for a tuple of ints/slices (basic indexing), reading only what it needs.

        Whole rows of the trailing dims are read at once, one read per index of the leading
        dims (e.g. per resultant of a ``(resultant, y, x)`` ramp, a band of rows each).
        """
        shape = self.shape
        key = tuple(key) + (slice(None),) * (len(shape) - len(key))
        if not shape:
            return self._read_scalar()
        norm = self._normalize(key)

        # split = the last dim the key restricts; the dims after it are read as whole rows,
        # the dims before it one index at a time (moved left if that makes too many reads)
        split = len(shape) - 1
        while split > 0 and norm[split] == (0, shape[split], 1):
            split -= 1
        if split >= 2 and int(np.prod([_count(k) for k in norm[:split]])) > _MAX_READS:
            banded = self._read_banded(norm, split)
            if banded is not None:
                return banded
        while split > 0 and int(np.prod([_count(k) for k in norm[:split]])) > _MAX_READS:
            split -= 1
        ax = norm[split]
        if isinstance(ax, tuple):
            a0, a1, step = ax
            lo, hi = (a0, a1) if step > 0 else (a1 + 1, a0 + 1)
            lo = max(lo, 0)
            hi = max(min(hi, shape[split]), lo)
        else:
            lo, hi = ax, ax + 1
        buf = self._read_spans(norm, split, lo, hi)
        # the rest of the selection, inside what was read
        inner: list[Any] = [slice(None) if isinstance(k, tuple) else 0 for k in norm[:split]]
        if isinstance(ax, tuple):
            a0, a1, step = ax
            inner.append(slice(a0 - lo, (a1 - lo) if a1 - lo >= 0 else None, step))
        else:
            inner.append(0)
        inner.extend(key[split + 1 :])
        return buf[tuple(inner)]


def block_layout(
    path: str, keys: tuple[str, ...], identity: FileIdentity | None = None
) -> BlockLayout | None:
    """The block layout of the array at ``keys``, or None when it cannot be read in parts
    (other compression, strided/offset views, inline arrays...). ``identity``: the file's,
    checked on every read through the layout."""
    asdf = prepare_asdf()

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
            return BlockLayout(
                path,
                block.data_offset,
                header["used_size"],
                compression == b"lz4",
                shape,
                dtype,
                identity,
            )
