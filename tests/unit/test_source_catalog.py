"""source_catalog on small synthetic images: what it finds, laziness, input safety, errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from romanxr.errors import ConfigError, InputError, ReferenceMismatchError
from romanxr.steps.source_catalog import catalog_table, source_catalog
from tests.unit.detector_helpers import raise_if_dask_computes

SHAPE = (96, 96)
SIGMA = 1.2
#: star positions (x, y, total flux in DN/s) on the test image
STARS = np.array(
    [(20.3, 22.7, 4000.0), (70.6, 30.2, 2500.0), (45.1, 70.9, 6000.0), (80.2, 80.4, 1500.0)]
)
TO_MJYSR = 0.4
PIXEL_AREA = (0.11 / 206264.80624709636) ** 2


WCSINFO = {
    "v2_ref": -503.0,
    "v3_ref": -318.0,
    "ra_ref": 150.0,
    "dec_ref": 2.0,
    "roll_ref": 0.15,
    "vparity": -1,
    "v3yangle": -60.0,
}


def _wcs(shape):
    """A Roman gwcs (detector -> v2v3 -> world) of 0.11"/pixel without distortion."""
    from astropy.modeling import models

    from romanxr.wcs import build_wcs

    ny, nx = shape
    distortion = (
        (models.Shift(-(nx - 1) / 2) & models.Shift(-(ny - 1) / 2))
        | (models.Scale(0.11) & models.Scale(0.11))
        | (models.Shift(WCSINFO["v2_ref"]) & models.Shift(WCSINFO["v3_ref"]))
    )
    meta = {"wcsinfo": WCSINFO, "velocity_aberration": {"scale_factor": 1.0}}
    return build_wcs(distortion, meta, shape)


def make_image(*, seed=0, chunks=None, exposure_type="WFI_IMAGE"):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    data = np.full(SHAPE, 5.0)
    for x, y, f in STARS:
        data += (
            f / (2 * np.pi * SIGMA**2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * SIGMA**2))
        )
    err = np.sqrt(0.25 + data * 0.01)
    data = data + rng.normal(0.0, 0.5, SHAPE)
    dq = np.zeros(SHAPE, np.uint32)
    dq[5, 5] = 1  # DO_NOT_USE: masked
    data[5, 5] = np.nan
    meta = {
        "filename": "r0000101001001001001_0001_wfi01_cal.asdf",
        "exposure": {"type": exposure_type},
        "instrument": {"name": "WFI", "detector": "WFI01", "optical_element": "F158"},
        "photometry": {"conversion_megajanskys": TO_MJYSR, "pixel_area": PIXEL_AREA},
        "wcs": _wcs(SHAPE),
        "wcsinfo": dict(WCSINFO),
        "cal_step": {},
    }
    ds = xr.Dataset(
        {
            "data": (("y", "x"), data.astype(np.float32)),
            "err": (("y", "x"), err.astype(np.float16)),
            "dq": (("y", "x"), dq),
        },
        coords={"y": np.arange(4, 4 + SHAPE[0]), "x": np.arange(4, 4 + SHAPE[1])},
        attrs={"meta": meta},
    )
    return ds.chunk(chunks) if chunks else ds


def catalog_references(tmp) -> dict:
    """APCORR and EPSF references of the test images' PSF, as step overrides."""
    from romanxr.testing.catalog_refs import make_apcorr_reference, make_epsf_reference

    return {
        "override_apcorr": str(make_apcorr_reference(tmp / "apcorr.asdf", psf_sigma=SIGMA)),
        "override_epsf": str(make_epsf_reference(tmp / "epsf.asdf", psf_sigma=SIGMA)),
    }


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    return catalog_references(tmp_path_factory.mktemp("catrefs"))


PARAMS = {"bkg_boxsize": 32, "npixels": 5, "snr_threshold": 5.0}


def _matched(table):
    x = np.asarray(table["x_centroid"])
    y = np.asarray(table["y_centroid"])
    order = [int(np.argmin(np.hypot(x - sx, y - sy))) for sx, sy, _ in STARS]
    return table[order]


