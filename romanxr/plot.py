"""Quicklook plots of Roman exposures (matplotlib is an optional dependency).

The helpers are reached from any exposure Dataset as ``ds.roman.plot``:

``ds.roman.plot.image()``
    an image (slope, a resultant, err...) with a zscale or percentile stretch;
``ds.roman.plot.ramp(y, x, cal=...)``
    the resultants of one pixel against ``mean_time``, the fitted slope drawn through them and
    the detected jumps marked;
``ds.roman.plot.dq(bit=...)``
    where a DQ bit (or any bit) is set.

Each returns the matplotlib ``Axes`` it drew on (``ax=`` draws on an existing one), so a
figure can be saved with ``ax.figure.savefig("x.png")``. :func:`quicklook_png` writes a PNG
in one call (``romanxr demo`` uses it).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from romanxr.dq import GroupFlag, PixelFlag
from romanxr.errors import ExposureError, RomanxrError

__all__ = [
    "RomanPlotter",
    "display_limits",
    "percentile_limits",
    "quicklook_figure",
    "quicklook_png",
    "require_matplotlib",
    "zscale_limits",
]


class MissingDependencyError(RomanxrError, ImportError):
    """An optional dependency (matplotlib) is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError(
            "romanxr's plots need matplotlib, which is not installed; install it with "
            "`pip install 'romanxr[plot]'` (or `pip install matplotlib`)"
        ) from None
    del matplotlib  # pyplot picks the backend (Agg where there is no display)
    import matplotlib.pyplot as plt

    return plt


def require_matplotlib() -> Any:
    """``matplotlib.pyplot``, or a :class:`MissingDependencyError` saying how to install it."""
    return _pyplot()


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


def zscale_limits(values: np.ndarray, contrast: float = 0.25) -> tuple[float, float]:
    """IRAF-style zscale display limits (astropy's ``ZScaleInterval``) of the finite values."""
    from astropy.visualization import ZScaleInterval

    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    vmin, vmax = ZScaleInterval(contrast=contrast).get_limits(finite)
    if not vmax > vmin:
        vmax = vmin + 1.0
    return float(vmin), float(vmax)


def display_limits(
    values: np.ndarray,
    stretch: str | tuple[float, float] = "zscale",
) -> tuple[float, float]:
    """Display limits by name (``"zscale"``, ``"percentile"``/``"minmax"``) or percentiles.

    Parameters
    ----------
    values : ndarray
        The pixels (non-finite values are ignored).
    stretch : str or (float, float)
        ``"zscale"``; ``"percentile"`` (1 to 99.5 %); ``"minmax"``; or a pair of percentiles.
    """
    if isinstance(stretch, tuple | list):
        low, high = stretch
        return percentile_limits(values, float(low), float(high))
    if stretch == "zscale":
        return zscale_limits(values)
    if stretch == "percentile":
        return percentile_limits(values)
    if stretch == "minmax":
        return percentile_limits(values, 0.0, 100.0)
    raise ValueError(
        f"unknown stretch {stretch!r}; use 'zscale', 'percentile', 'minmax' or a pair of "
        f"percentiles such as (1, 99.5)"
    )


def _extent(image: xr.DataArray) -> tuple[float, float, float, float] | None:
    ydim, xdim = image.dims
    if xdim in image.coords and ydim in image.coords:
        x, y = image[xdim].values, image[ydim].values
        return (x[0] - 0.5, x[-1] + 0.5, y[0] - 0.5, y[-1] + 0.5)
    return None


