"""Just-in-time reads of reference arrays: each chunk is read next to the data it goes with.

A reference opened from a file is a lazily indexed xarray Variable: nothing is read until
its values are asked for. :func:`chunk_like` turns it into a dask array whose read tasks
also wait for the matching chunk of the exposure (why: see :mod:`romanxr.schedule`);
:func:`rechunk_reference` gives it other chunks without reading it. Both look at the
Variable's backing array, which only xarray's private ``Variable._data`` shows without
reading it (``Variable.data`` would read a lazily indexed array at once).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from romanxr.schedule.graph import Opaque

__all__ = ["PIXEL_DIMS", "chunk_like", "rechunk_reference"]

#: The image dims that references are chunked along.
PIXEL_DIMS = ("y", "x")


def _backing(var: xr.Variable) -> Any:
    """The array behind ``var`` (a dask array, an ndarray or a lazily indexed file array)."""
    return var._data


def _is_dask(value: Any) -> bool:
    from dask.base import is_dask_collection

    return is_dask_collection(value)


def chunk_like(ref: xr.DataArray, like: xr.DataArray) -> xr.DataArray:
    """Chunk a reference array like ``like``'s (y, x) chunks, other dims whole.

    A no-op for numpy-backed ``like``. Do this *before* casting a reference read from a file:
    casting a lazily indexed file array reads it at once, casting a dask array does not.

    A reference read lazily from a file gets one read task per chunk that also waits for the
    matching chunk of ``like`` (its value is not used). The reads then happen when the data
    they go with is there: dask's local scheduler runs newly ready tasks first and plain
    input reads only when nothing else is ready, so independent reads of every chunk would
    otherwise wait at the bottom of its queue while the data they are needed with piles up.
    """
    if like.chunks is None:
        return ref
    sizes: dict[str, Any] = {d: like.chunksizes[d] for d in PIXEL_DIMS if d in ref.dims}
    sizes.update({d: -1 for d in ref.dims if d not in sizes})
    pixel = [d for d in ref.dims if d in PIXEL_DIMS]
    lead = [d for d in ref.dims if d not in PIXEL_DIMS]
    backing = _backing(ref.variable)
    if (
        _is_dask(backing)
        or isinstance(backing, np.ndarray)
        or not pixel
        or list(ref.dims) != lead + pixel
        or any(d not in like.dims for d in pixel)
    ):
        return ref.chunk(sizes)
    import dask.array as da
    from dask.base import tokenize

    anchor = like.isel({d: 0 for d in like.dims if d not in pixel}).transpose(*pixel)
    anchor_data = anchor.data
    name = f"read-{ref.name or 'reference'}-" + tokenize(
        anchor_data.name, ref.name, ref.dims, ref.shape, id(backing)
    )
    data = da.map_blocks(
        _read_region,
        anchor_data,
        variable=Opaque(ref.variable, id(backing)),
        n_lead=len(lead),
        name=name,
        new_axis=list(range(len(lead))) or None,
        chunks=tuple((ref.sizes[d],) for d in lead) + anchor_data.chunks,
        dtype=ref.dtype,
        meta=np.empty((0,) * ref.ndim, dtype=ref.dtype),
    )
    return ref.copy(data=data)


def rechunk_reference(ref: xr.DataArray, chunks: Mapping[str, Any]) -> Any:
    """``ref`` as a dask array with ``chunks`` (by dim name), reading nothing now.

    A dask-backed reference (e.g. from :func:`chunk_like`) is rechunked; a lazily indexed one
    is chunked, so that each chunk is read by a task of its own when computed.
    """
    if _is_dask(_backing(ref.variable)):
        return ref.data.rechunk(tuple(chunks[d] for d in ref.dims))
    return ref.variable.chunk(dict(chunks)).data


def _read_region(anchor: np.ndarray, variable: Opaque, n_lead: int, block_info=None):
    """The part of ``variable`` under this chunk of the anchor (all leading dims)."""
    where = block_info[0]["array-location"]
    key = (slice(None),) * n_lead + tuple(slice(a, b) for a, b in where)
    return np.asarray(variable.value[key].values)