def test_finds_the_stars_with_their_positions_and_fluxes(refs):
    out = source_catalog(make_image(), **PARAMS, **refs)
    table = catalog_table(out)
    assert len(table) == len(STARS)
    rows = _matched(table)
    np.testing.assert_allclose(rows["x_centroid"], STARS[:, 0], atol=0.05)
    np.testing.assert_allclose(rows["x_psf"], STARS[:, 0], atol=0.02)
    np.testing.assert_allclose(rows["y_psf"], STARS[:, 1], atol=0.02)
    # DN/s -> nJy: times the MJy/sr conversion and the pixel area
    njy = STARS[:, 2] * TO_MJYSR * PIXEL_AREA * 1e6 * 1e-26 / 1e-35
    np.testing.assert_allclose(rows["psf_flux"], njy, rtol=0.01)
    assert str(table["psf_flux"].unit) == "nJy" and str(table["x_centroid"].unit) == "pix"
    # the 1.6" aperture (14.5 px) holds all of a sigma=1.2 px star
    np.testing.assert_allclose(rows["aper16_flux"], njy, rtol=0.02)
    # sky positions through the WCS
    ra, _ = out.attrs["meta"]["wcs"](rows["x_centroid"], rows["y_centroid"])
    np.testing.assert_allclose(rows["ra_centroid"], ra, atol=1e-10)
    # segmentation labels are the catalog labels, masked pixel not a source
    seg = out["segmentation"].values
    assert set(np.unique(seg)) == {0, *table["label"]}
    assert seg.dtype == np.uint32 and seg[5, 5] == 0
    assert not table["is_extended"].any()
    assert out.attrs["meta"]["cal_step"]["source_catalog"] == "COMPLETE"
    assert out.attrs["meta"]["ref_file"]["apcorr"] == "apcorr.asdf"


def test_dask_input_is_lazy_same_result_and_measured_once(refs):
    eager = catalog_table(source_catalog(make_image(), **PARAMS, **refs))
    lazy_in = make_image(chunks={"y": 48, "x": 48})
    with raise_if_dask_computes():
        out = source_catalog(lazy_in, **PARAMS, **refs)
    assert out["segmentation"].chunks is not None
    assert out["segmentation"].chunks == lazy_in["data"].chunks
    seg = out["segmentation"].values  # measures
    table = out.roman.catalog  # the same measurement, not a second one
    assert table is catalog_table(out)
    np.testing.assert_array_equal(table["psf_flux"], eager["psf_flux"])
    assert seg.max() == len(table)


def test_input_is_not_modified(refs):
    ds = make_image()
    wcs = ds.attrs["meta"]["wcs"]
    before = ds.copy(deep=True)
    source_catalog(ds, **PARAMS, **refs)
    # (a deep copy of a gwcs does not compare equal to it: compare the rest)
    xr.testing.assert_identical(ds.drop_attrs(), before.drop_attrs())
    assert ds.attrs["meta"]["wcs"] is wcs
    assert set(ds.attrs) == {"meta"} and ds.attrs["meta"]["cal_step"] == {}
    assert set(ds.attrs["meta"]) == set(before.attrs["meta"])


def test_non_imaging_exposure_is_skipped_without_references():
    out = source_catalog(make_image(exposure_type="WFI_SPECTRAL"), override_apcorr="/nonexistent")
    assert out.attrs["meta"]["cal_step"]["source_catalog"] == "SKIPPED"
    assert "segmentation" not in out


def test_fit_psf_false_needs_no_epsf_and_has_no_psf_columns(refs):
    out = source_catalog(
        make_image(), **PARAMS, fit_psf=False, override_apcorr=refs["override_apcorr"]
    )
    table = catalog_table(out)
    assert "psf_flux" not in table.colnames and "aper02_flux" in table.colnames


@pytest.mark.parametrize(
    ("name", "value"),
    [("npixels", 0), ("kernel_fwhm", -1.0), ("bkg_boxsize", 2.5), ("snr_threshold", "x")],
)
def test_bad_parameter_is_a_config_error_naming_it(name, value, refs):
    with pytest.raises(ConfigError, match=name):
        source_catalog(make_image(), **{**PARAMS, name: value}, **refs)


def test_missing_wcs_names_the_field_and_the_fix(refs):
    ds = make_image()
    ds.attrs["meta"] = {**ds.attrs["meta"], "wcs": None}
    with pytest.raises(InputError, match=r"meta\.wcs.*assign_wcs"):
        source_catalog(ds, **refs)


