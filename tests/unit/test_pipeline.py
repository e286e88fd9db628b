"""romanxr.calibrate: step order, chaining equivalence, parameter precedence and records,
the tutorial exercise (jump threshold 500), intermediates and resuming."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr

import romanxr
from romanxr.dq import GroupFlag, PixelFlag
from romanxr.errors import ConfigError, InputError, OutputError, ReferenceNotFoundError
from romanxr.pipeline import calibrate, output_name
from romanxr.registry import STEPS
from tests.cli._exposure import CAL_NAME, UNCAL_NAME, make_exposure
from tests.unit.detector_helpers import raise_if_dask_computes

JUMP = int(PixelFlag.JUMP_DET)


@pytest.fixture(scope="module")
def exposure(tmp_path_factory):
    return make_exposure(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(autouse=True)
def crds(exposure):
    with exposure.cache.activate():
        yield exposure.cache


@pytest.fixture(scope="module")
def default_cal(exposure):
    """The default run, computed once."""
    with exposure.cache.activate():
        return calibrate(exposure.uncal).compute()


@pytest.fixture
def uncal(exposure, tmp_path):
    """A private copy of the uncal file (outputs go next to it)."""
    target = tmp_path / UNCAL_NAME
    shutil.copy(exposure.uncal, target)
    return target


def _chain(ds: xr.Dataset) -> xr.Dataset:
    return (
        ds.roman.dq_init()
        .roman.saturation()
        .roman.refpix()
        .roman.dark_decay()
        .roman.wfi18_transient()
        .roman.linearity()
        .roman.ramp_fit()
        .roman.dark_current()
        .roman.assign_wcs()
        .roman.photom()
        .roman.flatfield()
    )


def _assert_same_image(a: xr.Dataset, b: xr.Dataset) -> None:
    assert "var_rnoise" not in a and "var_rnoise" not in b  # romancal's default: left out
    for name in ("data", "dq", "err", "var_poisson"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_step_order_is_romancal_order():
    names = [s.name for s in STEPS]
    assert names == [
        "dq_init",
        "saturation",
        "refpix",
        "dark_decay",
        "wfi18_transient",
        "linearity",
        "jump",
        "ramp_fit",
        "dark_current",
        "assign_wcs",
        "photom",
        "flatfield",
        "source_catalog",
        "tweakreg",
    ]


def test_calibrate_is_exported_and_equals_method_chaining(exposure, default_cal):
    assert romanxr.calibrate is calibrate
    chained = _chain(romanxr.open_uncal(exposure.uncal)).compute()
    _assert_same_image(chained, default_cal)
    ours, theirs = chained.attrs["meta"]["cal_step"], default_cal.attrs["meta"]["cal_step"]
    catalog_steps = ("source_catalog", "tweakreg")
    assert {k: v for k, v in ours.items() if k not in catalog_steps} == {
        k: v for k, v in theirs.items() if k not in catalog_steps
    }
    # the chain stops at flatfield; the pipeline goes on to both catalog steps, which this
    # cache cannot serve (no APCORR/EPSF, no local abs_refcat): SKIPPED, not INCOMPLETE
    assert [ours[k] for k in catalog_steps] == ["INCOMPLETE", "INCOMPLETE"]
    assert [theirs[k] for k in catalog_steps] == ["SKIPPED", "SKIPPED"]


def test_chaining_with_jump_step_equals_calibrate_with_threshold(exposure):
    ds = romanxr.open_uncal(exposure.uncal)
    chained = (
        ds.roman.dq_init()
        .roman.saturation()
        .roman.refpix()
        .roman.dark_decay()
        .roman.wfi18_transient()
        .roman.linearity()
        .roman.jump(rejection_threshold=500)
        .roman.ramp_fit()
        .roman.dark_current()
        .roman.assign_wcs()
        .roman.photom()
        .roman.flatfield()
    ).compute()
    folded = calibrate(exposure.uncal, steps={"jump": {"rejection_threshold": 500}}).compute()
    _assert_same_image(chained, folded)


def test_accessor_calibrate_equals_function(exposure, default_cal):
    out = romanxr.open_uncal(exposure.uncal).roman.calibrate().compute()
    _assert_same_image(out, default_cal)


def test_calibrate_is_lazy_and_leaves_input_alone(exposure):
    ds = romanxr.open_uncal(exposure.uncal)
    before = repr(ds.attrs)
    with raise_if_dask_computes():
        out = calibrate(ds, check_saturated=False, steps={"jump": {"rejection_threshold": 9}})
    assert repr(ds.attrs) == before
    assert "step_parameters" not in ds.attrs
    assert out["data"].chunks is not None  # still dask
    assert out["data"].dims == ("y", "x")


def test_tutorial_exercise_threshold_500(uncal, default_cal):
    out = calibrate(uncal, steps={"jump": {"rejection_threshold": 500}}, save_results=True)
    written = uncal.with_name(CAL_NAME)
    assert written.is_file()
    high = romanxr.open_cal(written).compute()
    in_memory = out.compute()
    for name in ("data", "dq"):  # err/variances are float16 on disk
        np.testing.assert_array_equal(high[name].values, in_memory[name].values)

    jump_default = (default_cal["dq"].values & JUMP) != 0
    jump_high = (high["dq"].values & JUMP) != 0
    assert jump_default.sum() > 0
    # a higher threshold only removes flags: the 500-sigma jumps are a subset
    assert not (jump_high & ~jump_default).any()
    lost = jump_default & ~jump_high
    assert lost.sum() > 0
    # where a jump is no longer flagged, the slope includes it: it differs
    assert (high["data"].values[lost] != default_cal["data"].values[lost]).all()
    # everywhere without a default jump flag, nothing changes at all
    untouched = ~jump_default
    np.testing.assert_array_equal(
        high["data"].values[untouched], default_cal["data"].values[untouched]
    )
    np.testing.assert_array_equal(high["dq"].values[untouched], default_cal["dq"].values[untouched])
    params = high.attrs["step_parameters"]
    assert params["jump"]["rejection_threshold"] == 500
    assert params["ramp_fit"]["rejection_threshold"] == 500


def test_every_parameter_of_every_step_is_recorded(uncal):
    out_path = uncal.with_name("full_cal.asdf")
    out = calibrate(
        uncal,
        steps={"saturation": {"n_pix_grow_sat": 1}, "flat": {"include_var_flat": True}},
        output=out_path,
    )
    records = out.attrs["step_parameters"]
    for spec in STEPS:
        rec = records[spec.key]
        missing = set(spec.parameters()) - {"save_results"} - set(rec)
        assert not missing, (spec.name, missing)
        if spec.optional:  # run by default, skipped here (no APCORR/EPSF, no local refcat)
            assert rec["skip"] is True
            assert out.attrs["meta"]["cal_step"][spec.key] == "SKIPPED"
            continue
        assert rec["skip"] is False
    assert records["saturation"]["n_pix_grow_sat"] == 1
    assert records["saturation"]["backup"] == 0  # a default, recorded too
    assert records["flat_field"]["include_var_flat"] is True
    assert records["dq_init"]["override_mask"] is None
    back = romanxr.open_cal(out_path)
    assert back.attrs["step_parameters"]["saturation"]["n_pix_grow_sat"] == 1
    assert back.attrs["step_parameters"]["refpix"]["fft_interpolate"] is True


def test_precedence_defaults_config_keywords(uncal, tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(
        "[steps.jump]\nrejection_threshold = 100\n"
        "[steps.linearity]\nskip = true\n"
        "[steps.saturation]\nbackup = 1\n"
    )
    out = calibrate(uncal, config=cfg, steps={"jump": {"rejection_threshold": 500}})
    records = out.attrs["step_parameters"]
    assert records["jump"]["rejection_threshold"] == 500  # keyword beats config
    assert records["saturation"]["backup"] == 1  # config beats default
    assert records["saturation"]["n_pix_grow_sat"] == 0  # default
    assert records["linearity"]["skip"] is True
    assert out.attrs["meta"]["cal_step"]["linearity"] == "SKIPPED"
    assert out.attrs["meta"]["cal_step"]["saturation"] == "COMPLETE"


def test_skipping_jump_turns_the_search_off(exposure, default_cal):
    out = calibrate(exposure.uncal, steps={"jump": {"skip": True}}).compute()
    assert not (out["dq"].values & JUMP).any()
    assert out.attrs["step_parameters"]["ramp_fit"]["rejection_threshold"] is None
    assert out.attrs["step_parameters"]["jump"]["skip"] is True
    jump_default = (default_cal["dq"].values & JUMP) != 0
    np.testing.assert_array_equal(
        out["data"].values[~jump_default], default_cal["data"].values[~jump_default]
    )


def test_save_intermediates_and_resume(uncal, default_cal):
    calibrate(uncal, stop_after="refpix", save_intermediate=["dq_init", "refpix"])
    dqinit = uncal.with_name(output_name(uncal, "dqinit").name)
    refpix = uncal.with_name(output_name(uncal, "refpix").name)
    assert dqinit.name == "r0000101001001001001_0001_wfi01_dqinit.asdf"
    assert refpix.is_file() and dqinit.is_file()
    ramp = romanxr.open_ramp(refpix)
    assert ramp.attrs["meta"]["cal_step"]["refpix"] == "COMPLETE"
    resumed = calibrate(refpix, start_at="dark_decay", save_results=True).compute()
    _assert_same_image(resumed, default_cal)
    assert uncal.with_name(CAL_NAME).is_file()
    # the ramp_fit intermediate is the Level-2 image before dark_current
    calibrate(
        refpix,
        start_at="dark_decay",
        stop_after="ramp_fit",
        steps={"rampfit": {"save_results": True}},
    )
    assert uncal.with_name("r0000101001001001001_0001_wfi01_rampfit.asdf").is_file()


def test_wrong_starting_point_is_an_input_error(exposure, default_cal, tmp_path):
    with pytest.raises(InputError, match="must start at dq_init"):
        calibrate(exposure.uncal, start_at="saturation")
    with pytest.raises(InputError, match="needs a ramp"):
        calibrate(default_cal, start_at="linearity")
    with pytest.raises(ConfigError, match="comes after"):
        calibrate(exposure.uncal, start_at="ramp_fit", stop_after="refpix")


def test_reference_override_is_used_and_recorded(uncal, exposure, default_cal, tmp_path):
    flat = exposure.references["flat"]
    out = calibrate(uncal, steps={"flatfield": {"override_flat": flat}}).compute()
    _assert_same_image(out, default_cal)
    assert out.attrs["step_parameters"]["flat_field"]["override_flat"] == str(flat)
    with pytest.raises(ReferenceNotFoundError):
        calibrate(uncal, steps={"flat_field": {"override_flat": tmp_path / "missing.asdf"}})


def test_output_exists_needs_overwrite(uncal):
    target = uncal.with_name(CAL_NAME)
    target.write_text("old")
    with pytest.raises(OutputError):
        calibrate(uncal, save_results=True)
    assert target.read_text() == "old"  # checked before anything is computed


def test_save_results_as_zarr(uncal, default_cal):
    calibrate(uncal, save_results=True, output_format="zarr")
    back = romanxr.open_zarr(uncal.with_name("r0000101001001001001_0001_wfi01_cal.zarr"))
    np.testing.assert_array_equal(back["data"].values, default_cal["data"].values)
    assert back.attrs["step_parameters"]["jump"]["rejection_threshold"] == 4.5
    # a second run replaces the store (a Zarr store is a directory, not a file in the way)
    calibrate(uncal, save_results=True, output_format="zarr", overwrite=True)
    with pytest.raises(OutputError, match="already exists"):
        calibrate(uncal, save_results=True, output_format="zarr")


@pytest.mark.parametrize(
    ("name", "suffix", "ext", "expected"),
    [
        ("r1_uncal.asdf", "cal", ".asdf", "r1_cal.asdf"),
        ("r1_refpix.asdf", "cal", ".asdf", "r1_cal.asdf"),
        ("r1_dqinit.asdf", "saturation", ".asdf", "r1_saturation.asdf"),
        ("r1_uncal.asdf", "rampfit", ".asdf", "r1_rampfit.asdf"),
        ("exposure.asdf", "cal", ".asdf", "exposure_cal.asdf"),
        ("r1_uncal.asdf", "cal", ".zarr", "r1_cal.zarr"),
        ("r1_cal.zarr", "cal", ".asdf", "r1_cal.asdf"),
    ],
)
def test_roman_naming_rule(tmp_path, name, suffix, ext, expected):
    assert output_name(tmp_path / name, suffix, ext) == tmp_path / expected


def test_groupdq_jump_flags_come_from_the_search(exposure, default_cal):
    # sanity check of the test data: the default run finds jumps through the ramp search
    assert "jumps" in default_cal
    assert int(GroupFlag.JUMP_DET) == 4
    assert int(default_cal["jumps"].sum()) > 0


def test_demo_refuses_a_size_refpix_cannot_run_on(tmp_path):
    from romanxr.demo import run_demo

    with pytest.raises(ConfigError, match="multiple of 256"):
        run_demo(tmp_path / "demo", size=128)
    assert not (tmp_path / "demo").exists()


def test_jump_runs_alone_when_ramp_fit_is_skipped(exposure):
    out = calibrate(
        exposure.uncal,
        stop_after="ramp_fit",
        steps={"jump": {"rejection_threshold": 6}, "ramp_fit": {"skip": True}},
        check_saturated=False,
    )
    assert "resultant" in out["data"].dims  # still a ramp: ramp_fit skipped
    assert out.attrs["meta"]["cal_step"]["ramp_fit"] == "SKIPPED"
    assert out.attrs["step_parameters"]["jump"]["rejection_threshold"] == 6
    assert "run_inside" not in out.attrs["step_parameters"]["jump"]
    assert (out["groupdq"].values & int(GroupFlag.JUMP_DET)).any()


@pytest.mark.parametrize("asked", [False, True], ids=["default", "catalog_steps_asked"])
def test_saturated_exit_records_catalog_steps_skipped(exposure, tmp_path, monkeypatch, asked):
    """The saturated exit (taken here by declaring the ramp fully saturated: a simulated
    frame always has unsaturated reference pixels) skips source_catalog and tweakreg, as
    romancal does, also when they were asked for: SKIPPED, not INCOMPLETE, and no catalog."""
    from romanxr.steps import saturated_exposure

    monkeypatch.setattr(saturated_exposure, "is_fully_saturated", lambda ds: True)
    refcat = tmp_path / "refcat.ecsv"
    refcat.write_text("# %ECSV 1.0\n# ---\n# datatype:\n# - {name: ra, datatype: float64}\n")
    na = {"override_apcorr": "N/A", "override_epsf": "N/A"}  # this cache has neither
    steps = {"tweakreg": {"abs_refcat": str(refcat)}, "source_catalog": na} if asked else None
    out = calibrate(exposure.uncal, steps=steps)
    cal_step = out.attrs["meta"]["cal_step"]
    assert cal_step["source_catalog"] == "SKIPPED"
    assert cal_step["tweakreg"] == "SKIPPED"
    assert cal_step["ramp_fit"] == "SKIPPED"
    assert "source_catalog" not in out.attrs
    assert not out["data"].values.any()  # the zeroed image


def test_saved_cal_has_romancals_metadata_and_a_wcs_product(uncal):
    import re

    import roman_datamodels.datamodels as dm
    from astropy.stats import mad_std

    cal = calibrate(uncal, save_results=True, overwrite=True)
    path = uncal.with_name(CAL_NAME)
    wcs_file = uncal.with_name(CAL_NAME.replace("_cal", "_wcs"))
    with dm.open(path) as model:
        meta = model.meta
        assert meta.calibration_software_name == "romanxr"
        assert meta.calibration_software_version == romanxr.__version__
        # every reference CRDS chose, in stpipe's form
        assert meta.ref_file.dark.startswith("crds://") and meta.ref_file.flat.startswith("crds://")
        assert "var_rnoise" not in model
        # statistics as romancal's populate_statistics computes them from the stored arrays
        data, dq, err = np.asarray(model.data), np.asarray(model.dq), np.asarray(model.err)
        good = np.isfinite(data) & ((dq & int(PixelFlag.DO_NOT_USE)) == 0) & (err > 0)
        assert meta.statistics.image_median == float(np.median(data[good]))
        assert meta.statistics.image_rms == float(mad_std(data[good]))
        assert meta.statistics.good_pixel_fraction == good.sum() / data.size
        logs = list(meta.cal_logs)
        assert any(line.endswith(f":: romanxr :: INFO :: writing {path}") for line in logs)
        line = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z :: romanxr :: INFO :: step ")
        assert sum(bool(line.match(x)) for x in logs) >= 10
        assert cal.attrs["meta"]["cal_logs"] == logs  # the returned Dataset carries them too
        with dm.open(wcs_file) as wcs:
            assert type(wcs) is dm.WfiWcsModel
            wcs.validate()
            ny, nx = data.shape
            y, x = np.mgrid[0:ny:2, 0:nx:7].astype(np.float64)
            for a, b in zip(wcs.wcs_l2(x, y), model.meta.wcs(x, y), strict=True):
                assert np.isfinite(a).all()
                np.testing.assert_array_equal(a, b)
            assert wcs.meta.wcsinfo.ra_ref == meta.wcsinfo.ra_ref


def test_an_existing_wcs_product_needs_overwrite_before_any_compute(uncal):
    wcs_file = uncal.with_name(CAL_NAME.replace("_cal", "_wcs"))
    wcs_file.write_text("old")
    with raise_if_dask_computes(), pytest.raises(OutputError, match=r"_wcs\.asdf"):
        calibrate(uncal, save_results=True)
    assert wcs_file.read_text() == "old" and not uncal.with_name(CAL_NAME).exists()


def test_without_a_wcs_the_wcs_product_has_the_metadata_only(uncal):
    import roman_datamodels.datamodels as dm

    calibrate(uncal, save_results=True, steps={"assign_wcs": {"skip": True}})
    assert uncal.with_name(CAL_NAME).is_file()
    # romancal writes it then too (WfiWcsModel.from_model_with_wcs leaves out wcs_l1/l2)
    with dm.open(uncal.with_name(CAL_NAME.replace("_cal", "_wcs"))) as wcs:
        wcs.validate()
        assert "wcs_l2" not in wcs and "wcs_l1" not in wcs
        assert wcs.meta.exposure.type == "WFI_IMAGE"
