"""Scheduling, memory and scratch storage: the one home of romanxr's dask internals.

Steps build lazy dask graphs; this package decides how those graphs run on one machine so
that a full-frame calibration stays within about a gigabyte. It imports nothing from romanxr
but :mod:`romanxr.errors`, and it is the only place that relies on dask's internals
(``dask._task_spec``, hand-built ``HighLevelGraph`` layers, the optimizer's fusing); a test
pins the dask versions it is known to work with.

The memory design, once
-----------------------
A chunk is a band of rows of one exposure, all resultants (a few tens of MiB at full frame).
Memory is bounded when each band goes from the file to the writer and is dropped before many
others are read. Left alone, dask does not do that here, for four reasons, each met by one
module:

* **Regions** (:mod:`~romanxr.schedule.regions`). dask's static order and its threaded
  scheduler (newly ready tasks first, input reads only when nothing else is ready) read and
  pre-process every band before finishing the first as soon as any whole-frame stage makes
  all bands ready at once. :func:`store_by_region` computes a region of :data:`REGION_ROWS`
  rows at a time, one file after another, and hands on only the results that later regions
  use (:data:`AT_END` puts row-less arrays such as the bottom reference rows with the last
  region). :func:`optimized_graph` optimizes all outputs as one graph, so work they share
  (the ramp fit) runs once.
* **Reference reads next to the data** (:mod:`~romanxr.schedule.reads`). A reference chunk
  read by a task of its own is an input read: the scheduler leaves it at the bottom of its
  queue while the data it goes with piles up. :func:`chunk_like` makes each reference read
  wait for the matching data chunk instead, so both arrive together.
* **Clones, ordering anchors and single-chunk tasks** (:mod:`~romanxr.schedule.graph`,
  :mod:`~romanxr.schedule.banded`). refpix needs the reference pixels of every row before it
  can correct any row. Read from the main graph, that would hold every band until the last
  was read; :func:`clone` gives it a copy of the input graph to read them from, and
  :func:`edge_and_row_cuts` cuts them with one task per chunk. Delayed calls and
  ``from_delayed`` would optimize their inputs apart from the main graph (the shared reads run
  again), so :func:`single_chunk_task`, :func:`map_row_chunks` and :func:`item_array` build
  tasks on the arrays' own keys. A task that must run when a band comes up, not when its
  inputs exist, takes that band's chunk as an ignored argument (:func:`chunk_anchors`).
  :func:`stream_border_stage` puts these together for a border-driven whole-frame stage.
* **The scratch file** (:mod:`~romanxr.schedule.scratch`). refpix's corrections of every row
  come from one inverse FFT per channel and resultant. Holding them all costs the size of
  the ramp; recomputing them per band multiplies the FFTs. They are computed once per block
  of channels, written to a scratch file, and each group of rows reads its part back (the
  file goes after the last read). The ASDF writer keeps computed chunks in a scratch file
  too (:func:`temporary_file`) until it streams them into the output. All scratch files
  live in one private directory per run, removed on exit, on signals, and by the next run's
  sweep after a ``kill -9``.
* **The allocator** (:mod:`~romanxr.schedule.allocator`). With glibc's defaults, thousands
  of chunk-sized arrays are mapped, zero-filled and unmapped one by one (a sixth of the wall
  time), and a long many-file write fragments the heap. :func:`tune_allocator` keeps freed
  memory for reuse (the command line calls it; romanxr never does on import) and
  :func:`release_free_memory` hands free pages back between files.

With a ``dask.distributed`` client the cluster's scheduler is used instead (it queues root
tasks and respects priorities); :func:`local_scheduler` tells the writers which case they
are in. Worker processes on the same machine find refpix's scratch file by the path the
graph carries; a worker that cannot read it computes its rows itself.
"""

from __future__ import annotations

from romanxr.schedule.allocator import release_free_memory, tune_allocator
from romanxr.schedule.banded import BorderStage, stream_border_stage
from romanxr.schedule.forked import ForkedMap, fork_workers, forked_map, worker_count
from romanxr.schedule.graph import (
    chunk_anchors,
    clone,
    edge_and_row_cuts,
    item_array,
    map_row_chunks,
    single_chunk_task,
)
from romanxr.schedule.reads import PIXEL_DIMS, chunk_like, rechunk_reference
from romanxr.schedule.regions import (
    AT_END,
    REGION_ROWS,
    local_scheduler,
    local_threads,
    optimized_graph,
    region_axis,
    row_axis,
    store_by_region,
)
from romanxr.schedule.scratch import (
    count_read,
    read_rows,
    run_dir,
    scratch_path,
    temporary_file,
    write_frames,
)

__all__ = [
    "AT_END",
    "PIXEL_DIMS",
    "REGION_ROWS",
    "BorderStage",
    "ForkedMap",
    "chunk_anchors",
    "chunk_like",
    "clone",
    "count_read",
    "edge_and_row_cuts",
    "fork_workers",
    "forked_map",
    "item_array",
    "local_scheduler",
    "local_threads",
    "map_row_chunks",
    "optimized_graph",
    "read_rows",
    "rechunk_reference",
    "region_axis",
    "release_free_memory",
    "row_axis",
    "run_dir",
    "scratch_path",
    "single_chunk_task",
    "store_by_region",
    "stream_border_stage",
    "temporary_file",
    "tune_allocator",
    "worker_count",
    "write_frames",
]
