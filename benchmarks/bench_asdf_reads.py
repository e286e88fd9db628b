"""Partial reads of ASDF blocks: romanxr's block reader against asdf's own lazy loading.

    python benchmarks/bench_asdf_reads.py [--size 2048] [--uncal FILE] [--rows 128] [--repeat 3]

Writes a synthetic Level-1 exposure (``romanxr.testing.simulate_exposure``: roman_datamodels'
``save``, lz4 blocks) unless ``--uncal`` names one, then copies it with raw and zlib blocks
(``asdf.AsdfFile.write_to``). In this one process, for each copy, it reads ``roman.data``

* one band of ``--rows`` rows (all resultants, whole rows: a default dask chunk) from a cold
  start: romanxr (:class:`romanxr.io.asdf_reader.AsdfBackendArray`, empty cache) against
  ``asdf.open(lazy_load=True, lazy_tree=True)`` then ``node[:, y0:y1, :]`` (with
  ``memmap=True`` for raw blocks, asdf's partial read of those);
* every band in turn, as a dask graph's chunks do (asdf: one open file, the array it loaded);
* the whole array.

and prints the median wall time of ``--repeat`` runs and the largest peak resident memory
above the start of each run (sampled every millisecond; freed memory is returned to the
system between runs; one unmeasured warm-up run first). Both sides start from a closed file
each run: romanxr's per-process cache is cleared, asdf's file is opened anew. Results feed
the module docstring of :mod:`romanxr.io.block_reader`.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _measure import PeakRSS

KEYS = ("roman", "data")


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # pragma: no cover - not glibc
        pass


def _copy(src: Path, dest: Path, compression: str | None) -> Path:
    import asdf

    with asdf.open(src, lazy_load=False, memmap=False) as af:
        af.write_to(dest, all_array_compression=compression)
    return dest


def _ours(path: Path, keys: list[tuple], shape: tuple[int, ...]) -> None:
    from romanxr.io.asdf_reader import AsdfBackendArray
    from romanxr.io.cache import CACHE

    CACHE.clear()
    arr = AsdfBackendArray(str(path), KEYS, shape, np.uint16)
    for key in keys:
        out = arr._raw_getitem(key)
        assert out.shape[0] == shape[0]
    CACHE.clear()


def _asdf(path: Path, keys: list[tuple], memmap: bool) -> None:
    import asdf

    with asdf.config_context() as cfg:
        cfg.validate_on_read = False
        with asdf.open(path, lazy_load=True, memmap=memmap, lazy_tree=True) as af:
            node = af.tree["roman"]["data"]
            for key in keys:
                out = np.array(node[key], copy=True)
                assert out.shape[0] == node.shape[0]


def _measure(func, repeat: int) -> tuple[float, float]:
    func()  # warm-up: imports, asdf's extensions, the page cache
    times, peaks = [], []
    for _ in range(repeat):
        _trim()
        with PeakRSS(interval=0.001) as rss:
            t0 = time.perf_counter()
            func()
            times.append(time.perf_counter() - t0)
        peaks.append(rss.added / 2**20)
    return statistics.median(times), max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--uncal", type=Path)
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import asdf

    tmp = Path(tempfile.mkdtemp(prefix="bench-asdf-reads-"))
    src = args.uncal
    if src is None:
        from romanxr.testing import simulate_exposure

        src = simulate_exposure((args.size, args.size), seed=1, path=tmp).path
    files = {
        "lz4": Path(src),
        "raw": _copy(Path(src), tmp / "raw.asdf", None),
        "zlib": _copy(Path(src), tmp / "zlib.asdf", "zlib"),
    }
    with asdf.open(src, lazy_load=True) as af:
        shape = tuple(af.tree["roman"]["data"].shape)
    ny = shape[1]
    y0 = (ny // 2) // args.rows * args.rows
    band = [(slice(None), slice(y0, y0 + args.rows), slice(None))]
    bands = [
        (slice(None), slice(r, min(r + args.rows, ny)), slice(None))
        for r in range(0, ny, args.rows)
    ]
    full = [(slice(None), slice(None), slice(None))]
    nbytes = int(np.prod(shape)) * 2
    print(f"roman.data {shape} uint16 = {nbytes / 2**20:.0f} MiB; band = {args.rows} rows")
    print(
        f"asdf {asdf.__version__}; sizes: "
        + ", ".join(f"{k} {p.stat().st_size / 2**20:.1f} MiB" for k, p in files.items())
    )
    print(f"{'blocks':6s} {'read':10s} {'romanxr':>22s} {'asdf':>22s}")
    for label, path in files.items():
        memmap = label == "raw"
        for what, keys in (("one band", band), ("all bands", bands), ("full", full)):
            ours = _measure(lambda k=keys, p=path: _ours(p, k, shape), args.repeat)
            theirs = _measure(lambda k=keys, p=path, m=memmap: _asdf(p, k, m), args.repeat)
            print(
                f"{label:6s} {what:10s} {ours[0]:8.3f} s {ours[1]:+7.1f} MiB "
                f"{theirs[0]:8.3f} s {theirs[1]:+7.1f} MiB"
            )


if __name__ == "__main__":
    main()
