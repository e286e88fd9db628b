"""romanxr.schedule.tune_allocator: glibc's malloc settings for batch calibration."""

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
    assert _run("from romanxr.schedule import tune_allocator; print(tune_allocator())") == "True"


def test_tune_allocator_does_nothing_off_linux(monkeypatch):
    from romanxr.schedule import allocator as memory

    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.tune_allocator() is False


def test_the_command_line_tunes_only_heavy_commands(monkeypatch):
    import romanxr.schedule
    from romanxr import cli

    calls = []
    monkeypatch.setattr(romanxr.schedule, "tune_allocator", lambda **kw: calls.append(kw) or True)
    assert cli.main(["steps"]) == 0
    assert calls == []
    assert cli.main(["calibrate", "/nonexistent/r_uncal.asdf"]) == 3  # input error, but tuned
    assert len(calls) == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_release_free_memory_returns_freed_heap_pages():
    code = """
import numpy as np
from romanxr.schedule import release_free_memory, tune_allocator
tune_allocator()  # no automatic trimming: the freed pages stay resident until released
def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon"):
            return int(line.split()[1]) * 1024
keep = []
for i in range(40):  # 40 x 4 MiB below the mmap threshold: heap memory
    a = np.ones(2**20, dtype=np.float32)
    keep.append(a)
    keep.append(np.ones(16, dtype=np.float32))  # small survivors pin the heap between them
held = anon()
del keep[::2]
before = anon()
released = release_free_memory()
print(released, (before - anon()) / 2**20 > 100, held - before < 50 * 2**20)
"""
    assert _run(code) == "True True True"


def test_release_free_memory_does_nothing_off_linux(monkeypatch):
    from romanxr.schedule import allocator as memory

    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.release_free_memory() is False


def test_store_by_region_releases_memory_between_groups_only(monkeypatch):
    import dask.array as da
    import numpy as np

    from romanxr.schedule import regions as ordered

    calls = []
    monkeypatch.setattr(ordered, "release_free_memory", lambda: calls.append(1) or True)
    sources = [da.ones((8, 4), chunks=(2, 4)) * k for k in (1, 2, 3)]
    targets = [np.zeros((8, 4)) for _ in sources]
    ordered.store_by_region(sources, targets, [0, 0, 0], groups=[0, 1, 1], region_rows=2)
    assert [t[0, 0] for t in targets] == [1, 2, 3]
    assert len(calls) == 1  # one change of group; none between the regions of a group
