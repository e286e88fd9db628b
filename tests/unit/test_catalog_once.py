"""The pipeline computes the calibrated image once for all its products (cal.asdf,
_cat.parquet, _segm.asdf): the ramp-fit kernel runs once per chunk (a counting wrapper
around it), with and without tweakreg."""

from __future__ import annotations

import functools
import threading

import numpy as np
import pytest

from romanxr.pipeline import calibrate

FRAME = (72, 72)
OPTIONS = {"bkg_boxsize": 32, "npixels": 5, "snr_threshold": 3.0}
CHUNKS = {"y": 36}
SKIP = {"refpix": {"skip": True}, "dark_decay": {"skip": True}}


@pytest.fixture
def fit_calls(monkeypatch):
    """Calls of the ramp-fit kernel (one per chunk per computation)."""
    from romanxr.steps import ramp_fit

    calls = []
    lock = threading.Lock()
    kernel = ramp_fit.likely_fit

    @functools.wraps(kernel)
    def counting(*args, **kwargs):
        with lock:
            calls.append(1)
        return kernel(*args, **kwargs)

    monkeypatch.setattr(ramp_fit, "likely_fit", counting)
    return calls


@pytest.fixture(scope="module")
def exposure(tmp_path_factory):
    from romanxr.testing import make_detector, make_reference_set, make_scene, simulate_exposure
    from romanxr.testing.catalog_refs import (
        add_catalog_references,
        truth_catalog,
        write_reference_catalog,
    )
    from romanxr.testing.crds_cache import build_local_crds_cache

    folder = tmp_path_factory.mktemp("once")
    det = make_detector(FRAME, seed=3, drift_amplitude=0.0, dark_decay_amplitude=0.0)
    refs = add_catalog_references(make_reference_set(folder / "references", det))
    cache = build_local_crds_cache(folder / "crds_cache", refs)
    (folder / "input").mkdir()
    sy, sx = det.science_shape
    scene, sources = make_scene(det.science_shape, seed=3, sky=40.0, n_stars=sy * sx // 150)
    sim = simulate_exposure(det, seed=3, scene=scene, path=folder / "input")
    with cache.activate():
        wcs = calibrate(sim.path, steps=SKIP, check_saturated=False).attrs["meta"]["wcs"]
    refcat = write_reference_catalog(
        truth_catalog(sources, wcs, origin=(4, 4)), folder / "refcat.ecsv", shift_arcsec=(0.2, 0)
    )
    return {"uncal": sim.path, "cache": cache, "refcat": refcat}


@pytest.mark.parametrize("with_tweakreg", [False, True], ids=["catalog", "catalog+tweakreg"])
def test_cal_and_catalog_products_compute_the_chain_once(
    exposure, tmp_path, fit_calls, with_tweakreg
):
    steps = {**SKIP, "source_catalog": OPTIONS}
    if with_tweakreg:
        steps["tweakreg"] = {"abs_refcat": str(exposure["refcat"]), "abs_minobj": 5}
    out_path = tmp_path / "r_cal.asdf"
    with exposure["cache"].activate():
        calibrate(exposure["uncal"], steps=SKIP, chunks=CHUNKS).compute()
        once = len(fit_calls)  # the kernel calls of one computation of the image
        fit_calls.clear()
        out = calibrate(exposure["uncal"], steps=steps, output=out_path, chunks=CHUNKS)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "r_cal.asdf",
        "r_cat.parquet",
        "r_segm.asdf",
        "r_wcs.asdf",  # romancal's WfiWcsModel beside every saved cal
    ]
    assert once >= 2  # several chunks
    assert len(fit_calls) == once  # each chunk once, for all three products
    assert len(out.roman.catalog) > 0
    if with_tweakreg:
        assert out.attrs["meta"]["cal_step"]["tweakreg"] == "COMPLETE"


def test_the_counter_sees_a_second_computation(exposure, fit_calls):
    """The check above can fail: computing the lazy image twice runs each chunk twice."""
    with exposure["cache"].activate():
        lazy = calibrate(exposure["uncal"], steps=SKIP, check_saturated=False, chunks=CHUNKS)
    assert not fit_calls  # lazy: nothing ran yet
    assert np.isfinite(lazy["data"].values).any()
    once = len(fit_calls)
    assert lazy["err"].values.shape == lazy["data"].shape
    assert once >= 2 and len(fit_calls) == 2 * once
