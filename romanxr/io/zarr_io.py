"""Zarr v3 stores of romanxr Datasets, with the Roman metadata kept losslessly.

The arrays go through :meth:`xarray.Dataset.to_zarr` (``zarr_format=3``), compressed and
chunked; on the local threaded scheduler the dask-backed ones are then computed into the
store a region of rows at a time (:func:`~romanxr.schedule.store_by_region`).

Zarr attributes are JSON, which cannot hold astropy ``Time``, numpy scalars or a gwcs object,
so the Dataset's attrs and every variable's attrs are serialised through ASDF into one YAML
text attribute (:data:`ATTRS_KEY`). Reading decodes it, so ``attrs["meta"]`` and
``attrs["step_parameters"]`` come back equal to what was written (numpy scalars as numpy
scalars, tuples as tuples).
"""

from __future__ import annotations

import io
import os
from collections import UserList
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from romanxr.errors import FileFormatError, InputError, OutputError
from romanxr.io.asdf_setup import prepare_asdf
from romanxr.io.asdf_writer import input_files
from romanxr.io.atomic import atomic_target, check_output_path

__all__ = ["ATTRS_KEY", "decode_attrs", "encode_attrs", "is_romanxr_zarr", "open_zarr", "to_zarr"]

#: Zarr group attribute holding the ASDF-serialised attrs.
ATTRS_KEY = "romanxr_attrs_asdf"
#: Version of the layout written here.
FORMAT_VERSION = 1

# marks a numpy scalar stored as {dtype, Python value}, read back as a scalar of its dtype
_SCALAR_TAG = "__numpy_scalar__"
_TUPLE_TAG = "__tuple__"


