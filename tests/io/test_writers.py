"""cal.asdf / ramp writer: round trips, schema validity, single compute, atomicity, errors."""

from __future__ import annotations

import os
import subprocess
import sys

import asdf
import numpy as np
import pytest
import xarray as xr
from astropy.time import Time
from writer_fakes import (
    CountingScheduler,
    backed,
    image_dataset,
    make_cal_file,
    make_uncal_file,
    no_compute,
    ramp_dataset,
    temporaries,
)

import romanxr
from romanxr.dataset import CAL_STEP_KEYS
from romanxr.errors import InputError, OutputError
from romanxr.io import atomic
from romanxr.io.asdf_writer import to_asdf
from romanxr.io.product import IMAGE_DTYPES

rdm = pytest.importorskip("roman_datamodels")


def assert_tree_equal(a, b, path="meta"):
    """Compare metadata trees: Times by value, gwcs by evaluating it, the rest with ==."""
    if isinstance(a, dict):
        assert isinstance(b, dict), path
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for key in a:
            assert_tree_equal(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_tree_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, Time):
        assert isinstance(b, Time) and a.isot == b.isot, path
    elif type(a).__name__ == "WCS":
        assert type(b).__name__ == "WCS", path
        np.testing.assert_array_equal(a(1.0, 2.0), b(1.0, 2.0))
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b, (path, a, b)


def without(meta, *keys):
    return {k: v for k, v in meta.items() if k not in keys}


@pytest.fixture
def cal_path(tmp_path):
    return make_cal_file(tmp_path / "in_cal.asdf")


@pytest.fixture
def uncal_path(tmp_path):
    return make_uncal_file(tmp_path / "in_uncal.asdf")


