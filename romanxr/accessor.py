"""The ``ds.roman`` accessor: one line per method, forwarding to steps, pipeline and writers.

Each method's docstring is the forwarded function's, so ``help(ds.roman.saturation)`` and the
API reference show the real parameters.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import xarray as xr

from romanxr import pipeline as _pipeline
from romanxr import plot as _plot
from romanxr import summary as _summary
from romanxr import wcs as _wcs
from romanxr.io import asdf_writer as _asdf_writer
from romanxr.io import zarr_io as _zarr_io
from romanxr.steps import assign_wcs as _assign_wcs
from romanxr.steps import dark_current as _dark_current
from romanxr.steps import dark_decay as _dark_decay
from romanxr.steps import dq_init as _dq_init
from romanxr.steps import flatfield as _flatfield
from romanxr.steps import jump as _jump
from romanxr.steps import linearity as _linearity
from romanxr.steps import photom as _photom
from romanxr.steps import ramp_fit as _ramp_fit
from romanxr.steps import refpix as _refpix
from romanxr.steps import saturated_exposure as _saturated_exposure
from romanxr.steps import saturation as _saturation
from romanxr.steps import wfi18_transient as _wfi18_transient

__all__ = ["RomanAccessor"]


def _forwards(func: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def attach(method: Callable[..., Any]) -> Callable[..., Any]:
        method.__doc__ = (
            f"Accessor form of :func:`{func.__module__}.{func.__name__}` (``ds`` is this "
            f"Dataset).\n\n{inspect.getdoc(func) or ''}"
        )
        return method

    return attach


@xr.register_dataset_accessor("roman")
class RomanAccessor:
    """Roman calibration on an exposure Dataset: ``ds.roman.<step>(...)`` returns a new Dataset.

    Steps chain lazily (``ds.roman.dq_init().roman.saturation()...``); nothing is computed
    until ``.compute()`` or a write.
    """

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    @property
    def meta(self) -> dict:
        """The Roman metadata tree (``attrs['meta']``; do not modify it in place)."""
        from romanxr.dataset import get_meta

        return get_meta(self._ds)

    @property
    def plot(self) -> _plot.RomanPlotter:
        """Quicklook plots of this exposure (a :class:`romanxr.plot.RomanPlotter`).

        ``.plot.image()``, ``.plot.ramp(y, x, cal=...)`` and ``.plot.dq(bit=...)``; each
        returns the matplotlib Axes (needs matplotlib).
        """
        return _plot.RomanPlotter(self._ds)

    @_forwards(_summary.summarize)
    def summary(self) -> _summary.ExposureSummary:
        return _summary.summarize(self._ds)

    def __repr__(self) -> str:
        return str(_summary.summarize(self._ds))

    def _repr_html_(self) -> str:
        return _summary.summarize(self._ds)._repr_html_()

    # ---- ramp-level steps, in pipeline order
    @_forwards(_dq_init.dq_init)
    def dq_init(self, **kwargs: Any) -> xr.Dataset:
        return _dq_init.dq_init(self._ds, **kwargs)

    @_forwards(_saturation.saturation)
    def saturation(self, **kwargs: Any) -> xr.Dataset:
        return _saturation.saturation(self._ds, **kwargs)

    @_forwards(_refpix.refpix)
    def refpix(self, **kwargs: Any) -> xr.Dataset:
        return _refpix.refpix(self._ds, **kwargs)

    @_forwards(_dark_decay.dark_decay)
    def dark_decay(self, **kwargs: Any) -> xr.Dataset:
        return _dark_decay.dark_decay(self._ds, **kwargs)

    @_forwards(_wfi18_transient.wfi18_transient)
    def wfi18_transient(self, **kwargs: Any) -> xr.Dataset:
        return _wfi18_transient.wfi18_transient(self._ds, **kwargs)

    @_forwards(_linearity.linearity)
    def linearity(self, **kwargs: Any) -> xr.Dataset:
        return _linearity.linearity(self._ds, **kwargs)

    @_forwards(_jump.jump)
    def jump(self, **kwargs: Any) -> xr.Dataset:
        return _jump.jump(self._ds, **kwargs)

    @_forwards(_ramp_fit.ramp_fit)
    def ramp_fit(self, **kwargs: Any) -> xr.Dataset:
        return _ramp_fit.ramp_fit(self._ds, **kwargs)

    # ---- image-level steps
    @_forwards(_dark_current.dark_current)
    def dark_current(self, **kwargs: Any) -> xr.Dataset:
        return _dark_current.dark_current(self._ds, **kwargs)

    @_forwards(_assign_wcs.assign_wcs)
    def assign_wcs(self, **kwargs: Any) -> xr.Dataset:
        return _assign_wcs.assign_wcs(self._ds, **kwargs)

    @_forwards(_photom.photom)
    def photom(self, **kwargs: Any) -> xr.Dataset:
        return _photom.photom(self._ds, **kwargs)

    @_forwards(_flatfield.flatfield)
    def flatfield(self, **kwargs: Any) -> xr.Dataset:
        return _flatfield.flatfield(self._ds, **kwargs)

    # ---- whole pipeline, checks, coordinates, writers
    @_forwards(_pipeline.calibrate)
    def calibrate(self, **kwargs: Any) -> xr.Dataset:
        return _pipeline.calibrate(self._ds, **kwargs)

    @_forwards(_saturated_exposure.is_fully_saturated)
    def is_fully_saturated(self) -> bool:
        return _saturated_exposure.is_fully_saturated(self._ds)

    @_forwards(_saturated_exposure.saturated_image)
    def saturated_image(self) -> xr.Dataset:
        return _saturated_exposure.saturated_image(self._ds)

    @_forwards(_wcs.world_coords)
    def world_coords(self, **kwargs: Any) -> xr.Dataset:
        return _wcs.world_coords(self._ds, **kwargs)

    @_forwards(_ramp_fit.jump_indices)
    def jump_indices(self) -> Any:
        return _ramp_fit.jump_indices(self._ds)

    @_forwards(_asdf_writer.to_asdf)
    def to_asdf(self, path: Any, **kwargs: Any) -> Any:
        return _asdf_writer.to_asdf(self._ds, path, **kwargs)

    @_forwards(_zarr_io.to_zarr)
    def to_zarr(self, store: Any, **kwargs: Any) -> Any:
        return _zarr_io.to_zarr(self._ds, store, **kwargs)
