"""Write romanxr Datasets as Roman ASDF products valid for roman_datamodels 1.1.x.

A Level-2 image Dataset (``data`` dims ``(y, x)``) becomes a ``wfi_image`` (``ImageModel``,
``*_cal.asdf``); a ramp Dataset (``data`` dims ``(resultant, y, x)``, after ``dq_init``) becomes
a ``ramp`` (``RampModel``) for saved intermediates. Arrays are cast to the schema's storage
dtypes only here (the tables are in :mod:`romanxr.io.product`); the metadata tree in
``attrs["meta"]`` is brought back into the shape the schema wants by
:func:`romanxr.io.asdf_meta.prepare_meta`, and the blocks are streamed by
:mod:`romanxr.io.asdf_stream`.

``attrs["step_parameters"]`` is stored beside the ``roman`` node, in a top-level ``romanxr``
node of the ASDF tree that roman_datamodels ignores; :func:`romanxr.open_cal` reads it back.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from romanxr._version import __version__
from romanxr.dataset import BORDER
from romanxr.errors import InputError, OutputError
from romanxr.io.asdf_meta import check_serialisable, nondefault_coords, plain_value, prepare_meta
from romanxr.io.asdf_reader import AsdfBackendArray
from romanxr.io.asdf_setup import prepare_asdf
from romanxr.io.asdf_stream import (
    ArraySource,
    ChunkedScratch,
    JumpCollector,
    MemorySource,
    MemoryTarget,
    untouched_zeros,
    write_blocks,
)
from romanxr.io.atomic import atomic_target, check_output_path
from romanxr.io.blocks import SUPPORTED_COMPRESSION
from romanxr.io.product import (
    IMAGE_DTYPES,
    IMAGE_OPTIONAL,
    L2_ARRAY_DIMS,
    PROVENANCE_ATTRS,
    RAMP_ARRAY_DIMS,
    RAMP_DTYPES,
)
from romanxr.io.statistics import PLACEHOLDER as STATISTICS_PLACEHOLDER
from romanxr.io.statistics import cal_statistics
from romanxr.io.wcs_product import write_wcs_product
from romanxr.kernels.ramp_common import jump_indices_from_flags
from romanxr.schedule import (
    local_scheduler,
    optimized_graph,
    region_axis,
    store_by_region,
)

__all__ = ["input_files", "to_asdf", "to_asdf_many"]

#: Extra array written next to the schema arrays when present (romancal's ``record_jumps``).
JUMP_INDICES = "jump_indices"
#: the lazy boolean (resultant, y, x) jump map that ramp_fit records
JUMP_FLAGS = "jumps"

# --------------------------------------------------------------------------------------------
# inputs that must not be overwritten


def _backend_paths(obj: Any, depth: int = 0) -> list[str]:
    found = []
    while obj is not None and depth < 12:
        if isinstance(obj, AsdfBackendArray):
            found.append(obj.path)
            break
        obj = getattr(obj, "array", None)
        depth += 1
    return found


def input_files(ds: xr.Dataset) -> list[str]:
    """Files the Dataset's arrays are (lazily) read from: encodings and lazy backend arrays."""
    sources: list[str] = []
    for enc in [ds.encoding, *(v.encoding for v in ds.variables.values())]:
        if enc.get("source"):
            sources.append(str(enc["source"]))
    for var in ds.variables.values():
        data = var._data
        if hasattr(data, "__dask_graph__"):
            graph = data.__dask_graph__()
            layers = getattr(graph, "layers", None) or {"original-": graph}
            for name, layer in layers.items():
                # dask.array.from_array keeps the wrapped array in an "original-..." layer;
                # other layers are task layers that need not be materialised here
                if not str(name).startswith("original-"):
                    continue
                for value in layer.values():
                    sources.extend(_backend_paths(value))
        else:
            sources.extend(_backend_paths(data))
    return sorted(set(sources))


# --------------------------------------------------------------------------------------------
# arrays


