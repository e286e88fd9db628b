"""A small batch of simulated exposures on disk: several detectors and exposures, their
reference sets and one offline CRDS cache that selects each detector's references.

32 x 256 pixels per detector (refpix needs whole 128-column channels); built once per module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from romanxr.testing import exposure_file_name, make_detector, make_reference_set, simulate_exposure
from romanxr.testing.crds_cache import LocalCrdsCache, build_local_crds_cache

SHAPE = (32, 256)


@dataclass
class Batch:
    """The member files (in order), where they are, and the CRDS cache."""

    folder: Path
    members: list[Path]
    cache: LocalCrdsCache


def make_batch(
    folder: Path,
    detectors: tuple[str, ...] = ("WFI01", "WFI02"),
    exposures: int = 1,
    *,
    catalog: bool = False,
) -> Batch:
    """``exposures`` x ``detectors`` uncal files in ``folder/data`` (Roman names); with
    ``catalog`` the cache also has the APCORR/EPSF references source_catalog needs."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    references: list[Path] = []
    members: list[Path] = []
    for d, name in enumerate(detectors):
        detector = make_detector(SHAPE, seed=20 + d, detector=name)
        refs = make_reference_set(folder / "references" / name, detector)
        if catalog:
            from romanxr.testing.catalog_refs import add_catalog_references

            add_catalog_references(refs)
        # one darkdecaysignal file serves every detector (CRDS selects it by date only)
        references += [p for t, p in refs.paths.items() if t != "darkdecaysignal" or d == 0]
        for e in range(1, exposures + 1):
            path = data / exposure_file_name(name, exposure=e)
            members.append(simulate_exposure(detector, seed=100 * d + e, path=path).path)
    cache = build_local_crds_cache(folder / "crds_cache", references)
    return Batch(folder, sorted(members), cache)
