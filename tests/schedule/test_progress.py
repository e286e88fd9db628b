"""The labelled progress bar of a calibration: redrawn in place on a terminal (and in a
notebook), plain lines (one per step) in a log."""

from __future__ import annotations

import io
import re

import dask.array as da
import numpy as np
import pytest

from romanxr.schedule.progress import Progress, expect, note_step, progress_for


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _last_drawn(text: str) -> str:
    """What a terminal shows at the end: the last ``\\r``-separated state of the last line."""
    return text.rstrip("\n").split("\n")[-1].split("\r")[-1]


def test_terminal_bar_is_labelled_redrawn_in_place_and_reaches_100_percent():
    out = FakeTTY()
    x = da.ones((64, 64), chunks=8)
    with Progress("calibrate r_uncal.asdf", out, dt=0.0) as bar:
        note_step("dq_init")
        total = float((x + 1).sum().compute())
    assert total == 2 * 64 * 64
    text = out.getvalue()
    assert bar.interactive and bar.total > 64  # every chunk's task counted
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, redrawn with \r
    assert text.count("\r") > 3
    states = [s for s in text.strip().split("\r") if s]
    assert all(s.startswith("calibrate r_uncal.asdf: ") for s in states)
    assert any("step 1 dq_init" in s for s in states)
    percents = [int(p) for p in re.findall(r"\]\s+(\d+)%", text)]
    assert percents == sorted(percents) and percents[-1] == 100
    assert "ETA" in text  # shown while running
    assert "100%" in _last_drawn(text) and "done in" in _last_drawn(text)


def test_announced_tasks_make_one_bar_over_several_computations():
    out = FakeTTY()
    parts = [da.ones(16, chunks=4) * i for i in range(3)]
    shown = []
    with Progress("calibrate three", out, dt=0.0):
        expect(sum(len(p.sum().__dask_graph__()) for p in parts))
        for p in parts:
            p.sum().compute(optimize_graph=False)  # runs the tasks announced, no fewer
            shown.append(int(re.findall(r"\]\s+(\d+)%", out.getvalue())[-1]))
    # the total announced up front: a third of it after the first computation, never back
    assert 25 <= shown[0] <= 40 and 60 <= shown[1] <= 75 and shown[2] == 100
    percents = [int(p) for p in re.findall(r"\]\s+(\d+)%", out.getvalue())]
    assert percents == sorted(percents) and percents[-1] == 100


def test_log_stream_gets_one_line_per_step_and_no_carriage_return(tmp_path):
    from romanxr.pipeline import calibrate, open_exposure, plan, resolve_step_options
    from romanxr.pipeline.planning import RUN
    from tests.cli._exposure import make_exposure

    exposure = make_exposure(tmp_path)
    out = io.StringIO()  # a log file or a pipe: not a TTY
    with exposure.cache.activate(), Progress("calibrate r_uncal.asdf", out) as bar:
        calibrate(exposure.uncal, output=tmp_path / "r_cal.asdf")
        runs = plan(resolve_step_options(), open_exposure(exposure.uncal))
    text = out.getvalue()
    assert not bar.interactive
    assert "\r" not in text
    lines = text.splitlines()
    assert all(line.startswith("calibrate r_uncal.asdf: ") for line in lines)
    ran = [run.name for run in runs if run.action == RUN]
    for name in ran:
        assert sum(bool(re.search(rf": step \d+ {name},", line)) for line in lines) == 1, name
    steps = [line for line in lines if ": step " in line]
    assert len(steps) == len(ran)
    assert "done in" in lines[-1]


def test_off_and_forced():
    assert not isinstance(progress_for(False, "x"), Progress)
    forced = progress_for(True, "x", io.StringIO())
    assert isinstance(forced, Progress) and forced.interactive
    assert not progress_for(None, "x", io.StringIO()).interactive


def test_failure_is_said_and_the_bar_closed():
    out = io.StringIO()
    with pytest.raises(ZeroDivisionError), Progress("calibrate bad", out):
        da.from_array(np.ones(4), chunks=2).sum().compute()
        raise ZeroDivisionError
    assert out.getvalue().splitlines()[-1].startswith("calibrate bad: failed after")
    before = out.getvalue()
    note_step("later")  # no bar open any more: nothing written, nothing raised
    assert out.getvalue() == before
