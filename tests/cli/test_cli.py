"""The ``romanxr`` command line: arguments, outputs, messages and exit codes.

One simulated exposure and one offline CRDS cache serve the whole module. Most commands run in
this process (``cli.main`` with the cache active and the folder as the current directory,
output read with capsys): the same parsing, writing and exit codes as a user's shell gets,
without a Python start-up and numba cache load per command. What only a separate process
shows runs as one, through ``python -m romanxr.cli``: the entry point and its log lines on the
real stderr (``test_tutorial_exercise_as_typed``); the subprocess finds the references through
``cache.environ()`` (no server).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import romanxr
from romanxr import cli
from romanxr.pipeline import calibrate
from romanxr.registry import STEPS
from tests.cli._exposure import CAL_NAME, UNCAL_NAME, make_exposure

ROOT = Path(__file__).resolve().parents[2]
STEM = UNCAL_NAME.removesuffix("_uncal.asdf")


@pytest.fixture(scope="module")
def exposure(tmp_path_factory):
    return make_exposure(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def env(exposure):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    environ.update(exposure.cache.environ())
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), environ.get("PYTHONPATH", "")])
    return environ


@pytest.fixture(scope="module")
def default_cal(exposure):
    with exposure.cache.activate():
        return calibrate(exposure.uncal, steps={"jump": {"rejection_threshold": 500}}).compute()


@pytest.fixture
def work(exposure, tmp_path):
    """A folder holding a copy of the uncal file; commands run there."""
    shutil.copy(exposure.uncal, tmp_path / UNCAL_NAME)
    return tmp_path


def run(args, env, cwd, expect=0):
    proc = subprocess.run(
        [sys.executable, "-m", "romanxr.cli", *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == expect, (proc.returncode, proc.stdout, proc.stderr)
    return proc


@dataclasses.dataclass
class Finished:
    """What a command left: its exit code and what it printed (as ``subprocess.run`` returns)."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def romanxr_cmd(exposure, capsys, monkeypatch):
    """``romanxr ARGS`` run in this process from folder ``cwd``, references from the module's
    offline CRDS cache (or from the ``CRDS_*`` variables ``crds_env`` gives instead)."""
    from romanxr.refs.crds_client import crds_environment

    def call(args, cwd, expect=0, crds_env=None):
        monkeypatch.chdir(cwd)
        capsys.readouterr()  # only this command's output
        with crds_environment(crds_env or exposure.cache.environ(), lock=False):
            try:
                code = cli.main([str(a) for a in args])
            except SystemExit as stop:  # what the console script would exit with
                code = stop.code
        out, err = capsys.readouterr()
        code = 0 if code is None else code
        assert code == expect, (code, out, err)
        return Finished(code, out, err)

    return call


# ---------------------------------------------------------------- calibrate


def test_tutorial_exercise_as_typed(work, env, default_cal):
    proc = run(["calibrate", UNCAL_NAME, "--steps.jump.rejection_threshold=500"], env, work)
    out = work / CAL_NAME
    assert proc.stdout.strip() == CAL_NAME
    # strun's default level, INFO, in stpipe's line format; off a terminal the log is the
    # progress (one line per step), so no bar is drawn besides it
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("romanxr: compil")]
    assert sum(" - romanxr - INFO - step ramp_fit" in line for line in lines) == 1
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert all(re.match(rf"{stamp} - romanxr - (INFO|WARNING) - ", line) for line in lines)
    assert not any("[" in line and "%" in line for line in lines), lines
    cal = romanxr.open_cal(out).compute()
    for name in ("data", "dq"):
        np.testing.assert_array_equal(cal[name].values, default_cal[name].values)
    assert cal.attrs["step_parameters"]["jump"]["rejection_threshold"] == 500
    assert cal.attrs["meta"]["cal_step"]["ramp_fit"] == "COMPLETE"


