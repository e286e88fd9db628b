"""Public test helpers: synthetic exposures with known truth, reference sets, CRDS caches.

>>> from romanxr.testing import make_detector, simulate_exposure, make_reference_set
>>> det = make_detector((32, 32), seed=1)
>>> sim = simulate_exposure(det, seed=1, path=tmp_dir)          # doctest: +SKIP
>>> refs = make_reference_set(tmp_dir / "refs", det)             # doctest: +SKIP
>>> sim.truth.rate, sim.truth.jumps, refs["linearity"]           # doctest: +SKIP
"""

from romanxr.testing.detector import DetectorModel, DriftModel, evaluate_polynomial, make_detector
from romanxr.testing.exposure_meta import exposure_file_name
from romanxr.testing.references import (
    REFTYPES,
    ReferenceSet,
    make_reference_set,
    reference_file_name,
    refpix_coefficients,
)
from romanxr.testing.scene import make_scene
from romanxr.testing.simulate import (
    DEFAULT_READ_PATTERN,
    SimulatedExposure,
    SimulationTruth,
    simulate_exposure,
)
from romanxr.testing.wfi_exposure import SimulatedWfiExposure, simulate_wfi_exposure

__all__ = [
    "DEFAULT_READ_PATTERN",
    "REFTYPES",
    "DetectorModel",
    "DriftModel",
    "ReferenceSet",
    "SimulatedExposure",
    "SimulatedWfiExposure",
    "SimulationTruth",
    "evaluate_polynomial",
    "exposure_file_name",
    "make_detector",
    "make_reference_set",
    "make_scene",
    "reference_file_name",
    "refpix_coefficients",
    "simulate_exposure",
    "simulate_wfi_exposure",
]
