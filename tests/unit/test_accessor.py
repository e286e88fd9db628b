"""The ``ds.roman`` accessor only forwards: every method has its function's real signature
(without the Dataset) and docstring, and passes every argument on."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import xarray as xr

from romanxr import pipeline, summary, wcs
from romanxr.accessor import RomanAccessor
from romanxr.io import asdf_writer, zarr_io
from romanxr.registry import STEPS
from romanxr.steps import ramp_fit, saturated_exposure, source_catalog, wfi18_transient
from tests.unit._ramp_factory import make_ramp

#: accessor methods that are not pipeline steps -> the function each forwards to
OTHERS = {
    "summary": summary.summarize,
    "calibrate": pipeline.calibrate,
    "is_fully_saturated": saturated_exposure.is_fully_saturated,
    "saturated_image": saturated_exposure.saturated_image,
    "world_coords": wcs.world_coords,
    "jump_indices": ramp_fit.jump_indices,
    "to_asdf": asdf_writer.to_asdf,
    "to_zarr": zarr_io.to_zarr,
    "to_catalog_files": source_catalog.to_catalog_files,
}
PROPERTIES = {"meta", "plot", "catalog"}


def forwarded() -> dict:
    return {**{spec.name: spec.load() for spec in STEPS}, **OTHERS}


def test_every_step_and_nothing_unknown_is_a_method():
    public = {name for name in vars(RomanAccessor) if not name.startswith("_")}
    assert public == set(forwarded()) | PROPERTIES


@pytest.mark.parametrize("name", sorted(forwarded()))
def test_method_has_the_signature_and_docstring_of_its_function(name):
    func = forwarded()[name]
    method = getattr(xr.Dataset().roman, name)
    full = inspect.signature(func)
    shown = inspect.signature(method)
    assert list(shown.parameters.values()) == list(full.parameters.values())[1:]
    assert shown.return_annotation == full.return_annotation
    assert method.__name__ == name
    assert method.__qualname__ == f"RomanAccessor.{name}"
    assert f":func:`{func.__module__}.{func.__name__}`" in method.__doc__
    assert inspect.getdoc(func) in method.__doc__


def test_saturation_shows_its_real_parameters():
    params = inspect.signature(xr.Dataset().roman.saturation).parameters
    assert list(params) == ["n_pix_grow_sat", "backup", "override_saturation", "resolver"]
    assert params["n_pix_grow_sat"].default == 0
    assert params["n_pix_grow_sat"].kind is inspect.Parameter.KEYWORD_ONLY


def test_arguments_reach_the_function():
    ds = make_ramp(np.ones((3, 4, 4)), detector="WFI18")
    direct = wfi18_transient.wfi18_transient(ds, mask_rows=True)
    via = ds.roman.wfi18_transient(mask_rows=True)
    assert via.attrs["step_parameters"]["wfi18_transient"]["mask_rows"] is True
    assert via.attrs["step_parameters"] == direct.attrs["step_parameters"]
    np.testing.assert_array_equal(via["groupdq"].values, direct["groupdq"].values)
    with pytest.raises(TypeError, match="bogus"):
        ds.roman.wfi18_transient(bogus=1)