def _ordered(da: xr.DataArray, dims: tuple[str, ...], name: str, source: str) -> xr.DataArray:
    if da.ndim != len(dims):
        raise InputError(
            f"{source}: variable '{name}' has dims {da.dims}, expected {len(dims)} dims {dims}"
        )
    if set(da.dims) == set(dims):
        da = da.transpose(*dims)
    return da


def _ramp_border(ds: xr.Dataset, name: str) -> xr.DataArray:
    """Border reference pixels of a ramp without them, taken from the frame edges.

    Same convention as romancal's dq_init: left/right are the first/last 4 columns, top the
    first 4 rows and bottom the last 4 rows of the (full-frame) data / pixeldq.
    """
    src = ds["pixeldq"] if name.startswith("dq_") else ds["data"]
    side = name.rsplit("_", 1)[-1]
    sl = {
        "left": {"x": slice(0, BORDER)},
        "right": {"x": slice(-BORDER, None)},
        "top": {"y": slice(0, BORDER)},
        "bottom": {"y": slice(-BORDER, None)},
    }[side]
    return src.isel(sl)


def _collect(ds: xr.Dataset, kind: str, source: str) -> dict[str, tuple[xr.DataArray, Any]]:
    arrays: dict[str, tuple[xr.DataArray, Any]] = {}
    if kind == "cal":
        missing = [n for n in IMAGE_DTYPES if n not in ds.data_vars and n not in IMAGE_OPTIONAL]
        if missing:
            raise InputError(
                f"{source}: cannot write a wfi_image: required variables {missing} are "
                "missing; a Level-2 Dataset comes from ramp_fit (or romanxr.open_cal)"
            )
        for name, dtype in IMAGE_DTYPES.items():
            if name in ds.data_vars:
                arrays[name] = (_ordered(ds[name], L2_ARRAY_DIMS[name], name, source), dtype)
    else:
        missing = [n for n in ("data", "pixeldq", "groupdq", "amp33") if n not in ds.data_vars]
        if missing:
            raise InputError(
                f"{source}: cannot write a ramp: variables {missing} are missing; run dq_init "
                "first (it adds pixeldq and groupdq)"
            )
        for name, dtype in RAMP_DTYPES.items():
            if name in ds.data_vars:
                da = _ordered(ds[name], RAMP_ARRAY_DIMS[name], name, source)
            else:
                da = _ramp_border(ds, name)
            arrays[name] = (da, dtype)
    if JUMP_INDICES in ds.data_vars:
        arrays[JUMP_INDICES] = (ds[JUMP_INDICES], None)
    elif kind == "cal" and JUMP_FLAGS in ds.data_vars:
        # evaluated with the other arrays (one compute), turned into indices afterwards
        arrays[JUMP_FLAGS] = (ds[JUMP_FLAGS].transpose("resultant", "y", "x"), np.bool_)
    return arrays


def _cast_block(block: np.ndarray, dtype: Any) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        # float16 overflows to inf above 65504, as romancal's own cast does
        return np.asarray(block).astype(dtype, copy=False)


def _compute_plans(plans: list) -> None:
    """Fill every plan's targets in one computation.

    On the local threaded scheduler the chunks are computed one plan (file) after the other
    and, within a plan, a region of rows at a time (:func:`~romanxr.schedule.store_by_region`),
    so memory does not grow with the frame or the number of files; on a dask.distributed
    cluster each chunk is written as it arrives; other schedulers get one ``da.store``.
    """
    import dask.array as da

    sources = [s for p in plans for s in p.store_sources]
    targets = [t for p in plans for t in p.store_targets]
    if sources:
        client = _distributed_client()
        if client is None and local_scheduler():
            axes = [a for p in plans for a in p.row_axes]
            groups = [i for i, p in enumerate(plans) for _ in p.store_sources]
            store_by_region(sources, targets, axes, groups=groups)
        elif client is None:
            da.store(sources, targets, lock=False, compute=True)
        else:
            _gather_into(client, sources, targets)
    for plan in plans:
        plan.finish()


