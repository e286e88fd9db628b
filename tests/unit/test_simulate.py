"""The simulator writes valid L1 files whose pixels follow the recorded truth."""

from __future__ import annotations

import re

import numpy as np
import pytest

from romanxr.dataset import BORDER
from romanxr.testing import (
    DEFAULT_READ_PATTERN,
    make_detector,
    make_scene,
    simulate_exposure,
)

SHAPE = (32, 32)
SCI = np.s_[BORDER:-BORDER, BORDER:-BORDER]
# mean read number per resultant of the default MA table, times 3.04 s
MEAN_TIME = 3.04 * np.array([1, 2.5, 5.5, 10, 14.5, 17.5, 21.5, 25])


def quiet_detector(**kwargs):
    """A detector without drift and dark decay: resultants follow the rate alone."""
    return make_detector(SHAPE, seed=2, drift_amplitude=0.0, dark_decay_amplitude=0.0, **kwargs)


def linearize_exact(det, observed):
    """Exact inverse of ``observed = linear - beta linear**2``."""
    beta = det.nonlinearity_beta
    return (1 - np.sqrt(1 - 4 * beta * observed)) / (2 * beta)


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    return simulate_exposure(SHAPE, seed=11, path=tmp_path_factory.mktemp("noisy"))


def test_uncal_is_a_valid_science_raw_file(noisy):
    import roman_datamodels.datamodels as dm

    assert re.fullmatch(r"r\d{19}_\d{4}_wfi01_uncal\.asdf", noisy.path.name)
    with dm.open(noisy.path) as model:
        assert isinstance(model, dm.ScienceRawModel)
        model.validate()
        assert model.tag.endswith("wfi_science_raw-2.1.0")
        assert model.data.dtype == np.uint16
        assert model.data.shape == (8, 32, 32)
        assert model.amp33.shape == (8, 32, 128)
        assert model.amp33.dtype == np.uint16
        meta = model.meta
        assert meta.exposure.type == "WFI_IMAGE"
        assert meta.exposure.nresultants == 8
        assert [list(g) for g in meta.exposure.read_pattern] == DEFAULT_READ_PATTERN
        assert meta.exposure.frame_time == 3.04
        assert meta.exposure.end_time > meta.exposure.start_time
        assert meta.instrument.detector == "WFI01"
        assert meta.instrument.optical_element == "F158"
        assert meta.velocity_aberration.scale_factor == 1.0
        assert meta.wcsinfo.aperture_name == "WFI01_FULL"
        assert meta.filename == noisy.path.name
        gs = meta.guide_star
        assert 0 <= gs.window_xstart < gs.window_xstop <= 32
        assert 0 <= gs.window_ystart < gs.window_ystop <= 32


def test_open_uncal_dims_dtypes_and_coords(noisy):
    ds = noisy.dataset
    assert ds["data"].dims == ("resultant", "y", "x")
    assert ds["data"].dtype == np.uint16
    assert ds.sizes == {"resultant": 8, "y": 32, "x": 32, "amp33_x": 128}
    np.testing.assert_allclose(ds["mean_time"].values, MEAN_TIME)
    np.testing.assert_array_equal(ds["n_reads"].values, [1, 2, 4, 5, 4, 2, 6, 1])
    np.testing.assert_array_equal(ds["y"].values, np.arange(32))
    np.testing.assert_allclose(noisy.truth.mean_time, MEAN_TIME)


def test_truth_rate_is_scene_times_response_over_gain_plus_dark(tmp_path):
    det = quiet_detector()
    sim = simulate_exposure(det, seed=1, scene=40.0, n_jumps=0, path=tmp_path, noiseless=True)
    expected = np.zeros(SHAPE)
    expected[SCI] = 40.0 * det.response / det.gain[SCI]
    expected += det.dark_rate
    np.testing.assert_allclose(sim.truth.rate, expected, rtol=1e-6)
    assert np.all(sim.truth.rate[:BORDER] == 0)  # reference pixels: no light, no dark
    np.testing.assert_allclose(
        sim.truth.source_rate, 40.0 * det.response / det.gain[SCI], rtol=1e-6
    )


