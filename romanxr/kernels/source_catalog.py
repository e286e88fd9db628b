"""Source detection and photometry on a plain Level-2 image (numpy arrays, no xarray).

Everything numerical is photutils' (``Background2D``, ``SourceFinder``, ``SourceCatalog``,
aperture photometry, ``PSFPhotometry`` with a ``GriddedPSFModel``); this module only wires it
the way romancal 1.1.0's SourceCatalogStep does, so that the two catalogs agree:

1. mask: non-finite data or err, ``err <= 0``, or ``DO_NOT_USE`` in dq;
2. background: sigma-clipped (3 sigma, MAD std) median in ``bkg_boxsize`` boxes, 3x3 median
   filter; the masked pixels are a coverage mask; when no box is usable the whole unmasked
   image is one box;
3. detection image: the background-subtracted data convolved with a normalised 2-D Gaussian of
   FWHM ``kernel_fwhm`` (odd size ``ceil(3 * fwhm)``); sources are ``npixels`` connected pixels
   above ``snr_threshold`` times the background RMS, optionally deblended (contrast 1e-4);
4. fluxes in nJy: DN/s times ``meta.photometry.conversion_megajanskys`` (MJy/sr) times the
   pixel area (sr);
5. segment properties, circular apertures of 0.1, 0.2, 0.4, 0.8, 1.6 arcsec and a 2.4-2.8
   arcsec background annulus at the segment centroids, and a PSF fit (5x5 pixels, sources
   closer than 5 pixels fitted together) initialised at the centroids.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from romanxr.kernels.psf_photometry import psf_fit
from romanxr.kernels.quiet import ignoring

__all__ = [
    "ANNULUS_RADII_ARCSEC",
    "APERTURE_RADII_ARCSEC",
    "DO_NOT_USE",
    "CatalogInputs",
    "aperture_column",
    "detect",
    "ee_spline",
    "gridded_psf",
    "measure",
    "pixel_scale_angle",
    "source_mask",
]

#: circular aperture radii (arcsec) of the ``aperXX_flux`` columns (XX: tenths of arcsec)
APERTURE_RADII_ARCSEC = (0.1, 0.2, 0.4, 0.8, 1.6)
#: inner and outer radius (arcsec) of the local-background annulus
ANNULUS_RADII_ARCSEC = (2.4, 2.8)
DO_NOT_USE = 1


def aperture_column(radius_arcsec: float) -> str:
    """``aperXX_flux`` for a radius in arcsec (XX in tenths of an arcsec, two digits)."""
    return f"aper{round(radius_arcsec / 0.1):02d}_flux"


@dataclass(frozen=True)
class CatalogInputs:
    """What the measurement needs besides the pixels.

    Attributes
    ----------
    wcs : gwcs.WCS or None
        Array pixel (x, y) -> (RA, Dec) in degrees.
    to_mjysr : float
        DN/s -> MJy/sr (``meta.photometry.conversion_megajanskys``); 1 for data already in
        MJy/sr.
    pixel_area_sr : float
        Pixel solid angle (sr).
    psf : photutils GriddedPSFModel or None
        PSF model for the fit (None: no PSF columns).
    ee : callable or None
        Encircled-energy fraction as a function of radius (arcsec), from the APCORR reference.
    """

    wcs: Any
    to_mjysr: float
    pixel_area_sr: float
    psf: Any = None
    ee: Callable[[np.ndarray], np.ndarray] | None = None


def source_mask(data: np.ndarray, err: np.ndarray, dq: np.ndarray | None) -> np.ndarray:
    """Pixels excluded from everything: non-finite data/err, ``err <= 0``, DO_NOT_USE."""
    with np.errstate(invalid="ignore"):
        mask = ~np.isfinite(data) | ~np.isfinite(err) | ~(err > 0)
    if dq is not None:
        mask |= (dq & DO_NOT_USE) != 0
    return mask


def _background(data: np.ndarray, mask: np.ndarray, box_size: int):
    from astropy.stats import SigmaClip
    from photutils.background import Background2D, MedianBackground

    kwargs = dict(
        filter_size=(3, 3),
        coverage_mask=mask,
        sigma_clip=SigmaClip(sigma=3.0, stdfunc="mad_std"),
        bkg_estimator=MedianBackground(),
    )
    try:
        return Background2D(data, int(box_size), **kwargs)
    except ValueError:  # no usable box of that size: one box over the whole image
        return Background2D(data, data.shape, exclude_percentile=100.0, **kwargs)


def _convolve(data: np.ndarray, fwhm: float, mask: np.ndarray) -> np.ndarray:
    from astropy.convolution import convolve
    from astropy.utils.exceptions import AstropyUserWarning
    from photutils.segmentation import make_2dgaussian_kernel

    size = math.ceil(3 * fwhm)
    size += 1 - size % 2
    kernel = make_2dgaussian_kernel(fwhm, size=size)
    with ignoring(AstropyUserWarning):
        return convolve(data, kernel, mask=mask)


def detect(
    data: np.ndarray,
    mask: np.ndarray,
    *,
    bkg_boxsize: int,
    kernel_fwhm: float,
    snr_threshold: float,
    npixels: int,
    deblend: bool,
) -> tuple[np.ndarray, Any, np.ndarray]:
    """Background, detection image and segmentation of ``data`` (DN/s).

    Returns
    -------
    subtracted : ndarray
        ``data`` minus the background (``data``'s dtype).
    segm : photutils SegmentationImage or None
        None when nothing is detected.
    detection : ndarray float64
        The convolved background-subtracted image the detection ran on.
    """
    from photutils.segmentation import SourceFinder
    from photutils.utils.exceptions import NoDetectionsWarning

    bkg = _background(data, mask, bkg_boxsize)
    subtracted = (data - bkg.background).astype(data.dtype)
    detection = _convolve(subtracted, kernel_fwhm, mask)
    finder = SourceFinder(int(npixels), deblend=bool(deblend), contrast=1e-4, progress_bar=False)
    with ignoring(NoDetectionsWarning):
        segm = finder(detection, snr_threshold * bkg.background_rms, mask=mask)
    return subtracted, segm, detection


def ee_spline(radii_arcsec: np.ndarray, fractions: np.ndarray) -> Callable:
    """Smoothing-free spline through an APCORR reference's encircled-energy curve."""
    from astropy.modeling.fitting import SplineSplrepFitter
    from astropy.modeling.models import Spline1D

    return SplineSplrepFitter()(Spline1D(), np.asarray(radii_arcsec), np.asarray(fractions))


def gridded_psf(psf: np.ndarray, pixel_x, pixel_y, oversample: int, focus: int = 0, sed: int = 1):
    """A photutils GriddedPSFModel from an EPSF reference's stamps.

    ``psf`` is (focus, spectral type, position, y, x); the in-focus (``focus=0``) G2V-like
    (``sed=1``) stamps are used, as romancal does. Stamps normalised per oversampled pixel
    (their sum well below ``oversample**2``) are integrated over a native pixel first.
    """
    from astropy.convolution import Box2DKernel, convolve
    from astropy.nddata import NDData
    from photutils.psf import GriddedPSFModel

    stamps = np.array(psf[focus, sed], dtype=np.float64)
    if np.median(stamps.sum(axis=(-1, -2))) < oversample**2 / 2:
        box = Box2DKernel(width=oversample)
        stamps = np.stack([convolve(s, box) * oversample**2 for s in stamps])
    grid = [[float(x), float(y)] for x, y in zip(pixel_x, pixel_y, strict=True)]
    return GriddedPSFModel(NDData(stamps, meta={"grid_xypos": grid, "oversampling": oversample}))


def _abmag(flux_njy: np.ndarray, err_njy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AB magnitude and its error ``2.5 log10(1 + err / flux)``; NaN for flux <= 0."""
    import astropy.units as u

    with np.errstate(invalid="ignore", divide="ignore"):
        good = flux_njy > 0
        mag = (np.where(good, flux_njy, np.nan) * u.nJy).to(u.ABmag).value
        mag_err = np.where(good, 2.5 * np.log10(1.0 + err_njy / flux_njy), np.nan)
    return mag.astype(np.float32), mag_err.astype(np.float32)


def _f32(values: Any) -> np.ndarray:
    values = getattr(values, "value", values)
    return np.asarray(values, dtype=np.float32)


def pixel_scale_angle(wcs: Any, shape: tuple[int, int]) -> tuple[float, float]:
    """Pixel scale (arcsec, along North) and the angle (deg) from +x counter-clockwise to
    North, at the image centre: step 1 arcsec North on the sky and map it back to pixels."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    ny, nx = shape
    xc, yc = (nx - 1) / 2.0, (ny - 1) / 2.0
    ra0, dec0 = wcs(xc, yc)
    centre = SkyCoord(ra0, dec0, unit="deg")
    north = centre.directional_offset_by(0.0 * u.deg, 1.0 * u.arcsec)
    x0, y0 = wcs.invert(ra0, dec0)
    x1, y1 = wcs.invert(north.ra.deg, north.dec.deg)
    dx, dy = float(x1 - x0), float(y1 - y0)
    return 1.0 / math.hypot(dx, dy), math.degrees(math.atan2(dy, dx))


def measure(
    data: np.ndarray,
    err: np.ndarray,
    dq: np.ndarray | None,
    inputs: CatalogInputs,
    *,
    bkg_boxsize: int = 1000,
    kernel_fwhm: float = 2.0,
    snr_threshold: float = 3.0,
    npixels: int = 25,
    deblend: bool = False,
    fit_psf: bool = True,
    forced_segmentation: np.ndarray | None = None,
    workers: int = 1,
    parallel_map: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Detect and measure the sources of one image.

    Parameters
    ----------
    data, err : ndarray
        Image and total error (DN/s, or MJy/sr with ``inputs.to_mjysr == 1``).
    dq : ndarray or None
        Pixel DQ (``DO_NOT_USE`` pixels are masked).
    inputs : CatalogInputs
        WCS, flux conversion, PSF model and encircled-energy curve.
    forced_segmentation : ndarray, optional
        Use these segments instead of detecting (sources fully masked are dropped).
    workers, parallel_map : int, callable
        Fit the PSF in parts with ``parallel_map(func, parts, workers)`` (e.g.
        :func:`romanxr.schedule.forked_map`) while the other columns are measured; None or
        ``workers=1``: in this thread. The catalog is the same, bit for bit, either way.

    Returns
    -------
    dict
        ``segmentation`` (uint32, same shape as data), ``detection`` (float32 detection
        image), ``table`` (astropy Table, one row per segment, romancal's column names and
        units; empty when nothing is detected or every pixel is masked), ``columns`` meta.
    """
    from astropy.table import Table

    data = np.array(data, dtype=np.float32)
    err = np.asarray(err, dtype=np.float32)
    mask = source_mask(data, err, dq)
    empty = {
        "segmentation": np.zeros(data.shape, np.uint32),
        "detection": np.zeros(data.shape, np.float32),
        "table": Table(),
    }
    if mask.all():
        return {**empty, "reason": "every pixel is masked"}
    subtracted, segm, detection = detect(
        data,
        mask,
        bkg_boxsize=bkg_boxsize,
        kernel_fwhm=kernel_fwhm,
        snr_threshold=snr_threshold,
        npixels=npixels,
        deblend=deblend,
    )
    if forced_segmentation is not None:
        from photutils.segmentation import SegmentationImage

        labels = np.array(forced_segmentation, dtype=np.int64, copy=True)
        kept = np.unique(labels[~mask])
        labels[~np.isin(labels, kept)] = 0
        segm = SegmentationImage(labels) if labels.any() else None
        fit_psf = False  # as romancal: no PSF fit in forced mode
    if segm is None:
        return {**empty, "detection": detection.astype(np.float32), "reason": "no sources"}
    psf = inputs.psf if fit_psf else None
    parallel = (workers, parallel_map)
    table = _catalog(subtracted, err, dq, mask, segm, detection, inputs, kernel_fwhm, psf, parallel)
    return {
        "segmentation": np.asarray(segm.data, dtype=np.uint32),
        "detection": detection.astype(np.float32),
        "table": table,
        "reason": "",
    }


def _catalog(
    subtracted: np.ndarray,
    err: np.ndarray,
    dq: np.ndarray | None,
    mask: np.ndarray,
    segm: Any,
    detection: np.ndarray,
    inputs: CatalogInputs,
    kernel_fwhm: float,
    psf: Any,
    parallel: tuple[int, Any],
):
    import astropy.units as u
    from astropy.table import QTable, Table
    from photutils.segmentation import SourceCatalog

    # two float32 products, DN/s -> MJy/sr -> nJy, as romancal scales its arrays
    to_njy = (u.MJy / u.sr * inputs.pixel_area_sr * u.sr).to(u.nJy).value
    flux = (subtracted * np.float32(inputs.to_mjysr)).astype(subtracted.dtype) * np.float32(to_njy)
    flux_err = (err * np.float32(inputs.to_mjysr)).astype(err.dtype) * np.float32(to_njy)
    conv = detection * inputs.to_mjysr * to_njy
    scale, angle = pixel_scale_angle(inputs.wcs, subtracted.shape)
    area_arcsec2 = inputs.pixel_area_sr * (180 / math.pi * 3600) ** 2
    scale_from_area = math.sqrt(area_arcsec2)

    with ignoring(RuntimeWarning), contextlib.ExitStack() as stack:
        cat = SourceCatalog(
            flux,
            segm,
            convolved_data=conv,
            error=flux_err,
            mask=mask,
            wcs=inputs.wcs,
            aperture_mask_method="mask",
            progress_bar=False,
        )
        t = QTable()
        n = cat.n_labels
        t["label"] = np.asarray(cat.label, dtype=np.int32)
        t["flagged_spatial_id"] = np.zeros(n, dtype=np.int64)  # L2: no sky cell
        for name in ("x_centroid", "y_centroid"):
            t[name] = _f32(getattr(cat, name)) * u.pix
        for name in ("x_centroid_err", "y_centroid_err"):
            t[name] = np.zeros(n, np.float32) * u.pix
        for name in ("x_centroid_win", "y_centroid_win"):
            t[name] = _f32(getattr(cat, name)) * u.pix
        for name in ("x_centroid_win_err", "y_centroid_win_err"):
            t[name] = np.zeros(n, np.float32) * u.pix
        xy = np.transpose([np.asarray(t["x_centroid"].value), np.asarray(t["y_centroid"].value)])
        # the PSF fit runs (e.g. in forked workers) while the other columns are measured
        fit = psf_fit(flux, flux_err, mask, xy, psf, parallel[0], parallel[1])
        psf_columns = stack.enter_context(fit)
        ra, dec = _sky(inputs.wcs, xy[:, 0], xy[:, 1])
        t["ra"], t["dec"] = ra * u.deg, dec * u.deg
        t["ra_centroid"], t["dec_centroid"] = ra * u.deg, dec * u.deg
        t["ra_centroid_err"] = np.zeros(n, np.float32) * u.arcsec
        t["dec_centroid_err"] = np.zeros(n, np.float32) * u.arcsec
        raw, decw = _sky(inputs.wcs, t["x_centroid_win"].value, t["y_centroid_win"].value)
        t["ra_centroid_win"], t["dec_centroid_win"] = raw * u.deg, decw * u.deg
        t["ra_centroid_win_err"] = np.zeros(n, np.float32) * u.arcsec
        t["dec_centroid_win_err"] = np.zeros(n, np.float32) * u.arcsec
        for name in ("bbox_xmin", "bbox_xmax", "bbox_ymin", "bbox_ymax"):
            t[name] = np.asarray(getattr(cat, name), dtype=np.int32)
        t["segment_area"] = _f32(cat.area) * area_arcsec2 * u.arcsec**2
        t["semimajor"] = _f32(cat.semimajor_axis) * scale_from_area * u.arcsec
        t["semiminor"] = _f32(cat.semiminor_axis) * scale_from_area * u.arcsec
        t["fwhm"] = _f32(cat.fwhm) * scale_from_area * u.arcsec
        t["ellipticity"] = _f32(cat.ellipticity)
        orientation = _f32(cat.orientation)
        t["orientation_pix"] = orientation * u.deg
        t["orientation_sky"] = ((180.0 - angle + orientation) % 360.0).astype(np.float32) * u.deg
        for pname, name in (("ellipse_cxx", "cxx"), ("ellipse_cxy", "cxy"), ("ellipse_cyy", "cyy")):
            t[name] = _f32(getattr(cat, pname)) / area_arcsec2 / u.arcsec**2
        t["kron_radius"] = _f32(cat.kron_radius) * scale_from_area * u.arcsec
        nn_label, nn_dist = _nearest(t["label"], xy)
        t["nn_label"] = nn_label
        t["nn_distance"] = nn_dist * scale * u.arcsec
        sharp, round1 = daofind_shape(flux, _finite_xy(xy), kernel_fwhm)
        t["sharpness"], t["roundness1"] = sharp, round1
        apertures = _apertures(flux, flux_err, xy, scale)
        if inputs.ee is not None:
            ee = {r: float(inputs.ee(r)) for r in APERTURE_RADII_ARCSEC}
            ratio = ee[0.4] / ee[0.2]
            t["is_extended"] = np.asarray(
                apertures["aper04_flux"] > apertures["aper02_flux"] * 1.2 * ratio
            )
        else:
            t["is_extended"] = np.zeros(n, dtype=bool)
        t["fluxfrac_radius_50"] = _f32(cat.flux_radius(0.5)) * scale_from_area * u.arcsec
        for name, values in apertures.items():
            unit = u.nJy / u.arcsec**2 if name.startswith("aper_bkg") else u.nJy
            t[name] = values * unit
        t["segment_flux"] = _f32(cat.segment_flux) * u.nJy
        t["segment_flux_err"] = _f32(cat.segment_flux_err) * u.nJy
        t["kron_flux"] = _f32(cat.kron_flux) * u.nJy
        t["kron_flux_err"] = _f32(cat.kron_flux_err) * u.nJy
        mag, mag_err = _abmag(_f32(cat.kron_flux), _f32(cat.kron_flux_err))
        t["kron_abmag"], t["kron_abmag_err"] = mag * u.ABmag, mag_err * u.ABmag
        t["warning_flags"] = _warning_flags(xy, dq)
        t["image_flags"] = np.zeros(n, dtype=np.int32)
        t["dust_ebv"] = np.full(n, np.nan, dtype=np.float32)  # no dust map offline
        _add_psf_columns(t, psf_columns(), inputs.wcs)
    out = Table(t)
    out.meta["aperture_radii"] = {
        "circle_arcsec": np.array(APERTURE_RADII_ARCSEC),
        "annulus_arcsec": np.array(ANNULUS_RADII_ARCSEC),
        "circle_pix": np.array(APERTURE_RADII_ARCSEC) / scale,
        "annulus_pix": np.array(ANNULUS_RADII_ARCSEC) / scale,
    }
    if inputs.ee is not None:
        out.meta["ee_fractions"] = np.array(
            [float(inputs.ee(r)) for r in APERTURE_RADII_ARCSEC], dtype=np.float32
        )
    return out


def _add_psf_columns(t: Any, psf_cols: dict[str, np.ndarray] | None, wcs: Any) -> None:
    """Insert the PSF-fit columns into ``t`` where romancal's catalog has them."""
    import astropy.units as u

    if psf_cols is None:
        return
    n = len(t)
    rap, decp = _sky(wcs, psf_cols["x_psf"], psf_cols["y_psf"])
    zeros = np.zeros(n, np.float32) * u.arcsec
    after = {
        "y_centroid_win_err": [
            (k, psf_cols[k] * u.pix) for k in ("x_psf", "x_psf_err", "y_psf", "y_psf_err")
        ],
        "dec_centroid_win_err": [
            ("ra_psf", rap * u.deg),
            ("dec_psf", decp * u.deg),
            ("ra_psf_err", zeros),
            ("dec_psf_err", zeros.copy()),
        ],
        aperture_column(APERTURE_RADII_ARCSEC[-1]) + "_err": [
            (k, psf_cols[k] * u.nJy) for k in ("psf_flux", "psf_flux_err")
        ],
        "image_flags": [(k, psf_cols[k]) for k in ("psf_flags", "psf_gof")],
    }
    for anchor, columns in after.items():
        index = t.colnames.index(anchor) + 1
        names = [name for name, _ in columns]
        t.add_columns([value for _, value in columns], indexes=[index] * len(columns), names=names)


def _sky(wcs: Any, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    if wcs is None:
        nan = np.full(x.shape, np.nan)
        return nan, nan.copy()
    ra, dec = wcs(x, np.asarray(y, dtype=np.float64))
    return np.asarray(ra, dtype=np.float64), np.asarray(dec, dtype=np.float64)


def _finite_xy(xy: np.ndarray) -> np.ndarray:
    out = np.array(xy, dtype=np.float64)
    out[~np.isfinite(out)] = -1000.0  # off the image: NaN fluxes
    return out


def _apertures(
    flux: np.ndarray, flux_err: np.ndarray, xy: np.ndarray, scale: float
) -> dict[str, np.ndarray]:
    from astropy.stats import SigmaClip
    from photutils.aperture import CircularAnnulus, CircularAperture, aperture_photometry

    xy = _finite_xy(xy)
    out: dict[str, np.ndarray] = {}
    annulus = CircularAnnulus(xy, ANNULUS_RADII_ARCSEC[0] / scale, ANNULUS_RADII_ARCSEC[1] / scale)
    clip = SigmaClip(sigma=3.0)
    medians, errors = [], []
    with ignoring(Warning):
        for m in annulus.to_mask(method="center"):
            values = m.get_values(flux)
            # non-finite values left out first, as SigmaClip would, but without its warning:
            # a warnings filter is process-global, and this runs in dask's threads
            values = clip(values[np.isfinite(values)], masked=False)
            medians.append(np.median(values) if values.size else np.nan)
            std = np.std(values) if values.size else np.nan
            errors.append(np.sqrt(np.pi / (2.0 * values.size)) * std if values.size else np.nan)
    area = scale**2
    out["aper_bkg_flux"] = (np.asarray(medians) / area).astype(np.float32)
    out["aper_bkg_flux_err"] = (np.asarray(errors) / area).astype(np.float32)
    apertures = [CircularAperture(xy, r / scale) for r in APERTURE_RADII_ARCSEC]
    phot = aperture_photometry(flux, apertures, error=flux_err)
    for i, radius in enumerate(APERTURE_RADII_ARCSEC):
        name = aperture_column(radius)
        out[name] = np.asarray(phot[f"aperture_sum_{i}"], dtype=np.float32)
        out[f"{name}_err"] = np.asarray(phot[f"aperture_sum_err_{i}"], dtype=np.float32)
    return out


def _nearest(labels: Any, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial import KDTree

    labels = np.asarray(labels, dtype=np.int32)
    n = len(labels)
    if n < 2:
        return np.full(n, -1, np.int32), np.full(n, np.nan, np.float32)
    dist, idx = KDTree(_finite_xy(xy)).query(_finite_xy(xy), k=2)
    return labels[idx[:, 1]], dist[:, 1].astype(np.float32)


def _warning_flags(xy: np.ndarray, dq: np.ndarray | None) -> np.ndarray:
    flags = np.zeros(len(xy), dtype=np.int32)
    finite = np.isfinite(xy).all(axis=1)
    flags[~finite] = DO_NOT_USE
    if dq is not None and finite.any():
        ij = np.round(xy[finite]).astype(int)
        ij[:, 0] = np.clip(ij[:, 0], 0, dq.shape[1] - 1)
        ij[:, 1] = np.clip(ij[:, 1], 0, dq.shape[0] - 1)
        flags[finite] = dq[ij[:, 1], ij[:, 0]] & DO_NOT_USE
    return flags


def daofind_shape(
    data: np.ndarray, xy: np.ndarray, kernel_fwhm: float
) -> tuple[np.ndarray, np.ndarray]:
    """DAOFIND's ``sharpness`` and ``roundness1`` (Stetson 1987) at the positions ``xy``.

    The kernel is a circular Gaussian of FWHM ``kernel_fwhm`` inside a radius of
    ``max(2, 1.5 sigma)``, made zero-sum (the "lowered" kernel). sharpness is the central
    pixel's excess over the mean of the other kernel pixels divided by the convolved peak;
    roundness1 is twice the difference of the diagonal and off-diagonal quadrant sums of the
    convolved cut-out over the sum of their absolute values.
    """
    from astropy.convolution import Gaussian2DKernel
    from astropy.nddata.utils import NoOverlapError, extract_array
    from astropy.stats import gaussian_fwhm_to_sigma
    from scipy import ndimage

    sigma = kernel_fwhm * gaussian_fwhm_to_sigma
    radius = max(2.0, 1.5 * sigma)
    size = 2 * int(radius) + 1
    c = (size - 1) // 2
    yy, xx = np.mgrid[0:size, 0:size]
    inside = (np.hypot(xx - c, yy - c) <= radius).astype(float)
    gauss = Gaussian2DKernel(sigma, x_size=size, y_size=size).array * inside
    gauss /= gauss.max()
    npix = inside.sum()
    lowered = (gauss - gauss.sum() / npix) / (np.sum(gauss**2) - gauss.sum() ** 2 / npix)
    lowered *= inside
    convolved = ndimage.convolve(data, lowered, mode="constant", cval=0.0)

    def cutouts(image: np.ndarray) -> np.ndarray:
        out = np.zeros((len(xy), size, size))
        for i, (x, y) in enumerate(xy):
            try:
                out[i] = extract_array(image, (size, size), (y, x), fill_value=0.0)
            except NoOverlapError:
                pass
        return out

    raw, conv = cutouts(data), cutouts(convolved)
    with np.errstate(invalid="ignore", divide="ignore"):
        peak = raw[:, c, c]
        mean = ((raw * inside).sum(axis=(1, 2)) - peak) / (npix - 1)
        sharpness = (peak - mean) / conv[:, c, c]
        conv[:, c, c] = 0.0
        q1 = conv[:, : c + 1, c + 1 :].sum(axis=(1, 2))
        q2 = conv[:, :c, : c + 1].sum(axis=(1, 2))
        q3 = conv[:, c:, :c].sum(axis=(1, 2))
        q4 = conv[:, c + 1 :, c:].sum(axis=(1, 2))
        total = np.abs(conv).sum(axis=(1, 2))
        total[total == 0] = np.nan
        roundness = 2.0 * (q2 + q4 - q1 - q3) / total
    return sharpness.astype(np.float32), roundness.astype(np.float32)
