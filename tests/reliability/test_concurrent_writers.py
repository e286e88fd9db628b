"""No-clobber holds at the final move (issue 18, item 2).

Without overwrite, the absence of the target is checked before the compute and again by the
rename itself: a product that another writer put at the target meanwhile is kept, this run's
finished result is removed, and the error (exit 5 on the CLI) names how to replace it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asdf
import dask.array as da
import numpy as np
import pytest

import romanxr
from romanxr.errors import OutputError, OutputExistsError
from romanxr.io import atomic
from romanxr.io.asdf_writer import to_asdf
from romanxr.io.zarr_io import to_zarr
from tests.io.writer_fakes import image_dataset, make_cal_file, temporaries

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cal(tmp_path_factory):
    return make_cal_file(tmp_path_factory.mktemp("race") / "in_cal.asdf")


def _racing(ds, appear):
    """``ds`` whose ``data`` calls ``appear()`` when computed: another writer finishes first."""
    out = ds.load().copy()
    values = out["data"].values

    def block(x):
        appear()
        return x

    lazy = da.from_array(values, chunks=-1).map_blocks(block, meta=values[:0, :0])
    out["data"] = (("y", "x"), lazy)
    return out


def _other_file(target: Path) -> None:
    if not target.exists():
        target.write_bytes(b"the other writer's product")


def _other_store(target: Path) -> None:
    if not target.exists():
        target.mkdir()
        (target / "zarr.json").write_text('{"other": true}')


@pytest.mark.parametrize("no_replace", [True, False], ids=["renameat2", "link-or-mkdir"])
def test_asdf_target_appearing_mid_run_is_kept(tmp_path, cal, monkeypatch, no_replace):
    if not no_replace:  # the fallback where renameat2 is missing
        monkeypatch.setattr(atomic, "_renameat2", lambda a, b, flag: False)
    target = tmp_path / "o_cal.asdf"
    ds = _racing(image_dataset(romanxr.open_cal(cal)), lambda: _other_file(target))
    with pytest.raises(OutputExistsError) as e:
        to_asdf(ds, target)
    assert isinstance(e.value, OutputError) and isinstance(e.value, FileExistsError)
    assert str(target) in str(e.value) and "overwrite=True" in str(e.value)
    assert "--overwrite" in e.value.cli_message()
    assert target.read_bytes() == b"the other writer's product"
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("no_replace", [True, False], ids=["renameat2", "link-or-mkdir"])
def test_zarr_target_appearing_mid_run_is_kept(tmp_path, cal, monkeypatch, no_replace):
    if not no_replace:
        monkeypatch.setattr(atomic, "_renameat2", lambda a, b, flag: False)
    target = tmp_path / "o_cal.zarr"
    ds = _racing(image_dataset(romanxr.open_cal(cal)), lambda: _other_store(target))
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        to_zarr(ds, target)
    assert sorted(p.name for p in target.iterdir()) == ["zarr.json"]
    assert (target / "zarr.json").read_text() == '{"other": true}'
    assert temporaries(tmp_path) == []


def test_with_overwrite_the_later_writer_replaces(tmp_path, cal):
    target = tmp_path / "o_cal.asdf"
    ds = _racing(image_dataset(romanxr.open_cal(cal)), lambda: _other_file(target))
    to_asdf(ds, target, overwrite=True)
    with asdf.open(target) as af:
        assert af["roman"]["data"].shape == ds["data"].shape
    assert temporaries(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["cal.asdf", "cal.zarr"])
def test_two_cli_runs_to_one_output(tmp_path, suffix):
    """Two ``romanxr calibrate --no-overwrite`` at once: one exits 0, the other 5, and the file
    is the winner's (told apart by the jump threshold each recorded)."""
    from tests.cli._exposure import make_exposure

    exposure = make_exposure(tmp_path / "exposure")
    target = tmp_path / f"r_{suffix}"
    env = dict(os.environ, PYTHONPATH=str(ROOT), **exposure.cache.environ())
    command = [sys.executable, "-m", "romanxr.cli", "calibrate", str(exposure.uncal)]
    command += ["-o", str(target), "--no-overwrite", "--no-progress"]
    procs = {
        threshold: subprocess.Popen(
            [*command, f"--steps.jump.rejection_threshold={threshold}"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for threshold in (7.5, 8.5)
    }
    results = {t: (p.wait(timeout=240), p.stderr.read()) for t, p in procs.items()}
    codes = sorted(code for code, _ in results.values())
    assert codes == [0, 5], results
    winner = next(t for t, (code, _) in results.items() if code == 0)
    loser_err = next(err for code, err in results.values() if code == 5)
    assert str(target) in loser_err and "overwrite" in loser_err and "=True" not in loser_err
    opened = romanxr.open_cal(target) if suffix.endswith("asdf") else romanxr.open_zarr(target)
    assert opened.attrs["step_parameters"]["jump"]["rejection_threshold"] == winner
    assert np.isfinite(opened["data"].values).any()
    assert temporaries(tmp_path) == []


def test_an_output_found_before_the_compute_speaks_the_callers_language(tmp_path, cal):
    # the CLI checks first, but another run may create the file between that check and the
    # writer's: the writer's refusal then has the CLI wording too
    target = tmp_path / "o_cal.asdf"
    target.write_bytes(b"previous")
    with pytest.raises(OutputExistsError) as err:
        to_asdf(image_dataset(romanxr.open_cal(cal)), target)
    assert "overwrite=True" in str(err.value) and "nothing was computed" in str(err.value)
    assert "--overwrite" in err.value.cli_message() and "=True" not in err.value.cli_message()
    assert target.read_bytes() == b"previous"
