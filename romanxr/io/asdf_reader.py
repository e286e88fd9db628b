"""Lazy reading of Roman ASDF products into xarray Datasets.

Opening a file parses its YAML tree and block headers only (:mod:`romanxr.io.asdf_file`);
pixel data are read when a chunk is computed. Arrays are reached through
:class:`AsdfBackendArray`, which holds the path and the key of the array (never an open file),
so graphs pickle and run on ``dask.distributed`` workers that open the file themselves; each
process keeps what it needs to read them in :mod:`romanxr.io.cache`. The dims of each product's
arrays come from :mod:`romanxr.io.product`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from romanxr.dataset import (
    AMP33_DIM,
    BORDER,
    RAMP_DIMS,
    resultant_coords,
    validate_read_pattern,
)
from romanxr.errors import ExposureError, FileFormatError, RomanxrError, WrongProductError
from romanxr.io.asdf_file import open_roman_tree
from romanxr.io.cache import CACHE
from romanxr.io.identity import FileIdentity, check_identity, file_identity, same_identity
from romanxr.io.product import (
    EXPECTED_TAG,
    JUMP_INDICES_DIMS,
    L2_ARRAY_DIMS,
    PROVENANCE_ATTRS,
    RAMP_ARRAY_DIMS,
    SUPPORTED_MAJOR,
    product_kind,
    tag_of,
    to_plain,
)

__all__ = [
    "AsdfBackendArray",
    "CheckedArray",
    "lazy_variable",
    "open_roman_asdf",
]


class AsdfBackendArray(BackendArray):
    """A lazily read array inside a Roman ASDF file.

    Parameters
    ----------
    path : str
        File path.
    keys : tuple of str
        Keys from the tree root to the array, e.g. ``("roman", "data")``.
    shape, dtype
        Declared by the block header / ndarray tag.
    identity : FileIdentity, optional
        The file's identity when it was opened; every read raises
        :class:`~romanxr.errors.InputFileError` if the file is no longer that one.
    """

    def __init__(
        self,
        path: str,
        keys: tuple[str, ...],
        shape: tuple[int, ...],
        dtype,
        identity: FileIdentity | None = None,
    ) -> None:
        self.path = str(path)
        self.keys = tuple(keys)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.identity = identity

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._raw_getitem
        )

    def _raw_getitem(self, key: tuple) -> np.ndarray:
        check_identity(self.path, self.identity)
        layout = CACHE.layout(self.path, self.keys)
        if layout is not None and layout.shape == self.shape:
            if self.identity is not None and layout.identity is not None:
                same_identity(self.path, self.identity, layout.identity)
            # only the bytes of this chunk are read (and decompressed); the read checks that
            # the file it opens is still the one the layout (and so this array) belongs to
            return np.array(layout.read(key), dtype=self.dtype, copy=True)
        array = CACHE.get(self.path, self.keys)
        # copy so callers never hold views on a memmap or on the shared cache
        out = np.array(array[key], dtype=self.dtype, copy=True)
        check_identity(self.path, self.identity)  # not replaced while it was loaded
        return out


class CheckedArray(AsdfBackendArray):
    """:class:`AsdfBackendArray` whose read errors name the file (raised inside a compute).

    Damage inside a block's payload is not visible when the file is opened; when a chunk is
    read, a decompression or I/O failure becomes a :class:`FileFormatError` that names the
    file and the array instead of a bare ``zlib.error``/``OSError`` from deep inside dask.
    """

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        try:
            return super().__getitem__(key)
        except (RomanxrError, KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:
            where = ".".join(self.keys)
            raise FileFormatError(
                f"{self.path}: reading {where} failed ({type(exc).__name__}: {exc}); the file "
                "is corrupt or was changed after it was opened: download or write it again "
                "(romanxr.io.integrity.verify_checksums checks every block)"
            ) from exc


def lazy_variable(
    path: str, keys: tuple[str, ...], node: Any, dims: tuple[str, ...]
) -> xr.Variable:
    """A lazily indexed Variable on the array ``node`` found at ``keys`` of the file's tree.

    Nothing is read now; a read error later names the file (:class:`CheckedArray`), and so
    does a read after the file was replaced or rewritten (the identity is taken now, inside
    :func:`~romanxr.io.asdf_file.open_roman_tree`, which checks it did not change meanwhile).

    Raises
    ------
    WrongProductError
        If the array does not have one dimension per name in ``dims``.
    """
    shape = tuple(node.shape)
    if len(shape) != len(dims):
        raise WrongProductError(
            f"{path}: {'.'.join(keys)} has {len(shape)} dimensions {shape}, expected "
            f"{len(dims)} {dims}"
        )
    arr = CheckedArray(path, tuple(keys), shape, node.dtype, file_identity(path))
    return xr.Variable(dims, indexing.LazilyIndexedArray(arr))


def _array_var(path: str, name: str, node: Any, dims: tuple[str, ...]) -> xr.Variable:
    return lazy_variable(path, ("roman", name), node, dims)


def _open_uncal_vars(path: str, roman: Any, meta: dict) -> tuple[dict, dict]:
    data = roman["data"]
    if len(data.shape) != 3:
        raise WrongProductError(
            f"{path}: roman.data has shape {tuple(data.shape)}; a Level-1 ramp has 3 dims "
            "(resultant, y, x)"
        )
    if np.dtype(data.dtype) != np.uint16:
        raise WrongProductError(f"{path}: roman.data is {data.dtype}; Level-1 data are uint16")
    nres, ny, nx = (int(s) for s in data.shape)
    exposure = meta.get("exposure", {})
    info = validate_read_pattern(
        exposure.get("read_pattern"), exposure.get("frame_time"), nres, source=path
    )
    variables = {"data": _array_var(path, "data", data, RAMP_DIMS)}
    optional = {
        "amp33": ("resultant", "y", AMP33_DIM),
        "resultantdq": RAMP_DIMS,
        "reference_read": ("y", "x"),
        "reference_amp33": ("y", AMP33_DIM),
    }
    sizes = {"resultant": nres, "y": ny, "x": nx}
    for name, dims in optional.items():
        if name in roman and roman[name] is not None:
            variables[name] = _array_var(path, name, roman[name], dims)
            for dim, size in zip(dims, variables[name].shape, strict=True):
                if dim in sizes and size != sizes[dim]:
                    raise ExposureError(
                        f"{path}: roman.{name} has {size} along {dim} but roman.data has "
                        f"{sizes[dim]}; the arrays of the file disagree (it was written "
                        "wrongly or edited): write the uncal file again"
                    )
    coords: dict[str, Any] = dict(resultant_coords(info))
    coords["y"] = np.arange(ny, dtype=np.int64)
    coords["x"] = np.arange(nx, dtype=np.int64)
    if "amp33" in variables:
        coords[AMP33_DIM] = np.arange(variables["amp33"].shape[-1], dtype=np.int64)
    return variables, coords


def _open_cal_vars(path: str, roman: Any, meta: dict) -> tuple[dict, dict]:
    variables = {}
    seen: dict[str, int] = {}
    for name, dims in L2_ARRAY_DIMS.items():
        node = roman[name] if name in roman else None
        if node is None or not hasattr(node, "shape"):
            continue
        shape = tuple(int(s) for s in node.shape)
        if len(shape) != len(dims) or any(
            seen.get(d, n) != n for d, n in zip(dims, shape, strict=True)
        ):
            # inconsistent with the other arrays (e.g. placeholder arrays): keep it, on its own dims
            dims = tuple(f"{name}_dim_{i}" for i in range(len(shape)))
        seen.update(zip(dims, shape, strict=True))
        variables[name] = _array_var(path, name, node, dims)
    if "data" not in variables or variables["data"].ndim != 2:
        raise WrongProductError(f"{path}: a Level-2 image needs a 2-D roman.data")
    ny, nx = variables["data"].shape
    coords: dict[str, Any] = {
        "y": np.arange(BORDER, BORDER + ny, dtype=np.int64),
        "x": np.arange(BORDER, BORDER + nx, dtype=np.int64),
    }
    sizes = {d: s for v in variables.values() for d, s in zip(v.dims, v.shape, strict=True)}
    for dim in ("frame_y", "frame_x", "ref_col", "ref_row", AMP33_DIM):
        if dim in sizes:
            coords[dim] = np.arange(sizes[dim], dtype=np.int64)
    exposure = meta.get("exposure", {})
    if "resultant" in sizes:
        try:
            info = validate_read_pattern(
                exposure.get("read_pattern"),
                exposure.get("frame_time"),
                sizes["resultant"],
                source=path,
            )
            coords.update(resultant_coords(info))
        except Exception:
            coords["resultant"] = np.arange(sizes["resultant"], dtype=np.int64)
    return variables, coords


def _open_ramp_vars(path: str, roman: Any, meta: dict) -> tuple[dict, dict]:
    variables = {}
    for name, dims in RAMP_ARRAY_DIMS.items():
        if name in roman and roman[name] is not None and hasattr(roman[name], "shape"):
            variables[name] = _array_var(path, name, roman[name], dims)
    if "data" not in variables:
        raise WrongProductError(f"{path}: a ramp needs a 3-D roman.data")
    nres, ny, nx = variables["data"].shape
    exposure = meta.get("exposure", {})
    info = validate_read_pattern(
        exposure.get("read_pattern"), exposure.get("frame_time"), nres, source=path
    )
    coords: dict[str, Any] = dict(resultant_coords(info))
    coords["y"] = np.arange(ny, dtype=np.int64)
    coords["x"] = np.arange(nx, dtype=np.int64)
    sizes = {d: s for v in variables.values() for d, s in zip(v.dims, v.shape, strict=True)}
    for dim in ("frame_y", "frame_x", "ref_col", "ref_row", AMP33_DIM):
        if dim in sizes:
            coords[dim] = np.arange(sizes[dim], dtype=np.int64)
    return variables, coords


def _apply_romanxr_node(path: str, tree: Any, roman: Any, variables: dict, coords: dict) -> dict:
    """Extras romanxr's writer keeps beside the roman node; returns extra attrs."""
    node = tree.get("romanxr") if hasattr(tree, "get") else None
    node = to_plain(node) if node is not None else {}
    if "jump_indices" in roman and hasattr(roman["jump_indices"], "shape"):
        dims = tuple(node.get("dims", {}).get("jump_indices", JUMP_INDICES_DIMS))
        variables["jump_indices"] = _array_var(path, "jump_indices", roman["jump_indices"], dims)
    for dim, values in (node.get("coords") or {}).items():
        if dim in coords and len(values) == len(coords[dim]):
            coords[dim] = np.asarray(values, dtype=np.int64)
    attrs = {}
    for key in (*PROVENANCE_ATTRS, "frame_shape"):
        if key in node:
            attrs[key] = node[key]
    return attrs


