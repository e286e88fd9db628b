"""Files in and out of the pipeline: opening any product, the Roman naming rule, writing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import xarray as xr

from romanxr.errors import ConfigError, InputError
from romanxr.registry import STEPS

__all__ = [
    "intermediate_path",
    "open_exposure",
    "output_name",
    "output_path",
    "wcs_path",
    "write",
    "write_products",
]


def open_exposure(path: str | os.PathLike, chunks: Any = "default") -> xr.Dataset:
    """Open any Roman exposure product lazily: uncal, a saved ramp intermediate, cal, or Zarr.

    Parameters
    ----------
    path : path-like
        ``*_uncal.asdf``, ``*_<step>.asdf`` (ramp intermediates), ``*_cal.asdf`` or ``*.zarr``.
    chunks
        Dask chunks (see :func:`romanxr.open_uncal`).
    """
    path = Path(path)
    if path.is_dir() and path.suffix != ".zarr" and not (path / "zarr.json").is_file():
        raise InputError(
            f"{path}: is a directory, not an exposure file; give the path of a *_uncal.asdf "
            "(or *_cal.asdf) file, or of a *.zarr store written by romanxr"
        )
    if path.suffix == ".zarr" or path.is_dir():
        from romanxr.io import open_zarr

        return open_zarr(path)
    if not path.exists():
        raise InputError(f"{path}: no such file; give the path of a *_uncal.asdf file")
    from romanxr.io import chunk_dataset, open_roman_asdf

    stat = path.stat()
    token = f"{path.resolve()}-{stat.st_mtime_ns}"
    return chunk_dataset(open_roman_asdf(path), chunks, token=token)


def output_name(source: Path, suffix: str = "cal", ext: str = ".asdf") -> Path:
    """Apply the Roman naming rule: replace a known product suffix (``_uncal``...) by ``suffix``."""
    stem = source.name
    for ext_known in (".asdf", ".zarr"):
        if stem.endswith(ext_known):
            stem = stem[: -len(ext_known)]
    known = {"uncal", "cal"} | {s.suffix for s in STEPS}
    base, _, last = stem.rpartition("_")
    if base and last in known:
        stem = base
    return source.with_name(f"{stem}_{suffix}{ext}")


def intermediate_path(source: Path, suffix: str, out_path: Path | None) -> Path:
    """Where a saved intermediate goes: next to the output (or input), with its suffix."""
    folder = out_path.parent if out_path is not None else source.parent
    return folder / output_name(source, suffix).name


def output_path(
    output: str | os.PathLike | None,
    save_results: bool,
    source: Path | None,
    output_format: str | None,
) -> Path | None:
    """Where :func:`romanxr.calibrate` writes its result: ``output``, else with
    ``save_results`` the input's name by the Roman naming rule, else nowhere (None)."""
    if output is not None:
        return Path(output)
    if not save_results:
        return None
    if source is None:
        raise ConfigError("save_results=True needs an input path or output=...")
    ext = ".zarr" if output_format == "zarr" else ".asdf"
    return output_name(source, "cal", ext)


def wcs_path(cal_path: str | os.PathLike) -> Path:
    """Where the ``_wcs.asdf`` of a cal.asdf goes, by the Roman naming rule
    (``r..._cal.asdf`` -> ``r..._wcs.asdf``, beside it)."""
    return output_name(Path(cal_path), "wcs")


def write(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    wcs: bool = False,
    compression: str | None = "lz4",
) -> Path:
    """Write a Dataset to ``.asdf`` (roman_datamodels) or ``.zarr`` (Zarr v3) by suffix.

    With ``wcs``, an image with a WCS written as ``.asdf`` also gets its ``_wcs.asdf``
    (:func:`wcs_path`), as romancal writes one beside every cal it saves; ``compression``
    is the ASDF blocks' (see :func:`romanxr.to_asdf`).
    """
    path = Path(path)
    if path.suffix == ".zarr":
        from romanxr.io.zarr_io import to_zarr

        return to_zarr(ds, path, overwrite=overwrite)
    from romanxr.io.asdf_writer import to_asdf_many

    return to_asdf_many(
        [(ds, path)],
        overwrite=overwrite,
        compression=compression,
        wcs_paths=[wcs_path(path) if wcs else None],
    )[0]


def has_catalog(ds: xr.Dataset) -> bool:
    """Whether ``ds`` carries a source catalog made by source_catalog (the step ran)."""
    return "source_catalog" in ds.attrs


def measured(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with its image and source catalog computed together, once (see
    :func:`romanxr.steps.source_catalog.measure_catalogs`); ``ds`` itself without one."""
    if not has_catalog(ds):
        return ds
    from romanxr.steps.source_catalog import measure_catalogs

    (ds,), _ = measure_catalogs([ds])
    return ds


def write_products(
    ds: xr.Dataset,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    wcs: bool = True,
    compression: str | None = "lz4",
) -> Path:
    """Write a calibrated image and, when source_catalog ran on it, its catalog products
    beside it with romancal's names (``<name>_cat.parquet``, ``<name>_segm.asdf``).

    The image and its catalog are computed in one go first (the writes then read the
    computed pixels, instead of running the calibration chain once per product); every file
    is written to a temporary name and renamed into place (:mod:`romanxr.io.atomic`).

    Parameters
    ----------
    ds : xarray.Dataset
        The image (:func:`romanxr.calibrate`'s result).
    path : path-like
        The cal file (``.asdf`` or ``.zarr``).
    overwrite : bool
        Replace existing outputs.
    wcs : bool
        Also write the ``_wcs.asdf`` of an ``.asdf`` image (see :func:`write`).
    compression : str or None
        As for :func:`write`.

    Returns
    -------
    Path
        The cal file written.
    """
    catalog = has_catalog(ds)
    if catalog:
        from romanxr.io.atomic import check_output_path
        from romanxr.io.catalog_io import catalog_paths

        for target in catalog_paths(path):  # refused before any work, not after the cal
            check_output_path(target, overwrite=overwrite)
    ds = measured(ds)
    written = write(ds, path, overwrite=overwrite, wcs=wcs, compression=compression)
    if catalog:
        from romanxr.steps.source_catalog import to_catalog_files

        to_catalog_files(ds, written, overwrite=overwrite)
    return written
