"""``romanxr calibrate`` on many inputs: file lists, quoted globs, associations; options for
every member; --continue-on-error with its summary and exit code; one progress line."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import romanxr
from romanxr import cli
from tests.exposures._batch import make_batch


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    return make_batch(tmp_path_factory.mktemp("batch_cli"))


def _cal(name: str) -> str:
    return name.replace("_uncal", "_cal")


def _same_as_solo(folder, solo):
    for name, expected in solo.items():
        back = romanxr.open_cal(folder / _cal(name), chunks=None)
        np.testing.assert_array_equal(back["data"].values, expected["data"].values)
        np.testing.assert_array_equal(back["dq"].values, expected["dq"].values)


def test_a_list_of_files(batch, solo, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["calibrate", *map(str, batch.members), "--output-dir", str(out)]
    assert cli.main(args) == 0
    printed = capsys.readouterr()
    assert sorted(printed.out.split()) == sorted(str(out / _cal(p.name)) for p in batch.members)
    assert "files" not in printed.err  # no progress line off a terminal
    _same_as_solo(out, solo)


def test_a_quoted_glob_with_a_step_option_for_every_member(batch, tmp_path, capsys):
    pattern = str(batch.folder / "data" / "r0000101001001001001_*_uncal.asdf")
    args = ["calibrate", pattern, "--output-dir", str(tmp_path), "--steps.flatfield.skip=true"]
    assert cli.main([*args, "--progress"]) == 0
    assert "calibrate: 2/2 files" in capsys.readouterr().err
    for path in batch.members:
        meta = romanxr.open_cal(tmp_path / _cal(path.name)).attrs["meta"]
        assert meta["cal_step"]["flat_field"] == "SKIPPED"


def test_an_association_writes_in_the_current_directory(batch, solo, tmp_path, monkeypatch):
    # as strun: outputs go where the command runs, not beside the association
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    members = [
        {"expname": os.path.relpath(p, tmp_path), "exptype": "science"} for p in batch.members
    ]
    asn = tmp_path / "r0000101001001001001_0001_asn.json"
    product = {"name": "r0000101001001001001_0001", "members": members}
    asn.write_text(json.dumps({"asn_type": "image", "products": [product]}))
    assert cli.main(["calibrate", str(asn)]) == 0
    _same_as_solo(here, solo)
    assert not list(tmp_path.glob("*_cal.asdf"))


def test_dry_run_lists_the_outputs(batch, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(batch.folder / "data")
    assert cli.main(["calibrate", str(batch.folder / "data"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("dry run") == len(batch.members)
    assert not list((batch.folder / "data").glob("*_cal.asdf"))


def test_o_names_one_file_and_is_refused_for_several(batch, tmp_path, capsys):
    assert cli.main(["calibrate", *map(str, batch.members), "-o", str(tmp_path / "x.asdf")]) == 2
    assert "--output-dir" in capsys.readouterr().err


@pytest.fixture
def with_truncated(batch, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for path in batch.members:
        shutil.copy(path, data / path.name)
    bad = data / batch.members[1].name
    bad.write_bytes(bad.read_bytes()[:4000])
    return data, bad


def test_a_bad_member_stops_the_batch_before_anything_is_written(
    with_truncated, capsys, monkeypatch
):
    data, bad = with_truncated
    monkeypatch.chdir(data)
    assert cli.main(["calibrate", str(data)]) == 3
    err = capsys.readouterr().err
    assert bad.name in err and "nothing was computed" in err
    assert not list(data.glob("*_cal.asdf"))


def test_continue_on_error_writes_the_others_and_exits_3(with_truncated, solo, capsys, monkeypatch):
    data, bad = with_truncated
    monkeypatch.chdir(data)
    assert cli.main(["calibrate", str(data), "--continue-on-error"]) == 3
    err = capsys.readouterr().err
    assert "1 written, 1 failed" in err and bad.name in err
    assert [p.name for p in data.glob("*_cal.asdf")] == [
        _cal(p.name) for p in sorted(data.glob("*_uncal.asdf")) if p != bad
    ]
    good = next(p for p in data.glob("*_uncal.asdf") if p != bad)
    back = romanxr.open_cal(data / _cal(good.name), chunks=None)
    np.testing.assert_array_equal(back["data"].values, solo[good.name]["data"].values)


def test_missing_members_are_all_named_with_exit_3(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["calibrate", "a_uncal.asdf", "b_uncal.asdf"]) == 3
    err = capsys.readouterr().err
    assert "a_uncal.asdf" in err and "b_uncal.asdf" in err and "2 member(s)" in err


def test_save_intermediate_applies_to_every_member(batch, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for path in batch.members:
        shutil.copy(path, data / path.name)
    assert cli.main(["calibrate", str(data), "--save-intermediate", "dq_init"]) == 0
    for path in batch.members:
        assert (data / path.name.replace("_uncal", "_dqinit")).is_file()


def test_scheduler_and_workers_together_are_refused(monkeypatch):
    from romanxr.cli.batch import scheduler
    from romanxr.errors import ConfigError

    with pytest.raises(ConfigError, match="give one"), scheduler("tcp://127.0.0.1:9", 2):
        pass


def test_no_batch_options_and_no_environment_run_on_local_threads(monkeypatch):
    from romanxr.cli.batch import scheduler

    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with scheduler(None, None) as client:
        assert client is None


def test_the_heap_is_handed_back_before_and_after_every_member(batch, tmp_path, monkeypatch):
    # a long batch must not carry each member's freed heap holes into the next one
    import romanxr.pipeline
    from romanxr.schedule import allocator

    events: list[str] = []
    monkeypatch.setattr(allocator, "release_free_memory", lambda: events.append("trim") or True)
    real_write = romanxr.pipeline.write_products  # a member's cal (and catalog products)

    def write(*args, **kwargs):
        events.append("write")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(romanxr.pipeline, "write_products", write)
    args = ["calibrate", *map(str, batch.members), "--output-dir", str(tmp_path)]
    assert cli.main(args) == 0
    writes = events.count("write")
    assert writes == len(batch.members)
    assert events[0] == "trim"
    # every write is followed by a trim
    assert all(events[i + 1] == "trim" for i, e in enumerate(events) if e == "write")
