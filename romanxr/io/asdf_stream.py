"""Stream arrays into an ASDF file without holding them in memory (issue #7).

:func:`romanxr.io.asdf_writer.to_asdf` used to allocate every output array in full, fill it
with ``dask.array.store`` and let asdf write the model: the writer's memory grew with the
output (about 0.45 GiB for a full-frame ``cal.asdf``). This module keeps it to a few chunks:

1. **Scratch.** Each dask-backed array gets a region of an unnamed temporary file in the
   run's private scratch directory (:func:`romanxr.schedule.scratch.temporary_file`:
   unlinked as soon as it is made, so even ``kill -9`` leaves no file). Every chunk is
   written there with one ``os.pwrite``, contiguous in the chunk's own C order
   (:class:`ChunkedScratch`), so chunks may arrive in any order and any layout (row bands,
   column strips, tiles) and the compute threads never loop over rows. Boolean jump maps
   are reduced chunk by chunk to the few indices of their jumps (:class:`JumpCollector`).

2. **Tree.** asdf writes the model with stand-in arrays of the right shapes and storage dtypes
   (:func:`untouched_zeros`: private anonymous pages that are only read, so they cost no
   resident memory) and lz4 compression (zeros compress at several GB/s to ~1/250 of their
   size). Only the YAML tree of that file is kept: it is exactly what asdf/roman_datamodels
   write for the real arrays, since compression and values are not part of the tree. Blocks
   of arrays that are not ours (a gwcs's coefficients in ``meta.wcs``) are carried over.

3. **Blocks.** The file is cut after the tree and every block is appended in asdf's framing
   (:func:`write_blocks`; the framing is defined in :mod:`romanxr.io.blocks`, which the
   reader shares), then the block index. Each array is streamed in C order from its source
   (scratch chunks or an in-memory numpy array, cast slab by slab) through one 4 MiB buffer;
   lz4 blocks are cut into pieces of exactly 4 MiB of uncompressed bytes, like asdf's own
   ``Lz4Compressor``. For lz4 and raw blocks the result is byte for byte what
   ``asdf.AsdfFile.write_to`` writes for the same tree and arrays (zlib/bzp2 are streamed
   too: valid, not necessarily the same bytes).

Checksums: the real MD5 is written (over the stored bytes: compressed for lz4, raw otherwise,
as asdf does), computed while the block streams past, so ``asdf.open(...,
validate_checksums=True)`` checks the file like one written by roman_datamodels. It costs one
MD5 pass over the stored bytes (~0.7 GB/s measured on this machine) and needs no extra
read.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from romanxr.errors import OutputError
from romanxr.io.blocks import (
    BLOCK_MAGIC,
    PIECE,
    Compressor,
    block_index,
    decompress,
    pack_header,
    read_block_header,
)

__all__ = [
    "ArraySource",
    "ChunkedScratch",
    "JumpCollector",
    "MemorySource",
    "MemoryTarget",
    "block_sources",
    "untouched_zeros",
    "write_blocks",
]


def _pwrite_all(fd: int, buffer: Any, offset: int) -> None:
    view = memoryview(buffer).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _pread_into(fd: int, out: np.ndarray, offset: int) -> None:
    view = memoryview(out).cast("B")
    while view:
        got = os.preadv(fd, [view], offset)
        if got <= 0:
            raise OutputError(f"scratch file ended early at byte {offset}")
        view = view[got:]
        offset += got


def _cast(block: Any, dtype: np.dtype) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        # float16 overflows to inf above 65504, as romancal's own cast does
        return np.ascontiguousarray(np.asarray(block).astype(dtype, copy=False))


def untouched_zeros(shape: Sequence[int], dtype: Any) -> np.ndarray:
    """A zero array in private anonymous memory (``mmap``) that costs nothing until written.

    Reading its pages maps the kernel's shared zero page, which does not count in the
    resident set size (measured: ``benchmarks/bench_writers.py --memory``); unlike
    ``np.zeros`` (calloc) it is also not counted by ``tracemalloc``, whatever the allocator
    does for that size.
    """
    import mmap

    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes == 0:
        return np.zeros(tuple(shape), dtype=dtype)
    # private, not shared: a shared anonymous mapping is shmem, whose pages are allocated on
    # a read fault too
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    buffer = mmap.mmap(-1, nbytes, flags=flags) if flags else mmap.mmap(-1, nbytes)
    return np.frombuffer(buffer, dtype=dtype).reshape(tuple(shape))


# --------------------------------------------------------------------------------------------
# where the arrays come from


class ArraySource:
    """One array to stream in C order: its shape, storage dtype and slabs of it."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def slab(self, prefix: tuple[int, ...], start: int, stop: int) -> np.ndarray:
        """``array[(*prefix, slice(start, stop))]`` (C-contiguous, storage dtype)."""
        raise NotImplementedError

    def slabs(self, budget: int = PIECE) -> Iterator[np.ndarray]:
        """The whole array in C order as contiguous slabs of about ``budget`` bytes at most.

        A slab is ``array[i0, ..., i(d-1), a:b]`` (all of the axes after ``d``) with ``d``
        the first axis whose trailing extent fits the budget.
        """
        shape = self.shape
        if self.nbytes == 0:
            return
        if not shape:
            yield self.slab((), 0, 1).reshape(())
            return
        d = 0
        row = math.prod(shape[1:]) * self.dtype.itemsize
        while d < len(shape) - 1 and row > budget:
            d += 1
            row //= shape[d]
        step = max(1, budget // max(row, 1))
        for prefix in itertools.product(*(range(n) for n in shape[:d])):
            for start in range(0, shape[d], step):
                yield self.slab(prefix, start, min(start + step, shape[d]))


class MemorySource(ArraySource):
    """A numpy (or numpy-like) array already in memory, cast slab by slab."""

    def __init__(self, array: Any, dtype: Any) -> None:
        self.array = array
        self.shape = tuple(int(s) for s in np.shape(array))
        self.dtype = np.dtype(dtype)

    def slab(self, prefix: tuple[int, ...], start: int, stop: int) -> np.ndarray:
        if not self.shape:
            return _cast(self.array, self.dtype).reshape(1)
        return _cast(self.array[(*prefix, slice(start, stop))], self.dtype)


class ChunkedScratch(ArraySource):
    """``dask.array.store`` target keeping each chunk contiguously in a scratch file.

    Chunk ``(i, j, ...)`` of the chunk grid has a fixed region (its size in bytes, in grid
    order), so writers need no lock and may come in any order; :meth:`slab` reads the parts
    of the chunks a C-order slab needs (one ``pread`` per chunk it crosses).

    Parameters
    ----------
    fd : int
        The scratch file, open for reading and writing.
    offset : int
        Where this array's region starts in it.
    shape, dtype, chunks :
        The array, its storage dtype and its dask chunks.
    label : str
        Names the output in error messages.
    """

    def __init__(
        self,
        fd: int,
        offset: int,
        shape: Sequence[int],
        dtype: Any,
        chunks: Sequence[Sequence[int]],
        label: str = "",
    ) -> None:
        self.fd = fd
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.label = label
        self.chunks = tuple(tuple(int(c) for c in axis) for axis in chunks)
        if tuple(sum(axis) for axis in self.chunks) != self.shape:
            raise ValueError(f"chunks {self.chunks} do not cover the shape {self.shape}")
        self.bounds = [np.concatenate([[0], np.cumsum(axis)]).tolist() for axis in self.chunks]
        self.grid = tuple(len(axis) for axis in self.chunks)
        # byte offset of every chunk, C order over the grid
        sizes = [
            math.prod(self.chunks[a][i] for a, i in enumerate(index)) * self.dtype.itemsize
            for index in itertools.product(*(range(n) for n in self.grid))
        ]
        self.offsets = (offset + np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])).tolist()
        self.region = int(self.offsets[-1] - offset)
        self.written = 0  # chunks stored (a check that nothing was missed)
        self._count_lock = threading.Lock()

    def _chunk_index(self, key: tuple[slice, ...]) -> tuple[int, ...]:
        index = []
        for axis, sl in enumerate(key):
            start = sl.start or 0
            i = bisect.bisect_right(self.bounds[axis], start) - 1
            if self.bounds[axis][i] != start or self.bounds[axis][i + 1] != (
                sl.stop if sl.stop is not None else self.shape[axis]
            ):
                raise ValueError(f"{key} is not one chunk of {self.chunks}")
            index.append(i)
        return tuple(index)

    def _flat(self, index: Sequence[int]) -> int:
        return int(np.ravel_multi_index(tuple(index), self.grid)) if self.grid else 0

    def __setitem__(self, key: Any, value: Any) -> None:
        if not isinstance(key, tuple):
            key = (key,)
        index = self._chunk_index(key)
        block = _cast(value, self.dtype)
        expected = tuple(self.chunks[a][i] for a, i in enumerate(index))
        if block.shape != expected:
            raise ValueError(f"chunk {index} has shape {block.shape}, expected {expected}")
        try:
            _pwrite_all(self.fd, block, self.offsets[self._flat(index)])
        except OSError as exc:
            raise OutputError(
                f"{self.label}: writing the temporary data (romanxr's scratch folder) failed "
                f"({type(exc).__name__}: {exc}); check free space and permissions there"
            ) from exc
        with self._count_lock:
            self.written += 1

    def slab(self, prefix: tuple[int, ...], start: int, stop: int) -> np.ndarray:
        d = len(prefix)
        out = np.empty((stop - start, *self.shape[d + 1 :]), dtype=self.dtype)
        if out.size == 0:
            return out
        fixed = []  # (chunk index, index inside the chunk) on the prefix axes
        for axis, i in enumerate(prefix):
            c = bisect.bisect_right(self.bounds[axis], i) - 1
            fixed.append((c, i - self.bounds[axis][c]))
        first = bisect.bisect_right(self.bounds[d], start) - 1
        last = bisect.bisect_left(self.bounds[d], stop) - 1
        trailing = [range(n) for n in self.grid[d + 1 :]]
        for cd in range(first, last + 1):
            c0, c1 = self.bounds[d][cd], self.bounds[d][cd + 1]
            lo, hi = max(start, c0), min(stop, c1)
            for rest in itertools.product(*trailing):
                index = (*(c for c, _ in fixed), cd, *rest)
                cshape = tuple(self.chunks[a][i] for a, i in enumerate(index))
                # elements before row (lo - c0) of the chunk's sub-array at the fixed prefix
                local = (*(j for _, j in fixed), lo - c0, *([0] * len(rest)))
                skip = int(np.ravel_multi_index(local, cshape)) if cshape else 0
                part = np.empty((hi - lo, *cshape[d + 1 :]), dtype=self.dtype)
                _pread_into(
                    self.fd, part, self.offsets[self._flat(index)] + skip * self.dtype.itemsize
                )
                where = [slice(lo - start, hi - start)]
                for axis, i in zip(range(d + 1, len(self.shape)), rest, strict=True):
                    where.append(slice(self.bounds[axis][i], self.bounds[axis][i + 1]))
                out[tuple(where)] = part
        return out

    def check_complete(self) -> None:
        total = math.prod(self.grid)
        if self.written != total:
            raise RuntimeError(f"{self.label}: {self.written} of {total} chunks were stored")


