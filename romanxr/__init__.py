"""romanxr: calibrate Roman WFI exposures with xarray and dask.

Importing romanxr registers the ``ds.roman`` accessor and, for trees of exposures
(:func:`open_exposures`), the ``dt.roman`` accessor, as soon as xarray is imported (at once if it
already is). The functions below load their modules on first use, so ``import romanxr`` and the
command line start quickly (:mod:`romanxr._startup`).
"""

from __future__ import annotations

from typing import Any

from romanxr._startup import lazy_attribute, when_imported
from romanxr._version import __version__

__all__ = [
    "__version__",
    "calibrate",
    "export_config",
    "open_cal",
    "open_exposures",
    "open_ramp",
    "open_uncal",
    "open_zarr",
    "to_asdf",
    "to_zarr",
    "tweakreg_many",
]

_LAZY = {
    "calibrate": "romanxr.pipeline.calibration:calibrate",
    "export_config": "romanxr.pipeline:export_config",
    "open_cal": "romanxr.io:open_cal",
    "open_exposures": "romanxr.exposures:open_exposures",
    "open_ramp": "romanxr.io:open_ramp",
    "open_uncal": "romanxr.io:open_uncal",
    "open_zarr": "romanxr.io:open_zarr",
    "to_asdf": "romanxr.io:to_asdf",
    "to_zarr": "romanxr.io:to_zarr",
    "tweakreg_many": "romanxr.steps.tweakreg:tweakreg_many",
}

__getattr__ = lazy_attribute(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def _dataset_roman(ds: Any) -> Any:
    """``ds.roman``: the :class:`romanxr.accessor.RomanAccessor` of a Dataset."""
    from romanxr.accessor import RomanAccessor

    return RomanAccessor(ds)


def _tree_roman(tree: Any) -> Any:
    """``dt.roman``: the :class:`romanxr.exposures.accessor.RomanTreeAccessor` of a DataTree."""
    from romanxr.exposures.accessor import RomanTreeAccessor

    return RomanTreeAccessor(tree)


def _register_accessors() -> None:
    # Only the two names are registered when xarray is imported; the accessor modules (steps,
    # pipeline, dask...) load on the first ``ds.roman``. Importing them here instead would
    # run them in the middle of whatever romanxr module happened to import xarray first, half
    # initialised, and import cycles would follow.
    import xarray as xr

    xr.register_dataset_accessor("roman")(_dataset_roman)
    xr.register_datatree_accessor("roman")(_tree_roman)


when_imported("xarray", _register_accessors)
