"""Ramp fitting recovers the truth of a simulated exposure (``romanxr.testing``).

Scene: a 64x64 frame (56x56 science pixels) from :func:`romanxr.testing.simulate_exposure` with
the default uneven 8-resultant MA table (25 reads), sky plus stars (a saturating one included),
Poisson and read noise, ADC rounding, the classical non-linearity, hot/dead/no-linearity
pixels, and 800 cosmic-ray jumps with amplitudes uniform in 5..400 linear DN (a quarter of the
pixels get one). The chain is dq_init -> saturation -> linearity -> ramp_fit with every
reference taken from :func:`romanxr.testing.make_reference_set` (``override_*`` arguments).

refpix and dark_decay are not run: the detector is drawn without reference-pixel drift and
without dark decay (``drift_amplitude=0``, ``dark_decay_amplitude=0``), so the linearised
resultants follow ``truth.rate`` (dark current included) and nothing but ramp fitting is
tested. (Both steps have their own simulator tests.)

Measured on this scene (``pytest tests/unit/test_ramp_fit_simulated.py -s`` prints them):
completeness of jumps >= 60 DN in pixels that never saturate 0.993 (likely) and 0.993
(ols_cas22); the few misses are on bright stars (600 DN/s), where a 100-250 DN jump is only
~3 sigma of the Poisson noise of a resultant difference. False positives (JUMP_DET in a pixel
without an injected jump): 0 of ~1970 pixels for both. Slopes of unsaturated, jump-free good
pixels: median of (fit - truth) / err -0.014 (likely) / +0.024 (ols_cas22), std 1.006 / 0.978.
With ``rejection_threshold=500`` the likely fit flags 0 pixels instead of 753.
"""

from __future__ import annotations

import numpy as np
import pytest

from romanxr.dataset import BORDER
from romanxr.dq import PixelFlag
from romanxr.io import open_uncal
from romanxr.steps.dq_init import dq_init
from romanxr.steps.linearity import linearity
from romanxr.steps.ramp_fit import ramp_fit
from romanxr.steps.saturation import saturation
from romanxr.testing import make_detector, make_reference_set, simulate_exposure

SHAPE = (64, 64)
SEED = 21
N_JUMPS = 800
JUMP_AMPLITUDES = (5.0, 400.0)
#: Jumps at least this large (linear DN) must be found ...
MIN_AMPLITUDE = 60.0
#: ... with at least this completeness (measured 0.993 for both fitters).
MIN_COMPLETENESS = 0.98
#: Allowed fraction of jump-free pixels with JUMP_DET (measured 0).
MAX_FALSE_POSITIVE_RATE = 0.002
SCI = np.s_[BORDER:-BORDER, BORDER:-BORDER]
JUMP = np.uint32(PixelFlag.JUMP_DET)
RAMP_REFTYPES = (
    "mask",
    "saturation",
    "linearity",
    "inverselinearity",
    "integralnonlinearity",
    "readnoise",
    "gain",
)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """The simulated exposure, its references and the linearised ramp (numpy-backed)."""
    tmp = tmp_path_factory.mktemp("ramp_sim")
    det = make_detector(SHAPE, seed=SEED, drift_amplitude=0.0, dark_decay_amplitude=0.0)
    sim = simulate_exposure(
        det, seed=SEED, n_jumps=N_JUMPS, jump_amplitude_range=JUMP_AMPLITUDES, path=tmp
    )
    refs = make_reference_set(tmp / "refs", det, reftypes=RAMP_REFTYPES).overrides()
    ds = open_uncal(sim.path)
    ds = dq_init(ds, override_mask=refs["mask"])
    ds = saturation(ds, override_saturation=refs["saturation"])
    ds = linearity(
        ds,
        override_linearity=refs["linearity"],
        override_inverselinearity=refs["inverselinearity"],
        override_integralnonlinearity=refs["integralnonlinearity"],
    )
    return sim, refs, ds.compute()


@pytest.fixture(scope="module")
def fits(simulated):
    _, refs, ramp = simulated
    out = {}
    for algorithm in ("likely", "ols_cas22"):
        out[algorithm] = ramp_fit(
            ramp,
            algorithm=algorithm,
            override_readnoise=refs["readnoise"],
            override_gain=refs["gain"],
        ).compute()
    return out


def _masks(sim, image):
    """(eligible, injected) science-area masks.

    eligible: never saturated and no pixel flag other than JUMP_DET (dead, hot, no linearity
    correction, no saturation check ... are left out).
    """
    truth = sim.truth
    dq = image["dq"].values
    never_saturated = truth.first_saturated_resultant[SCI] < 0
    eligible = never_saturated & ((dq & ~JUMP) == 0)
    injected = np.zeros(dq.shape, bool)
    injected[truth.jumps["y"] - BORDER, truth.jumps["x"] - BORDER] = True
    return eligible, injected


