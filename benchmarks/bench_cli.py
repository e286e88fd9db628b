"""``romanxr calibrate`` against romancal's ``strun`` as whole processes, on any Level-1 file.

Usage::

    python benchmarks/bench_cli.py                             # the default full frame
    python benchmarks/bench_cli.py --input X_uncal.asdf --refs DIR  # any L1 file (romanisim's)
    python benchmarks/bench_cli.py --default-scene --input X_uncal.asdf --refs DIR  # both, one run
    python benchmarks/bench_cli.py --size 512 --repeat 5       # a small exposure

What a user types is what is timed: both commands run from the shell's point of view (start-up,
imports, reading, calibrating, writing the cal.asdf), each under GNU time (wall, user+sys CPU,
peak RSS of the largest process; ``_measure.run_measured``), alternately, ``--repeat`` times;
medians are printed with the ratios romancal / romanxr.

Both get every reference overridden (``--steps.<step>.override_<reftype>=FILE``, strun's
spelling, which ``romanxr calibrate`` takes as well) and the same environment: a local CRDS
cache of those files (``romanxr.testing.build_local_crds_cache``), which stpipe needs for its
context name and its step-parameter look-ups, and so does romanxr. ``--refs DIR``
takes the reference files of a folder by their ``meta.reftype``; without ``--input`` the
benchmark's own simulated exposure and reference set are used (``bench_pipeline.prepare``,
cached; ``--size`` picks the frame). source_catalog and tweakreg are skipped in both (no
catalogue); below 4096 x 4096 refpix and dark_decay too (romancal runs them on full frames only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import run_measured  # noqa: E402

ALWAYS_SKIPPED = ("source_catalog", "tweakreg")
FULL_FRAME_ONLY = ("refpix", "dark_decay")


def references_in(folder: Path) -> dict[str, str]:
    """reftype -> file, for every Roman reference file in ``folder`` (by its meta.reftype)."""
    import asdf

    found: dict[str, str] = {}
    for path in sorted(folder.glob("*.asdf")):
        with asdf.open(path, lazy_load=True, memmap=False) as af:
            reftype = str(af.tree.get("roman", {}).get("meta", {}).get("reftype", "")).lower()
        if reftype:
            if reftype in found:
                raise SystemExit(f"{folder}: two {reftype} references ({found[reftype]}, {path})")
            found[reftype] = str(path)
    if not found:
        raise SystemExit(f"{folder}: no Roman reference files (*.asdf with meta.reftype)")
    return found


def step_options(references: dict[str, str], size: int) -> list[str]:
    """strun-style options overriding every reference and skipping what both tools skip."""
    from romanxr.testing.references import ROMANCAL_STEP_REFTYPES

    options = []
    for step, reftypes in ROMANCAL_STEP_REFTYPES.items():
        for reftype in reftypes:
            if reftype in references:
                options.append(f"--steps.{step}.override_{reftype}={references[reftype]}")
    skipped = ALWAYS_SKIPPED + (FULL_FRAME_ONLY if size < 4096 else ())
    return options + [f"--steps.{step}.skip=true" for step in skipped]


def commands(uncal: Path, out: Path, options: list[str]) -> dict[str, list[str]]:
    """The two commands, with this interpreter's console scripts."""
    bin_dir = Path(sys.executable).parent
    romanxr = shutil.which("romanxr", path=str(bin_dir)) or "romanxr"
    strun = shutil.which("strun", path=str(bin_dir)) or "strun"
    return {
        "romanxr": [
            romanxr,
            "calibrate",
            str(uncal),
            "--output_dir",
            str(out / "romanxr"),
            *options,
        ],
        "romancal": [
            strun,
            "roman_elp",
            str(uncal),
            "--output_dir",
            str(out / "romancal"),
            *options,
        ],
    }


def frame_size(uncal: Path) -> int:
    """The number of rows of the exposure's frame (border included)."""
    import romanxr

    return int(romanxr.open_uncal(uncal).sizes["y"])


