"""A whole WFI exposure through the ``romanxr calibrate`` command, against romancal 1.1.0.

Usage::

    python benchmarks/bench_exposure.py                      # 18 full-frame detectors
    python benchmarks/bench_exposure.py --n 4 --size 1024    # smaller
    python benchmarks/bench_exposure.py --cache DIR          # reuse a simulated exposure
    python benchmarks/bench_exposure.py --romancal-runs 0    # skip romancal

1. Simulates ``--n`` detectors of one exposure with their references and a local CRDS cache
   (:func:`romanxr.testing.simulate_wfi_exposure`), or reuses ``--cache``.
2. Runs the command line as whole processes, each measured under GNU time (wall, user +
   system CPU, peak RSS of the largest process and of the whole process tree, see
   ``_measure.run_measured``): one detector alone; all detectors in one command
   (``romanxr calibrate <files...> --output_dir D``); the same with ``--workers 2``. Where
   the installed ``romanxr calibrate`` takes one file only (exit 2 on several), it falls back
   to one process per file (one after another, or two at a time for ``--workers 2``) and says
   so.
3. Runs romancal's ExposurePipeline with ``strun`` on ``--romancal-runs`` of the files (one
   after another, through the same CRDS cache) and scales its mean to all detectors.
4. Prints detectors per hour for both.

source_catalog and tweakreg are skipped for both tools (simulated stars, no catalogue); below
4096 x 4096 refpix and dark_decay too (romancal runs them on full frames only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import run_measured  # noqa: E402

SKIP_ALWAYS = ("source_catalog", "tweakreg")
SKIP_SMALL = ("refpix", "dark_decay")


@dataclass
class Run:
    """One measured process (or a group of them run as one job)."""

    label: str
    wall: float
    cpu: float
    peak_gib: float
    detectors: int
    note: str = ""

    @property
    def per_hour(self) -> float:
        """Detectors calibrated per hour of wall time."""
        return detectors_per_hour(self.detectors, self.wall)


def detectors_per_hour(detectors: int, wall_s: float) -> float:
    """Throughput: ``detectors`` done in ``wall_s`` seconds, per hour."""
    return float("nan") if wall_s <= 0 else 3600.0 * detectors / wall_s


def skipped_steps(size: int) -> list[str]:
    """Steps both tools skip at this frame size."""
    return list(SKIP_ALWAYS) + ([] if size >= 4096 else list(SKIP_SMALL))


def romanxr_command(files: list[Path], output_dir: Path, size: int, workers: int = 0) -> list:
    """``romanxr calibrate`` on ``files`` (the console script of this interpreter)."""
    cmd = [sys.executable, "-m", "romanxr.cli", "calibrate", *map(str, files)]
    cmd += ["--output_dir", str(output_dir)]
    cmd += [f"--steps.{step}.skip=True" for step in skipped_steps(size)]
    if workers:
        cmd += ["--workers", str(workers)]
    return cmd


def strun_command(file: Path, output_dir: Path, size: int) -> list:
    """romancal 1.1.0's ``strun`` on one file."""
    strun = Path(sys.executable).with_name("strun")
    cmd = [str(strun), "romancal.pipeline.ExposurePipeline", str(file)]
    cmd += [f"--steps.{step}.skip=True" for step in skipped_steps(size)]
    return [*cmd, "--output_dir", str(output_dir)]


def takes_one_file_only(returncode: int, output: str) -> bool:
    """Whether a ``romanxr calibrate`` run refused several inputs (the pre-batch CLI)."""
    return returncode != 0 and "one input file" in output


def scale(runs: list[Run], detectors: int) -> Run:
    """The mean of single-detector runs scaled to ``detectors`` run one after another."""
    k = detectors / len(runs)
    return Run(
        label=f"romancal x{detectors} (scaled from {len(runs)})",
        wall=k * sum(r.wall for r in runs),
        cpu=k * sum(r.cpu for r in runs),
        peak_gib=max(r.peak_gib for r in runs),
        detectors=detectors,
    )


def measure(cmd: list, env: dict, log: Path) -> tuple[int, float, float, float]:
    """Run ``cmd``; exit code, wall s, CPU s and peak RSS GiB (process tree) of the command."""
    with log.open("w") as fh:
        u = run_measured(cmd, env=env, stdout=fh, stderr=fh)
    return u.returncode, u.wall_s, u.cpu_s, u.peak_gib


