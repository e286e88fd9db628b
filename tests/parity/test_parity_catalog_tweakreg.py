"""source_catalog and tweakreg parity with romancal 1.1.0; the catalog against the truth.

One simulated 264x264 exposure (256x256 science pixels, ~110 Gaussian stars) is calibrated by
romanxr; romancal's SourceCatalogStep and romanxr's source_catalog then run on that same
cal.asdf with the same EPSF and APCORR references (romancal reads them from the local CRDS
cache; it has no ``override_epsf``), fully offline. tweakreg: the stars' true positions, moved
by a known shift and rotation, are the reference catalogue; romanxr's tweakreg and romancal's
TweakRegStep both align the image to it.

Run: ``pytest tests/parity/test_parity_catalog_tweakreg.py -m oracle`` (about 15 s).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("romancal")

import roman_datamodels.datamodels as dm

pytestmark = pytest.mark.oracle

FRAME = (264, 264)
SEED = 11
SKY = 40.0
PSF_SIGMA = 1.2
#: non-default detection options (the defaults are for a full 4088x4088 frame: 1000-pixel
#: background boxes, 25-pixel sources) used by both tools
OPTIONS = {"bkg_boxsize": 64, "npixels": 5, "snr_threshold": 2.0}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from romanxr.pipeline import calibrate
    from romanxr.testing import make_detector, make_reference_set, make_scene, simulate_exposure
    from romanxr.testing.catalog_refs import add_catalog_references
    from romanxr.testing.crds_cache import build_local_crds_cache

    folder = tmp_path_factory.mktemp("catalog_parity")
    det = make_detector(FRAME, seed=SEED, drift_amplitude=0.0, dark_decay_amplitude=0.0)
    refs = add_catalog_references(make_reference_set(folder / "references", det))
    cache = build_local_crds_cache(folder / "crds_cache", refs)
    (folder / "input").mkdir()
    sy, sx = det.science_shape
    scene, sources = make_scene(
        det.science_shape, seed=SEED, sky=SKY, n_stars=sy * sx // 600, psf_sigma=PSF_SIGMA
    )
    sim = simulate_exposure(det, seed=SEED, scene=scene, path=folder / "input")
    cal = folder / "r_cal.asdf"
    with cache.activate():
        calibrate(
            sim.path, steps={"refpix": {"skip": True}, "dark_decay": {"skip": True}}, output=cal
        )
    return {"cal": cal, "cache": cache, "refs": refs, "sources": sources, "det": det}


@pytest.fixture(scope="module")
def catalogs(run):
    from romancal.source_catalog import SourceCatalogStep

    from romanxr.pipeline import open_exposure
    from romanxr.steps.source_catalog import catalog_table, source_catalog

    with run["cache"].activate():
        ours_ds = source_catalog(open_exposure(run["cal"]), **OPTIONS)
        ours = catalog_table(ours_ds)
        segm_ours = ours_ds["segmentation"].values
        with dm.open(run["cal"]) as model:
            cat_model, segm_model = SourceCatalogStep.call(model, **OPTIONS)
    return ours, segm_ours, cat_model.source_catalog, np.asarray(segm_model.data), ours_ds


def _matched(ours, theirs):
    from astropy.table import join

    return join(ours, theirs, keys="label", table_names=["x", "r"])


def test_same_columns_units_and_sources(catalogs):
    ours, _, theirs, _, _ = catalogs
    assert ours.colnames == theirs.colnames
    for name in ours.colnames:
        assert ours[name].unit == theirs[name].unit, name
        assert ours[name].dtype == theirs[name].dtype, name
    assert len(ours) >= 60
    assert abs(len(ours) - len(theirs)) <= 0.02 * len(theirs)


def test_centroids_and_fluxes_agree(catalogs):
    ours, _, theirs, _, _ = catalogs
    m = _matched(ours, theirs)
    snr = np.asarray(m["psf_flux_r"] / m["psf_flux_err_r"])
    bright = snr > 20
    assert bright.sum() >= 30
    for axis in ("x", "y"):
        diff = np.abs(np.asarray(m[f"{axis}_centroid_x"] - m[f"{axis}_centroid_r"]))[bright]
        assert np.median(diff) < 0.02
        assert diff.max() < 1e-4  # in fact the same to float32 rounding
    for name in ("aper02_flux", "aper04_flux", "aper08_flux", "segment_flux", "kron_flux"):
        ratio = np.asarray(m[f"{name}_x"] / m[f"{name}_r"])[bright]
        assert abs(np.median(ratio) - 1) < 0.01, name
        assert np.abs(ratio - 1).max() < 1e-4, name
    ratio = np.asarray(m["psf_flux_x"] / m["psf_flux_r"])[bright]
    assert abs(np.median(ratio) - 1) < 0.02
    assert np.abs(ratio - 1).max() < 1e-4
    np.testing.assert_allclose(m["ra_psf_x"], m["ra_psf_r"], atol=1e-9)


def test_segmentation_maps_agree(catalogs):
    _, segm_ours, _, segm_theirs, _ = catalogs
    agree = ((segm_ours > 0) == (segm_theirs > 0)).mean()
    assert agree >= 0.99
    np.testing.assert_array_equal(segm_ours, segm_theirs)  # measured: the same labels


def _truth_njy(run, ds):
    """Each star's flux as the calibrated image should hold it (nJy): e-/s over the gain
    under it (PSF-weighted), times the photometric conversion and the pixel area."""
    src = run["sources"]
    gain = run["det"].gain
    meta = ds.attrs["meta"]["photometry"]
    to_njy = meta["conversion_megajanskys"] * meta["pixel_area"] * 1e15
    out = []
    for x0, y0, flux in zip(src["x"], src["y"], src["flux"], strict=True):
        ix, iy = round(x0), round(y0)
        yy, xx = np.mgrid[iy - 6 : iy + 7, ix - 6 : ix + 7]
        w = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * PSF_SIGMA**2))
        inside = (yy >= 0) & (yy < gain.shape[0]) & (xx >= 0) & (xx < gain.shape[1])
        inv = np.sum(w[inside] / gain[yy[inside], xx[inside]]) / np.sum(w[inside])
        out.append(flux * inv * to_njy)
    return np.asarray(out)


def test_against_truth_completeness_spurious_and_flux_bias(run, catalogs):
    """Completeness: a star counts as found when its pixel lies in a detected segment (two
    stars closer than the PSF share one); spurious: a segment holding no star."""
    ours, segm, _, _, ds = catalogs
    src = run["sources"]
    tx, ty = src["x"] - 4, src["y"] - 4  # absolute -> cal pixels
    label_at_star = segm[np.round(ty).astype(int), np.round(tx).astype(int)]
    truth = _truth_njy(run, ds)
    # expected S/N of each star: the PSF-flux error of detected stars of that flux (the
    # faintest detected star's error below it: background-limited)
    flux, err = np.asarray(ours["psf_flux"]), np.asarray(ours["psf_flux_err"])
    order = np.argsort(flux)
    snr = truth / np.interp(truth, flux[order], err[order])
    target = (snr > 10) & ~src["saturating"]
    assert target.sum() >= 80
    completeness = (label_at_star[target] > 0).mean()
    assert completeness >= 0.95
    spurious = np.setdiff1d(np.asarray(ours["label"]), label_at_star).size / len(ours)
    assert spurious < 0.01
    # flux bias on isolated bright stars (centroid within 0.5 px of one star)
    x, y = np.asarray(ours["x_centroid"]), np.asarray(ours["y_centroid"])
    d = np.hypot(tx[:, None] - x[None, :], ty[:, None] - y[None, :])
    nearest = d.argmin(axis=1)
    isolated = (d.min(axis=1) < 0.5) & (snr > 20) & ~src["saturating"]
    assert isolated.sum() >= 40
    ratio = flux[nearest[isolated]] / truth[isolated]
    assert abs(np.median(ratio) - 1) < 0.01


# ------------------------------------------------------------------------------------------
# tweakreg: a reference catalogue off by a known shift and rotation

SHIFT_ARCSEC = (0.3, 0.0)
ROTATION_DEG = 0.01


@pytest.fixture(scope="module")
def aligned(run, catalogs, tmp_path_factory):
    from romanxr.steps.tweakreg import tweakreg
    from romanxr.testing.catalog_refs import truth_catalog, write_reference_catalog

    ds = catalogs[4]
    wcs = ds.attrs["meta"]["wcs"]
    truth = truth_catalog(run["sources"], wcs, origin=(4, 4))
    centre = (float(np.mean(truth["ra"])), float(np.mean(truth["dec"])))
    refcat = write_reference_catalog(
        truth,
        tmp_path_factory.mktemp("refcat") / "truth_refcat.ecsv",
        shift_arcsec=SHIFT_ARCSEC,
        rotation_deg=ROTATION_DEG,
        centre=centre,
    )
    return {"out": tweakreg(ds, abs_refcat=str(refcat)), "refcat": refcat, "centre": centre}


def _grid(ny=256, nx=256, step=8):
    yy, xx = np.mgrid[0:ny:step, 0:nx:step].astype(float)
    return xx.ravel(), yy.ravel()


def _sep_mas(ra1, dec1, ra2, dec2):
    from astropy.coordinates import SkyCoord

    return SkyCoord(ra1, dec1, unit="deg").separation(SkyCoord(ra2, dec2, unit="deg")).mas


def test_tweakreg_recovers_the_injected_pointing_error(catalogs, aligned):
    from romanxr.testing.catalog_refs import offset_sky

    before = catalogs[4].attrs["meta"]["wcs"]
    out = aligned["out"]
    assert out.attrs["meta"]["cal_step"]["tweakreg"] == "COMPLETE"
    fit = out.attrs["meta"]["wcs_fit_results"]
    assert fit["status"] == "SUCCESS" and fit["nmatches"] >= 30
    after = out.attrs["meta"]["wcs"]
    assert after.name.startswith("FIT-LVL2-")
    x, y = _grid()
    ra0, dec0 = before(x, y)
    ra_t, dec_t = offset_sky(
        ra0, dec0, centre=aligned["centre"], shift_arcsec=SHIFT_ARCSEC, rotation_deg=ROTATION_DEG
    )
    ra1, dec1 = after(x, y)
    rms_before = np.sqrt(np.mean(_sep_mas(ra0, dec0, ra_t, dec_t) ** 2))
    rms_after = np.sqrt(np.mean(_sep_mas(ra1, dec1, ra_t, dec_t) ** 2))
    assert rms_before > 250  # the injected error
    assert rms_after < 5.0
    # the catalog's sky columns follow the new WCS; s_region too
    table = out.roman.catalog
    ra_c, _ = after(np.asarray(table["x_centroid"]), np.asarray(table["y_centroid"]))
    np.testing.assert_allclose(table["ra_centroid"], ra_c, atol=1e-10)
    assert (
        out.attrs["meta"]["wcsinfo"]["s_region"] != catalogs[4].attrs["meta"]["wcsinfo"]["s_region"]
    )


def test_tweakreg_matches_romancal(run, catalogs, aligned):
    from romancal.tweakreg import TweakRegStep

    ours = aligned["out"].attrs["meta"]["wcs"]
    with run["cache"].activate(), dm.open(run["cal"]) as model:
        model.meta["source_catalog"] = {"tweakreg_catalog": catalogs[2]}  # romancal's catalog
        library = TweakRegStep.call(model, abs_refcat=str(aligned["refcat"]))
        with library:
            theirs_model = library.borrow(0)
            assert theirs_model.meta.cal_step.tweakreg == "COMPLETE"
            x, y = _grid()
            ra2, dec2 = theirs_model.meta.wcs(x, y)
            library.shelve(theirs_model, 0, modify=False)
    ra1, dec1 = ours(x, y)
    assert _sep_mas(ra1, dec1, ra2, dec2).max() < 1.0


def test_aligned_cal_validates_and_its_wcs_is_the_fitted_one(aligned, tmp_path):
    from romanxr.io.asdf_writer import to_asdf

    out = aligned["out"]
    path = to_asdf(out, tmp_path / "r_cal.asdf")
    with dm.open(path) as model:
        model.validate()
        assert model.meta.cal_step.tweakreg == "COMPLETE"
        assert model.meta.wcs_fit_results["status"] == "SUCCESS"
        x, y = _grid()
        ra, dec = model.meta.wcs(x, y)
    ra1, dec1 = out.attrs["meta"]["wcs"](x, y)
    assert _sep_mas(ra, dec, ra1, dec1).max() < 1e-3


def test_pipeline_writes_catalog_products_and_the_aligned_cal(run, aligned, tmp_path):
    """calibrate from the cal.asdf with the two steps: products beside the output with
    romancal's names; the same fit as the step on its own."""
    import pandas as pd

    from romanxr.pipeline import calibrate

    out_path = tmp_path / "r_cal.asdf"
    with run["cache"].activate():
        out = calibrate(
            run["cal"],
            start_at="source_catalog",
            steps={"source_catalog": OPTIONS, "tweakreg": {"abs_refcat": str(aligned["refcat"])}},
            output=out_path,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "r_cal.asdf",
        "r_cat.parquet",
        "r_segm.asdf",
        "r_wcs.asdf",  # romancal's WfiWcsModel beside every saved cal
    ]
    assert len(pd.read_parquet(tmp_path / "r_cat.parquet")) == len(out.roman.catalog)
    with dm.open(tmp_path / "r_segm.asdf") as segm:
        segm.validate()
    with dm.open(out_path) as model:
        model.validate()
        assert model.meta.cal_step.source_catalog == "COMPLETE"
        assert model.meta.cal_step.tweakreg == "COMPLETE"
        x, y = _grid()
        ra, dec = model.meta.wcs(x, y)
    ra1, dec1 = aligned["out"].attrs["meta"]["wcs"](x, y)
    assert _sep_mas(ra, dec, ra1, dec1).max() < 1e-3
