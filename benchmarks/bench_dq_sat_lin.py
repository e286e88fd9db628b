"""Wall time and peak memory of dq_init, saturation and linearity on a full-frame exposure.

Makes a synthetic 4096x4096 exposure with 8 resultants and full-frame MASK, SATURATION,
LINEARITY, INVERSELINEARITY and INTEGRALNONLINEARITY references in a temporary folder, then
times each step on its own: the step's input is the previous step's output held in memory
(dask chunks, ``.persist()``), and the step's output is persisted the same way with dask's
threaded scheduler (no concatenation into one array, as a chained pipeline would run).

Peak memory is the highest resident set size (sampled every 5 ms from /proc) during the step,
minus the resident size just before it. CPU seconds (all threads) are printed too: on a shared
machine they say more than wall time. ``--romancal`` times romancal 1.1.0's steps on the same
files, each also starting from the previous step's output in memory.

``--pattern default`` uses the simulator's 25-read MA table (``romanxr.testing``) instead of
the 14-read one, and ``--inl-nodes 1025`` the simulator's INL abscissa (1025 rounded, not quite even
nodes) instead of all 65536 values: the linearity kernel's cost grows with the
number of reads and its INL lookup takes another path for uneven abscissae.

Usage::

    python benchmarks/bench_dq_sat_lin.py [--workers 2] [--size 4096] [--resultants 8] [--romancal]
        [--pattern short|default] [--inl-nodes 65536|1025]

romancal 1.1.0 on 2 cores, for comparison: dq_init 2.8 s, saturation 3.7 s, linearity 20.5 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import dask
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _measure import PeakRSS  # benchmarks/_measure.py (the script's own folder)

import romanxr
from romanxr.steps.dq_init import dq_init
from romanxr.steps.linearity import linearity
from romanxr.steps.saturation import saturation

READ_PATTERN = [[1], [2, 3], [4, 5, 6], [7], [8, 9, 10], [11], [12, 13], [14]]


def make_files(
    folder: Path, size: int, nres: int, pattern: str = "short", inl_nodes: int = 65536
) -> dict[str, Path]:
    import roman_datamodels.datamodels as dm

    rng = np.random.default_rng(0)
    rp = _read_pattern(pattern)[:nres]
    mean_read = np.array([np.mean(g) for g in rp])
    rate = rng.uniform(10, 4000, size=(size, size)).astype(np.float32)
    bias = rng.uniform(1000, 3000, size=(size, size)).astype(np.float32)
    model = dm.ScienceRawModel.create_fake_data(shape=(nres, size, size))
    model.meta.exposure.read_pattern = rp
    model.meta.exposure.nresultants = nres
    model.meta.exposure.frame_time = 3.04
    data = np.empty((nres, size, size), np.uint16)
    for i, m in enumerate(mean_read):
        data[i] = np.clip(bias + rate * m, 0, 65535).astype(np.uint16)
    model.data = data
    model.amp33 = np.full((nres, size, 128), 2000, np.uint16)
    model.reference_read = np.full((size, size), 20, np.uint16)
    model.reference_amp33 = np.full((size, 128), 20, np.uint16)
    gs = model.meta.guide_star
    gs.window_xstart, gs.window_xstop, gs.window_ystart, gs.window_ystop = 1000, 1016, 2000, 2016
    files = {"uncal": folder / "bench_uncal.asdf"}
    model.save(files["uncal"])
    del model, data

    mask = dm.MaskRefModel.create_fake_data()
    mask.dq = np.where(rng.random((size, size)) < 0.01, 1 << 10, 0).astype(np.uint32)
    files["mask"] = folder / "mask.asdf"
    mask.save(files["mask"])

    sat = dm.SaturationRefModel.create_fake_data()
    sat.data = rng.uniform(50000, 60000, size=(size, size)).astype(np.float32)
    sat.dq = np.zeros((size, size), np.uint32)
    files["saturation"] = folder / "saturation.asdf"
    sat.save(files["saturation"])

    a = rng.uniform(0, 2e-6, size=(size, size)).astype(np.float32)
    lin = dm.LinearityRefModel.create_fake_data()
    coeffs = np.zeros((4, size, size), np.float32)
    coeffs[1], coeffs[2] = 1, a
    lin.coeffs, lin.dq = coeffs, np.zeros((size, size), np.uint32)
    files["linearity"] = folder / "linearity.asdf"
    lin.save(files["linearity"])
    ilin = dm.InverselinearityRefModel.create_fake_data()
    coeffs[2], coeffs[3] = -a, 2 * a * a
    ilin.coeffs, ilin.dq = coeffs, np.zeros((size, size), np.uint32)
    files["inverselinearity"] = folder / "inverselinearity.asdf"
    ilin.save(files["inverselinearity"])
    del coeffs, lin, ilin

    inl = dm.IntegralnonlinearityRefModel.create_fake_data()
    if inl_nodes == 65536:
        value = np.arange(65536, dtype=np.uint16)
    else:
        value = np.round(np.linspace(0, 65535, 1025)).astype(np.uint16)  # the simulator's
    inl.value = value
    inl.meta.n_channels, inl.meta.n_pixels_per_channel = 32, 128
    inl.inl_table = {
        f"science_channel_{k:02d}": {
            "instrument_channel": k,
            "correction": np.sin(value / (300.0 + k)).astype(np.float64),
        }
        for k in range(1, 33)
    }
    files["integralnonlinearity"] = folder / "inl.asdf"
    inl.save(files["integralnonlinearity"])
    return files


def _read_pattern(name: str) -> list[list[int]]:
    if name == "default":
        from romanxr.testing import DEFAULT_READ_PATTERN

        return [list(g) for g in DEFAULT_READ_PATTERN]
    return READ_PATTERN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--resultants", type=int, default=8)
    parser.add_argument("--folder", default=None, help="where to write the synthetic files")
    parser.add_argument("--reuse", action="store_true", help="reuse files already in --folder")
    parser.add_argument("--romancal", action="store_true", help="also time romancal 1.1.0")
    parser.add_argument("--pattern", choices=["short", "default"], default="short")
    parser.add_argument("--inl-nodes", type=int, choices=[65536, 1025], default=65536)
    args = parser.parse_args()

    folder = Path(args.folder or tempfile.mkdtemp(prefix="romanxr-bench-"))
    t0 = time.perf_counter()
    names = ["uncal", "mask", "saturation", "linearity", "inverselinearity", "integralnonlinearity"]
    stems = ["bench_uncal", "mask", "saturation", "linearity", "inverselinearity", "inl"]
    files = {n: folder / f"{s}.asdf" for n, s in zip(names, stems, strict=True)}
    if not (args.reuse and all(p.exists() for p in files.values())):
        files = make_files(folder, args.size, args.resultants, args.pattern, args.inl_nodes)
    print(f"files written in {time.perf_counter() - t0:.1f} s to {folder}")

    # warm the numba caches on a tiny problem so compile time is not counted
    small = make_files(
        Path(tempfile.mkdtemp(prefix="romanxr-warm-")),
        8,
        args.resultants,
        args.pattern,
        args.inl_nodes,
    )
    _run_steps(small, report=False)

    with dask.config.set(scheduler="threads", num_workers=args.workers):
        _run_steps(files, report=True)
    if args.romancal:
        _run_romancal(files)


def _report(name: str, wall: float, cpu: float, mem: PeakRSS) -> None:
    print(f"{name:<12}{wall:>9.2f}{cpu:>9.2f}{(mem.added / 2**20):>16.0f}")


def _run_romancal(files: dict[str, Path]) -> None:
    """romancal's steps, run the way its pipeline runs them (model in, model out)."""
    import stpipe.crds_client
    from romancal.dq_init import DQInitStep
    from romancal.linearity import LinearityStep
    from romancal.saturation import SaturationStep

    # every reference is overridden; only the recorded CRDS context would need a server
    stpipe.crds_client.get_context_used = lambda obs: "roman_0000.pmap"
    steps = [
        ("dq_init", DQInitStep(override_mask=str(files["mask"]))),
        ("saturation", SaturationStep(override_saturation=str(files["saturation"]))),
        (
            "linearity",
            LinearityStep(
                override_linearity=str(files["linearity"]),
                override_inverselinearity=str(files["inverselinearity"]),
                override_integralnonlinearity=str(files["integralnonlinearity"]),
            ),
        ),
    ]
    print("romancal 1.1.0")
    print(f"{'step':<12}{'wall s':>9}{'cpu s':>9}{'peak extra MiB':>16}")
    model = str(files["uncal"])
    for name, step in steps:
        with PeakRSS() as mem:
            start, cpu = time.perf_counter(), time.process_time()
            model = step.run(model)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        _report(name, wall, cpu, mem)


def _run_steps(files: dict[str, Path], *, report: bool) -> None:
    steps = [
        ("dq_init", lambda ds: dq_init(ds, override_mask=files["mask"])),
        ("saturation", lambda ds: saturation(ds, override_saturation=files["saturation"])),
        (
            "linearity",
            lambda ds: linearity(
                ds,
                override_linearity=files["linearity"],
                override_inverselinearity=files["inverselinearity"],
                override_integralnonlinearity=files["integralnonlinearity"],
            ),
        ),
    ]
    ds = romanxr.open_uncal(files["uncal"])
    if report:
        print(f"exposure {dict(ds.sizes)}, chunks {dict(ds.chunksizes)}")
        print(f"romanxr, {dask.config.get('num_workers', None)} dask threads")
        print(f"{'step':<12}{'wall s':>9}{'cpu s':>9}{'peak extra MiB':>16}")
    for name, step in steps:
        with PeakRSS() as mem:
            start, cpu = time.perf_counter(), time.process_time()
            ds = step(ds).persist()
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        if report:
            _report(name, wall, cpu, mem)


if __name__ == "__main__":
    main()
