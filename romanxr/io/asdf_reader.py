"""Lazy reading of Roman ASDF files into xarray Datasets.

Opening a file parses its YAML tree and block headers only; pixel data are read when a chunk
is computed. Arrays are reached through :class:`AsdfBackendArray`, which holds the path and the
key of the array (never an open file), so graphs pickle and run on ``dask.distributed``
workers that open the file themselves.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from romanxr.dataset import (
    AMP33_DIM,
    RAMP_DIMS,
    resultant_coords,
    validate_read_pattern,
)
from romanxr.errors import FileFormatError, RomanxrError, WrongProductError

__all__ = [
    "AsdfBackendArray",
    "default_chunks",
    "open_roman_asdf",
    "product_kind",
    "to_plain",
    "verify_checksums",
]

#: Roman tag name (without version) -> product kind understood by romanxr.
_KIND_BY_TAG = {
    "wfi_science_raw": "uncal",
    "ramp": "ramp",
    "wfi_image": "cal",
}
_EXPECTED_TAG = {"uncal": "wfi_science_raw", "cal": "wfi_image", "ramp": "ramp"}
_SUPPORTED_MAJOR = {"wfi_science_raw": 2, "wfi_image": 2, "ramp": 2}


def to_plain(obj: Any) -> Any:
    """Convert a Roman/ASDF node tree to nested ``dict``/``list`` (leaves kept as they are)."""
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        # lists, tuples and asdf's lazy list nodes (UserList) alike
        return [to_plain(v) for v in obj]
    return obj


def _tag_of(node: Any) -> str | None:
    tag = getattr(node, "tag", None) or getattr(node, "_tag", None)
    if tag is None and hasattr(node, "_read_tag"):
        tag = node._read_tag
    return str(tag) if tag else None


def product_kind(tag: str | None) -> tuple[str | None, str | None, int | None]:
    """Split a Roman tag into (kind, name, major version)."""
    if not tag:
        return None, None, None
    name_version = tag.rsplit("/", 1)[-1]
    name, _, version = name_version.partition("-")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = None
    if name.endswith("_ref") or "reference_files" in tag:
        return "reference", name, major
    return _KIND_BY_TAG.get(name), name, major


# --------------------------------------------------------------------------------------------
# Array access: memory-mapped for raw blocks, decompressed once per process for compressed ones.


class _ArrayCache:
    """Small per-process LRU of arrays read from files, keyed by file identity and tree key."""

    def __init__(self, max_entries: int = 8) -> None:
        self.max_entries = max_entries
        # values: (array, open AsdfFile); the file stays open while a memmap may use it
        self._items: OrderedDict[tuple, tuple[np.ndarray, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}

    def get(self, path: str, keys: tuple[str, ...]) -> np.ndarray:
        stat = os.stat(path)
        ident = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size, keys)
        with self._lock:
            if ident in self._items:
                self._items.move_to_end(ident)
                return self._items[ident][0]
            key_lock = self._key_locks.setdefault(ident, threading.Lock())
        with key_lock:
            with self._lock:
                if ident in self._items:
                    return self._items[ident][0]
            entry = _load_array(path, keys)
            evicted = []
            with self._lock:
                self._items[ident] = entry
                while len(self._items) > self.max_entries:
                    evicted.append(self._items.popitem(last=False)[1])
                self._key_locks.pop(ident, None)
        for _, handle in evicted:
            handle.close()
        return entry[0]

    def clear(self) -> None:
        with self._lock:
            entries = list(self._items.values())
            self._items.clear()
        for _, handle in entries:
            handle.close()


_CACHE = _ArrayCache()


def _load_array(path: str, keys: tuple[str, ...]) -> tuple[np.ndarray, Any]:
    import asdf

    # memmap=True gives a view on disk for uncompressed blocks; compressed blocks are
    # decompressed into memory once and kept in the cache. The tree was validated when the
    # Dataset was opened; validating it again for every array costs more than the read.
    with asdf.config_context() as cfg:
        cfg.validate_on_read = False
        af = asdf.open(path, lazy_load=True, memmap=True, lazy_tree=True)
    try:
        node: Any = af.tree
        for key in keys:
            node = node[key]
        array = np.asarray(node)
    except BaseException:
        af.close()
        raise
    if not isinstance(array, np.memmap) and getattr(array, "base", None) is None:
        af.close()  # a decompressed in-memory copy needs no open file
    return array, af


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
    """

    def __init__(self, path: str, keys: tuple[str, ...], shape: tuple[int, ...], dtype) -> None:
        self.path = str(path)
        self.keys = tuple(keys)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.BASIC, self._raw_getitem
        )

    def _raw_getitem(self, key: tuple) -> np.ndarray:
        array = _CACHE.get(self.path, self.keys)
        # copy so callers never hold views on a memmap or on the shared cache
        return np.array(array[key], dtype=self.dtype, copy=True)


