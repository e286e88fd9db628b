"""tweakreg across detectors and exposures: relative alignment, then absolute, as romancal's
TweakRegStep does on a ModelLibrary.

Two WFI detectors of one simulated exposure (one sky, each detector at its focal-plane place)
are calibrated with their source catalogs. Their true WCS is the one assign_wcs gives (the
simulator places the stars through it). Pointing errors are injected into the WCSs only, the
same one for the detectors of an exposure (a wrong attitude). The second exposure is a repeat
of the first pointing (the same pixels) carrying a different pointing error, so the two
exposures overlap completely and must first be aligned to each other. The reference
catalogue is the simulated sky.

Run the romancal comparison with ``-m oracle``; the rest runs in the default suite.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from romanxr.steps.tweakreg import tweakreg_many
from romanxr.testing.catalog_refs import misalign

FRAME = (136, 136)
DETECTORS = (1, 2)
OPTIONS = {"bkg_boxsize": 64, "npixels": 5, "snr_threshold": 3.0}
STEPS = {"refpix": {"skip": True}, "dark_decay": {"skip": True}, "source_catalog": OPTIONS}
#: the pointing error of each exposure: (shift in arcsec, rotation in deg)
ERRORS = {"0001": ((0.3, 0.0), 0.01), "0002": ((-0.25, 0.35), -0.008)}
EXPOSURE = "r0000101001001001001_{}"


@pytest.fixture(scope="module")
def sky(tmp_path_factory):
    """The calibrated detectors (true WCS, catalogs attached) and the reference catalogue."""
    from astropy.table import Table

    from romanxr.exposures import open_exposures
    from romanxr.exposures.tree import node_datasets
    from romanxr.testing.catalog_refs import add_catalog_references, write_reference_catalog
    from romanxr.testing.crds_cache import build_local_crds_cache
    from romanxr.testing.wfi_exposure import simulate_wfi_exposure

    folder = tmp_path_factory.mktemp("tweakreg_many")
    sim = simulate_wfi_exposure(folder, DETECTORS, shape=FRAME, seed=4, crds_cache=False)
    files = set()
    for refs in sim.references.values():
        files |= set(add_catalog_references(refs).paths.values())
    cache = build_local_crds_cache(folder / "crds_cache", sorted(files))
    with cache.activate():
        tree = open_exposures(sim.paths).roman.calibrate(steps=STEPS)
        images = {path: ds for path, ds in node_datasets(tree).items()}
        truth = {path: ds.attrs["meta"]["wcs"] for path, ds in images.items()}
    refcat = write_reference_catalog(Table(sim.catalog), folder / "sky_refcat.ecsv")
    return {
        "images": images,
        "truth": truth,
        "refcat": str(refcat),
        "cache": cache,
        "paths": sim.paths,
    }


def _exposure(sky, number):
    """The detectors as exposure ``number``, with that exposure's pointing error."""
    shift, rotation = ERRORS[number]
    paths = sorted(sky["images"])
    moved = misalign([sky["images"][p] for p in paths], shift_arcsec=shift, rotation_deg=rotation)
    out = {}
    for path, ds in zip(paths, moved, strict=True):
        exposure = EXPOSURE.format(number)
        meta = dict(ds.attrs["meta"])
        meta["filename"] = meta["filename"].replace(EXPOSURE.format("0001"), exposure)
        out[(number, path)] = ds.assign_attrs(exposure=exposure, meta=meta)
    return out


def _rms_mas(wcs, true_wcs, step=8):
    from astropy.coordinates import SkyCoord

    ny, nx = FRAME[0] - 8, FRAME[1] - 8
    yy, xx = np.mgrid[0:ny:step, 0:nx:step].astype(float)
    a = SkyCoord(*wcs(xx.ravel(), yy.ravel()), unit="deg")
    b = SkyCoord(*true_wcs(xx.ravel(), yy.ravel()), unit="deg")
    return float(np.sqrt(np.mean(a.separation(b).mas ** 2)))


def _errors(sky, images):
    return {k: _rms_mas(ds.attrs["meta"]["wcs"], sky["truth"][k[1]]) for k, ds in images.items()}


@pytest.fixture(scope="module")
def two_exposures(sky):
    images = {**_exposure(sky, "0001"), **_exposure(sky, "0002")}
    return images, tweakreg_many(images, abs_refcat=sky["refcat"])


def test_injected_errors_are_large(sky, two_exposures):
    images, _ = two_exposures
    before = _errors(sky, images)
    assert len(before) == 4 and min(before.values()) > 200  # mas


def test_one_exposure_detectors_aligned_together(sky):
    images = _exposure(sky, "0001")
    out = tweakreg_many(images, abs_refcat=sky["refcat"])
    assert isinstance(out, dict) and out.keys() == images.keys()
    for key, ds in out.items():
        meta = ds.attrs["meta"]
        assert meta["cal_step"]["tweakreg"] == "COMPLETE", meta["wcs_fit_results"]
        assert meta["wcs_fit_results"]["n_detector"] == 2
        assert meta["wcs"].name.startswith("FIT-LVL2-")
        before = images[key].attrs["meta"]  # inputs untouched
        assert before["cal_step"].get("tweakreg") != "COMPLETE"
        assert before["wcs"].name == "misaligned"
    assert max(_errors(sky, out).values()) < 5.0


