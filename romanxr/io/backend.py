"""The ``roman`` xarray backend: ``xr.open_dataset(path, engine="roman", chunks=...)``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import xarray as xr
from xarray.backends import BackendEntrypoint

from romanxr.io.asdf_reader import open_roman_asdf

__all__ = ["RomanBackendEntrypoint"]


class RomanBackendEntrypoint(BackendEntrypoint):
    """Open Roman ASDF products (``wfi_science_raw``, ``ramp``, ``wfi_image``) and Zarr stores
    written by :func:`romanxr.to_zarr`."""

    description = "Roman WFI ASDF products (uncal, cal) as lazy Datasets"
    url = "https://github.com/romanxr/romanxr"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "expect")

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        expect: str | None = None,
    ) -> xr.Dataset:
        if _is_directory(filename_or_obj):
            # a Zarr v3 store written by romanxr.to_zarr
            from romanxr.io.zarr_io import open_zarr

            return open_zarr(filename_or_obj, chunks=None, drop_variables=drop_variables)
        return open_roman_asdf(filename_or_obj, expect=expect, drop_variables=drop_variables)

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        if not isinstance(filename_or_obj, str | os.PathLike):
            return False
        path = os.fspath(filename_or_obj)
        if _is_directory(path):
            from romanxr.io.zarr_io import is_romanxr_zarr

            return is_romanxr_zarr(path)
        if not path.endswith(".asdf"):
            return False
        try:
            with open(path, "rb") as fh:
                return fh.read(5) == b"#ASDF"
        except OSError:
            return False


def _is_directory(obj: Any) -> bool:
    return isinstance(obj, str | os.PathLike) and os.path.isdir(obj)