# --------------------------------------------------------------------------------------------


def default_chunks(shape: Mapping[str, int], target_bytes: int = 64 * 2**20) -> dict[str, int]:
    """Default dask chunks: the whole ``resultant`` dim, whole rows, a band of ``y``.

    Sized so that one float32 chunk of the ramp holds about ``target_bytes``.
    """
    nres = int(shape.get("resultant", 1))
    nx = int(shape.get("x", 1))
    ny = int(shape.get("y", 1))
    rows = max(1, target_bytes // max(1, nres * nx * 4))
    rows = min(ny, rows)
    return {"resultant": -1, "y": int(rows), "x": -1}


def _check_blocks(af: Any, path: str) -> None:
    """Make sure every binary block the header announces lies inside the file."""
    size = os.path.getsize(path)
    try:
        blocks = list(af._blocks.blocks)
    except Exception as exc:  # the block index itself is unreadable
        raise FileFormatError(
            f"{path}: the ASDF binary blocks cannot be read ({exc}); the file is truncated or "
            "corrupt: download or write it again"
        ) from exc
    for i, block in enumerate(blocks):
        try:
            with open(path, "rb") as fh:
                # block layout: 4-byte magic, 2-byte big-endian header size, header, data;
                # asdf's block offset points just past the magic
                fh.seek(int(block.offset))
                header_size = int.from_bytes(fh.read(2), "big")
            end = int(block.offset) + 2 + header_size + int(block.header["allocated_size"])
        except Exception as exc:
            raise FileFormatError(
                f"{path}: binary block {i} has an unreadable header ({exc}); the file is "
                "truncated or corrupt: download or write it again"
            ) from exc
        if end > size:
            raise FileFormatError(
                f"{path}: binary block {i} ends at byte {end} but the file has only {size} "
                "bytes; the file is truncated: download or write it again"
            )


def _open_asdf(path: str):
    import asdf

    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(5)
    if head != b"#ASDF":
        raise FileFormatError(
            f"{path}: not an ASDF file (it does not start with '#ASDF'); romanxr reads Roman "
            "ASDF products such as *_uncal.asdf and *_cal.asdf"
        )
    try:
        # validate the tree against the Roman schemas at open (explicitly: asdf announces that
        # validation on read will be off by default); the reader's own checks come after
        with asdf.config_context() as cfg:
            cfg.validate_on_read = True
            af = asdf.open(path, lazy_load=True, memmap=False, lazy_tree=True)
        tree = af.tree
        roman = tree.get("roman") if hasattr(tree, "get") else None
    except Exception as exc:
        if type(exc).__name__ == "ValidationError" and hasattr(exc, "absolute_path"):
            where = ".".join(str(p) for p in exc.absolute_path) or "the tree"
            raise FileFormatError(
                f"{path}: {where} does not follow the Roman data model schema "
                f"({getattr(exc, 'message', exc)}); the file was written wrongly or edited: "
                "fix that field or write the file again"
            ) from exc
        raise FileFormatError(
            f"{path}: the ASDF tree cannot be parsed ({type(exc).__name__}: {exc}); the file is "
            "truncated or corrupt"
        ) from exc
    try:
        if roman is None:
            keys = sorted(str(k) for k in tree if not str(k).startswith("asdf_library"))
            raise WrongProductError(
                f"{path}: ASDF file without a 'roman' node (top-level keys: "
                f"{', '.join(keys) or 'none'}); expected a Roman datamodel file "
                "(e.g. an L1 wfi_science_raw *_uncal.asdf)"
            )
        _check_blocks(af, path)
    except BaseException:
        af.close()  # never leave the file open behind an error
        raise
    return af, roman


def verify_checksums(path: str | os.PathLike) -> None:
    """Read every binary block of an ASDF file and compare it with its recorded MD5 checksum.

    Opening a file (:func:`open_roman_asdf`) checks the structure only: the ``#ASDF`` magic,
    the YAML tree, and that every block the header announces lies inside the file. Damaged
    bytes *inside* a block can only be found by reading the block: a compressed block that no
    longer decompresses raises :class:`FileFormatError` naming the file when its chunk is
    computed, but some damage (e.g. inside an lz4 literal run) decompresses into wrong pixel
    values without any error. This function finds that too, at the cost of reading the whole
    file once; run it on files of doubtful origin before calibrating.

    Raises
    ------
    FileFormatError
        If a block's bytes do not match its checksum, or the file cannot be read.
    """
    import hashlib

    path = str(Path(path))
    af, _ = _open_asdf(path)
    try:
        blocks = list(af._blocks.blocks)
        with open(path, "rb") as fh:
            for i, block in enumerate(blocks):
                header = block.header
                expected = bytes(header.get("checksum", b""))
                if not any(expected):  # an all-zero checksum means "not computed"
                    continue
                fh.seek(int(block.offset))  # just past the block magic
                header_size = int.from_bytes(fh.read(2), "big")
                fh.seek(int(block.offset) + 2 + header_size)
                used = fh.read(int(header["used_size"]))
                if hashlib.md5(used, usedforsecurity=False).digest() != expected:
                    raise FileFormatError(
                        f"{path}: binary block {i} does not match its MD5 checksum; the file is "
                        "corrupt: download or write it again"
                    )
    finally:
        af.close()
    return None


class _CheckedArray(AsdfBackendArray):
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
                "(romanxr.io.asdf_reader.verify_checksums checks every block)"
            ) from exc


