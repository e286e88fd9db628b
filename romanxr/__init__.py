"""romanxr: calibrate Roman WFI exposures with xarray and dask.

Importing romanxr registers the ``ds.roman`` accessor and, for trees of exposures
(:func:`open_exposures`), the ``dt.roman`` accessor.
"""

from __future__ import annotations

from romanxr import accessor as _accessor  # noqa: F401  (registers ds.roman)
from romanxr._version import __version__
from romanxr.exposures import open_exposures
from romanxr.io import open_cal, open_ramp, open_uncal, open_zarr, to_asdf, to_zarr
from romanxr.pipeline import calibrate

__all__ = [
    "__version__",
    "calibrate",
    "open_cal",
    "open_exposures",
    "open_ramp",
    "open_uncal",
    "open_zarr",
    "to_asdf",
    "to_zarr",
]