def test_quiet_log_off_a_terminal_gets_one_progress_line_per_step(work, romanxr_cmd):
    """With the log at WARNING, the progress says each step itself: plain lines, no bar."""
    out = work / "quiet_cal.asdf"
    cmd = ["calibrate", UNCAL_NAME, "--log-level", "WARNING", "--output_file", out.name]
    proc = romanxr_cmd(cmd, work)
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("romanxr: compil")]
    assert not any("\r" in line or "[" in line for line in lines), lines
    assert all(line.startswith(f"calibrate {UNCAL_NAME}: ") for line in lines), lines
    assert sum(": step " in line and " ramp_fit," in line for line in lines) == 1
    assert "done in" in lines[-1]


def test_pasted_strun_arguments(work, romanxr_cmd, exposure):
    flat = exposure.references["flat"]
    proc = romanxr_cmd(
        [
            "calibrate",
            "romancal.pipeline.ExposurePipeline",
            UNCAL_NAME,
            "--steps.jump.rejection_threshold",
            "500",
            f"--steps.flat.override_flat={flat}",
            "--steps.tweakreg.skip=true",
            "--steps.source_catalog.skip=True",
            "--steps.rampfit.maximum_cores=half",
            "--save_results",
            "--output_dir",
            "out",
            "--save-intermediate",
            "refpix,ramp_fit",
            "--crds-context",
            "roman_9000.pmap",
            "-v",
        ],
        work,
    )
    assert "romanxr - INFO - step jump" not in proc.stderr  # folded into ramp_fit
    assert "romanxr - INFO - step ramp_fit" in proc.stderr
    out = work / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [CAL_NAME, f"{STEM}_refpix.asdf", f"{STEM}_rampfit.asdf", f"{STEM}_wcs.asdf"]
    )
    records = romanxr.open_cal(out / CAL_NAME).attrs["step_parameters"]
    assert records["flat_field"]["override_flat"] == str(flat)
    assert records["jump"]["rejection_threshold"] == 500
    rampfit = romanxr.open_cal(out / f"{STEM}_rampfit.asdf")
    assert rampfit.attrs["meta"]["cal_step"]["dark"] == "INCOMPLETE"
    assert romanxr.open_ramp(out / f"{STEM}_refpix.asdf").attrs["meta"]["cal_step"]["refpix"] == (
        "COMPLETE"
    )

    # roman_elp alias, a leading stpipe parameter file, --output_file without extension
    cfg = work / "roman_elp.yaml"
    cfg.write_text(
        "class: romancal.pipeline.ExposurePipeline\nname: ExposurePipeline\nsteps:\n"
        "- class: romancal.linearity.LinearityStep\n  name: linearity\n"
        "  parameters:\n    skip: true\n"
    )
    romanxr_cmd(["calibrate", "roman_elp", cfg.name, UNCAL_NAME, "--output_file=mine"], work)
    mine = romanxr.open_cal(work / "mine.asdf")
    assert mine.attrs["meta"]["cal_step"]["linearity"] == "SKIPPED"


def test_config_file_zarr_output_and_precedence(work, romanxr_cmd):
    cfg = work / "cfg.toml"
    cfg.write_text(
        "[steps.jump]\nrejection_threshold = 100\n[steps.linearity]\nskip = true\n"
        "[steps.saturation]\nbackup = 1\n"
    )
    romanxr_cmd(
        [
            "calibrate",
            UNCAL_NAME,
            "--config",
            cfg,
            "--steps.jump.rejection_threshold=500",
            "--output-format",
            "zarr",
        ],
        work,
    )
    ds = romanxr.open_zarr(work / f"{STEM}_cal.zarr")
    records = ds.attrs["step_parameters"]
    assert records["jump"]["rejection_threshold"] == 500  # command line > config
    assert records["saturation"]["backup"] == 1  # config > default
    assert records["saturation"]["n_pix_grow_sat"] == 0  # default
    assert ds.attrs["meta"]["cal_step"]["linearity"] == "SKIPPED"


