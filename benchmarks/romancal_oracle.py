"""romancal 1.1.0 against romanxr on one simulated exposure, fully offline.

Usage::

    python benchmarks/romancal_oracle.py [--size 4096] [--folder F] [--seed 2026]

1. Simulates a ``size`` x ``size`` exposure and its reference set (``romanxr.testing``) and
   writes a local CRDS cache (``build_local_crds_cache``).
2. Runs romancal's ``ExposurePipeline`` on the uncal in a subprocess with no override at all:
   stpipe's CRDS look-up reads the cache through the real ``crds`` client (``CRDS_PATH`` etc.
   from ``cache.environ()``, serverless URL). source_catalog and tweakreg are skipped (they
   need real stars and catalogs); below 4096x4096 refpix and dark_decay are skipped as well
   (romancal only runs them on full frames). Prints romancal's per-step log summary, its
   warnings, wall time and peak RSS, and writes ``romancal/<name>_cal.asdf``.
3. Runs ``romanxr.pipeline.calibrate`` on the same uncal through the same cache (same steps
   skipped) in another subprocess: wall time, peak RSS, ``romanxr/<name>_cal.asdf``.
4. Compares the two cal files (data, err, dq, var_poisson) and the timings.

Peak RSS is per tool: each runs in its own child, started under GNU time
(``_measure.run_measured``; ``os.wait4`` would count this parent's memory into the
child). Wall time is measured inside the child around the pipeline call (imports and
interpreter start-up excluded; the child's total is printed too).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import run_measured

SKIP_ALWAYS = ("source_catalog", "tweakreg")
SKIP_SMALL = ("refpix", "dark_decay")

_STEP_RE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - stpipe\.step - INFO - "
    r"Step (?P<step>\w+) (?P<what>running|done)"
)


# ------------------------------------------------------------------------------------------
# children


def _child_romancal(uncal: Path, out: Path, skip: list[str], result: Path) -> None:
    from romancal.pipeline import ExposurePipeline

    steps = {name: {"skip": True} for name in skip}
    t0 = time.perf_counter()
    image = ExposurePipeline.call(str(uncal), steps=steps, save_results=False)
    image = image[0] if isinstance(image, tuple | list) else image
    t1 = time.perf_counter()
    image.save(out)
    t2 = time.perf_counter()
    result.write_text(
        json.dumps(
            {
                "pipeline_s": t1 - t0,
                "save_s": t2 - t1,
                "cal_step": {k: str(v) for k, v in image.meta.cal_step.items()},
                "ref_file": {
                    k: str(v) for k, v in image.meta.ref_file.items() if not isinstance(v, dict)
                },
                "crds_context": str(image.meta.ref_file.crds.context),
            }
        )
    )


def _child_romanxr(uncal: Path, out: Path, skip: list[str], result: Path) -> None:
    from romanxr.pipeline import calibrate

    t0 = time.perf_counter()
    cal = calibrate(uncal, steps={name: {"skip": True} for name in skip}, output=out)
    t1 = time.perf_counter()
    meta = cal.attrs["meta"]
    result.write_text(
        json.dumps(
            {
                "pipeline_s": t1 - t0,  # lazy graph + compute + write, all in one
                "cal_step": {k: str(v) for k, v in meta.get("cal_step", {}).items()},
                "ref_file": {
                    k: str(v)
                    for k, v in meta.get("ref_file", {}).items()
                    if not isinstance(v, dict)
                },
            }
        )
    )


# ------------------------------------------------------------------------------------------
# parent


def _run_child(tool: str, args: list[str], env: dict[str, str], log: Path) -> dict:
    """Run this script as ``--child tool``; return its JSON result plus wall/peak RSS."""
    result = log.with_suffix(".json")
    cmd = [sys.executable, __file__, "--child", tool, *args, "--result", str(result)]
    with log.open("w") as fh:
        u = run_measured(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if u.returncode != 0:
        tail = log.read_text().splitlines()[-30:]
        raise SystemExit(f"{tool} failed (exit {u.returncode}); log {log}:\n" + "\n".join(tail))
    info = json.loads(result.read_text())
    info["process_s"] = u.wall_s
    info["peak_rss_gib"] = u.peak_gib
    info["cpu_s"] = u.cpu_s
    return info


def _log_summary(log: Path) -> list[str]:
    """Per-step durations from stpipe's 'running'/'done' lines, plus warnings and errors."""
    from datetime import datetime

    def stamp(text: str) -> datetime:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f")

    started: dict[str, datetime] = {}
    lines: list[str] = []
    skipped: list[str] = []
    last = None
    for line in log.read_text().splitlines():
        m = _STEP_RE.match(line)
        if m:
            t = stamp(m["time"])
            if m["what"] == "running":
                started[m["step"]] = t
            elif m["step"] in started and m["step"] != "ExposurePipeline":
                took = (t - started[m["step"]]).total_seconds()
                lines.append(f"    {m['step']:18s} {took:7.1f} s")
            last = m["step"]
        elif line.endswith("Step skipped.") and last:
            skipped.append(last)
        elif " - WARNING - " in line or " - ERROR - " in line:
            msg = line.split(" - ", 3)[-1]
            if "on_disk is only supported" not in msg:
                lines.append(f"    ! {msg[:160]}")
    if skipped:
        lines.append(f"    skipped: {', '.join(dict.fromkeys(skipped))}")
    return lines


