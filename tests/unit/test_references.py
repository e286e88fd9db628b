"""The reference set is valid, matches the simulated exposure and encodes the detector."""

from __future__ import annotations

import numpy as np
import pytest

from romanxr.testing import (
    REFTYPES,
    evaluate_polynomial,
    make_detector,
    make_reference_set,
    refpix_coefficients,
    simulate_exposure,
)
from romanxr.testing.crds_cache import REFERENCE_MODELS
from romanxr.testing.references import ROMANCAL_STEP_REFTYPES

SHAPE = (32, 32)

MODEL_CLASS = REFERENCE_MODELS
# name -> (dtype, shape) for a 32x32 frame (M = 32 * 140 / 2 + 1 = 2241)
ARRAYS = {
    "mask": {"dq": ("uint32", (32, 32))},
    "saturation": {"data": ("float32", (32, 32)), "dq": ("uint32", (32, 32))},
    # one 128-column channel at least (the 32-pixel test frame is narrower than a channel)
    "refpix": {k: ("complex128", (1, 2241)) for k in ("gamma", "zeta", "alpha")},
    "linearity": {"coeffs": ("float32", (7, 32, 32)), "dq": ("uint32", (32, 32))},
    "inverselinearity": {"coeffs": ("float32", (3, 32, 32)), "dq": ("uint32", (32, 32))},
    "integralnonlinearity": {"value": ("uint16", (1025,))},
    "readnoise": {"data": ("float32", (32, 32))},
    "gain": {"data": ("float32", (32, 32))},
    "dark": {k: ("float32", (32, 32)) for k in ("dark_slope", "dark_slope_error")}
    | {"dq": ("uint32", (32, 32))},
    "flat": {"data": ("float32", (24, 24)), "err": ("float32", (24, 24))}
    | {"dq": ("uint32", (24, 24))},
}


@pytest.fixture(scope="module")
def refset(tmp_path_factory):
    det = make_detector(SHAPE, seed=9)
    return make_reference_set(tmp_path_factory.mktemp("refs"), det)


@pytest.fixture(scope="module")
def exposure(tmp_path_factory, refset):
    return simulate_exposure(refset.detector, seed=9, path=tmp_path_factory.mktemp("sim"))


def test_every_reftype_written_with_its_model_class(refset):
    import roman_datamodels.datamodels as dm

    assert set(refset) == set(REFTYPES)
    for reftype, path in refset.items():
        assert path.name == f"roman_wfi_{reftype}_wfi01.asdf"
        with dm.open(path) as model:
            assert type(model).__name__ == MODEL_CLASS[reftype]
            model.validate()
            assert model.meta.reftype == reftype.upper()
            for name, (dtype, shape) in ARRAYS.get(reftype, {}).items():
                array = getattr(model, name)
                assert array.dtype == np.dtype(dtype), (reftype, name)
                assert array.shape == shape, (reftype, name)


def test_selectors_match_the_exposure(refset, exposure):
    import roman_datamodels.datamodels as dm

    with dm.open(exposure.path) as raw:
        start = raw.meta.exposure.start_time
        detector = raw.meta.instrument.detector
        element = raw.meta.instrument.optical_element
        exptype = raw.meta.exposure.type
    for reftype, path in refset.items():
        with dm.open(path) as model:
            meta = model.meta
            assert meta.instrument.detector == detector
            assert meta.useafter < start
            if "optical_element" in meta.instrument:
                assert meta.instrument.optical_element == element, reftype
            if "exposure" in meta:
                assert meta.exposure.type == exptype
                assert exptype in meta.exposure.p_exptype.split("|")