def test_apcorr_without_the_element_names_file_and_option(tmp_path, refs):
    from romanxr.testing.catalog_refs import make_apcorr_reference

    other = make_apcorr_reference(tmp_path / "f062_only.asdf", elements=("F062",))
    with pytest.raises(ReferenceMismatchError, match=r"f062_only\.asdf.*F158.*override_apcorr"):
        source_catalog(
            make_image(), override_apcorr=str(other), override_epsf=refs["override_epsf"]
        )


def test_dataset_without_catalog_says_what_to_do():
    with pytest.raises(InputError, match="source_catalog"):
        catalog_table(make_image())


def test_written_products_read_back_and_validate(tmp_path, refs):
    import pandas as pd
    import roman_datamodels.datamodels as dm

    from romanxr.io.catalog_io import read_catalog

    out = source_catalog(make_image(), **PARAMS, **refs)
    cat, segm = out.roman.to_catalog_files(tmp_path / "r0001_wfi01_cal.asdf")
    assert cat.name == "r0001_wfi01_cat.parquet" and segm.name == "r0001_wfi01_segm.asdf"
    frame = pd.read_parquet(cat)
    assert len(frame) == len(STARS)
    back = read_catalog(cat)
    assert str(back["aper04_flux"].unit) == "nJy"
    np.testing.assert_array_equal(back["psf_flux"], catalog_table(out)["psf_flux"])
    with dm.open(segm) as model:
        model.validate()
        assert type(model) is dm.SegmentationMapModel
        np.testing.assert_array_equal(model.data, out["segmentation"].values)
    # nothing is overwritten unasked
    from romanxr.errors import OutputError

    with pytest.raises(OutputError):
        out.roman.to_catalog_files(tmp_path / "r0001_wfi01_cal.asdf")


# ------------------------------------------------------------------------------------------
# tweakreg: options and failures (the alignment itself: tests/parity)


def test_tweakreg_default_catalogue_fails_fast_offline_naming_the_option(refs):
    import time

    from romanxr.steps.tweakreg import tweakreg

    cat = source_catalog(make_image(), **PARAMS, **refs)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"abs_refcat.*--steps\.tweakreg\.abs_refcat"):
        tweakreg(cat)
    assert time.perf_counter() - start < 1.0


def test_tweakreg_needs_a_source_catalog_and_an_existing_file(tmp_path):
    from romanxr.steps.tweakreg import tweakreg

    with pytest.raises(ConfigError, match="no such file"):
        tweakreg(make_image(), abs_refcat=str(tmp_path / "missing.ecsv"))
    refcat = tmp_path / "ref.ecsv"
    _write_refcat(refcat, np.array([150.0]), np.array([2.0]))
    with pytest.raises(InputError, match="source_catalog"):
        tweakreg(make_image(), abs_refcat=str(refcat))


def _write_refcat(path, ra, dec):
    from astropy.table import Table

    Table({"ra": ra, "dec": dec}).write(path, format="ascii.ecsv")


def test_tweakreg_with_too_few_sources_is_failed_and_keeps_the_wcs(tmp_path, refs):
    from romanxr.steps.tweakreg import tweakreg

    cat = source_catalog(make_image(), **PARAMS, **refs)
    table = catalog_table(cat)
    refcat = tmp_path / "ref.ecsv"
    _write_refcat(refcat, np.asarray(table["ra"]), np.asarray(table["dec"]))
    out = tweakreg(cat, abs_refcat=str(refcat))  # 4 stars < abs_minobj=10
    meta = out.attrs["meta"]
    assert meta["cal_step"]["tweakreg"] == "FAILED"
    assert meta["wcs_fit_results"]["status"] == "FAILED"
    assert "too few" in meta["wcs_fit_results"]["reason"]
    x, y = np.array([0.0, 50.0, 95.0]), np.array([0.0, 40.0, 95.0])
    np.testing.assert_array_equal(meta["wcs"](x, y), cat.attrs["meta"]["wcs"](x, y))
    assert meta["wcs"].name == cat.attrs["meta"]["wcs"].name
    assert "tweakreg" not in cat.attrs["meta"]["cal_step"]  # input untouched


