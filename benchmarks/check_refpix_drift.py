"""How well romancal's refpix, with the simulated REFPIX coefficients, removes the drift.

Simulates the same (ny x 4096) exposure twice, with and without the common-mode drift (same
seeds, so identical noise), runs romancal's dq_init + refpix core on both and prints the rms of
the drift before and after correction. Needs romancal (the oracle). Usage:

    STPIPE_DISABLE_CRDS_STEPPARS=True python benchmarks/check_refpix_drift.py [ny]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import roman_datamodels.datamodels as dm
import stpipe.crds_client
from romancal.dq_init.dq_init_step import DQInitStep
from romancal.refpix import refpix

from romanxr.testing import make_detector, make_reference_set, simulate_exposure


def main() -> None:
    ny = int(sys.argv[1]) if len(sys.argv) > 1 else 128
    # no CRDS cache: stpipe only asks for the context name to record it
    stpipe.crds_client.get_context_used = lambda observatory: "roman_0000.pmap"
    work = Path(tempfile.mkdtemp())
    out = {}
    for amp in (20.0, 0.0):
        det = make_detector((ny, 4096), seed=5, drift_amplitude=amp)
        (work / f"a{amp}").mkdir()
        sim = simulate_exposure(det, seed=5, path=work / f"a{amp}", scene=5.0, n_jumps=0)
        refs = make_reference_set(work / f"r{amp}", det, reftypes=("mask", "refpix"))
        ramp = DQInitStep.call(str(sim.path), override_mask=str(refs["mask"]))
        raw = ramp.data.copy()
        with dm.open(refs["refpix"]) as coeffs:
            refpix.run_steps(ramp, coeffs, True, True, True, True, True)
        out[amp] = (raw, ramp.data.copy())
    raw_d, cor_d = out[20.0]
    raw_0, cor_0 = out[0.0]

    def demean(a: np.ndarray) -> np.ndarray:
        return a - a.mean(axis=0)

    sci = np.s_[:, 4:-4, 4:-4]
    print(
        "drift (rms over science pixels, per-pixel mean removed):",
        np.std(demean(raw_d - raw_0)[sci]),
    )
    print("after refpix, vs refpix of the drift-free twin:", np.std(demean(cor_d - cor_0)[sci]))
    print("after refpix, vs the drift-free raw data:", np.std(demean(cor_d - raw_0)[sci]))
    print("per-resultant mean residual:", demean(cor_d - cor_0)[sci].mean(axis=(1, 2)))
    print("rms of resultant differences (noise scale):", np.std(np.diff(raw_0[sci], axis=0)))


if __name__ == "__main__":
    main()