def _array_var(path: str, name: str, node: Any, dims: tuple[str, ...]) -> xr.Variable:
    shape = tuple(node.shape)
    if len(shape) != len(dims):
        raise WrongProductError(
            f"{path}: roman.{name} has {len(shape)} dimensions {shape}, expected {len(dims)} {dims}"
        )
    arr = _CheckedArray(path, ("roman", name), shape, node.dtype)
    return xr.Variable(dims, indexing.LazilyIndexedArray(arr))


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
    for name, dims in optional.items():
        if name in roman and roman[name] is not None:
            variables[name] = _array_var(path, name, roman[name], dims)
    coords: dict[str, Any] = dict(resultant_coords(info))
    coords["y"] = np.arange(ny, dtype=np.int64)
    coords["x"] = np.arange(nx, dtype=np.int64)
    if "amp33" in variables:
        coords[AMP33_DIM] = np.arange(variables["amp33"].shape[-1], dtype=np.int64)
    return variables, coords


#: Level-2 arrays and their dims. ``frame_y``/``frame_x`` index the full frame (with the border)
#: and ``ref_col``/``ref_row`` the 4 border columns/rows, so they never clash with the trimmed
#: image dims ``y``/``x``.
L2_ARRAY_DIMS = {
    "data": ("y", "x"),
    "dq": ("y", "x"),
    "err": ("y", "x"),
    "var_poisson": ("y", "x"),
    "var_rnoise": ("y", "x"),
    "var_flat": ("y", "x"),
    "chisq": ("y", "x"),
    "dumo": ("y", "x"),
    "amp33": ("resultant", "frame_y", AMP33_DIM),
    "border_ref_pix_left": ("resultant", "frame_y", "ref_col"),
    "border_ref_pix_right": ("resultant", "frame_y", "ref_col"),
    "border_ref_pix_top": ("resultant", "ref_row", "frame_x"),
    "border_ref_pix_bottom": ("resultant", "ref_row", "frame_x"),
    "dq_border_ref_pix_left": ("frame_y", "ref_col"),
    "dq_border_ref_pix_right": ("frame_y", "ref_col"),
    "dq_border_ref_pix_top": ("ref_row", "frame_x"),
    "dq_border_ref_pix_bottom": ("ref_row", "frame_x"),
}
#: Width of the reference-pixel border on each side of a full frame.
BORDER = 4


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


#: Ramp (``RampModel``, saved intermediates) arrays and their dims.
RAMP_ARRAY_DIMS = {
    "data": RAMP_DIMS,
    "pixeldq": ("y", "x"),
    "groupdq": RAMP_DIMS,
    "amp33": ("resultant", "y", AMP33_DIM),
    **{k: v for k, v in L2_ARRAY_DIMS.items() if "border_ref_pix" in k},
}
#: Default dims of the extra ``jump_indices`` array (rows of (resultant, y, x)).
JUMP_INDICES_DIMS = ("jump", "jump_axis")


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
    for key in ("step_parameters", "frame_shape"):
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
    af, roman = _open_asdf(path)
    try:
        tag = _tag_of(roman)
        kind, name, major = product_kind(tag)
        if kind is None or kind == "reference":
            if expect is not None:
                raise WrongProductError(
                    f"{path}: expected a {_EXPECTED_TAG[expect]} ({expect}) product but the "
                    f"file holds {name or 'an untagged roman node'} ({tag})"
                )
            raise WrongProductError(f"{path}: unsupported Roman product {tag}")
        if expect is not None and kind != expect:
            raise WrongProductError(
                f"{path}: expected a {_EXPECTED_TAG[expect]} ({expect}) product but the file "
                f"is a {name} ({kind}) product; "
                + (
                    "use romanxr.open_cal() for calibrated images"
                    if kind == "cal"
                    else "use romanxr.open_uncal() for Level-1 ramps"
                )
            )
        if major is not None and major > _SUPPORTED_MAJOR.get(name, major):
            raise WrongProductError(
                f"{path}: {tag} is newer than this romanxr understands "
                f"(supports {name}-{_SUPPORTED_MAJOR[name]}.x); upgrade romanxr"
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
    finally:
        af.close()
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