def _one_per_file(
    label: str, files: list[Path], out: Path, size: int, env: dict, parallel: int
) -> Run:
    """Fallback: one ``romanxr calibrate`` process per file, ``parallel`` at a time."""
    t0 = time.perf_counter()
    peaks: list[float] = []
    cpu = 0.0

    def one(f: Path) -> None:
        nonlocal cpu
        u = run_measured(romanxr_command([f], out, size), env=env, stdout=subprocess.DEVNULL)
        if u.returncode != 0:
            raise SystemExit(f"{label}: romanxr calibrate failed on {f}")
        cpu += u.cpu_s
        peaks.append(u.peak_gib)

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, files))
    wall = time.perf_counter() - t0
    peak = sum(sorted(peaks)[-parallel:])  # at most `parallel` processes at once
    note = f"fallback: one process per file, {parallel} at a time"
    return Run(label, wall, cpu, peak, len(files), note)


def run_romanxr(label: str, files: list[Path], out: Path, size: int, env: dict, workers: int):
    """All ``files`` in one command, else the one-process-per-file fallback."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    log = out / "romanxr.log"
    code, wall, cpu, peak = measure(romanxr_command(files, out, size, workers), env, log)
    text = log.read_text()
    if code != 0 and len(files) > 1 and takes_one_file_only(code, text):
        return _one_per_file(label, files, out, size, env, max(1, workers))
    if code != 0 and workers and "--workers" in text:
        return _one_per_file(label, files, out, size, env, workers)
    if code != 0:
        raise SystemExit(f"{label} failed (exit {code}); log {log}:\n{text[-3000:]}")
    return Run(label, wall, cpu, peak, len(files))


def _row(r: Run) -> None:
    print(
        f"{r.label:38s} {r.detectors:4d} {r.wall:9.1f} {r.cpu:9.1f} {r.peak_gib:9.2f} "
        f"{r.per_hour:10.1f}  {r.note}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=18, help="detectors (1 to 18)")
    p.add_argument("--size", type=int, default=4096, help="frame size with the border")
    p.add_argument("--cache", type=Path, default=None, help="folder of a simulated exposure")
    p.add_argument("--romancal-runs", type=int, default=2, help="files romancal runs on")
    p.add_argument("--seed", type=int, default=2026)
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from romanxr.testing.wfi_exposure import simulate_wfi_exposure

    folder = args.cache or Path(os.environ.get("TMPDIR", "/tmp")) / f"romanxr_exposure_{args.size}"
    manifest = folder / "manifest.json"
    if manifest.exists() and len(json.loads(manifest.read_text())["files"]) == args.n:
        info = json.loads(manifest.read_text())
        print(f"reusing {folder}")
    else:
        t0 = time.perf_counter()
        sim = simulate_wfi_exposure(
            folder,
            range(1, args.n + 1),
            shape=(args.size, args.size),
            seed=args.seed,
            keep_truth=False,
        )
        info = {"files": [str(p) for p in sim.paths], "env": sim.crds_cache.environ()}
        manifest.write_text(json.dumps(info))
        print(f"simulated {args.n} detectors in {time.perf_counter() - t0:.0f} s")
    files, env = [Path(f) for f in info["files"]], info["env"]
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, {args.n} x {args.size}^2")
    print(
        f"{'run':38s} {'det':>4s} {'wall s':>9s} {'CPU s':>9s} {'peak GiB':>9s} {'det/hour':>10s}"
    )
    single = run_romanxr("romanxr, 1 detector", files[:1], folder / "out_1", args.size, env, 0)
    _row(single)
    batch = run_romanxr("romanxr, all in one command", files, folder / "out_n", args.size, env, 0)
    _row(batch)
    two = run_romanxr("romanxr --workers 2", files, folder / "out_w2", args.size, env, 2)
    _row(two)
    print(
        f"all-in-one wall / ({args.n} x single wall) = {batch.wall / (args.n * single.wall):.2f}; "
        f"peak / single peak = {batch.peak_gib / single.peak_gib:.2f}"
    )
    if args.romancal_runs:
        rc_runs = []
        for f in files[: args.romancal_runs]:
            out = folder / "out_romancal"
            out.mkdir(exist_ok=True)
            code, wall, cpu, peak = measure(
                strun_command(f, out, args.size), env, out / f"{f.stem}.log"
            )
            if code != 0:
                raise SystemExit(f"strun failed on {f} (exit {code}); see {out}")
            rc_runs.append(Run(f"romancal strun {f.name.split('_')[2]}", wall, cpu, peak, 1))
            _row(rc_runs[-1])
        rc = scale(rc_runs, args.n)
        _row(rc)
        print(f"detectors per hour: romanxr {batch.per_hour:.1f}, romancal {rc.per_hour:.1f}")


if __name__ == "__main__":
    main()
