"""Catalog products: ``_cat.parquet`` (the source catalog) and ``_segm.asdf`` (segmentation).

Both are written through roman_datamodels, so they are what romancal 1.1.0 writes: the
catalog as an ``ImageSourceCatalogModel`` saved to parquet (validated first; every column keeps
its unit in the field metadata, the Roman metadata flattened into the file's key/value
metadata), the segmentation map as a ``SegmentationMapModel`` (uint32 labels and the detection
image). Each file is written to a temporary name and renamed, so a failed write leaves nothing
half-written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from romanxr.errors import InputError, OutputError
from romanxr.io.atomic import check_output_path, temporary_name

__all__ = ["catalog_paths", "read_catalog", "write_catalog", "write_segmentation"]


def _fill(meta: dict, defaults: dict) -> dict:
    """``meta`` with the fields it lacks taken from ``defaults`` (recursively)."""
    out = dict(meta)
    for key, value in defaults.items():
        if key not in out:
            out[key] = value
        elif isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = _fill(out[key], value)
    return out


def _models_meta(ds: xr.Dataset, filename: str, model_class: Any) -> dict:
    """The catalog models' meta: the image's (as roman_datamodels wants it) plus ``image``.

    Fields a schema requires but the image lacks (an image built in memory rather than read
    from a cal.asdf) get roman_datamodels' placeholder values.
    """
    from romanxr.io.asdf_reader import to_plain
    from romanxr.io.asdf_writer import prepare_meta

    meta = prepare_meta(ds.attrs.get("meta"), kind="cal", filename=filename)
    image_name = str((ds.attrs.get("meta") or {}).get("filename") or "")
    meta["image"] = {"filename": image_name or filename, "file_date": meta["file_date"]}
    defaults = to_plain(model_class.create_fake_data().meta)
    meta = _fill(meta, {k: v for k, v in defaults.items() if k != "model_type"})
    meta.pop("model_type", None)
    return meta


def _replace(write: Any, target: Path) -> Path:
    """``write(path)`` into a hidden folder beside ``target`` (same file name, so the name
    recorded inside the file is right), then rename it into place."""
    folder = temporary_name(target)
    folder.mkdir()
    tmp = folder / target.name
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        folder.rmdir()
    return target


def write_catalog(
    table: Any, ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write a source catalog Table as romancal's ``_cat.parquet``.

    Parameters
    ----------
    table : astropy.table.Table
        The catalog (:func:`romanxr.steps.source_catalog.catalog_table`).
    ds : xarray.Dataset
        The image it was measured on (its ``attrs["meta"]`` goes to the file's metadata).
    path : path-like
        The ``.parquet`` file.
    overwrite : bool
        Replace an existing file.

    Raises
    ------
    OutputError
        The file exists (and not ``overwrite``), or the catalog does not validate against the
        ImageSourceCatalogModel schema (the message names the column).
    """
    from romanxr.io.asdf_setup import datamodels

    dm = datamodels()

    target = check_output_path(path, overwrite=overwrite, inputs=())
    meta = _models_meta(ds, target.name, dm.ImageSourceCatalogModel)
    model = dm.ImageSourceCatalogModel.create_minimal({"meta": meta})
    if len(table) == 0:
        model.source_catalog = model.create_empty_catalog()
    else:
        model.source_catalog = table

    def write(tmp: Path) -> None:
        try:
            model.to_parquet(tmp)
        except Exception as exc:
            raise OutputError(
                f"{target}: the catalog does not fit roman_datamodels' ImageSourceCatalogModel "
                f"({type(exc).__name__}: {str(exc)[:500]}); a catalog from source_catalog does"
            ) from exc

    return _replace(write, target)


def write_segmentation(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``ds["segmentation"]`` (and ``detection_image``) as romancal's ``_segm.asdf``.

    Raises
    ------
    InputError
        ``ds`` has no ``segmentation`` (run source_catalog first).
    OutputError
        The file exists (and not ``overwrite``).
    """
    from romanxr.io.asdf_setup import datamodels

    dm = datamodels()

    if "segmentation" not in ds:
        raise InputError(
            "the Dataset has no 'segmentation' variable; run ds.roman.source_catalog() first"
        )
    target = check_output_path(path, overwrite=overwrite, inputs=())
    meta = _models_meta(ds, target.name, dm.SegmentationMapModel)
    model = dm.SegmentationMapModel.create_minimal({"meta": meta})
    model.data = np.asarray(ds["segmentation"].transpose("y", "x").values, dtype=np.uint32)
    if "detection_image" in ds:
        model["detection_image"] = np.asarray(ds["detection_image"].values, dtype=np.float32)
    model.validate()
    return _replace(lambda tmp: model.save(tmp), target)


def catalog_paths(cal_path: str | os.PathLike, suffix: str = "cat") -> tuple[Path, Path]:
    """``(<name>_<suffix>.parquet, <name>_segm.asdf)`` beside ``cal_path``.

    ``<name>`` is the file name without its extension and its last ``_cal``/``_uncal``
    suffix (``r0001_wfi01_cal.asdf`` -> ``r0001_wfi01_cat.parquet``), as romancal names them.
    """
    source = Path(cal_path)
    stem = source.name
    for ext in (".asdf", ".zarr"):
        stem = stem.removesuffix(ext)
    base, _, last = stem.rpartition("_")
    if base and last in ("cal", "uncal"):
        stem = base
    return source.with_name(f"{stem}_{suffix}.parquet"), source.with_name(f"{stem}_segm.asdf")


def read_catalog(path: str | os.PathLike) -> Any:
    """Read a ``_cat.parquet`` back as an astropy Table (with its column units).

    Raises
    ------
    InputError
        No such file, or not a parquet file.
    """
    from astropy.table import Table

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; give a *_cat.parquet written by source_catalog")
    try:
        import pyarrow.parquet as pq

        arrow = pq.read_table(path)
    except Exception as exc:
        raise InputError(f"{path}: not a parquet catalog ({type(exc).__name__}: {exc})") from exc
    table = Table()
    for field in arrow.schema:
        column = arrow.column(field.name).to_numpy()
        unit = (field.metadata or {}).get(b"unit", b"None").decode()
        table[field.name] = column
        if unit not in ("None", ""):
            table[field.name].unit = unit
    return table