class _StreamPlan:
    """Where each array to write comes from, and the one compute that fills the scratch.

    numpy-backed arrays stay where they are (cast slab by slab while the block is written);
    each dask-backed array gets a :class:`~romanxr.io.asdf_stream.ChunkedScratch` region of
    one unnamed temporary file, filled chunk by chunk by a single ``dask.array.store`` (or,
    on a dask.distributed cluster, as each chunk arrives); the boolean jump map becomes
    ``jump_indices`` chunk by chunk (:class:`~romanxr.io.asdf_stream.JumpCollector`).
    """

    def __init__(
        self, arrays: Mapping[str, tuple[xr.DataArray, Any]], scratch: Any, label: str
    ) -> None:
        import dask

        self.sources: dict[str, ArraySource] = {}
        self.jumps: JumpCollector | None = None
        self.small: dict[str, MemoryTarget] = {}
        self.store_sources: list = []
        self.store_targets: list = []
        self.row_axes: list = []
        offset = 0
        for name, (array, dtype) in arrays.items():
            data = array.data
            lazy = dask.is_dask_collection(data)
            if name == JUMP_FLAGS:
                if lazy:
                    self.jumps = JumpCollector(
                        array["y"].values, array["x"].values, BORDER, jump_indices_from_flags
                    )
                    self._store(data, self.jumps, np.bool_, region_axis(name, array.dims))
                else:
                    rows = jump_indices_from_flags(
                        np.asarray(data), array["y"].values, array["x"].values, BORDER
                    )
                    self.sources[JUMP_INDICES] = _indices_source(rows)
            elif name == JUMP_INDICES:
                if lazy:  # small: gathered into memory, its dtype follows its values
                    self.small[name] = MemoryTarget(data.shape, array.dtype)
                    self._store(data, self.small[name], array.dtype, region_axis(name, array.dims))
                else:
                    self.sources[name] = _indices_source(np.asarray(data))
            elif lazy:
                target = ChunkedScratch(
                    scratch().fileno(), offset, data.shape, dtype, data.chunks, label
                )
                offset += target.region
                self.sources[name] = target
                self._store(data, target, dtype, region_axis(name, array.dims))
            else:
                self.sources[name] = MemorySource(data, dtype)

    def _store(self, data: Any, target: Any, dtype: Any, axis: int | str | None) -> None:
        """Fill ``target`` from ``data`` in the one compute; ``axis`` places it in the region
        order (:func:`~romanxr.schedule.region_axis`)."""
        self.store_sources.append(data.map_blocks(_cast_block, dtype, dtype=dtype))
        self.store_targets.append(target)
        self.row_axes.append(axis)

    def compute(self) -> None:
        """Evaluate every dask-backed array once (one graph), writing chunks as they come."""
        _compute_plans([self])

    def finish(self) -> None:
        """After the compute: check every chunk arrived and turn jumps into jump_indices."""
        for source in self.sources.values():
            if isinstance(source, ChunkedScratch):
                source.check_complete()
        if self.jumps is not None:
            self.sources[JUMP_INDICES] = _indices_source(self.jumps.result())
        for name, target in self.small.items():
            self.sources[name] = _indices_source(target.array)

    def stand_ins(self) -> dict[str, np.ndarray]:
        """Arrays for asdf to write the tree from: zeros of each shape and storage dtype in
        anonymous memory that is only ever read (no resident memory, see
        :func:`~romanxr.io.asdf_stream.untouched_zeros`) and the small jump_indices as
        they are."""
        out = {}
        for name, source in self.sources.items():
            if isinstance(source, MemorySource) and name == JUMP_INDICES:
                out[name] = source.array
            else:
                out[name] = untouched_zeros(source.shape, source.dtype)
        return out


def _indices_source(value: Any) -> MemorySource:
    value = _cast_indices(np.asarray(value))
    return MemorySource(value, value.dtype)


