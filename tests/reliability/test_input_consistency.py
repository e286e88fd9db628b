"""Smaller input problems (issue 18, item 6): each gets a typed error naming the file, and the
CLI exit code of its kind (3 input, 4 reference)."""

from __future__ import annotations

import numpy as np
import pytest
import roman_datamodels.datamodels as dm
import xarray as xr

import romanxr
from romanxr.cli import EXIT_CODES, main
from romanxr.dq import PixelFlag
from romanxr.errors import (
    ExposureError,
    FileFormatError,
    InputError,
    InputFileError,
    ReferenceFileError,
    ReferenceFormatError,
    ReferenceMismatchError,
    ReferenceNotFoundError,
)
from romanxr.io import asdf_file
from romanxr.refs import align_to_exposure
from romanxr.steps.flatfield import flatfield
from tests.unit._image_factories import FRAME, NX, NY, open_image, write_flat, write_image


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return write_image(tmp_path_factory.mktemp("consistency") / "r_cal.asdf")


def test_unreadable_input_exits_3(tmp_uncal, monkeypatch, capsys):
    """As root every file is readable, so the open itself is made to fail."""
    path = tmp_uncal()

    def denied(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr(asdf_file, "open", denied, raising=False)
    with pytest.raises(InputFileError, match="Permission denied"):
        romanxr.open_uncal(path)
    code = main(["info", str(path)])
    err = capsys.readouterr().err
    assert code == EXIT_CODES["input"] == 3
    assert str(path) in err and "cannot be read" in err


def test_directory_as_input(tmp_path, capsys):
    folder = tmp_path / "exposures"
    folder.mkdir()
    code = main(["info", str(folder)])
    err = capsys.readouterr().err
    assert code == 3 and "is a directory" in err and str(folder) in err
    assert "Zarr group" not in err
    with pytest.raises(InputFileError, match="is a directory"):
        romanxr.open_uncal(folder)


def test_amp33_resultants_differ_from_data(tmp_path):
    model = dm.ScienceRawModel.create_fake_data(shape=(4, 16, 16))
    model.meta.exposure.read_pattern = [[1], [2], [3], [4]]
    model.meta.exposure.nresultants = 4
    model.meta.exposure.frame_time = 3.04
    model.amp33 = np.zeros((5, 16, 128), np.uint16)
    path = tmp_path / "amp_uncal.asdf"
    model.save(path)
    with pytest.raises(ExposureError, match="amp33 has 5 along resultant") as e:
        romanxr.open_uncal(path)
    assert str(path) in str(e.value) and isinstance(e.value, InputError)


def test_corrupt_reference_is_a_reference_problem(tmp_path, image, capsys):
    bad = tmp_path / "bad_flat.asdf"
    bad.write_bytes(b"#ASDF 1.0.0\n%YAML 1.1\n--- {roman: [unclosed\n")
    with pytest.raises(ReferenceFormatError) as e:
        flatfield(open_image(image), override_flat=bad)
    assert isinstance(e.value, ReferenceFileError) and isinstance(e.value, FileFormatError)
    assert str(bad) in str(e.value)
    out = tmp_path / "o_flat.asdf"
    override = f"--steps.flat_field.override_flat={bad}"
    code = main(["step", "flat_field", str(image), "-o", str(out), "--no-progress", override])
    err = capsys.readouterr().err
    assert code == EXIT_CODES["reference"] == 4, err
    assert "bad_flat.asdf" in err and not out.exists()


def test_override_that_is_a_directory(tmp_path, image):
    with pytest.raises(ReferenceNotFoundError, match="is a directory, not a file"):
        flatfield(open_image(image), override_flat=tmp_path)


def test_inf_and_negative_flat_values_are_flagged(tmp_path, image):
    path = write_flat(tmp_path / "r_flat.asdf")
    bad = [(0, 0), (1, 2), (3, 4), (5, 6)]
    with dm.open(path) as model:
        data = model.data.copy()
        for (y, x), value in zip(bad, [np.inf, -np.inf, -0.5, np.nan], strict=True):
            data[y, x] = value
        model.data = data
        model.save(tmp_path / "bad_flat.asdf")
    ds = open_image(image, "numpy")
    out = flatfield(ds, override_flat=tmp_path / "bad_flat.asdf")
    flag = np.uint32(PixelFlag.NO_FLAT_FIELD)
    for y, x in bad:
        assert out["dq"].values[y, x] & flag, (y, x)
        assert out["data"].values[y, x] == ds["data"].values[y, x]  # divided by 1
    good = (out["dq"].values & flag) == 0
    assert good.sum() == NY * NX - len(bad) - int(((ds["dq"].values & flag) != 0).sum())


def _fake_reference(shape, start, reftype="gain"):
    return xr.Dataset(
        {"data": (("y", "x"), np.ones(shape, np.float32))},
        coords={"y": np.arange(start, start + shape[0]), "x": np.arange(start, start + shape[1])},
        attrs={"path": f"/refs/big_{reftype}.asdf", "reftype": reftype},
    )


@pytest.mark.parametrize("reftype, start", [("gain", 0), ("flat", 4)])
def test_one_size_rule_for_every_reference(image, reftype, start):
    ds = open_image(image, "numpy")
    frame = FRAME if start == 0 else (NY, NX)
    fits = align_to_exposure(_fake_reference(frame, start, reftype), ds)
    assert fits.sizes["y"] == NY and fits.sizes["x"] == NX
    oversized = _fake_reference((frame[0] + 6, frame[1] + 6), start, reftype)
    with pytest.raises(ReferenceMismatchError, match=f"big_{reftype}.asdf: {reftype} reference"):
        align_to_exposure(oversized, ds)


def test_config_file_paths_are_relative_to_its_folder(tmp_path, monkeypatch):
    from romanxr.config import load_config_file

    folder = tmp_path / "run"
    folder.mkdir()
    config = folder / "romanxr.toml"
    config.write_text(
        '[steps.flat_field]\noverride_flat = "refs/my_flat.asdf"\n'
        '[steps.dark_current]\noverride_dark = "N/A"\n'
        '[steps.saturation]\noverride_saturation = "/abs/sat.asdf"\n'
    )
    monkeypatch.chdir(tmp_path)  # elsewhere than the config file
    options = load_config_file("run/romanxr.toml")
    assert options["flat_field"]["override_flat"] == str(folder / "refs" / "my_flat.asdf")
    assert options["dark_current"]["override_dark"] == "N/A"
    assert options["saturation"]["override_saturation"] == "/abs/sat.asdf"
