"""The WFI focal plane: where each of the 18 detectors sits, and a mosaic quicklook of them.

Layout
------
:data:`DETECTOR_POSITIONS` holds the centre of each detector in the WFI local focal-plane
frame ``(u, v)`` (arcsec from the WFI centre; ``+v`` points away from the telescope
boresight). The values are the ``crval_u``/``crval_v`` columns of the public table
``sca_positions_20210204.txt`` that GalSim (``galsim/share/roman``) and romanisim
(``romanisim/data``) ship, in degrees there. The six detectors of the row farthest from the
boresight (WFI03, 06, 09, 12, 15, 18) are read out rotated by 180 degrees against the others:
the sign of the linear terms of GalSim's ``sip_20210204.txt`` (:data:`ROTATED_DETECTORS`).

The frame is tied to the telescope (V2, V3) frame by romanisim's constants
(``romanisim.models.parameters``): the WFI centre at ``(V2, V3) = (1546.38, -892.79)``
arcsec, ``V3IdlYAngle = -60`` degrees and the WFI's parity of -1, so ``+v`` points from the
boresight to the WFI centre and ``(u, v) -> (V2, V3)`` is a reflection
(:func:`fpa_to_v2v3`). WFI01 lands at ``(V2, V3) = (1312.6, -1040.0)`` arcsec.

Mosaic
------
:func:`focal_plane_mosaic` draws one image per detector (e.g. the ``data`` of the 18 cal
Datasets of one exposure), each in its tile at its place in the focal plane, with one shared
display stretch and one colour bar. Tiles are drawn at the size of a full 4088 x 4088 science
area whatever the image size, so that cut-outs and small simulated detectors still fill the
layout; the 180-degree detectors are turned so that every tile shows the sky the same way up.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from romanxr.errors import InputError

__all__ = [
    "DETECTOR_POSITIONS",
    "PIXEL_SCALE",
    "ROTATED_DETECTORS",
    "SCIENCE_PIXELS",
    "WFI_CENTRE_V2V3",
    "detector_name",
    "focal_plane_mosaic",
    "fpa_to_v2v3",
    "pixel_axes",
    "v2v3_reference",
]

#: (V2, V3) of the WFI centre in arcsec (romanisim.models.parameters.v2v3_wficen).
WFI_CENTRE_V2V3 = (1546.3846181707652, -892.7916365721071)
#: Nominal pixel scale (arcsec per pixel; galsim.roman.pixel_scale).
PIXEL_SCALE = 0.11
#: Pixels per side of a detector's science area.
SCIENCE_PIXELS = 4088

_POSITIONS_DEG = {
    "WFI01": (-0.0680, -0.0356),
    "WFI02": (-0.0679, 0.1108),
    "WFI03": (-0.0678, 0.2417),
    "WFI04": (-0.2037, -0.0627),
    "WFI05": (-0.2037, 0.0840),
    "WFI06": (-0.2036, 0.2146),
    "WFI07": (-0.3390, -0.1283),
    "WFI08": (-0.3393, 0.0191),
    "WFI09": (-0.3403, 0.1486),
    "WFI10": (0.0678, -0.0356),
    "WFI11": (0.0678, 0.1108),
    "WFI12": (0.0677, 0.2417),
    "WFI13": (0.2034, -0.0627),
    "WFI14": (0.2036, 0.0840),
    "WFI15": (0.2035, 0.2146),
    "WFI16": (0.3388, -0.1284),
    "WFI17": (0.3392, 0.0191),
    "WFI18": (0.3403, 0.1486),
}
#: Detector -> centre (u, v) in the WFI local frame, arcsec from the WFI centre.
DETECTOR_POSITIONS: dict[str, tuple[float, float]] = {
    name: (u * 3600.0, v * 3600.0) for name, (u, v) in _POSITIONS_DEG.items()
}
#: Detectors whose pixel axes point along -u / -v.
ROTATED_DETECTORS = frozenset({"WFI03", "WFI06", "WFI09", "WFI12", "WFI15", "WFI18"})

# (u, v) -> (V2, V3) offsets: V3IdlYAngle = -60 deg with parity -1 (a reflection)
_COS, _SIN = math.cos(math.radians(60.0)), math.sin(math.radians(60.0))
_FPA_TO_V2V3 = np.array([[_COS, _SIN], [_SIN, -_COS]])


def detector_name(detector: str | int) -> str:
    """``"WFI07"`` for ``7``, ``"wfi07"`` or ``"WFI07"``; an :class:`InputError` otherwise."""
    if isinstance(detector, int | np.integer):
        name = f"WFI{int(detector):02d}"
    else:
        name = str(detector).strip().upper()
    if name not in DETECTOR_POSITIONS:
        raise InputError(
            f"unknown WFI detector {detector!r}: use WFI01 ... WFI18 (or the numbers 1 ... 18)"
        )
    return name


def fpa_to_v2v3(u: Any, v: Any) -> tuple[Any, Any]:
    """WFI local ``(u, v)`` (arcsec from the WFI centre) -> telescope ``(V2, V3)`` arcsec."""
    v2 = WFI_CENTRE_V2V3[0] + _FPA_TO_V2V3[0, 0] * u + _FPA_TO_V2V3[0, 1] * v
    v3 = WFI_CENTRE_V2V3[1] + _FPA_TO_V2V3[1, 0] * u + _FPA_TO_V2V3[1, 1] * v
    return v2, v3


def v2v3_reference(detector: str | int) -> tuple[float, float]:
    """(V2, V3) in arcsec of the centre of ``detector``'s science area."""
    u, v = DETECTOR_POSITIONS[detector_name(detector)]
    v2, v3 = fpa_to_v2v3(u, v)
    return float(v2), float(v3)


