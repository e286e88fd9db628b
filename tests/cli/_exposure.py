"""One small simulated exposure with its reference set and an offline CRDS cache.

32 x 256 pixels (with the 4-pixel border): ``refpix`` needs whole rows of an even number of
128-column channels, and 32 rows keep every step fast. Built once per test module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from romanxr.testing import make_detector, make_reference_set, simulate_exposure
from romanxr.testing.crds_cache import LocalCrdsCache, build_local_crds_cache

SHAPE = (32, 256)
UNCAL_NAME = "r0000101001001001001_0001_wfi01_uncal.asdf"
CAL_NAME = "r0000101001001001001_0001_wfi01_cal.asdf"


@dataclass
class Exposure:
    """Paths of the simulated exposure, its references and the CRDS cache."""

    folder: Path
    uncal: Path
    references: dict[str, Path]
    cache: LocalCrdsCache


def make_exposure(folder: Path, seed: int = 11, *, catalog: bool = False) -> Exposure:
    """Simulate the exposure (with cosmic-ray jumps) and write references and a CRDS cache
    (with ``catalog``, the APCORR/EPSF references source_catalog needs too)."""
    folder.mkdir(parents=True, exist_ok=True)
    detector = make_detector(SHAPE, seed=seed)
    references = make_reference_set(folder / "references", detector)
    if catalog:
        from romanxr.testing.catalog_refs import add_catalog_references

        add_catalog_references(references)
    cache = build_local_crds_cache(folder / "crds_cache", references)
    (folder / "data").mkdir(exist_ok=True)
    sim = simulate_exposure(detector, seed=seed, path=folder / "data")
    assert sim.path.name == UNCAL_NAME
    return Exposure(folder, sim.path, dict(references.paths), cache)