def jump_statistics(sim, image, min_amplitude=MIN_AMPLITUDE):
    """Completeness above ``min_amplitude`` and the false-positive rate, as a dict."""
    truth = sim.truth
    eligible, injected = _masks(sim, image)
    flagged = (image["dq"].values & JUMP) != 0
    jy = truth.jumps["y"] - BORDER
    jx = truth.jumps["x"] - BORDER
    counted = eligible[jy, jx] & (truth.jumps["amplitude"] >= min_amplitude)
    found = flagged[jy, jx] & counted
    clean = eligible & ~injected
    false_pos = flagged & clean
    return {
        "n_jumps": int(counted.sum()),
        "completeness": float(found.sum() / counted.sum()),
        "n_clean": int(clean.sum()),
        "n_false_positive": int(false_pos.sum()),
        "false_positive_rate": float(false_pos.sum() / clean.sum()),
        "n_flagged": int(flagged.sum()),
    }


@pytest.mark.parametrize("algorithm", ["likely", "ols_cas22"])
def test_injected_jumps_are_found_without_false_positives(simulated, fits, algorithm):
    sim = simulated[0]
    stats = jump_statistics(sim, fits[algorithm])
    print(f"{algorithm}: {stats}")  # quoted in the module docstring (pytest -s)
    assert stats["n_jumps"] > 400  # enough jumps for the fractions to mean something
    assert stats["completeness"] >= MIN_COMPLETENESS
    assert stats["n_clean"] > 1500
    assert stats["false_positive_rate"] <= MAX_FALSE_POSITIVE_RATE
    # small jumps (< 20 DN, below ~4 sigma of a read-noise-limited difference) are mostly
    # not found: the completeness above is not just "flag everything"
    small = jump_statistics(sim, fits[algorithm], min_amplitude=0.0)
    assert small["completeness"] < stats["completeness"]


def test_likely_flags_the_resultant_where_the_jump_happened(simulated, fits):
    """JUMP_DET lands on the resultant holding the jump's read, or the next one (the jump
    inside a multi-read resultant raises two differences, which are dropped as a pair)."""
    sim = simulated[0]
    truth = sim.truth
    image = fits["likely"]
    eligible, _ = _masks(sim, image)
    jumps = image["jumps"].values
    jy = truth.jumps["y"] - BORDER
    jx = truth.jumps["x"] - BORDER
    k = truth.jumps["resultant"]
    found = eligible[jy, jx] & jumps[:, jy, jx].any(axis=0)
    at_k = jumps[k, jy, jx]
    at_next = jumps[np.minimum(k + 1, jumps.shape[0] - 1), jy, jx]
    located = (at_k | at_next)[found]
    assert found.sum() > 400
    assert located.mean() >= 0.98


@pytest.mark.parametrize("algorithm", ["likely", "ols_cas22"])
def test_slopes_are_unbiased_with_honest_errors(simulated, fits, algorithm):
    """On unsaturated, jump-free good pixels (fit - truth) / err is ~ N(0, 1)."""
    sim = simulated[0]
    image = fits[algorithm]
    eligible, injected = _masks(sim, image)
    clean = eligible & ~injected & ((image["dq"].values & JUMP) == 0)
    fit = image["data"].values[clean].astype(np.float64)
    err = image["err"].values[clean].astype(np.float64)
    truth = sim.truth.rate[SCI][clean].astype(np.float64)
    z = (fit - truth) / err
    print(f"{algorithm}: n={z.size} median z={np.median(z):+.4f} std z={np.std(z):.4f}")
    assert z.size > 1500
    assert np.all(np.isfinite(z))
    assert abs(np.median(z)) < 0.1
    assert abs(np.std(z) - 1.0) < 0.1
    # the sample spans read-noise-limited sky and Poisson-limited stars
    assert truth.min() < 1.0 and truth.max() > 100.0


def test_rejection_threshold_500_turns_the_search_practically_off(simulated, fits):
    """romancal ignores rejection_threshold; romanxr uses it: 500 sigma finds no jump here."""
    _, refs, ramp = simulated
    loose = ramp_fit(
        ramp,
        rejection_threshold=500,
        override_readnoise=refs["readnoise"],
        override_gain=refs["gain"],
    ).compute()
    n_default = int(((fits["likely"]["dq"].values & JUMP) != 0).sum())
    n_loose = int(((loose["dq"].values & JUMP) != 0).sum())
    print(f"pixels with JUMP_DET: rejection_threshold=4.5 -> {n_default}, 500 -> {n_loose}")
    assert n_default > 500
    assert n_loose < n_default / 20
    assert loose.attrs["step_parameters"]["ramp_fit"]["rejection_threshold"] == 500
    # pixels the default search left alone fit the same; jump pixels now carry their jump
    untouched = (fits["likely"]["dq"].values & JUMP) == 0
    np.testing.assert_allclose(
        loose["data"].values[untouched], fits["likely"]["data"].values[untouched], rtol=1e-5
    )
    sim = simulated[0]
    eligible, injected = _masks(sim, fits["likely"])
    hit = eligible & injected & ~untouched
    truth = sim.truth.rate[SCI][hit]
    bias_default = np.median(np.abs(fits["likely"]["data"].values[hit] - truth))
    bias_loose = np.median(np.abs(loose["data"].values[hit] - truth))
    assert bias_loose > 3 * bias_default
