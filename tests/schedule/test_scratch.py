"""romanxr.schedule.scratch: one private directory per run, safe against planted symlinks,
removed on exit and on signals, and swept by the next run after a kill -9."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from romanxr.schedule import scratch

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX /proc")

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("ROMANXR_TMPDIR", "TMPDIR")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _python(code: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


MAKE_AND_WAIT = """
import signal, sys, time
from romanxr.schedule import scratch
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (not inherited)
path = scratch.run_dir()
open(path + "/file", "wb").close()
print(path, flush=True)
time.sleep(60)
"""


def _start_run(**env: str) -> tuple[subprocess.Popen, Path]:
    proc = _python(MAKE_AND_WAIT, **env)
    line = proc.stdout.readline().strip()
    assert line, proc.stderr.read()
    return proc, Path(line)


def test_run_directory_is_private_under_romanxr_tmpdir_then_tmpdir(tmp_path):
    first, second = tmp_path / "romanxr", tmp_path / "tmp"
    first.mkdir()
    second.mkdir()
    for env, where in (
        ({"ROMANXR_TMPDIR": str(first), "TMPDIR": str(second)}, first),
        ({"TMPDIR": str(second)}, second),
    ):
        proc, path = _start_run(**env)
        try:
            assert path.parent == where
            assert path.name.startswith(f"romanxr-{proc.pid}-")
            assert stat.S_IMODE(path.stat().st_mode) == 0o700
        finally:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_run_directory_removed_on_signals_then_default_behaviour(tmp_path, sig):
    proc, path = _start_run(ROMANXR_TMPDIR=str(tmp_path))
    assert path.is_dir()
    proc.send_signal(sig)
    rc = proc.wait(timeout=30)
    # the usual outcome of the signal: killed by it (for SIGINT: KeyboardInterrupt, which
    # Python ends by dying of SIGINT)
    assert rc == -sig
    assert not path.exists()


def test_run_directory_removed_at_exit(tmp_path):
    proc = _python(
        "from romanxr.schedule import scratch; print(scratch.run_dir())",
        ROMANXR_TMPDIR=str(tmp_path),
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.strip().startswith(str(tmp_path)) and not Path(out.strip()).exists()


def test_kill_9_leaves_a_directory_that_the_next_run_sweeps(tmp_path):
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    (victim_dir / "keep").write_text("precious")
    (tmp_path / "romanxr-999999999-x-planted").symlink_to(victim_dir)  # never followed
    live, live_path = _start_run(ROMANXR_TMPDIR=str(tmp_path))
    killed, killed_path = _start_run(ROMANXR_TMPDIR=str(tmp_path))
    # a live pid with another start time is a dead run whose pid was reused
    reused = tmp_path / f"romanxr-{live.pid}-{scratch.start_token(live.pid)}9-reused"
    reused.mkdir()
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert (killed_path / "file").exists()  # nothing could clean up
        nxt = _python(
            "from romanxr.schedule import scratch; print(scratch.run_dir())",
            ROMANXR_TMPDIR=str(tmp_path),
        )
        _, err = nxt.communicate(timeout=60)
        assert nxt.returncode == 0, err
        assert not killed_path.exists() and not reused.exists()
        assert (live_path / "file").exists()  # a run still going is never swept
        assert (victim_dir / "keep").read_text() == "precious"
        assert (tmp_path / "romanxr-999999999-x-planted").is_symlink()
    finally:
        live.kill()
        live.wait()


def test_temporary_file_is_unnamed_and_exclusive(tmp_path, monkeypatch):
    monkeypatch.setenv("ROMANXR_TMPDIR", str(tmp_path))
    scratch.cleanup()
    try:
        with scratch.temporary_file("t-") as fh:
            fh.write(b"abc")
            os.pwrite(fh.fileno(), b"Z", 1)
            assert os.pread(fh.fileno(), 3, 0) == b"aZc"
            assert list(Path(scratch.run_dir()).iterdir()) == []  # unlinked at once
    finally:
        scratch.cleanup()
    assert list(tmp_path.iterdir()) == []


PLANTED_RUN = """
import os, sys, threading, time
from pathlib import Path
import numpy as np
from romanxr.schedule import scratch
from romanxr.steps.refpix import refpix
from tests.unit._ramp_factory import make_ramp, write_refpix_reference
from romanxr.kernels import refpix as K

