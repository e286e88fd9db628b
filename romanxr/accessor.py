"""The ``ds.roman`` accessor: one line per method, forwarding to steps, pipeline and writers.

Each method carries the forwarded function's signature (without the Dataset) and docstring,
so ``inspect.signature(ds.roman.saturation)``, ``help(ds.roman.saturation)``, tab completion
and the API reference show the real parameters.
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
from romanxr.steps import source_catalog as _source_catalog
from romanxr.steps import tweakreg as _tweakreg
from romanxr.steps import wfi18_transient as _wfi18_transient

__all__ = ["RomanAccessor"]


def _forward(func: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
    """An accessor method ``name`` (default: the function's name) calling
    ``func(<this Dataset>, ...)``, with ``func``'s signature and docstring.

    The method's ``__signature__`` is ``func``'s with ``self`` in place of the Dataset, so the
    bound method (``ds.roman.saturation``) shows exactly the parameters the user passes.
    """

    def method(self: RomanAccessor, *args: Any, **kwargs: Any) -> Any:
        return func(self._ds, *args, **kwargs)

    signature = inspect.signature(func)
    rest = list(signature.parameters.values())[1:]
    own = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
    method.__signature__ = signature.replace(parameters=[own, *rest])  # type: ignore[attr-defined]
    method.__name__ = name or func.__name__
    method.__qualname__ = f"RomanAccessor.{method.__name__}"
    method.__doc__ = (
        f"Accessor form of :func:`{func.__module__}.{func.__name__}` (its first argument is "
        f"this Dataset).\n\n{inspect.getdoc(func) or ''}"
    )
    return method


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

    summary = _forward(_summary.summarize, "summary")

    def __repr__(self) -> str:
        return str(_summary.summarize(self._ds))

    def _repr_html_(self) -> str:
        return _summary.summarize(self._ds)._repr_html_()

    # ---- ramp-level steps, in pipeline order
    dq_init = _forward(_dq_init.dq_init)
    saturation = _forward(_saturation.saturation)
    refpix = _forward(_refpix.refpix)
    dark_decay = _forward(_dark_decay.dark_decay)
    wfi18_transient = _forward(_wfi18_transient.wfi18_transient)
    linearity = _forward(_linearity.linearity)
    jump = _forward(_jump.jump)
    ramp_fit = _forward(_ramp_fit.ramp_fit)

    # ---- image-level steps
    dark_current = _forward(_dark_current.dark_current)
    assign_wcs = _forward(_assign_wcs.assign_wcs)
    photom = _forward(_photom.photom)
    flatfield = _forward(_flatfield.flatfield)
    source_catalog = _forward(_source_catalog.source_catalog)
    tweakreg = _forward(_tweakreg.tweakreg)

    @property
    def catalog(self) -> Any:
        """The source catalog of an image made by ``source_catalog`` (an astropy Table;
        measured now if it has not been yet). See
        :func:`romanxr.steps.source_catalog.catalog_table`."""
        return _source_catalog.catalog_table(self._ds)

    # ---- whole pipeline, checks, coordinates, writers
    calibrate = _forward(_pipeline.calibrate)
    is_fully_saturated = _forward(_saturated_exposure.is_fully_saturated)
    saturated_image = _forward(_saturated_exposure.saturated_image)
    world_coords = _forward(_wcs.world_coords)
    jump_indices = _forward(_ramp_fit.jump_indices)
    to_asdf = _forward(_asdf_writer.to_asdf)
    to_zarr = _forward(_zarr_io.to_zarr)
    to_catalog_files = _forward(_source_catalog.to_catalog_files)
