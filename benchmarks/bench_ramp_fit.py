"""Full-frame ramp-fitting benchmark: wall time and peak memory of ``romanxr.steps.ramp_fit``.

Makes a synthetic 8-resultant ramp (Poisson + read noise, cosmic rays in 1 % of the pixels,
a few saturated pixels) of ``--size`` squared pixels, writes matching READNOISE/GAIN reference
files, and times ``ramp_fit`` on dask chunks with the threaded scheduler (``--workers``
threads). If romancal is installed it also times romancal 1.1.0's likelihood fit (the function
RampFitStep calls) and ours on a ``--compare-size`` frame to give a speed ratio, and checks the
slopes agree.

Usage::

    python benchmarks/bench_ramp_fit.py                 # 4096 x 4096, 2 threads, compare at 1024
    python benchmarks/bench_ramp_fit.py --size 1024 --compare-size 0
    python benchmarks/bench_ramp_fit.py --compare-size 0 --repeat 3   # median of 3 runs

Peak memory is sampled from ``/proc/self/status`` (VmRSS) by a background thread during each
timed call; ``ru_maxrss`` (the whole run, data generation included) is printed at the end.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
from _measure import PeakRSS  # benchmarks/_measure.py (the script's own folder)

READ_PATTERN = [[1], [2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15], [16, 17], [18], [19]]
FRAME_TIME = 3.04
GAIN = 2.0
READNOISE = 6.0


def make_ramp(n: int, seed: int = 0):
    """A full-frame-like ramp Dataset of n x n pixels (numpy-backed)."""
    import xarray as xr

    from romanxr.dataset import ReadPatternInfo, resultant_coords

    rng = np.random.default_rng(seed)
    info = ReadPatternInfo(READ_PATTERN, FRAME_TIME)
    nres = len(READ_PATTERN)
    rate = rng.uniform(0.0, 50.0, (n, n)).astype(np.float32)  # DN/s
    data = np.zeros((nres, n, n), np.float32)
    level = np.zeros((n, n), np.float32)
    group_of_read = {r: k for k, g in enumerate(READ_PATTERN) for r in g}
    electrons_per_read = rate * np.float32(FRAME_TIME * GAIN)
    for read in range(1, READ_PATTERN[-1][-1] + 1):
        # Poisson increments (Gaussian approximation) accumulate; read noise is per read
        step = electrons_per_read + np.sqrt(electrons_per_read) * rng.standard_normal(
            (n, n), dtype=np.float32
        )
        level += step / np.float32(GAIN)
        k = group_of_read.get(read)
        if k is not None:
            data[k] += level + np.float32(READNOISE) * rng.standard_normal((n, n), np.float32)
    data /= np.asarray(info.n_reads, np.float32)[:, None, None]
    hits = rng.random((n, n)) < 0.01
    where = rng.integers(1, nres, hits.sum())
    ys, xs = np.nonzero(hits)
    amp = rng.uniform(100, 1000, hits.sum()).astype(np.float32)
    for k in range(1, nres):
        sel = where <= k
        data[k, ys[sel], xs[sel]] += amp[sel]
    gdq = np.zeros((nres, n, n), np.uint8)
    sat = rng.random((n, n)) < 0.001
    gdq[6:, sat] = 2
    coords = {"y": np.arange(n), "x": np.arange(n), **resultant_coords(info)}
    ds = xr.Dataset(
        {
            "data": (("resultant", "y", "x"), data),
            "groupdq": (("resultant", "y", "x"), gdq),
            "pixeldq": (("y", "x"), np.zeros((n, n), np.uint32)),
        },
        coords=coords,
        attrs={
            "meta": {
                "filename": "bench_uncal.asdf",
                "exposure": {"read_pattern": READ_PATTERN, "frame_time": FRAME_TIME},
                "instrument": {"name": "WFI", "detector": "WFI01"},
                "cal_step": {},
            }
        },
    )
    return ds, int(hits.sum())


def write_refs(tmp: Path, n: int) -> tuple[Path, Path]:
    import roman_datamodels.datamodels as dm

    rn = dm.ReadnoiseRefModel.create_fake_data(shape=(n, n))
    rn.data = np.full((n, n), READNOISE, np.float32)
    rn.save(tmp / f"readnoise_{n}.asdf")
    g = dm.GainRefModel.create_fake_data(shape=(n, n))
    g.data = np.full((n, n), GAIN, np.float32)
    g.save(tmp / f"gain_{n}.asdf")
    return tmp / f"readnoise_{n}.asdf", tmp / f"gain_{n}.asdf"


def time_romanxr(ds, rn, g, chunk: int, workers: int, algorithm: str = "likely"):
    from romanxr.steps.ramp_fit import ramp_fit

    lazy = ds.chunk({"y": chunk, "x": chunk, "resultant": -1})
    with dask.config.set(scheduler="threads", num_workers=workers), PeakRSS() as mem:
        t0 = time.perf_counter()
        c0 = time.process_time()
        out = ramp_fit(
            lazy,
            algorithm=algorithm,
            include_var_rnoise=True,  # the romancal run below keeps it too
            override_readnoise=rn,
            override_gain=g,
        )
        out = out.compute()
        wall = time.perf_counter() - t0
        # CPU seconds of all threads: a load-independent figure on a shared machine
        mem.cpu = time.process_time() - c0
    return out, wall, mem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--compare-size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--algorithm", default="likely", choices=["likely", "ols_cas22"])
    parser.add_argument("--repeat", type=int, default=1, help="timed runs (median printed)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        # compile the numba kernels outside the timed region
        small, _ = make_ramp(64)
        rn64, g64 = write_refs(tmp, 64)
        for algo in ("likely", "ols_cas22"):
            time_romanxr(small, rn64, g64, 32, 1, algo)

        if args.size:
            t0 = time.perf_counter()
            ds, nhits = make_ramp(args.size)
            rn, g = write_refs(tmp, args.size)
            print(
                f"made {args.size}x{args.size}x{len(READ_PATTERN)} ramp "
                f"({nhits} cosmic rays) in {time.perf_counter() - t0:.1f} s; "
                f"input {ds.nbytes / 2**30:.2f} GiB"
            )
            walls, cpus = [], []
            for _ in range(args.repeat):
                out, wall, mem = time_romanxr(ds, rn, g, args.chunk, args.workers, args.algorithm)
                njump = int(out["jumps"].any("resultant").sum()) if "jumps" in out else -1
                print(
                    f"romanxr ramp_fit({args.algorithm}) {args.size}^2, {args.workers} threads, "
                    f"chunks {args.chunk}^2: wall {wall:.2f} s, CPU {mem.cpu:.2f} s, "
                    f"peak RSS {mem.peak / 2**30:.2f} GiB "
                    f"(before {mem.start / 2**30:.2f} GiB, increase "
                    f"{(mem.peak - mem.start) / 2**30:.2f} GiB); pixels with jumps {njump}"
                )
                walls.append(wall)
                cpus.append(mem.cpu)
                del out
            if args.repeat > 1:
                print(
                    f"median of {args.repeat}: wall {np.median(walls):.2f} s, "
                    f"CPU {np.median(cpus):.2f} s"
                )
            del ds

        if args.compare_size:
            try:
                import roman_datamodels.datamodels as dm
                from romancal.ramp_fitting import ramp_fit_step as rc
            except ImportError:
                print("romancal not installed: no comparison")
                return
            n = args.compare_size
            ds, _ = make_ramp(n, seed=1)
            rn, g = write_refs(tmp, n)
            ours, wall_ours, mem_ours = time_romanxr(ds, rn, g, max(n // 2, 64), args.workers)
            model = dm.RampModel.create_fake_data(shape=ds["data"].shape)
            model.data = ds["data"].values.copy()
            model.groupdq = ds["groupdq"].values.copy()
            model.pixeldq = ds["pixeldq"].values.copy()
            model.meta.exposure.read_pattern = READ_PATTERN
            model.meta.exposure.frame_time = FRAME_TIME
            model.meta.exposure.nresultants = len(READ_PATTERN)
            t0 = time.perf_counter()
            c0 = time.process_time()
            theirs = rc.likely(model, dm.open(rn), dm.open(g), include_var_rnoise=True)
            wall_rc = time.perf_counter() - t0
            cpu_rc = time.process_time() - c0
            # romancal cuts 4 px on every side; romanxr cuts only the absolute detector border
            diff = np.abs(ours["data"].values[:-4, :-4] - theirs.data)
            print(
                f"{n}x{n}: romancal 1.1.0 likely wall {wall_rc:.2f} s / CPU {cpu_rc:.2f} s "
                f"(RampFitStep default maximum_cores='1'); romanxr wall {wall_ours:.2f} s / CPU "
                f"{mem_ours.cpu:.2f} s ({args.workers} threads); wall ratio "
                f"{wall_rc / wall_ours:.1f}x, CPU ratio {cpu_rc / mem_ours.cpu:.1f}x; "
                f"max |slope diff| {np.nanmax(diff):.2e} DN/s"
            )
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"ru_maxrss over the whole run: {maxrss / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
