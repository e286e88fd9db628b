"""strun's options on ``romanxr calibrate``, parameter files both ways, and logging.

The option test builds stpipe's own ``strun`` parser (``stpipe._cmdline``) for romancal's
ExposurePipeline, so an option a new stpipe adds fails here until romanxr takes or refuses it.
"""

from __future__ import annotations

import logging

import asdf
import pytest

from romanxr import cli, export_config
from romanxr.cli.strun import REFUSED, REFUSED_STEP_PARAMETERS
from romanxr.logsetup import LOG_FORMAT
from romanxr.pipeline import calibrate, resolve_step_options
from tests.cli._exposure import UNCAL_NAME, make_exposure

stpipe_cmdline = pytest.importorskip("stpipe._cmdline")
romancal_pipeline = pytest.importorskip("romancal.pipeline")

Step = pytest.importorskip("stpipe.step").Step
#: stpipe's generic step parameters romanxr honours per step
HONOURED = {"skip", "save_results"}
STEM = UNCAL_NAME.removesuffix("_uncal.asdf")


def _strun_parser():
    """stpipe's strun parser for ``strun roman_elp ...``, built as stpipe builds it."""
    pipeline = romancal_pipeline.ExposurePipeline
    spec = pipeline.load_spec_file()
    return stpipe_cmdline._build_arg_parser_from_spec(
        spec, pipeline, parent=stpipe_cmdline._build_parent_arg_parser()
    )


def _strun_options():
    options = []
    for action in _strun_parser()._actions:
        if action.option_strings and action.dest != "help":
            options.append(max(action.option_strings, key=len))
    return options


@pytest.fixture(scope="module")
def exposure(tmp_path_factory):
    return make_exposure(tmp_path_factory.mktemp("strun"))


@pytest.fixture
def cache(exposure):
    with exposure.cache.activate():
        yield exposure


def test_every_strun_option_is_taken_or_refused(tmp_path):
    calibrate_parser = cli.build_parser(epilogs=False).subcommand_parsers["calibrate"]
    ours = {s for a in calibrate_parser._actions for s in a.option_strings}
    options = _strun_options()
    generic = set(Step.load_spec_file())
    assert "--save-parameters" in options and "--steps.rampfit.suffix" in options
    missing = []
    for option in options:
        if option.startswith("--steps."):
            # stpipe's generic step parameters: honoured (skip, save_results) or refused
            name = option.split(".")[-1]
            if name in generic and name not in {*REFUSED_STEP_PARAMETERS, *HONOURED}:
                missing.append(option)
        elif option not in ours:
            missing.append(option)
    assert missing == []
    # a refused option names its reason, and exits as a usage error
    for option, reason in REFUSED.items():
        assert option in options, f"{option} is no strun option any more"
        code = cli.main(["calibrate", str(tmp_path / UNCAL_NAME), f"{option}=x"])
        assert code == 2, option
        assert reason


def test_refused_options_say_why(tmp_path, capsys):
    assert cli.main(["calibrate", str(tmp_path / UNCAL_NAME), "--logcfg", "x.cfg"]) == 2
    assert "--log-level" in capsys.readouterr().err
    args = ["calibrate", str(tmp_path / UNCAL_NAME), "--steps.rampfit.suffix=ramp"]
    assert cli.main(args) == 2
    assert "--steps.rampfit.suffix: not supported" in capsys.readouterr().err


def test_save_parameters_is_read_by_romancal_and_romanxr(tmp_path, cache):
    path = export_config(
        tmp_path / "p.asdf", steps={"rampfit": {"rejection_threshold": 7}, "flat": {"skip": "true"}}
    )
    pipeline = romancal_pipeline.ExposurePipeline.from_config_file(str(path))
    assert pipeline.rampfit.rejection_threshold == 7.0
    assert pipeline.flatfield.skip is True
    ours = resolve_step_options(config=path)
    for step in romancal_pipeline.ExposurePipeline.step_defs:
        theirs = getattr(pipeline, step)
        mine = next(v for k, v in ours.items() if k.replace("_", "") == step.replace("_", ""))
        for name, value in mine.items():
            # stpipe reads an unset string parameter as '' where romanxr keeps None
            got = getattr(theirs, name)
            assert got == value or (got == "" and value is None), (step, name)
    with pytest.raises(Exception, match="ASDF only"):
        export_config(tmp_path / "p.toml")


def test_cli_save_parameters_suffix_and_log_file(tmp_path, cache, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uncal = cache.uncal
    logger = logging.getLogger("romanxr")
    old = (logger.level, list(logger.handlers))
    root = logging.getLogger()
    before = (list(root.handlers), root.level, logging.getLogger("asdf").level)
    args = [
        "calibrate",
        str(uncal),
        f"--output-dir={tmp_path}",
        "--suffix=mine",
        "--save-parameters=saved.asdf",
        "--steps.rampfit.rejection_threshold=9",
        "--log-level=INFO",
        "--log-file=run.log",
        "--log-stream=null",
        "--disable-crds-steppars",
    ]
    try:
        assert cli.main(args) == 0
    finally:
        for h in logger.handlers:
            if h not in old[1]:
                h.close()
        logger.handlers[:] = old[1]
        logger.setLevel(old[0])
    assert (list(root.handlers), root.level, logging.getLogger("asdf").level) == before
    cal = tmp_path / f"{STEM}_mine.asdf"
    assert cal.is_file()
    with asdf.open(tmp_path / "saved.asdf") as af:
        ramp = next(s for s in af.tree["steps"] if s["name"] == "rampfit")
        assert ramp["parameters"]["rejection_threshold"] == 9.0
    line = (tmp_path / "run.log").read_text().splitlines()[0]
    # stpipe's format: "<time> - <logger> - <LEVEL> - <message>"
    assert LOG_FORMAT == "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
    assert " - romanxr" in line and " - INFO - " in line
    # the cal's recorded parameters rerun it (stpipe's 'history' etc. are not steps)
    options = resolve_step_options(config=cal)
    assert options["ramp_fit"]["rejection_threshold"] == 9.0


def test_python_calibrate_leaves_other_loggers_alone(cache):
    root = logging.getLogger()
    before = (list(root.handlers), root.level, logging.getLogger("romanxr").handlers[:])
    calibrate(cache.uncal).compute()
    assert (list(root.handlers), root.level, logging.getLogger("romanxr").handlers[:]) == before
