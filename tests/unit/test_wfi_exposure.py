"""A simulated 18-detector exposure: names, detectors, footprints and one consistent sky."""

from __future__ import annotations

import numpy as np
import pytest
import roman_datamodels.datamodels as dm

from romanxr.focal_plane import DETECTOR_POSITIONS, v2v3_reference
from romanxr.testing import simulate_wfi_exposure
from romanxr.wcs import build_wcs


@pytest.fixture(scope="module")
def exposure(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wfi")
    return simulate_wfi_exposure(folder, shape=(32, 32), seed=3, n_jumps=3, workers=1)


def _wcs(sim, name):
    with dm.open(sim.exposures[name].path) as raw:
        meta = raw.meta
        wcsinfo = {
            k: meta.wcsinfo[k] for k in ("v2_ref", "v3_ref", "ra_ref", "dec_ref", "roll_ref")
        }
        detector = meta.instrument.detector
        shape = raw.data.shape[1:]
    with dm.open(sim.references[name]["distortion"]) as ref:
        transform = ref.coordinate_distortion_transform
    meta = {"wcsinfo": wcsinfo, "velocity_aberration": {"scale_factor": 1.0}}
    return build_wcs(transform, meta, (shape[0] - 8, shape[1] - 8)), detector


def test_one_file_per_detector_named_as_romancal_names_them(exposure):
    names = [p.name for p in exposure.paths]
    assert names == [f"r0000101001001001001_0001_wfi{i:02d}_uncal.asdf" for i in range(1, 19)]
    for name, sim in exposure.exposures.items():
        with dm.open(sim.path) as raw:
            assert raw.meta.instrument.detector == name
            assert raw.meta.wcsinfo.aperture_name == f"{name}_FULL"
            np.testing.assert_allclose(
                [raw.meta.wcsinfo.v2_ref, raw.meta.wcsinfo.v3_ref], v2v3_reference(name)
            )
            assert raw.meta.pointing.ra_v1 == 270.0  # one attitude for the whole exposure


def test_every_star_sits_where_its_detector_wcs_says(exposure):
    seen = 0
    for name, sim in exposure.exposures.items():
        wcs, detector = _wcs(exposure, name)
        assert detector == name
        src = sim.truth.sources
        if len(src["x"]) == 0:
            continue
        ra, dec = wcs(src["x"] - 4, src["y"] - 4)
        dra = (ra - exposure.catalog["ra"][src["catalog_index"]]) * np.cos(np.radians(dec))
        ddec = dec - exposure.catalog["dec"][src["catalog_index"]]
        assert np.max(np.hypot(dra, ddec)) * 3.6e6 < 1.0  # milliarcsec
        seen += len(src["x"])
    assert seen > 18


def test_a_star_lands_on_at_most_one_detector(exposure):
    counts = np.zeros(exposure.catalog["ra"].size, int)
    for sim in exposure.exposures.values():
        counts[sim.truth.sources["catalog_index"]] += 1
    assert counts.max() == 1
    assert (counts == 0).any()  # stars drawn just beyond an edge fall in a gap


def test_distinct_detectors_have_distinct_footprints(exposure):
    centres = {}
    for name in exposure.exposures:
        wcs, _ = _wcs(exposure, name)
        centres[name] = np.array(wcs(11.5, 11.5))
    names = sorted(centres)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            sep = np.hypot(
                (centres[a][0] - centres[b][0]) * np.cos(np.radians(66)),
                centres[a][1] - centres[b][1],
            )
            assert sep * 3600 > 400  # detectors are > 400 arcsec apart; each is 3 arcsec here
    assert len(DETECTOR_POSITIONS) == 18


def test_the_crds_cache_resolves_each_detectors_own_references(exposure):
    cache = exposure.crds_cache
    for reftype in ("distortion", "flat", "gain"):
        assert len(cache.references[reftype]) == 18
    assert len(cache.references["darkdecaysignal"]) == 1
    with dm.open(cache.references["darkdecaysignal"][0]) as ref:
        assert set(ref.decay_table) >= set(exposure.exposures)


def test_without_truth_the_same_files_are_written_one_detector_at_a_time(exposure, tmp_path):
    """keep_truth=False (what the 18 full-frame benchmark needs) changes memory, not data."""
    light = simulate_wfi_exposure(
        tmp_path, shape=(32, 32), seed=3, n_jumps=3, workers=1, keep_truth=False
    )
    assert light.exposures == {} and light.references == {}
    assert [p.name for p in light.paths] == [p.name for p in exposure.paths]
    for name in light.files:
        with dm.open(light.files[name]) as a, dm.open(exposure.files[name]) as b:
            np.testing.assert_array_equal(a.data, b.data)
            assert a.meta.wcsinfo.ra_ref == b.meta.wcsinfo.ra_ref
        flat = light.reference_files[name]["flat"]
        with dm.open(flat) as a, dm.open(exposure.references[name]["flat"]) as b:
            np.testing.assert_array_equal(a.data, b.data)
    with dm.open(light.reference_files["WFI11"]["darkdecaysignal"]) as decay:
        assert set(decay.decay_table) >= {"WFI02", "WFI11"}
    assert light.crds_cache is not None
