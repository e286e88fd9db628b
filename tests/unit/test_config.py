"""Step parameters: names, spellings, coercion, config files (TOML/YAML/stpipe) and precedence."""

from __future__ import annotations

import logging

import asdf
import pytest

from romanxr.config import (
    coerce_value,
    load_config_file,
    normalize_step_name,
    parse_step_option,
)
from romanxr.errors import ConfigError
from romanxr.pipeline import effective_parameters, resolve_step_options
from romanxr.registry import STEPS, get_step


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("ramp_fit", "ramp_fit"),
        ("rampfit", "ramp_fit"),
        ("RampFitStep", "ramp_fit"),
        ("romancal.ramp_fitting.ramp_fit_step.RampFitStep", "ramp_fit"),
        ("dark_current", "dark_current"),
        ("dark", "dark_current"),
        ("DarkCurrentStep", "dark_current"),
        ("flatfield", "flatfield"),
        ("flat_field", "flatfield"),
        ("flat", "flatfield"),
        ("FlatFieldStep", "flatfield"),
        ("dq_init", "dq_init"),
        ("DQInitStep", "dq_init"),
        ("dqinit", "dq_init"),
        ("RefPixStep", "refpix"),
        ("AssignWcsStep", "assign_wcs"),
        ("WFI18TransientStep", "wfi18_transient"),
        ("DarkDecayStep", "dark_decay"),
    ],
)
def test_step_spellings(spelling, name):
    assert get_step(spelling).name == name


def test_normalize_step_name():
    assert normalize_step_name("romancal.flatfield.FlatFieldStep") == "flatfield"
    assert normalize_step_name("Dark-Current") == "darkcurrent"
    assert normalize_step_name("step") == "step"


def test_unknown_step_names_the_closest():
    with pytest.raises(ConfigError, match="unknown step 'jmp'; did you mean 'jump'"):
        get_step("jmp")
    with pytest.raises(ConfigError, match="did you mean 'saturation'"):
        resolve_step_options({"saturaton": {"backup": 1}})


def test_unknown_parameter_names_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'rejection_threshold'"):
        resolve_step_options({"jump": {"rejection_thresold": 5}})


def test_parse_step_option():
    assert parse_step_option("--steps.jump.rejection_threshold=500") == (
        "jump",
        "rejection_threshold",
        "500",
    )
    assert parse_step_option("steps.flat.override_flat=a=b.asdf") == (
        "flat",
        "override_flat",
        "a=b.asdf",
    )
    assert parse_step_option("--steps.jump.rejection-threshold=5")[1] == "rejection_threshold"
    for bad in ("--steps.jump=5", "--steps.jump.x", "--step.jump.x=1", "--steps..x=1"):
        with pytest.raises(ConfigError, match="expected steps"):
            parse_step_option(bad)


def test_values_are_coerced_to_the_parameter_type():
    opts = resolve_step_options(
        {
            "jump": {"rejection_threshold": "500"},
            "linearity": {"skip": "true"},
            "saturation": {"n_pix_grow_sat": "2"},
            "ramp_fit": {"algorithm": "ols_cas22", "threshold_intercept": "5.5"},
            "dq_init": {"override_mask": "none"},
        }
    )
    assert opts["jump"]["rejection_threshold"] == 500.0
    assert isinstance(opts["jump"]["rejection_threshold"], float)
    assert opts["linearity"]["skip"] is True
    assert opts["saturation"]["n_pix_grow_sat"] == 2
    assert opts["ramp_fit"]["threshold_intercept"] == 5.5
    assert opts["dq_init"]["override_mask"] is None
    spec = get_step("saturation").parameters()["n_pix_grow_sat"]
    with pytest.raises(ConfigError, match="n_pix_grow_sat: 'two' is not a valid int"):
        coerce_value("two", spec, where="steps.saturation.")
    with pytest.raises(ConfigError, match="not a valid bool"):
        resolve_step_options({"jump": {"skip": "maybe"}})


def test_an_empty_string_parameter_stays_empty():
    """A string parameter's '' (stpipe's unset string, as a cal's record keeps it) comes back
    as '', not None: a cal given back as a config then records the same parameters."""
    opts = resolve_step_options(
        {"tweakreg": {"catalog_path": ""}, "source_catalog": {"forced_segmentation": ""}}
    )
    assert opts["tweakreg"]["catalog_path"] == ""
    assert opts["source_catalog"]["forced_segmentation"] == ""
    assert (
        resolve_step_options({"dq_init": {"override_mask": ""}})["dq_init"]["override_mask"] is None
    )


def test_aliases_merge_into_one_step():
    opts = resolve_step_options(
        {"flat": {"include_var_flat": True}, "flat_field": {"override_flat": "f.asdf"}}
    )
    assert opts == {"flatfield": {"include_var_flat": True, "override_flat": "f.asdf"}}