def _new_axes(ax: Any, figsize: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    plt = _pyplot()
    _, ax = plt.subplots(figsize=figsize, dpi=100, layout="constrained")
    return ax


def _flag(bit: Any, flags: type) -> tuple[int, str]:
    if isinstance(bit, str):
        try:
            member = flags[bit.upper()]
        except KeyError:
            names = ", ".join(f.name for f in flags)
            raise ValueError(f"unknown DQ flag {bit!r}; known flags: {names}") from None
        return int(member), member.name
    value = int(bit)
    try:
        return value, flags(value).name or str(value)
    except ValueError:
        return value, f"bit value {value}"


class RomanPlotter:
    """Quicklook plots of one exposure Dataset; reached as ``ds.roman.plot``.

    Parameters
    ----------
    ds : xarray.Dataset
        A ramp (dims ``(resultant, y, x)``) or an image (``(y, x)``) Dataset.
    """

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    def image(
        self,
        var: str = "data",
        *,
        resultant: int | None = None,
        stretch: str | tuple[float, float] = "zscale",
        cmap: str = "gray",
        title: str | None = None,
        colorbar: bool = True,
        ax: Any = None,
    ) -> Any:
        """Show a 2-D variable (the slope ``data`` by default) with an astronomical stretch.

        Parameters
        ----------
        var : str
            Variable to show (``data``, ``err``, ``var_poisson``...).
        resultant : int, optional
            For ramp variables: which resultant (default: the last one).
        stretch : str or (float, float)
            ``"zscale"`` (default), ``"percentile"``, ``"minmax"`` or a pair of percentiles.
        cmap : str
            Matplotlib colour map.
        title : str, optional
            Plot title (default: the variable's name).
        colorbar : bool
            Draw a colour bar with the variable's units.
        ax : matplotlib Axes, optional
            Draw there instead of on a new figure.

        Returns
        -------
        matplotlib.axes.Axes
        """
        if var not in self._ds:
            raise KeyError(f"no variable {var!r} in the Dataset; it has {list(self._ds.data_vars)}")
        image = self._ds[var]
        if "resultant" in image.dims:
            index = image.sizes["resultant"] - 1 if resultant is None else resultant
            image = image.isel(resultant=index)
            title = title or f"{var}, resultant {index}"
        if image.ndim != 2:
            raise ExposureError(f"{var!r} has dims {image.dims}; image() shows 2-D arrays")
        values = np.asarray(image.values, dtype=np.float64)
        vmin, vmax = display_limits(values, stretch)
        ax = _new_axes(ax, (6.0, 5.0))
        shown = ax.imshow(
            values, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, extent=_extent(image)
        )
        if colorbar:
            units = image.attrs.get("units") or _default_units(self._ds, var)
            ax.figure.colorbar(shown, ax=ax, label=f"{var} [{units}]" if units else var)
        ax.set_xlabel(f"{image.dims[1]} [pixel]")
        ax.set_ylabel(f"{image.dims[0]} [pixel]")
        ax.set_title(title or var)
        return ax

    def dq(self, bit: int | str | None = None, *, var: str | None = None, ax: Any = None) -> Any:
        """Show where a DQ bit is set (or, with ``bit=None``, where any bit is set).

        Parameters
        ----------
        bit : int, str or PixelFlag, optional
            A flag (``PixelFlag.JUMP_DET``, ``"SATURATED"``, ``4``). None: any flag.
        var : str, optional
            The DQ variable: ``dq`` for an image, ``pixeldq`` for a ramp by default;
            ``groupdq`` (any resultant) works too.
        ax : matplotlib Axes, optional
            Draw there instead of on a new figure.

        Returns
        -------
        matplotlib.axes.Axes
        """
        if var is None:
            var = next((v for v in ("dq", "pixeldq", "groupdq") if v in self._ds), None)
            if var is None:
                raise ExposureError(
                    "the Dataset has no DQ variable (dq, pixeldq or groupdq); run dq_init first"
                )
        dq = self._ds[var]
        flags = GroupFlag if var == "groupdq" else PixelFlag
        if bit is None:
            value, label = -1, "any flag"
            mask = dq != 0
        else:
            value, label = _flag(bit, flags)
            mask = (dq & value) != 0
        if "resultant" in mask.dims:
            mask = mask.any("resultant")
        values = np.asarray(mask.values, dtype=np.uint8)
        ax = _new_axes(ax, (6.0, 5.0))
        from matplotlib.colors import ListedColormap

        ax.imshow(
            values,
            origin="lower",
            cmap=ListedColormap(["#f2f2f2", "#c0392b"]),
            vmin=0,
            vmax=1,
            extent=_extent(mask),
            interpolation="nearest",
        )
        ax.set_xlabel(f"{mask.dims[1]} [pixel]")
        ax.set_ylabel(f"{mask.dims[0]} [pixel]")
        ax.set_title(f"{var}: {label} ({int(values.sum())} pixels)")
        return ax

    def ramp(
        self,
        y: int,
        x: int,
        *,
        cal: xr.Dataset | None = None,
        var: str = "data",
        ax: Any = None,
    ) -> Any:
        """Plot one pixel's resultants against ``mean_time`` with the fitted slope and jumps.

        Parameters
        ----------
        y, x : int
            Absolute detector pixel (the ``y``/``x`` coordinates, not positions).
        cal : Dataset, optional
            A fitted image of this ramp (the output of ``ramp_fit``, or a later one): its
            ``data`` slope at the pixel is drawn through the resultants, restarting after each
            jump. Steps after ``ramp_fit`` rescale the slope (dark subtraction, flat field),
            so the ``ramp_fit`` output matches the points best.
        var : str
            The ramp variable to plot.
        ax : matplotlib Axes, optional
            Draw there instead of on a new figure.

        Returns
        -------
        matplotlib.axes.Axes

        Notes
        -----
        Jumps come from the ``jumps`` variable of ``cal`` (``ramp_fit(record_jumps=True)``),
        else from the JUMP_DET bit of this ramp's ``groupdq``. They are marked with red
        squares on the first resultant after the jump; resultants with any other group flag
        (saturated, do-not-use) are drawn hollow.
        """
        ds = self._ds
        if "resultant" not in ds[var].dims:
            raise ExposureError(
                f"{var!r} has no resultant dimension; ramp() plots a ramp Dataset (before "
                f"ramp_fit) and takes the fitted image as cal="
            )
        pixel = ds[var].sel(y=y, x=x)
        t = np.asarray(ds["mean_time"].values, dtype=np.float64)
        values = np.asarray(pixel.values, dtype=np.float64)
        jumps = np.zeros(t.size, dtype=bool)
        other = np.zeros(t.size, dtype=bool)
        if "groupdq" in ds:
            gdq = np.asarray(ds["groupdq"].sel(y=y, x=x).values).astype(np.int64)
            jumps |= (gdq & int(GroupFlag.JUMP_DET)) != 0
            other |= (gdq & ~int(GroupFlag.JUMP_DET)) != 0
        if cal is not None and "jumps" in cal:
            jumps |= np.asarray(cal["jumps"].sel(y=y, x=x).values, dtype=bool)
        ax = _new_axes(ax, (6.0, 4.0))
        good = ~other
        ax.plot(t[good], values[good], "o", color="k", label="resultants")
        if other.any():
            ax.plot(t[other], values[other], "o", mfc="none", color="grey", label="flagged")
        if jumps.any():
            ax.plot(t[jumps], values[jumps], "s", mfc="none", ms=12, color="#c0392b", label="jump")
        if cal is not None:
            slope = float(cal["data"].sel(y=y, x=x).values)
            if np.isfinite(slope):
                starts = [0, *np.flatnonzero(jumps).tolist(), t.size]
                labelled = False
                for lo, hi in itertools.pairwise(starts):
                    seg = np.arange(lo, hi)
                    seg = seg[good[seg]]
                    if seg.size == 0:
                        continue
                    offset = float(np.mean(values[seg] - slope * t[seg]))
                    tt = np.array([t[seg[0]], t[seg[-1]]])
                    ax.plot(
                        tt,
                        offset + slope * tt,
                        "-",
                        color="#2e86c1",
                        label=None if labelled else f"fit: {slope:.3g} DN/s",
                    )
                    labelled = True
        ax.set_xlabel("mean_time [s]")
        ax.set_ylabel(f"{var} [DN]")
        ax.set_title(f"ramp of pixel (y={y}, x={x})")
        ax.legend(loc="best", fontsize="small")
        return ax

    def save(self, ax: Any, path: str | os.PathLike, *, close: bool = True) -> Path:
        """Save the figure of ``ax`` (as returned by the plots) to ``path`` and close it."""
        path = Path(path)
        ax.figure.savefig(path)
        if close:
            _pyplot().close(ax.figure)
        return path


def _default_units(ds: xr.Dataset, var: str) -> str:
    if var in ("data", "err") and "resultant" not in ds[var].dims:
        return "DN/s"
    if var.startswith("var_"):
        return "(DN/s)^2"
    if "resultant" in ds[var].dims:
        return "DN"
    return ""


def quicklook_png(
    image: xr.DataArray | xr.Dataset,
    path: str | os.PathLike,
    *,
    title: str | None = None,
    cmap: str = "gray",
    stretch: str | tuple[float, float] = "zscale",
    ramp: xr.Dataset | None = None,
    catalog: Any = None,
) -> Path:
    """Render a quicklook PNG: the slope with a zscale stretch, its DQ and one jump's ramp.

    Parameters
    ----------
    image : DataArray or Dataset
        A 2-D image (dims ``(y, x)``), or a Level-2 Dataset: its ``data`` is shown, with a
        panel of the pixels flagged in ``dq`` and, given ``ramp``, the ramp of one pixel
        flagged JUMP_DET. Computed here if lazy.
    path : path-like
        Output PNG (1000 x 650 pixels for a Dataset, 600 x 550 for a single image).
    title : str, optional
        Figure title.
    cmap : str
        Matplotlib colour map.
    stretch : str or (float, float)
        ``"zscale"`` (default: the sky noise and faint sources stay visible), ``"percentile"``,
        ``"minmax"`` or a pair of percentiles.
    ramp : Dataset, optional
        The exposure's ramp (e.g. the uncal Dataset, with ``mean_time``), for the ramp panel.
    catalog : astropy Table, optional
        A source catalog (``x_centroid``/``y_centroid`` in array positions of the image, as
        ``ds.roman.catalog`` gives): its sources are circled.

    Returns
    -------
    Path
        The PNG written.
    """
    fig = quicklook_figure(
        image, title=title, cmap=cmap, stretch=stretch, ramp=ramp, catalog=catalog
    )
    path = Path(path)
    fig.savefig(path)
    return path


def quicklook_figure(
    image: xr.DataArray | xr.Dataset,
    *,
    title: str | None = None,
    cmap: str = "gray",
    stretch: str | tuple[float, float] = "zscale",
    ramp: xr.Dataset | None = None,
    catalog: Any = None,
) -> Any:
    """The matplotlib Figure of :func:`quicklook_png` (same parameters, no file written)."""
    _pyplot()  # the clear error when matplotlib is missing
    from matplotlib.figure import Figure

    ds = image if isinstance(image, xr.Dataset) else None
    data = ds["data"] if ds is not None else image
    if ds is None:  # no pyplot state: safe in threads and servers
        fig = Figure(figsize=(6, 5.5), dpi=100, layout="constrained")
        ax_img, ax_dq, ax_ramp = fig.subplots(), None, None
    else:
        fig = Figure(figsize=(10, 6.5), dpi=100, layout="constrained")
        grid = fig.add_gridspec(2, 2, width_ratios=(1.35, 1))
        ax_img = fig.add_subplot(grid[:, 0])
        ax_dq, ax_ramp = fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, 1])
    values = np.asarray(data.values, dtype=np.float64)
    vmin, vmax = display_limits(values, stretch)
    shown = ax_img.imshow(
        values, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, extent=_extent(data)
    )
    units = data.attrs.get("units", "DN/s")
    fig.colorbar(shown, ax=ax_img, label=f"{data.name or 'data'} [{units}]", shrink=0.8)
    ax_img.set_xlabel("x [pixel]")
    ax_img.set_ylabel("y [pixel]")
    ax_img.set_title(f"{data.name or 'data'} ({stretch if isinstance(stretch, str) else 'pct'})")
    if catalog is not None and len(catalog):
        _mark_sources(ax_img, data, catalog)
    if ax_dq is not None and "dq" in ds:
        RomanPlotter(ds).dq(ax=ax_dq)
    if ax_ramp is not None:
        _jump_ramp(ax_ramp, ds, ramp)
    if title:
        fig.suptitle(title)
    return fig