def _compare(rc_path: Path, xr_path: Path) -> list[str]:
    import numpy as np
    import roman_datamodels.datamodels as dm

    out = []
    with dm.open(rc_path) as rc, dm.open(xr_path) as xr:
        for key in ("data", "err", "var_poisson", "dq"):
            a = np.asarray(rc[key])
            b = np.asarray(xr[key])
            if a.shape != b.shape:
                out.append(f"  {key}: shapes differ {a.shape} vs {b.shape}")
                continue
            if key == "dq":
                diff = a != b
                bits = np.bitwise_or.reduce((a ^ b)[diff]) if diff.any() else 0
                per_bit = {
                    1 << i: int((((a ^ b) >> i) & 1).sum()) for i in range(32) if bits >> i & 1
                }
                out.append(
                    f"  dq: {int(diff.sum())} of {a.size} pixels differ; differing bits "
                    f"(bit: pixels) {per_bit}"
                )
                continue
            af, bf = a.astype(np.float64), b.astype(np.float64)
            same = (af == bf) | (np.isnan(af) & np.isnan(bf))
            both = np.isfinite(af) & np.isfinite(bf)
            d = np.abs(af - bf)[both]
            rel = d / np.maximum(np.abs(af[both]), 1e-30)
            nan_mismatch = int((np.isnan(af) != np.isnan(bf)).sum())
            line = (
                f"  {key} ({a.dtype}): {int((~same).sum())} of {a.size} differ; "
                f"max |diff| {d.max():.3g}, median rel diff of differing "
                f"{np.median(rel[~same[both]]) if (~same[both]).any() else 0:.2g}, "
                f"within rtol 1e-5: {100 * np.mean(rel <= 1e-5):.3f} %, NaN mismatch {nan_mismatch}"
            )
            if a.dtype == np.float16:
                ulp = np.spacing(np.abs(a[both]).astype(np.float16)).astype(np.float64)
                n_ulp = d / np.where(ulp > 0, ulp, 1)
                line += f", float16 ulps: max {n_ulp.max():.0f}, >1 ulp {int((n_ulp > 1).sum())}"
            out.append(line)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="frame size (default 4096)")
    parser.add_argument("--folder", type=Path, default=None, help="work folder (default: temp)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--child", choices=("romancal", "romanxr"), help=argparse.SUPPRESS)
    parser.add_argument("--uncal", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--skip", default="", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        skip = [s for s in args.skip.split(",") if s]
        child = _child_romancal if args.child == "romancal" else _child_romanxr
        child(args.uncal, args.out, skip, args.result)
        return

    import tempfile

    import numpy as np

    from romanxr.testing import make_detector, make_reference_set, simulate_exposure
    from romanxr.testing.crds_cache import build_local_crds_cache

    folder = args.folder or Path(tempfile.mkdtemp(prefix="romancal_oracle_"))
    folder = folder.absolute()
    folder.mkdir(parents=True, exist_ok=True)
    size = args.size
    full = size == 4096
    # romancal's refpix/dark_decay assume a 4096x4096 frame: below that, simulate neither
    # drift nor dark decay and skip both steps in both tools
    kwargs = {} if full else {"drift_amplitude": 0.0, "dark_decay_amplitude": 0.0}
    t0 = time.perf_counter()
    det = make_detector((size, size), seed=args.seed, **kwargs)
    refs = make_reference_set(folder / "references", det)
    cache = build_local_crds_cache(folder / "crds_cache", refs)
    (folder / "input").mkdir(exist_ok=True)
    sim = simulate_exposure(det, seed=args.seed, path=folder / "input")
    print(
        f"simulated {size}x{size}, {len(sim.truth.read_pattern)} resultants, "
        f"{len(sim.truth.jumps['y'])} jumps, references + CRDS cache ({cache.context}) "
        f"in {time.perf_counter() - t0:.1f} s; folder {folder}"
    )
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")

    skip_rc = list(SKIP_ALWAYS) + ([] if full else list(SKIP_SMALL))
    skip_xr = skip_rc  # the same steps: source_catalog and tweakreg run by default in both
    env = cache.environ()
    results = {}
    for tool, skip in (("romancal", skip_rc), ("romanxr", skip_xr)):
        (folder / tool).mkdir(exist_ok=True)
        out = folder / tool / sim.path.name.replace("_uncal", "_cal")
        if out.exists():
            out.unlink()
        log = folder / tool / "run.log"
        child_args = ["--uncal", str(sim.path), "--out", str(out), "--skip", ",".join(skip)]
        info = _run_child(tool, child_args, env, log)
        info["cal"] = out
        results[tool] = info
        print(f"\n== {tool}  (skipped: {', '.join(skip) or 'nothing'})")
        if tool == "romancal":
            print("  romancal log summary (per-step wall time from stpipe's log):")
            print("\n".join(_log_summary(log)))
        print(
            f"  pipeline wall {info['pipeline_s']:.1f} s (child process total "
            f"{info['process_s']:.1f} s, CPU {info['cpu_s']:.1f} s), peak RSS "
            f"{info['peak_rss_gib']:.2f} GiB"
        )
        steps = ", ".join(f"{k}={v}" for k, v in info["cal_step"].items())
        print(f"  cal_step: {steps}")
        refs_used = sorted({v for v in info["ref_file"].values() if v not in ("?", "N/A")})
        print(f"  references ({len(refs_used)}): {', '.join(r.split('/')[-1] for r in refs_used)}")
        print(f"  wrote {out}")

    rc, xr = results["romancal"], results["romanxr"]
    print(f"\n== comparison (romancal vs romanxr, {size}x{size})")
    print("\n".join(_compare(rc["cal"], xr["cal"])))
    print(
        f"  wall time: romancal {rc['pipeline_s']:.1f} s, romanxr {xr['pipeline_s']:.1f} s "
        f"-> romanxr is {rc['pipeline_s'] / xr['pipeline_s']:.2f}x romancal's speed"
    )
    print(
        f"  peak RSS: romancal {rc['peak_rss_gib']:.2f} GiB, romanxr "
        f"{xr['peak_rss_gib']:.2f} GiB (ratio {xr['peak_rss_gib'] / rc['peak_rss_gib']:.2f})"
    )

    import roman_datamodels.datamodels as dm

    truth = sim.truth.scene_rate
    for tool in ("romancal", "romanxr"):
        with dm.open(results[tool]["cal"]) as model:
            data = np.asarray(model.data)
            good = (np.asarray(model.dq) & 1) == 0
            ratio = np.nanmedian(data[good] / truth[good])
        print(f"  {tool}: median(slope / simulated rate) over good pixels {ratio:.4f}")


if __name__ == "__main__":
    main()
