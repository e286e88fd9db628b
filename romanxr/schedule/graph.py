"""Hand-built dask graphs for stages that need more than one chunk of their input.

Most steps are per-chunk maps (``map_blocks``, ``apply_ufunc``) and need nothing here. A
whole-frame stage (refpix: spectra of the reference pixels of every row, then corrections of
every band from them) does, because built with the usual collection methods its graph either
holds the whole frame or computes shared work several times (why: see
:mod:`romanxr.schedule`). The helpers below build such a graph from tasks that name the
input's own chunk keys:

* :func:`clone` - a second copy of an input's graph, for a small early reader;
* :func:`edge_and_row_cuts` - border columns and a few rows of a frame, one task per chunk;
* :func:`single_chunk_task` - one task on single-chunk arrays without re-optimizing them;
* :func:`chunk_anchors` - a Delayed per chunk, to order a task after a chunk's read;
* :func:`map_row_chunks` - one task per band of rows, with shared task results as arguments;
* :func:`item_array` - a one-chunk array from one item of a task's result;
* :func:`prelude` - a small result computed before the bands (a whole-frame fit);
* :class:`Opaque` - a task argument dask must not look into (a lazily indexed reference).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "PRELUDE",
    "Opaque",
    "chunk_anchors",
    "clone",
    "edge_and_row_cuts",
    "item_array",
    "map_row_chunks",
    "prelude",
    "prelude_rows",
    "single_chunk_task",
]

#: Name prefix of the keys that :func:`romanxr.schedule.regions.store_by_region` computes in a
#: region of their own, before the first band (see :func:`prelude`).
PRELUDE = "romanxr-prelude-"


class Opaque:
    """A task argument handed to the task as it is, identified by ``token``.

    dask normalises the arguments of a graph when it names it; for dask.distributed that
    happens on every submit, and normalising an xarray Variable over a lazily indexed file
    array reads the whole array and hashes it. A reference used by many tasks (refpix's
    coefficients: three arrays of ~150 MB at full frame, in ~30 tasks) was then read and
    hashed once per task on the client before the cluster started. Wrapped, it costs its
    token; the tasks unwrap ``value`` and read only what they index.
    """

    def __init__(self, value: Any, token: Any) -> None:
        self.value = value
        self.token = token

    def __dask_tokenize__(self) -> Any:
        return ("romanxr-opaque", self.token)


def clone(x: Any) -> Any:
    """``x`` with its whole graph copied under new names (the same values).

    A small task that reads a little of every chunk (the reference pixels of every band)
    would otherwise make each chunk it reads wait, held in memory, until the last band is
    read. Reading from a clone, it shares no chunk with the main computation: the clone's
    chunks are made, cut and dropped. Clone before rechunking: the cloned rechunk layers keep
    their names in the dask versions pinned in the tests.
    """
    from dask.graph_manipulation import clone as dask_clone

    return dask_clone(x)


def _cut(block: np.ndarray, edge: int, inside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and last ``edge`` columns side by side, and rows ``inside`` (axis -2)."""
    cols = np.concatenate([block[..., :edge], block[..., -edge:]], axis=-1)
    return cols, np.array(block[..., inside, :], copy=True)


