"""Synthetic references and truth for source_catalog and tweakreg.

* :func:`make_epsf_reference`: an EPSF reference (valid roman_datamodels ``EpsfRefModel``) for
  the simulator's Gaussian PSF, sampled ``oversample`` times finer than the pixels at a 3x3
  grid of detector positions.
* :func:`make_apcorr_reference`: an APCORR reference whose encircled-energy curve (radius in
  arcsec) is that PSF's.
* :func:`add_catalog_references`: both, added to a :class:`~romanxr.testing.ReferenceSet` (so
  :func:`~romanxr.testing.crds_cache.build_local_crds_cache` serves them from the local CRDS
  cache).
* :func:`truth_catalog` / :func:`write_reference_catalog`: the simulated stars (pixel position,
  flux, RA/Dec through an image's WCS), as an absolute reference catalogue (ECSV or parquet),
  optionally with a known pointing error: the catalogue is rotated about a point and shifted,
  so that the image's WCS is off by the inverse.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "add_catalog_references",
    "make_apcorr_reference",
    "make_epsf_reference",
    "misalign",
    "offset_sky",
    "truth_catalog",
    "write_reference_catalog",
]

PIXEL_SCALE = 0.11  # arcsec
#: detector positions (0-based science pixels) of the EPSF stamps
GRID = (0.0, 2043.5, 4087.0)


def _gauss(offset: np.ndarray, sigma: float) -> np.ndarray:
    """1-D Gaussian density of width ``sigma`` (per pixel) at ``offset`` pixels."""
    return np.exp(-(offset**2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)


def _common(model: Any, detector: str, description: str, optical_element: str | None) -> None:
    from astropy.time import Time

    from romanxr.testing.references import REFERENCE_USEAFTER

    meta = model.meta
    meta.pedigree = "DUMMY"
    meta.description = f"romanxr simulation: {description}"
    meta.author = "romanxr.testing"
    meta.origin = "romanxr"
    meta.useafter = Time(REFERENCE_USEAFTER, format="isot", scale="utc")
    meta.telescope = "ROMAN"
    meta.instrument.name = "WFI"
    meta.instrument.detector = detector
    if optical_element is not None:
        meta.instrument.optical_element = optical_element


def make_epsf_reference(
    path: str | os.PathLike,
    *,
    detector: str = "WFI01",
    optical_element: str = "F158",
    psf_sigma: float = 1.2,
    oversample: int = 4,
    half_width: int = 6,
    jitter_mas: float = 8.0,
) -> Path:
    """Write an EPSF reference for a Gaussian PSF of ``psf_sigma`` pixels.

    The stamps (``(2 * half_width * oversample + 1)`` square, ``oversample`` samples per
    pixel) hold the star's pixel value as a function of its offset from the pixel centre:
    the simulator samples its Gaussian stars at pixel centres, so that is the Gaussian itself
    (per pixel area), and each stamp sums to ``oversample**2``; shape
    ``(1 focus, 2 spectral types, 9 positions, n, n)``, the same at every position and type.
    ``jitter_major``/``jitter_minor`` are ``jitter_mas`` (set the exposure's guide-star jitter
    to the same value and romancal's jitter re-convolution changes nothing).
    """
    from romanxr.io.asdf_setup import datamodels

    dm = datamodels()

    n = 2 * half_width * oversample + 1
    offsets = (np.arange(n) - (n - 1) / 2) / oversample
    profile = _gauss(offsets, psf_sigma)
    stamp = np.outer(profile, profile).astype(np.float32)
    xs, ys = np.meshgrid(GRID, GRID)
    npos = xs.size
    psf = np.broadcast_to(stamp, (1, 2, npos, n, n)).astype(np.float32)
    model = dm.EpsfRefModel.create_fake_data()
    model.psf = psf
    _common(model, detector, f"Gaussian PSF sigma {psf_sigma} px", optical_element)
    model.meta.pixel_x = [float(v) for v in xs.ravel()]
    model.meta.pixel_y = [float(v) for v in ys.ravel()]
    model.meta.oversample = int(oversample)
    model.meta.jitter_major = float(jitter_mas)
    model.meta.jitter_minor = float(jitter_mas)
    model.meta.jitter_position_angle = 0.0
    for key, value in (("defocus", [0]), ("spectral_type", ["A0V", "G2V"])):
        if key in model.meta:
            model.meta[key] = value
    model.validate()
    path = Path(path)
    model.save(path)
    return path


def encircled_energy(radius_pix: np.ndarray, psf_sigma: float) -> np.ndarray:
    """Encircled energy of a circular Gaussian within ``radius_pix``."""
    return 1.0 - np.exp(-(np.asarray(radius_pix) ** 2) / (2 * psf_sigma**2))


def make_apcorr_reference(
    path: str | os.PathLike,
    *,
    detector: str = "WFI01",
    psf_sigma: float = 1.2,
    elements: tuple[str, ...] | None = None,
) -> Path:
    """Write an APCORR reference: encircled energy vs radius (arcsec) of the Gaussian PSF,
    the same for every imaging element."""
    from romanxr.io.asdf_setup import datamodels

    dm = datamodels()

    from romanxr.testing.references import OPTICAL_ELEMENTS

    radii = np.linspace(0.05, 3.0, 60)
    ee = encircled_energy(radii / PIXEL_SCALE, psf_sigma)
    model = dm.ApcorrRefModel.create_fake_data()
    _common(model, detector, f"encircled energy of a Gaussian PSF sigma {psf_sigma} px", None)
    model.data = {
        element: {
            "ap_corrections": (1.0 / ee).astype(np.float64),
            "ee_fractions": ee.astype(np.float64),
            "ee_radii": radii.astype(np.float64),
            "sky_background_rin": 2.4,
            "sky_background_rout": 2.8,
        }
        for element in (elements or OPTICAL_ELEMENTS)
    }
    model.validate()
    path = Path(path)
    model.save(path)
    return path


def add_catalog_references(refs: Any, *, psf_sigma: float = 1.2) -> Any:
    """Write the EPSF and APCORR references next to a ReferenceSet's files and add them to it.

    Returns the same :class:`~romanxr.testing.ReferenceSet` (``paths`` gains ``epsf`` and
    ``apcorr``), ready for ``build_local_crds_cache(folder, refs)``.
    """
    from romanxr.testing.references import reference_file_name

    detector = refs.detector.detector
    folder = Path(next(iter(refs.paths.values()))).parent
    refs.paths["epsf"] = make_epsf_reference(
        folder / reference_file_name("epsf", detector),
        detector=detector,
        optical_element=refs.optical_element,
        psf_sigma=psf_sigma,
    )
    refs.paths["apcorr"] = make_apcorr_reference(
        folder / reference_file_name("apcorr", detector), detector=detector, psf_sigma=psf_sigma
    )
    return refs


# ------------------------------------------------------------------------------------------
# truth and absolute reference catalogues


def truth_catalog(sources: dict[str, np.ndarray], wcs: Any, *, origin: tuple[float, float]):
    """The simulated stars as a Table: ``x``, ``y`` (pixels of the image ``wcs`` is for),
    ``flux`` (e-/s), ``saturating``, ``ra``, ``dec`` (deg, through ``wcs``).

    ``origin`` is the absolute ``(x, y)`` of the image's pixel 0 (4, 4 for a full-frame cal).
    """
    from astropy.table import Table

    x = np.asarray(sources["x"], dtype=np.float64) - origin[0]
    y = np.asarray(sources["y"], dtype=np.float64) - origin[1]
    ra, dec = wcs(x, y)
    table = Table(
        {
            "x": x,
            "y": y,
            "flux": np.asarray(sources["flux"], dtype=np.float64),
            "saturating": np.asarray(sources["saturating"], dtype=bool),
            "ra": np.asarray(ra, dtype=np.float64),
            "dec": np.asarray(dec, dtype=np.float64),
        }
    )
    table["ra"].unit = table["dec"].unit = "deg"
    return table


def offset_sky(
    ra: np.ndarray,
    dec: np.ndarray,
    *,
    centre: tuple[float, float],
    shift_arcsec: tuple[float, float] = (0.0, 0.0),
    rotation_deg: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate positions about ``centre`` (RA, Dec deg) by ``rotation_deg`` (counter-clockwise
    on the sky, in the tangent plane) and shift them by ``shift_arcsec`` (East, North)."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    c0 = SkyCoord(*centre, unit="deg")
    frame = c0.skyoffset_frame()
    local = SkyCoord(ra, dec, unit="deg").transform_to(frame)
    lon = local.lon.to_value(u.arcsec)
    lat = local.lat.to_value(u.arcsec)
    t = math.radians(rotation_deg)
    lon2 = math.cos(t) * lon - math.sin(t) * lat + shift_arcsec[0]
    lat2 = math.sin(t) * lon + math.cos(t) * lat + shift_arcsec[1]
    moved = SkyCoord(lon=lon2 * u.arcsec, lat=lat2 * u.arcsec, frame=frame).icrs
    return moved.ra.deg, moved.dec.deg


def write_reference_catalog(
    table: Any,
    path: str | os.PathLike,
    *,
    min_flux: float = 0.0,
    shift_arcsec: tuple[float, float] = (0.0, 0.0),
    rotation_deg: float = 0.0,
    centre: tuple[float, float] | None = None,
) -> Path:
    """Write a truth catalog as an absolute reference catalogue (``.ecsv`` or ``.parquet``).

    Columns ``ra``, ``dec`` (deg) and ``flux``. With a shift/rotation, the catalogue is moved
    by it (about ``centre``, default the mean position): an image whose WCS agreed with the
    truth is then off by the inverse correction, which tweakreg should find.
    """
    from astropy.table import Table

    keep = np.asarray(table["flux"]) >= min_flux
    if "saturating" in table.colnames:
        keep &= ~np.asarray(table["saturating"])
    ra = np.asarray(table["ra"])[keep]
    dec = np.asarray(table["dec"])[keep]
    if centre is None:
        centre = (float(np.mean(ra)), float(np.mean(dec)))
    if shift_arcsec != (0.0, 0.0) or rotation_deg:
        ra, dec = offset_sky(
            ra, dec, centre=centre, shift_arcsec=shift_arcsec, rotation_deg=rotation_deg
        )
    out = Table({"ra": ra, "dec": dec, "flux": np.asarray(table["flux"])[keep]})
    out["ra"].unit = out["dec"].unit = "deg"
    path = Path(path)
    if path.suffix == ".parquet":
        out.write(path, format="parquet", overwrite=True)
    else:
        out.write(path, format="ascii.ecsv", overwrite=True)
    return path


def misalign(
    images: list,
    *,
    shift_arcsec: tuple[float, float] = (0.0, 0.0),
    rotation_deg: float = 0.0,
) -> list:
    """Copies of the images of one exposure whose WCSs share one pointing error.

    The error is a rotation by ``rotation_deg`` and a shift of ``shift_arcsec`` in the
    telescope's tangent plane (V2/V3, arcsec) of the first image, applied to every image the
    same way (tweakwcs ``RomanWCSCorrector.set_correction`` with that image's frame as
    reference): the detectors move together, as under a wrong attitude. The pixels and the
    catalogs are the images' own; only ``meta.wcs`` (and its name) changes.

    Parameters
    ----------
    images : list of xarray.Dataset
        Level-2 images with a Roman gwcs and ``meta.wcsinfo`` (``v2_ref``, ``v3_ref``,
        ``roll_ref``).
    shift_arcsec : (float, float)
        Tangent-plane shift (arcsec).
    rotation_deg : float
        Rotation about the first image's reference point (deg).

    Returns
    -------
    list of xarray.Dataset
    """
    import copy

    from tweakwcs import RomanWCSCorrector

    def corrector(ds: Any) -> Any:
        meta = ds.attrs["meta"]
        info = {k: float(meta["wcsinfo"][k]) for k in ("roll_ref", "v2_ref", "v3_ref")}
        return RomanWCSCorrector(wcs=copy.deepcopy(meta["wcs"]), wcsinfo=info)

    correctors = [corrector(ds) for ds in images]
    t = math.radians(rotation_deg)
    matrix = [[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]
    out = []
    for ds, c in zip(images, correctors, strict=True):
        c.set_correction(matrix=matrix, shift=list(shift_arcsec), ref_tpwcs=correctors[0])
        moved = ds.copy(deep=False)
        moved.attrs = {**ds.attrs, "meta": {**ds.attrs["meta"], "wcs": c.wcs}}
        moved.attrs["meta"]["wcs"].name = "misaligned"
        out.append(moved)
    return out
