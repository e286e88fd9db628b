"""Peak memory against the number of detectors calibrated in ONE lazy dask graph.

The full-frame exposure simulated by ``bench_pipeline.py`` (run that first, or pass
``--size``) is hard-linked under N names (``..._wfi01_uncal.asdf`` ... ``..._wfiNN_uncal.asdf``:
N independent inputs as far as the reader and dask are concerned; they share the references).
(Symbolic links are not: paths are resolved, so N symlinks give one file's dask keys and the
detectors share their reads.)
Each is calibrated lazily with :func:`romanxr.calibrate`, and all N Level-2 images are written
by one call: :func:`romanxr.io.to_asdf_many` (default: N cal.asdf files, computed one detector
and one region of rows at a time on the local scheduler) or, with ``--writer zarr``, N Zarr
stores by one ``dask.compute`` (xarray's ``to_zarr``). Each N runs in its own process; the
peak RSS, wall and CPU time are printed against N::

    python benchmarks/bench_many_detectors.py                  # N = 1, 4, 8 (threads)
    python benchmarks/bench_many_detectors.py --repeat 3       # 3 rounds of N = 1, 4, 8; medians
    python benchmarks/bench_many_detectors.py --n 1 2 --size 1024
    python benchmarks/bench_many_detectors.py --scheduler distributed --n 1 4

With ``--scheduler distributed`` the graph runs on a LocalCluster of 2 single-threaded worker
processes and the peak RSS printed is the largest worker's (sampled every 0.5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import calibration_only, peak_rss_bytes  # noqa: E402

VARIABLES = ["data", "dq", "err", "var_poisson", "chisq", "dumo"]


def _inputs(info: dict, folder: Path, n: int) -> list[Path]:
    src = Path(info["uncal"])
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1, n + 1):
        link = folder / src.name.replace("_wfi01_", f"_wfi{i:02d}_")
        if link.is_symlink():  # earlier runs: a symlink resolves to the same file (and keys)
            link.unlink()
        if not link.exists():
            os.link(src, link)  # a hard link: its own path, so its own dask keys
        paths.append(link)
    return paths


def _graph(info: dict, folder: Path, n: int):
    import dask

    from romanxr.pipeline import calibrate

    delayed = []
    for path in _inputs(info, folder / "inputs", n):
        cal = calibrate(
            path, overrides=info["overrides"], steps=calibration_only(), check_saturated=False
        )
        image = cal[VARIABLES].drop_attrs()
        # zarr wants regular chunks: the trimmed border makes the first and last bands shorter
        image = image.chunk({"y": max(image.chunksizes["y"]), "x": -1})
        for var in image.variables.values():
            var.encoding = {}
        target = folder / "outputs" / path.name.replace("_uncal.asdf", "_cal.zarr")
        if target.exists():
            shutil.rmtree(target)
        delayed.append(image.to_zarr(target, mode="w", compute=False, zarr_format=3))
    return dask, delayed


def _write_asdf(info: dict, folder: Path, n: int) -> None:
    from romanxr.io import to_asdf_many
    from romanxr.pipeline import calibrate

    items = []
    for path in _inputs(info, folder / "inputs", n):
        cal = calibrate(
            path, overrides=info["overrides"], steps=calibration_only(), check_saturated=False
        )
        (folder / "outputs").mkdir(parents=True, exist_ok=True)
        items.append((cal, folder / "outputs" / path.name.replace("_uncal.asdf", "_cal.asdf")))
    to_asdf_many(items, overwrite=True)


def child(n: int, folder: Path, scheduler: str, writer: str = "asdf") -> dict:
    if os.environ.get("ROMANXR_BENCH_TUNE_ALLOCATOR", "1") != "0":
        from romanxr.schedule import tune_allocator  # as the romanxr command line does

        tune_allocator()
    info = json.loads((folder / "manifest.json").read_text())
    work = folder / f"many_{n}"
    t0, c0 = time.perf_counter(), sum(os.times()[:2])
    if scheduler == "threads" and writer == "asdf":
        _write_asdf(info, work, n)
        rss = peak_rss_bytes() / 2**30
        cpu = sum(os.times()[:2]) - c0
    elif scheduler == "threads":
        dask, delayed = _graph(info, work, n)
        dask.compute(*delayed, scheduler="threads")
        rss = peak_rss_bytes() / 2**30
        cpu = sum(os.times()[:2]) - c0
    else:
        import threading

        from distributed import Client, LocalCluster

        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            peaks: dict[str, float] = {}
            stop = threading.Event()

            def sample() -> None:
                def rss() -> float:
                    import psutil

                    return psutil.Process().memory_info().rss / 2**30

                while not stop.is_set():
                    try:
                        for w, v in client.run(rss).items():
                            peaks[w] = max(peaks.get(w, 0.0), v)
                    except Exception:
                        pass
                    stop.wait(0.5)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            dask, delayed = _graph(info, work, n)
            dask.compute(*delayed)
            stop.set()
            sampler.join()

            def cpu_times() -> float:
                t = os.times()
                return t.user + t.system

            cpu = sum(client.run(cpu_times).values())
            rss = max(peaks.values()) if peaks else float("nan")
    return {"n": n, "wall": time.perf_counter() - t0, "cpu": cpu, "rss": rss}


def main() -> None:
    from bench_pipeline import DEFAULT_CACHE, prepare

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--scheduler", choices=["threads", "distributed"], default="threads")
    p.add_argument("--writer", choices=["asdf", "zarr"], default="asdf")
    p.add_argument("--repeat", type=int, default=1, help="rounds over all N (medians printed)")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    folder = args.cache or DEFAULT_CACHE / f"pipeline_{args.size}"
    if args.child is not None:
        result = child(args.child, folder, args.scheduler, args.writer)
        print("RESULT " + json.dumps(result), flush=True)
        return
    prepare(folder, args.size, reuse=True)
    print(
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, scheduler {args.scheduler}, "
        f"writer {args.writer}"
    )
    print(f"{'N':>3s} {'wall s':>8s} {'CPU s':>8s} {'peak RSS GiB':>13s} {'vs N=first':>11s}")
    runs: dict[int, list[dict]] = {n: [] for n in args.n}
    # rounds of all N, so that the machine's drift between minutes affects every N alike
    for _ in range(args.repeat):
        for n in args.n:
            r = _spawn(n, folder, args)
            runs[n].append(r)
            first = runs[args.n[0]][-1]["rss"]
            _row(n, r, first)
    if args.repeat > 1:
        print(f"median of {args.repeat} runs:")
        medians = {
            n: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for n, rs in runs.items()
        }
        for n in args.n:
            _row(n, medians[n], medians[args.n[0]]["rss"])


def _spawn(n: int, folder: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), "--cache", str(folder)]
    cmd += ["--scheduler", args.scheduler, "--writer", args.writer]
    from bench_pipeline import run_child

    return run_child(cmd, f"N={n}")


def _row(n: int, r: dict, first: float) -> None:
    print(
        f"{n:3d} {r['wall']:8.1f} {r['cpu']:8.1f} {r['rss']:13.2f} "
        f"{100 * (r['rss'] / first - 1):+10.0f}%",
        flush=True,
    )


if __name__ == "__main__":
    main()
