"""Step parameters as strun finds them: CRDS ``pars-*`` references, parameter files both ways,
a cal.asdf's record reused as ``--config``, and where each effective value came from.

The oracle tests build romancal's ExposurePipeline the way ``strun`` does (stpipe's own
command-line code, without running it) on the same input and the same local CRDS cache, and
compare the parameters it ends up with to romanxr's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import asdf
import numpy as np
import pytest

from romanxr import cli
from romanxr.pipeline import (
    crds_step_options,
    effective_parameters,
    open_exposure,
    parameter_sources,
    resolve_step_options,
)
from romanxr.testing.crds_cache import build_local_crds_cache, write_step_parameters_reference
from tests.cli._exposure import UNCAL_NAME, make_exposure

STEM = UNCAL_NAME.removesuffix("_uncal.asdf")
RAMPFIT_CLASS = "romancal.ramp_fitting.ramp_fit_step.RampFitStep"
#: the value the CRDS reference sets (romancal's and romanxr's default is 4.5)
CRDS_THRESHOLD = 6.5
PARS_NAME = "roman_wfi_pars-rampfitstep_0001.asdf"


@pytest.fixture(scope="module")
def exposure(tmp_path_factory):
    """The small exposure, with a second CRDS cache that also holds a pars-rampfitstep."""
    folder = tmp_path_factory.mktemp("pars")
    exp = make_exposure(folder)
    pars = write_step_parameters_reference(
        folder / PARS_NAME, RAMPFIT_CLASS, {"rejection_threshold": CRDS_THRESHOLD}
    )
    exp.pars_cache = build_local_crds_cache(
        folder / "crds_pars", {**exp.references, "pars-rampfitstep": pars}
    )
    return exp


@pytest.fixture
def pars_cache(exposure, monkeypatch):
    monkeypatch.delenv("STPIPE_DISABLE_CRDS_STEPPARS", raising=False)
    with exposure.pars_cache.activate():
        yield exposure


def _recorded(cal):
    with asdf.open(cal, lazy_load=False, memmap=False) as af:
        node = af.tree["romanxr"]
        return (
            {k: dict(v) for k, v in node["step_parameters"].items()},
            {k: dict(v) for k, v in node["parameter_sources"].items()},
            node["crds_step_parameters"],
            np.array(af.tree["roman"]["data"]),
            np.array(af.tree["roman"]["dq"]),
        )


def _romancal_strun(args):
    """romancal's pipeline as ``strun <args>`` builds it (CRDS pars merged), not run."""
    cmdline = pytest.importorskip("stpipe._cmdline")
    step_class, config, name, config_file, parser, known = cmdline._config_and_class_from_cmdline(
        args
    )
    step, _ = cmdline._build_step_from_args(
        step_class, config, name, config_file, parser, known, args
    )
    return step


def test_crds_pars_layer_sits_between_defaults_and_config(pars_cache, tmp_path):
    meta = open_exposure(pars_cache.uncal).attrs["meta"]
    crds = crds_step_options(meta)
    assert crds.options == {"ramp_fit": {"rejection_threshold": CRDS_THRESHOLD}}
    assert set(crds.references) == {"pars-rampfitstep"}
    # CRDS < config file < command line, and each value says where it came from
    config = tmp_path / "c.toml"
    config.write_text("[rampfit]\nrejection_threshold = 7\n[saturation]\nbackup = 1\n")
    for steps, config_file, value, source in [
        (None, None, CRDS_THRESHOLD, f"crds {PARS_NAME}"),
        (None, config, 7.0, "config file c.toml"),
        ({"rampfit": {"rejection_threshold": "8"}}, config, 8.0, "command line"),
    ]:
        options = resolve_step_options(steps, config_file, crds)
        assert options["ramp_fit"]["rejection_threshold"] == value
        sources = parameter_sources(steps, config_file, crds, given="command line")
        assert sources["ramp_fit"]["rejection_threshold"] == source
        assert sources["ramp_fit"]["algorithm"] == "default"
    # romanxr's stand-alone jump step given on the command line wins over CRDS's rampfit value
    steps = {"jump": {"rejection_threshold": 5}}
    assert "rejection_threshold" not in resolve_step_options(steps, None, crds)["ramp_fit"]
    assert crds_step_options(meta, disable=True).options == {}


