"""``romanxr demo --detectors N``: several detectors of one exposure, calibrated, one mosaic."""

from __future__ import annotations

import pytest

from romanxr.cli import main


@pytest.mark.slow
def test_demo_with_two_detectors_writes_two_cal_files_and_a_mosaic(tmp_path, capsys):
    assert main(["demo", "--detectors", "2", "--output", str(tmp_path)]) == 0
    cals = sorted(p.name for p in tmp_path.glob("*_cal.asdf"))
    assert cals == [f"r0000101001001001001_0001_wfi0{i}_cal.asdf" for i in (1, 2)]
    assert (tmp_path / "focal_plane.png").stat().st_size > 1000
    assert "calibrated 2 files" in capsys.readouterr().out


def test_demo_refuses_more_than_18_detectors(tmp_path):
    assert main(["demo", "--detectors", "19", "--output", str(tmp_path)]) != 0
