"""tweakreg: align an image's WCS to an absolute reference catalogue (tweakwcs).

The image's source catalog (from :func:`romanxr.steps.source_catalog.source_catalog`) is
matched to the reference catalogue's RA/Dec and the correction is fitted in the telescope's
V2/V3 frame by tweakwcs (``RomanWCSCorrector``, ``XYXYMatch``, ``align_wcs``: what romancal
1.1.0's TweakRegStep uses), with romancal's parameters and defaults. On success
``meta.wcs`` is replaced by the corrected gwcs (named ``FIT-LVL2-<catalogue>``),
``meta.wcsinfo.s_region`` is recomputed, the catalog's sky columns are recomputed with the
new WCS and ``meta.wcs_fit_results`` records the fit; on failure (too few sources or
matches) the WCS is kept, cal_step ``tweakreg`` is FAILED and ``wcs_fit_results`` says why.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from romanxr.dataset import get_meta, is_imaging, validate_exposure
from romanxr.errors import ConfigError, InputError
from romanxr.steps._common import finish_step
from romanxr.steps.source_catalog import measure_catalogs

__all__ = [
    "check_abs_refcat",
    "check_arguments",
    "check_image",
    "read_reference_catalog",
    "tweakreg",
    "tweakreg_many",
]

log = logging.getLogger("romanxr")

STEP = "tweakreg"
#: romancal's default: Gaia DR3 through the STScI catalogue service (needs the network)
DEFAULT_ABS_REFCAT = "GAIADR3_S3"
#: catalogue names the service knows (none of them can be used offline)
SERVICE_CATALOGS = ("GAIADR3_S3", "GAIADR3", "GAIADR2", "GAIADR1", "GAIAREFCAT")
_GEOMETRIES = ("shift", "rshift", "rscale", "general")
#: group id tweakwcs fits all exposures under when aligning to an absolute catalogue
_ABSOLUTE_GROUP = 987654
DO_NOT_USE = 1
#: what tweakreg_many takes and gives back
Images = list | tuple | Mapping


def tweakreg(
    ds: xr.Dataset,
    *,
    abs_refcat: str = DEFAULT_ABS_REFCAT,
    catalog_format: str = "ascii.ecsv",
    catalog_path: str = "",
    enforce_user_order: bool = False,
    expand_refcat: bool = False,
    minobj: int = 10,
    searchrad: float = 2.0,
    use2dhist: bool = True,
    separation: float = 1.0,
    tolerance: float = 0.7,
    fitgeometry: str = "general",
    nclip: int = 3,
    sigma: float = 3.0,
    save_abs_catalog: bool = False,
    abs_minobj: int = 10,
    abs_searchrad: float = 6.0,
    abs_use2dhist: bool = True,
    abs_separation: float = 1.0,
    abs_tolerance: float = 0.7,
    abs_fitgeometry: str = "general",
    abs_nclip: int = 3,
    abs_sigma: float = 3.0,
    update_source_catalog_coordinates: bool = False,
    vo_timeout: float = 1200.0,
) -> xr.Dataset:
    """Fit the image's WCS to an absolute astrometric reference catalogue.

    The sources are the image's catalog (PSF positions ``x_psf``/``y_psf`` when fitted, else
    the centroids), without those whose centre pixel is DO_NOT_USE and those outside the
    WCS bounding box. They are matched to the reference catalogue within ``abs_searchrad``
    arcsec (with a 2-D histogram of offsets first when ``abs_use2dhist``), then the
    ``abs_fitgeometry`` correction is fitted with ``abs_nclip`` rounds of ``abs_sigma``
    clipping.

    This call measures the source catalog if that has not happened yet (the correction
    depends on the pixels), so unlike the other steps it computes the image: the image and
    its catalog in one computation, whose pixels the result keeps (dask-backed, in memory),
    so that writing it does not run the calibration chain again. Several images (the
    detectors of an exposure, several exposures): :func:`tweakreg_many`, which aligns them
    to each other first, as romancal does; one image has nothing to align to but the
    reference catalogue.

    Differences from romancal 1.1.0: ``abs_refcat`` must be a local file (``.ecsv``,
    ``.parquet`` or any table astropy reads, with RA/Dec columns in degrees, any case): the
    catalogue-service names (the default ``GAIADR3_S3``) raise :class:`ConfigError` at once,
    without a network call; download the catalogue once and pass the file.
    ``catalog_format``/``catalog_path``/``save_abs_catalog``/``vo_timeout`` have nothing to
    act on. ``separation`` not above ``sqrt(2) * tolerance`` is a ConfigError (romancal
    warns and skips the relative alignment). The catalog's sky columns are always
    recomputed with the fitted WCS (as romancal's exposure pipeline does after tweakreg).

    Parameters
    ----------
    ds : xarray.Dataset
        Level-2 image after ``source_catalog``.
    abs_refcat : str
        Path of the reference catalogue.
    abs_minobj : int
        Minimum number of reference sources and of matches for a fit.
    abs_searchrad, abs_separation, abs_tolerance : float
        Search radius, minimum source separation and matching tolerance (arcsec);
        ``abs_separation`` must exceed ``sqrt(2) * abs_tolerance``.
    abs_use2dhist : bool
        Find the initial offset with a 2-D histogram.
    abs_fitgeometry : {"shift", "rshift", "rscale", "general"}
        The fitted correction.
    abs_nclip : int
        Clipping iterations.
    abs_sigma : float
        Clipping limit (in units of the fit RMS).
    minobj, searchrad, use2dhist, separation, tolerance, fitgeometry, nclip, sigma, \
enforce_user_order, expand_refcat
        The same for the relative alignment of several exposures (:func:`tweakreg_many`):
        used when the images belong to more than one exposure.
    catalog_format, catalog_path, save_abs_catalog, update_source_catalog_coordinates, \
vo_timeout
        romancal's options for catalogue files and the catalogue service; checked and
        recorded.

    Returns
    -------
    xarray.Dataset
        New Dataset (input untouched): cal_step ``tweakreg`` COMPLETE (new ``meta.wcs``) or
        FAILED (WCS kept), SKIPPED for a non-imaging exposure; ``meta.wcs_fit_results``.

    Raises
    ------
    ConfigError
        ``abs_refcat`` is a catalogue-service name or no such file; bad option values.
    InputError
        The image has no source catalog (run source_catalog first) or no WCS, or the
        reference catalogue has no RA/Dec.
    """
    parameters = {k: v for k, v in locals().items() if k != "ds"}
    return tweakreg_many([ds], **parameters)[0]


def tweakreg_many(images: Images, **params: Any) -> Images:
    """Align several images to each other, then to an absolute reference catalogue.

    As romancal 1.1.0's TweakRegStep on a ModelLibrary: the images are grouped by exposure
    (``meta.group_id`` when set, else the exposure a tree node belongs to, ``attrs
    ["exposure"]``, else ``meta.observation``'s observation id and exposure number); the
    detectors of one exposure move together, as one rigid body. With more than one group,
    the groups are first aligned to each other (relative alignment: ``searchrad``,
    ``separation``, ``tolerance``, ``use2dhist``, ``minobj``, ``fitgeometry``, ``nclip``,
    ``sigma``, ``enforce_user_order``; the reference catalogue is expanded with each aligned
    group's sources, which romancal does whenever ``abs_refcat`` is not its service
    default), then all of them together to ``abs_refcat`` with the ``abs_*`` options. A
    failed relative alignment is a warning (the absolute one still runs); a failed absolute
    alignment makes every image FAILED (WCS kept).

    The catalogs of all images are measured in one computation (:func:`dask.persist` of the
    images with their catalogs, see
    :func:`romanxr.steps.source_catalog.measure_catalogs`), so each calibration chain runs
    once; the returned images hold those computed pixels, still dask-backed.

    Parameters
    ----------
    images : list, tuple or mapping of xarray.Dataset
        Level-2 images after ``source_catalog``.
    **params
        The options of :func:`tweakreg` (``abs_refcat`` first of all).

    Returns
    -------
    list, tuple or dict of xarray.Dataset
        The same structure of new Datasets (inputs untouched), each as :func:`tweakreg`
        returns it; ``wcs_fit_results["n_detector"]`` is the number of images aligned.

    Raises
    ------
    ConfigError
        An unknown option, a bad value, or ``abs_refcat`` not a local file.
    InputError
        ``images`` is not a list or mapping of Datasets; an image has no source catalog,
        no WCS or no V2/V3 reference (the message names the image).
    """
    names, datasets, rebuild = _items(images)
    p = _parameters(params)
    _check_options(p)
    for ds in datasets:
        validate_exposure(ds, level="image")
    results = [finish_step(ds, ds, STEP, "SKIPPED", parameters=p) for ds in datasets]
    imaging = [i for i, ds in enumerate(datasets) if is_imaging(ds)]
    if not imaging:
        return rebuild(results)
    refcat_path = check_abs_refcat(p["abs_refcat"])
    for i in imaging:
        check_image(datasets[i], names[i])
    reference = read_reference_catalog(refcat_path)
    measured, tables = measure_catalogs([datasets[i] for i in imaging])
    groups = [_group_of(datasets[i], names[i]) for i in imaging]
    correctors = [
        _corrector(table, datasets[i].attrs["meta"], names[i], group)
        for i, table, group in zip(imaging, tables, groups, strict=True)
    ]
    fits = _align(correctors, reference, p)
    for i, image, table, corrector, fit in zip(
        imaging, measured, tables, correctors, fits, strict=True
    ):
        results[i] = _finish(datasets[i], image, table, corrector, fit, refcat_path, p)
    return rebuild(results)


def _items(images: Any) -> tuple[list[str], list[xr.Dataset], Any]:
    """Names, Datasets and how to give back the caller's structure."""
    if isinstance(images, Mapping):
        keys = list(images)
        values = [images[k] for k in keys]
        names = [str(k) for k in keys]

        def rebuild(results: list) -> dict:
            return dict(zip(keys, results, strict=True))

    elif isinstance(images, list | tuple):
        values = list(images)
        names = [_name(ds) if isinstance(ds, xr.Dataset) else str(i) for i, ds in enumerate(values)]

        def rebuild(results: list) -> list | tuple:
            return type(images)(results)

    else:
        raise InputError(
            f"tweakreg_many takes a list or mapping of image Datasets, not "
            f"{type(images).__name__}; use tweakreg(ds) for one image"
        )
    bad = [n for n, ds in zip(names, values, strict=True) if not isinstance(ds, xr.Dataset)]
    if bad:
        raise InputError(f"tweakreg_many: {bad} are not xarray Datasets")
    return names, values, rebuild


def _parameters(given: Mapping[str, Any]) -> dict[str, Any]:
    signature = inspect.signature(tweakreg).parameters
    defaults = {k: v.default for k, v in signature.items() if k != "ds"}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"tweakreg: unknown options {unknown}; known: {sorted(defaults)}")
    return {**defaults, **given}


def check_image(ds: xr.Dataset, name: str | None = None) -> None:
    """What tweakreg needs of an imaging exposure: a source catalog, a WCS, and the V2/V3
    reference of ``meta.wcsinfo``.

    Raises
    ------
    InputError
        Naming the image and what to run.
    """
    from romanxr.steps.source_catalog import ATTRS_KEY

    name = name or _name(ds)
    meta = get_meta(ds)
    if meta.get("wcs") is None:
        raise InputError(f"{name}: meta.wcs is missing; run assign_wcs first")
    if ATTRS_KEY not in ds.attrs:
        raise InputError(
            f"{name}: tweakreg needs the image's source catalog; run "
            "ds.roman.source_catalog() first (pipeline: --steps.source_catalog.skip=false)"
        )
    wcsinfo = meta.get("wcsinfo") or {}
    missing = [k for k in ("roll_ref", "v2_ref", "v3_ref") if wcsinfo.get(k) is None]
    if missing:
        raise InputError(
            f"{name}: meta.wcsinfo lacks {missing}; the fit works in the V2/V3 frame "
            "and needs them (a cal.asdf from the pipeline has them)"
        )


def _group_of(ds: xr.Dataset, name: str) -> str:
    """The alignment group (exposure) of an image."""
    meta = ds.attrs.get("meta") or {}
    for value in (meta.get("group_id"), ds.attrs.get("exposure")):
        if value:
            return str(value)
    obs = meta.get("observation") or {}
    if obs.get("observation_id") and obs.get("exposure") is not None:
        return f"{obs['observation_id']}_{int(obs['exposure']):04d}"
    return name


def _finish(
    ds: xr.Dataset,
    image: xr.Dataset,
    table: Any,
    corrector: Any,
    fit: tuple[dict, bool],
    refcat_path: str,
    p: dict,
) -> xr.Dataset:
    """The output image: fit record, and on success the new WCS, s_region and sky columns."""
    record, ok = fit
    result = finish_step(image, ds, STEP, "COMPLETE" if ok else "FAILED", parameters=p)
    new_meta = result.attrs["meta"]
    new_meta["wcs_fit_results"] = record
    if not ok:
        log.warning("tweakreg: %s: %s", _name(ds), record.get("reason", "fit failed"))
        return result
    from romanxr.steps.source_catalog import replace_catalog
    from romanxr.wcs import s_region

    new_wcs = corrector.wcs
    new_wcs.name = f"FIT-LVL2-{Path(refcat_path).name}"
    new_meta["wcs"] = new_wcs
    region = s_region(new_wcs)
    if region is not None:
        new_meta.setdefault("wcsinfo", {})["s_region"] = region
    replace_catalog(result, _resky(table, new_wcs))
    return result


def _name(ds: xr.Dataset) -> str:
    meta = ds.attrs.get("meta") or {}
    return str(meta.get("filename") or ds.encoding.get("source") or "the image")


def _check_options(p: dict[str, Any]) -> None:
    for name in ("fitgeometry", "abs_fitgeometry"):
        if p[name] not in _GEOMETRIES:
            raise ConfigError(f"tweakreg: {name}={p[name]!r} must be one of {_GEOMETRIES}")
    for name in ("minobj", "abs_minobj", "nclip", "abs_nclip"):
        if isinstance(p[name], bool) or not isinstance(p[name], int | np.integer) or p[name] < 0:
            raise ConfigError(f"tweakreg: {name}={p[name]!r} must be a non-negative integer")
    for name in ("searchrad", "abs_searchrad", "tolerance", "abs_tolerance", "sigma"):
        if not float(p[name]) > 0:
            raise ConfigError(f"tweakreg: {name}={p[name]!r} must be positive")
    for prefix in ("", "abs_"):
        sep, tol = p[f"{prefix}separation"], p[f"{prefix}tolerance"]
        if sep <= math.sqrt(2) * tol:
            raise ConfigError(
                f"tweakreg: {prefix}separation={sep} must exceed sqrt(2) * {prefix}tolerance="
                f"{tol} (else sources are confused); raise {prefix}separation or lower "
                f"{prefix}tolerance"
            )


def check_arguments(arguments: dict[str, Any], exposure: Any = None, resolver: Any = None) -> None:
    """The pipeline's check before any work: a usable ``abs_refcat`` (see
    :func:`check_abs_refcat`); ``exposure`` and ``resolver`` are not needed."""
    check_abs_refcat(arguments.get("abs_refcat", DEFAULT_ABS_REFCAT))


def check_abs_refcat(abs_refcat: str) -> str:
    """The path of a usable reference catalogue file (no network, no reading).

    Raises
    ------
    ConfigError
        A catalogue-service name (the default ``GAIADR3_S3``), empty, or no such file; the
        message names the option to set.
    """
    text = str(abs_refcat or "").strip()
    if not text or text.upper() in SERVICE_CATALOGS:
        raise ConfigError(
            f"tweakreg: abs_refcat={text or DEFAULT_ABS_REFCAT!r} names a catalogue that is "
            "fetched over the network, which romanxr does not do; pass a local reference "
            "catalogue with RA/Dec columns instead: abs_refcat='<file.ecsv|file.parquet>' "
            "(command line: --steps.tweakreg.abs_refcat=<file>)"
        )
    if not Path(text).is_file():
        raise ConfigError(
            f"tweakreg: abs_refcat={text!r}: no such file; give the path of a reference "
            "catalogue (.ecsv, .parquet) with RA/Dec columns (--steps.tweakreg.abs_refcat=)"
        )
    return text


def read_reference_catalog(path: str) -> Any:
    """A reference catalogue file as a Table with ``RA``/``DEC`` columns (degrees).

    Raises
    ------
    InputError
        Unreadable, or not exactly one RA and one Dec column.
    """
    from astropy.table import Table

    try:
        table = Table.read(path)
    except Exception as exc:
        raise InputError(
            f"{path}: cannot read this reference catalogue ({type(exc).__name__}: {exc}); "
            "give an ECSV or parquet table with RA/Dec columns"
        ) from exc
    columns = {c.upper(): c for c in table.colnames}
    found = [c for c in table.colnames if c.upper() in ("RA", "DEC")]
    if sorted(c.upper() for c in found) != ["DEC", "RA"]:
        raise InputError(
            f"{path}: a reference catalogue needs one RA and one Dec column (degrees); it "
            f"has {table.colnames}"
        )
    out = Table({"RA": np.asarray(table[columns["RA"]], dtype=np.float64)})
    out["DEC"] = np.asarray(table[columns["DEC"]], dtype=np.float64)
    out.meta["name"] = Path(path).name
    return out


def _image_catalog(table: Any, wcs: Any, name: str) -> Any:
    """The sources tweakreg matches: ``x``/``y`` (PSF fit, else centroid), good ones only,
    strictly inside the WCS bounding box (romancal's filters)."""
    from astropy.table import Table

    xcol, ycol = ("x_psf", "y_psf") if "x_psf" in table.colnames else ("x_centroid", "y_centroid")
    x = np.asarray(getattr(table[xcol], "value", table[xcol]), dtype=np.float64)
    y = np.asarray(getattr(table[ycol], "value", table[ycol]), dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if "warning_flags" in table.colnames:
        keep &= (np.asarray(table["warning_flags"]) & DO_NOT_USE) == 0
    if wcs.bounding_box is not None:
        (x0, x1), (y0, y1) = wcs.bounding_box
        keep &= (x > x0) & (x < x1) & (y > y0) & (y < y1)
    out = Table({"x": x[keep], "y": y[keep]})
    out.meta["name"] = name
    return out


def _corrector(table: Any, meta: dict, name: str, group: str) -> Any:
    from tweakwcs import RomanWCSCorrector

    wcs, wcsinfo = meta["wcs"], meta["wcsinfo"]
    stem = Path(name).name.split(".")[0].strip("_- ") or name
    try:
        return RomanWCSCorrector(
            wcs=wcs,
            wcsinfo={k: float(wcsinfo[k]) for k in ("roll_ref", "v2_ref", "v3_ref")},
            meta={"catalog": _image_catalog(table, wcs, stem), "name": stem, "group_id": group},
        )
    except ValueError as exc:
        raise InputError(
            f"{name}: meta.wcs cannot be corrected ({exc}); tweakreg needs a Roman WCS with "
            "the frames detector -> v2v3 -> world, as assign_wcs makes it"
        ) from exc


def _align(correctors: list, reference: Any, p: dict) -> list[tuple[dict, bool]]:
    """Relative (several groups) then absolute alignment; ``(wcs_fit_results, ok)`` each."""
    if len({c.meta["group_id"] for c in correctors}) > 1:
        _relative(correctors, p)
    reason = _absolute(correctors, reference, p)
    out = []
    for corrector in correctors:
        info = corrector.meta.get("fit_info") or {}
        ok = not reason and "SUCCESS" in str(info.get("status", ""))
        why = reason or ("" if ok else "too few matches")
        out.append((_record(info, why, len(correctors)), ok))
    return out


def _match(p: dict, prefix: str) -> Any:
    from tweakwcs import XYXYMatch

    return XYXYMatch(
        searchrad=p[f"{prefix}searchrad"],
        separation=p[f"{prefix}separation"],
        use2dhist=p[f"{prefix}use2dhist"],
        tolerance=p[f"{prefix}tolerance"],
        xoffset=0.0,
        yoffset=0.0,
    )


def _align_block(correctors: list, p: dict, prefix: str, **options: Any) -> None:
    """tweakwcs' ``align_wcs`` with the fit parameters of one block (``prefix`` ``""`` for
    the relative alignment, ``"abs_"`` for the absolute one), in place."""
    from tweakwcs import align_wcs

    align_wcs(
        correctors,
        minobj=p[f"{prefix}minobj"],
        match=_match(p, prefix),
        fitgeom=p[f"{prefix}fitgeometry"],
        nclip=p[f"{prefix}nclip"],
        sigma=(p[f"{prefix}sigma"], "rmse"),
        clip_accum=True,
        **options,
    )


def _relative(correctors: list, p: dict) -> None:
    """Align the groups to each other (in place); a failure is a warning, as in romancal."""
    try:
        _align_block(
            correctors,
            p,
            "",
            refcat=None,
            enforce_user_order=p["enforce_user_order"],
            # romancal expands the catalogue whenever abs_refcat is not the service default
            expand_refcat=p["expand_refcat"] or p["abs_refcat"] != DEFAULT_ABS_REFCAT,
        )
    except (ValueError, RuntimeError) as exc:
        log.warning("tweakreg: relative alignment not done: %s", exc)
        return
    limit = 2 * (p["searchrad"] + p["tolerance"]) / 3600.0
    for corrector in correctors:
        before = np.asarray(corrector.original_wcs.footprint(axis_type="spatial"))
        after = np.asarray(corrector.wcs.footprint(axis_type="spatial"))
        moved = np.degrees(_angle(np.radians(before), np.radians(after)))
        if not (moved < limit).all():
            log.warning(
                "tweakreg: relative alignment moved %s by more than %.1f arcsec (kept, as "
                "romancal keeps it)",
                corrector.meta["name"],
                limit * 3600,
            )


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angular distance between (ra, dec) rows (radians)."""
    (r1, d1), (r2, d2) = a.T, b.T
    h = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return 2 * np.arcsin(np.sqrt(h))


def _absolute(correctors: list, reference: Any, p: dict) -> str:
    """Align every image, as one group, to the reference catalogue; the reason it failed
    (empty on success)."""
    n_sources = sum(len(c.meta["catalog"]) for c in correctors)
    if len(reference) < p["abs_minobj"] or n_sources < p["abs_minobj"]:
        return (
            f"too few sources to fit ({n_sources} in the image(s), {len(reference)} in the "
            f"reference catalogue; abs_minobj={p['abs_minobj']})"
        )
    for corrector in correctors:
        corrector.meta["group_id"] = _ABSOLUTE_GROUP
        if "REFERENCE" in str((corrector.meta.get("fit_info") or {}).get("status", "")):
            del corrector.meta["fit_info"]
    try:
        _align_block(
            correctors, p, "abs_", refcat=reference, enforce_user_order=True, expand_refcat=False
        )
    except (ValueError, RuntimeError) as exc:
        return f"tweakwcs could not fit: {exc}"
    return ""


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _record(info: dict, reason: str, n_detector: int) -> dict:
    """``wcs_fit_results``: tweakwcs' fit summary without the per-source arrays."""
    drop = {"eff_minobj", "matched_ref_idx", "matched_input_idx", "fit_RA", "fit_DEC", "fitmask"}
    out = {k: _plain(v) for k, v in info.items() if k not in drop}
    if reason or not out.get("status"):
        out["status"] = "FAILED"
        out["reason"] = reason or "fit failed"
    out.setdefault("nmatches", 0)
    out["n_detector"] = n_detector
    return out


def _resky(table: Any, wcs: Any) -> Any:
    """A copy of the catalog whose RA/Dec columns come from ``wcs``."""
    out = table.copy()
    pairs = [
        ("x_centroid", "y_centroid", "ra_centroid", "dec_centroid"),
        ("x_centroid", "y_centroid", "ra", "dec"),
        ("x_centroid_win", "y_centroid_win", "ra_centroid_win", "dec_centroid_win"),
        ("x_psf", "y_psf", "ra_psf", "dec_psf"),
    ]
    for xc, yc, rc, dc in pairs:
        if all(c in out.colnames for c in (xc, yc, rc, dc)):
            ra, dec = wcs(np.asarray(out[xc], dtype=np.float64), np.asarray(out[yc], np.float64))
            out[rc][:] = ra
            out[dc][:] = dec
    return out