def test_single_steps_resume_and_overwrite(work, romanxr_cmd, exposure):
    romanxr_cmd(["step", "dq_init", UNCAL_NAME], work)
    dqinit = work / f"{STEM}_dqinit.asdf"
    romanxr_cmd(["step", "saturation", dqinit.name, "--n_pix_grow_sat=1"], work)
    sat = work / f"{STEM}_saturation.asdf"
    ramp = romanxr.open_ramp(sat)
    assert ramp.attrs["meta"]["cal_step"]["saturation"] == "COMPLETE"
    assert ramp.attrs["step_parameters"]["saturation"]["n_pix_grow_sat"] == 1

    romanxr_cmd(["calibrate", sat.name, "--start-at", "refpix", "--stop-after", "linearity"], work)
    # resumed from the saved ramp: the same result as the whole pipeline from the uncal
    lin = romanxr.open_ramp(work / f"{STEM}_linearity.asdf")
    with exposure.cache.activate():
        expected = calibrate(
            exposure.uncal, stop_after="linearity", steps={"saturation": {"n_pix_grow_sat": 1}}
        ).compute()
    np.testing.assert_array_equal(lin["data"].values, expected["data"].values)
    np.testing.assert_array_equal(lin["groupdq"].values, expected["groupdq"].values)


def test_progress_bar_and_overwrite(work, romanxr_cmd):
    proc = romanxr_cmd(["step", "dq_init", UNCAL_NAME, "--progress"], work)
    # forced: the labelled bar (text mode reads its \r as a line end), ending at 100 %
    last = proc.stderr.splitlines()[-1]
    assert last.startswith(f"dq_init {UNCAL_NAME}: [####################] 100%"), last
    out = work / f"{STEM}_dqinit.asdf"
    before = out.stat().st_mtime_ns
    proc = romanxr_cmd(["step", "dq_init", UNCAL_NAME, "--no-overwrite"], work, expect=5)
    assert "already exists and --no-overwrite keeps it" in proc.stderr
    assert out.stat().st_mtime_ns == before
    # as strun does, an existing output is replaced by default
    proc = romanxr_cmd(
        ["step", "dq_init", UNCAL_NAME, "--no-progress", "--log-level=WARNING"], work
    )
    assert proc.stderr == ""  # no bar, no log output
    assert out.stat().st_mtime_ns > before


# ---------------------------------------------------------------- listing, refs, info


def test_calibrate_help_lists_every_parameter_of_every_step(romanxr_cmd, tmp_path):
    proc = romanxr_cmd(["calibrate", "-h"], tmp_path)
    text = proc.stdout
    for option in ("--steps", "--config", "--crds-context", "--save-intermediate", "-o"):
        assert option in text
    for opt in ("--output-format", "--no-overwrite", "--start-at", "--stop-after", "--no-progress"):
        assert opt in text
    for spec in STEPS:
        for p in spec.parameters().values():
            assert f"--steps.{spec.name}.{p.name}={p.default!r}" in text
            assert p.help.split()[0] in text


def test_steps_listing(romanxr_cmd, tmp_path):
    text = romanxr_cmd(["steps"], tmp_path).stdout
    for spec in STEPS:
        assert f"\n{spec.name}" in f"\n{text}"
        for name in spec.parameters():
            assert f"    {name} = " in text
    one = romanxr_cmd(["steps", "rampfit"], tmp_path).stdout
    assert one.startswith("ramp_fit") and "algorithm = 'likely'" in one
    assert "n_pix_grow_sat" not in one
    proc = romanxr_cmd(["steps", "rampfti"], tmp_path, expect=2)
    assert "did you mean 'ramp_fit'" in proc.stderr


