"""The demo tells the truth about the exposure it simulated and says how to reuse its cache."""

from __future__ import annotations

import re

import numpy as np
import pytest

from romanxr.demo import describe_truth, run_demo
from romanxr.testing import make_detector, simulate_exposure


def test_describe_truth_counts_jumps_and_stars(tmp_path):
    sim = simulate_exposure((64, 64), seed=3, n_jumps=7, path=tmp_path)
    line = describe_truth("x_uncal.asdf", sim.truth)
    assert "7 cosmic-ray jumps" in line
    stars = len(sim.truth.sources["x"])
    saturating = int(np.count_nonzero(sim.truth.sources["saturating"]))
    assert f"{stars} stars of which {saturating} saturate" in line
    assert "64x64" in line


@pytest.mark.slow
def test_demo_prints_the_true_counts_and_the_cache_settings(tmp_path, capsys):
    written = run_demo(tmp_path / "demo", size=256, seed=11, progress=False)
    out = capsys.readouterr().out
    # the same seed simulates the same exposure: its truth is what the demo must have counted
    truth = simulate_exposure(make_detector((256, 256), seed=11), seed=11, path=tmp_path).truth
    jumps = int(re.search(r"(\d+) cosmic-ray jumps", out).group(1))
    assert jumps == len(truth.jumps["y"])
    assert jumps > 5  # the old demo printed the number of keys of the truth record
    assert f"export CRDS_PATH={written['crds_cache']}" in out
    assert f"romanxr calibrate {written['uncal']}" in out
    assert written["cal"].exists() and written["png"].exists()