class MemoryTarget:
    """``dask.array.store`` target for a small array gathered into memory."""

    def __init__(self, shape: Sequence[int], dtype: Any) -> None:
        self.array = np.empty(tuple(shape), dtype=dtype)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.array[key] = value


class JumpCollector:
    """``dask.array.store`` target turning a boolean ``(resultant, y, x)`` jump map into
    romancal's ``jump_indices`` rows chunk by chunk (only the jumps are kept).

    Parameters
    ----------
    y, x : ndarray
        Absolute detector coordinates of the map's rows and columns.
    border : int
        Reference border width (rows are given in science-frame coordinates).
    convert : callable
        ``convert(jumps, y, x, border) -> (N, 3) int rows`` for one chunk
        (:func:`romanxr.kernels.ramp_common.jump_indices_from_flags`).
    """

    def __init__(
        self, y: np.ndarray, x: np.ndarray, border: int, convert: Callable[..., np.ndarray]
    ) -> None:
        self.y = np.asarray(y)
        self.x = np.asarray(x)
        self.border = border
        self.convert = convert
        self.parts: list[np.ndarray] = []
        self._lock = threading.Lock()

    def __setitem__(self, key: tuple[slice, slice, slice], value: Any) -> None:
        res, ys, xs = key
        rows = self.convert(np.asarray(value), self.y[ys], self.x[xs], self.border)
        if rows.size:
            rows = rows.copy()
            rows[:, 0] += res.start or 0
        with self._lock:
            self.parts.append(rows)

    def result(self) -> np.ndarray:
        """All rows in the order of ``np.nonzero`` over the whole map (resultant, y, x)."""
        parts = [p for p in self.parts if p.size]
        if not parts:
            empty = self.convert(
                np.zeros((0, 0, 0), dtype=bool), self.y[:0], self.x[:0], self.border
            )
            return empty.reshape(0, 3)
        rows = np.concatenate(parts)
        order = np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))
        return rows[order]


