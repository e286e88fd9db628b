"""dark_current: slope - dark_slope at the image pixels, dq OR, nothing else touched."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import roman_datamodels.datamodels as dm
import xarray as xr

from romanxr.dq import PixelFlag
from romanxr.errors import ReferenceMismatchError
from romanxr.refs import ReferenceResolver
from romanxr.steps.dark_current import dark_current
from tests.unit._image_factories import (
    assert_unchanged,
    open_image,
    raise_on_compute,
    snapshot,
    write_dark,
    write_image,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("dark")
    image = write_image(tmp_path / "r_cal.asdf")
    dark = write_dark(tmp_path / "dark.asdf")
    return image, dark


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_subtracts_trimmed_dark_and_ors_dq(files, backend):
    image, dark = files
    ds = open_image(image, backend)
    with dm.open(image) as m:
        slope, dq_in = np.array(m.data), np.array(m.dq)
        err, var_p, dumo = np.array(m.err), np.array(m.var_poisson), np.array(m.dumo)
    with dm.open(dark) as d:
        dark_slope, dark_dq = np.array(d.dark_slope), np.array(d.dq)
    out = dark_current(ds, override_dark=dark)
    np.testing.assert_allclose(out["data"].values, slope - dark_slope[4:-4, 4:-4], atol=1e-7)
    assert out["data"].dtype == np.float32
    np.testing.assert_array_equal(out["dq"].values, dq_in | dark_dq[4:-4, 4:-4])
    assert out["dq"].dtype == np.uint32
    # the HOT pixel at full-frame (5, 6) lands on image coordinate y=5, x=6
    assert out["dq"].sel(y=5, x=6).values.item() & PixelFlag.HOT
    # the border flag at (0, 0) must not reach the image
    assert not np.any(out["dq"].values & PixelFlag.DO_NOT_USE & ~dq_in)
    np.testing.assert_array_equal(out["err"].values, err.astype(np.float32))
    np.testing.assert_array_equal(out["var_poisson"].values, var_p.astype(np.float32))
    np.testing.assert_array_equal(out["dumo"].values, dumo.astype(np.float32))
    meta = out.attrs["meta"]
    assert meta["cal_step"]["dark"] == "COMPLETE"
    assert meta["ref_file"]["dark"] == "dark.asdf"
    assert out.attrs["step_parameters"]["dark"] == {}


def test_numpy_and_dask_agree_and_input_untouched(files):
    image, dark = files
    np_ds = open_image(image, "numpy")
    dask_ds = open_image(image, "dask")
    snap = snapshot(np_ds)
    a = dark_current(np_ds, override_dark=dark)
    with dask.config.set(scheduler=raise_on_compute):
        b = dark_current(dask_ds, override_dark=dark)
    assert b["data"].chunks is not None
    xr.testing.assert_identical(a.drop_attrs(), b.compute().drop_attrs())
    assert_unchanged(np_ds, snap)
    assert np_ds.attrs["meta"]["cal_step"]["dark"] == "INCOMPLETE"


def test_nan_dark_is_zeroed_and_flagged(tmp_path, files):
    image, _ = files
    # full-frame (7, 8) is image pixel y=7, x=8; full-frame (1, 1) is in the border
    dark = write_dark(tmp_path / "dark.asdf", nan_at=[(7, 8), (1, 1)])
    ds = open_image(image, "dask")
    out = dark_current(ds, override_dark=dark).compute()
    assert np.isfinite(out["data"].values).all()
    assert out["data"].sel(y=7, x=8).values.item() == ds["data"].sel(y=7, x=8).values.item()
    flagged = (out["dq"].values & PixelFlag.UNRELIABLE_DARK) != 0
    assert flagged.sum() == 1
    assert out["dq"].sel(y=7, x=8).values.item() & PixelFlag.UNRELIABLE_DARK


def test_cut_out_gets_the_same_pixels(files):
    image, dark = files
    ds = open_image(image, "numpy")
    full = dark_current(ds, override_dark=dark)
    cut = dark_current(ds.sel(y=slice(6, 10), x=slice(5, 9)), override_dark=dark)
    xr.testing.assert_identical(
        cut["data"], full["data"].sel(y=slice(6, 10), x=slice(5, 9)).drop_attrs()
    )


def test_too_small_reference_raises(tmp_path, files):
    image, _ = files
    small = dm.DarkRefModel.create_fake_data(shape=(10, 10))
    small.save(tmp_path / "small_dark.asdf")
    with pytest.raises(ReferenceMismatchError, match=r"small_dark\.asdf"):
        dark_current(open_image(image), override_dark=tmp_path / "small_dark.asdf")


def test_not_applicable_reference_skips(files):
    image, _ = files
    ds = open_image(image, "numpy")
    out = dark_current(ds, resolver=ReferenceResolver(overrides={"dark": "N/A"}))
    assert out.attrs["meta"]["cal_step"]["dark"] == "SKIPPED"
    assert out.attrs["meta"]["ref_file"]["dark"] == "N/A"
    xr.testing.assert_identical(out["data"], ds["data"])