def pixel_axes(detector: str | int, rotation_deg: float = 0.0) -> np.ndarray:
    """2 x 2 matrix taking pixel offsets ``(dx, dy)`` to ``(dV2, dV3)`` arcsec.

    Pixels are :data:`PIXEL_SCALE` arcsec along the detector's ``(u, v)`` axes (turned by 180
    degrees on :data:`ROTATED_DETECTORS`), then rotated by ``rotation_deg`` (a small
    mounting error, counter-clockwise in the ``(u, v)`` frame).
    """
    name = detector_name(detector)
    sign = -1.0 if name in ROTATED_DETECTORS else 1.0
    c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    to_fpa = sign * PIXEL_SCALE * np.array([[c, -s], [s, c]])
    return _FPA_TO_V2V3 @ to_fpa


# --------------------------------------------------------------------------------------------
# mosaic


def _detector_of(image: xr.Dataset | xr.DataArray) -> str:
    meta = image.attrs.get("meta") or {}
    found = (meta.get("instrument") or {}).get("detector")
    if found is None:
        raise InputError(
            f"image {image.name!r} has no meta.instrument.detector in its attrs; pass a mapping "
            f"detector -> image (e.g. {{'WFI01': cal}}) instead of a list"
        )
    return detector_name(found)


def _images(
    images: Mapping[str | int, xr.Dataset | xr.DataArray] | Sequence[xr.Dataset],
    var: str,
) -> dict[str, np.ndarray]:
    items = images.items() if isinstance(images, Mapping) else ((None, i) for i in images)
    out: dict[str, np.ndarray] = {}
    for key, image in items:
        name = _detector_of(image) if key is None else detector_name(key)
        if name in out:
            raise InputError(f"detector {name} is given twice; give each detector once")
        array = image[var] if isinstance(image, xr.Dataset) else image
        if array.ndim != 2:
            raise InputError(
                f"{name}: {array.name or var!r} has dims {array.dims}; the mosaic needs 2-D "
                f"images (y, x), e.g. the 'data' of a cal Dataset"
            )
        values = np.asarray(array.values, dtype=np.float64)
        out[name] = values[::-1, ::-1] if name in ROTATED_DETECTORS else values
    if not out:
        raise InputError("no images given: pass a mapping detector -> cal Dataset")
    return out