def test_refs_offline_cache(romanxr_cmd, exposure, tmp_path):
    proc = romanxr_cmd(["refs", exposure.uncal], tmp_path)
    lines = proc.stdout.splitlines()
    for reftype, path in exposure.references.items():
        if reftype in {"apcorr", "area", "epsf"}:
            continue
        hits = [ln for ln in lines if f" {reftype} " in ln and path.name in ln]
        assert hits, (reftype, proc.stdout)
        assert all("[crds roman_9000.pmap]" in ln for ln in hits)
    flat = exposure.references["flat"]
    proc = romanxr_cmd(
        ["refs", exposure.uncal, f"--steps.flat.override_flat={flat}", "--steps.dark.skip=true"],
        tmp_path,
    )
    (flat_line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("flatfield")]
    assert str(flat) in flat_line and "[argument]" in flat_line
    assert any(ln.startswith("dark_current") and "skipped" in ln for ln in proc.stdout.splitlines())


def test_refs_without_crds_is_a_reference_error(romanxr_cmd, exposure, tmp_path):
    # no CRDS_* variable but these three (None removes one)
    bare = {k: None for k in [*os.environ, *exposure.cache.environ()] if k.startswith("CRDS_")}
    bare.update(
        CRDS_PATH=str(tmp_path / "empty"),
        CRDS_SERVER_URL="https://crds-offline.invalid",
        CRDS_MODE="local",
    )
    proc = romanxr_cmd(["refs", exposure.uncal], tmp_path, expect=4, crds_env=bare)
    assert "CRDS not configured (--steps.flatfield.override_flat)" in proc.stdout
    # the reason is said once, naming the cache that was tried
    assert proc.stderr.count("romanxr: ") == 1
    assert str(tmp_path / "empty") in proc.stderr
    assert "other references above" in proc.stderr


def test_info_on_uncal_ramp_and_cal(romanxr_cmd, exposure, work):
    text = romanxr_cmd(["info", exposure.uncal], work).stdout
    assert "product:     ramp (Level 1 uncal)" in text
    assert "WFI01" in text and "8 resultants" in text
    with exposure.cache.activate():
        calibrate(work / UNCAL_NAME, save_intermediate=["dq_init"], save_results=True)
    text = romanxr_cmd(["info", f"{STEM}_dqinit.asdf"], work).stdout
    assert "ramp (calibrated intermediate)" in text and "dq_init=COMPLETE" in text
    text = romanxr_cmd(["info", CAL_NAME], work).stdout
    assert "image (Level 2)" in text and "flat_field=COMPLETE" in text
    assert "parameters:  jump: " in text


# ---------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "usage"),
        (["calibrate", UNCAL_NAME, "--bogus"], "unrecognized arguments: --bogus"),
        (["calibrate", UNCAL_NAME, "--steps.jmp.rejection_threshold=5"], "did you mean 'jump'"),
        (
            ["calibrate", UNCAL_NAME, "--steps.jump.rejection_thresold=5"],
            "did you mean 'rejection_threshold'",
        ),
        (["calibrate", UNCAL_NAME, "--steps.jump.rejection_threshold=lots"], "not a valid float"),
        (["calibrate", UNCAL_NAME, "--steps.jump=5"], "expected steps.<step>.<parameter>"),
    ],
)
def test_usage_errors_exit_2(work, romanxr_cmd, args, message):
    proc = romanxr_cmd(args, work, expect=2)
    assert message in proc.stderr
    assert not (work / CAL_NAME).exists()


def test_bad_input_exits_3(work, romanxr_cmd, default_cal):
    proc = romanxr_cmd(["calibrate", "missing_uncal.asdf"], work, expect=3)
    assert "missing_uncal.asdf" in proc.stderr
    (work / "junk_uncal.asdf").write_text("this is not ASDF")
    romanxr_cmd(["calibrate", "junk_uncal.asdf"], work, expect=3)
    romanxr_cmd(["info", "junk_uncal.asdf"], work, expect=3)
    proc = romanxr_cmd(["calibrate", UNCAL_NAME, "--start-at", "saturation"], work, expect=3)
    assert "must start at dq_init" in proc.stderr


