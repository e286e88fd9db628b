"""Metadata parity: the whole ``meta`` tree (and the top-level nodes) of romanxr's cal.asdf
against romancal 1.1.0's, and the ``_wcs.asdf`` product beside it.

Both ran on the oracle exposure of ``conftest.py`` through the same local CRDS cache, with the
same steps skipped. Every difference must be on the allow-list below, each with its reason
(docs/coming-from-romancal.rst lists them for users).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("romancal")

import asdf
import astropy.units as u
import roman_datamodels.datamodels as dm
from astropy.time import Time

from romanxr.io.product import to_plain
from tests.parity.conftest import ROMANCAL_SKIP_SMALL

pytestmark = pytest.mark.oracle

#: where romanxr's cal.asdf may differ from romancal's, and why
ALLOWED = {
    "meta.file_date": "the time each file was written",
    "meta.filename": "each file's own name (both are cal.asdf here)",
    "meta.calibration_software_name": "the program that calibrated: RomanCAL or romanxr",
    "meta.calibration_software_version": "its version (romancal's or romanxr's)",
    "meta.cal_logs": "each program's own log lines; both in romancal's line format (checked)",
    "meta.wcs": "a gwcs object, compared by evaluating both on a grid of pixels (below)",
}
#: top-level nodes of the ASDF tree that only romanxr writes
ROMANXR_ONLY = {"romanxr": "romanxr's provenance: every step's effective parameters"}

#: romancal's cal_logs line: UTC time with milliseconds, logger, level, message
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z :: [\w.]+ :: (DEBUG|INFO|WARNING|ERROR|CRITICAL) :: "
)


def differences(a, b, path="meta", allowed=ALLOWED) -> list[str]:
    """Paths where the plain trees ``a`` and ``b`` differ (allowed paths are not entered)."""
    if path in allowed:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            sub = f"{path}.{key}"
            if key not in a or key not in b:
                out += (
                    []
                    if sub in allowed
                    else [f"{sub} (only in {'romanxr' if key in b else 'romancal'})"]
                )
            else:
                out += differences(a[key], b[key], sub, allowed)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path} (length {len(a)} != {len(b)})"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in differences(x, y, f"{path}[{i}]", allowed)
        ]
    if type(a) is not type(b):
        return [f"{path} ({type(a).__name__} != {type(b).__name__})"]
    if isinstance(a, float) and np.isnan(a) and np.isnan(b):
        return []
    if isinstance(a, np.ndarray):
        return [] if np.array_equal(a, b, equal_nan=a.dtype.kind == "f") else [path]
    if isinstance(a, Time):
        return [] if (a == b) else [path]
    return [] if a == b else [path]


@pytest.fixture(scope="module")
def runs(oracle_run, tmp_path_factory):
    """romanxr with exactly romancal's skipped steps, writing cal.asdf (and cal_wcs.asdf)."""
    from romanxr.pipeline import calibrate

    folder = tmp_path_factory.mktemp("meta") / "romanxr"
    folder.mkdir()
    cal = folder / "cal.asdf"
    before = Time.now()
    with oracle_run.cache.activate():
        calibrate(
            oracle_run.uncal, steps={s: {"skip": True} for s in ROMANCAL_SKIP_SMALL}, output=cal
        )
    return oracle_run.romancal_cal, cal, (before, Time.now())


def test_whole_meta_trees_differ_only_on_the_allow_list(runs):
    romancal_cal, romanxr_cal, _ = runs
    with dm.open(romancal_cal) as rc, dm.open(romanxr_cal) as xr:
        theirs, ours = to_plain(rc["meta"]), to_plain(xr["meta"])
        assert differences(theirs, ours) == []
        # the allowed differences are real ones, and what they should be
        assert ours["calibration_software_name"] == "romanxr"
        assert theirs["calibration_software_name"] == "RomanCAL"
        import romanxr

        assert ours["calibration_software_version"] == romanxr.__version__
        # ... and what we made equal is there: crds:// names, statistics, same arrays
        assert ours["ref_file"]["dark"].startswith("crds://")
        assert set(ours["statistics"]) == {
            "zodiacal_light",
            "image_median",
            "image_rms",
            "good_pixel_fraction",
        }
        assert 0.9 < ours["statistics"]["good_pixel_fraction"] <= 1
        assert set(rc._instance) == set(xr._instance)  # the arrays (no var_rnoise in either)