def test_noiseless_resultants_follow_rate_times_mean_time(tmp_path):
    det = quiet_detector()
    sim = simulate_exposure(det, seed=1, scene=40.0, n_jumps=0, path=tmp_path, noiseless=True)
    data = sim.dataset["data"].values.astype(np.float64)
    linear = linearize_exact(det, data) - det.bias
    expected = sim.truth.rate[None] * MEAN_TIME[:, None, None]
    # ADC rounding of each read and of the resultant mean: at most ~1 DN
    np.testing.assert_allclose(linear[:, SCI[0], SCI[1]], expected[:, SCI[0], SCI[1]], atol=1.1)
    # reference pixels see neither light nor dark: constant at the non-linear bias level
    border = data[:, :BORDER, :]
    np.testing.assert_array_equal(border, np.broadcast_to(border[0], border.shape))
    np.testing.assert_array_equal(border[0], np.rint(det.nonlinear(det.bias)[:BORDER]))


def test_noisy_resultants_scatter_as_poisson_plus_read_noise(tmp_path):
    det = make_detector(
        (64, 64), seed=4, drift_amplitude=0.0, dark_decay_amplitude=0.0, gain_scatter=0.0
    )
    sim = simulate_exposure(det, seed=4, scene=300.0, n_jumps=0, path=tmp_path)
    data = sim.dataset["data"].values.astype(np.float64)
    residual = linearize_exact(det, data) - det.bias - sim.truth.rate * MEAN_TIME[:, None, None]
    good = np.zeros(det.shape, bool)
    good[SCI] = (det.response > 0.5) & np.isfinite(det.saturation[SCI])
    r = residual[:, good]
    rate = sim.truth.rate[good]
    n = np.array([len(g) for g in DEFAULT_READ_PATTERN])
    tau = np.array(
        [
            3.04 * sum((2 * len(g) - 2 * k + 1) * rd for k, rd in enumerate(g, 1)) / len(g) ** 2
            for g in DEFAULT_READ_PATTERN
        ]
    )
    for i in range(8):
        var = rate * tau[i] / 1.8 + det.read_noise[good] ** 2 / n[i] + 1 / 12
        z = r[i] / np.sqrt(var)
        assert abs(z.mean()) < 5 / np.sqrt(z.size)
        assert 0.85 < z.std() < 1.15


def test_jumps_appear_at_their_reads(tmp_path):
    det = quiet_detector()
    sim = simulate_exposure(
        det,
        seed=6,
        scene=10.0,
        n_jumps=6,
        jump_amplitude_range=(1000.0, 2000.0),
        path=tmp_path,
        noiseless=True,
    )
    jumps = sim.truth.jumps
    assert len(jumps["y"]) == 6
    data = sim.dataset["data"].values.astype(np.float64)
    linear = linearize_exact(det, data) - det.bias
    for y, x, read, amp, res in zip(
        jumps["y"], jumps["x"], jumps["read"], jumps["amplitude"], jumps["resultant"], strict=True
    ):
        assert 2 <= read <= 25
        group = DEFAULT_READ_PATTERN[res]
        assert group[-1] >= read and (res == 0 or DEFAULT_READ_PATTERN[res - 1][-1] < read)
        fraction = np.array([np.mean(np.asarray(g) >= read) for g in DEFAULT_READ_PATTERN])
        expected = sim.truth.rate[y, x] * MEAN_TIME + amp * fraction
        np.testing.assert_allclose(linear[:, y, x], expected, atol=1.1)
        assert fraction[res] > 0 and (res == 0 or fraction[res - 1] == 0)


def test_saturated_pixels_are_above_threshold(noisy):
    truth = noisy.truth
    det = truth.detector
    data = noisy.dataset["data"].values
    first = truth.first_saturated_resultant
    assert np.count_nonzero(first >= 0) >= 1  # the default scene has a saturating star
    last_reads = np.array([g[-1] for g in DEFAULT_READ_PATTERN])
    for y, x in zip(*np.nonzero(first >= 0), strict=True):
        r = first[y, x]
        assert data[r, y, x] >= det.saturation[y, x]
        assert r == 0 or data[r - 1, y, x] < det.saturation[y, x]
        assert 1 <= truth.first_saturated_read[y, x] <= last_reads[r]
    # NaN thresholds never saturate
    assert np.all(truth.first_saturated_read[np.isnan(det.saturation)] == 0)


