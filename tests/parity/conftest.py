"""Shared oracle fixture: one small simulated exposure calibrated by romancal 1.1.0 and by
romanxr, both fully offline through the same local CRDS cache (the real ``crds`` client, no
overrides).

romancal's refpix and dark_decay only run on 4096x4096 frames, and source_catalog/tweakreg need
real stars and catalogs, so on the small frame romancal skips those four and romanxr skips
refpix and dark_decay (it has no source_catalog/tweakreg).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: frame size of the oracle exposure (incl. the 4-pixel reference border)
ORACLE_SHAPE = (64, 64)
ORACLE_SEED = 5
#: sky (e-/s per pixel) under the default stars, bright enough that the median slope is tight
ORACLE_SKY = 40.0
#: romancal steps that cannot run on a small simulated frame
ROMANCAL_SKIP_SMALL = ("refpix", "dark_decay", "source_catalog", "tweakreg")
#: romanxr steps skipped so both tools run the same chain
ROMANXR_SKIP_SMALL = ("refpix", "dark_decay")


@dataclass
class OracleRun:
    """Paths and objects of the shared oracle run."""

    uncal: Path
    references: Any  # romanxr.testing.ReferenceSet
    cache: Any  # romanxr.testing.crds_cache.LocalCrdsCache
    truth: Any  # romanxr.testing.SimulationTruth
    romancal_cal: Path
    romanxr_cal: Path
    romanxr_ds: Any  # the Dataset calibrate returned (lazy)
    sources: dict[str, Any]  # the simulated stars: x, y (absolute pixels), flux, saturating


def run_romancal_offline(uncal: Path, cache: Any, *, skip: tuple[str, ...]) -> Any:
    """romancal 1.1.0 ExposurePipeline on ``uncal`` with references from ``cache`` only."""
    from romancal.pipeline import ExposurePipeline

    with cache.activate():
        steps = {name: {"skip": True} for name in skip}
        result = ExposurePipeline.call(str(uncal), steps=steps, save_results=False)
    return result[0] if isinstance(result, tuple | list) else result


@pytest.fixture(scope="session")
def oracle_run(tmp_path_factory) -> OracleRun:
    """Simulate, build the cache, run romancal and romanxr once for the whole session."""
    pytest.importorskip("romancal")
    return make_oracle_run(tmp_path_factory.mktemp("oracle"))


def make_oracle_run(folder: Path) -> OracleRun:
    """The oracle run in ``folder`` (an empty folder)."""
    from romanxr.pipeline import calibrate
    from romanxr.testing import (
        make_detector,
        make_reference_set,
        make_scene,
        simulate_exposure,
    )
    from romanxr.testing.crds_cache import build_local_crds_cache

    # refpix and dark_decay cannot run on a small frame: simulate no drift and no dark decay
    det = make_detector(
        ORACLE_SHAPE, seed=ORACLE_SEED, drift_amplitude=0.0, dark_decay_amplitude=0.0
    )
    refs = make_reference_set(folder / "references", det)
    cache = build_local_crds_cache(folder / "crds_cache", refs)
    (folder / "input").mkdir()
    scene, sources = make_scene(det.science_shape, seed=ORACLE_SEED, sky=ORACLE_SKY)
    sim = simulate_exposure(det, seed=ORACLE_SEED, scene=scene, path=folder / "input")

    image = run_romancal_offline(sim.path, cache, skip=ROMANCAL_SKIP_SMALL)
    romancal_cal = folder / "romancal" / "cal.asdf"
    romancal_cal.parent.mkdir()
    image.save(romancal_cal)

    romanxr_cal = folder / "romanxr" / "cal.asdf"
    romanxr_cal.parent.mkdir()
    with cache.activate():
        ds = calibrate(
            sim.path,
            steps={name: {"skip": True} for name in ROMANXR_SKIP_SMALL},
            output=romanxr_cal,
        )
    return OracleRun(sim.path, refs, cache, sim.truth, romancal_cal, romanxr_cal, ds, sources)
