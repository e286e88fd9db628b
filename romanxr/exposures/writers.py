"""Writing an exposure tree: one ``_cal.asdf`` per node, or one Zarr v3 store for the tree.

Both are atomic per output, as the single-file writers they reuse are
(:mod:`romanxr.io.atomic`): an interrupted run leaves only complete files (or the whole store)
at their final names.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import xarray as xr

from romanxr.errors import BatchError, OutputError, RomanxrError
from romanxr.exposures.tree import ON_ERROR, failures, merge_failures, node_datasets
from romanxr.io import to_asdf_many, zarr_io
from romanxr.io.asdf_writer import input_files
from romanxr.io.atomic import atomic_target, check_output_path
from romanxr.io.catalog_io import catalog_paths
from romanxr.pipeline import output_name, wcs_path
from romanxr.pipeline.products import has_catalog, write_products

__all__ = ["BatchReport", "output_paths", "to_asdf", "to_zarr"]


@dataclass
class BatchReport:
    """What a tree write did.

    Attributes
    ----------
    written : dict
        ``{node path: file written}``.
    failed : dict
        ``{member file: "ErrorType: message"}``: the members with no output (left out of the
        tree earlier, or failed while writing).
    """

    written: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every member was written."""
        return not self.failed

    def __str__(self) -> str:
        lines = [f"{len(self.written)} written, {len(self.failed)} failed"]
        lines += [f"  failed {member}: {why}" for member, why in self.failed.items()]
        return "\n".join(lines)


def output_paths(
    tree: xr.DataTree, output_dir: str | os.PathLike | None = None, suffix: str = "cal"
) -> dict[str, Path]:
    """Where :func:`to_asdf` writes each node: romancal's name (the member's
    ``meta.filename``, else its file's name, with its product suffix replaced by
    ``_<suffix>``) in ``output_dir`` (default: next to the member's file)."""
    out = {}
    for path, ds in node_datasets(tree).items():
        source = Path(ds.attrs.get("source_file") or ds.encoding.get("source") or path)
        name = (ds.attrs.get("meta") or {}).get("filename") or source.name
        folder = Path(output_dir) if output_dir is not None else source.parent
        out[path] = folder / output_name(Path(str(name)), suffix).name
    return out


def to_asdf(
    tree: xr.DataTree,
    output_dir: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    on_error: str = "raise",
    suffix: str = "cal",
    compression: str | None = "lz4",
) -> BatchReport:
    """Write every node of the tree as its own ``*_cal.asdf`` (romancal's names), each image
    with a WCS with its ``*_wcs.asdf`` beside it, as romancal does, and each node that
    source_catalog ran on with its ``*_cat.parquet`` and ``*_segm.asdf`` (every file
    written to a temporary name and renamed into place).

    Parameters
    ----------
    tree : xarray.DataTree
        Calibrated nodes (``dt.roman.calibrate()``), or any nodes the cal.asdf writer takes.
    output_dir : path-like, optional
        Folder of the outputs (default: next to each member's file).
    overwrite : bool
        Replace existing outputs.
    on_error : {"raise", "continue"}
        ``"raise"``: every output is checked first (paths, metadata, schema), then all nodes
        are computed in one graph (:func:`romanxr.io.to_asdf_many`: on the local scheduler
        one file after the other, region by region; on a dask.distributed cluster all at
        once); a node with a source catalog is computed on its own, its image and catalog
        together (the catalog needs the whole image). ``"continue"``: node by node, so a
        member that fails (also while its pixels are computed, e.g. a damaged block) costs
        only its own output; the failures are in the report.
    suffix : str
        Product suffix of the names (``cal``; ``rampfit`` for a tree stopped after ramp_fit).
    compression
        As for :func:`romanxr.to_asdf`.

    Returns
    -------
    BatchReport
        The files written and the members that failed (the tree's own ``failures``
        included).

    Raises
    ------
    OutputError, InputError
        With ``on_error="raise"``, as :func:`romanxr.to_asdf` (before any compute).
    """
    if on_error not in ON_ERROR:
        raise OutputError(f"on_error={on_error!r}: use one of {ON_ERROR}")
    datasets = node_datasets(tree)
    targets = output_paths(tree, output_dir, suffix)
    if output_dir is not None and not Path(output_dir).is_dir():
        raise OutputError(f"{output_dir}: the output folder does not exist; create it first")
    report = BatchReport(failed=failures(tree))

    def write_node(path: str) -> Path:
        return write_products(
            datasets[path], targets[path], overwrite=overwrite, compression=compression
        )

    if on_error == "raise":
        plain = [p for p in datasets if not has_catalog(datasets[p])]
        for p in datasets:  # every output refused before any compute
            if p not in plain:
                for extra in (targets[p], wcs_path(targets[p]), *catalog_paths(targets[p])):
                    check_output_path(extra, overwrite=overwrite)
        items = [(datasets[p], targets[p]) for p in plain]
        wcs = [wcs_path(targets[p]) for p in plain]
        written = to_asdf_many(items, overwrite=overwrite, compression=compression, wcs_paths=wcs)
        report.written = dict(zip(plain, written, strict=True))
        report.written.update({p: write_node(p) for p in datasets if p not in plain})
        report.written = {p: report.written[p] for p in datasets}
        return report
    problems: dict[str, BaseException] = {}
    for path, ds in datasets.items():
        try:
            report.written[path] = write_node(path)
        except Exception as exc:  # isolate the member, whatever went wrong in its graph
            problems[str(ds.attrs.get("source_file", path))] = exc
    report.failed = merge_failures(tree, problems)
    return report