# --------------------------------------------------------------------------------------------
# Level-2 image


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_cal_round_trip_values(tmp_path, cal_path, backend):
    ds = backed(image_dataset(romanxr.open_cal(cal_path)), backend)
    out = to_asdf(ds, tmp_path / "out_cal.asdf")
    assert out == tmp_path / "out_cal.asdf"
    back = romanxr.open_cal(out)
    assert "var_flat" not in ds and "var_flat" not in back  # optional, absent stays absent
    for name, dtype in IMAGE_DTYPES.items():
        if name == "var_flat":
            continue
        assert back[name].dtype == np.dtype(dtype), name
        assert back[name].dims == ds[name].dims, name
        expected = ds[name].values.astype(dtype)
        np.testing.assert_array_equal(back[name].values, expected, err_msg=name)
    # err was float32 with more precision than float16 holds: the file has the float16 cast
    assert not np.array_equal(back["err"].values.astype(np.float32), ds["err"].values)
    np.testing.assert_array_equal(back["data"].values, ds["data"].values)  # float32 exact
    for coord in ("y", "x", "frame_y", "frame_x", "resultant", "mean_time"):
        np.testing.assert_array_equal(back[coord].values, ds[coord].values)


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_float16_overflow_becomes_inf_quietly(tmp_path, cal_path, backend):
    import warnings

    ds = image_dataset(romanxr.open_cal(cal_path))
    ds["var_poisson"][0, 0] = 1e6  # above float16's 65504
    ds["err"][0, 1] = np.nan
    ds = backed(ds, backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = to_asdf(ds, tmp_path / "o_cal.asdf")
    back = romanxr.open_cal(out)
    assert np.isposinf(back["var_poisson"].values[0, 0])
    assert np.isnan(back["err"].values[0, 1])
    assert back["var_poisson"].values[1, 1] == np.float16(ds["var_poisson"].values[1, 1])


def test_cal_meta_round_trip(tmp_path, cal_path):
    ds = romanxr.open_cal(cal_path)
    ds.attrs["step_parameters"] = {
        "ramp_fit": {"algorithm": "ols_cas22", "threshold": 4.5, "maximum_cores": None},
        "jump": {"rejection_threshold": np.float32(5.0), "flags": [1, 2]},
    }
    out = to_asdf(ds, tmp_path / "out_cal.asdf")
    back = romanxr.open_cal(out)
    written_now = (
        "filename",
        "file_date",
        "statistics",
        "calibration_software_name",
        "calibration_software_version",
    )
    assert_tree_equal(
        without(ds.attrs["meta"], *written_now), without(back.attrs["meta"], *written_now)
    )
    assert back.attrs["meta"]["filename"] == "out_cal.asdf"
    # the writer names itself and records the statistics of what it stored
    assert back.attrs["meta"]["calibration_software_name"] == "romanxr"
    assert back.attrs["meta"]["calibration_software_version"] == romanxr.__version__
    assert back.attrs["meta"]["statistics"]["image_median"] == pytest.approx(
        float(np.nanmedian(ds["data"].values[(ds["dq"].values & 1) == 0])), rel=0.05
    )
    assert isinstance(back.attrs["meta"]["file_date"], Time)
    assert back.attrs["step_parameters"] == {
        "ramp_fit": {"algorithm": "ols_cas22", "threshold": 4.5, "maximum_cores": None},
        "jump": {"rejection_threshold": 5.0, "flags": [1, 2]},
    }


def test_cal_validates_with_roman_datamodels(tmp_path, cal_path):
    ds = image_dataset(romanxr.open_cal(cal_path))
    out = to_asdf(ds, tmp_path / "r0000101001001001001_0001_wfi01_cal.asdf")
    with rdm.open(out) as model:
        assert type(model).__name__ == "ImageModel"
        model.validate()
        assert model.meta.filename == out.name
        assert model.meta.model_type == "ImageModel"
        assert model.meta.product_type == "l2"
        assert model.data.dtype == np.float32 and model.err.dtype == np.float16


def test_cal_from_level1_metadata_gets_required_fields(tmp_path, uncal_path):
    """A ramp_fit result carries L1 metadata: no cal_step entries, photometry or wcs."""
    uncal = romanxr.open_uncal(uncal_path)
    meta = dict(uncal.attrs["meta"])
    assert "photometry" not in meta and "wcs" not in meta
    meta["cal_step"] = {"dq_init": "COMPLETE", "ramp_fit": "COMPLETE"}
    # times as plain strings and numpy scalars, as a user may leave them
    meta["exposure"] = dict(meta["exposure"])
    meta["exposure"]["start_time"] = "2027-01-02T03:04:05.000"
    meta["exposure"]["frame_time"] = np.float64(3.04)
    meta["exposure"]["nresultants"] = np.int64(3)
    meta["exposure"]["read_pattern"] = (np.array([1]), [2, 3], (4, 5, 6))
    ds = image_dataset(romanxr.open_cal(make_cal_file(tmp_path / "c_cal.asdf")))
    ds.attrs = {"meta": meta}
    out = to_asdf(ds, tmp_path / "from_l1_cal.asdf")
    with rdm.open(out) as model:
        model.validate()
        assert model.meta.model_type == "ImageModel"
        assert model.meta.product_type == "l2"
        cal_step = dict(model.meta.cal_step)
        assert set(cal_step) == set(CAL_STEP_KEYS)
        assert cal_step["dq_init"] == "COMPLETE" and cal_step["ramp_fit"] == "COMPLETE"
        assert cal_step["flat_field"] == "INCOMPLETE"
        assert dict(model.meta.photometry) == dict.fromkeys(
            ("conversion_megajanskys", "conversion_megajanskys_uncertainty", "pixel_area")
        )
        assert model.meta.wcs is None
        assert isinstance(model.meta.exposure.start_time, Time)
        assert model.meta.exposure.start_time.isot == "2027-01-02T03:04:05.000"
        assert model.meta.exposure.read_pattern == [[1], [2, 3], [4, 5, 6]]
    assert meta["exposure"]["start_time"] == "2027-01-02T03:04:05.000"  # input untouched


def test_jump_indices_written_as_extra_array(tmp_path, cal_path):
    ds = romanxr.open_cal(cal_path)
    rows = np.array([[1, 5, 6], [2, 10, 3]], dtype=np.int64)
    ds["jump_indices"] = (("jump", "jump_axis"), rows)
    out = to_asdf(ds, tmp_path / "j_cal.asdf")
    with rdm.open(out) as model:
        model.validate()
        assert model["jump_indices"].dtype == np.int16
        np.testing.assert_array_equal(model["jump_indices"], rows)
    back = romanxr.open_cal(out)
    assert back["jump_indices"].dims == ("jump", "jump_axis")
    np.testing.assert_array_equal(back["jump_indices"].values, rows)


def test_cutout_keeps_its_position(tmp_path, cal_path):
    ds = romanxr.open_cal(cal_path).isel(y=slice(3, 9), x=slice(2, 12))
    out = to_asdf(ds, tmp_path / "cut_cal.asdf")
    back = romanxr.open_cal(out)
    np.testing.assert_array_equal(back["y"].values, np.arange(7, 13))
    np.testing.assert_array_equal(back["x"].values, np.arange(6, 16))
    np.testing.assert_array_equal(back["data"].values, ds["data"].values)


def test_dask_arrays_computed_in_one_pass(tmp_path, cal_path):
    ds = backed(image_dataset(romanxr.open_cal(cal_path)), "dask")
    counter = CountingScheduler()
    import dask

    with dask.config.set(scheduler=counter):
        to_asdf(ds, tmp_path / "once_cal.asdf")
    assert counter.calls == 1


def test_input_not_modified(tmp_path, cal_path):
    ds = image_dataset(romanxr.open_cal(cal_path))
    before = ds.copy(deep=True)
    meta_keys = set(ds.attrs["meta"])
    to_asdf(ds, tmp_path / "o_cal.asdf")
    xr.testing.assert_identical(ds.drop_attrs(), before.drop_attrs())
    assert set(ds.attrs["meta"]) == meta_keys
    assert ds.attrs["meta"]["filename"] == "in_cal.asdf"
    assert ds["err"].dtype == np.float32


def test_invalid_meta_raises_before_compute(tmp_path, cal_path):
    ds = backed(romanxr.open_cal(cal_path), "dask")
    ds.attrs["meta"] = dict(ds.attrs["meta"])
    ds.attrs["meta"]["instrument"] = dict(ds.attrs["meta"]["instrument"], detector="WFI99")
    with no_compute(), pytest.raises(InputError, match="wfi_image"):
        to_asdf(ds, tmp_path / "bad_cal.asdf")
    assert not (tmp_path / "bad_cal.asdf").exists()
    assert temporaries(tmp_path) == []


def test_unwritable_step_parameters_raise_before_compute(tmp_path, cal_path):
    ds = backed(romanxr.open_cal(cal_path), "dask")
    ds.attrs["step_parameters"] = {"jump": {"callback": object()}}
    with no_compute(), pytest.raises(InputError, match="step_parameters"):
        to_asdf(ds, tmp_path / "p_cal.asdf")
    assert temporaries(tmp_path) == []


def test_missing_required_variable(tmp_path, cal_path):
    ds = romanxr.open_cal(cal_path).drop_vars("dumo")
    with pytest.raises(InputError, match="dumo"):
        to_asdf(ds, tmp_path / "x_cal.asdf")


# --------------------------------------------------------------------------------------------
# ramp


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_ramp_round_trip(tmp_path, uncal_path, backend):
    ds = backed(ramp_dataset(romanxr.open_uncal(uncal_path)), backend)
    out = to_asdf(ds, tmp_path / "r_dqinit.asdf")
    with rdm.open(out) as model:
        assert type(model).__name__ == "RampModel"
        model.validate()
        assert model.meta.model_type == "RampModel"
        assert model.meta.cal_step.dq_init == "COMPLETE"
        assert model.meta.cal_step.saturation == "INCOMPLETE"
    back = romanxr.open_ramp(out)
    for name in ("data", "pixeldq", "groupdq", "amp33"):
        assert back[name].dtype == ds[name].dtype, name
        assert back[name].dims == ds[name].dims, name
        np.testing.assert_array_equal(back[name].values, ds[name].values, err_msg=name)
    for coord in ("mean_time", "n_reads", "y", "x"):
        np.testing.assert_array_equal(back[coord].values, ds[coord].values)
    # border reference pixels taken from the frame edges (romancal dq_init convention)
    data = ds["data"].values
    np.testing.assert_array_equal(back["border_ref_pix_left"].values, data[:, :, :4])
    np.testing.assert_array_equal(back["border_ref_pix_right"].values, data[:, :, -4:])
    np.testing.assert_array_equal(back["border_ref_pix_top"].values, data[:, :4, :])
    np.testing.assert_array_equal(back["border_ref_pix_bottom"].values, data[:, -4:, :])
    pdq = ds["pixeldq"].values
    np.testing.assert_array_equal(back["dq_border_ref_pix_left"].values, pdq[:, :4])
    np.testing.assert_array_equal(back["dq_border_ref_pix_bottom"].values, pdq[-4:, :])
    assert back.attrs["step_parameters"] == {"dq_init": {"override_mask": None}}
    written_now = ("filename", "file_date", "model_type", "cal_step", "calibration_software_name")
    written_now += ("calibration_software_version",)
    assert_tree_equal(
        without(ds.attrs["meta"], *written_now), without(back.attrs["meta"], *written_now)
    )
    assert back.attrs["meta"]["calibration_software_name"] == "romanxr"


def test_ramp_needs_dq_init(tmp_path, uncal_path):
    ds = romanxr.open_uncal(uncal_path)
    with pytest.raises(InputError, match="dq_init"):
        to_asdf(ds, tmp_path / "r_dqinit.asdf")


# --------------------------------------------------------------------------------------------
# errors, raised before any compute


def test_missing_directory(tmp_path, cal_path):
    ds = backed(romanxr.open_cal(cal_path), "dask")
    target = tmp_path / "nope" / "o_cal.asdf"
    with no_compute(), pytest.raises(OutputError, match="does not exist") as info:
        to_asdf(ds, target)
    assert str(target.parent) in str(info.value)
    assert isinstance(info.value, OSError)


def test_read_only_directory(tmp_path, cal_path, monkeypatch):
    ds = backed(romanxr.open_cal(cal_path), "dask")
    real_access = os.access
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(
        atomic.os, "access", lambda p, mode: False if str(p) == str(ro) else real_access(p, mode)
    )
    with no_compute(), pytest.raises(OutputError, match="not writable"):
        to_asdf(ds, ro / "o_cal.asdf")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_permissions(tmp_path, cal_path):
    ds = romanxr.open_cal(cal_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="not writable"):
            to_asdf(ds, ro / "o_cal.asdf")
    finally:
        ro.chmod(0o755)


def test_output_equal_to_input(tmp_path, cal_path):
    ds = romanxr.open_cal(cal_path)  # dask arrays reading the file
    before = cal_path.read_bytes()
    with no_compute(), pytest.raises(OutputError, match="input"):
        to_asdf(ds, cal_path, overwrite=True)
    # found through the lazy arrays even when the encoding was lost
    derived = ds.copy()
    derived.encoding = {}
    with no_compute(), pytest.raises(OutputError, match="input"):
        to_asdf(derived, str(cal_path), overwrite=True)
    lazy = romanxr.open_cal(cal_path, chunks=None)
    lazy.encoding = {}
    with pytest.raises(OutputError, match="input"):
        to_asdf(lazy, cal_path, overwrite=True)
    assert cal_path.read_bytes() == before


def test_existing_output_needs_overwrite(tmp_path, cal_path):
    ds = backed(image_dataset(romanxr.open_cal(cal_path)), "dask")
    target = tmp_path / "o_cal.asdf"
    target.write_bytes(b"old")
    with no_compute(), pytest.raises(OutputError, match="overwrite=True"):
        to_asdf(ds, target)
    assert target.read_bytes() == b"old"
    to_asdf(ds, target, overwrite=True)
    np.testing.assert_array_equal(romanxr.open_cal(target)["data"].values, ds["data"].values)
    assert temporaries(tmp_path) == []


# --------------------------------------------------------------------------------------------
# atomicity


def test_failure_mid_write_keeps_previous_file(tmp_path, cal_path, monkeypatch):
    ds = image_dataset(romanxr.open_cal(cal_path))
    target = tmp_path / "o_cal.asdf"
    to_asdf(ds, target)
    good = target.read_bytes()
    real_write_to = asdf.AsdfFile.write_to

    def half_write(self, fd, *args, **kwargs):
        if not isinstance(fd, str | os.PathLike):  # in-memory dry runs pass
            return real_write_to(self, fd, *args, **kwargs)
        with open(fd, "wb") as fh:
            fh.write(b"#ASDF 1.0.0\npartial")
        raise OSError("disk full (injected)")

    monkeypatch.setattr(asdf.AsdfFile, "write_to", half_write)
    with pytest.raises(OutputError, match="injected") as info:
        to_asdf(ds, target, overwrite=True)
    assert "unchanged" in str(info.value) and isinstance(info.value, OSError)
    assert target.read_bytes() == good
    assert temporaries(tmp_path) == []
    with pytest.raises(OSError, match="injected"):
        to_asdf(ds, tmp_path / "new_cal.asdf")
    assert not (tmp_path / "new_cal.asdf").exists()
    assert temporaries(tmp_path) == []
    monkeypatch.setattr(asdf.AsdfFile, "write_to", real_write_to)


def test_keyboard_interrupt_during_compute_leaves_nothing(tmp_path, cal_path):
    import dask

    ds = backed(image_dataset(romanxr.open_cal(cal_path)), "dask")

    def interrupted(dsk, keys, **kwargs):
        raise KeyboardInterrupt

    with dask.config.set(scheduler=interrupted), pytest.raises(KeyboardInterrupt):
        to_asdf(ds, tmp_path / "o_cal.asdf")
    assert not (tmp_path / "o_cal.asdf").exists()
    assert temporaries(tmp_path) == []


def test_keyboard_interrupt_while_writing(tmp_path, cal_path, monkeypatch):
    ds = image_dataset(romanxr.open_cal(cal_path))

    real_write_to = asdf.AsdfFile.write_to

    def interrupted(self, fd, *args, **kwargs):
        if not isinstance(fd, str | os.PathLike):
            return real_write_to(self, fd, *args, **kwargs)
        with open(fd, "wb") as fh:
            fh.write(b"#ASDF partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(asdf.AsdfFile, "write_to", interrupted)
    with pytest.raises(KeyboardInterrupt):
        to_asdf(ds, tmp_path / "o_cal.asdf")
    assert not (tmp_path / "o_cal.asdf").exists()
    assert temporaries(tmp_path) == []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stray_temporaries_of_killed_runs_are_cleaned(tmp_path, cal_path):
    ds = image_dataset(romanxr.open_cal(cal_path))
    dead = _dead_pid()
    stray_file = tmp_path / f".o_cal.asdf.romanxr-tmp-{dead}-deadbeef"
    stray_file.write_bytes(b"#ASDF half")
    stray_dir = tmp_path / f".o_cal.asdf.romanxr-old-{dead}-0badf00d"
    stray_dir.mkdir()
    (stray_dir / "zarr.json").write_text("{}")
    # a live writer's temporary (another process, recent) and another target's are kept
    live = tmp_path / f".o_cal.asdf.romanxr-tmp-{os.getppid()}-12345678"
    live.write_bytes(b"busy")
    other = tmp_path / f".other_cal.asdf.romanxr-tmp-{dead}-11111111"
    other.write_bytes(b"x")
    to_asdf(ds, tmp_path / "o_cal.asdf")
    assert not stray_file.exists() and not stray_dir.exists()
    assert live.exists() and other.exists()
    # an old temporary is removed even if its pid is alive (pid reuse)
    old = os.path.getmtime(live) - atomic.STALE_SECONDS - 10
    os.utime(live, (old, old))
    to_asdf(ds, tmp_path / "o_cal.asdf", overwrite=True)
    assert not live.exists()
    assert temporaries(tmp_path) == [other.name]
