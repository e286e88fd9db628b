"""romanxr: calibrate Roman WFI exposures with xarray and dask.

Importing romanxr registers the ``ds.roman`` accessor.
"""

from __future__ import annotations

from romanxr import accessor as _accessor  # noqa: F401  (registers ds.roman)
from romanxr._version import __version__
from romanxr.io import open_cal, open_ramp, open_uncal, open_zarr, to_asdf, to_zarr
from romanxr.pipeline import calibrate, export_config

__all__ = [
    "__version__",
    "calibrate",
    "export_config",
    "open_cal",
    "open_ramp",
    "open_uncal",
    "open_zarr",
    "to_asdf",
    "to_zarr",
]
