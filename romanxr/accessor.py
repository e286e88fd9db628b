"""The ``ds.roman`` accessor: one line per method, forwarding to steps and writers."""

from __future__ import annotations

import xarray as xr

__all__ = ["RomanAccessor"]


@xr.register_dataset_accessor("roman")
class RomanAccessor:
    """Roman calibration methods on an exposure Dataset (``ds.roman.<step>()``)."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._ds = ds

    @property
    def meta(self) -> dict:
        """The Roman metadata tree (``attrs['meta']``)."""
        from romanxr.dataset import get_meta

        return get_meta(self._ds)
