"""The crds client's fatal exit (issue 18, item 4): with a server URL that cannot be reached
and an empty cache, crds calls its fatal handler (``sys.exit(-1)``). romanxr turns that into
the typed :class:`CrdsConfigurationError` (exit 4) naming CRDS_PATH, the server and the fix.

The server is ``http://127.0.0.1:9`` (discard port, refused at once): no real network is
touched; in-process, pytest-socket blocks the attempt before it leaves the process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import romanxr
from romanxr.errors import CrdsConfigurationError
from romanxr.refs.crds_client import clear_crds_cache, crds_best_reference
from tests.io.writer_fakes import make_uncal_file

# in-process, crds' connection attempt meets pytest-socket (which warns, then crds gives up)
pytestmark = pytest.mark.filterwarnings("ignore:A test tried to use socket:UserWarning")

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "http://127.0.0.1:9"
META = {
    "instrument": {"name": "WFI", "detector": "WFI01", "optical_element": "F158"},
    "exposure": {"type": "WFI_IMAGE", "start_time": "2027-01-01T00:00:00"},
}


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "crds_cache"
    cache.mkdir()
    monkeypatch.setenv("CRDS_PATH", str(cache))
    monkeypatch.setenv("CRDS_SERVER_URL", UNREACHABLE)
    clear_crds_cache()
    yield cache
    clear_crds_cache()


def _assert_message(text: str, cache: Path, reftype: str = "dark") -> None:
    assert f"CRDS_PATH={cache}" in text
    assert UNREACHABLE in text
    assert "crds sync" in text and f"override_{reftype}" in text


def test_crds_fatal_exit_is_a_typed_error(empty_cache):
    with pytest.raises(CrdsConfigurationError) as e:
        crds_best_reference("dark", META)
    assert isinstance(e.value, FileNotFoundError)
    _assert_message(str(e.value), empty_cache)


def test_crds_fatal_exit_through_calibrate(empty_cache, tmp_path):
    uncal = make_uncal_file(tmp_path / "r_uncal.asdf")
    with pytest.raises(CrdsConfigurationError, match="the CRDS client gave up"):
        romanxr.calibrate(uncal, steps={"dq_init": {}})


@pytest.mark.slow
def test_crds_fatal_exit_through_the_cli(tmp_path):
    cache = tmp_path / "crds_cache"
    cache.mkdir()
    uncal = make_uncal_file(tmp_path / "r_uncal.asdf")
    env = dict(os.environ, PYTHONPATH=str(ROOT), CRDS_PATH=str(cache))
    env["CRDS_SERVER_URL"] = UNREACHABLE
    out = str(tmp_path / "r_cal.asdf")
    done = subprocess.run(
        [sys.executable, "-m", "romanxr.cli", "calibrate", str(uncal), "--no-progress", "-o", out],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 4, done.stderr[-3000:]
    assert "romanxr: reference file problem:" in done.stderr
    # dq_init's mask is the first reference looked up
    _assert_message(done.stderr.replace("\n", " "), cache, "mask")
    assert not (tmp_path / "r_cal.asdf").exists()
