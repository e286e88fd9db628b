"""Time the writers on a full-frame Level-2 image (4088x4088 science area, 6 resultants).

    python benchmarks/bench_writers.py [--outdir DIR] [--chunks 1024]
    python benchmarks/bench_writers.py --memory [--chunks 256] [--compression lz4|none]
        [--layout tiles|strips|rows] [--persist]

Builds a synthetic dask-backed Level-2 Dataset in memory (no files read), then times
``to_asdf`` (lz4 and uncompressed), ``to_zarr`` (zstd) and reading each back, printing
seconds and output sizes. Not a test: speed figures belong here, not in the suite.

``--memory`` writes the image *lazily* (the random chunks are made while the writer stores
them, as a pipeline's chunks would be) and reports the writer's peak resident memory above
the process's size before the call (asdf's extensions are loaded by a small warm-up write
first), the wall time, and for the streaming writer the time of the final block pass
(``asdf_stream.write_blocks``: lz4 compression, MD5, copy out of the scratch file). To
compare with another checkout (e.g. the writer before streaming), put it first on the path:
``PYTHONPATH=/path/to/checkout python benchmarks/bench_writers.py --memory``.

Measured 2026-11-24 (2 shared cores; output arrays 295 MiB; "added" = peak RSS above the
process before the call; before = in-memory writer of main at 2e650a4, after = streaming):

=====================================  ===================  ===================
run (``--memory`` + options)           before               after
=====================================  ===================  ===================
lazy, 256x256 tiles, lz4               +389 MiB, 3.80 s     +30 MiB, 4.00 s
lazy, 4088x256 column strips, lz4      +406 MiB, 3.03 s     +47 MiB, 2.74 s
lazy, 256x256 tiles, ``none``          (not run)            +22 MiB, 3.39 s
persisted (writer alone), lz4          +376 MiB, 2.89 s     +20 MiB, 3.04 s
=====================================  ===================  ===================

The streaming writer's final block pass took 1.32-1.39 s with lz4 and 0.75 s raw: lz4 (with
its MD5) costs about 0.6 s more on this random, incompressible data.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr

import romanxr
from romanxr.dataset import CAL_STEP_KEYS


def full_frame_image(nres: int = 6, chunks: int = 1024, layout: str = "tiles") -> xr.Dataset:
    """Random full-frame Level-2 image; science chunks ``chunks`` square ("tiles"), full-height
    column strips ``chunks`` wide ("strips") or full-width row bands ("rows")."""
    import roman_datamodels.datamodels as dm

    from romanxr.io.product import to_plain

    n, sci = 4096, 4088
    rng = da.random.default_rng(0)
    c = {"tiles": (chunks, chunks), "strips": (-1, chunks), "rows": (chunks, -1)}[layout]

    def f32(shape, ch):
        return rng.normal(10, 3, size=shape, chunks=ch).astype(np.float32)

    meta = to_plain(dm.ImageModel.create_fake_data(shape=(8, 8)).meta)
    meta["exposure"]["read_pattern"] = [[i + 1] for i in range(nres)]
    meta["exposure"]["nresultants"] = nres
    meta["cal_step"] = dict.fromkeys(CAL_STEP_KEYS, "INCOMPLETE")
    variables = {
        "data": (("y", "x"), f32((sci, sci), c)),
        "dq": (("y", "x"), rng.integers(0, 2**20, (sci, sci), chunks=c).astype(np.uint32)),
        "amp33": (
            ("resultant", "frame_y", "amp33_x"),
            rng.integers(0, 60000, (nres, n, 128), chunks=(nres, chunks, 128)).astype(np.uint16),
        ),
    }
    for name in ("err", "var_poisson", "var_rnoise", "chisq", "dumo"):
        variables[name] = (("y", "x"), abs(f32((sci, sci), c)))
    for side in ("left", "right"):
        variables[f"border_ref_pix_{side}"] = (
            ("resultant", "frame_y", "ref_col"),
            f32((nres, n, 4), (nres, chunks, 4)),
        )
        variables[f"dq_border_ref_pix_{side}"] = (
            ("frame_y", "ref_col"),
            da.zeros((n, 4), dtype=np.uint32, chunks=(chunks, 4)),
        )
    for side in ("top", "bottom"):
        variables[f"border_ref_pix_{side}"] = (
            ("resultant", "ref_row", "frame_x"),
            f32((nres, 4, n), (nres, 4, chunks)),
        )
        variables[f"dq_border_ref_pix_{side}"] = (
            ("ref_row", "frame_x"),
            da.zeros((4, n), dtype=np.uint32, chunks=(4, chunks)),
        )
    coords = {"y": np.arange(4, 4 + sci), "x": np.arange(4, 4 + sci)}
    return xr.Dataset(variables, coords=coords, attrs={"meta": meta})


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def memory(
    outdir: Path, chunks: int, compression: str | None, layout: str, persist: bool = False
) -> None:
    """Peak RSS and time of one lazy full-frame ``to_asdf`` (``persist``: of the chunks
    already computed in memory, so the time is the writer's alone)."""
    import gc

    from _measure import PeakRSS

    from romanxr.io import asdf_writer

    try:
        from romanxr.io.product import IMAGE_DTYPES
    except ImportError:  # a checkout from before the split of the reader (to compare with)
        IMAGE_DTYPES = asdf_writer.IMAGE_DTYPES

    print(f"romanxr from {Path(romanxr.__file__).parent}")
    # warm-up: asdf loads its extensions and schemas on the first write (~90 MiB)
    small = full_frame_image(chunks=chunks).isel(
        y=slice(0, 64), x=slice(0, 64), frame_y=slice(0, 72), frame_x=slice(0, 72)
    )
    romanxr.to_asdf(small.load(), outdir / "warm_cal.asdf", overwrite=True)
    ds = full_frame_image(chunks=chunks, layout=layout)
    if persist:
        ds = ds.persist()
    timings = {}
    stream = getattr(asdf_writer, "write_blocks", None)
    if stream is not None:

        def timed(*args, **kwargs):
            t = time.perf_counter()
            stream(*args, **kwargs)
            timings["blocks"] = time.perf_counter() - t

        asdf_writer.write_blocks = timed
    out = outdir / "lazy_cal.asdf"
    gc.collect()
    with PeakRSS(interval=0.005) as rss:
        t0 = time.perf_counter()
        romanxr.to_asdf(ds, out, overwrite=True, compression=compression)
        t1 = time.perf_counter()
    nbytes = sum(v.size * np.dtype(IMAGE_DTYPES[k]).itemsize for k, v in ds.items())
    shape = ds["data"].data.chunksize
    chunk = shape[0] * shape[1] * 8  # float64 normal draws before the cast
    print(
        f"to_asdf {'persisted' if persist else 'lazy'} compression={compression}: "
        f"output arrays {nbytes / 2**20:.0f} MiB, "
        f"{layout} chunks {shape[0]}x{shape[1]} ({chunk / 2**20:.2f} MiB of float64 each), "
        f"{os.cpu_count()} cpus"
    )
    print(
        f"  RSS before {rss.start / 2**20:.0f} MiB, peak {rss.peak / 2**20:.0f} MiB, "
        f"added {rss.added / 2**20:.0f} MiB; wall {t1 - t0:.2f} s"
        + (f" (block pass {timings['blocks']:.2f} s)" if timings else "")
        + f"; file {size_of(out) / 2**20:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outdir", default=None)
    parser.add_argument("--chunks", type=int, default=None)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--compression", default="lz4", choices=["lz4", "none"])
    parser.add_argument("--layout", default="tiles", choices=["tiles", "strips", "rows"])
    parser.add_argument("--persist", action="store_true", help="--memory of computed chunks")
    args = parser.parse_args()
    outdir = Path(args.outdir or tempfile.mkdtemp(prefix="romanxr-bench-"))
    if args.memory:
        compression = None if args.compression == "none" else args.compression
        try:
            memory(outdir, args.chunks or 256, compression, args.layout, args.persist)
        finally:
            if args.outdir is None:
                shutil.rmtree(outdir)
        return
    args.chunks = args.chunks or 1024
    ds = full_frame_image(chunks=args.chunks)
    ds = ds.persist()  # time the writers, not the random number generator
    print(f"dataset: {ds.nbytes / 2**20:.0f} MiB in memory, {os.cpu_count()} cpus")
    runs = [
        ("to_asdf lz4", outdir / "lz4_cal.asdf", lambda p: romanxr.to_asdf(ds, p)),
        (
            "to_asdf raw",
            outdir / "raw_cal.asdf",
            lambda p: romanxr.to_asdf(ds, p, compression=None),
        ),
        ("to_zarr zstd", outdir / "img.zarr", lambda p: romanxr.to_zarr(ds, p)),
    ]
    for label, path, write in runs:
        t0 = time.perf_counter()
        write(path)
        t1 = time.perf_counter()
        if path.suffix == ".zarr":
            back = romanxr.open_zarr(path).load()
        else:
            back = romanxr.open_cal(path).load()
        t2 = time.perf_counter()
        assert np.array_equal(back["data"].values, ds["data"].values)
        print(
            f"{label:14s} write {t1 - t0:6.2f} s   read+load {t2 - t1:6.2f} s   "
            f"size {size_of(path) / 2**20:7.1f} MiB"
        )
    if args.outdir is None:
        shutil.rmtree(outdir)


if __name__ == "__main__":
    main()
