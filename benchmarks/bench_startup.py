"""Start-up and small-size figures of issue #19, each measured as a whole process.

Every case runs ``--repeat`` times (default 5) in a fresh process; the table gives the median
wall time, the median CPU time (user + system) and the median peak RSS of the child, both from
``/usr/bin/time``. Cases:

* ``import``: ``python -c "import romanxr"``; ``import_xarray``: ``import romanxr, xarray``
  (what registering ``ds.roman`` costs once xarray is there);
* ``help`` / ``calibrate_help``: ``romanxr --help`` / ``romanxr calibrate -h``;
* ``cli_256`` / ``cli_512``: ``romanxr calibrate`` of a simulated 256² / 512² cut-out
  (``romanxr.testing``), every reference overridden, refpix and dark_decay skipped, like the
  issue's table (numba cache warm: one unmeasured run first);
* ``strun_512``: romancal 1.1.0 ``strun roman_elp`` on the same 512² file and arguments
  (source_catalog and tweakreg skipped as well; a local CRDS cache answers the context
  lookup, no network);
* ``python_512``: ``romanxr.calibrate`` of the 512² exposure loaded in memory, warm: one
  process, one unmeasured call, then ``--repeat`` timed calls (wall and process CPU time);
* ``cold_256``: ``romanxr calibrate`` of the 256² cut-out with ``NUMBA_CACHE_DIR`` pointing
  at a fresh empty folder each run (the first run after an install); its CPU time includes
  the helper process that compiles the ramp-fit kernel meanwhile
  (:mod:`romanxr.schedule.compile_ahead`), which the command waits for;
* ``crds_256``: ``romanxr calibrate`` of the 256² cut-out with every reference (and the
  ``pars-*`` step parameters) looked up in the local CRDS cache instead of overridden, all
  steps run (numba cache warm): the CRDS lookups of a run, as ``make demo`` does them;
* ``demo`` / ``cold_demo``: ``romanxr demo`` (simulate a 256² exposure with its references
  and CRDS cache, calibrate, plot) in a fresh folder, numba cache warm / ``NUMBA_CACHE_DIR``
  a fresh empty folder each run (its CPU time includes the compile-ahead helper);
* ``warm`` / ``installed_demo``: ``romanxr warm`` on a fresh empty numba cache (what ``make``
  adds to an install) / ``romanxr demo`` right after it, on that cache (the first demo after
  ``make``'s install; the ``romanxr warm`` before each run is not measured);
* ``asdf_plugins`` / ``asdf_plugins_plain``: building asdf's plugin lists in a fresh process
  (after ``import romanxr.io``) with :func:`romanxr.io.asdf_setup.prepare_asdf` / with asdf's
  own entry-point loading, the fixed cost the first ``asdf.open`` of every run pays.

``--repo DIR`` runs the romanxr of another checkout (put first on ``PYTHONPATH``), so the
same command measures a before and an after on the same quiet machine.

Usage::

    python benchmarks/bench_startup.py                       # everything, medians of 5
    python benchmarks/bench_startup.py --cases import help calibrate_help --repeat 9
    python benchmarks/bench_startup.py --cases cold_256 --repeat 3
    python benchmarks/bench_startup.py --cases cli_256 cli_512 cold_256 --repo /tmp/before

Inputs are simulated once into ``--cache`` (default ``~/.cache/romanxr_bench_startup``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = (
    "import",
    "import_xarray",
    "help",
    "calibrate_help",
    "cli_256",
    "cli_512",
    "strun_512",
    "python_512",
    "cold_256",
    "crds_256",
    "demo",
    "cold_demo",
    "warm",
    "installed_demo",
    "asdf_plugins",
    "asdf_plugins_plain",
)
PLUGINS = "import romanxr.io.asdf_setup as s, asdf\n"
PLUGIN_CODE = {
    "asdf_plugins": PLUGINS + "s.prepare_asdf()",
    "asdf_plugins_plain": PLUGINS + "c = asdf.get_config(); c.resource_mappings; c.extensions",
}
# source_catalog and tweakreg (on by default since issue 15) are skipped by both tools: the
# figures time the calibration, as before
ROMANCAL_SKIPPED = ("refpix", "dark_decay", "source_catalog", "tweakreg")
SKIPPED = ROMANCAL_SKIPPED


def prepare(folder: Path, size: int) -> dict:
    """Simulate a ``size``² exposure, its references and a local CRDS cache (once)."""
    where = folder / f"s{size}"
    manifest = where / "manifest.json"
    if manifest.exists():
        return json.loads(manifest.read_text())
    from romanxr.testing import make_detector, make_reference_set, simulate_exposure
    from romanxr.testing.crds_cache import build_local_crds_cache

    where.mkdir(parents=True, exist_ok=True)
    det = make_detector((size, size), seed=2026)
    refs = make_reference_set(where / "refs", det)
    sim = simulate_exposure(det, seed=2026, path=where)
    crds = build_local_crds_cache(where / "crds", refs.overrides())
    steps = refs.romancal_steps(skip=ROMANCAL_SKIPPED)
    args = [
        f"--steps.{step}.{key}={value}"
        for step, opts in steps.items()
        for key, value in opts.items()
    ]
    info = {
        "uncal": str(sim.path),
        "overrides": refs.overrides(),
        "args": args,
        "crds_env": crds.environ(),
    }
    manifest.write_text(json.dumps(info, indent=1))
    return info


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path) -> dict:
    """Run ``cmd`` once under ``/usr/bin/time``: wall, CPU (user + system), peak RSS."""
    with tempfile.NamedTemporaryFile("w+") as usage, tempfile.TemporaryFile() as log:
        timed = ["/usr/bin/time", "-o", usage.name, "-f", "%U %S %M", *cmd]
        t0 = time.perf_counter()
        proc = subprocess.run(timed, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=log)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"{cmd} failed ({proc.returncode}):\n{log.read()[-4000:]!r}")
        user, system, rss_kib = usage.read().split()[-3:]
    return {
        "wall": wall,
        "cpu": float(user) + float(system),
        "rss_mib": int(rss_kib) / 1024,
        "stdout": proc.stdout.decode(errors="replace"),
    }


def romanxr_command() -> list[str]:
    """The ``romanxr`` console script of this interpreter (``python -m romanxr.cli`` if none)."""
    script = Path(sys.executable).with_name("romanxr")
    return [str(script)] if script.exists() else [sys.executable, "-m", "romanxr.cli"]


def _cli_calibrate(info: dict, out: Path) -> list[str]:
    # the same --steps.* as romancal gets: the overrides, and the skipped steps
    args = info["args"]
    return [*romanxr_command(), "calibrate", info["uncal"], *args, "--output_dir", str(out)]


def _python_child(uncal: str, overrides: dict, repeat: int) -> None:
    """In this process: load the exposure, calibrate once, then time ``repeat`` calls."""
    import romanxr

    ds = romanxr.open_uncal(uncal).load()
    steps = {s: {"skip": True} for s in SKIPPED}
    romanxr.calibrate(ds, steps=steps, overrides=overrides).compute()
    runs = []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        romanxr.calibrate(ds, steps=steps, overrides=overrides).compute()
        runs.append({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0})
    print("RESULT " + json.dumps(runs))


def commands(case: str, inputs: dict, work: Path) -> tuple[list[str], dict[str, str], bool]:
    """``(command, extra environment, warm-up first?)`` of one case."""
    py = sys.executable
    if case == "import":
        return [py, "-c", "import romanxr"], {}, False
    if case in PLUGIN_CODE:
        return [py, "-c", PLUGIN_CODE[case]], {}, False
    if case == "import_xarray":
        return [py, "-c", "import romanxr, xarray"], {}, False
    if case == "help":
        return [*romanxr_command(), "--help"], {}, False
    if case == "calibrate_help":
        return [*romanxr_command(), "calibrate", "-h"], {}, False
    if case in ("cli_256", "cli_512", "cold_256"):
        info = inputs[int(case[-3:])]
        return _cli_calibrate(info, work / case), {}, case != "cold_256"
    if case == "crds_256":
        info = inputs[256]
        cmd = [*romanxr_command(), "calibrate", info["uncal"], "--output_dir", str(work / case)]
        return cmd, dict(info["crds_env"]), True
    if case in ("demo", "cold_demo", "installed_demo"):
        cmd = [*romanxr_command(), "demo", "--output", str(work / case), "--no-progress"]
        return cmd, {}, case == "demo"
    if case == "warm":
        return [*romanxr_command(), "warm"], {}, False
    if case == "strun_512":
        info = inputs[512]
        strun = str(Path(py).with_name("strun"))
        cmd = [strun, "roman_elp", info["uncal"], *info["args"], "--output_dir", str(work / case)]
        env = dict(info["crds_env"], STPIPE_DISABLE_CRDS_STEPPARS="True")
        return cmd, env, True
    raise ValueError(case)


#: the checkout whose romanxr is measured (``--repo``); None: the one this Python imports
REPO: Path | None = None


def _repo_env() -> dict[str, str]:
    if REPO is None:
        return {}
    rest = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join([str(REPO), *([rest] if rest else [])])}


def measure(case: str, inputs: dict, work: Path, repeat: int) -> list[dict]:
    """``repeat`` whole-process runs of ``case`` (after a warm-up run where it has one)."""
    if case == "python_512":
        info = inputs[512]
        code = (
            "import json, sys; sys.path.insert(0, sys.argv[1]); import bench_startup as b; "
            "b._python_child(sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]))"
        )
        here = str(Path(__file__).parent)
        cmd = [sys.executable, "-c", code, here, info["uncal"], json.dumps(info["overrides"])]
        run = run_measured([*cmd, str(repeat)], dict(os.environ, **_repo_env()), work)
        line = next(x for x in run["stdout"].splitlines() if x.startswith("RESULT "))
        return [dict(r, rss_mib=run["rss_mib"]) for r in json.loads(line[7:])]
    cmd, extra, warm_up = commands(case, inputs, work)
    runs = []
    for i in range(repeat + warm_up):
        env = dict(os.environ, **extra, **_repo_env())
        if case in ("cold_256", "cold_demo", "warm", "installed_demo"):
            cache = tempfile.mkdtemp(prefix="numba-cold-", dir=work)
            env["NUMBA_CACHE_DIR"] = cache
        if case == "installed_demo":
            run_measured([*romanxr_command(), "warm"], env, work)
        if case.startswith(("cli", "cold", "strun", "crds", "demo")):
            shutil.rmtree(work / case, ignore_errors=True)
            (work / case).mkdir()
        run = run_measured(cmd, env, work)
        if i >= warm_up:
            runs.append(run)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/romanxr_bench_startup")
    parser.add_argument("--json", type=Path, help="also write every run here")
    parser.add_argument("--repo", type=Path, help="measure the romanxr of this checkout")
    args = parser.parse_args()
    global REPO
    REPO = args.repo.resolve() if args.repo else None

    sizes = {int(c[-3:]) for c in args.cases if c[-3:] in ("256", "512")}
    inputs = {size: prepare(args.cache, size) for size in sorted(sizes)}
    print(f"medians of {args.repeat} runs; load average {os.getloadavg()[0]:.1f} at the start")
    print(f"romanxr from {REPO or 'this interpreter'}")
    print("| case | wall s | CPU s | peak RSS MiB | runs (wall s) |\n|---|---:|---:|---:|---|")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        for case in args.cases:
            runs = measure(case, inputs, Path(tmp), args.repeat)
            for r in runs:
                r.pop("stdout", None)
            results[case] = runs
            med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "rss_mib")}
            walls = ", ".join(f"{r['wall']:.2f}" for r in runs)
            print(
                f"| {case} | {med['wall']:.2f} | {med['cpu']:.2f} | {med['rss_mib']:.0f} "
                f"| {walls} |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