def _frame_shape_of(variables: Mapping[str, xr.Variable]) -> tuple[int, int] | None:
    """The whole frame's shape: the ramp's (y, x), or the full-frame arrays an image carries."""
    data = variables.get("data")
    if data is not None and data.ndim == 3 and data.dims[-2:] == ("y", "x"):
        return int(data.shape[-2]), int(data.shape[-1])
    sizes = {d: n for v in variables.values() for d, n in zip(v.dims, v.shape, strict=True)}
    if "frame_y" in sizes and "frame_x" in sizes:
        return sizes["frame_y"], sizes["frame_x"]
    if data is not None and data.ndim == 2:
        return int(data.shape[0]) + 2 * BORDER, int(data.shape[1]) + 2 * BORDER
    return None


def open_roman_asdf(
    path: str | os.PathLike,
    *,
    expect: str | None = None,
    drop_variables: Any = None,
) -> xr.Dataset:
    """Open a Roman ASDF product as a lazily indexed (not yet dask-backed) Dataset.

    Parameters
    ----------
    path : path-like
        The file.
    expect : {"uncal", "cal", "ramp"}, optional
        Raise :class:`WrongProductError` if the file is another product.
    drop_variables : iterable of str, optional
        Variables not to expose.

    Returns
    -------
    xarray.Dataset
        See :mod:`romanxr.dataset` for the layout. ``attrs["meta"]`` holds the metadata tree.
    """
    path = str(Path(path))
    with open_roman_tree(path) as (af, roman):
        tag = tag_of(roman)
        kind, name, major = product_kind(tag)
        if kind is None or kind == "reference":
            if expect is not None:
                raise WrongProductError(
                    f"{path}: expected a {EXPECTED_TAG[expect]} ({expect}) product but the "
                    f"file holds {name or 'an untagged roman node'} ({tag})"
                )
            raise WrongProductError(f"{path}: unsupported Roman product {tag}")
        if expect is not None and kind != expect:
            raise WrongProductError(
                f"{path}: expected a {EXPECTED_TAG[expect]} ({expect}) product but the file "
                f"is a {name} ({kind}) product; "
                + (
                    "use romanxr.open_cal() for calibrated images"
                    if kind == "cal"
                    else "use romanxr.open_uncal() for Level-1 ramps"
                )
            )
        if major is not None and major > SUPPORTED_MAJOR.get(name, major):
            raise WrongProductError(
                f"{path}: {tag} is newer than this romanxr understands "
                f"(supports {name}-{SUPPORTED_MAJOR[name]}.x); upgrade romanxr"
            )
        if "meta" not in roman:
            raise WrongProductError(f"{path}: roman node has no 'meta'")
        meta = to_plain(roman["meta"])
        if kind == "cal":
            variables, coords = _open_cal_vars(path, roman, meta)
        elif kind == "ramp":
            variables, coords = _open_ramp_vars(path, roman, meta)
        else:
            variables, coords = _open_uncal_vars(path, roman, meta)
        extra_attrs = _apply_romanxr_node(path, af.tree, roman, variables, coords)
    if drop_variables:
        drop = {drop_variables} if isinstance(drop_variables, str) else set(drop_variables)
        variables = {k: v for k, v in variables.items() if k not in drop}
    attrs: dict[str, Any] = {"meta": meta}
    frame = _frame_shape_of(variables)
    if frame is not None:
        attrs["frame_shape"] = list(frame)
    attrs.update(extra_attrs)
    ds = xr.Dataset(variables, coords=coords, attrs=attrs)
    ds.encoding["source"] = path
    return ds
