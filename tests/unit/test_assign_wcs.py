"""assign_wcs and world_coords: the gwcs pipeline, bounding box, DVA, s_region, cut-outs."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr
from astropy.modeling import bind_bounding_box
from astropy.modeling.models import Shift

from romanxr.errors import ExposureError
from romanxr.refs import ReferenceResolver
from romanxr.steps.assign_wcs import assign_wcs
from romanxr.wcs import world_coords
from tests.unit._image_factories import (
    NX,
    NY,
    assert_unchanged,
    open_image,
    raise_on_compute,
    snapshot,
    with_meta,
    write_distortion,
    write_image,
)

RA_REF, DEC_REF = 156.0, 54.2
V2_REF, V3_REF = -503.0, -318.0
# pixel (5, 6) of the image sits exactly at the telescope reference point
REF_PIXEL = (5, 6)
CENTRED = Shift(V2_REF - REF_PIXEL[0]) & Shift(V3_REF - REF_PIXEL[1])


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return write_image(tmp_path_factory.mktemp("wcs") / "r_cal.asdf")


@pytest.fixture(scope="module")
def image_ds(image):
    return open_image(image, "numpy")


@pytest.fixture(scope="module")
def simple_distortion(tmp_path_factory):
    return write_distortion(tmp_path_factory.mktemp("dist") / "distortion.asdf")


@pytest.fixture(scope="module")
def centred_distortion(tmp_path_factory):
    return write_distortion(tmp_path_factory.mktemp("dist") / "centred.asdf", CENTRED)


def _separation_deg(ra1, dec1, ra2, dec2):
    """Great-circle distance (haversine: accurate for small angles)."""
    ra1, dec1, ra2, dec2 = (np.radians(v) for v in (ra1, dec1, ra2, dec2))
    h = np.sin((dec1 - dec2) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra1 - ra2) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(h)))


def test_every_pixel_near_the_reference_and_nan_outside(image, simple_distortion):
    ds = open_image(image, "dask")
    snap = snapshot(ds)
    with dask.config.set(scheduler=raise_on_compute):
        out = assign_wcs(ds, override_distortion=simple_distortion)
    wcs = out.attrs["meta"]["wcs"]
    yy, xx = np.mgrid[0:NY, 0:NX]
    ra, dec = wcs(xx, yy)
    # Shift(1) & Shift(2): every pixel is ~500 arcsec = 0.14 deg from the reference point
    assert np.all(np.abs(ra - RA_REF) < 0.3) and np.all(np.abs(dec - DEC_REF) < 0.2)
    for x, y in [(-1, 0), (0, -1), (NX, 0), (0, NY)]:
        assert np.isnan(wcs(x, y)).all()
    assert wcs.available_frames == ["detector", "v2v3", "v2v3vacorr", "world"]
    assert out.attrs["meta"]["cal_step"]["assign_wcs"] == "COMPLETE"
    assert out.attrs["meta"]["ref_file"]["distortion"] == "distortion.asdf"
    assert out["data"].data is ds["data"].data
    assert_unchanged(ds, snap)


def test_reference_pixel_maps_to_reference_sky_position(image_ds, centred_distortion):
    out = assign_wcs(image_ds, override_distortion=centred_distortion)
    wcs = out.attrs["meta"]["wcs"]
    ra, dec = wcs(*REF_PIXEL)
    assert ra == pytest.approx(RA_REF, abs=1e-10)
    assert dec == pytest.approx(DEC_REF, abs=1e-10)
    # rotations keep distances: the sky distance from the reference equals the distance of
    # (v2, v3) = (V2_REF + dx, V3_REF + dy) arcsec from (V2_REF, V3_REF) on the V2/V3 sphere
    yy, xx = np.mgrid[0:NY, 0:NX]
    ra, dec = wcs(xx, yy)
    dx, dy = xx - REF_PIXEL[0], yy - REF_PIXEL[1]
    expected = _separation_deg(
        (V2_REF + dx) / 3600, (V3_REF + dy) / 3600, V2_REF / 3600, V3_REF / 3600
    )
    np.testing.assert_allclose(
        _separation_deg(ra, dec, RA_REF, DEC_REF), expected, rtol=1e-9, atol=1e-13
    )
    # ~ hypot(dx, dy) arcsec, to the flatness of the sphere over 12 pixels
    np.testing.assert_allclose(expected, np.hypot(dx, dy) / 3600, rtol=1e-5)
    # and the v2v3 frame is the distortion's output
    v2, v3 = wcs.get_transform("detector", "v2v3")(3.0, 4.0)
    assert (v2, v3) == (pytest.approx(V2_REF - 2), pytest.approx(V3_REF - 2))


@pytest.mark.parametrize("scale", [1.0001, 0.9998])
def test_velocity_aberration_scales_offsets(image_ds, centred_distortion, scale):
    plain = assign_wcs(
        with_meta(image_ds, velocity_aberration={"scale_factor": 1.0}),
        override_distortion=centred_distortion,
    ).attrs["meta"]["wcs"]
    dva = assign_wcs(
        with_meta(image_ds, velocity_aberration={"scale_factor": scale}),
        override_distortion=centred_distortion,
    ).attrs["meta"]["wcs"]
    # v' = s v + (1 - s) v_ref: the reference point stays, offsets from it scale by s
    assert dva(*REF_PIXEL) == (pytest.approx(RA_REF, abs=1e-10), pytest.approx(DEC_REF, abs=1e-10))
    far = (NX - 1, NY - 1)
    d_plain = _separation_deg(*plain(*far), RA_REF, DEC_REF)
    d_dva = _separation_deg(*dva(*far), RA_REF, DEC_REF)
    assert d_dva / d_plain == pytest.approx(scale, rel=1e-7)


@pytest.mark.parametrize("scale", [0.0, -999999.0])
def test_non_positive_scale_is_no_correction(image_ds, centred_distortion, scale):
    plain = assign_wcs(
        with_meta(image_ds, velocity_aberration={"scale_factor": 1.0}),
        override_distortion=centred_distortion,
    ).attrs["meta"]["wcs"]
    odd = assign_wcs(
        with_meta(image_ds, velocity_aberration={"scale_factor": scale}),
        override_distortion=centred_distortion,
    ).attrs["meta"]["wcs"]
    assert odd(NX - 1, NY - 1) == plain(NX - 1, NY - 1)


def test_s_region(image_ds, simple_distortion):
    out = assign_wcs(image_ds, override_distortion=simple_distortion)
    region = out.attrs["meta"]["wcsinfo"]["s_region"]
    tokens = region.split()
    assert len(tokens) == 10
    assert tokens[:2] == ["POLYGON", "ICRS"]
    assert region.startswith("POLYGON ICRS  ") and not region.startswith("POLYGON ICRS   ")
    assert all(len(t.split(".")[1]) == 9 for t in tokens[2:])
    wcs = out.attrs["meta"]["wcs"]
    corners = [(-0.5, -0.5), (-0.5, NY - 0.5), (NX - 0.5, NY - 0.5), (NX - 0.5, -0.5)]
    expected = np.array([wcs(x, y, with_bounding_box=False) for x, y in corners]).ravel()
    np.testing.assert_allclose([float(t) for t in tokens[2:]], expected, atol=1e-9)


def test_s_region_ra_is_positive_near_zero(image_ds, centred_distortion):
    out = assign_wcs(
        with_meta(image_ds, wcsinfo={"ra_ref": 0.0}), override_distortion=centred_distortion
    )
    ras = [float(t) for t in out.attrs["meta"]["wcsinfo"]["s_region"].split()[2::2]]
    assert all(0 <= r < 360 for r in ras)
    assert min(ras) < 0.01 and max(ras) > 359.99  # the footprint straddles RA = 0


def test_transform_bounding_box_is_kept(tmp_path, image_ds):
    transform = Shift(1) & Shift(2)
    bind_bounding_box(transform, ((0, 5), (0, 3)), order="F")  # x 0..5, y 0..3
    dist = write_distortion(tmp_path / "boxed.asdf", transform)
    wcs = assign_wcs(image_ds, override_distortion=dist).attrs["meta"]["wcs"]
    assert np.isfinite(wcs(4, 2)).all()
    assert np.isnan(wcs(7, 2)).all()
    assert np.isnan(wcs(4, 5)).all()


def test_world_coords_lazy_and_equal_to_the_wcs(image, centred_distortion):
    out = assign_wcs(open_image(image, "dask"), override_distortion=centred_distortion)
    with dask.config.set(scheduler=raise_on_compute):
        sky = world_coords(out)
    assert sky["ra"].chunks == out["data"].chunks
    assert sky["ra"].dims == ("y", "x")
    wcs = out.attrs["meta"]["wcs"]
    yy, xx = np.mgrid[0:NY, 0:NX]
    ra, dec = wcs(xx, yy)
    np.testing.assert_array_equal(sky["ra"].values, ra)
    np.testing.assert_array_equal(sky["dec"].values, dec)
    # pixel labels are absolute: image coordinate (y=4+6, x=4+5) is the reference pixel
    point = sky.sel(y=4 + REF_PIXEL[1], x=4 + REF_PIXEL[0])
    assert float(point["ra"]) == pytest.approx(RA_REF, abs=1e-10)
    assert float(point["dec"]) == pytest.approx(DEC_REF, abs=1e-10)


def test_cut_out_has_the_same_sky(image_ds, centred_distortion):
    ds = image_ds
    full = world_coords(assign_wcs(ds, override_distortion=centred_distortion))
    cut_ds = ds.sel(y=slice(7, 11), x=slice(6, 10))
    cut = assign_wcs(cut_ds, override_distortion=centred_distortion)
    sky = world_coords(cut)
    ref = full.sel(y=slice(7, 11), x=slice(6, 10))
    np.testing.assert_allclose(sky["ra"].values, ref["ra"].values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(sky["dec"].values, ref["dec"].values, rtol=0, atol=1e-12)
    # its gwcs takes the cut-out's own array indices, and its box is the cut-out's
    wcs = cut.attrs["meta"]["wcs"]
    assert wcs(0, 0) == pytest.approx(full.attrs["meta"]["wcs"](2, 3))
    assert np.isfinite(wcs(4, 4)).all()
    assert np.isnan(wcs(5, 0)).all()


def test_world_coords_needs_a_wcs(image_ds):
    with pytest.raises(ExposureError, match="assign_wcs"):
        world_coords(image_ds)


@pytest.mark.parametrize("value", [-999999.0, None, float("nan")])
def test_placeholder_pointing_raises(image_ds, simple_distortion, value):
    with pytest.raises(ExposureError, match="ra_ref"):
        assign_wcs(
            with_meta(image_ds, wcsinfo={"ra_ref": value}), override_distortion=simple_distortion
        )


def test_not_applicable_reference_skips(image_ds):
    ds = image_ds
    out = assign_wcs(ds, resolver=ReferenceResolver(overrides={"distortion": "N/A"}))
    assert out.attrs["meta"]["cal_step"]["assign_wcs"] == "SKIPPED"
    assert out.attrs["meta"]["wcs"] is None
    xr.testing.assert_identical(out["data"], ds["data"])