# --------------------------------------------------------------------------------------------
# the file


@dataclass
class _Tree:
    end: int  # byte offset of the first block (the tree is everything before)
    sources: dict[tuple[str, ...], int]  # tree path of each ndarray -> block number
    nblocks: int


def _any_tag_loader():
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        pass

    def construct(loader, suffix, node):
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    # every tag without a constructor of its own (asdf's and roman's) becomes plain data
    Loader.add_multi_constructor("", construct)
    return Loader


def _find_sources(node: Any, path: tuple[str, ...], out: dict) -> None:
    if isinstance(node, Mapping):
        if "source" in node and "shape" in node and "datatype" in node:
            source = node["source"]
            if isinstance(source, int):
                out[path] = source
            return
        for key, value in node.items():
            _find_sources(value, (*path, str(key)), out)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _find_sources(value, (*path, str(i)), out)


def read_tree(path: str | os.PathLike, step: int = 1 << 20) -> _Tree:
    """The YAML tree of an ASDF file (everything before its first block) and which block each
    array of it uses."""
    import yaml

    head = bytearray()
    end = -1
    with open(path, "rb") as fh:
        while end < 0:
            more = fh.read(step)
            if not more:
                raise OutputError(f"{path}: asdf wrote no binary blocks")
            search_from = max(0, len(head) - len(BLOCK_MAGIC))
            head += more
            end = head.find(BLOCK_MAGIC, search_from)
    text = bytes(head[:end]).decode("utf-8")
    doc = yaml.load(text, Loader=_any_tag_loader())  # plain data only
    sources: dict[tuple[str, ...], int] = {}
    _find_sources(doc, (), sources)
    nblocks = len(set(sources.values()))
    if sorted(set(sources.values())) != list(range(nblocks)):
        raise OutputError(f"{path}: unexpected block numbering {sorted(set(sources.values()))}")
    return _Tree(end=end, sources=sources, nblocks=nblocks)


