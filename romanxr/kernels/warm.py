"""Compile a group of kernels into numba's on-disk cache: ``python -m romanxr.kernels.warm``.

Run as a helper process by :mod:`romanxr.schedule.compile_ahead` when the cache is empty
(the first run after an install): each group calls its public kernel once on a tiny block
with the argument types the pipeline passes (the public wrappers make every array contiguous
with a fixed dtype, so the compiled specialisation is the one a real exposure needs), and
numba writes the machine code to its cache for the calling process to load.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["GROUPS", "warm"]


def _ramp_likely() -> None:
    from romanxr.kernels.ramp_likely import likely_fit_block

    nres, ny, nx = 6, 2, 3
    rng = np.random.default_rng(0)
    data = np.cumsum(rng.normal(10.0, 1.0, (nres, ny, nx)), axis=0).astype(np.float32)
    groupdq = np.zeros((nres, ny, nx), np.uint8)
    pixeldq = np.zeros((ny, nx), np.uint32)
    readnoise = np.full((ny, nx), 5.0, np.float32)
    gain = np.full((ny, nx), 2.0, np.float32)
    n_reads = np.full(nres, 2, np.int64)
    mean_time = np.arange(1, nres + 1, dtype=np.float64) * 6.0
    variance_time = mean_time - 1.0
    timing = {"mean_time": mean_time, "n_reads": n_reads, "variance_time": variance_time}
    likely_fit_block(data, groupdq, pixeldq, readnoise, gain, **timing)


#: the groups a helper can compile, by name
GROUPS = {"ramp_likely": _ramp_likely}


def warm(name: str) -> None:
    """Compile the kernels of group ``name`` (numba caches them on disk)."""
    GROUPS[name]()


if __name__ == "__main__":  # pragma: no cover - run in a helper process
    for group in sys.argv[1:]:
        warm(group)