def _wrap_scalars(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return {_SCALAR_TAG: obj.dtype.str, "value": obj.item()}
    if isinstance(obj, Mapping):
        return {k: _wrap_scalars(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return {_TUPLE_TAG: [_wrap_scalars(v) for v in obj]}
    if isinstance(obj, list | UserList):
        return [_wrap_scalars(v) for v in obj]
    return obj


def _unwrap_scalars(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        if set(obj) == {_SCALAR_TAG, "value"}:
            return np.dtype(obj[_SCALAR_TAG]).type(obj["value"])
        if set(obj) == {_TUPLE_TAG}:
            return tuple(_unwrap_scalars(v) for v in obj[_TUPLE_TAG])
        return {k: _unwrap_scalars(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unwrap_scalars(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return np.array(obj)  # detach from the ASDF file
    return obj


def encode_attrs(
    attrs: Mapping[str, Any], variable_attrs: Mapping[str, Mapping] | None = None
) -> str:
    """Serialise attrs (and per-variable attrs) to an ASDF YAML text (arrays inline)."""
    asdf = prepare_asdf()

    tree = {
        "attrs": _wrap_scalars(dict(attrs)),
        "variable_attrs": _wrap_scalars(dict(variable_attrs or {})),
        "format_version": FORMAT_VERSION,
    }
    buffer = io.BytesIO()
    try:
        asdf.AsdfFile(tree).write_to(buffer, all_array_storage="inline")
    except Exception as exc:
        raise InputError(
            f"the Dataset attrs cannot be serialised to ASDF ({type(exc).__name__}: {exc}); "
            "keep attrs to dicts, lists, numbers, strings, numpy values, astropy Time and gwcs"
        ) from exc
    return buffer.getvalue().decode("utf-8")


def decode_attrs(text: str) -> tuple[dict, dict]:
    """Inverse of :func:`encode_attrs`: ``(attrs, variable_attrs)``."""
    asdf = prepare_asdf()

    from romanxr.io.product import to_plain

    with asdf.open(io.BytesIO(text.encode("utf-8")), lazy_load=False, memmap=False) as af:
        attrs = _unwrap_scalars(to_plain(af.tree["attrs"]))
        variable_attrs = _unwrap_scalars(to_plain(af.tree.get("variable_attrs", {})))
    return attrs, variable_attrs


def _compressor(compressor: Any):
    from zarr.codecs import BloscCodec, ZstdCodec

    if compressor is None:
        return None
    if isinstance(compressor, str):
        if compressor == "zstd":
            return ZstdCodec(level=3)
        if compressor == "blosc":
            return BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")
        raise InputError(f"unknown compressor {compressor!r}; use 'zstd', 'blosc', None or a codec")
    return compressor


def _regular_chunks(var: xr.Variable) -> dict[str, int] | None:
    """Dask chunks that Zarr can store (all equal but a smaller last one), or a rechunk."""
    if var.chunks is None:
        return None
    need = {}
    for dim, chunks in zip(var.dims, var.chunks, strict=True):
        body = chunks[:-1]
        if body and (len(set(body)) > 1 or chunks[-1] > body[0]):
            need[dim] = max(chunks)
    return need or None


def _path_like(store: Any) -> bool:
    return isinstance(store, str | os.PathLike) and "://" not in os.fspath(store)


def to_zarr(
    ds: xr.Dataset,
    store: str | os.PathLike | MutableMapping | Any,
    *,
    overwrite: bool = False,
    chunks: Mapping[str, int] | None = None,
    compressor: Any = "zstd",
) -> Path | Any:
    """Write a Dataset as a compressed, chunked Zarr v3 store.

    Parameters
    ----------
    ds : xarray.Dataset
        Any romanxr Dataset (ramp or image); numpy- or dask-backed.
    store : path-like or zarr store
        A local directory path (written atomically: a temporary sibling directory is renamed
        into place, see :mod:`romanxr.io.atomic`), or a zarr v3 store object / URL (written in
        place, without the atomic rename).
    overwrite : bool
        Replace an existing store.
    chunks : dict, optional
        ``{dim: size}`` chunking of the stored arrays (dask chunks are used otherwise, made
        regular where needed; numpy arrays get zarr's automatic chunks).
    compressor : "zstd", "blosc", None or a zarr v3 codec
        Byte-stream compression (default Zstandard level 3).

    Returns
    -------
    Path or store
        The absolute path written, or the store object.

    Raises
    ------
    OutputError
        Missing or read-only parent directory, output equal to an input, or an existing store
        without ``overwrite`` — before anything is computed.
    """
    if not isinstance(ds, xr.Dataset):
        raise InputError(f"to_zarr needs an xarray.Dataset, got {type(ds).__name__}")
    target = None
    if _path_like(store):
        target = check_output_path(
            store, overwrite=overwrite, inputs=input_files(ds), kind="directory"
        )
    elif not overwrite and _store_has_group(store):
        raise OutputError(
            f"{store!r}: the Zarr store already holds a group; pass overwrite=True to replace "
            "it or use an empty store"
        )
    out = ds.copy(deep=False)
    if chunks:
        out = out.chunk({d: c for d, c in chunks.items() if d in out.dims})
    variable_attrs = {name: dict(var.attrs) for name, var in out.variables.items() if var.attrs}
    blob = encode_attrs(ds.attrs, variable_attrs)
    codec = _compressor(compressor)
    encoding: dict[str, dict] = {}
    for name in list(out.variables):
        rechunk = _regular_chunks(out.variables[name])
        if rechunk:
            out[name] = out[name].chunk(rechunk)
    for name, var in out.variables.items():
        var.encoding = {}
        var.attrs = _json_safe_attrs(var.attrs)
        enc: dict[str, Any] = {}
        if name in out.data_vars:
            enc["compressors"] = (codec,) if codec is not None else None
        encoding[name] = enc
    out.attrs = {ATTRS_KEY: blob, "romanxr_format": FORMAT_VERSION}
    out.encoding = {}
    kwargs = {"zarr_format": 3, "consolidated": False, "encoding": encoding}
    if target is None:
        _write(out, store, mode="w" if overwrite else "w-", **kwargs)
        return store
    with atomic_target(target, overwrite=overwrite) as tmp:
        _write(out, str(tmp), mode="w-", **kwargs)
    return target


def _write(out: xr.Dataset, store: Any, **kwargs: Any) -> None:
    """``out.to_zarr(store, ...)``; on the local threaded scheduler, region by region.

    There xarray writes the group, the arrays' metadata and the in-memory variables, and
    :func:`~romanxr.schedule.store_by_region` computes the dask-backed ones a band of rows
    at a time into the arrays it made (as the cal.asdf writer does: one ``dask.compute`` of a
    whole calibration holds far more). Elsewhere (a dask.distributed cluster, whose workers
    then write their chunks in parallel; other schedulers) xarray computes everything at once.
    """
    import zarr

    from romanxr.schedule import local_scheduler, region_axis, store_by_region

    lazy = [name for name, var in out.variables.items() if var.chunks is not None]
    if not lazy or not local_scheduler():
        out.to_zarr(store, compute=True, **kwargs)
        return
    out.to_zarr(store, compute=False, **kwargs)  # nothing computed: the returned task is dropped
    group = zarr.open_group(store, mode="r+", zarr_format=3)
    sources, targets, axes = [], [], []
    for name in lazy:
        var = out.variables[name]
        sources.append(var.data)
        targets.append(group[name])
        axes.append(region_axis(name, var.dims))
    store_by_region(sources, targets, axes)


def _store_has_group(store: Any) -> bool:
    import zarr

    try:
        zarr.open_group(store, mode="r")
    except Exception:  # nothing there (zarr raises different errors per store type)
        return False
    return True


def _json_safe_attrs(attrs: Mapping) -> dict:
    """Variable attrs that JSON can hold (the exact ones are in the ASDF blob)."""
    import json

    safe = {}
    for key, value in attrs.items():
        if isinstance(value, np.generic):
            value = value.item()
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        safe[str(key)] = value
    return safe


def is_romanxr_zarr(store: Any) -> bool:
    """True when ``store`` is a directory holding a Zarr v3 group written by romanxr."""
    if not _path_like(store):
        return False
    meta = Path(store) / "zarr.json"
    try:
        text = meta.read_text()
    except OSError:
        return False
    return ATTRS_KEY in text


def open_zarr(
    store: str | os.PathLike | MutableMapping | Any,
    chunks: Any = "default",
    *,
    drop_variables: Any = None,
) -> xr.Dataset:
    """Open a Zarr v3 store written by :func:`to_zarr`.

    Parameters
    ----------
    store : path-like or zarr store
        The store.
    chunks : "default", dict, "auto" or None
        ``"default"`` uses the stored chunks with dask; ``None`` gives lazily indexed
        numpy-backed arrays.
    drop_variables : str or iterable of str, optional
        Variables not to read.

    Returns
    -------
    xarray.Dataset
        Values, dtypes, dims, coordinates and attrs (``meta``, ``step_parameters``, variable
        attrs) as written.
    """
    if _path_like(store) and not os.path.exists(store):
        raise FileNotFoundError(f"{store}: no such Zarr store")
    if isinstance(chunks, str) and chunks == "default":
        chunks = {}
    ds = xr.open_zarr(
        store,
        chunks=chunks,
        zarr_format=3,
        consolidated=False,
        mask_and_scale=False,
        decode_times=False,
        decode_timedelta=False,
        drop_variables=drop_variables,
    )
    blob = ds.attrs.get(ATTRS_KEY)
    if blob is None:
        raise FileFormatError(
            f"{store}: a Zarr store without romanxr metadata (no '{ATTRS_KEY}' attribute); "
            "open it with xarray.open_zarr, or write it with romanxr.to_zarr"
        )
    attrs, variable_attrs = decode_attrs(blob)
    for name, var in ds.variables.items():
        var.attrs = dict(variable_attrs.get(name, {}))
    ds.attrs = attrs
    if _path_like(store):
        ds.encoding["source"] = os.path.abspath(os.fspath(store))
    return ds
