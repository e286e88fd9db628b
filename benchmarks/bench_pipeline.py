"""End-to-end speed and memory of romanxr's Exposure Level Pipeline on a full-frame exposure.

Simulates one 4096x4096 8-resultant exposure with its reference set into a cache folder
(once; ``--reuse`` takes it from there), then runs, each in its own process so that peak RSS
belongs to one run:

* ``e2e``: the real thing, ``romanxr.calibrate(uncal, output=cal.asdf)``: one lazy graph,
  computed once by the writer, timed from just after ``import romanxr`` (so it includes
  importing the Roman data-model stack, ~1.5 s, when asdf first loads its extensions);
* ``e2e_stack`` (``--same-start``): the same, timed from the line romancal's run starts at:
  after the Roman data-model stack is imported (``import roman_datamodels``, which imports
  stpipe and crds; ``from romancal.pipeline import ExposurePipeline`` imports it before
  romancal's timer starts);
* ``steps`` (``--profile``): the same steps one by one, each output materialised (persisted)
  before the next, to attribute wall/CPU time and RSS to steps (the increase of the peak RSS
  over the previous step is printed; materialising costs memory the lazy run does not need);
* ``romancal`` (``--romancal``): romancal 1.1.0's ExposurePipeline on the same file with the
  same references (every reference overridden: no CRDS server), ``save_results=True``,
  ``source_catalog``/``tweakreg`` skipped (romanxr stops at the Level-2 image too).

Each is repeated ``--repeat`` times (default 3) and the median reported: the benchmark machine
is shared, so wall time is noisy; CPU time (user+sys of the process and its threads) is less so.

Examples::

    python benchmarks/bench_pipeline.py --reuse                # e2e, 3 repeats
    python benchmarks/bench_pipeline.py --reuse --profile      # + per-step breakdown
    python benchmarks/bench_pipeline.py --reuse --romancal --repeat 1
    python benchmarks/bench_pipeline.py --size 1024 --reuse    # a smaller frame
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import calibration_only, peak_rss_bytes  # noqa: E402

DEFAULT_CACHE = Path(
    os.environ.get("ROMANXR_BENCH_CACHE", Path.home() / ".cache" / "romanxr_bench")
)


def _peak_rss_gib() -> float:
    return peak_rss_bytes() / 2**30


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def prepare(folder: Path, size: int, reuse: bool) -> dict:
    """Simulate the exposure and write its references into ``folder`` (or reuse them)."""
    manifest = folder / "manifest.json"
    if reuse and manifest.exists():
        return json.loads(manifest.read_text())
    from romanxr.testing import make_detector, make_reference_set, simulate_exposure

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    det = make_detector((size, size), seed=2026)
    refs = make_reference_set(folder / "refs", det)
    sim = simulate_exposure(det, seed=2026, path=folder)
    info = {
        "uncal": str(sim.path),
        "overrides": refs.overrides(),
        "romancal_steps": refs.romancal_steps(skip=("source_catalog", "tweakreg")),
        "size": size,
    }
    manifest.write_text(json.dumps(info, indent=1))
    print(f"simulated {sim.path} in {time.perf_counter() - t0:.0f} s", flush=True)
    return info


# ------------------------------------------------------------------------------ child runs


def _step_row(step: str, t0: float, c0: float, peak: float, prev_peak: float) -> dict:
    """One line of the per-step table: time and CPU since (t0, c0), peak RSS and its growth."""
    return {
        "step": step,
        "wall": time.perf_counter() - t0,
        "cpu": _cpu() - c0,
        "rss": peak,
        "drss": peak - prev_peak,
    }


def _run_e2e(info: dict, out: Path, chunks: str | None, stack: bool = False) -> dict:
    import romanxr
    from romanxr.pipeline import calibrate

    if stack:  # romancal's timer starts after its import of the same stack
        import roman_datamodels  # noqa: F401

    if os.environ.get("ROMANXR_BENCH_TUNE_ALLOCATOR", "1") != "0":
        # what the romanxr command line does (romanxr.schedule); 0 measures glibc's defaults
        from romanxr.schedule import tune_allocator

        tune_allocator()

    ck = json.loads(chunks) if chunks else "default"
    t0, c0 = time.perf_counter(), _cpu()
    ds = romanxr.open_uncal(info["uncal"], chunks=ck)
    calibrate(ds, output=out, overwrite=True, overrides=info["overrides"], steps=calibration_only())
    return {
        "wall": time.perf_counter() - t0,
        "cpu": _cpu() - c0,
        "rss": _peak_rss_gib(),
    }


def _run_steps(info: dict, out: Path, chunks: str | None) -> dict:
    """The pipeline one step at a time, each step's output persisted before the next."""
    import dask

    import romanxr
    from romanxr.pipeline import RUN, plan, write
    from romanxr.refs import ReferenceResolver

    ck = json.loads(chunks) if chunks else "default"
    resolver = ReferenceResolver(overrides=info["overrides"])
    rows = []
    t_start, c_start = time.perf_counter(), _cpu()
    ds = romanxr.open_uncal(info["uncal"], chunks=ck)
    prev_peak = _peak_rss_gib()
    rows.append(_step_row("open", t_start, c_start, prev_peak, prev_peak))
    for run in plan(calibration_only(), ds, check_saturated=False):
        if run.action != RUN:  # jump runs inside ramp_fit, as calibrate() does
            continue
        t0, c0 = time.perf_counter(), _cpu()
        ds = run.spec.apply(ds, run.arguments, resolver)
        (ds,) = dask.persist(ds)
        peak = _peak_rss_gib()
        rows.append(_step_row(run.name, t0, c0, peak, prev_peak))
        prev_peak = peak
    t0, c0 = time.perf_counter(), _cpu()
    write(ds, out, overwrite=True)
    peak = _peak_rss_gib()
    rows.append(_step_row("write", t0, c0, peak, prev_peak))
    return {
        "steps": rows,
        "wall": time.perf_counter() - t_start,
        "cpu": _cpu() - c_start,
        "rss": peak,
    }


