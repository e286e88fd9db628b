"""kill -9 of ``romanxr calibrate`` at random moments: nothing of a killed run survives.

Simulates one exposure (``--size`` pixels square, border included) with its references and an
offline CRDS cache, times one complete CLI run, then ``--kills`` times starts the same run
and kills it (SIGKILL) after a random delay in ``[0, full run time]``. After each kill it checks
that the output path holds no partial file (absent, or a complete cal.asdf from an earlier
run that opens and has the full shape). A last run goes to the end; afterwards the scratch
folder (``ROMANXR_TMPDIR``) must be empty and the output folder must hold only the output:
the next run swept every killed run's scratch directory and hidden temporary.

Run: ``python benchmarks/kill9_sweep.py --size 512 --kills 20 --seed 1``
(not part of the test suite: minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _prepare(folder: Path, size: int):
    from romanxr.testing import make_detector, make_reference_set, simulate_exposure
    from romanxr.testing.crds_cache import build_local_crds_cache

    detector = make_detector((size, size), seed=3)
    references = make_reference_set(folder / "references", detector)
    cache = build_local_crds_cache(folder / "crds_cache", references)
    (folder / "data").mkdir()
    sim = simulate_exposure(detector, seed=3, path=folder / "data")
    return sim.path, cache.environ()


def _start(uncal: Path, target: Path, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "romanxr.cli", "calibrate", str(uncal), "-o", str(target)]
    return subprocess.Popen(
        [*command, "--no-progress"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _output_state(target: Path, shape: tuple[int, int]) -> str:
    """'absent', 'complete', or 'PARTIAL' (a file at the final name that does not open whole)."""
    if not target.exists():
        return "absent"
    import romanxr

    try:
        ds = romanxr.open_cal(target)
        ok = ds["data"].shape == shape and bool(ds["data"].notnull().any())
    except Exception:
        ok = False
    return "complete" if ok else "PARTIAL"


def _leftovers(scratch: Path, out_dir: Path, target: Path) -> dict[str, list[str]]:
    return {
        "scratch": sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*")),
        "output_dir": sorted(p.name for p in out_dir.iterdir() if p != target),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="kill9-") as tmp:
        work = Path(tmp)
        uncal, crds_env = _prepare(work / "exposure", args.size)
        scratch, out_dir = work / "scratch", work / "out"
        scratch.mkdir()
        out_dir.mkdir()
        target = out_dir / "r_cal.asdf"
        env = dict(os.environ, PYTHONPATH=str(ROOT), ROMANXR_TMPDIR=str(scratch), **crds_env)
        shape = (args.size - 8, args.size - 8)

        t0 = time.perf_counter()
        first = _start(uncal, target, env)
        _, err = first.communicate(timeout=1800)
        full = time.perf_counter() - t0
        if first.returncode != 0:
            print(err.decode()[-3000:], file=sys.stderr)
            return 1
        target.unlink()  # the sweep starts with no output, so a partial one would show

        kills, states, left_after_kill = [], {}, []
        for _ in range(args.kills):
            delay = rng.uniform(0.0, full)
            proc = _start(uncal, target, env)
            time.sleep(delay)
            finished = proc.poll() is not None
            if not finished:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            state = _output_state(target, shape)
            states[state] = states.get(state, 0) + 1
            kills.append({"delay_s": round(delay, 2), "finished_first": finished, "output": state})
            left = _leftovers(scratch, out_dir, target)
            left_after_kill.append(len(left["scratch"]) + len(left["output_dir"]))

        last = _start(uncal, target, env)
        _, err = last.communicate(timeout=1800)
        left = _leftovers(scratch, out_dir, target)
        figures = {
            "size": args.size,
            "full_run_s": round(full, 1),
            "kills": len(kills),
            "killed_mid_run": sum(not k["finished_first"] for k in kills),
            "output_after_kill": states,
            "max_leftover_entries_while_killed": max(left_after_kill, default=0),
            "last_run_exit": last.returncode,
            "left_after_next_run": left,
            "final_output": _output_state(target, shape),
            "runs": kills,
        }
    print(json.dumps({k: v for k, v in figures.items() if k != "runs"}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    bad = (
        states.get("PARTIAL", 0)
        or last.returncode != 0
        or left["scratch"]
        or left["output_dir"]
        or figures["final_output"] != "complete"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