def _mark_sources(ax: Any, data: xr.DataArray, catalog: Any) -> None:
    """Circle the catalog's sources (array positions shifted to the image's coordinates)."""
    ydim, xdim = data.dims
    x0 = float(data[xdim].values[0]) if xdim in data.coords else 0.0
    y0 = float(data[ydim].values[0]) if ydim in data.coords else 0.0
    xs = np.asarray(getattr(catalog["x_centroid"], "value", catalog["x_centroid"]), float) + x0
    ys = np.asarray(getattr(catalog["y_centroid"], "value", catalog["y_centroid"]), float) + y0
    ax.plot(xs, ys, "o", mfc="none", mec="#e67e22", ms=9, label=f"{xs.size} sources")
    ax.legend(loc="upper right", fontsize="small")


def _jump_ramp(ax: Any, cal: xr.Dataset, ramp: xr.Dataset | None) -> None:
    """The ramp of the good pixel flagged JUMP_DET whose resultants step the most."""
    if ramp is None or "dq" not in cal:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no ramp given", ha="center", va="center", transform=ax.transAxes)
        return
    dq = np.asarray(cal["dq"].values).astype(np.int64)
    bad = int(PixelFlag.DO_NOT_USE | PixelFlag.SATURATED)
    ys, xs = np.nonzero(((dq & int(PixelFlag.JUMP_DET)) != 0) & ((dq & bad) == 0))
    if ys.size == 0:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no jump detected", ha="center", va="center", transform=ax.transAxes)
        return
    yc, xc = cal["y"].values[ys[:200]], cal["x"].values[xs[:200]]
    picked = {"y": xr.DataArray(yc, dims="pixel"), "x": xr.DataArray(xc, dims="pixel")}
    cube = np.asarray(ramp["data"].sel(picked).values, dtype=np.float64)
    steps = np.diff(cube, axis=0)
    best = int(np.argmax(steps.max(axis=0) - np.median(steps, axis=0)))
    RomanPlotter(ramp).ramp(int(yc[best]), int(xc[best]), ax=ax)
    ax.set_title(f"JUMP_DET pixel y={int(yc[best])}, x={int(xc[best])}", fontsize="medium")