def _distributed_client() -> Any:
    """The dask.distributed Client the current scheduler belongs to, or None.

    ``da.store`` into in-memory arrays only works when the tasks run in this process; on
    distributed workers each would fill its own copy of the target.
    """
    from dask.base import get_scheduler

    try:
        scheduler = get_scheduler()
    except Exception:
        return None
    owner = getattr(scheduler, "__self__", None)
    if owner is not None and type(owner).__module__.split(".")[0] == "distributed":
        return owner
    return None


def _gather_into(client: Any, sources: list, targets: list) -> None:
    """Compute every block of ``sources`` on the cluster (one graph optimized as a whole, so
    shared work runs once: :func:`~romanxr.schedule.optimized_graph`) and store each into
    its place in ``targets`` (``target[where] = block``: written to the scratch file) as it
    arrives, so one block at a time is held here."""
    from dask.array.core import slices_from_chunks
    from dask.core import flatten
    from distributed import as_completed

    keys, places = [], []
    for source, target in zip(sources, targets, strict=True):
        for key, where in zip(
            flatten(source.__dask_keys__()), slices_from_chunks(source.chunks), strict=True
        ):
            keys.append(key)
            places.append((target, where))
    futures = client.get(optimized_graph(sources), keys, sync=False)
    place_of = {future.key: place for future, place in zip(futures, places, strict=True)}
    for future, value in as_completed(futures, with_results=True):
        target, where = place_of[future.key]
        target[where] = value
        future.release()


def _cast_indices(value: np.ndarray) -> np.ndarray:
    """jump_indices as int16 (romancal's dtype) when the values fit, else int32."""
    if value.dtype.kind not in "iu":
        return value
    small = np.int16 if value.size == 0 or np.abs(value).max() < 2**15 else np.int32
    return value.astype(small, copy=False)


def _placeholder(dtype: Any, ndim: int) -> np.ndarray:
    return np.zeros((1,) * ndim, dtype=dtype)


def _model_class(kind: str):
    from romanxr.io.asdf_setup import datamodels

    dm = datamodels()

    return dm.ImageModel if kind == "cal" else dm.RampModel


def _build_model(kind: str, meta: dict, arrays: Mapping[str, np.ndarray]):
    model = _model_class(kind)()
    model.meta = meta
    for name, value in arrays.items():
        model[name] = value
    return model


def _validate(model, source: str, kind: str) -> None:
    try:
        model.validate()
    except Exception as exc:
        product = "wfi_image" if kind == "cal" else "ramp"
        raise InputError(
            f"{source}: the Dataset cannot be written as a valid {product}: "
            f"{type(exc).__name__}: {str(exc)[:2000]}; fix the named field in attrs['meta']"
        ) from exc