def test_reference_problem_exits_4(work, romanxr_cmd):
    proc = romanxr_cmd(
        ["calibrate", UNCAL_NAME, "--steps.flat.override_flat=nowhere.asdf"], work, expect=4
    )
    assert "nowhere.asdf" in proc.stderr
    romanxr_cmd(["calibrate", UNCAL_NAME, "--crds-context", "roman_0001.pmap"], work, expect=4)


def test_write_failure_exits_5(work, romanxr_cmd):
    proc = romanxr_cmd(["calibrate", UNCAL_NAME, "-o", "no/such/dir/x.asdf"], work, expect=5)
    assert "does not exist" in proc.stderr
    (work / CAL_NAME).write_text("old")
    proc = romanxr_cmd(["calibrate", UNCAL_NAME, "--no-overwrite"], work, expect=5)
    assert "already exists" in proc.stderr
    assert (work / CAL_NAME).read_text() == "old"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["calibrate", UNCAL_NAME, "--output-format", "fits"], "invalid choice"),
        (["calibrate", UNCAL_NAME, "--start-at", "ramp_fit", "--stop-after", "dq_init"], "after"),
        (["info", UNCAL_NAME, "--steps.jump.skip=true"], "do not apply"),
    ],
)
def test_more_usage_errors_in_process(work, capsys, monkeypatch, args, message):
    monkeypatch.chdir(work)
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err


def test_unexpected_error_exits_1(monkeypatch, capsys, work):
    def boom(*args, **kwargs):
        raise RuntimeError("kaputt")

    monkeypatch.setattr("romanxr.pipeline.calibrate", boom)
    assert cli.main(["calibrate", str(work / UNCAL_NAME)]) == 1
    assert "unexpected error: RuntimeError: kaputt" in capsys.readouterr().err


def test_logging_touches_only_the_romanxr_logger(exposure, monkeypatch):
    root = logging.getLogger()
    before = (list(root.handlers), root.level, logging.getLogger("asdf").level)
    logger = logging.getLogger("romanxr")
    old_level, old_handlers = logger.level, list(logger.handlers)
    try:
        seen = []
        info = dataclasses.replace(
            cli._BY_NAME["info"], run=lambda *a: seen.append((logger.level, len(logger.handlers)))
        )
        monkeypatch.setitem(cli._BY_NAME, "info", info)
        assert cli.main(["info", str(exposure.uncal), "-vv"]) is None
        assert seen == [(logging.DEBUG, len(old_handlers) + 1)]  # during the command
        assert (list(root.handlers), root.level, logging.getLogger("asdf").level) == before
        # and put back when it returns, as stpipe's log configuration is
        assert (logger.level, logger.handlers) == (old_level, old_handlers)
    finally:
        logger.handlers[:] = old_handlers
        logger.setLevel(old_level)


def test_default_output_goes_to_the_current_directory(work, romanxr_cmd):
    # strun writes into the directory it runs in, not next to the input
    here = work / "elsewhere"
    here.mkdir()
    proc = romanxr_cmd(["calibrate", f"../{UNCAL_NAME}", "--stop-after=dq_init"], here)
    assert proc.stdout.strip() == f"{STEM}_dqinit.asdf"
    assert (here / f"{STEM}_dqinit.asdf").is_file()
    assert not (work / f"{STEM}_dqinit.asdf").exists()
    # a batch (here a pattern) too; --output-dir still wins
    romanxr_cmd(["calibrate", f"../{STEM}*_uncal.asdf", "--stop-after=dq_init", "--suffix=b"], here)
    assert (here / f"{STEM}_b.asdf").is_file()
    romanxr_cmd(["calibrate", f"../{UNCAL_NAME}", "--stop-after=dq_init", "--output-dir=out"], here)
    assert (here / "out" / f"{STEM}_dqinit.asdf").is_file()