def test_reference_read_is_added_back_exactly(tmp_path):
    det = quiet_detector()
    plain = simulate_exposure(det, seed=8, path=tmp_path / "a.asdf")
    with_ref = simulate_exposure(det, seed=8, path=tmp_path / "b.asdf", reference_read=True)
    ds = with_ref.dataset
    assert ds["reference_read"].dims == ("y", "x")
    restored = ds["data"].values.astype(np.int64) + ds["reference_read"].values
    np.testing.assert_array_equal(restored, plain.dataset["data"].values)
    restored33 = ds["amp33"].values.astype(np.int64) + ds["reference_amp33"].values
    np.testing.assert_array_equal(restored33, plain.dataset["amp33"].values)


def test_same_seed_same_file_different_seed_different(tmp_path):
    a = simulate_exposure(SHAPE, seed=5, path=tmp_path / "a.asdf")
    b = simulate_exposure(SHAPE, seed=5, path=tmp_path / "b.asdf")
    c = simulate_exposure(SHAPE, seed=6, path=tmp_path / "c.asdf")
    np.testing.assert_array_equal(a.dataset["data"].values, b.dataset["data"].values)
    np.testing.assert_array_equal(a.dataset["amp33"].values, b.dataset["amp33"].values)
    for key in a.truth.jumps:
        np.testing.assert_array_equal(a.truth.jumps[key], b.truth.jumps[key])
    assert not np.array_equal(a.dataset["data"].values, c.dataset["data"].values)


def test_drift_and_dark_decay_in_reference_pixels(tmp_path):
    det = make_detector(SHAPE, seed=3, drift_amplitude=20.0, dark_decay_amplitude=5.0)
    sim = simulate_exposure(det, seed=3, scene=0.0, n_jumps=0, path=tmp_path, noiseless=True)
    data = sim.dataset["data"].values.astype(np.float64)
    y = np.arange(SHAPE[0])
    x = np.arange(SHAPE[1])
    base = det.nonlinear(det.bias.astype(np.float64))
    for i, group in enumerate(DEFAULT_READ_PATTERN):
        decay = np.mean([sim.truth.dark_decay(k, y, x) for k in group], axis=0)
        expected = base + sim.truth.resultant_drift(i) + decay
        # left/right border columns: per-read rounding + resultant rounding
        np.testing.assert_allclose(data[i, :, :BORDER], expected[:, :BORDER], atol=1.01)
        np.testing.assert_allclose(data[i, :, -BORDER:], expected[:, -BORDER:], atol=1.01)
    # WFI01 reads science rows bottom-up: row 4095, column 0 is the first pixel of the frame
    first = sim.truth.dark_decay(1, np.array([4095]), np.array([0]))[0, 0]
    np.testing.assert_allclose(first, 5.0 * np.exp(0.5 * 3.04 / 23.0))
    # ...and row 0, column 0 comes just before the frame's last guide-window excursion
    q = 4095 * 142.0
    cycles = (3.04 / 4.915263e-6 - (127 + q)) / 16 * 1.5
    t = 3.04 * (q + 15 * cycles) / (127 + q + 16 * cycles)
    late = sim.truth.dark_decay(1, np.array([0]), np.array([0]))[0, 0]
    np.testing.assert_allclose(late, 5.0 * np.exp(-(t - 0.5 * 3.04) / 23.0))
    assert sim.truth.dark_decay(2, np.array([0]), np.array([0]))[0, 0] < late
    # amp33 follows the same drift (channel 33 pedestal), no decay
    amp33 = sim.dataset["amp33"].values.astype(np.float64)
    drift33 = np.mean([det.drift.amp33(k, y) for k in DEFAULT_READ_PATTERN[2]], axis=0)
    np.testing.assert_allclose(amp33[2], det.amp33_bias + drift33, atol=1.01)