def _shared_limits(values: dict[str, np.ndarray], stretch: Any) -> tuple[float, float]:
    from romanxr.plot import display_limits

    # a regular subsample of every detector, so that one bright detector does not set the scale
    samples = []
    for image in values.values():
        step = max(1, int(math.sqrt(image.size / 40_000)))
        samples.append(image[::step, ::step].ravel())
    return display_limits(np.concatenate(samples), stretch)


def focal_plane_mosaic(
    images: Mapping[str | int, xr.Dataset | xr.DataArray] | Sequence[xr.Dataset],
    path: str | os.PathLike | None = None,
    *,
    var: str = "data",
    stretch: str | tuple[float, float] = "zscale",
    cmap: str = "gray",
    title: str | None = None,
    width: float = 10.0,
) -> Any:
    """Draw detectors in their WFI focal-plane layout, one shared stretch, as one figure.

    Parameters
    ----------
    images : mapping or sequence
        Detector (``"WFI07"``, ``7``) -> cal Dataset or 2-D DataArray; or a sequence of cal
        Datasets whose ``attrs["meta"]["instrument"]["detector"]`` names the detector. Lazy
        images are computed here (one detector at a time).
    path : path-like, optional
        Write the figure there (PNG, PDF, ... by its suffix).
    var : str
        Variable of a Dataset to draw (``data``: the slope in the units of the image).
    stretch : str or (float, float)
        ``"zscale"`` (default), ``"percentile"``, ``"minmax"`` or a pair of percentiles,
        computed over all detectors together.
    cmap : str
        Matplotlib colour map.
    title : str, optional
        Figure title.
    width : float
        Figure width in inches (the height follows the layout).

    Returns
    -------
    matplotlib.figure.Figure
        One image axes per detector, labelled ``WFI01`` ..., plus a colour bar axes.

    Raises
    ------
    InputError
        An unknown or repeated detector, an image that is not 2-D, or a list item without a
        detector in its metadata.
    """
    from romanxr.plot import require_matplotlib

    require_matplotlib()  # the clear error when matplotlib is missing
    from matplotlib.figure import Figure

    values = _images(images, var)
    vmin, vmax = _shared_limits(values, stretch)
    half = SCIENCE_PIXELS * PIXEL_SCALE / 2
    u = np.array([p[0] for p in DETECTOR_POSITIONS.values()])
    v = np.array([p[1] for p in DETECTOR_POSITIONS.values()])
    pad = 0.25 * half  # room for the labels above each tile
    u_lo, u_hi = u.min() - half - pad, u.max() + half + pad
    v_lo, v_hi = v.min() - half - pad, v.max() + half + 2 * pad
    bar = 0.09  # fraction of the figure height kept for the colour bar
    height = width * (v_hi - v_lo) / (u_hi - u_lo) / (1 - bar - 0.06)
    fig = Figure(figsize=(width, height), dpi=100)  # no pyplot state: safe in threads
    scale_x = 1.0 / (u_hi - u_lo)
    scale_y = (1 - bar - 0.06) / (v_hi - v_lo)
    shown = None
    for name, image in sorted(values.items()):
        uc, vc = DETECTOR_POSITIONS[name]
        left = (uc - half - u_lo) * scale_x
        bottom = bar + (vc - half - v_lo) * scale_y
        ax = fig.add_axes((left, bottom, 2 * half * scale_x, 2 * half * scale_y))
        shown = ax.imshow(image, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=8, pad=2)
    cax = fig.add_axes((0.25, 0.035, 0.5, bar * 0.3))
    units = "DN/s"
    first = images[next(iter(images))] if isinstance(images, Mapping) else images[0]
    array = first[var] if isinstance(first, xr.Dataset) else first
    units = array.attrs.get("units", units)
    fig.colorbar(shown, cax=cax, orientation="horizontal", label=f"{var} [{units}]")
    if title:
        fig.suptitle(title, y=0.99)
    if path is not None:
        fig.savefig(Path(path))
    return fig