def edge_and_row_cuts(x: Any, rows: np.ndarray, edge: int, name: str = "border") -> tuple[Any, Any]:
    """The first and last ``edge`` columns (side by side) and rows ``rows`` (axis -2) of the
    dask array ``x``, each as one chunk.

    ``x`` has one chunk along every axis but -2. One task per chunk cuts both (rows near the
    top and the bottom lie in the first and the last band), so each chunk of ``x`` is made
    once: with a cut of its own per piece, dask's optimizer fused the chunk's whole input
    chain (file reads, pixel-DQ steps) into every cut. The merges that follow hold only the
    cut pieces. ``name`` prefixes the task keys.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    if np.any(np.diff(rows) <= 0):  # repeated rows (tiny frames): cut the unique ones
        return edge_and_row_cuts(x, np.unique(rows), edge, name)[0], x[..., rows, :].rechunk(-1)
    token = tokenize(x.name, rows)
    cut, e_name, r_name = (f"{name}-{k}-{token}" for k in ("cut", "edges", "rows"))
    lead = (0,) * (x.ndim - 2)
    bounds = np.concatenate([[0], np.cumsum(x.chunks[-2])])
    cuts: dict = {}
    pick_edges: dict = {}
    pick_rows: dict = {}
    counts = []
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        inside = rows[(rows >= lo) & (rows < hi)] - lo
        cuts[(cut, i)] = (_cut, (x.name, *lead, i, 0), edge, inside)
        pick_edges[(e_name, *lead, i, 0)] = (operator.getitem, (cut, i), 0)
        if inside.size:
            pick_rows[(r_name, *lead, len(counts), 0)] = (operator.getitem, (cut, i), 1)
            counts.append(int(inside.size))
    base = x.__dask_graph__()
    graph = HighLevelGraph(
        {**base.layers, cut: cuts, e_name: pick_edges, r_name: pick_rows},
        {**base.dependencies, cut: {x.name}, e_name: {cut}, r_name: {cut}},
    )
    edges = da.Array(graph, e_name, (*x.chunks[:-1], (2 * edge,)), dtype=x.dtype)
    cut_rows = da.Array(graph, r_name, (*x.chunks[:-2], tuple(counts), x.chunks[-1]), dtype=x.dtype)
    return edges.rechunk(-1), cut_rows.rechunk(-1)


def single_chunk_task(key: str, func: Callable, arrays: Sequence[Any], *extra: Any) -> Any:
    """A Delayed of ``func(*arrays, *extra)`` on dask arrays of one chunk each.

    Not ``dask.delayed(func)(*arrays)``: that optimizes each array's graph on its own, so the
    tasks it fuses (the steps and file reads of every band) are computed again under new
    names next to the same tasks of the main graph. The task refers to the arrays' own chunk
    keys instead.
    """
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    for x in arrays:
        if x.npartitions != 1:
            raise ValueError(f"{key}: expected single-chunk arrays, got chunks {x.chunks}")
    task = (func, *[(x.name, *(0,) * x.ndim) for x in arrays], *extra)
    return Delayed(key, HighLevelGraph.from_collections(key, {key: task}, dependencies=arrays))


def chunk_anchors(x: Any) -> Any:
    """An ndarray of Delayed, one per chunk of ``x`` (its own keys, not re-optimized).

    Passed as an extra (ignored) argument, a chunk's Delayed is an ordering anchor: the task
    waits for that chunk. dask's local scheduler runs newly ready tasks first and reads
    inputs in priority order, so a task anchored to the first chunk of a band runs when that
    band comes up, not as soon as its other inputs exist (which would make and hold the
    results of every band at once).
    """
    return x.to_delayed(optimize_graph=False)


def map_row_chunks(
    func: Callable,
    arrays: Sequence[Any],
    bands: Sequence[int],
    shared: Sequence[Any],
    band_args: Callable[[int], tuple],
    name: str,
    chunks: tuple[tuple[int, ...], ...],
    dtype: Any,
) -> Any:
    """A dask array of one task per band: ``func(*blocks, *shared, *band_args(k))``.

    ``arrays`` have their rows on axis -2 with the same row chunks, and one chunk along every
    other axis; band ``k`` takes chunk ``k`` of each (the output's chunk ``i`` is
    ``bands[i]``). ``shared`` are Delayed objects or lists of them, passed as their values:
    every band's task uses the same results without copying them into the graph.
    """
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    def ref(s: Any) -> Any:
        return [d.key for d in s] if isinstance(s, list | tuple) else s.key

    keys = [x.__dask_keys__() for x in arrays]
    flat = [d for s in shared for d in (s if isinstance(s, list | tuple) else [s])]
    dsk = {}
    for i, k in enumerate(bands):
        blocks = [_row_chunk_key(kx, x.ndim, k) for kx, x in zip(keys, arrays, strict=True)]
        dsk[(name, *(0,) * (len(chunks) - 2), i, 0)] = (
            func,
            *blocks,
            *[ref(s) for s in shared],
            *band_args(k),
        )
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[*arrays, *flat])
    return da.Array(graph, name, chunks=chunks, dtype=dtype)


def _row_chunk_key(keys: Any, ndim: int, k: int) -> Any:
    """Key of row chunk ``k`` in the nested ``__dask_keys__`` of an ``ndim``-D array with
    one chunk along every axis but -2."""
    for _ in range(ndim - 2):
        keys = keys[0]
    return keys[k][0]


def item_array(delayed: Any, index: int, name: str, chunks: tuple, dtype: Any) -> Any:
    """A one-chunk dask array of ``delayed``'s result ``[index]``.

    Not ``da.from_delayed``: that copies the Delayed's task into the array's fused task, so
    a stage whose result has several parts (spectra, fits, amp33) ran once per part.
    """
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    graph = HighLevelGraph.from_collections(
        name, {(name, *(0,) * len(chunks)): (operator.getitem, delayed.key, index)}, [delayed]
    )
    return da.Array(graph, name, chunks=chunks, dtype=dtype)


def prelude(x: Any, name: str, rows: bool = False) -> Any:
    """``x`` (a dask array) with its chunks under :data:`PRELUDE` keys.

    For a small result that every band needs and that needs every band, computed from a
    twin of the bands (wfi18_transient's fit). The writers that store region by region
    compute the prelude keys first, in regions of their own, and keep only them: computed
    with the first region instead, the twin's work would run beside that region's bands and
    the peak memory would be both together.

    With ``rows``, axis 0 of ``x`` runs along detector rows in chunks of one size (the last
    may be smaller), and its chunks are computed band by band, as the bands of a store are
    (the row size is in the key's name); without, ``x`` is computed after the row preludes.
    """
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    size = x.chunks[0][0] if rows and x.ndim and x.chunks[0] else 0
    if size and any(c != size for c in x.chunks[0][:-1]):
        size = 0  # uneven row chunks: no band order, computed with the others
    key = f"{PRELUDE}rows{size}-{name}" if size else f"{PRELUDE}{name}"
    dsk = {
        (key, *index): (operator.getitem, [(x.name, *index)], 0)
        for index in itertools.product(*map(range, x.numblocks))
    }
    graph = HighLevelGraph.from_collections(key, dsk, dependencies=[x])
    return da.Array(graph, key, chunks=x.chunks, dtype=x.dtype, meta=x._meta)


def prelude_rows(key: Any) -> int | None:
    """The first detector row of a :func:`prelude` key's chunk; None without row order."""
    name = key[0] if isinstance(key, tuple) else key
    prefix = f"{PRELUDE}rows"
    if not (isinstance(name, str) and name.startswith(prefix)) or len(key) < 2:
        return None
    size = name[len(prefix) :].split("-", 1)[0]
    return int(size) * int(key[1]) if size.isdigit() else None
