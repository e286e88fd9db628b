"""The row-at-a-time saturation kernel equals the plane-at-a-time one on random ramps."""

from __future__ import annotations

import numpy as np
import pytest

from romanxr.kernels import saturation as kernel
from romanxr.kernels.saturation import read_pattern_arrays, saturation_flags

NO_SAT_CHECK = 1 << 21
READ_PATTERN = [[1], [2, 3], [4, 5, 6], [7], [8, 9, 10, 11], [12, 13]]


def _case(seed, ny=5, nx=33):
    rng = np.random.default_rng(seed)
    nres = len(READ_PATTERN)
    mean, last, n = read_pattern_arrays(READ_PATTERN)
    rate = rng.uniform(-100, 9000, (ny, nx))
    data = rng.uniform(-300, 20000, (ny, nx)) + rate * mean[:, None, None]
    data = np.round(data).astype(np.float32)
    gdq = (rng.random((nres, ny, nx)) < 0.1).astype(np.uint8) * rng.choice(
        [1, 2, 4], (nres, ny, nx)
    )
    pdq = (rng.random((ny, nx)) < 0.2).astype(np.uint32) * 8
    thresh = rng.uniform(30000, 60000, (ny, nx)).astype(np.float32)
    thresh[0, :3] = np.nan
    tdq = np.where(rng.random((ny, nx)) < 0.1, NO_SAT_CHECK, 0).astype(np.uint32)
    tdq[1, :2] |= 4
    # second-resultant rule: a jump into saturation within resultant 1
    data[:, 2, 5] = [1000, 40000, 65000, 65000, 65000, 65000]
    thresh[2, 5] = 50000
    data[:, 3, 7] = [5, -1, 0, 3, -2, 4]  # A/D floor
    data[:, 4, 8] = [100, 45000, 47000, 50000, 51000, 60000]  # dilution of resultant 4
    thresh[4, 8], tdq[4, 8] = 55000, 0
    return data, gdq, pdq, thresh, tdq, mean, last, n


@pytest.mark.parametrize("backup", [0, 1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rows_kernel_equals_plane_kernel(seed, backup):
    data, gdq, pdq, thresh, tdq, mean, last, n = _case(seed)
    inputs = [a.copy() for a in (data, gdq, pdq, thresh, tdq)]
    g, p = saturation_flags(
        data, gdq, pdq, thresh, tdq, mean_read=mean, last_read=last, n_reads=n, backup=backup
    )
    want = kernel._flag(data, gdq, thresh, tdq, mean, last, n, 0, backup)
    np.testing.assert_array_equal(g, want)
    assert g.dtype == np.uint8 and p.dtype == np.uint32
    expected_p = pdq | tdq | np.where(np.isnan(thresh), NO_SAT_CHECK, 0).astype(np.uint32)
    np.testing.assert_array_equal(p, expected_p)
    for a, b in zip(inputs, (data, gdq, pdq, thresh, tdq), strict=True):
        np.testing.assert_array_equal(a, b)  # inputs untouched
    # the case exercises the rules: saturation, A/D floor, dilution or second-resultant DNU
    assert (want & 2).any() and (want & 64).any() and ((want & 1) & ~(gdq & 1)).any()


def test_strided_inputs():
    data, gdq, pdq, thresh, tdq, mean, last, n = _case(4)
    wide = np.zeros((*data.shape[:2], 2 * data.shape[2]), np.float32)
    wide[:, :, ::2] = data
    kw = {"mean_read": mean, "last_read": last, "n_reads": n}
    a = saturation_flags(data, gdq, pdq, thresh, tdq, **kw)
    b = saturation_flags(wide[:, :, ::2], np.asfortranarray(gdq), pdq, thresh, tdq, **kw)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