def test_tweakreg_checks_separation_against_tolerance(tmp_path):
    from romanxr.steps.tweakreg import tweakreg

    with pytest.raises(ConfigError, match="abs_separation"):
        tweakreg(make_image(), abs_refcat="x.ecsv", abs_separation=0.5, abs_tolerance=0.7)


def test_tweakreg_skips_non_imaging_exposures():
    from romanxr.steps.tweakreg import tweakreg

    out = tweakreg(make_image(exposure_type="WFI_SPECTRAL"))
    assert out.attrs["meta"]["cal_step"]["tweakreg"] == "SKIPPED"


# ------------------------------------------------------------------------------------------
# the plan: both steps run by default and are skipped when they cannot; asking for tweakreg
# runs source_catalog too


NA_REFS = {"override_apcorr": "N/A", "override_epsf": "N/A"}


def test_plan_runs_the_catalog_steps_by_default_or_skips_them_with_a_reason(tmp_path):
    from romanxr.pipeline import RUN, SKIP, plan
    from romanxr.refs import ReferenceResolver

    image = make_image()
    # no CRDS here and no overrides: source_catalog has no APCORR/EPSF; tweakreg's default
    # catalogue is a network service: both SKIPPED, recorded skip=True, no error
    nowhere = ReferenceResolver(crds_path=tmp_path / "no_cache", server_url="")
    runs = {r.name: r for r in plan({}, image, start_at="source_catalog", resolver=nowhere)}
    assert [runs[n].action for n in ("source_catalog", "tweakreg")] == [SKIP, SKIP]
    assert runs["source_catalog"].reason.startswith("no apcorr/epsf reference")
    assert "--steps.tweakreg.abs_refcat" in runs["tweakreg"].reason
    assert runs["source_catalog"].record["skip"] is True
    assert runs["tweakreg"].record["skip"] is True
    # with references: source_catalog runs by default, tweakreg still skipped
    resolver = ReferenceResolver(overrides={"apcorr": "N/A", "epsf": "N/A"})
    runs = {r.name: r for r in plan({}, image, start_at="source_catalog", resolver=resolver)}
    assert (runs["source_catalog"].action, runs["tweakreg"].action) == (RUN, SKIP)
    assert runs["source_catalog"].record["skip"] is False
    refcat = tmp_path / "ref.ecsv"
    _write_refcat(refcat, np.array([150.0]), np.array([2.0]))
    asked = {"tweakreg": {"abs_refcat": str(refcat)}, "source_catalog": NA_REFS}
    runs = {r.name: r for r in plan(asked, image, start_at="source_catalog")}
    assert runs["source_catalog"].action == RUN and runs["tweakreg"].action == RUN


def test_plan_skips_the_catalog_steps_on_wfsc_and_spectral_exposures(tmp_path):
    from romanxr.pipeline import SKIP, plan

    refcat = tmp_path / "ref.ecsv"
    _write_refcat(refcat, np.array([150.0]), np.array([2.0]))
    asked = {"tweakreg": {"abs_refcat": str(refcat)}, "source_catalog": NA_REFS}
    for kind in ("WFI_WFSC", "WFI_SPECTRAL", "WFI_IM_DARK", "WFI_FLAT"):
        image = make_image(exposure_type=kind)
        runs = {r.name: r for r in plan(asked, image, start_at="source_catalog")}
        assert runs["source_catalog"].action == SKIP, kind
        assert runs["tweakreg"].action == SKIP, kind
        assert kind in runs["tweakreg"].reason and "WFI_IMAGE/WFI_LOLO" in runs["tweakreg"].reason


def test_asking_for_source_catalog_without_references_is_an_error(tmp_path):
    from romanxr.errors import ReferenceFileError
    from romanxr.pipeline import plan

    missing = tmp_path / "no_apcorr.asdf"
    with pytest.raises(ReferenceFileError, match="override_apcorr"):
        plan(
            {"source_catalog": {"override_apcorr": str(missing)}},
            make_image(),
            start_at="source_catalog",
        )


def test_pipeline_with_tweakreg_on_the_default_catalogue_fails_before_any_work():
    from romanxr.pipeline import plan

    with pytest.raises(ConfigError, match=r"--steps\.tweakreg\.abs_refcat"):
        plan({"tweakreg": {"skip": False}}, make_image(), start_at="source_catalog")
