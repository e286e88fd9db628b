"""flatfield: division by the flat, variance scaling, bad flats, var_flat, routing."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import roman_datamodels.datamodels as dm
import xarray as xr

from romanxr.dq import PixelFlag
from romanxr.errors import ReferenceMismatchError
from romanxr.steps.flatfield import flatfield
from tests.unit._image_factories import (
    NX,
    NY,
    assert_unchanged,
    open_image,
    raise_on_compute,
    snapshot,
    with_meta,
    write_flat,
    write_image,
)

NAN_AT = [(1, 1), (3, 4)]
ZERO_AT = [(2, 2)]
DQ_AT = [(5, 5)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("flat")
    image = write_image(tmp_path / "r_cal.asdf")
    flat = write_flat(tmp_path / "flat.asdf", nan_at=NAN_AT, zero_at=ZERO_AT, dq_at=DQ_AT)
    return image, flat


def _arrays(image, flat):
    with dm.open(image) as m:
        img = {k: np.array(m[k]).astype(np.float32) for k in ("data", "err", "dumo")}
        img.update({k: np.array(m[k]).astype(np.float32) for k in ("var_poisson", "var_rnoise")})
        img["dq"] = np.array(m.dq)
    with dm.open(flat) as f:
        ref = {"data": np.array(f.data), "err": np.array(f.err), "dq": np.array(f.dq)}
    return img, ref


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_division_and_variance_scaling(files, backend):
    image, flat_path = files
    img, ref = _arrays(image, flat_path)
    out = flatfield(open_image(image, backend), override_flat=flat_path)
    bad = np.zeros((NY, NX), bool)
    for yx in NAN_AT + ZERO_AT + DQ_AT:
        bad[yx] = True
    flat = np.where(bad, np.float32(1), ref["data"])
    np.testing.assert_allclose(out["data"].values, img["data"] / flat, rtol=1e-6)
    np.testing.assert_allclose(out["dumo"].values, img["dumo"] / flat, rtol=1e-6)
    np.testing.assert_allclose(out["err"].values, img["err"] / flat, rtol=1e-6)
    np.testing.assert_allclose(out["var_poisson"].values, img["var_poisson"] / flat**2, rtol=1e-6)
    np.testing.assert_allclose(out["var_rnoise"].values, img["var_rnoise"] / flat**2, rtol=1e-6)
    # bad flat pixels pass the data through unchanged
    np.testing.assert_array_equal(out["data"].values[bad], img["data"][bad])
    no_flat = (out["dq"].values & PixelFlag.NO_FLAT_FIELD) != 0
    assert no_flat.sum() == len(NAN_AT) + len(ZERO_AT) + len(DQ_AT)
    np.testing.assert_array_equal(no_flat, bad)
    np.testing.assert_array_equal(out["dq"].values & ~np.uint32(PixelFlag.NO_FLAT_FIELD), img["dq"])
    assert "var_flat" not in out
    assert out["data"].dtype == np.float32 and out["dq"].dtype == np.uint32
    assert out.attrs["meta"]["cal_step"]["flat_field"] == "COMPLETE"
    assert out.attrs["meta"]["ref_file"]["flat"] == "flat.asdf"
    assert out.attrs["step_parameters"]["flat_field"] == {"include_var_flat": False}


def test_include_var_flat(files):
    image, flat_path = files
    img, ref = _arrays(image, flat_path)
    out = flatfield(open_image(image, "numpy"), override_flat=flat_path, include_var_flat=True)
    bad = ~np.isfinite(ref["data"]) | (ref["data"] == 0) | (ref["dq"] != 0)
    flat = np.where(bad, np.float32(1), ref["data"])
    data = img["data"] / flat
    var_flat = data**2 * ref["err"] ** 2 / flat**2
    np.testing.assert_allclose(out["var_flat"].values, var_flat, rtol=1e-5)
    np.testing.assert_allclose(
        out["err"].values, np.sqrt((img["err"] / flat) ** 2 + var_flat), rtol=1e-5
    )
    assert (out["var_flat"].values > 0).all()
    assert out.attrs["step_parameters"]["flat_field"] == {"include_var_flat": True}


def test_numpy_and_dask_agree_lazily_and_input_untouched(files):
    image, flat_path = files
    np_ds = open_image(image, "numpy")
    snap = snapshot(np_ds)
    a = flatfield(np_ds, override_flat=flat_path, include_var_flat=True)
    with dask.config.set(scheduler=raise_on_compute):
        b = flatfield(open_image(image, "dask"), override_flat=flat_path, include_var_flat=True)
    assert b["var_flat"].chunks is not None
    xr.testing.assert_identical(a.drop_attrs(), b.compute().drop_attrs())
    assert_unchanged(np_ds, snap)


@pytest.mark.parametrize("exposure_type", ["WFI_SPECTRAL", "WFI_IM_DARK", "WFI_FLAT"])
def test_non_imaging_exposures_are_skipped(tmp_path, files, exposure_type):
    ds = with_meta(open_image(files[0], "numpy"), exposure={"type": exposure_type})
    # no reference is even looked up: a missing path must not matter
    out = flatfield(ds, override_flat=tmp_path / "does_not_exist.asdf")
    assert out.attrs["meta"]["cal_step"]["flat_field"] == "SKIPPED"
    xr.testing.assert_identical(out["data"], ds["data"])


@pytest.mark.parametrize("exposure_type", ["WFI_LOLO", "WFI_WFSC"])
def test_other_imaging_types_are_flat_fielded(files, exposure_type):
    image, flat = files
    ds = with_meta(open_image(image, "numpy"), exposure={"type": exposure_type})
    out = flatfield(ds, override_flat=flat)
    assert out.attrs["meta"]["cal_step"]["flat_field"] == "COMPLETE"


def test_wrong_shape_raises(tmp_path, files):
    image, _ = files
    flat = write_flat(tmp_path / "wide_flat.asdf", shape=(NY, NX + 2))
    with pytest.raises(ReferenceMismatchError, match=r"wide_flat\.asdf"):
        flatfield(open_image(image), override_flat=flat)


def test_cut_out_uses_the_full_science_area_flat(files):
    image, flat_path = files
    ds = open_image(image, "numpy")
    full = flatfield(ds, override_flat=flat_path)
    cut = flatfield(ds.sel(y=slice(6, 10), x=slice(5, 9)), override_flat=flat_path)
    np.testing.assert_array_equal(
        cut["data"].values, full["data"].sel(y=slice(6, 10), x=slice(5, 9)).values
    )


def test_dask_cut_out_is_lazy_and_equal(files):
    image, flat_path = files
    window = {"y": slice(6, 10), "x": slice(5, 9)}
    with dask.config.set(scheduler=raise_on_compute):
        lazy = flatfield(open_image(image, "dask").sel(window), override_flat=flat_path)
    eager = flatfield(open_image(image, "numpy").sel(window), override_flat=flat_path)
    xr.testing.assert_identical(lazy.compute().drop_attrs(), eager.drop_attrs())
