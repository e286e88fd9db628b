"""World coordinate systems for Level-2 WFI images.

Two pieces:

* :func:`build_wcs` makes the gwcs pipeline of romancal's assign_wcs from a distortion transform and
  the pointing metadata: ``detector -> v2v3 -> v2v3vacorr -> world (ICRS)``.
* :func:`world_coords` adds lazily computed ``ra``/``dec`` coordinates (dask, chunked like
  ``data``) to an image Dataset that carries a gwcs in ``attrs['meta']['wcs']``.

Pixel frames
------------
The distortion reference maps 0-based pixel positions of the 4088x4088 *science area* (the L2
image array) to V2/V3. A romanxr image Dataset labels its pixels with *absolute* detector
coordinates instead: ``x``/``y`` start at 4 on a full-frame image (the reference border is
trimmed). The gwcs romanxr attaches is written for the **array indices of the Dataset it is
attached to** (as romancal's is for ``model.data``), so that ``wcs(i, j)`` with ``i`` the
column and ``j`` the row index of ``ds.data`` is right, also after writing to ``cal.asdf``:

* full-frame image (``x[0] == 4``): array index == science pixel; the gwcs is romancal's.
* cut-out starting at absolute ``(y0, x0)``: the gwcs first shifts array indices by
  ``(x0 - 4, y0 - 4)`` into the science-area frame of the distortion model.

In terms of the absolute coordinates: ``science_pixel = absolute - 4``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from romanxr.errors import ExposureError

__all__ = [
    "SCIENCE_ORIGIN",
    "build_wcs",
    "dva_correction",
    "s_region",
    "science_offset",
    "v2v3_to_sky",
    "world_coords",
]

log = logging.getLogger(__name__)

#: Absolute detector coordinate of science-area pixel 0 (width of the reference border).
SCIENCE_ORIGIN = 4

_PLACEHOLDER = -999999.0


def _number(meta: Mapping[str, Any], group: str, key: str, *, allow_none: bool = False) -> Any:
    value = (meta.get(group) or {}).get(key)
    if value is None:
        if allow_none:
            return None
        raise ExposureError(
            f"meta.{group}.{key} is missing; assign_wcs needs the pointing "
            "(wcsinfo.v2_ref, v3_ref, ra_ref, dec_ref, roll_ref), normally filled in by the "
            "ground system's set_telescope_pointing"
        )
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ExposureError(f"meta.{group}.{key} must be a number, got {value!r}") from exc
    if not math.isfinite(number) or number == _PLACEHOLDER:
        if allow_none:
            return None
        raise ExposureError(
            f"meta.{group}.{key} = {value!r} is not a valid pointing value (placeholder or "
            "not finite); set it (e.g. from the observation's pointing) before assign_wcs"
        )
    return number


def v2v3_to_sky(v2_ref: float, v3_ref: float, roll_ref: float, ra_ref: float, dec_ref: float):
    """Telescope (V2, V3) in arcsec -> (RA, Dec) in degrees.

    Parameters
    ----------
    v2_ref, v3_ref : float
        Reference point in the telescope frame (arcsec).
    roll_ref, ra_ref, dec_ref : float
        Position angle at the reference point and its sky position (degrees).

    Returns
    -------
    astropy.modeling.CompoundModel
        arcsec -> unit vector (V2 wrapped at 180 deg) -> Euler rotation about z, y, x, y, z by
        ``(v2_ref, -v3_ref, roll_ref, dec_ref, -ra_ref)`` -> spherical (RA wrapped at 360 deg).
    """
    from astropy.modeling.models import RotationSequence3D, Scale
    from gwcs.geometry import CartesianToSpherical, SphericalToCartesian

    angles = np.array([v2_ref / 3600.0, -v3_ref / 3600.0, roll_ref, dec_ref, -ra_ref])
    rotation = RotationSequence3D(angles, axes_order="zyxyz")
    model = (
        (Scale(1 / 3600) & Scale(1 / 3600))
        | SphericalToCartesian(wrap_lon_at=180)
        | rotation
        | CartesianToSpherical(wrap_lon_at=360)
    )
    model.name = "v23tosky"
    return model


def dva_correction(scale_factor: float | None, v2_ref: float | None, v3_ref: float | None):
    """Differential velocity aberration in the V2/V3 plane (arcsec -> arcsec).

    ``v' = s * v + (1 - s) * v_ref`` per axis. ``s`` None or 1 gives the identity; ``s <= 0`` is
    not physical and is treated as 1 (logged). The shift is left out when both refs are 0.
    """
    from astropy.modeling.models import Identity, Scale, Shift

    if scale_factor is None or scale_factor == 1:
        return Identity(2)
    if scale_factor <= 0:
        log.warning(
            "meta.velocity_aberration.scale_factor = %s is not positive; using 1 (no "
            "velocity aberration correction)",
            scale_factor,
        )
        return Identity(2)
    model = Scale(scale_factor, name="dva_scale_v2") & Scale(scale_factor, name="dva_scale_v3")
    v2_ref = v2_ref or 0.0
    v3_ref = v3_ref or 0.0
    if v2_ref == 0 and v3_ref == 0:
        return model
    model = model | (
        Shift((1 - scale_factor) * v2_ref, name="dva_v2_shift")
        & Shift((1 - scale_factor) * v3_ref, name="dva_v3_shift")
    )
    model.name = "DVA_Correction"
    return model


def science_offset(ds: xr.Dataset) -> tuple[int, int]:
    """``(x0, y0)``: science-area pixel of array index 0 of ``ds`` (absolute coordinate - 4).

    Raises
    ------
    ExposureError
        If the ``x``/``y`` coordinates are not contiguous (a strided selection has no gwcs of
        this simple form).
    """
    offsets = []
    for dim in ("x", "y"):
        coords = np.asarray(ds[dim].values) if dim in ds.coords else np.arange(ds.sizes[dim])
        if coords.size > 1 and not np.all(np.diff(coords) == 1):
            raise ExposureError(
                f"the image's {dim} coordinates are not contiguous; assign_wcs needs a "
                "contiguous cut-out (select with slices, not steps or lists)"
            )
        start = int(coords[0]) if dim in ds.coords else SCIENCE_ORIGIN
        offsets.append(start - SCIENCE_ORIGIN)
    return offsets[0], offsets[1]


def build_wcs(
    distortion: Any,
    meta: Mapping[str, Any],
    shape: tuple[int, int],
    offset: tuple[int, int] = (0, 0),
):
    """Build the gwcs of a WFI image.

    Parameters
    ----------
    distortion : astropy.modeling.Model
        Science-area pixel (x, y) -> (V2, V3) arcsec, as in the distortion reference. Not
        modified (a copy gets the bounding box).
    meta : mapping
        The Roman meta tree (``wcsinfo``, ``velocity_aberration``).
    shape : (ny, nx)
        Shape of the image array the gwcs describes.
    offset : (x0, y0)
        Science-area pixel of array index (0, 0) (nonzero for cut-outs).

    Returns
    -------
    gwcs.WCS
        Frames ``detector``, ``v2v3``, ``v2v3vacorr``, ``world``. Bounding box: the
        distortion's own (shifted by ``offset``) if it has one, else
        ``((-0.5, nx - 0.5), (-0.5, ny - 0.5))``; outside it the WCS returns NaN.
    """
    import gwcs.coordinate_frames as cf
    from astropy import coordinates as coord
    from astropy import units as u
    from astropy.modeling import bind_bounding_box
    from astropy.modeling.models import Shift
    from gwcs.wcs import WCS, Step

    v2_ref = _number(meta, "wcsinfo", "v2_ref")
    v3_ref = _number(meta, "wcsinfo", "v3_ref")
    roll_ref = _number(meta, "wcsinfo", "roll_ref")
    ra_ref = _number(meta, "wcsinfo", "ra_ref")
    dec_ref = _number(meta, "wcsinfo", "dec_ref")
    if not -90 <= dec_ref <= 90:
        raise ExposureError(f"meta.wcsinfo.dec_ref = {dec_ref} is outside [-90, 90] degrees")
    scale = (meta.get("velocity_aberration") or {}).get("scale_factor")
    scale = None if scale is None else float(scale)

    transform = distortion.copy()
    try:
        own_box = transform.bounding_box.bounding_box(order="F")
    except NotImplementedError:
        own_box = None
    x0, y0 = offset
    if x0 or y0:
        # array index -> science-area pixel of the distortion model
        transform = (Shift(x0) & Shift(y0)) | transform
        if own_box is not None:
            own_box = tuple((lo - s, hi - s) for (lo, hi), s in zip(own_box, (x0, y0), strict=True))
    ny, nx = shape
    box = own_box if own_box is not None else ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    bind_bounding_box(transform, box, order="F")
    transform.inputs = ("x", "y")
    transform.outputs = ("v2", "v3")

    va_corr = dva_correction(scale, v2_ref, v3_ref)
    va_corr.inputs = ("v2", "v3")
    va_corr.outputs = ("v2", "v3")
    tel2sky = v2v3_to_sky(v2_ref, v3_ref, roll_ref, ra_ref, dec_ref)
    tel2sky.inputs = ("v2", "v3")
    tel2sky.outputs = ("ra", "dec")

    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    v2v3 = cf.Frame2D(
        name="v2v3", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec)
    )
    v2v3vacorr = cf.Frame2D(
        name="v2v3vacorr", axes_order=(0, 1), axes_names=("v2", "v3"), unit=(u.arcsec, u.arcsec)
    )
    world = cf.CelestialFrame(reference_frame=coord.ICRS(), name="world")
    wcs = WCS(
        [
            Step(detector, transform),
            Step(v2v3, va_corr),
            Step(v2v3vacorr, tel2sky),
            Step(world, None),
        ]
    )
    if wcs.bounding_box is None:
        wcs.bounding_box = box
    return wcs


def s_region(wcs: Any) -> str | None:
    """``"POLYGON ICRS  ra1 dec1 ... ra4 dec4"`` of the bounding-box corners (pixel edges).

    Corners clockwise from the bottom left, 9 decimals, negative RA + 360; ``None`` when a
    corner has no sky position (NaN).
    """
    footprint = np.array(wcs.footprint(center=False, axis_type="spatial"), dtype=np.float64)
    ra = footprint[:, 0]
    ra[ra < 0] += 360.0
    if not np.all(np.isfinite(footprint)):
        return None
    return "POLYGON ICRS  " + " ".join(f"{v:.9f}" for v in footprint.ravel())


def _sky_block(block: np.ndarray, wcs: Any, block_info=None) -> np.ndarray:
    (y_lo, y_hi), (x_lo, x_hi) = block_info[0]["array-location"]
    yy, xx = np.mgrid[y_lo:y_hi, x_lo:x_hi].astype(np.float64)
    ra, dec = wcs(xx, yy)
    return np.stack([np.asarray(ra, np.float64), np.asarray(dec, np.float64)])


def world_coords(ds: xr.Dataset, wcs: Any = None) -> xr.Dataset:
    """Add lazily computed sky coordinates ``ra``/``dec`` (degrees, ICRS) to an image.

    Parameters
    ----------
    ds : xarray.Dataset
        A Level-2 image with dims ``(y, x)``, after :func:`romanxr.steps.assign_wcs.assign_wcs`.
    wcs : gwcs.WCS, optional
        Use this WCS instead of ``ds.attrs['meta']['wcs']``. It must describe the array
        indices of ``ds`` (see the module notes).

    Returns
    -------
    xarray.Dataset
        ``ds`` (not copied; attrs shared) with 2-D coordinates ``ra`` and ``dec`` (y, x),
        float64 dask arrays chunked like ``data``; NaN outside the WCS bounding box. Nothing is
        computed until asked, e.g. ``out.ra.sel(y=100, x=200).values``.

    Raises
    ------
    ExposureError
        If ``ds`` has no gwcs (run ``assign_wcs`` first).
    """
    if wcs is None:
        wcs = (ds.attrs.get("meta") or {}).get("wcs")
    if wcs is None or not hasattr(wcs, "footprint"):
        raise ExposureError(
            "the image has no gwcs in meta.wcs; run romanxr.steps.assign_wcs.assign_wcs(ds) "
            "(ds.roman.assign_wcs()) first"
        )
    data = ds["data"].transpose("y", "x")
    ny, nx = data.shape
    chunks = data.chunks if data.chunks is not None else ((ny,), (nx,))
    template = da.empty((ny, nx), chunks=chunks, dtype=np.float64)
    sky = da.map_blocks(
        _sky_block,
        template,
        wcs,
        dtype=np.float64,
        new_axis=0,
        chunks=((2,), *chunks),
    )
    attrs = {"units": "deg", "frame": "ICRS"}
    return ds.assign_coords(
        ra=(("y", "x"), sky[0], {**attrs, "long_name": "right ascension"}),
        dec=(("y", "x"), sky[1], {**attrs, "long_name": "declination"}),
    )
