"""Wall time and peak memory of refpix, dark_decay and wfi18_transient on a 4096x4096xN ramp.

Each measurement runs in its own process so peak RSS belongs to one step::

    python benchmarks/bench_refpix_decay.py                 # all steps, numpy and dask
    python benchmarks/bench_refpix_decay.py --steps refpix --backends dask --romancal

Reported: wall time of building + computing the step output (data and, for refpix, amp33),
the process peak RSS and the increase of the peak over the input ramp already in memory.
romancal 1.1.0 on 2 cores (for comparison): refpix 12.0 s, dark_decay 6.4 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "unit"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import peak_rss_bytes  # noqa: E402


def _rss_mib() -> float:
    return peak_rss_bytes() / 2**20


def _make(nres: int, detector: str):
    from _ramp_factory import make_ramp

    rng = np.random.default_rng(0)
    data = rng.standard_normal((nres, 4096, 4096), dtype=np.float32)
    data *= 10.0
    data += 1000.0
    amp33 = rng.integers(900, 1100, (nres, 4096, 128)).astype(np.uint16)
    return make_ramp(
        data,
        amp33=amp33,
        borders=True,
        detector=detector,
        frame_time=3.04,
        read_pattern=[[i + 1] for i in range(nres)],
    )


def _refs(tmp: Path) -> dict[str, Path]:
    from _ramp_factory import write_decay_reference, write_refpix_reference

    from romanxr.kernels.refpix import refpix_reference_coefficients

    g, z, a = refpix_reference_coefficients(4096)
    return {
        "refpix": write_refpix_reference(tmp / "refpix.asdf", g, z, a),
        "darkdecaysignal": write_decay_reference(tmp / "decay.asdf", detector="WFI18"),
    }


def run_one(step: str, backend: str, nres: int, tmp: Path) -> dict:
    import dask

    from romanxr.steps.dark_decay import dark_decay
    from romanxr.steps.refpix import refpix
    from romanxr.steps.wfi18_transient import wfi18_transient

    refs = _refs(tmp)
    ds = _make(nres, "WFI18")
    if backend == "dask":
        ds = ds.chunk({"resultant": -1, "y": 1024, "x": 1024})
    base = _rss_mib()
    t0 = time.perf_counter()
    if step == "refpix":
        out = refpix(ds, override_refpix=refs["refpix"])
        arrays = [out["data"].data, out["amp33"].data]
    elif step == "dark_decay":
        out = dark_decay(ds, override_darkdecaysignal=refs["darkdecaysignal"])
        arrays = [out["data"].data]
    else:
        out = wfi18_transient(ds)
        arrays = [out["data"].data, out["groupdq"].data]
    if backend == "dask":
        with dask.config.set(scheduler="threads"):
            dask.compute(*arrays)
    wall = time.perf_counter() - t0
    peak = _rss_mib()
    return {
        "step": step,
        "backend": backend,
        "nres": nres,
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(peak),
        "peak_over_input_mib": round(peak - base),
        "input_mib": round(ds["data"].nbytes / 2**20),
    }


def run_romancal(step: str, nres: int) -> dict:
    import types

    rng = np.random.default_rng(0)
    data = rng.standard_normal((nres, 4096, 4096), dtype=np.float32)
    data *= 10.0
    data += 1000.0
    base = _rss_mib()
    t0 = time.perf_counter()
    if step == "refpix":
        from romancal.refpix import refpix as rr

        from romanxr.kernels.refpix import refpix_reference_coefficients

        g, z, a = refpix_reference_coefficients(4096)
        model = types.SimpleNamespace(
            data=data,
            amp33=rng.integers(900, 1100, (nres, 4096, 128)).astype(np.uint16),
            pixeldq=np.zeros((4096, 4096), np.uint32),
            border_ref_pix_left=None,
            border_ref_pix_right=None,
        )
        t0 = time.perf_counter()
        rr.run_steps(model, types.SimpleNamespace(gamma=g, zeta=z, alpha=a))
    elif step == "dark_decay":
        from romancal.dark_decay.dark_decay import subtract_dark_decay

        subtract_dark_decay(data, 0.4, 23.0, 3.04, [[i + 1] for i in range(nres)], 18)
    else:
        return {}
    wall = time.perf_counter() - t0
    return {
        "step": step,
        "backend": "romancal",
        "nres": nres,
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(_rss_mib()),
        "peak_over_input_mib": round(_rss_mib() - base),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", nargs="+", default=["refpix", "dark_decay", "wfi18_transient"])
    parser.add_argument("--backends", nargs="+", default=["numpy", "dask"])
    parser.add_argument("--nres", type=int, default=8)
    parser.add_argument("--romancal", action="store_true", help="also time romancal's kernels")
    parser.add_argument("--child", nargs=2, metavar=("STEP", "BACKEND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, backend = args.child
        if backend == "romancal":
            print(json.dumps(run_romancal(step, args.nres)))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                print(json.dumps(run_one(step, backend, args.nres, Path(tmp))))
        return
    backends = list(args.backends) + (["romancal"] if args.romancal else [])
    for step in args.steps:
        for backend in backends:
            cmd = [sys.executable, __file__, "--child", step, backend, "--nres", str(args.nres)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr[-500:]
            print(line, flush=True)


if __name__ == "__main__":
    main()