def to_asdf(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    compression: str | None = "lz4",
) -> Path:
    """Write a Level-2 image as a ``wfi_image`` ``cal.asdf`` or a ramp as a ``ramp`` file.

    The kind follows ``data``: dims ``(y, x)`` -> ``ImageModel``; ``(resultant, y, x)`` ->
    ``RampModel`` (needs ``pixeldq``/``groupdq``; missing border reference arrays are taken
    from the frame edges as romancal's dq_init does). Arrays are cast to the schema's storage
    dtypes (image: data float32, dq uint32, err/var_*/chisq/dumo float16 — values above 65504
    become inf —, amp33 uint16, border arrays float32/uint32). A ``jump_indices`` variable is
    written as the extra ``roman.jump_indices`` array (int16 when it fits), as romancal does.
    ``attrs["step_parameters"]`` goes to a top-level ``romanxr`` node (numpy scalars are
    written as Python numbers and tuples as lists; use :func:`to_zarr` for an exact copy).
    y/x coordinates of a cut-out are kept there too. Variables the schema does not know are
    not written. ``meta.calibration_software_name``/``_version`` name romanxr; an image's
    ``meta.statistics`` are romancal's, from the stored arrays once computed (read back by
    bands: at most one float32 copy of the image more in memory).

    The write is atomic (temporary sibling, then rename; see :mod:`romanxr.io.atomic`) and
    streams (see :mod:`romanxr.io.asdf_stream`): all dask-backed arrays are evaluated
    together by one ``dask.array.store`` (one compute, so shared work runs once) whose
    chunks, in any layout and order, go cast to an unnamed scratch file next to the output
    as they are computed; asdf then writes the tree and the blocks are streamed from the
    scratch (numpy-backed arrays: from memory) through a 4 MiB buffer, compressed, with
    their MD5 checksums. Memory stays at the chunks in flight plus a few MiB, whatever the
    size of the output (a lazy full-frame image: +30 MiB instead of +390 MiB); the output
    directory needs room for the scratch (about the uncompressed output) besides the file.
    The file is byte for byte what asdf writes for the same model.

    Parameters
    ----------
    ds : xarray.Dataset
        A Level-2 image or ramp Dataset with ``attrs["meta"]``.
    path : path-like
        Output file (conventionally ``*_cal.asdf``).
    overwrite : bool
        Replace an existing file.
    compression : {"lz4", None, "zlib", "bzp2"}
        ASDF block compression (``"lz4"`` as roman_datamodels' ``save``; ``None`` for raw,
        which is faster to write: about 0.6 s less for a full-frame image).

    Returns
    -------
    Path
        The absolute path written.

    Raises
    ------
    OutputError
        Missing or read-only output directory, output equal to an input file, or existing
        output without ``overwrite`` — raised before anything is computed.
    InputError
        Missing variables, metadata that do not validate against the schema or an unknown
        compression (also raised before computing).
    """
    return to_asdf_many([(ds, path)], overwrite=overwrite, compression=compression)[0]


def to_asdf_many(
    items: Sequence[tuple[xr.Dataset, str | os.PathLike]],
    *,
    overwrite: bool = False,
    compression: str | None = "lz4",
    wcs_paths: Sequence[str | os.PathLike | None] | None = None,
) -> list[Path]:
    """Write several Datasets (e.g. the 18 detectors of an exposure) in one computation.

    Everything is checked (paths, metadata, schema) before any pixel is computed. On the
    local scheduler the files are computed one after the other, each a region of rows at a
    time, so peak memory does not grow with their number; on a dask.distributed cluster all
    chunks go to the workers at once. Each file is written atomically, as by :func:`to_asdf`.

    Parameters
    ----------
    items : sequence of (Dataset, path)
        What to write where (distinct paths).
    overwrite, compression
        As for :func:`to_asdf`.
    wcs_paths : sequence of path or None, optional
        Per item, where to write the image's ``_wcs.asdf`` (romancal's ``WfiWcsModel``,
        :mod:`romanxr.io.wcs_product`) after its cal.asdf; None (or a ramp): none. Checked
        with the other outputs before anything is computed.

    Returns
    -------
    list of Path
        The absolute paths written, in order.

    Raises
    ------
    OutputError, InputError
        As :func:`to_asdf`, before anything is computed; also for a path given twice.
    """
    wcs = list(wcs_paths) if wcs_paths is not None else [None] * len(items)
    if len(wcs) != len(items):
        raise OutputError(f"to_asdf_many: {len(items)} items but {len(wcs)} wcs_paths")
    jobs = [
        _AsdfJob(ds, path, overwrite, compression, wcs_path)
        for (ds, path), wcs_path in zip(items, wcs, strict=True)
    ]
    seen: set = set()
    for job in jobs:
        if job.target in seen:
            raise OutputError(f"{job.target}: given twice to to_asdf_many; use distinct paths")
        seen.add(job.target)
    with contextlib.ExitStack() as stack:
        plans = [job.plan(stack) for job in jobs]
        _compute_plans(plans)
        return [job.write(plan) for job, plan in zip(jobs, plans, strict=True)]


