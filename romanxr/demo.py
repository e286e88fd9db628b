"""The embedded default job: simulate an exposure with its own reference set, resolve the
references through a local CRDS cache with the real ``crds`` client, calibrate, and write the
cal.asdf, its source catalog and segmentation map, and a quicklook PNG with the detected
sources circled. Run it with ``romanxr demo`` (``make demo``)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

__all__ = ["calibrate_files", "describe_truth", "run_demo", "run_exposure_demo", "warm_kernels"]


def describe_truth(name: str, truth: object) -> str:
    """One line on what a simulated exposure holds, counted from its truth record.

    Parameters
    ----------
    name : str
        The file name to print.
    truth : romanxr.testing.simulate.SimulationTruth
        The simulation's truth (``jumps`` and ``sources`` are dicts of equal-length arrays).
    """
    ny, nx = truth.first_saturated_read.shape
    jumps = len(truth.jumps["y"])
    stars = len(truth.sources["flux"])
    saturating = int(truth.sources["saturating"].sum())
    return (
        f"{name} ({ny}x{nx}, {len(truth.read_pattern)} resultants, {stars} stars of which "
        f"{saturating} saturate, {jumps} cosmic-ray jumps)"
    )


def run_demo(
    folder: str | Path, *, size: int = 256, seed: int = 2026, progress: bool | None = None
) -> dict[str, Path]:
    """Run the demo in ``folder`` and return the paths it wrote.

    Parameters
    ----------
    folder : path
        Output folder (created): ``references/``, ``crds_cache/``, the uncal and cal files,
        the cal's ``_cat.parquet`` and ``_segm.asdf``, ``quicklook.png`` (the detected
        sources circled) and ``crds.env`` (the shell settings that point crds at the cache).
    size : int
        Frame size in pixels including the 4-pixel reference border: a multiple of 256
        (refpix works on whole rows of an even number of 128-column channels).
    seed : int
        Random seed of the simulation.
    progress : bool or None
        The calibration's progress bar on stderr: None (default) redraws it in place on a
        terminal or in a notebook and writes one line per step elsewhere; True always redraws
        it; False shows nothing.

    Notes
    -----
    On a cold numba cache (the first run after an install) the ramp-fit kernel compiles in a
    helper process on another core while the exposure is simulated
    (:func:`romanxr.schedule.compile_ahead.compiling_ahead`).
    """
    if size < 256 or size % 256:
        from romanxr.errors import ConfigError

        raise ConfigError(
            f"demo size must be a multiple of 256 (refpix needs whole rows of an even number "
            f"of 128-column channels), got {size}"
        )
    from romanxr.schedule.compile_ahead import compiling_ahead

    with compiling_ahead("ramp_likely"):
        return _run_demo(Path(folder), size=size, seed=seed, progress=progress)


def _run_demo(folder: Path, *, size: int, seed: int, progress: bool | None) -> dict[str, Path]:
    import romanxr
    from romanxr.pipeline import (
        calibrate,
        output_name,
        plan,
        references_of,
        resolve_step_options,
    )
    from romanxr.plot import quicklook_png
    from romanxr.refs import ReferenceResolver
    from romanxr.schedule.progress import progress_for
    from romanxr.testing import make_detector, make_reference_set, simulate_exposure
    from romanxr.testing.catalog_refs import add_catalog_references
    from romanxr.testing.crds_cache import build_local_crds_cache

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    detector = make_detector((size, size), seed=seed)
    # with the APCORR/EPSF references source_catalog needs (tweakreg has no local
    # catalogue to align to here: it is SKIPPED, the reason logged)
    references = add_catalog_references(make_reference_set(folder / "references", detector))
    cache = build_local_crds_cache(folder / "crds_cache", references)
    sim = simulate_exposure(detector, seed=seed, path=folder)
    print(
        f"simulated {describe_truth(sim.path.name, sim.truth)} in {time.perf_counter() - t0:.1f} s"
    )

    with cache.activate():  # CRDS_PATH etc. point at the local cache, no server
        ds = romanxr.open_uncal(sim.path)
        print("\nThe exposure, opened lazily (no pixel read yet):")
        print(ds)
        print(f"\nReference files resolved by the crds client (context {cache.context}):")
        resolver = ReferenceResolver()
        for run in plan(resolve_step_options(), ds):
            for found in references_of(run, ds, resolver):
                if found.error is not None:
                    raise found.error
                print(f"  {run.name:16s} {found.reftype:22s} {found.resolved.name}")
        out = output_name(sim.path, "cal")
        t1 = time.perf_counter()
        with progress_for(progress, f"calibrate {sim.path.name}"):
            cal = calibrate(ds, output=out, overwrite=True)
        print(f"\ncalibrated and wrote {out.name} in {time.perf_counter() - t1:.1f} s")
    steps = cal.attrs["meta"].get("cal_step", {})
    # the catalog calibrate measured (and wrote beside the cal, by the Roman naming rule)
    catalog = cal.roman.catalog if "source_catalog" in cal.attrs else None
    cat_path, segm_path = output_name(out, "cat", ".parquet"), output_name(out, "segm")
    print("cal_step: " + ", ".join(f"{k}={v}" for k, v in steps.items()))
    cal = romanxr.open_cal(out)
    if catalog is not None:
        print(f"source catalog: {len(catalog)} sources in {cat_path.name}, {segm_path.name}")
    title = f"{out.name}: slope (DN/s)"
    png = quicklook_png(cal, folder / "quicklook.png", title=title, ramp=ds, catalog=catalog)
    truth = sim.truth.scene_rate
    good = (cal["dq"].values & 1) == 0
    ratio = cal["data"].values[good] / truth[good]
    print(f"quicklook: {png}")
    import numpy as np

    print(f"median(calibrated / true rate) over good pixels: {float(np.nanmedian(ratio)):.4f}")
    env_file = folder / "crds.env"
    env_file.write_text(
        "# point crds at the demo's local cache (no server needed): source this file\n"
        + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(cache.environ().items()))
    )
    print("\nTo calibrate with these references again, in a shell:")
    print(f"  source {env_file}")
    print(f"  romanxr calibrate {sim.path}")
    return {
        "uncal": sim.path,
        "cal": out,
        "catalog": cat_path,
        "segmentation": segm_path,
        "png": png,
        "references": folder / "references",
        "crds_cache": cache.path,
        "crds_env": env_file,
    }


def warm_kernels(*, size: int = 256, seed: int = 2026) -> None:
    """Compile every numba kernel of a calibration into numba's on-disk cache.

    What the first calibration after an install would otherwise do, tens of seconds of CPU
    before its first pixel (``romanxr warm``; ``make`` runs it after installing): an
    exposure of ``size`` by ``size`` pixels is simulated with its reference set in a
    temporary folder and calibrated into a cal.asdf there, with every step but
    source_catalog and tweakreg (which have no numba kernel), so each kernel is compiled for
    the argument types a calibration of any frame size passes it. The ramp-fit kernel
    compiles in a helper process on another core meanwhile
    (:func:`romanxr.schedule.compile_ahead.compiling_ahead`).

    Parameters
    ----------
    size : int
        Frame size of the exposure simulated (a multiple of 256, as refpix needs).
    seed : int
        Random seed of the simulation.
    """
    import tempfile

    from romanxr.pipeline import calibrate
    from romanxr.schedule.compile_ahead import compiling_ahead
    from romanxr.testing import make_detector, make_reference_set, simulate_exposure

    skipped = {"source_catalog": {"skip": True}, "tweakreg": {"skip": True}}
    with compiling_ahead("ramp_likely"), tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        detector = make_detector((size, size), seed=seed)
        references = make_reference_set(folder / "references", detector)
        sim = simulate_exposure(detector, seed=seed, path=folder)
        calibrate(
            sim.path,
            steps=skipped,
            overrides=references.overrides(),
            output=folder / "warm_cal.asdf",
        )


def calibrate_files(
    paths: list[Path], output_dir: Path, *, progress: bool | None = False
) -> list[Path]:
    """Calibrate uncal files into ``output_dir``; return the cal files, in the same order.

    The seam for the batch engine: today one :func:`romanxr.pipeline.calibrate` per file, one
    after another (references resolved through whatever CRDS settings are active), each with
    its labelled progress bar unless ``progress`` is False (see :func:`run_demo`).
    """
    from romanxr.pipeline import calibrate, output_name
    from romanxr.schedule.progress import progress_for

    outputs = []
    for n, path in enumerate(paths, start=1):
        out = Path(output_dir) / output_name(path, "cal").name
        with progress_for(progress, f"calibrate {Path(path).name} ({n}/{len(paths)})"):
            calibrate(path, output=out, overwrite=True)
        outputs.append(out)
    return outputs


def run_exposure_demo(
    folder: str | Path, *, detectors: int = 18, size: int = 256, seed: int = 2026
) -> dict[str, Path]:
    """The demo on a whole exposure: ``detectors`` detector files, calibrated, one mosaic.

    Parameters
    ----------
    folder : path
        Output folder: the uncal and cal files, ``references/``, ``crds_cache/`` and
        ``focal_plane.png``.
    detectors : int
        WFI01 ... WFI<detectors> (1 to 18).
    size : int
        Frame size of every detector (a multiple of 256).
    seed : int
        Random seed of the simulation.
    """
    import romanxr
    from romanxr.errors import ConfigError
    from romanxr.focal_plane import focal_plane_mosaic
    from romanxr.testing.wfi_exposure import simulate_wfi_exposure

    if not 1 <= detectors <= 18:
        raise ConfigError(f"--detectors must be 1 to 18 (WFI01 ... WFI18), got {detectors}")
    if size < 256 or size % 256:
        raise ConfigError(f"demo size must be a multiple of 256, got {size}")
    folder = Path(folder)
    t0 = time.perf_counter()
    sim = simulate_wfi_exposure(folder, range(1, detectors + 1), shape=(size, size), seed=seed)
    print(f"simulated {detectors} detectors in {time.perf_counter() - t0:.1f} s:")
    for exposure in sim.exposures.values():
        print("  " + describe_truth(exposure.path.name, exposure.truth))
    t1 = time.perf_counter()
    with sim.crds_cache.activate():
        cals = calibrate_files(sim.paths, folder)
    print(f"\ncalibrated {len(cals)} files in {time.perf_counter() - t1:.1f} s")
    images = [romanxr.open_cal(path) for path in cals]
    png = folder / "focal_plane.png"
    focal_plane_mosaic(images, png, title=f"{cals[0].name[:25]}: slope (DN/s)")
    print(f"focal-plane mosaic: {png}")
    return {"uncal": sim.paths, "cal": cals, "png": png, "crds_cache": sim.crds_cache.path}
