"""The ``ds.roman`` accessor: one line per method, forwarding to steps, pipeline and writers.

Each method carries the forwarded function's signature (without the Dataset) and docstring,
so ``inspect.signature(ds.roman.saturation)``, ``help(ds.roman.saturation)``, tab completion
and the API reference show the real parameters.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import xarray as xr

if TYPE_CHECKING:
    from romanxr.plot import RomanPlotter

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


class _Lazy:
    """A forwarding method whose module is imported on first use (``"module:function"``).

    ``import romanxr`` registers the accessor; the steps, their kernels (numba), dask and the
    writers load only when a method is first looked up. The first lookup replaces this
    descriptor on the class with the real method (:func:`_forward`), so later lookups cost
    nothing and ``inspect.signature``, ``help`` and autodoc see the function's own.
    """

    def __init__(self, target: str) -> None:
        self.target = target

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        module, function = self.target.split(":")
        func = getattr(importlib.import_module(f"romanxr.{module}"), function)
        method = _forward(func, self.name)
        setattr(RomanAccessor, self.name, method)
        return method if obj is None else method.__get__(obj, owner)


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
    def plot(self) -> RomanPlotter:
        """Quicklook plots of this exposure (a :class:`romanxr.plot.RomanPlotter`).

        ``.plot.image()``, ``.plot.ramp(y, x, cal=...)`` and ``.plot.dq(bit=...)``; each
        returns the matplotlib Axes (needs matplotlib).
        """
        from romanxr.plot import RomanPlotter

        return RomanPlotter(self._ds)

    summary = _Lazy("summary:summarize")

    def __repr__(self) -> str:
        from romanxr.summary import summarize

        return str(summarize(self._ds))

    def _repr_html_(self) -> str:
        from romanxr.summary import summarize

        return summarize(self._ds)._repr_html_()

    # ---- ramp-level steps, in pipeline order
    dq_init = _Lazy("steps.dq_init:dq_init")
    saturation = _Lazy("steps.saturation:saturation")
    refpix = _Lazy("steps.refpix:refpix")
    dark_decay = _Lazy("steps.dark_decay:dark_decay")
    wfi18_transient = _Lazy("steps.wfi18_transient:wfi18_transient")
    linearity = _Lazy("steps.linearity:linearity")
    jump = _Lazy("steps.jump:jump")
    ramp_fit = _Lazy("steps.ramp_fit:ramp_fit")

    # ---- image-level steps
    dark_current = _Lazy("steps.dark_current:dark_current")
    assign_wcs = _Lazy("steps.assign_wcs:assign_wcs")
    photom = _Lazy("steps.photom:photom")
    flatfield = _Lazy("steps.flatfield:flatfield")
    source_catalog = _Lazy("steps.source_catalog:source_catalog")
    tweakreg = _Lazy("steps.tweakreg:tweakreg")

    @property
    def catalog(self) -> Any:
        """The source catalog of an image made by ``source_catalog`` (an astropy Table;
        measured now if it has not been yet). See
        :func:`romanxr.steps.source_catalog.catalog_table`."""
        from romanxr.steps.source_catalog import catalog_table

        return catalog_table(self._ds)

    # ---- whole pipeline, checks, coordinates, writers
    calibrate = _Lazy("pipeline:calibrate")
    is_fully_saturated = _Lazy("steps.saturated_exposure:is_fully_saturated")
    saturated_image = _Lazy("steps.saturated_exposure:saturated_image")
    world_coords = _Lazy("wcs:world_coords")
    jump_indices = _Lazy("steps.ramp_fit:jump_indices")
    to_asdf = _Lazy("io.asdf_writer:to_asdf")
    to_zarr = _Lazy("io.zarr_io:to_zarr")
    to_catalog_files = _Lazy("steps.source_catalog:to_catalog_files")
