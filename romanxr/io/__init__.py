"""File I/O: the lazy ASDF reader, the xarray backend and the writers.

Reading: :mod:`~romanxr.io.asdf_reader` builds the Dataset of a product (its array tables in
:mod:`~romanxr.io.product`) from a file opened by :mod:`~romanxr.io.asdf_file`; pixels are read
per chunk through :mod:`~romanxr.io.cache` and :mod:`~romanxr.io.block_reader`, which parses
the block framing of :mod:`~romanxr.io.blocks`; :mod:`~romanxr.io.chunking` picks the default
chunks and :mod:`~romanxr.io.integrity` checks block checksums on demand. Writing:
:mod:`~romanxr.io.asdf_writer` (metadata by :mod:`~romanxr.io.asdf_meta`, blocks streamed by
:mod:`~romanxr.io.asdf_stream` in the same framing), :mod:`~romanxr.io.zarr_io`, all through
:mod:`~romanxr.io.atomic`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import xarray as xr
from dask.base import tokenize

from romanxr.io.asdf_reader import open_roman_asdf
from romanxr.io.asdf_writer import to_asdf, to_asdf_many
from romanxr.io.backend import RomanBackendEntrypoint
from romanxr.io.chunking import default_chunks
from romanxr.io.zarr_io import open_zarr, to_zarr

__all__ = [
    "RomanBackendEntrypoint",
    "chunk_dataset",
    "default_chunks",
    "open_cal",
    "open_ramp",
    "open_roman_asdf",
    "open_uncal",
    "open_zarr",
    "to_asdf",
    "to_asdf_many",
    "to_zarr",
]

Chunks = Any


def chunk_dataset(ds: xr.Dataset, chunks: Chunks, token: str = "") -> xr.Dataset:
    """Chunk the data variables of a lazily indexed Dataset with dask (coordinates stay numpy).

    Parameters
    ----------
    ds : xarray.Dataset
        Usually fresh from :func:`open_roman_asdf`.
    chunks : "default", dict, "auto" or None
        ``"default"`` uses :func:`default_chunks`; ``None`` leaves the Dataset as it is.
    token : str
        Makes the dask names deterministic (e.g. the file identity).
    """
    if chunks is None:
        return ds
    if isinstance(chunks, str) and chunks == "default":
        sizes = {d: ds.sizes[d] for d in ("resultant", "y", "x") if d in ds.sizes}
        chunks = default_chunks(sizes)
    variables = {}
    for name, var in ds.data_vars.items():
        if isinstance(chunks, Mapping):
            var_chunks = {d: c for d, c in chunks.items() if d in var.dims}
        else:
            var_chunks = chunks
        variables[name] = var.variable.chunk(
            var_chunks, from_array_kwargs={"name": f"{name}-{tokenize(token, name, var_chunks)}"}
        )
    out = xr.Dataset(variables, coords=ds.coords, attrs=ds.attrs)
    out.encoding.update(ds.encoding)
    return out


def _open(path: str | os.PathLike, chunks: Chunks, expect: str) -> xr.Dataset:
    ds = open_roman_asdf(path, expect=expect)
    stat = os.stat(path)
    return chunk_dataset(ds, chunks, token=f"{os.path.abspath(path)}-{stat.st_mtime_ns}")


def open_uncal(path: str | os.PathLike, chunks: Chunks = "default") -> xr.Dataset:
    """Open a Level-1 ``*_uncal.asdf`` (``wfi_science_raw``) lazily.

    Parameters
    ----------
    path : path-like
        The file.
    chunks : "default", dict, "auto" or None
        Dask chunks. ``"default"`` keeps ``resultant`` whole and cuts ``y`` into bands of at
        most 16 MiB of float32, smaller when memory per dask thread is scarce (see
        :func:`romanxr.io.default_chunks`); a dict such as ``{"y": 256}`` overrides it;
        ``None`` returns lazily indexed numpy-backed arrays (no dask).

    Returns
    -------
    xarray.Dataset
        dims ``(resultant, y, x)``; ``data`` uint16 plus ``amp33`` and, when present,
        ``resultantdq``/``reference_read``/``reference_amp33``; resultant coordinates from the
        MA table; ``attrs["meta"]`` holds the metadata tree. No pixel data are read.
    """
    return _open(path, chunks, "uncal")


def open_cal(path: str | os.PathLike, chunks: Chunks = "default") -> xr.Dataset:
    """Open a Level-2 ``*_cal.asdf`` (``wfi_image``) lazily. See :func:`open_uncal`."""
    return _open(path, chunks, "cal")


def open_ramp(path: str | os.PathLike, chunks: Chunks = "default") -> xr.Dataset:
    """Open a saved ramp intermediate (``RampModel``, e.g. ``*_dqinit.asdf``) lazily.

    dims ``(resultant, y, x)`` with ``data`` float32, ``pixeldq``, ``groupdq``, ``amp33`` and
    the border reference arrays. See :func:`open_uncal`.
    """
    return _open(path, chunks, "ramp")
