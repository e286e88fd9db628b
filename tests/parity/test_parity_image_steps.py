"""Parity of the image steps with romancal 1.1.0 on the same small ImageModel and references.

romancal's Step classes ask CRDS for a context even when every reference is overridden, which
cannot work offline; so the oracle here is the function each Step delegates to
(``subtract_dark_current``, ``load_wcs``, ``apply_photom``, ``do_flat_field``).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("romancal")

import roman_datamodels.datamodels as dm

from romanxr.dq import PixelFlag
from romanxr.errors import ReferenceMismatchError
from romanxr.steps.assign_wcs import assign_wcs
from romanxr.steps.dark_current import dark_current
from romanxr.steps.flatfield import flatfield
from romanxr.steps.photom import photom
from romanxr.wcs import world_coords
from tests.unit._image_factories import (
    NX,
    NY,
    open_image,
    write_dark,
    write_distortion,
    write_flat,
    write_image,
    write_photom,
)

pytestmark = pytest.mark.oracle

MAS_DEG = 1 / 3600 / 1000


def _oracle_chain(image, dark, dist, phot, flat, include_var_flat):
    from romancal.assign_wcs.assign_wcs import load_wcs
    from romancal.dark_current.dark_current_step import subtract_dark_current
    from romancal.flatfield.flat_field import do_flat_field
    from romancal.photom.photom import apply_photom

    model = dm.open(image)
    with dm.open(dark) as ref:
        subtract_dark_current(model, ref)
    load_wcs(model, {"distortion": str(dist)})
    with dm.open(phot) as ref:
        apply_photom(model, ref)
    model.meta.cal_step.photom = "COMPLETE"  # as PhotomStep.process does after apply_photom
    with dm.open(flat) as ref:
        do_flat_field(model, ref, include_var_flat=include_var_flat)
    return model


def _ours(image, dark, dist, phot, flat, include_var_flat, backend="dask"):
    ds = open_image(image, backend)
    ds = dark_current(ds, override_dark=dark)
    ds = assign_wcs(ds, override_distortion=dist)
    ds = photom(ds, override_photom=phot)
    return flatfield(ds, override_flat=flat, include_var_flat=include_var_flat)


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("parity")
    from astropy.modeling.models import Polynomial2D, Shift

    # a distortion with some shape: shift, small rotation-like cross terms and a quadratic
    px = Polynomial2D(2, c0_0=-500.0, c1_0=0.11, c0_1=0.002, c2_0=1e-6)
    py = Polynomial2D(2, c0_0=-320.0, c1_0=-0.002, c0_1=0.11, c0_2=-2e-6)
    from astropy.modeling.models import Mapping

    distortion = (Shift(0) & Shift(0)) | Mapping((0, 1, 0, 1)) | (px & py)
    return {
        "image": write_image(tmp / "r_cal.asdf", scale_factor=1.00007),
        "dark": write_dark(tmp / "dark.asdf"),
        "dark_nan": write_dark(tmp / "dark_nan.asdf", nan_at=[(6, 7)]),
        "dist": write_distortion(tmp / "distortion.asdf", distortion),
        "phot": write_photom(tmp / "photom.asdf"),
        "flat": write_flat(tmp / "flat.asdf", nan_at=[(1, 1)], zero_at=[(2, 3)], dq_at=[(4, 4)]),
        "flat_wide": write_flat(tmp / "flat_wide.asdf", shape=(NY, NX + 2)),
    }


@pytest.mark.parametrize("include_var_flat", [False, True])
def test_image_chain_matches_romancal(refs, include_var_flat):
    args = (refs["image"], refs["dark"], refs["dist"], refs["phot"], refs["flat"])
    oracle = _oracle_chain(*args, include_var_flat)
    ours = _ours(*args, include_var_flat).compute()

    np.testing.assert_allclose(ours["data"].values, oracle.data, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(ours["dq"].values, oracle.dq)
    # romancal keeps float16 where the input was float16 (var_poisson, dumo, err without
    # var_flat); romanxr computes in float32 and rounds only on write
    np.testing.assert_allclose(ours["err"].values, np.asarray(oracle.err, np.float32), rtol=1e-3)
    np.testing.assert_allclose(ours["var_poisson"].values, oracle.var_poisson, rtol=1e-3)
    np.testing.assert_allclose(ours["dumo"].values, oracle.dumo, rtol=1e-3, atol=1e-6)
    if include_var_flat:
        np.testing.assert_allclose(ours["var_flat"].values, oracle.var_flat, rtol=1e-5)
    assert ("var_flat" in ours) == include_var_flat

    meta = ours.attrs["meta"]
    for key in ("conversion_megajanskys", "conversion_megajanskys_uncertainty", "pixel_area"):
        assert meta["photometry"][key] == pytest.approx(oracle.meta.photometry[key], rel=1e-12)
    assert meta["wcsinfo"]["s_region"] == oracle.meta.wcsinfo.s_region
    for step in ("dark", "assign_wcs", "photom", "flat_field"):
        assert meta["cal_step"][step] == oracle.meta.cal_step[step] == "COMPLETE"

    # sky position of every pixel (a grid covering the image) to < 1 mas
    sky = world_coords(ours)
    yy, xx = np.mgrid[0:NY, 0:NX]
    ra, dec = oracle.meta.wcs(xx, yy)
    assert np.all(np.abs(sky["dec"].values - dec) < MAS_DEG)
    cos_dec = np.cos(np.radians(dec))
    assert np.all(np.abs(sky["ra"].values - ra) * cos_dec < MAS_DEG)
    # and the frames and the bounding box are romancal's
    wcs = meta["wcs"]
    assert wcs.available_frames == oracle.meta.wcs.available_frames
    assert wcs.bounding_box.bounding_box(order="F") == oracle.meta.wcs.bounding_box.bounding_box(
        order="F"
    )
    for x, y in [(-1, 0), (NX, 2)]:
        assert np.isnan(wcs(x, y)).all() and np.isnan(oracle.meta.wcs(x, y)).all()


def test_numpy_path_matches_too(refs):
    args = (refs["image"], refs["dark"], refs["dist"], refs["phot"], refs["flat"])
    oracle = _oracle_chain(*args, False)
    ours = _ours(*args, False, backend="numpy")
    np.testing.assert_allclose(ours["data"].values, oracle.data, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(ours["dq"].values, oracle.dq)


def test_documented_difference_nan_dark(refs):
    """romancal subtracts a NaN dark (data NaN); romanxr subtracts 0 and flags UNRELIABLE_DARK."""
    from romancal.dark_current.dark_current_step import subtract_dark_current

    model = dm.open(refs["image"])
    with dm.open(refs["dark_nan"]) as ref:
        subtract_dark_current(model, ref)
    model.close()
    ours = dark_current(open_image(refs["image"], "numpy"), override_dark=refs["dark_nan"])
    # full-frame (6, 7) is L2 array index (2, 3)
    assert np.isnan(model.data[2, 3])
    assert ours["data"].values[2, 3] == open_image(refs["image"], "numpy")["data"].values[2, 3]
    assert ours["dq"].values[2, 3] & PixelFlag.UNRELIABLE_DARK
    assert not model.dq[2, 3] & PixelFlag.UNRELIABLE_DARK
    # everywhere else identical
    mask = np.ones((NY, NX), bool)
    mask[2, 3] = False
    np.testing.assert_array_equal(ours["data"].values[mask], model.data[mask])
    np.testing.assert_array_equal(ours["dq"].values[mask], model.dq[mask])


def test_documented_difference_flat_shape(refs):
    """romancal skips a flat of the wrong shape; romanxr raises ReferenceMismatchError."""
    from romancal.flatfield.flat_field import do_flat_field

    model = dm.open(refs["image"])
    with dm.open(refs["flat_wide"]) as ref:
        do_flat_field(model, ref)
    model.close()
    assert model.meta.cal_step.flat_field == "SKIPPED"
    with pytest.raises(ReferenceMismatchError):
        flatfield(open_image(refs["image"], "numpy"), override_flat=refs["flat_wide"])


def test_fully_saturated_image_matches_romancal():
    """Zeroed image of a saturated ramp; dumo is a documented difference."""
    import xarray as xr
    from romancal.pipeline.exposure_pipeline import ExposurePipeline

    from romanxr.steps.saturated_exposure import is_fully_saturated, saturated_image

    n, ny, nx = 3, 12, 14
    rng = np.random.default_rng(0)
    data = rng.uniform(60000, 65000, (n, ny, nx)).astype(np.float32)
    groupdq = np.full((n, ny, nx), 2, np.uint8)
    groupdq[0, 5, 6] |= 4
    pixeldq = np.zeros((ny, nx), np.uint32)
    pixeldq[6, 7] = 2048
    model = dm.RampModel.create_fake_data(shape=(n, ny, nx))
    model.meta.exposure.read_pattern = [[1], [2], [3]]
    model.meta.exposure.frame_time = 3.04
    model.meta.exposure.nresultants = n
    model.meta.cal_step.dq_init = "COMPLETE"
    model.meta.cal_step.saturation = "COMPLETE"
    model.data, model.groupdq, model.pixeldq = data, groupdq, pixeldq
    model.amp33 = np.zeros((n, ny, 128), np.uint16)
    for side in ("left", "right"):
        cols = slice(None, 4) if side == "left" else slice(-4, None)
        model[f"border_ref_pix_{side}"] = data[:, :, cols].copy()
        model[f"dq_border_ref_pix_{side}"] = pixeldq[:, cols].copy()
    for side in ("top", "bottom"):
        rows = slice(None, 4) if side == "top" else slice(-4, None)
        model[f"border_ref_pix_{side}"] = data[:, rows, :].copy()
        model[f"dq_border_ref_pix_{side}"] = pixeldq[rows, :].copy()
    oracle = ExposurePipeline().create_fully_saturated_zeroed_image(model)

    ramp = xr.Dataset(
        {
            "data": (("resultant", "y", "x"), data),
            "groupdq": (("resultant", "y", "x"), groupdq),
            "pixeldq": (("y", "x"), pixeldq),
            "amp33": (("resultant", "y", "amp33_x"), np.asarray(model.amp33)),
        },
        coords={"resultant": np.arange(n), "y": np.arange(ny), "x": np.arange(nx)},
        attrs={"meta": {"cal_step": {"dq_init": "COMPLETE", "saturation": "COMPLETE"}}},
    ).chunk({"y": 5})
    assert is_fully_saturated(ramp)
    ours = saturated_image(ramp).compute()
    for name in ("data", "err", "var_poisson", "chisq"):
        np.testing.assert_array_equal(ours[name].values, np.asarray(oracle[name], np.float32))
    np.testing.assert_array_equal(ours["dq"].values, oracle.dq)
    for side in ("left", "right", "top", "bottom"):
        for prefix in ("border_ref_pix_", "dq_border_ref_pix_"):
            np.testing.assert_array_equal(ours[prefix + side].values, oracle[prefix + side])
    assert ours.attrs["meta"]["cal_step"] == dict(oracle.meta.cal_step)
    assert ours.attrs["meta"]["photometry"] == dict(oracle.meta.photometry)
    # documented differences: romancal keeps the uniform-weight slope of the saturated
    # resultants as dumo; romanxr zeroes dumo. Neither has var_rnoise.
    assert np.abs(oracle.dumo).max() > 1
    assert not ours["dumo"].values.any()
    assert "var_rnoise" not in oracle and "var_rnoise" not in ours
