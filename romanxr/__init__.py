"""romanxr: calibrate Roman WFI exposures with xarray and dask.

Importing romanxr registers the ``ds.roman`` accessor (as soon as xarray is imported, if it is
not yet). The functions below load their modules on first use, so ``import romanxr`` and the
command line start quickly (:mod:`romanxr._startup`).
"""

from __future__ import annotations

from romanxr._startup import lazy_attribute, when_imported
from romanxr._version import __version__

__all__ = [
    "__version__",
    "calibrate",
    "open_cal",
    "open_ramp",
    "open_uncal",
    "open_zarr",
    "to_asdf",
    "to_zarr",
]

_LAZY = {
    "calibrate": "romanxr.pipeline.calibration:calibrate",
    "open_cal": "romanxr.io:open_cal",
    "open_ramp": "romanxr.io:open_ramp",
    "open_uncal": "romanxr.io:open_uncal",
    "open_zarr": "romanxr.io:open_zarr",
    "to_asdf": "romanxr.io:to_asdf",
    "to_zarr": "romanxr.io:to_zarr",
}

__getattr__ = lazy_attribute(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def _register_accessor() -> None:
    import romanxr.accessor  # noqa: F401  (registers ds.roman)


when_imported("xarray", _register_accessor)
