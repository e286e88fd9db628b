"""``romanxr warm`` compiles what the first calibration after an install would (issue #19).

Both commands run as whole processes on an empty numba cache of their own, as on a fresh
install: after ``romanxr warm``, ``romanxr demo`` (the README's first command: a 256x256
exposure, every step) must load every kernel from the cache and compile none.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def romanxr(args: list[str], env: dict, cwd) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "romanxr.cli", *args]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_after_warm_the_demo_compiles_nothing(tmp_path):
    cache = tmp_path / "numba"
    cache.mkdir()
    # NUMBA_DEBUG_CACHE: numba says each cache save (a compilation) and load on stdout
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "NUMBA_DEBUG_CACHE": "1"}
    warm = romanxr(["warm"], env, tmp_path)
    assert warm.returncode == 0, warm.stderr[-3000:]
    assert "kernels ready" in warm.stderr
    assert "data saved" in warm.stdout  # it compiled, into this cache
    demo = romanxr(["demo", "--output", str(tmp_path / "demo"), "--no-progress"], env, tmp_path)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert (tmp_path / "demo" / "quicklook.png").exists()
    saved = [line for line in demo.stdout.splitlines() if "data saved" in line]
    assert saved == []
    assert "data loaded" in demo.stdout
    assert "compiling kernels" not in demo.stderr