def test_top_level_nodes_differ_only_by_romanxrs_provenance(runs):
    romancal_cal, romanxr_cal, _ = runs
    with asdf.open(romancal_cal) as rc, asdf.open(romanxr_cal) as xr:
        assert set(xr.tree) - set(rc.tree) == set(ROMANXR_ONLY)
        assert set(rc.tree) <= set(xr.tree)
        assert rc.tree["asdf_library"] == xr.tree["asdf_library"]
        assert to_plain(rc.tree["history"]) == to_plain(xr.tree["history"])
        assert "step_parameters" in xr.tree["romanxr"]


def _grid(shape):
    ny, nx = shape
    y, x = np.mgrid[0:ny:3, 0:nx:3].astype(np.float64)
    return np.r_[x.ravel(), nx - 1.0], np.r_[y.ravel(), ny - 1.0]


def test_the_two_wcs_evaluate_identically(runs):
    romancal_cal, romanxr_cal, _ = runs
    with dm.open(romancal_cal) as rc, dm.open(romanxr_cal) as xr:
        x, y = _grid(rc.data.shape)
        for a, b in zip(rc.meta.wcs(x, y), xr.meta.wcs(x, y), strict=True):
            assert np.isfinite(a).all()
            np.testing.assert_array_equal(a, b)


def test_cal_logs_are_the_runs_lines_in_romancals_format(runs):
    romancal_cal, romanxr_cal, (start, end) = runs
    with dm.open(romancal_cal) as rc, dm.open(romanxr_cal) as xr:
        theirs, ours = list(rc.meta.cal_logs), list(xr.meta.cal_logs)
    assert theirs and ours
    assert all(LOG_LINE.match(line) for line in theirs)
    assert all(LOG_LINE.match(line) for line in ours), ours
    # romanxr's lines are this run's: its steps, at times inside the run
    text = "\n".join(ours)
    for step in ("dq_init", "ramp_fit", "flatfield"):
        assert f"step {step}" in text
    assert "refpix skipped" in text
    times = [Time(line.split("Z :: ")[0], format="isot", scale="utc") for line in ours]
    assert all(start - 1 * u.ms <= t <= end for t in times)


def test_statistics_equal_romancals_populate_statistics(runs):
    from romancal.lib.statistics import populate_statistics

    _, romanxr_cal, _ = runs
    with dm.open(romanxr_cal) as xr:
        written = dict(xr.meta.statistics)
        del xr.meta["statistics"]
        populate_statistics(xr)  # romancal's own function on our written arrays
        assert written == dict(xr.meta.statistics)


# ------------------------------------------------------------------------------------------
# the _wcs.asdf product


def test_wcs_product_is_a_valid_wfiwcsmodel_with_the_cals_wcs(runs):
    _, romanxr_cal, _ = runs
    path = Path(romanxr_cal).with_name("cal_wcs.asdf")
    with dm.open(path) as model, dm.open(romanxr_cal) as cal:
        assert type(model) is dm.WfiWcsModel
        model.validate()
        assert model.meta.filename == path.name
        x, y = _grid(cal.data.shape)
        for a, b in zip(model.wcs_l2(x, y), cal.meta.wcs(x, y), strict=True):
            assert np.isfinite(a).all()
            np.testing.assert_array_equal(a, b)
        # wcs_l1 is the same sky on the full frame: pixel + 4 (the reference border)
        for a, b in zip(model.wcs_l1(x + 4, y + 4), cal.meta.wcs(x, y), strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_wcs_product_equals_romancals_but_for_the_allow_list(runs, tmp_path):
    romancal_cal, romanxr_cal, _ = runs
    with dm.open(romancal_cal) as rc:
        # what romancal's exposure pipeline saves beside its cal (romancal.lib.save_wcs)
        dm.WfiWcsModel.from_model_with_wcs(rc).save(tmp_path / "cal_wcs.asdf")
        x, y = _grid(rc.data.shape)
    with (
        dm.open(tmp_path / "cal_wcs.asdf") as theirs,
        dm.open(Path(romanxr_cal).with_name("cal_wcs.asdf")) as ours,
    ):
        assert differences(to_plain(theirs["meta"]), to_plain(ours["meta"])) == []
        assert ours.meta.model_type == "WfiWcsModel"
        for name in ("wcs_l1", "wcs_l2"):
            for a, b in zip(ours[name](x + 4, y + 4), theirs[name](x + 4, y + 4), strict=True):
                np.testing.assert_array_equal(a, b)
