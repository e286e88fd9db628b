"""source_catalog: detect the sources of a Level-2 image and measure them (photutils).

The step adds the segmentation map (``segmentation``, uint32, 0 = background, ``n`` = the
source labelled ``n``) and the detection image (``detection_image``) to the image Dataset and
makes the catalog available as an :class:`astropy.table.Table`::

    cal = image.roman.source_catalog()          # lazy: nothing measured yet
    table = cal.roman.catalog                    # measures (once) and returns the Table
    table.to_pandas()                            # or any Table operation
    cal.roman.to_catalog_files("out/r0001_cal.asdf")   # r0001_cat.parquet, r0001_segm.asdf

The catalog is computed when the image is: one task takes the whole image (detection and
photometry need all of it), and computing either ``segmentation`` or the Table runs it once for
both (the result is kept for the few most recent catalogs of the session). A catalog is not
part of ``cal.asdf``: it is written to ``_cat.parquet`` beside it, the segmentation map to
``_segm.asdf`` (:func:`to_catalog_files`, ``ds.roman.to_catalog_files``).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from romanxr.dataset import get_meta, is_imaging, validate_exposure
from romanxr.errors import ConfigError, InputError, ReferenceMismatchError
from romanxr.refs import ReferenceResolver, ResolvedReference, resolve_reference
from romanxr.steps._common import finish_step

__all__ = [
    "catalog_table",
    "check_arguments",
    "measure_catalogs",
    "replace_catalog",
    "source_catalog",
    "to_catalog_files",
]

STEP = "source_catalog"
#: ``attrs`` key naming the catalog of a Dataset (a token, see :func:`catalog_table`)
ATTRS_KEY = "source_catalog"
#: how many measured catalogs are kept in memory
_KEEP = 4
_RESULTS: OrderedDict[str, dict[str, Any]] = OrderedDict()
_PENDING: dict[str, Any] = {}
#: measured or replaced Tables (small next to the images): kept for more catalogs, so that
#: the 18 detectors of an exposure keep theirs from tweakreg to the write
_TABLES: OrderedDict[str, Any] = OrderedDict()
_KEEP_TABLES = 64
_LOCK = threading.RLock()


def source_catalog(
    ds: xr.Dataset,
    *,
    bkg_boxsize: int = 1000,
    kernel_fwhm: float = 2.0,
    snr_threshold: float = 3.0,
    npixels: int = 25,
    deblend: bool = False,
    suffix: str = "cat",
    fit_psf: bool = True,
    forced_segmentation: str = "",
    override_apcorr: str | None = None,
    override_epsf: str | None = None,
    resolver: ReferenceResolver | None = None,
) -> xr.Dataset:
    """Detect, segment and measure the sources of a Level-2 image (romancal's SourceCatalogStep).

    The background (sigma-clipped median in ``bkg_boxsize`` boxes) is subtracted, the image is
    smoothed with a Gaussian of FWHM ``kernel_fwhm`` and sources are groups of ``npixels``
    connected pixels above ``snr_threshold`` times the background RMS (deblended with
    ``deblend``). Each source gets segment properties (centroids, shape, segment and Kron
    fluxes), circular-aperture fluxes in radii of 0.1-1.6 arcsec with a local background from a
    2.4-2.8 arcsec annulus, and, with ``fit_psf``, a PSF fit using the EPSF reference. Fluxes
    are in nJy (the image's DN/s times ``meta.photometry.conversion_megajanskys`` and the pixel
    area); sizes in arcsec; positions in pixels of this image (0-based) and in degrees.
    The encircled-energy curve of the APCORR reference gives ``is_extended`` and the catalog's
    ``ee_fractions``. Pixels with non-finite data or error, ``err <= 0`` or ``DO_NOT_USE`` are
    masked. Columns and units are romancal 1.1.0's.

    Speed: the PSF fit (photutils fits one source group after another, most of the time on
    a full frame) is split into parts of whole groups fitted in forked worker processes,
    while this process measures the other columns. There are as many workers as dask's
    ``num_workers`` setting, else CPUs (``dask.config.set(num_workers=1)`` fits serially),
    over all the catalogs measured at once in this process: in a batch of detectors, a
    catalog that finds the workers taken fits in its own thread. With a
    ``dask.distributed`` client, or the ``processes`` or ``synchronous`` scheduler, the fit
    runs in the task's own thread (cluster workers may not fork; their cores are the
    cluster's). The catalog is the same, bit for bit, for any number of workers.

    Differences from romancal 1.1.0: the ePSF stamps are used as given (romancal also
    re-convolves them from the reference's guide-star jitter to the exposure's; the two agree
    when the jitters are the same); ``dust_ebv`` is NaN (romancal looks up a dust map in CRDS
    and also gives NaN when it cannot); ``cal_step.source_catalog`` is COMPLETE as soon as the
    step is planned, also when no source is found (romancal then leaves it INCOMPLETE): the
    catalog's ``meta["reason"]`` says why it is empty.

    Parameters
    ----------
    ds : xarray.Dataset
        Level-2 image (dims ``(y, x)``) with ``data``, ``err``, ``dq`` and a gwcs in
        ``meta.wcs``.
    bkg_boxsize : int
        Edge of the background mesh boxes (pixels).
    kernel_fwhm : float
        FWHM (pixels) of the Gaussian smoothing kernel used for detection.
    snr_threshold : float
        Per-pixel signal-to-noise ratio above the background for a detection.
    npixels : int
        Minimum number of connected pixels of a source.
    deblend : bool
        Deblend overlapping sources.
    suffix : str
        Suffix of the catalog file (``<name>_<suffix>.parquet``).
    fit_psf : bool
        Fit the EPSF reference's PSF to every source (``x_psf``, ``psf_flux``... columns).
    forced_segmentation : str
        Path of a ``_segm.asdf``: measure these segments instead of detecting (forced
        photometry; no PSF fit, as in romancal).
    override_apcorr : path, optional
        APCORR reference to use instead of CRDS.
    override_epsf : path, optional
        EPSF reference to use instead of CRDS.
    resolver : ReferenceResolver, optional
        Reference resolution (overrides, CRDS context).

    Returns
    -------
    xarray.Dataset
        The image with ``segmentation`` and ``detection_image`` added (lazy for dask input;
        the input is not modified); ``attrs["source_catalog"]`` names the catalog that
        :func:`catalog_table` (``ds.roman.catalog``) returns. cal_step ``source_catalog`` =
        COMPLETE, or SKIPPED for a non-imaging exposure.

    Raises
    ------
    ConfigError
        A parameter out of range.
    InputError
        No ``data``/``err``/``dq``, no WCS (run assign_wcs), or an unreadable
        ``forced_segmentation`` file.
    ReferenceMismatchError
        The APCORR reference has no entry for the exposure's optical element.
    """
    validate_exposure(ds, level="image")
    parameters = _check_parameters(
        bkg_boxsize, kernel_fwhm, snr_threshold, npixels, deblend, suffix, fit_psf,
        forced_segmentation,
    )  # fmt: skip
    if not is_imaging(ds):
        return finish_step(ds, ds, STEP, "SKIPPED", parameters=parameters)
    missing = [n for n in ("data", "err", "dq") if n not in ds]
    if missing:
        raise InputError(
            f"{_name(ds)}: source_catalog needs the variables {missing} of a Level-2 image; "
            "run ramp_fit (and the image steps) first or open a *_cal.asdf"
        )
    meta = get_meta(ds)
    if meta.get("wcs") is None:
        raise InputError(
            f"{_name(ds)}: meta.wcs is missing; the catalog's sky positions need it: run "
            "assign_wcs first"
        )
    references: list[ResolvedReference] = []
    apcorr = resolve_reference("apcorr", ds, explicit=override_apcorr, resolver=resolver)
    references.append(apcorr)
    ee = _ee_curve(apcorr, meta)
    psf = None
    if fit_psf and not forced_segmentation:
        epsf = resolve_reference("epsf", ds, explicit=override_epsf, resolver=resolver)
        references.append(epsf)
        psf = _psf_model(epsf)
    forced = _read_segmentation(forced_segmentation, ds) if forced_segmentation else None

    from romanxr.kernels.source_catalog import CatalogInputs

    to_mjysr, area = _flux_conversion(meta)
    inputs = CatalogInputs(wcs=meta["wcs"], to_mjysr=to_mjysr, pixel_area_sr=area, psf=psf, ee=ee)
    options = {k: parameters[k] for k in ("bkg_boxsize", "kernel_fwhm", "snr_threshold")}
    options |= {k: parameters[k] for k in ("npixels", "deblend", "fit_psf")}
    out = ds.copy(deep=False)
    key = _attach(out, ds, inputs, options, forced, references)
    result = finish_step(out, ds, STEP, "COMPLETE", parameters=parameters, references=references)
    result.attrs[ATTRS_KEY] = {"key": key, "suffix": suffix}
    return result


def check_arguments(
    arguments: dict[str, Any], exposure: xr.Dataset | None = None, resolver: Any = None
) -> None:
    """The pipeline's check before any work: the references this run reads can be found
    (APCORR always, EPSF when ``fit_psf`` without ``forced_segmentation``), by the rules
    the step uses (``override_<reftype>`` > the resolver's overrides > CRDS). Asks where
    they are, reads none. Without an exposure there is nothing to resolve.

    Raises
    ------
    ReferenceFileError
        A reference that cannot be resolved (the message names the override option).
    """
    if exposure is None:
        return
    reftypes = ["apcorr"]
    if arguments.get("fit_psf", True) and not arguments.get("forced_segmentation"):
        reftypes.append("epsf")
    for reftype in reftypes:
        explicit = arguments.get(f"override_{reftype}")
        resolve_reference(reftype, exposure, explicit=explicit, resolver=resolver)


def _check_parameters(
    bkg_boxsize: Any,
    kernel_fwhm: Any,
    snr_threshold: Any,
    npixels: Any,
    deblend: Any,
    suffix: Any,
    fit_psf: Any,
    forced_segmentation: Any,
) -> dict[str, Any]:
    checks = (
        ("bkg_boxsize", bkg_boxsize, int, lambda v: v >= 1, "a positive number of pixels"),
        ("kernel_fwhm", kernel_fwhm, float, lambda v: v > 0, "a positive FWHM in pixels"),
        ("snr_threshold", snr_threshold, float, lambda v: v > 0, "a positive ratio"),
        ("npixels", npixels, int, lambda v: v >= 1, "a positive number of pixels"),
    )
    out: dict[str, Any] = {}
    for name, value, kind, ok, what in checks:
        try:
            number = kind(value)
        except (TypeError, ValueError):
            number = None
        if number is None or isinstance(value, bool) or not ok(number) or number != value:
            raise ConfigError(f"source_catalog: {name}={value!r} must be {what}")
        out[name] = number
    if not isinstance(suffix, str) or not suffix:
        raise ConfigError(f"source_catalog: suffix={suffix!r} must be a non-empty string")
    out |= {"deblend": bool(deblend), "suffix": suffix, "fit_psf": bool(fit_psf)}
    out["forced_segmentation"] = str(forced_segmentation or "")
    return out


def _name(ds: xr.Dataset) -> str:
    meta = ds.attrs.get("meta") or {}
    return str(meta.get("filename") or ds.encoding.get("source") or "the image")


def _flux_conversion(meta: dict) -> tuple[float, float]:
    """(DN/s -> MJy/sr, pixel area in sr) from ``meta.photometry`` (romancal's rules)."""
    phot = meta.get("photometry") or {}
    conv = phot.get("conversion_megajanskys")
    area = phot.get("pixel_area")
    if conv is None or not np.isfinite(conv) or conv <= 0:
        conv = 1.0  # not photom-calibrated: fluxes stay in DN/s-based units
    if area is None or not np.isfinite(area) or area <= 0:
        from romanxr.kernels.source_catalog import pixel_scale_angle

        wcs = meta["wcs"]
        shape = tuple(int(v) for v in wcs.array_shape) if wcs.array_shape else (4088, 4088)
        scale, _ = pixel_scale_angle(wcs, shape)
        area = (scale / 206264.80624709636) ** 2
    return float(conv), float(area)


def _open_model(resolved: ResolvedReference, what: str) -> Any:
    from romanxr.io.asdf_setup import datamodels

    dm = datamodels()

    try:
        return dm.open(resolved.path)
    except Exception as exc:
        raise InputError(
            f"{resolved.path}: cannot read this {what} reference ({type(exc).__name__}: "
            f"{exc}); pass a valid roman_datamodels file as override_{resolved.reftype}=..."
        ) from exc


def _ee_curve(resolved: ResolvedReference, meta: dict) -> Any:
    """The encircled-energy spline of the exposure's optical element (None for N/A)."""
    if resolved.path is None:
        return None
    from romanxr.kernels.source_catalog import ee_spline

    element = str((meta.get("instrument") or {}).get("optical_element", ""))
    with _open_model(resolved, "apcorr") as model:
        table = model.data
        if element not in table:
            raise ReferenceMismatchError(
                f"{resolved.name}: apcorr reference has no entry for optical element "
                f"{element!r} (it has {sorted(table)}); use an apcorr reference for "
                f"{element} (override_apcorr=...)"
            )
        entry = table[element]
        return ee_spline(np.asarray(entry["ee_radii"]), np.asarray(entry["ee_fractions"]))


def _psf_model(resolved: ResolvedReference) -> Any:
    if resolved.path is None:
        return None
    from romanxr.kernels.source_catalog import gridded_psf

    with _open_model(resolved, "epsf") as model:
        psf = np.asarray(model.psf)
        if psf.ndim != 5 or psf.shape[1] < 2:
            raise ReferenceMismatchError(
                f"{resolved.name}: epsf reference psf has shape {psf.shape}; expected (focus, "
                "spectral type >= 2, position, y, x); use a valid epsf (override_epsf=...)"
            )
        return gridded_psf(
            psf, list(model.meta.pixel_x), list(model.meta.pixel_y), int(model.meta.oversample)
        )


def _read_segmentation(path: str, ds: xr.Dataset) -> np.ndarray:
    from romanxr.io.asdf_setup import datamodels

    dm = datamodels()

    try:
        with dm.open(path) as model:
            labels = np.array(model.data)
    except Exception as exc:
        raise InputError(
            f"{path}: cannot read forced_segmentation ({type(exc).__name__}: {exc}); give "
            "a *_segm.asdf written by source_catalog"
        ) from exc
    shape = (ds.sizes["y"], ds.sizes["x"])
    if labels.shape != shape:
        raise InputError(
            f"{path}: forced_segmentation has shape {labels.shape} but the image is {shape}; "
            "use a segmentation map of this image's pixels"
        )
    return labels


# ------------------------------------------------------------------------------------------
# lazy measurement shared by the segmentation map and the Table


def _token(ds: xr.Dataset, options: dict, forced: np.ndarray | None, refs: list) -> str:
    from dask.base import tokenize

    parts = []
    for name in ("data", "err", "dq"):
        var = ds[name].variable
        data = var._data
        parts.append(data.name if hasattr(data, "dask") else tokenize(np.asarray(var.values)))
    names = [r.path for r in refs]
    digest = tokenize(parts, sorted(options.items()), names, None if forced is None else forced)
    return f"{STEP}-{digest}"


def _attach(
    out: xr.Dataset,
    ds: xr.Dataset,
    inputs: Any,
    options: dict,
    forced: np.ndarray | None,
    refs: list,
) -> str:
    """Add ``segmentation``/``detection_image`` to ``out`` (lazy for dask); return the key."""
    key = _token(ds, options, forced, refs)
    dims = ds["data"].dims
    args = (ds["data"].data, ds["err"].data, ds["dq"].data)
    if any(hasattr(a, "dask") for a in args):
        import dask
        import dask.array as da

        # whole arrays as delayed objects over the arrays' own task keys (not an optimised,
        # renamed copy of the chain, which dask.delayed(array) would embed): computing the
        # image and the catalog together then runs the calibration chain once
        whole = [
            a.rechunk(a.shape).to_delayed(optimize_graph=False).ravel()[0]
            if hasattr(a, "dask")
            else a
            for a in args
        ]
        task = dask.delayed(_run, pure=True)(key, *whole, inputs, options, forced)
        shape = ds["data"].shape
        outputs = (
            ("segmentation", "segmentation", np.uint32),
            ("detection_image", "detection", np.float32),
        )
        for name, item_key, dtype in outputs:
            item = task[item_key]
            array = da.from_delayed(item, shape=shape, dtype=dtype)
            out[name] = xr.Variable(dims, array.rechunk(ds["data"].data.chunks))
        with _LOCK:
            _PENDING[key] = task
    else:
        result = _run(key, *args, inputs, options, forced)
        out["segmentation"] = xr.Variable(dims, result["segmentation"])
        out["detection_image"] = xr.Variable(dims, result["detection"])
    out["segmentation"].attrs["description"] = "source labels (0: background)"
    return key


def _run(key: str, data, err, dq, inputs: Any, options: dict, forced) -> dict[str, Any]:
    """Measure once per key; later calls (the other output, the Table) reuse the result."""
    from romanxr.kernels.source_catalog import measure
    from romanxr.schedule import fork_workers, forked_map

    with _LOCK:
        if key in _RESULTS:
            _RESULTS.move_to_end(key)
            return _RESULTS[key]
    result = measure(
        np.asarray(data),
        np.asarray(err),
        np.asarray(dq),
        inputs,
        forced_segmentation=forced,
        workers=fork_workers(),  # decided now: the scheduler that runs this task counts
        parallel_map=forked_map,
        **options,
    )
    result["table"].meta["reason"] = result.pop("reason", "")
    with _LOCK:
        _RESULTS[key] = result
        while len(_RESULTS) > _KEEP:
            _RESULTS.popitem(last=False)
        _PENDING.pop(key, None)
    return result


def catalog_table(ds: xr.Dataset) -> Any:
    """The source catalog of a Dataset made by :func:`source_catalog` (an astropy Table).

    Measures the image now when that has not happened yet (once: the segmentation map of the
    same Dataset then comes from the same run). Columns carry units (``x_centroid`` in pix,
    fluxes in nJy, sizes in arcsec); ``table.to_pandas()`` gives a DataFrame.

    Raises
    ------
    InputError
        The Dataset has no catalog (source_catalog did not run, or it was read back from a
        file: read the ``_cat.parquet`` with :func:`romanxr.io.catalog_io.read_catalog`).
    """
    key = _key_of(ds)
    with _LOCK:
        table = _known_table(key)
        task = _PENDING.get(key) if key else None
    if table is not None:
        return table
    if task is not None:
        return _remember_table(key, task.compute()["table"])
    if key and "segmentation" in ds and ds["segmentation"].chunks is None:
        raise InputError(f"{_name(ds)}: the catalog of this Dataset is no longer in memory")
    raise InputError(
        f"{_name(ds)}: this Dataset has no source catalog in memory; run "
        "ds.roman.source_catalog() first, or read a written catalog with "
        "romanxr.io.catalog_io.read_catalog('<name>_cat.parquet')"
    )


def _key_of(ds: xr.Dataset) -> str | None:
    info = ds.attrs.get(ATTRS_KEY) or {}
    return info.get("key") if isinstance(info, dict) else None


def _known_table(key: str | None) -> Any:
    """The Table of ``key`` if it is in memory (call with the lock held)."""
    if not key:
        return None
    if key in _TABLES:
        _TABLES.move_to_end(key)
        return _TABLES[key]
    done = _RESULTS.get(key)
    return None if done is None else _remember_table(key, done["table"])


def _remember_table(key: str, table: Any) -> Any:
    with _LOCK:
        _TABLES[key] = table
        _TABLES.move_to_end(key)
        while len(_TABLES) > _KEEP_TABLES:
            _TABLES.popitem(last=False)
    return table


def measure_catalogs(datasets: Sequence[xr.Dataset]) -> tuple[list[xr.Dataset], list[Any]]:
    """Measure the catalogs of several images in one computation; keep their pixels.

    For images whose catalog is not measured yet (dask input), the image's variables and
    its catalog are computed together, once, with :func:`dask.persist`: the returned
    Datasets hold the computed pixels (still dask-backed, now in memory), so writing them
    afterwards does not compute the calibration chain a second time. Images whose catalog
    is known come back unchanged.

    Parameters
    ----------
    datasets : sequence of xarray.Dataset
        Images made by :func:`source_catalog`.

    Returns
    -------
    (list of Dataset, list of Table)
        The images (persisted where they were measured now) and their catalogs, in order.

    Raises
    ------
    InputError
        An image without a source catalog (as :func:`catalog_table`).
    """
    import dask

    images, tables = list(datasets), [None] * len(datasets)
    todo = []
    for i, ds in enumerate(images):
        key = _key_of(ds)
        with _LOCK:
            table, task = _known_table(key), _PENDING.get(key) if key else None
        if table is not None:
            tables[i] = table
        elif task is not None:
            todo.append((i, key, task))
        else:
            tables[i] = catalog_table(ds)  # raises the error that says what to do
    if todo:
        # one graph, not optimised per collection type (that would compute the chain once
        # for the image and again for the catalog)
        persisted = dask.persist(
            *[images[i] for i, _, _ in todo], *[t for _, _, t in todo], optimize_graph=False
        )
        n = len(todo)
        for (i, key, _), image, task in zip(todo, persisted[:n], persisted[n:], strict=True):
            images[i] = image
            tables[i] = _remember_table(key, task.compute()["table"])
    return images, tables


def replace_catalog(ds: xr.Dataset, table: Any) -> None:
    """Make ``table`` the catalog of ``ds`` (a Dataset just made by a step: its attrs are
    its own), e.g. with sky columns from a corrected WCS. The segmentation map stays."""
    from dask.base import tokenize

    info = dict(ds.attrs.get(ATTRS_KEY) or {})
    key = f"{STEP}-{tokenize(info.get('key'), 'replaced', id(table))}"
    _remember_table(key, table)
    info["key"] = key
    ds.attrs[ATTRS_KEY] = info


def to_catalog_files(
    ds: xr.Dataset,
    cal_path: str | os.PathLike,
    *,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write the catalog and segmentation map of ``ds`` beside ``cal_path`` with romancal's
    names: ``<name>_cat.parquet`` (``cat``: the step's ``suffix``) and ``<name>_segm.asdf``
    (see :mod:`romanxr.io.catalog_io`).

    Returns
    -------
    (Path, Path)
        The catalog and the segmentation-map files.
    """
    from romanxr.io.catalog_io import catalog_paths, write_catalog, write_segmentation

    suffix = (ds.attrs.get(ATTRS_KEY) or {}).get("suffix", "cat")
    cat_path, segm_path = catalog_paths(cal_path, suffix)
    table = catalog_table(ds)
    write_catalog(table, ds, cat_path, overwrite=overwrite)
    write_segmentation(ds, segm_path, overwrite=overwrite)
    return cat_path, segm_path
