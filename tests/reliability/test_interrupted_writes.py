"""Writes that are interrupted (items 9, 10): ``kill -9`` of a writer process mid-write, a full
disk. The target is never a corrupt file: either absent or the previous good one, and the next
write cleans the killed run's temporaries.

In-process interruptions (an exception or KeyboardInterrupt during compute or serialization,
for cal.asdf and Zarr) are in ``tests/io/test_writers.py`` and ``tests/io/test_zarr.py``
(``test_failure_mid_write_keeps_previous_*``, ``test_keyboard_interrupt_*``,
``test_interrupt_leaves_no_store``, ``test_stray_*``); output-path checks (missing or read-only
directory, output equal to the input, existing output without overwrite) are there too.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import asdf
import numpy as np
import pytest

import romanxr
from romanxr.errors import OutputError
from romanxr.io.asdf_writer import to_asdf
from romanxr.io.zarr_io import open_zarr, to_zarr
from tests.io.writer_fakes import image_dataset, make_cal_file, temporaries

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90  # seconds: the whole subprocess test is bounded by this


#: The writer process: writes ``target`` with the chosen writer and blocks mid-write (asdf: after
#: half the file is on disk; Zarr: inside the compute of one chunk) until it is killed.
WRITER = textwrap.dedent(
    """
    import os, sys, time
    import asdf, zarr.storage
    import romanxr
    from romanxr.io.asdf_writer import to_asdf
    from romanxr.io.zarr_io import to_zarr
    from tests.io.writer_fakes import image_dataset

    kind, cal, target = sys.argv[1:4]
    real = asdf.AsdfFile.write_to

    def stalled(self, fd, *args, **kwargs):
        if not isinstance(fd, str | os.PathLike):  # in-memory dry runs
            return real(self, fd, *args, **kwargs)
        with open(fd, "wb") as fh:
            fh.write(b"#ASDF 1.0.0\\n" + b"x" * 4096)
            fh.flush()
        print("STALLED", flush=True)
        time.sleep(600)

    if kind == "asdf":
        asdf.AsdfFile.write_to = stalled
        to_asdf(image_dataset(romanxr.open_cal(cal)).load(), target, overwrite=True)
    elif kind == "cli":
        # the real command line, stalled inside its cal.asdf write
        from romanxr.cli import main

        asdf.AsdfFile.write_to = stalled
        sys.exit(main(["calibrate", cal, "-o", target, "--overwrite", "--no-progress"]))
    else:
        real_set = zarr.storage.LocalStore.set
        calls = [0]

        async def stalled_set(self, key, value):
            calls[0] += 1
            if calls[0] > 3:  # some metadata and chunks are on disk
                print("STALLED", flush=True)
                time.sleep(600)
            return await real_set(self, key, value)

        zarr.storage.LocalStore.set = stalled_set
        to_zarr(image_dataset(romanxr.open_cal(cal)).load(), target, overwrite=True)
    """
)


def _kill_mid_write(tmp_path, kind, cal, target, extra_env=None):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(extra_env or {}))
    proc = subprocess.Popen(
        [sys.executable, str(script), kind, str(cal), str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        line = ""
        while time.monotonic() < deadline:  # readline blocks; the writer prints soon
            line = proc.stdout.readline()
            if "STALLED" in line or proc.poll() is not None:
                break
        if "STALLED" not in line:
            proc.kill()
            raise AssertionError(f"the writer never stalled: {proc.communicate()[1][-2000:]}")
        # wait until the temporary is visible, then kill -9
        while time.monotonic() < deadline and not temporaries(tmp_path):
            time.sleep(0.05)
        assert temporaries(tmp_path), "the writer made no temporary"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return proc.pid


@pytest.fixture(scope="module")
def cal(tmp_path_factory):
    return make_cal_file(tmp_path_factory.mktemp("killed") / "in_cal.asdf")


@pytest.mark.slow
@pytest.mark.parametrize("previous", [False, True], ids=["new", "overwrite"])
def test_kill_9_during_asdf_write(tmp_path, cal, previous):
    ds = image_dataset(romanxr.open_cal(cal)).load()
    target = tmp_path / "o_cal.asdf"
    good = None
    if previous:
        to_asdf(ds, target)
        good = target.read_bytes()
    _kill_mid_write(tmp_path, "asdf", cal, target)
    # the killed run left its temporary, but the target is untouched
    assert any(".romanxr-tmp-" in n for n in temporaries(tmp_path))
    if previous:
        assert target.read_bytes() == good
        with asdf.open(target) as af:  # still a valid file
            assert af["roman"]["data"].shape == ds["data"].shape
    else:
        assert not target.exists()
    # the next run cleans the dead writer's temporary
    to_asdf(ds, target, overwrite=True)
    assert temporaries(tmp_path) == []
    np.testing.assert_array_equal(romanxr.open_cal(target)["data"].values, ds["data"].values)


@pytest.mark.slow
@pytest.mark.parametrize("previous", [False, True], ids=["new", "overwrite"])
def test_kill_9_during_zarr_write(tmp_path, cal, previous):
    ds = image_dataset(romanxr.open_cal(cal)).load()
    target = tmp_path / "o_cal.zarr"
    if previous:
        to_zarr(ds, target)
    _kill_mid_write(tmp_path, "zarr", cal, target)
    assert temporaries(tmp_path)
    if previous:
        np.testing.assert_array_equal(open_zarr(target)["data"].values, ds["data"].values)
    else:
        assert not target.exists()
    to_zarr(ds, target, overwrite=True)
    assert temporaries(tmp_path) == []
    np.testing.assert_array_equal(open_zarr(target)["data"].values, ds["data"].values)


@pytest.mark.slow
def test_kill_9_of_the_cli_during_its_write(tmp_path):
    """``kill -9`` of ``romanxr calibrate`` while it writes the cal.asdf: no file at the target,
    and the next run of the command cleans the dead run's temporary and writes a good file."""
    from tests.cli._exposure import make_exposure

    exposure = make_exposure(tmp_path / "exposure")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "r_cal.asdf"
    env = exposure.cache.environ()
    _kill_mid_write(out_dir, "cli", exposure.uncal, target, extra_env=env)
    assert not target.exists()
    assert any(".romanxr-tmp-" in n for n in temporaries(out_dir))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "romanxr.cli",
            "calibrate",
            str(exposure.uncal),
            "-o",
            str(target),
            "--no-progress",
        ],
        env=dict(os.environ, PYTHONPATH=str(ROOT), **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert temporaries(out_dir) == []
    assert romanxr.open_cal(target)["data"].shape == (24, 248)


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_asdf(tmp_path, cal, monkeypatch):
    ds = image_dataset(romanxr.open_cal(cal)).load()
    real = asdf.AsdfFile.write_to

    def full(self, fd, *args, **kwargs):
        if not isinstance(fd, str | os.PathLike):
            return real(self, fd, *args, **kwargs)
        Path(fd).write_bytes(b"#ASDF 1.0.0\npart")  # some bytes made it before the disk filled
        _enospc()

    monkeypatch.setattr(asdf.AsdfFile, "write_to", full)
    with pytest.raises(OutputError, match="No space left on device") as e:
        to_asdf(ds, tmp_path / "o_cal.asdf")
    assert isinstance(e.value, OSError) and "o_cal.asdf" in str(e.value)
    assert os.listdir(tmp_path) == []


def test_full_disk_zarr(tmp_path, cal, monkeypatch):
    import zarr.storage

    ds = image_dataset(romanxr.open_cal(cal)).load()
    real_set = zarr.storage.LocalStore.set
    calls = {"n": 0}

    async def full(self, key, value):
        calls["n"] += 1
        if calls["n"] > 3:  # metadata first, then the disk fills
            _enospc()
        return await real_set(self, key, value)

    monkeypatch.setattr(zarr.storage.LocalStore, "set", full)
    with pytest.raises(OutputError, match="No space left on device") as e:
        to_zarr(ds, tmp_path / "o_cal.zarr")
    assert isinstance(e.value, OSError)
    assert calls["n"] > 3
    assert os.listdir(tmp_path) == []
