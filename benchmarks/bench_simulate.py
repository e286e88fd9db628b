"""Time and peak memory of the simulator and the reference writer.

Usage: python benchmarks/bench_simulate.py [ny nx]   (default 4096 4096, 8 resultants)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from romanxr.testing import make_detector, make_reference_set, simulate_exposure

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import peak_rss_bytes


def main() -> None:
    shape = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (4096, 4096)
    work = Path(tempfile.mkdtemp(prefix="romanxr_bench_"))
    t0, c0 = time.perf_counter(), time.process_time()
    det = make_detector(shape, seed=0)
    t1, c1 = time.perf_counter(), time.process_time()
    sim = simulate_exposure(det, seed=0, path=work)
    t2, c2 = time.perf_counter(), time.process_time()
    make_reference_set(work / "refs", det)
    t3, c3 = time.perf_counter(), time.process_time()
    peak = peak_rss_bytes() / 2**30
    size = sim.path.stat().st_size / 2**20
    print(
        f"shape {shape}: make_detector {t1 - t0:.1f} s, simulate_exposure {t2 - t1:.1f} s "
        f"({size:.0f} MiB file), make_reference_set {t3 - t2:.1f} s, peak RSS {peak:.2f} GiB"
    )
    print(
        f"CPU time (all threads): make_detector {c1 - c0:.1f} s, simulate_exposure "
        f"{c2 - c1:.1f} s, make_reference_set {c3 - c2:.1f} s"
    )
    print(f"files in {work}")


if __name__ == "__main__":
    main()