def test_scene_shape_is_checked(tmp_path):
    with pytest.raises(ValueError, match="science-area shape"):
        simulate_exposure(SHAPE, scene=np.zeros((10, 10)), path=tmp_path)


def test_make_scene_conserves_flux():
    scene, sources = make_scene((64, 64), seed=2, sky=0.5, n_stars=5, n_saturating=1, psf_sigma=0.6)
    assert scene.shape == (64, 64)
    np.testing.assert_allclose((scene - 0.5).sum(), sources["flux"].sum(), rtol=1e-3)
    assert sources["saturating"].sum() == 1
    assert np.all((sources["x"] >= BORDER) & (sources["x"] < 64 + BORDER))


@pytest.mark.oracle
def test_romancal_exposure_pipeline_recovers_the_truth(tmp_path, monkeypatch):
    """romancal 1.1.0 runs offline on a small simulation with every reference overridden."""
    pytest.importorskip("romancal")
    import stpipe.crds_client

    from romanxr.testing import make_reference_set

    # no CRDS cache here: stpipe only asks for the context name to record it
    monkeypatch.setattr(
        stpipe.crds_client, "get_context_used", lambda observatory: "roman_0000.pmap"
    )
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "True")
    from romancal.pipeline import ExposurePipeline

    det = quiet_detector()
    sim = simulate_exposure(det, seed=12, scene=100.0, path=tmp_path)
    refs = make_reference_set(tmp_path / "refs", det)
    # refpix and dark_decay only run on 4096x4096 frames in romancal
    steps = refs.romancal_steps(skip=("refpix", "dark_decay", "source_catalog", "tweakreg"))
    result = ExposurePipeline.call(str(sim.path), steps=steps, save_results=False)
    image = result[0] if isinstance(result, tuple) else result
    cal_step = image.meta.cal_step
    for key in ("dq_init", "saturation", "linearity", "ramp_fit", "dark", "assign_wcs"):
        assert cal_step[key] == "COMPLETE", key
    assert cal_step["flat_field"] == "COMPLETE" and cal_step["photom"] == "COMPLETE"
    assert image.data.shape == (24, 24)
    good = image.dq == 0
    assert good.sum() > 400
    # flat-fielded, dark-subtracted slope = scene / gain
    ratio = np.asarray(image.data)[good] / sim.truth.scene_rate[good]
    assert abs(np.median(ratio) - 1) < 0.01
    jump_pixels = {
        (y - 4, x - 4) for y, x in zip(sim.truth.jumps["y"], sim.truth.jumps["x"], strict=True)
    }
    flagged = {(int(y), int(x)) for y, x in zip(*np.nonzero(image.dq & 4), strict=True)}
    assert jump_pixels <= flagged


def test_result_does_not_depend_on_thread_count(tmp_path):
    det = make_detector((300, 24), seed=13)  # three row bands of 128
    one = simulate_exposure(det, seed=13, path=tmp_path / "one.asdf", workers=1)
    three = simulate_exposure(det, seed=13, path=tmp_path / "three.asdf", workers=3)
    np.testing.assert_array_equal(one.dataset["data"].values, three.dataset["data"].values)
    np.testing.assert_array_equal(one.truth.first_saturated_read, three.truth.first_saturated_read)


def test_adc_integral_nonlinearity_is_undone_by_the_inl_table(tmp_path):
    det = quiet_detector(inl_amplitude=3.0)
    assert np.abs(det.inl_correction).max() > 2.9
    sim = simulate_exposure(det, seed=1, scene=20.0, n_jumps=0, path=tmp_path, noiseless=True)
    first = sim.dataset["data"].values[0].astype(np.float64)  # a single-read resultant
    expected = det.nonlinear(det.bias + sim.truth.rate * 3.04)
    x = np.arange(SHAPE[1])
    # what the ADC wrote is the signal minus the INL (rounded); adding the table back recovers it
    restored = first + det.inl(first, x)
    np.testing.assert_allclose(restored, expected, atol=0.6)
    assert np.abs(first - np.rint(expected)).max() >= 2
