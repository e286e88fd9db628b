"""Quicklook plots with astronomical scaling (matplotlib, an optional dependency)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["percentile_limits", "quicklook_png"]


def percentile_limits(
    values: np.ndarray, low: float = 1.0, high: float = 99.5
) -> tuple[float, float]:
    """Display limits from percentiles of the finite values (a robust stretch for sky images)."""
    finite = np.asarray(values)[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    vmin, vmax = np.percentile(finite, [low, high])
    if vmax <= vmin:
        vmax = vmin + 1.0
    return float(vmin), float(vmax)


def quicklook_png(
    image: xr.DataArray,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    cmap: str = "gray",
    stretch: tuple[float, float] = (1.0, 99.5),
    **imshow: Any,
) -> Path:
    """Render a 2-D image (e.g. the slope ``data`` of a cal Dataset) to a PNG.

    Parameters
    ----------
    image : DataArray
        2-D, dims ``(y, x)``; computed here if lazy.
    path : path-like
        Output PNG.
    title : str, optional
        Plot title.
    cmap : str
        Matplotlib colour map.
    stretch : (float, float)
        Percentiles of the finite pixels mapped to black and white.

    Returns
    -------
    Path
        The PNG written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    values = np.asarray(image.values, dtype=np.float64)
    vmin, vmax = percentile_limits(values, *stretch)
    fig, ax = plt.subplots(figsize=(6, 5.5), dpi=100)
    extent = None
    if "x" in image.coords and "y" in image.coords:
        x, y = image["x"].values, image["y"].values
        extent = (x[0] - 0.5, x[-1] + 0.5, y[0] - 0.5, y[-1] + 0.5)
    shown = ax.imshow(
        values, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, extent=extent, **imshow
    )
    units = image.attrs.get("units", "DN/s")
    fig.colorbar(shown, ax=ax, label=f"{image.name or 'data'} [{units}]")
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")
    if title:
        ax.set_title(title)
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
