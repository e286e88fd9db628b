"""Output-path problems through the CLI (item 9): exit code 5 with a message naming the path,
checked right after the input is opened, before any reference lookup or compute (no CRDS is
configured here: a later check would end with the reference exit code 4 instead).

The writers' own checks (missing or read-only directory, output equal to the input, existing
output without overwrite, for cal.asdf and Zarr) are in ``tests/io/test_writers.py`` and
``tests/io/test_zarr.py``; a full disk and ``kill -9`` in ``test_interrupted_writes.py``.
"""

from __future__ import annotations

import os

import pytest

from romanxr.cli import EXIT_CODES, main


@pytest.fixture
def no_crds(monkeypatch):
    monkeypatch.delenv("CRDS_PATH", raising=False)


def _run(capsys, *argv):
    code = main(["calibrate", *map(str, argv), "--no-progress"])
    return code, capsys.readouterr().err


def test_missing_output_directory(tmp_uncal, tmp_path, capsys, no_crds):
    out = tmp_path / "nowhere" / "o_cal.asdf"
    code, err = _run(capsys, tmp_uncal(), "-o", out, "--no-overwrite")
    assert code == EXIT_CODES["output"] == 5
    assert "cannot write output" in err and "nowhere" in err
    assert not out.parent.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_directory(tmp_uncal, tmp_path, capsys, no_crds):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, err = _run(capsys, tmp_uncal(), "-o", ro / "o_cal.asdf")
    finally:
        ro.chmod(0o700)
    assert code == 5 and "ro" in err


def test_output_equal_to_input(tmp_uncal, capsys, no_crds):
    uncal = tmp_uncal()
    before = uncal.read_bytes()
    code, err = _run(capsys, uncal, "-o", uncal, "--overwrite")
    assert code == 5 and "r_uncal.asdf" in err
    assert uncal.read_bytes() == before


def test_existing_output_with_no_overwrite(tmp_uncal, tmp_path, capsys, no_crds):
    out = tmp_path / "o_cal.asdf"
    out.write_bytes(b"previous result")
    code, err = _run(capsys, tmp_uncal(), "-o", out, "--no-overwrite")
    assert code == 5 and "overwrite" in err
    assert out.read_bytes() == b"previous result"


def test_existing_zarr_output_with_no_overwrite(tmp_uncal, tmp_path, capsys, no_crds):
    out = tmp_path / "o_cal.zarr"
    out.mkdir()
    (out / "zarr.json").write_text("{}")
    code, err = _run(capsys, tmp_uncal(), "-o", out, "--output-format", "zarr", "--no-overwrite")
    assert code == 5 and "overwrite" in err
    assert (out / "zarr.json").read_text() == "{}"


def test_bad_input_is_exit_code_3(tmp_path, capsys, no_crds):
    bad = tmp_path / "bad_uncal.asdf"
    bad.write_text("not asdf")
    code, err = _run(capsys, bad, "-o", tmp_path / "o_cal.asdf")
    assert code == EXIT_CODES["input"] == 3 and "not an ASDF file" in err
    assert not (tmp_path / "o_cal.asdf").exists()