def _pieces(source: ArraySource) -> Iterator[bytes]:
    """The array's bytes in C order, cut into pieces of :data:`PIECE` bytes (the last shorter)."""
    buffer = bytearray(PIECE)
    view = memoryview(buffer)
    fill = 0
    total = 0
    for slab in source.slabs(PIECE):
        data = memoryview(np.ascontiguousarray(slab)).cast("B")
        total += len(data)
        while data:
            n = min(len(data), PIECE - fill)
            view[fill : fill + n] = data[:n]
            fill += n
            data = data[n:]
            if fill == PIECE:
                yield bytes(view)
                fill = 0
    if fill:
        yield bytes(view[:fill])
    if total != source.nbytes:
        raise RuntimeError(f"streamed {total} bytes of an array of {source.nbytes}")


#: Pieces compressed ahead of the one being written (each :data:`PIECE` bytes).
AHEAD = 4


def _in_order(func: Callable[[bytes], list], items: Iterator[bytes]) -> Iterator[list]:
    """``map(func, items)``, run by a few threads (lz4 releases the GIL), in order, with at
    most :data:`AHEAD` results pending."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    workers = max(1, min(os.cpu_count() or 1, AHEAD))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="romanxr-lz4") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(func, item))
            if len(pending) > AHEAD:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _write_block(fh: Any, source: ArraySource, compression: str | None) -> int:
    """Append one block (header, data) at the file position; return where it starts.

    lz4 pieces are independent, so they are compressed by a few threads while this one
    hashes and writes them in order; zlib and bzp2 are one stream (compressed here).
    """
    start = fh.tell()
    comp = Compressor(compression)
    fh.write(pack_header(b"", 0, 0, bytes(16)))  # a stand-in, rewritten at the end
    md5 = hashlib.md5(usedforsecurity=False)
    used = 0
    total = 0

    def emit(parts: list) -> None:
        nonlocal used
        for part in parts:
            if len(part):
                md5.update(part)
                fh.write(part)
                used += len(part)

    def counted() -> Iterator[bytes]:
        nonlocal total
        for piece in _pieces(source):
            total += len(piece)
            yield piece

    if compression == "lz4":
        for parts in _in_order(comp.piece, counted()):
            emit(parts)
    else:
        for piece in counted():
            emit(comp.piece(memoryview(piece)))
    emit(comp.finish())
    end = fh.tell()
    fh.seek(start)
    fh.write(pack_header(comp.label, used, total, md5.digest()))
    fh.seek(end)
    return start


def _read_block_bytes(path: str | os.PathLike, start: int, wanted: set[int]) -> dict:
    """The (decompressed) bytes of the ``wanted`` blocks of the file, as uint8 arrays.

    For the few arrays asdf wrote that are not ours (a gwcs in ``meta.wcs`` keeps its
    polynomial coefficients in blocks): small, so held in memory.
    """
    out: dict[int, MemorySource] = {}
    with open(path, "rb") as fh:
        pos, block = start, 0
        while len(out) < len(wanted):
            try:
                header = read_block_header(fh, pos)
            except ValueError as exc:
                raise OutputError(f"{path}: block {block} not found at byte {pos}") from exc
            if block in wanted:
                fh.seek(header.data_offset)
                stored = fh.read(header.used)
                try:
                    data = decompress(stored, header.compression, header.data_size, path)
                except ValueError as exc:
                    raise OutputError(str(exc)) from exc
                out[block] = MemorySource(np.frombuffer(data, dtype=np.uint8), np.uint8)
            pos = header.end
            block += 1
    return out


def block_sources(
    tree: _Tree, arrays: Mapping[tuple[str, ...], ArraySource], path: str | os.PathLike
) -> list[ArraySource]:
    """The source of every block of ``tree`` in block order.

    Blocks of arrays not in ``arrays`` (metadata arrays asdf wrote itself) are taken over
    from the file at ``path``, decompressed.
    """
    by_block: dict[int, ArraySource] = {}
    for key, block in tree.sources.items():
        if key not in arrays:
            continue
        src = arrays[key]
        if block in by_block and by_block[block] is not src:
            raise OutputError(f"{path}: two arrays share block {block}")
        by_block[block] = src
    missing = [k for k in arrays if k not in tree.sources]
    if missing:
        raise OutputError(f"{path}: arrays {missing} are not in the written tree")
    others = set(range(tree.nblocks)) - set(by_block)
    if others:
        by_block.update(_read_block_bytes(path, tree.end, others))
    return [by_block[i] for i in range(tree.nblocks)]


def write_blocks(
    path: str | os.PathLike,
    arrays: Mapping[tuple[str, ...], ArraySource],
    compression: str | None,
) -> None:
    """Replace the blocks of the ASDF file at ``path`` by the streamed ``arrays``.

    ``path`` holds a file asdf wrote (raw or lz4 blocks) with the right tree; ``arrays`` maps
    each ndarray's tree path (e.g. ``("roman", "data")``) to its source; blocks of other
    arrays in the tree (e.g. a gwcs's coefficients) are kept, re-compressed like the rest.
    The tree is kept byte for byte; the blocks and the block index are written anew in
    asdf's framing.
    """
    tree = read_tree(path)
    sources = block_sources(tree, arrays, path)
    with open(path, "r+b") as fh:
        fh.truncate(tree.end)
        fh.seek(tree.end)
        offsets = [_write_block(fh, src, compression) for src in sources]
        fh.write(block_index(offsets))
