"""Image statistics of a Level-2 image (``meta.statistics``), as romancal 1.1.0 records them.

romancal fills ``meta.statistics`` of every image it returns: the median of the good pixels,
their robust spread (the median absolute deviation scaled to a Gaussian sigma) and the fraction
of good pixels, where good means a finite value, no DO_NOT_USE flag and a positive error. The
zodiacal light level is a placeholder (-1). Here the good values are gathered slab by slab
(:func:`good_values`) into one float32 buffer and the medians are taken in place
(:func:`image_statistics`), so the extra memory is at most one float32 copy of the image.
"""

from __future__ import annotations

import numpy as np

from romanxr.dq import PixelFlag

__all__ = ["MAD_TO_SIGMA", "PLACEHOLDER", "good_values", "image_statistics"]

#: 1 / Phi^-1(3/4): the median absolute deviation of a Gaussian times this is its sigma
#: (the factor astropy's ``mad_std`` uses)
MAD_TO_SIGMA = 1.482602218505602

#: What romancal records before it looks at the pixels (and keeps when no pixel is good).
PLACEHOLDER = {
    "zodiacal_light": -1.0,
    "image_median": float("nan"),
    "image_rms": float("nan"),
    "good_pixel_fraction": 0.0,
}


def good_values(data: np.ndarray, dq: np.ndarray, err: np.ndarray) -> np.ndarray:
    """The values of ``data`` at its good pixels (finite, no DO_NOT_USE, ``err > 0``).

    Parameters
    ----------
    data, dq, err : ndarray
        Same-shaped slabs of the image as stored (float32, uint32, float16).

    Returns
    -------
    ndarray
        1-D float32 values in C order.
    """
    good = np.isfinite(data)
    good &= (dq & np.uint32(PixelFlag.DO_NOT_USE)) == 0
    good &= err > 0
    return np.asarray(data[good], dtype=np.float32)


def image_statistics(values: np.ndarray, n_pixels: int) -> dict[str, float]:
    """``meta.statistics`` from the good values of an image of ``n_pixels`` pixels.

    ``values`` is used as scratch space (its order and contents change). The numbers are
    the same as romancal's: ``median``, ``mad_std`` (``1.4826 * median(|v - median|)``) and
    the good fraction.

    Parameters
    ----------
    values : ndarray
        1-D float32 good values (:func:`good_values`), modified in place.
    n_pixels : int
        Number of pixels of the image (good or not).

    Returns
    -------
    dict
        ``zodiacal_light`` (-1, a placeholder), ``image_median``, ``image_rms``,
        ``good_pixel_fraction``; with no good pixel, NaN median and rms and fraction 0.
    """
    stats = dict(PLACEHOLDER)
    if values.size == 0:
        return stats
    median = np.median(values, overwrite_input=True)
    np.subtract(values, median, out=values)
    np.abs(values, out=values)
    mad = np.median(values, overwrite_input=True)
    stats["image_median"] = float(median)
    stats["image_rms"] = float(mad * MAD_TO_SIGMA)
    stats["good_pixel_fraction"] = float(values.size / n_pixels)
    return stats