class _AsdfJob:
    """One file of :func:`to_asdf_many`: checked at creation, written after the compute."""

    def __init__(
        self,
        ds: xr.Dataset,
        path: str | os.PathLike,
        overwrite: bool,
        compression: str | None,
        wcs_path: str | os.PathLike | None = None,
    ) -> None:
        if not isinstance(ds, xr.Dataset) or "data" not in ds.data_vars:
            raise InputError("to_asdf needs an xarray.Dataset with a 'data' variable")
        source = str(ds.attrs.get("meta", {}).get("filename") or ds.encoding.get("source") or "ds")
        if ds["data"].ndim == 2:
            kind = "cal"
        elif ds["data"].ndim == 3:
            kind = "ramp"
        else:
            raise InputError(
                f"{source}: 'data' has dims {ds['data'].dims}; expected (y, x) for a Level-2 image "
                "or (resultant, y, x) for a ramp"
            )
        if compression not in SUPPORTED_COMPRESSION:
            raise InputError(
                f"compression={compression!r} is not supported; use one of {SUPPORTED_COMPRESSION}"
            )
        target = check_output_path(path, overwrite=overwrite, inputs=input_files(ds))
        meta = prepare_meta(ds.attrs.get("meta"), kind=kind, filename=target.name)
        if kind == "cal":  # filled in from the stored arrays once they are computed
            meta["statistics"] = dict(STATISTICS_PLACEHOLDER)
        self.wcs_target = None
        if wcs_path is not None and kind == "cal":
            self.wcs_target = check_output_path(wcs_path, overwrite=overwrite, inputs=[])
        arrays = _collect(ds, kind, source)
        # validate the tree with tiny stand-ins before spending time on the pixels
        placeholders = {
            n: _placeholder(dt if dt is not None else np.int16, a.ndim)
            for n, (a, dt) in arrays.items()
        }
        _validate(_build_model(kind, meta, placeholders), source, kind)
        extra: dict[str, Any] = {"romanxr_version": __version__}
        for key in PROVENANCE_ATTRS:
            if key in ds.attrs:
                extra[key] = plain_value(ds.attrs[key])
        if "frame_shape" in ds.attrs:
            extra["frame_shape"] = [int(v) for v in ds.attrs["frame_shape"]]
        if JUMP_INDICES in arrays:
            extra["dims"] = {JUMP_INDICES: list(arrays[JUMP_INDICES][0].dims)}
        coords = nondefault_coords(ds, kind)
        if coords:
            extra["coords"] = coords
        check_serialisable(extra, source)

        self.target, self.kind, self.meta, self.extra = target, kind, meta, extra
        self.arrays, self.compression, self.overwrite = arrays, compression, overwrite

    def plan(self, stack: contextlib.ExitStack) -> _StreamPlan:
        target = self.target
        return _StreamPlan(
            self.arrays,
            functools.cache(lambda: stack.enter_context(_scratch(target))),
            str(target),
        )

    def write(self, plan: _StreamPlan) -> Path:
        asdf = prepare_asdf()

        if self.kind == "cal":
            self.meta["statistics"] = cal_statistics(plan.sources)
        model = _build_model(self.kind, self.meta, plan.stand_ins())
        with atomic_target(self.target, overwrite=self.overwrite) as tmp:
            af = asdf.AsdfFile()
            af.tree = {"roman": model._instance, "romanxr": self.extra}
            # the tree only: zeros compress to almost nothing; the blocks are replaced below
            af.write_to(tmp, all_array_compression="lz4")
            sources = {("roman", n): src for n, src in plan.sources.items()}
            write_blocks(tmp, sources, self.compression)
        if self.wcs_target is not None:
            write_wcs_product(model, self.wcs_target, overwrite=self.overwrite)
        return self.target


def _scratch(target: Path) -> Any:
    """An unnamed temporary file in the run's private scratch directory (gone on any exit)."""
    from romanxr.schedule import scratch

    try:
        return scratch.temporary_file("writer-")
    except OSError as exc:
        raise OutputError(
            f"{target}: cannot create a temporary file in {scratch.base_dir()} "
            f"({type(exc).__name__}: {exc}); check free space and permissions there, or set "
            f"{scratch.ENV_VAR} to a folder with room for the output's arrays"
        ) from exc
