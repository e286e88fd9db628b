"""Scheduling, memory and scratch storage: the one home of romanxr's dask internals.

(The memory design is explained in full below once the package is complete.)
"""

from __future__ import annotations

from romanxr.schedule.allocator import release_free_memory, tune_allocator
from romanxr.schedule.banded import BorderStage, stream_border_stage
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
    "chunk_anchors",
    "chunk_like",
    "clone",
    "count_read",
    "edge_and_row_cuts",
    "item_array",
    "local_scheduler",
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
    "write_frames",
]
