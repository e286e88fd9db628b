"""local_threads(): the threaded scheduler named by its function, so dask does not import
``distributed`` to look for a client; a scheduler chosen elsewhere is left alone."""

from __future__ import annotations

import subprocess
import sys

import dask
import dask.array as da
import dask.threaded

from romanxr.schedule import local_scheduler, local_threads


def test_the_writers_still_see_the_local_threaded_scheduler(monkeypatch):
    # as in a fresh CLI process (other tests of this session may have loaded distributed)
    monkeypatch.delitem(sys.modules, "distributed", raising=False)
    with dask.config.set(scheduler=None), local_threads():
        assert dask.config.get("scheduler") is dask.threaded.get
        assert local_scheduler()
        assert int(da.arange(10, chunks=3).sum().compute()) == 45
    assert dask.config.get("scheduler", None) is None


def test_rechunk_is_named_tasks_inside_unless_configured(monkeypatch):
    """rechunk's method lookup imports distributed too (issue 19); a chosen one is kept."""
    monkeypatch.delitem(sys.modules, "distributed", raising=False)
    with dask.config.set(scheduler=None), local_threads():
        assert dask.config.get("array.rechunk.method") == "tasks"
    assert dask.config.get("array.rechunk.method", None) is None
    with dask.config.set({"scheduler": None, "array.rechunk.method": "p2p"}), local_threads():
        assert dask.config.get("array.rechunk.method") == "p2p"


def test_a_configured_scheduler_is_kept(monkeypatch):
    monkeypatch.delitem(sys.modules, "distributed", raising=False)
    with dask.config.set(scheduler="synchronous"), local_threads():
        assert dask.config.get("scheduler") == "synchronous"
        assert not local_scheduler()


def test_a_loaded_distributed_is_left_to_find_its_client(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", sys.modules.get("distributed", sys))
    with dask.config.set(scheduler=None), local_threads():
        assert dask.config.get("scheduler", None) is None


CHECK = """
import sys
import dask.array as da
from romanxr.schedule import local_threads
with local_threads():
    total = int(da.ones((64, 64), chunks=16).sum().compute())
print(total, "distributed" in sys.modules)
"""


def test_computing_inside_does_not_import_distributed():
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["4096", "False"]
    # without it, dask's scheduler lookup imports distributed (what the block avoids)
    plain = CHECK.replace("with local_threads():", "if True:")
    out = subprocess.run(
        [sys.executable, "-c", plain], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["4096", "True"]
