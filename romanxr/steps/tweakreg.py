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

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from romanxr.dataset import get_meta, is_imaging, validate_exposure
from romanxr.errors import ConfigError, InputError
from romanxr.steps._common import finish_step

__all__ = ["check_abs_refcat", "check_arguments", "read_reference_catalog", "tweakreg"]

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
    depends on the pixels), so unlike the other steps it computes the image; the pixels
    themselves are passed on unchanged (and lazy where they were).

    Differences from romancal 1.1.0: ``abs_refcat`` must be a local file (``.ecsv``,
    ``.parquet`` or any table astropy reads, with RA/Dec columns in degrees, any case): the
    catalogue-service names (the default ``GAIADR3_S3``) raise :class:`ConfigError` at once,
    without a network call; download the catalogue once and pass the file. One exposure is
    aligned at a time, so the relative-alignment options (``searchrad``, ``minobj``...) are
    recorded but not used, and ``catalog_format``/``catalog_path``/``save_abs_catalog``/
    ``vo_timeout`` have nothing to act on. The catalog's sky columns are always recomputed
    with the fitted WCS (as romancal's exposure pipeline does after tweakreg).

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
    catalog_format, catalog_path, enforce_user_order, expand_refcat, minobj, searchrad, \
use2dhist, separation, tolerance, fitgeometry, nclip, sigma, save_abs_catalog, \
update_source_catalog_coordinates, vo_timeout
        romancal's options for relative alignment of several exposures and for the
        catalogue service; checked and recorded.

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
    validate_exposure(ds, level="image")
    parameters = {k: v for k, v in locals().items() if k != "ds"}
    _check_options(parameters)
    if not is_imaging(ds):
        return finish_step(ds, ds, STEP, "SKIPPED", parameters=parameters)
    refcat_path = check_abs_refcat(abs_refcat)
    meta = get_meta(ds)
    wcs = meta.get("wcs")
    if wcs is None:
        raise InputError(f"{_name(ds)}: meta.wcs is missing; run assign_wcs first")
    from romanxr.steps.source_catalog import ATTRS_KEY, catalog_table

    if ATTRS_KEY not in ds.attrs:
        raise InputError(
            f"{_name(ds)}: tweakreg needs the image's source catalog; run "
            "ds.roman.source_catalog() first (pipeline: --steps.source_catalog.skip=false)"
        )
    wcsinfo = meta.get("wcsinfo") or {}
    missing = [k for k in ("roll_ref", "v2_ref", "v3_ref") if wcsinfo.get(k) is None]
    if missing:
        raise InputError(
            f"{_name(ds)}: meta.wcsinfo lacks {missing}; the fit works in the V2/V3 frame "
            "and needs them (a cal.asdf from the pipeline has them)"
        )
    reference = read_reference_catalog(refcat_path)
    table = catalog_table(ds)
    corrector, fit = _fit(table, wcs, wcsinfo, reference, parameters)
    status = "COMPLETE" if "SUCCESS" in str(fit.get("status", "")) else "FAILED"
    out = ds.copy(deep=False)
    result = finish_step(out, ds, STEP, status, parameters=parameters)
    new_meta = result.attrs["meta"]
    new_meta["wcs_fit_results"] = fit
    if status == "COMPLETE":
        from romanxr.steps.source_catalog import replace_catalog
        from romanxr.wcs import s_region

        new_wcs = corrector.wcs
        new_wcs.name = f"FIT-LVL2-{Path(refcat_path).name}"
        new_meta["wcs"] = new_wcs
        region = s_region(new_wcs)
        if region is not None:
            new_meta.setdefault("wcsinfo", {})["s_region"] = region
        replace_catalog(result, _resky(table, new_wcs))
    else:
        log.warning("tweakreg: %s", fit.get("reason", "fit failed"))
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
    if p["abs_separation"] <= math.sqrt(2) * p["abs_tolerance"]:
        raise ConfigError(
            f"tweakreg: abs_separation={p['abs_separation']} must exceed sqrt(2) * "
            f"abs_tolerance={p['abs_tolerance']} (else sources are confused); raise "
            "abs_separation or lower abs_tolerance"
        )


def check_arguments(arguments: dict[str, Any]) -> None:
    """The pipeline's check before any work: a usable ``abs_refcat`` (see
    :func:`check_abs_refcat`)."""
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


def _image_catalog(table: Any, wcs: Any) -> Any:
    """The sources tweakreg matches: ``x``/``y`` (PSF fit, else centroid), good ones only."""
    from astropy.table import Table

    xcol, ycol = ("x_psf", "y_psf") if "x_psf" in table.colnames else ("x_centroid", "y_centroid")
    x = np.asarray(getattr(table[xcol], "value", table[xcol]), dtype=np.float64)
    y = np.asarray(getattr(table[ycol], "value", table[ycol]), dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if "warning_flags" in table.colnames:
        keep &= (np.asarray(table["warning_flags"]) & DO_NOT_USE) == 0
    if wcs.bounding_box is not None:
        (x0, x1), (y0, y1) = wcs.bounding_box
        keep &= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    out = Table({"x": x[keep], "y": y[keep]})
    out.meta["name"] = "image"
    return out


def _fit(table: Any, wcs: Any, wcsinfo: dict, reference: Any, p: dict) -> tuple[Any, dict]:
    """Run tweakwcs; return the corrector and the JSON-able fit record."""
    from tweakwcs import RomanWCSCorrector, XYXYMatch, align_wcs

    catalog = _image_catalog(table, wcs)
    try:
        corrector = RomanWCSCorrector(
            wcs=wcs,
            wcsinfo={k: float(wcsinfo[k]) for k in ("roll_ref", "v2_ref", "v3_ref")},
            meta={"catalog": catalog, "name": "image", "group_id": _ABSOLUTE_GROUP},
        )
    except ValueError as exc:
        raise InputError(
            f"meta.wcs cannot be corrected ({exc}); tweakreg needs a Roman WCS with the frames "
            "detector -> v2v3 -> world, as assign_wcs makes it"
        ) from exc
    if len(reference) < p["abs_minobj"] or len(catalog) < p["abs_minobj"]:
        reason = (
            f"too few sources to fit ({len(catalog)} in the image, {len(reference)} in the "
            f"reference catalogue; abs_minobj={p['abs_minobj']})"
        )
        return corrector, _record({}, reason)
    match = XYXYMatch(
        searchrad=p["abs_searchrad"],
        separation=p["abs_separation"],
        use2dhist=p["abs_use2dhist"],
        tolerance=p["abs_tolerance"],
        xoffset=0.0,
        yoffset=0.0,
    )
    try:
        align_wcs(
            [corrector],
            refcat=reference,
            enforce_user_order=True,
            expand_refcat=False,
            minobj=p["abs_minobj"],
            match=match,
            fitgeom=p["abs_fitgeometry"],
            nclip=p["abs_nclip"],
            sigma=(p["abs_sigma"], "rmse"),
            clip_accum=True,
        )
    except (ValueError, RuntimeError) as exc:
        return corrector, _record({}, f"tweakwcs could not fit: {exc}")
    info = corrector.meta.get("fit_info") or {}
    reason = "" if "SUCCESS" in str(info.get("status", "")) else "too few matches"
    return corrector, _record(info, reason)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _record(info: dict, reason: str) -> dict:
    """``wcs_fit_results``: tweakwcs' fit summary without the per-source arrays."""
    drop = {"eff_minobj", "matched_ref_idx", "matched_input_idx", "fit_RA", "fit_DEC", "fitmask"}
    out = {k: _plain(v) for k, v in info.items() if k not in drop}
    if reason or not out.get("status"):
        out["status"] = "FAILED"
        out["reason"] = reason or "fit failed"
    out.setdefault("nmatches", 0)
    out["n_detector"] = 1
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
