"""The pure helpers of benchmarks/bench_exposure.py (the benchmark itself is not run here)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_exposure.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_exposure", PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_exposure"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_detectors_per_hour(bench):
    assert bench.detectors_per_hour(18, 3600.0) == 18.0
    assert bench.detectors_per_hour(1, 155.0) == pytest.approx(23.2, abs=0.1)
    assert math.isnan(bench.detectors_per_hour(1, 0.0))


def test_romancal_runs_scale_to_the_whole_exposure(bench):
    runs = [bench.Run("a", 150.0, 140.0, 5.0, 1), bench.Run("b", 160.0, 150.0, 5.5, 1)]
    whole = bench.scale(runs, 18)
    assert whole.wall == pytest.approx(18 * 155.0)
    assert whole.peak_gib == 5.5
    assert whole.per_hour == pytest.approx(3600 / 155.0)


def test_commands_name_every_file_and_skip_the_same_steps(bench, tmp_path):
    files = [tmp_path / "a_wfi01_uncal.asdf", tmp_path / "a_wfi02_uncal.asdf"]
    cmd = bench.romanxr_command(files, tmp_path / "out", 256, workers=2)
    assert cmd[cmd.index("calibrate") + 1 : cmd.index("calibrate") + 3] == list(map(str, files))
    assert cmd[-2:] == ["--workers", "2"]
    assert "--steps.refpix.skip=True" in cmd
    full = bench.strun_command(files[0], tmp_path, 4096)
    assert "--steps.refpix.skip=True" not in full
    assert "--steps.tweakreg.skip=True" in full


def test_the_one_file_cli_is_recognised(bench):
    assert bench.takes_one_file_only(2, "calibrate takes one input file, got [...]")
    assert not bench.takes_one_file_only(0, "")
    assert not bench.takes_one_file_only(1, "TruncatedFileError")