def run_case(uncal: Path, references: dict, out: Path, tools: list[str], repeat: int) -> dict:
    """Time ``tools`` on one input, alternately, ``repeat`` times; print and return the runs."""
    size = frame_size(uncal)
    cmds = commands(uncal, out, step_options(references, size))
    from romanxr.testing.crds_cache import build_local_crds_cache

    env = build_local_crds_cache(out / "crds_cache", references).environ()
    print(f"{uncal} ({size}^2), {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    runs: dict[str, list[dict]] = {tool: [] for tool in tools}
    for i in range(repeat):
        for tool in tools:  # alternately, so that a change of load hits both
            folder = out / tool
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            with open(folder.parent / f"{tool}.log", "w") as log:
                usage = run_measured(cmds[tool], env=env, stdout=log, stderr=subprocess.STDOUT)
            if usage.returncode != 0:
                raise SystemExit(f"{tool} failed (exit {usage.returncode}): see {log.name}")
            row = {"wall": usage.wall_s, "cpu": usage.cpu_s, "peak_gib": usage.peak_gib}
            runs[tool].append(row)
            print(
                f"  {tool:8s} run {i + 1}: {row['wall']:7.1f} s wall {row['cpu']:7.1f} s CPU "
                f"{row['peak_gib']:5.2f} GiB",
                flush=True,
            )
    med = {t: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for t, rs in runs.items()}
    for tool, m in med.items():
        print(
            f"{tool:8s} median: {m['wall']:.1f} s wall, {m['cpu']:.1f} s CPU, "
            f"{m['peak_gib']:.2f} GiB"
        )
    if "romancal" in med:
        rc, rx = med["romancal"], med["romanxr"]
        print(
            f"romancal / romanxr: wall x{rc['wall'] / rx['wall']:.1f}, CPU "
            f"x{rc['cpu'] / rx['cpu']:.1f}, peak memory x{rc['peak_gib'] / rx['peak_gib']:.1f}"
        )
    return {"input": str(uncal), "size": size, "runs": runs, "medians": med}


def cases(args: argparse.Namespace) -> list[tuple[Path, dict]]:
    """(uncal, reftype -> file) of each input: the simulated default, then each --input."""
    inputs = args.input or []
    refs = args.refs or []
    if inputs and len(refs) not in (1, len(inputs)):
        raise SystemExit("give one --refs DIR for all the --input files, or one per --input")
    found = []
    if not inputs or args.default_scene:
        from bench_pipeline import DEFAULT_CACHE, prepare

        info = prepare(DEFAULT_CACHE / f"pipeline_{args.size}", args.size, reuse=True)
        found.append((Path(info["uncal"]), info["overrides"]))
    for n, uncal in enumerate(inputs):
        found.append((uncal, references_in(refs[n if len(refs) > 1 else 0])))
    return found


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--input", type=Path, action="append", help="a Level-1 *_uncal.asdf (repeatable)"
    )
    p.add_argument(
        "--refs", type=Path, action="append", help="folder of the reference files for --input"
    )
    p.add_argument(
        "--default-scene",
        action="store_true",
        help="time the simulated default too (first), when --input is given",
    )
    p.add_argument("--size", type=int, default=4096, help="frame of the simulated default")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-romancal", action="store_true", help="time romanxr only")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: beside input)")
    p.add_argument("--json", type=Path, help="also write every run here")
    args = p.parse_args(argv)
    if args.input and not args.refs:
        raise SystemExit("--input needs --refs DIR (the reference files to override with)")
    tools = ["romanxr"] + ([] if args.no_romancal else ["romancal"])
    results = []
    for uncal, references in cases(args):
        out = (args.out / uncal.stem) if args.out else uncal.parent / "bench_cli_out"
        results.append(run_case(uncal, references, out, tools, args.repeat))
    if args.json:
        args.json.write_text(json.dumps({"cases": results}, indent=1))


if __name__ == "__main__":
    main()
