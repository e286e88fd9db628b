"""Scheduling, memory and scratch storage: the one home of romanxr's dask internals.

(The memory design is explained in full below once the package is complete.)
"""

from __future__ import annotations

from romanxr.schedule.allocator import release_free_memory, tune_allocator
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

__all__ = [
    "AT_END",
    "PIXEL_DIMS",
    "REGION_ROWS",
    "chunk_like",
    "local_scheduler",
    "optimized_graph",
    "rechunk_reference",
    "region_axis",
    "release_free_memory",
    "row_axis",
    "store_by_region",
    "tune_allocator",
]
