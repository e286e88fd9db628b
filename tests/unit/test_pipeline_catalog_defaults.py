"""source_catalog and tweakreg in the default pipeline (issue 15): they run on imaging
exposures when they can, are SKIPPED with a logged reason when a default run cannot
(no APCORR/EPSF, the network-only default abs_refcat), fail fast when asked for, and a cal
given back as --config reproduces the run."""

from __future__ import annotations

import logging
import time

import pytest

import romanxr
from romanxr.errors import ConfigError
from romanxr.pipeline import calibrate
from tests.cli._exposure import CAL_NAME, make_exposure

CATALOG_STEPS = ("source_catalog", "tweakreg")


@pytest.fixture(scope="module")
def exposure(tmp_path_factory):
    return make_exposure(tmp_path_factory.mktemp("catalog_defaults"), catalog=True)


@pytest.fixture(autouse=True)
def crds(exposure):
    with exposure.cache.activate():
        yield exposure.cache


def test_default_run_measures_the_catalog_and_skips_tweakreg_with_the_reason(
    exposure, tmp_path, caplog
):
    out = tmp_path / CAL_NAME
    with caplog.at_level(logging.INFO, logger="romanxr"):
        cal = calibrate(exposure.uncal, output=out)
    cal_step = cal.attrs["meta"]["cal_step"]
    assert cal_step["source_catalog"] == "COMPLETE"
    assert cal_step["tweakreg"] == "SKIPPED"  # not INCOMPLETE
    records = cal.attrs["step_parameters"]
    assert records["source_catalog"]["skip"] is False
    assert records["tweakreg"]["skip"] is True  # a default skip, recorded
    skipped = [r for r in caplog.records if r.getMessage().startswith("step tweakreg skipped")]
    assert skipped and skipped[0].levelno == logging.INFO
    assert "--steps.tweakreg.abs_refcat" in skipped[0].getMessage()
    stem = CAL_NAME.removesuffix("_cal.asdf")
    assert (tmp_path / f"{stem}_cat.parquet").is_file()
    assert (tmp_path / f"{stem}_segm.asdf").is_file()
    back = romanxr.open_cal(out)
    assert back.attrs["meta"]["cal_step"]["source_catalog"] == "COMPLETE"
    assert back.attrs["step_parameters"]["tweakreg"]["skip"] is True


def test_without_catalog_references_both_are_skipped_with_the_reason(exposure, tmp_path, caplog):
    from romanxr.testing.crds_cache import build_local_crds_cache

    plain = {k: v for k, v in exposure.references.items() if k not in ("apcorr", "epsf")}
    cache = build_local_crds_cache(tmp_path / "crds_plain", plain)
    with cache.activate(), caplog.at_level(logging.INFO, logger="romanxr"):
        cal = calibrate(exposure.uncal, output=tmp_path / CAL_NAME)
    assert [cal.attrs["meta"]["cal_step"][k] for k in CATALOG_STEPS] == ["SKIPPED", "SKIPPED"]
    assert cal.attrs["step_parameters"]["source_catalog"]["skip"] is True
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(m.startswith("step source_catalog skipped: no apcorr/epsf reference") for m in lines)
    assert sorted(p.name for p in tmp_path.glob("*.*")) == [
        CAL_NAME,
        CAL_NAME.replace("_cal.", "_wcs."),
    ]


@pytest.mark.parametrize(
    "asked",
    [{"skip": False}, {"abs_refcat": "GAIADR3_S3"}],
    ids=["skip_false", "abs_refcat_service"],
)
def test_asking_for_tweakreg_offline_fails_fast_naming_the_option(exposure, tmp_path, asked):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"--steps\.tweakreg\.abs_refcat"):
        calibrate(exposure.uncal, steps={"tweakreg": asked}, output=tmp_path / CAL_NAME)
    assert time.perf_counter() - t0 < 30  # a plan-time refusal, not after the calibration
    assert not list(tmp_path.iterdir())  # nothing written


def test_cal_given_back_as_config_reproduces_the_run(exposure, tmp_path):
    first = tmp_path / "first" / CAL_NAME
    first.parent.mkdir()
    cal = calibrate(exposure.uncal, output=first, steps={"source_catalog": {"npixels": 6}})
    again = calibrate(exposure.uncal, config=first, output=tmp_path / CAL_NAME)
    for ds in (cal, again):
        cal_step = ds.attrs["meta"]["cal_step"]
        assert (cal_step["source_catalog"], cal_step["tweakreg"]) == ("COMPLETE", "SKIPPED")
    ours, theirs = cal.attrs["step_parameters"], again.attrs["step_parameters"]
    for key in CATALOG_STEPS:
        assert ours[key] == theirs[key], key
    assert theirs["source_catalog"]["npixels"] == 6
    # empty strings survive the write and the read back as the config
    assert theirs["source_catalog"]["forced_segmentation"] == ""
    assert theirs["tweakreg"]["catalog_path"] == ""
    assert len(again.roman.catalog) == len(cal.roman.catalog)
