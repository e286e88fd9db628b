"""An input replaced or rewritten after it was opened (issue 18, item 3): every block read
checks the file is still the one opened, and a difference is an InputFileError naming it
(exit 3 on the CLI), never the new file's pixels under the old file's metadata."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import romanxr
from romanxr.cli import EXIT_CODES, main
from romanxr.errors import InputError, InputFileError
from romanxr.io.cache import CACHE
from romanxr.io.identity import FileIdentity, file_identity
from tests.io.writer_fakes import make_uncal_file


@pytest.fixture
def two_uncals(tmp_path):
    old = make_uncal_file(tmp_path / "r_uncal.asdf", seed=1)
    new = make_uncal_file(tmp_path / "new_uncal.asdf", seed=5)
    return old, new


@pytest.mark.parametrize("chunks", ["default", None], ids=["dask", "lazy-numpy"])
def test_replaced_after_open(two_uncals, chunks):
    old, new = two_uncals
    ds = romanxr.open_uncal(old, chunks=chunks)
    os.replace(new, old)  # mv new old
    with pytest.raises(InputFileError, match="changed after it was opened") as e:
        _ = ds["data"].values
    assert str(old) in str(e.value) and isinstance(e.value, InputError)
    assert "inode" in str(e.value)


def test_rewritten_in_place_after_open(two_uncals):
    old, new = two_uncals
    ds = romanxr.open_uncal(old)
    shutil.copyfile(new, old)  # same inode, new size/mtime
    with pytest.raises(InputFileError, match=str(old)):
        _ = ds["amp33"].values


def test_replaced_after_a_first_read(two_uncals):
    """The layout cached by the first read is not reused for the new file."""
    old, new = two_uncals
    ds = romanxr.open_uncal(old)
    first = ds["data"][0].values
    assert first.shape == ds["data"].shape[1:]
    os.replace(new, old)
    with pytest.raises(InputFileError):
        _ = ds["data"][1].values
    CACHE.clear()
    with pytest.raises(InputFileError):
        _ = ds["data"][0].values


def test_removed_after_open(two_uncals):
    old, _ = two_uncals
    ds = romanxr.open_uncal(old)
    os.unlink(old)
    with pytest.raises(InputFileError, match="removed after it was opened"):
        _ = ds["data"].values


def test_unchanged_file_reads(two_uncals):
    old, _ = two_uncals
    ds = romanxr.open_uncal(old, chunks=None)
    assert ds["data"].variable._data.array.identity == file_identity(old)
    assert isinstance(file_identity(old), FileIdentity)
    values = ds["data"].values
    assert values.dtype == np.uint16 and values.std() > 0


def test_cli_input_replaced_mid_run(tmp_path, monkeypatch, capsys):
    """Replaced between the open and the compute: exit 3, the file named, no output."""
    import romanxr.pipeline.calibration as calibration
    from tests.cli._exposure import make_exposure

    exposure = make_exposure(tmp_path / "exposure")
    for key, value in exposure.cache.environ().items():
        monkeypatch.setenv(key, value)
    uncal = exposure.uncal
    real = calibration.write_products

    def replace_then_write(ds, path, **kwargs):
        copy = tmp_path / "copy.asdf"
        shutil.copyfile(uncal, copy)  # the same bytes, but another file
        os.replace(copy, uncal)
        return real(ds, path, **kwargs)

    monkeypatch.setattr(calibration, "write_products", replace_then_write)
    out = tmp_path / "o_dqinit.asdf"
    code = main(["step", "dq_init", str(uncal), "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_CODES["input"] == 3, err
    assert str(uncal) in err and "changed after it was opened" in err
    assert not out.exists()