def test_arrays_describe_the_detector(refset):
    import roman_datamodels.datamodels as dm

    det = refset.detector
    with dm.open(refset["gain"]) as m:
        np.testing.assert_array_equal(m.data, det.gain)
    with dm.open(refset["readnoise"]) as m:
        np.testing.assert_array_equal(m.data, det.read_noise)
    with dm.open(refset["mask"]) as m:
        dq = m.data if hasattr(m, "data") else m.dq
        assert np.all(dq[:4] & (1 << 31)) and np.all(dq[:, -4:] & (1 << 31))
        assert not np.any(dq[4:-4, 4:-4] & (1 << 31))
        assert np.any(dq & (1 << 10)) and np.any(dq & (1 << 11))  # DEAD, HOT
    with dm.open(refset["saturation"]) as m:
        nan = np.isnan(m.data)
        assert nan.any()
        assert np.all(m.dq[nan] & (1 << 21))  # NO_SAT_CHECK
        assert np.nanmin(m.data) >= 55000 and np.nanmax(m.data) <= 60000
    with dm.open(refset["flat"]) as m:
        bad = ~np.isfinite(m.data) | (m.data == 0)
        assert bad.any()
        np.testing.assert_array_equal(m.dq != 0, bad)
        assert abs(np.nanmedian(m.data) - 1) < 0.01
    with dm.open(refset["dark"]) as m:
        np.testing.assert_array_equal(m.dark_slope, det.dark_rate)
        assert np.all(m.dq[det.hot] & (1 << 11))
    with dm.open(refset["darkdecaysignal"]) as m:
        table = m.decay_table
        assert sorted(table) == [f"WFI{i:02d}" for i in range(1, 19)]
        assert table["WFI01"]["amplitude"] == 0.4
        assert table["WFI01"]["time_constant"] == 23.0


def test_inverse_linearity_is_the_simulators_polynomial(refset):
    import roman_datamodels.datamodels as dm

    det = refset.detector
    linear = np.linspace(0.0, 70000.0, 57)[:, None, None]
    with dm.open(refset["inverselinearity"]) as m:
        coeffs = np.asarray(m.coeffs)
    np.testing.assert_array_equal(coeffs[0], 0)
    np.testing.assert_array_equal(coeffs[1], 1)
    np.testing.assert_array_equal(coeffs[2], -det.nonlinearity_beta)
    # same polynomial up to the evaluation order (Horner vs x - beta x**2)
    np.testing.assert_allclose(
        evaluate_polynomial(coeffs, linear),
        det.nonlinear(np.broadcast_to(linear, (57, 32, 32))),
        rtol=1e-14,
    )


def test_linearity_inverts_inverse_linearity_to_a_tenth_of_a_dn(refset):
    import roman_datamodels.datamodels as dm

    with dm.open(refset["linearity"]) as m:
        lin = np.asarray(m.coeffs)
        lin_dq = np.asarray(m.dq)
    with dm.open(refset["inverselinearity"]) as m:
        inv = np.asarray(m.coeffs)
    no_corr = np.isnan(lin).any(axis=0)
    assert no_corr.any()
    np.testing.assert_array_equal(no_corr, (lin_dq & (1 << 20)) != 0)  # NO_LIN_CORR
    # usable range: linear signals whose observed value stays below the 16-bit limit
    linear = np.linspace(0.0, 1.0, 201)[:, None, None] * 66000.0
    observed = evaluate_polynomial(inv, linear)
    usable = observed <= 65535
    back = evaluate_polynomial(lin, observed)
    error = np.abs(back - linear)[usable & ~no_corr[None]]
    assert error.max() < 0.1
    assert usable.sum() > 0.9 * usable.size


def test_refpix_coefficients_reproduce_a_slow_common_mode_drift():
    ny = 64
    coeffs = refpix_coefficients(ny)
    length = ny * 140
    m = length // 2 + 1
    assert coeffs["gamma"].shape == (32, m)
    np.testing.assert_array_equal(coeffs["alpha"], 0)
    # a slow drift (3 cycles per frame) plus a constant, seen by the 4 left/right columns
    t = np.arange(length)
    drift = 7.0 + 4.0 * np.cos(2 * np.pi * 3 * t / length + 0.4)
    sampled = np.where((t % 140) < 4, drift, 0.0)
    f_left = np.fft.rfft(sampled / length) * 140 / 4
    f_right = f_left.copy()
    correction = np.fft.irfft(
        (f_left * coeffs["gamma"][5] + f_right * coeffs["zeta"][5]) * 2 * m, n=length
    )
    np.testing.assert_allclose(correction, drift, atol=1e-9)
    # high frequencies (here, per-pixel white noise) are mostly rejected
    noise = np.random.default_rng(0).standard_normal(length)
    noisy = np.where((t % 140) < 4, noise, 0.0)
    f_noise = np.fft.rfft(noisy / length) * 140 / 4
    leak = np.fft.irfft(f_noise * coeffs["gamma"][0] * 2 * m, n=length)
    assert leak.std() < 0.5