def test_disable_env_turns_the_lookup_off(pars_cache, monkeypatch):
    meta = open_exposure(pars_cache.uncal).attrs["meta"]
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    assert crds_step_options(meta).disabled
    assert crds_step_options(meta, disable=False).options["ramp_fit"]


def test_no_crds_means_no_step_parameters(exposure, monkeypatch):
    # CRDS not configured at all: nothing from CRDS, and no error (as stpipe)
    for name in ("CRDS_PATH", "CRDS_SERVER_URL", "CRDS_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    meta = open_exposure(exposure.uncal).attrs["meta"]
    assert crds_step_options(meta).options == {}


def test_a_bad_pars_reference_names_the_file(exposure, tmp_path, monkeypatch):
    monkeypatch.delenv("STPIPE_DISABLE_CRDS_STEPPARS", raising=False)
    pars = write_step_parameters_reference(
        tmp_path / "roman_wfi_pars-rampfitstep_0002.asdf", RAMPFIT_CLASS, {"rejection_thresold": 5}
    )
    refs = {**exposure.references, "pars-rampfitstep": pars}
    cache = build_local_crds_cache(tmp_path / "crds", refs)
    meta = open_exposure(exposure.uncal).attrs["meta"]
    from romanxr.errors import ConfigError

    with cache.activate(), pytest.raises(ConfigError, match=r"pars-rampfitstep_0002\.asdf"):
        crds_step_options(meta)


def test_show_params_prints_every_value_and_its_source(pars_cache, tmp_path, capsys):
    args = ["calibrate", str(pars_cache.uncal), "--show-params", "--steps.flat.skip=true"]
    args += [f"--output-dir={tmp_path}"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert f"--steps.ramp_fit.rejection_threshold={CRDS_THRESHOLD!r}  [crds {PARS_NAME}]" in out
    assert "--steps.flatfield.skip=True  [command line]" in out
    assert "--steps.saturation.n_pix_grow_sat=0  [default]" in out
    lines = [line for line in out.splitlines() if line.startswith("  --steps.")]
    assert len(lines) == sum(len(effective_parameters(s)) for s in _steps())
    assert list(tmp_path.iterdir()) == []  # nothing computed or written
    assert cli.main([*args, "--disable-crds-steppars"]) == 0
    out = capsys.readouterr().out
    assert "CRDS step parameters: disabled" in out
    assert "--steps.ramp_fit.rejection_threshold=4.5  [default]" in out


def _steps():
    from romanxr.registry import STEPS

    return STEPS


@pytest.mark.oracle
def test_pars_rampfitstep_same_value_in_romanxr_and_romancal(pars_cache, tmp_path):
    uncal = str(pars_cache.uncal)
    # romancal, as strun builds it: the CRDS value, and the default when disabled
    assert _romancal_strun(["roman_elp", uncal]).rampfit.rejection_threshold == CRDS_THRESHOLD
    off = _romancal_strun(["roman_elp", uncal, "--disable-crds-steppars"])
    assert off.rampfit.rejection_threshold == 4.5
    # romanxr: the same value runs, recorded with its source
    base = ["calibrate", uncal, "--no-progress"]
    assert cli.main([*base, f"--output-dir={tmp_path / 'crds'}"]) == 0
    params, sources, used, data, dq = _recorded(tmp_path / "crds" / f"{STEM}_cal.asdf")
    assert params["ramp_fit"]["rejection_threshold"] == CRDS_THRESHOLD
    assert sources["ramp_fit"]["rejection_threshold"] == f"crds {PARS_NAME}"
    assert used == {"pars-rampfitstep": PARS_NAME}
    assert cli.main([*base, f"--output-dir={tmp_path / 'off'}", "--disable-crds-steppars"]) == 0
    params_off, sources_off, used_off, *_ = _recorded(tmp_path / "off" / f"{STEM}_cal.asdf")
    assert params_off["ramp_fit"]["rejection_threshold"] == 4.5
    assert sources_off["ramp_fit"]["rejection_threshold"] == "default"
    assert used_off == "disabled"
    # the CRDS value is the one the fit used: the same arrays as the value given by hand
    by_hand = [*base, f"--output-dir={tmp_path / 'hand'}", "--disable-crds-steppars"]
    assert cli.main([*by_hand, f"--steps.rampfit.rejection_threshold={CRDS_THRESHOLD}"]) == 0
    *_, data_hand, dq_hand = _recorded(tmp_path / "hand" / f"{STEM}_cal.asdf")
    np.testing.assert_array_equal(data, data_hand)
    np.testing.assert_array_equal(dq, dq_hand)


@pytest.mark.oracle
def test_save_parameters_is_what_strun_builds_from_it(pars_cache, tmp_path):
    saved = tmp_path / "p.asdf"
    args = ["calibrate", str(pars_cache.uncal), "--show-params", f"--save-parameters={saved}"]
    args += ["--steps.saturation.n_pix_grow_sat=2", "--steps.flat.skip=true"]
    assert cli.main(args) == 0
    ours = resolve_step_options(config=saved)
    assert ours["ramp_fit"]["rejection_threshold"] == CRDS_THRESHOLD  # saved with CRDS's value
    for extra in ([], ["--disable-crds-steppars"]):
        pipeline = _romancal_strun([str(saved), str(pars_cache.uncal), *extra])
        assert pipeline.rampfit.rejection_threshold == CRDS_THRESHOLD
        assert pipeline.saturation.n_pix_grow_sat == 2
        assert pipeline.flatfield.skip is True
        for step in type(pipeline).step_defs:
            theirs = getattr(pipeline, step)
            mine = next(v for k, v in ours.items() if k.replace("_", "") == step.replace("_", ""))
            for name, value in mine.items():
                got = getattr(theirs, name)
                # stpipe reads an unset string parameter as '' where romanxr keeps None
                assert got == value or (got == "" and value is None), (step, name)


def test_config_of_a_cal_reruns_with_its_parameters(exposure, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    given = ["--steps.rampfit.rejection_threshold=6", "--steps.saturation.n_pix_grow_sat=1"]
    with exposure.cache.activate():
        first = tmp_path / "first"
        assert cli.main(["calibrate", str(exposure.uncal), f"--output-dir={first}", *given]) == 0
        cal = first / f"{STEM}_cal.asdf"
        again = tmp_path / "again"
        args = ["calibrate", str(exposure.uncal), f"--output-dir={again}", f"--config={cal}"]
        assert cli.main(args) == 0
    p1, s1, _, data1, dq1 = _recorded(cal)
    p2, s2, _, data2, dq2 = _recorded(again / f"{STEM}_cal.asdf")
    assert p1["ramp_fit"]["rejection_threshold"] == 6.0
    assert p1["saturation"]["n_pix_grow_sat"] == 1
    assert p2 == p1
    assert s1["saturation"]["n_pix_grow_sat"] == "command line/keyword"
    assert s2["saturation"]["n_pix_grow_sat"] == f"config file {cal.name}"
    np.testing.assert_array_equal(data1, data2)
    np.testing.assert_array_equal(dq1, dq2)


def test_importing_romanxr_configures_no_logging():
    # quiet in notebooks and scripts: no handler and no level on import (the CLI sets its own
    # for the length of a command); Python's last resort shows warnings only
    code = (
        "import logging, romanxr, romanxr.pipeline, romanxr.cli\n"
        "l = logging.getLogger('romanxr')\n"
        "print(l.level, l.handlers, logging.getLogger().handlers, l.getEffectiveLevel())"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "[]", "[]", str(30)]