def _run_romancal(info: dict, out: Path) -> dict:
    import logging

    import stpipe.crds_client

    logging.disable(logging.INFO)
    # every reference is overridden: stpipe only asks CRDS for the context name to record it
    stpipe.crds_client.get_context_used = lambda observatory: "roman_0000.pmap"
    os.environ["STPIPE_DISABLE_CRDS_STEPPARS"] = "True"
    from romancal.pipeline import ExposurePipeline

    t0, c0 = time.perf_counter(), _cpu()
    ExposurePipeline.call(
        info["uncal"], steps=info["romancal_steps"], save_results=True, output_dir=str(out.parent)
    )
    return {"wall": time.perf_counter() - t0, "cpu": _cpu() - c0, "rss": _peak_rss_gib()}


def child(mode: str, manifest: Path, out: Path, chunks: str | None) -> None:
    info = json.loads(manifest.read_text())
    if mode in ("e2e", "e2e_stack"):
        result = _run_e2e(info, out, chunks, stack=mode == "e2e_stack")
    elif mode == "steps":
        result = _run_steps(info, out, chunks)
    else:
        result = _run_romancal(info, out)
    print("RESULT " + json.dumps(result), flush=True)


def run_child(cmd: list[str], label: str) -> dict:
    """Run one measurement in a fresh process; the dict it printed as ``RESULT {json}``."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{label} run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")


def _spawn(mode: str, folder: Path, out: Path, chunks: str | None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--cache", str(folder), "--out", str(out)]
    if chunks:
        cmd += ["--chunks", chunks]
    return run_child(cmd, mode)


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cache", type=Path, default=None, help="simulation folder")
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--reuse", action="store_true", help="reuse a cached simulation")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--profile", action="store_true", help="also the per-step breakdown")
    p.add_argument("--romancal", action="store_true", help="also run romancal 1.1.0")
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end romanxr run")
    p.add_argument(
        "--same-start",
        action="store_true",
        help="also e2e timed after importing roman_datamodels (where romancal's timer starts)",
    )
    p.add_argument("--chunks", default=None, help='JSON chunks for open_uncal, e.g. {"y": 512}')
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    folder = args.cache or DEFAULT_CACHE / f"pipeline_{args.size}"
    if args.child:
        child(args.child, folder / "manifest.json", args.out, args.chunks)
        return
    info = prepare(folder, args.size, args.reuse)
    import dask

    print(
        f"input {info['uncal']} ({Path(info['uncal']).stat().st_size / 2**20:.0f} MiB); "
        f"{os.cpu_count()} CPUs, dask {dask.__version__}, load {os.getloadavg()[0]:.1f}"
    )
    results: dict[str, list[dict]] = {}
    modes = ([] if args.no_e2e else ["e2e"]) + (["e2e_stack"] if args.same_start else [])
    modes += ["steps"] if args.profile else []
    modes += ["romancal"] if args.romancal else []
    for mode in modes:
        out_dir = folder / f"out_{mode}"
        out_dir.mkdir(exist_ok=True)
        out = out_dir / "bench_cal.asdf"
        runs = []
        for i in range(args.repeat):
            r = _spawn(mode, folder, out, args.chunks)
            runs.append(r)
            print(
                f"  {mode} run {i + 1}: wall {r['wall']:.1f} s, CPU {r['cpu']:.1f} s, "
                f"peak RSS {r['rss']:.2f} GiB",
                flush=True,
            )
        results[mode] = runs
    print()
    print(
        f"{'run':10s} {'wall s':>8s} {'CPU s':>8s} {'peak RSS GiB':>13s}   (median of "
        f"{args.repeat})"
    )
    for mode, runs in results.items():
        print(
            f"{mode:10s} {_median(runs, 'wall'):8.1f} {_median(runs, 'cpu'):8.1f} "
            f"{_median(runs, 'rss'):13.2f}"
        )
    if "steps" in results:
        print("\nper step (materialised after each; median):")
        print(f"  {'step':16s} {'wall s':>8s} {'CPU s':>8s} {'peak GiB':>9s} {'+peak GiB':>10s}")
        names = [row["step"] for row in results["steps"][0]["steps"]]
        for i, name in enumerate(names):
            rows = [r["steps"][i] for r in results["steps"]]
            print(
                f"  {name:16s} {_median(rows, 'wall'):8.2f} {_median(rows, 'cpu'):8.2f} "
                f"{_median(rows, 'rss'):9.2f} {_median(rows, 'drss'):10.2f}"
            )
    for mode in ("e2e", "e2e_stack"):
        if "romancal" in results and mode in results:
            rc, rx = results["romancal"], results[mode]
            print(
                f"\nromancal / romanxr {mode}: "
                f"wall x{_median(rc, 'wall') / _median(rx, 'wall'):.2f}, "
                f"CPU x{_median(rc, 'cpu') / _median(rx, 'cpu'):.2f}, "
                f"peak RSS x{_median(rc, 'rss') / _median(rx, 'rss'):.2f}"
            )


if __name__ == "__main__":
    main()