def test_precedence_config_then_keywords(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[steps.jump]\nrejection_threshold = 100\n[steps.rampfit]\nalgorithm = 'likely'\n"
    )
    opts = resolve_step_options({"jump": {"rejection_threshold": 500}}, cfg)
    assert opts["jump"]["rejection_threshold"] == 500
    assert opts["ramp_fit"]["algorithm"] == "likely"
    eff = effective_parameters("jump", opts["jump"])
    assert eff["rejection_threshold"] == 500
    assert eff["skip"] is False and eff["override_gain"] is None
    assert effective_parameters("saturation")["n_pix_grow_sat"] == 0


def test_toml_top_level_tables(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[jump]\nrejection_threshold = 7\n[linearity]\nskip = true\n")
    assert load_config_file(cfg) == {
        "jump": {"rejection_threshold": 7},
        "linearity": {"skip": True},
    }


def test_yaml_mapping(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("steps:\n  jump:\n    rejection_threshold: 8\n  flat:\n    skip: true\n")
    opts = resolve_step_options(config=cfg)
    assert opts == {"jump": {"rejection_threshold": 8.0}, "flatfield": {"skip": True}}


_STPIPE_YAML = """\
class: romancal.pipeline.exposure_pipeline.ExposurePipeline
name: ExposurePipeline
parameters:
  save_results: true
  suffix: cal
steps:
- class: romancal.dq_init.dq_init_step.DQInitStep
  name: dq_init
  parameters:
    skip: false
    suffix: null
    pre_hooks: []
    post_hooks: []
    output_dir: null
- class: romancal.ramp_fitting.ramp_fit_step.RampFitStep
  name: rampfit
  parameters:
    algorithm: likely
    maximum_cores: half
    save_results: false
- class: romancal.flatfield.flat_field_step.FlatFieldStep
  parameters:
    include_var_flat: true
- class: romancal.dark_current.DarkCurrentStep
  name: dark_current
  parameters:
    skip: true
- class: romancal.tweakreg.TweakRegStep
  name: tweakreg
  parameters:
    skip: true
    searchrad: 2.0
"""


def test_stpipe_parameter_file_yaml(tmp_path, caplog):
    cfg = tmp_path / "roman_elp.yaml"
    cfg.write_text(_STPIPE_YAML)
    with caplog.at_level(logging.DEBUG, logger="romanxr"):
        opts = resolve_step_options(config=cfg)
    assert opts == {
        "dq_init": {"skip": False},
        "ramp_fit": {"algorithm": "likely", "save_results": False},
        "flatfield": {"include_var_flat": True},
        "dark_current": {"skip": True},
        "tweakreg": {"skip": True, "searchrad": 2.0},  # a romanxr step too now
    }


def test_stpipe_parameter_file_asdf(tmp_path):
    import yaml

    tree = yaml.safe_load(_STPIPE_YAML)
    cfg = tmp_path / "roman_elp.asdf"
    asdf.AsdfFile(tree).write_to(cfg)
    opts = resolve_step_options(config=cfg)
    assert opts["dark_current"] == {"skip": True}
    assert opts["flatfield"] == {"include_var_flat": True}


def test_stpipe_legacy_cfg(tmp_path):
    cfg = tmp_path / "elp.cfg"
    cfg.write_text(
        'name = "ExposurePipeline"\nclass = "romancal.pipeline.ExposurePipeline"\n\n'
        "[steps]\n  [[jump]]\n    rejection_threshold = 500\n  [[linearity]]\n    skip = True\n"
    )
    opts = resolve_step_options(config=cfg)
    assert opts == {"jump": {"rejection_threshold": 500.0}, "linearity": {"skip": True}}


def test_stpipe_single_step_file(tmp_path):
    cfg = tmp_path / "jump.yaml"
    cfg.write_text(
        "class: romancal.jump.JumpStep\nname: jump\nparameters:\n  rejection_threshold: 6\n"
    )
    assert resolve_step_options(config=cfg) == {"jump": {"rejection_threshold": 6.0}}


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[steps.jump\n")
    with pytest.raises(ConfigError, match="cannot be parsed"):
        load_config_file(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("steps:\n  jump: 5\n")
    with pytest.raises(ConfigError, match="must be a table"):
        load_config_file(wrong)
    typo = tmp_path / "typo.yaml"
    typo.write_text("steps:\n  jump:\n    rejection_treshold: 5\n")
    with pytest.raises(ConfigError, match="did you mean 'rejection_threshold'"):
        resolve_step_options(config=typo)


def test_every_parameter_has_help_text():
    for spec in STEPS:
        params = spec.parameters()
        assert {"skip", "save_results"} <= set(params)
        for p in params.values():
            assert p.help.strip(), f"{spec.name}.{p.name} has no help text"


@pytest.mark.oracle
def test_romancal_exported_parameter_file_is_accepted(tmp_path):
    """A parameter file written by romancal itself (stpipe export) loads without errors."""
    pipeline = pytest.importorskip("romancal.pipeline")
    path = tmp_path / "roman_elp.asdf"
    pipeline.ExposurePipeline().export_config(path)
    opts = resolve_step_options(config=path)
    assert opts["ramp_fit"]["algorithm"] == "likely"
    assert opts["ramp_fit"]["include_var_rnoise"] is False  # romancal's default wins over ours
    assert opts["flatfield"]["include_var_flat"] is False
    assert set(opts) <= {s.name for s in STEPS}
