"""romanxr.memory.tune_allocator: glibc's malloc settings for batch calibration."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> str:
    # a process of its own: the settings are process-wide
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tune_allocator_applies_on_glibc():
    assert _run("from romanxr.memory import tune_allocator; print(tune_allocator())") == "True"


def test_tune_allocator_does_nothing_off_linux(monkeypatch):
    from romanxr import memory

    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.tune_allocator() is False


def test_the_command_line_tunes_only_heavy_commands(monkeypatch):
    import romanxr.memory
    from romanxr import cli

    calls = []
    monkeypatch.setattr(romanxr.memory, "tune_allocator", lambda **kw: calls.append(kw) or True)
    assert cli.main(["steps"]) == 0
    assert calls == []
    assert cli.main(["calibrate", "/nonexistent/r_uncal.asdf"]) == 3  # input error, but tuned
    assert len(calls) == 1