def test_distortion_centres_the_image_on_the_aperture_reference(refset, exposure):
    import roman_datamodels.datamodels as dm

    with dm.open(refset["distortion"]) as m:
        transform = m.coordinate_distortion_transform
    with dm.open(exposure.path) as raw:
        v2_ref, v3_ref = raw.meta.wcsinfo.v2_ref, raw.meta.wcsinfo.v3_ref
    v2, v3 = transform(11.5, 11.5)  # centre of the 24x24 science area
    np.testing.assert_allclose([v2, v3], [v2_ref, v3_ref], atol=1e-9)
    v2b, v3b = transform(12.5, 11.5)
    np.testing.assert_allclose(np.hypot(v2b - v2, v3b - v3), 0.11, rtol=1e-9)


def test_photom_table_covers_all_elements(refset):
    import roman_datamodels.datamodels as dm

    with dm.open(refset["photom"]) as m:
        table = m.phot_table
        for element in ("F062", "F087", "F106", "F129", "F146", "F158", "F184", "F213"):
            assert table[element]["photmjsr"] > 0
            assert table[element]["wavelength"].dtype == np.float32
        for element in ("GRISM", "GRISM_0", "PRISM"):
            assert table[element]["photmjsr"] is None
            assert table[element]["collecting_area"] > 0
        for element in ("DARK", "NOT_CONFIGURED"):
            assert all(v is None for v in table[element].values())


def test_romanxr_loads_every_reference(refset):
    from romanxr.refs.load import load_reference

    flat = load_reference(refset["flat"], "flat")
    assert flat["data"].dims == ("y", "x")
    assert int(flat["y"][0]) == 4
    lin = load_reference(refset["linearity"], "linearity")
    assert lin["coeffs"].dims == ("coeff", "y", "x")
    refpix = load_reference(refset["refpix"], "refpix")
    assert refpix["gamma"].dims == ("channel", "frequency")
    photom = load_reference(refset["photom"], "photom")
    assert "F158" in photom.attrs["phot_table"]
    for reftype, path in refset.items():
        load_reference(path, reftype)


def test_reference_set_is_a_mapping_with_romancal_overrides(refset):
    overrides = refset.overrides()
    assert overrides == {k: str(v) for k, v in refset.items()}
    steps = refset.romancal_steps(skip=("refpix", "dark_decay", "tweakreg"))
    assert steps["linearity"] == {
        f"override_{r}": str(refset[r]) for r in ROMANCAL_STEP_REFTYPES["linearity"]
    }
    assert steps["refpix"]["skip"] is True and steps["tweakreg"] == {"skip": True}
    assert steps["rampfit"].keys() == {"override_readnoise", "override_gain"}


def test_unknown_reftype_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown reftypes"):
        make_reference_set(tmp_path, make_detector(SHAPE), reftypes=("superbias",))


def test_integral_nonlinearity_table_holds_the_detector_inl(tmp_path):
    import roman_datamodels.datamodels as dm

    det = make_detector(SHAPE, seed=4, inl_amplitude=2.0)
    refs = make_reference_set(tmp_path, det, reftypes=("integralnonlinearity",))
    with dm.open(refs["integralnonlinearity"]) as m:
        assert m.meta.n_channels == 32
        np.testing.assert_array_equal(m.value, det.inl_value)
        assert m.value[0] == 0 and m.value[-1] == 65535
        for k in (1, 17, 32):
            entry = m.inl_table[f"science_channel_{k:02d}"]
            assert entry["instrument_channel"] == k - 1
            np.testing.assert_array_equal(entry["correction"], det.inl_correction[k - 1])