def test_several_exposures_each_recover_the_truth(sky, two_exposures):
    _, out = two_exposures
    after = _errors(sky, out)
    assert max(after.values()) < 5.0, after
    assert all(ds.attrs["meta"]["cal_step"]["tweakreg"] == "COMPLETE" for ds in out.values())
    assert {ds.attrs["meta"]["wcs_fit_results"]["n_detector"] for ds in out.values()} == {4}
    # the pixels were computed once with the catalogs and are kept (dask-backed)
    assert all(ds["data"].chunks is not None for ds in out.values())


def test_without_relative_alignment_one_fit_cannot_serve_both(sky, two_exposures):
    """The control: the same images as one group (one rigid body) leave the two pointing
    errors' difference in the result, so the relative alignment is what fixes them."""
    images, _ = two_exposures
    one_group = {}
    for key, ds in images.items():
        meta = {**ds.attrs["meta"], "group_id": "all"}
        one_group[key] = ds.assign_attrs(meta=meta)
    out = tweakreg_many(one_group, abs_refcat=sky["refcat"])
    after = [v for k, v in _errors(sky, out).items()]
    assert max(after) > 20.0


def test_tree_tweakreg_aligns_across_its_members(sky, two_exposures):
    images, out = two_exposures
    nodes = {f"/{ds.attrs['exposure']}/d{key[1][-2:]}": ds for key, ds in images.items()}
    keys = {f"/{ds.attrs['exposure']}/d{key[1][-2:]}": key for key, ds in images.items()}
    tree = xr.DataTree.from_dict(nodes)
    aligned = tree.roman.tweakreg(abs_refcat=sky["refcat"])
    for node in aligned.subtree:
        if "data" not in node.data_vars:
            continue
        ds = node.to_dataset()
        assert ds.attrs["meta"]["cal_step"]["tweakreg"] == "COMPLETE"
        assert ds.attrs["meta"]["wcs_fit_results"]["n_detector"] == 4
        ours = out[keys[node.path]].attrs["meta"]["wcs"]
        assert _rms_mas(ds.attrs["meta"]["wcs"], ours) < 1e-3


@pytest.mark.oracle
def test_same_fit_as_romancal_tweakregstep(sky, two_exposures, tmp_path):
    """romancal's TweakRegStep on the same four images (written as cal.asdf with their
    misaligned WCSs, grouped by exposure, given the same catalogs)."""
    pytest.importorskip("romancal")
    import roman_datamodels.datamodels as dm
    from romancal.datamodels import ModelLibrary
    from romancal.tweakreg import TweakRegStep

    from romanxr.io.asdf_writer import to_asdf
    from romanxr.steps.source_catalog import catalog_table

    images, out = two_exposures
    keys = list(images)
    models = []
    for i, key in enumerate(keys):
        ds = images[key]
        path = to_asdf(ds, tmp_path / f"image{i}_cal.asdf")
        model = dm.open(path)
        model.meta["group_id"] = ds.attrs["exposure"]
        model.meta["source_catalog"] = {"tweakreg_catalog": catalog_table(ds)}
        models.append(model)
    with sky["cache"].activate():
        library = TweakRegStep.call(ModelLibrary(models), abs_refcat=sky["refcat"])
    with library:
        for i, key in enumerate(keys):
            theirs = library.borrow(i)
            assert theirs.meta.cal_step.tweakreg == "COMPLETE"
            assert _rms_mas(theirs.meta.wcs, out[key].attrs["meta"]["wcs"]) < 1.0
            assert _rms_mas(theirs.meta.wcs, sky["truth"][key[1]]) < 5.0
            library.shelve(theirs, i, modify=False)


def test_tree_calibrate_with_tweakreg_aligns_all_nodes_together(sky, tmp_path):
    """dt.roman.calibrate(steps={"tweakreg": ...}) runs tweakreg once on the whole tree
    (n_detector = all nodes), not node by node; a bad abs_refcat fails before any work."""
    from romanxr.errors import ConfigError
    from romanxr.exposures import open_exposures

    tree = open_exposures(sky["paths"])
    steps = {**STEPS, "tweakreg": {"abs_refcat": sky["refcat"]}}
    with pytest.raises(ConfigError, match="abs_refcat"):
        tree.roman.calibrate(steps={**STEPS, "tweakreg": {"abs_refcat": "GAIADR3_S3"}})
    with sky["cache"].activate():
        out = tree.roman.calibrate(steps=steps)
    nodes = [n.to_dataset() for n in out.subtree if "data" in n.data_vars]
    assert len(nodes) == len(DETECTORS)
    for ds in nodes:
        meta = ds.attrs["meta"]
        assert meta["cal_step"]["tweakreg"] == "COMPLETE"
        assert meta["wcs_fit_results"]["n_detector"] == len(DETECTORS)
        assert ds.attrs["step_parameters"]["tweakreg"]["abs_refcat"] == sky["refcat"]