victim = Path(sys.argv[1])
work = Path(sys.argv[2])
rng = np.random.default_rng(3)
ny, nch = 16, 2
data = rng.normal(1000, 20, (3, ny, nch * 128)).astype(np.float32)
amp33 = rng.integers(900, 1100, (3, ny, 128)).astype(np.uint16)
ds = make_ramp(data, amp33=amp33, borders=True)
m = K.spectrum_length(ny)
g, z, a = ((rng.normal(size=(nch, m)) + 1j * rng.normal(size=(nch, m))) * 1e-3 for _ in range(3))
ref = write_refpix_reference(work / "refpix.asdf", g, z, a)
eager = refpix(ds, override_refpix=ref)
lazy = refpix(ds.chunk({"y": 4}), override_refpix=ref)
run = Path(scratch.run_dir())
seen, planted, stop = set(), [0], threading.Event()

def plant(name):
    try:
        os.symlink(victim, name)
        planted[0] += 1
    except OSError:
        pass

def watch():
    while not stop.is_set():
        for entry in os.listdir(run):
            base = entry.split(".f32")[0] + ".f32" if ".f32" in entry else entry
            seen.add(base)
        for base in list(seen):
            for name in (base, base + ".reads"):
                plant(run / name)
        for name in ("romanxr-refpix-x-0.f32", "romanxr-refpix-x-0.f32.reads"):
            plant(Path(os.environ["ROMANXR_TMPDIR"]) / name)
        time.sleep(0.0005)

t = threading.Thread(target=watch, daemon=True)
t.start()
for _ in range(3):  # the names are known (and planted) from the first compute on
    np.testing.assert_array_equal(lazy.data.values, eager.data.values)
    np.testing.assert_array_equal(lazy.amp33.values, eager.amp33.values)
stop.set()
t.join()
print(len(seen), planted[0])
"""


def test_planted_symlinks_never_reach_their_target(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("do not touch")
    before = victim.stat()
    base = tmp_path / "tmp"
    base.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", PLANTED_RUN, str(victim), str(tmp_path)],
        env=_env(ROMANXR_TMPDIR=str(base)),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    n_names, n_planted = map(int, proc.stdout.split())
    assert n_names >= 1 and n_planted >= 3  # the watcher did plant at the scratch names
    assert victim.read_text() == "do not touch"
    after = victim.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    # the run's directory went at exit; only the watcher's links are left
    assert [p for p in base.iterdir() if not p.is_symlink()] == []


def test_another_process_on_this_machine_reads_a_file_by_its_path(tmp_path):
    """A LocalCluster worker process gets the path in its task: it reads the rows another
    process (the client, or another worker) wrote, and the last reader removes the file."""
    import numpy as np

    proc = _python(
        """
        import time
        import numpy as np
        from romanxr.schedule import scratch
        frames = [(np.full((6, 4), r) + np.arange(6)[:, None]).astype(np.float32) for r in range(2)]
        print(scratch.write_frames(scratch.scratch_path("piece.f32"), frames), flush=True)
        time.sleep(60)
        """,
        ROMANXR_TMPDIR=str(tmp_path),
    )
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith(str(tmp_path)), proc.stderr.read()
        rows = scratch.read_rows(path, (2, 6, 4), np.float32, slice(2, 5))
        expect = np.arange(2)[:, None, None] + np.arange(2, 5)[None, :, None] + np.zeros(4)
        np.testing.assert_array_equal(rows, expect)
        scratch.count_read(path, 2)
        assert os.path.exists(path)
        scratch.count_read(path, 2)
        assert not os.path.exists(path) and not os.path.exists(path + ".reads")
        assert scratch.read_rows(path, (2, 6, 4), np.float32, slice(2, 5)) is None  # recompute
    finally:
        proc.kill()
        proc.wait()


def test_a_session_that_goes_on_after_ctrl_c_keeps_its_directory(tmp_path):
    """Python's KeyboardInterrupt is left alone (a notebook goes on after it); the directory
    still goes when the process exits."""
    proc = _python(
        """
        import os, signal, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
        from romanxr.schedule import scratch
        path = scratch.run_dir()
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            print(path, os.path.isdir(path))
        """,
        ROMANXR_TMPDIR=str(tmp_path),
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    path, kept = out.split()
    assert kept == "True" and not Path(path).exists()