def to_zarr(
    tree: xr.DataTree,
    store: str | os.PathLike,
    *,
    overwrite: bool = False,
    compressor: Any = "zstd",
) -> Path:
    """Write the tree as one Zarr v3 store, one group per node, with consolidated metadata.

    Each node is written by :func:`romanxr.to_zarr` (its Roman metadata kept losslessly in
    the group's attributes), into a temporary sibling of ``store`` that replaces it in one
    rename when every node is in (:mod:`romanxr.io.atomic`). ``xr.open_datatree(store,
    engine="zarr")`` reads it back; :func:`romanxr.open_zarr` opens one group as a Dataset
    with its metadata decoded (``open_zarr(f"{store}/<exposure>/<detector>")``).

    Parameters
    ----------
    tree : xarray.DataTree
        The nodes to write.
    store : path-like
        A local directory (``*.zarr``).
    overwrite : bool
        Replace an existing store.
    compressor
        As for :func:`romanxr.to_zarr`.

    Returns
    -------
    Path
        The absolute path of the store.

    Raises
    ------
    OutputError
        Bad or existing output (without ``overwrite``), before any compute.
    BatchError
        A node could not be written (nothing is left at ``store``).
    """
    import zarr

    datasets = node_datasets(tree)
    inputs = sorted({f for ds in datasets.values() for f in input_files(ds)})
    target = check_output_path(store, overwrite=overwrite, inputs=inputs, kind="directory")
    with atomic_target(target) as tmp:
        root = zarr.open_group(str(tmp), mode="w-", zarr_format=3)
        root.attrs.update({"source": str(tree.attrs.get("source", "")), "romanxr_tree": 1})
        for path, ds in datasets.items():
            parent = path.rsplit("/", 1)[0].strip("/")
            if parent:
                root.require_group(parent)
            try:
                zarr_io.to_zarr(ds, tmp / path.strip("/"), compressor=compressor)
            except RomanxrError as exc:
                raise BatchError({path: exc}, f"tree written to {target}") from exc
        with warnings.catch_warnings():
            # zarr notes that consolidated metadata is its extension of the v3 format; xarray
            # reads it (and falls back to the groups without it)
            warnings.filterwarnings("ignore", "Consolidated metadata", UserWarning)
            zarr.consolidate_metadata(str(tmp), zarr_format=3)
    return target
