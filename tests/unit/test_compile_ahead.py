"""Compiling the ramp-fit kernel ahead in a helper process on a cold numba cache (issue #19)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import ClassVar

import pytest

from romanxr.schedule import compile_ahead


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(compile_ahead, "_HELPERS", {})
    return tmp_path


class FakeHelper:
    started: ClassVar[list[list[str]]] = []

    def __init__(self, command, **kwargs):
        self.command = command
        self.waited = False
        FakeHelper.started.append(command)

    def wait(self, timeout=None):
        self.waited = True
        return 0

    def poll(self):
        return 0


def test_an_empty_cache_is_cold_and_an_index_makes_it_warm(cache):
    assert compile_ahead.cache_is_cold("ramp_likely")
    where = cache / "some" / "mirrored" / "path"
    where.mkdir(parents=True)
    (where / "ramp_likely._row_gls-41.py311.nbi").write_bytes(b"")  # another function's
    assert compile_ahead.cache_is_cold("ramp_likely")
    (where / "ramp_likely._likely_block-305.py311.nbi").write_bytes(b"")
    assert not compile_ahead.cache_is_cold("ramp_likely")


def test_cold_cache_starts_one_helper_and_the_step_waits_for_it(cache, monkeypatch):
    monkeypatch.setattr(compile_ahead.subprocess, "Popen", FakeHelper)
    FakeHelper.started = []
    assert compile_ahead.start("ramp_likely")
    assert not compile_ahead.start("ramp_likely")  # one helper per group
    assert FakeHelper.started == [[sys.executable, "-m", "romanxr.kernels.warm", "ramp_likely"]]
    helper = compile_ahead._HELPERS["ramp_likely"]
    assert not helper.waited
    compile_ahead.wait("ramp_likely")
    assert helper.waited


def test_warm_cache_starts_nothing(cache, monkeypatch):
    (cache / "ramp_likely._likely_block-305.py311.nbi").write_bytes(b"")
    monkeypatch.setattr(compile_ahead.subprocess, "Popen", FakeHelper)
    FakeHelper.started = []
    assert not compile_ahead.start("ramp_likely")
    compile_ahead.wait("ramp_likely")  # nothing to wait for
    assert FakeHelper.started == []


CHECK = """
import numpy as np
from numba.core import event
from romanxr.kernels import ramp_likely as k
compiled = []
class Listener(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__name__)
    def on_end(self, ev):
        pass
event.register("numba:compile", Listener())
rng = np.random.default_rng(1)
nres, ny, nx = 9, 4, 5
data = np.cumsum(rng.normal(30.0, 3.0, (nres, ny, nx)), axis=0)[:, :, ::-1]  # float64, a view
gdq = np.zeros((nres, ny, nx), np.int16)
timing = dict(mean_time=np.arange(1.0, nres + 1) * 3.04, n_reads=np.ones(nres, np.int32),
              variance_time=np.arange(1.0, nres + 1) * 3.04)
k.likely_fit_block(data, gdq, np.zeros((ny, nx), np.int64), np.full((ny, nx), 6.0),
                   np.full((ny, nx), 1.8), rejection_threshold=None, jump_cuts_one=True, **timing)
k.likely_jump_block(data, gdq, np.full((ny, nx), 6.0), np.full((ny, nx), 1.8), **timing)
import numba
numba.njit(lambda x: x + 1)(1)  # the listener does hear a compilation
assert "<lambda>" in compiled, compiled
print("compiled:", "_likely_block" in compiled)
"""


@pytest.mark.slow
def test_the_helper_compiles_the_specialisation_other_inputs_need(tmp_path, monkeypatch):
    # the public wrappers fix dtypes and layout, so what the helper compiled on its tiny
    # block serves other dtypes, shapes, views and options: loaded from the cache, not compiled
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    subprocess.run(
        [sys.executable, "-m", "romanxr.kernels.warm", "ramp_likely"], env=env, check=True
    )
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not compile_ahead.cache_is_cold("ramp_likely")
    out = subprocess.run(
        [sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "compiled: False"


class SlowHelper(FakeHelper):
    """A helper that is still compiling until it is killed."""

    def __init__(self, command, **kwargs):
        super().__init__(command, **kwargs)
        self.killed = False
        self.reaped = False

    def poll(self):
        return -9 if self.killed else None

    def kill(self):
        self.killed = True

    def wait(self, timeout=None):
        self.reaped = self.killed
        return super().wait(timeout)


def test_the_block_reaps_its_helper_even_when_it_fails(cache, monkeypatch):
    monkeypatch.setattr(compile_ahead.subprocess, "Popen", SlowHelper)
    FakeHelper.started = []
    with pytest.raises(RuntimeError, match="boom"), compile_ahead.compiling_ahead() as started:
        assert started == ["ramp_likely"]
        helper = compile_ahead._HELPERS["ramp_likely"]
        raise RuntimeError("boom")
    assert helper.killed and helper.reaped  # ended and its exit status collected
    assert compile_ahead._HELPERS == {}
    assert len(FakeHelper.started) == 1


def test_a_finished_helper_is_collected_not_killed(cache, monkeypatch):
    monkeypatch.setattr(compile_ahead.subprocess, "Popen", FakeHelper)
    FakeHelper.started = []
    with compile_ahead.compiling_ahead("ramp_likely"):
        helper = compile_ahead._HELPERS["ramp_likely"]
        compile_ahead.wait("ramp_likely")  # what the ramp-fit step does
    assert helper.waited
    assert compile_ahead._HELPERS == {}
    (cache / "ramp_likely._likely_block-305.py311.nbi").write_bytes(b"")  # it compiled
    with compile_ahead.compiling_ahead() as started:
        assert started == []  # a warm cache: no second helper, nothing compiled twice
    assert len(FakeHelper.started) == 1


def test_the_demo_starts_the_helper_before_it_simulates(cache, monkeypatch, tmp_path):
    import romanxr.testing

    monkeypatch.setattr(compile_ahead.subprocess, "Popen", SlowHelper)
    FakeHelper.started = []
    seen = []

    def simulate(*args, **kwargs):
        seen.append(dict(compile_ahead._HELPERS))
        raise RuntimeError("stop after the simulation started")

    monkeypatch.setattr(romanxr.testing, "simulate_exposure", simulate)
    from romanxr.demo import run_demo

    with pytest.raises(RuntimeError, match="stop after"):
        run_demo(tmp_path / "demo", size=256)
    assert list(seen[0]) == ["ramp_likely"]  # compiling while the exposure is simulated
    helper = seen[0]["ramp_likely"]
    assert helper.killed and helper.reaped and compile_ahead._HELPERS == {}
