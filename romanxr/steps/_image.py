"""Small helpers shared by the Level-2 image steps (dark_current, flatfield)."""

from __future__ import annotations

import xarray as xr

__all__ = ["like"]


def like(ref: xr.DataArray, target: xr.DataArray) -> xr.DataArray:
    """Give an aligned reference array the backing of ``target``.

    With a dask-backed ``target`` the (lazily indexed) reference array is chunked like it, so
    combining them builds a graph instead of reading the reference file now; with a
    numpy-backed ``target`` the reference is read (it is needed right away anyway).
    """
    ref = ref.transpose(*[d for d in target.dims if d in ref.dims])
    if target.chunks is not None:
        chunks = {d: c for d, c in zip(target.dims, target.chunks, strict=True) if d in ref.dims}
        return ref.chunk(chunks)
    return ref.load() if ref.chunks is None else ref
