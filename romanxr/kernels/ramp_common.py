"""Read-pattern constants shared by the ramp-fitting kernels (plain numpy, no xarray)."""

from __future__ import annotations

import math

import numpy as np

from romanxr.dq import GroupFlag, PixelFlag

__all__ = [
    "difference_covariance_terms",
    "jump_indices_from_flags",
    "jump_thresholds",
    "uniform_slope_weights",
]

# DQ bits the ramp kernels test and set, from romanxr.dq (numba freezes them as constants):
# group bits as plain ints, pixel bits as uint32 so that ``|=`` keeps the uint32 type
_G_DNU = int(GroupFlag.DO_NOT_USE)
_G_SAT = int(GroupFlag.SATURATED)
_G_JUMP = int(GroupFlag.JUMP_DET)
_P_DNU = np.uint32(int(PixelFlag.DO_NOT_USE))
_P_SAT = np.uint32(int(PixelFlag.SATURATED))
_P_JUMP = np.uint32(int(PixelFlag.JUMP_DET))
_P_NO_GAIN = np.uint32(int(PixelFlag.NO_GAIN_VALUE))


def difference_covariance_terms(
    mean_time: np.ndarray, n_reads: np.ndarray, variance_time: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-read-pattern pieces of the covariance of resultant differences (Brandt 2024).

    The differences ``d_i = (R_{i+1} - R_i) / dt_i`` (DN/s) have a tridiagonal covariance
    ``C = sigma**2 * C_R + (rate / gain) * C_P``; this returns the read-noise and Poisson parts
    of its diagonal (``alpha``) and off-diagonal (``beta``) without the per-pixel factors.

    Parameters
    ----------
    mean_time, n_reads, variance_time : ndarray
        ``t_bar``, ``n`` and ``tau`` per resultant (s, count, s).

    Returns
    -------
    dt, alpha_read, beta_read, alpha_poisson, beta_poisson : ndarray (float64)
        ``dt`` and the ``alpha`` terms have one entry per difference (``nres - 1``), the ``beta``
        terms one per adjacent pair of differences (``nres - 2``).
    """
    t = np.asarray(mean_time, dtype=np.float64)
    n = np.asarray(n_reads, dtype=np.float64)
    tau = np.asarray(variance_time, dtype=np.float64)
    dt = np.diff(t)
    alpha_read = (1.0 / n[:-1] + 1.0 / n[1:]) / dt**2
    beta_read = -1.0 / (n[1:-1] * dt[1:] * dt[:-1])
    alpha_poisson = (tau[:-1] + tau[1:] - 2.0 * t[:-1]) / dt**2
    beta_poisson = (t[1:-1] - tau[1:-1]) / (dt[1:] * dt[:-1])
    return dt, alpha_read, beta_read, alpha_poisson, beta_poisson


def jump_thresholds(rejection_threshold: float) -> tuple[float, float]:
    """Chi-square improvements needed to drop one or two resultant differences.

    ``T1 = k**2`` (one extra free parameter at ``k`` sigma) and ``T2`` the 2-dof chi-square with
    the same tail probability, ``-2 ln(erfc(k / sqrt 2))``; where that overflows (k above ~38),
    ``T2 = T1 + 10`` as stcal does.
    """
    k = float(rejection_threshold)
    t1 = k * k
    p = math.erfc(k / math.sqrt(2.0))
    t2 = -2.0 * math.log(p) if p > 0 else math.inf
    if not math.isfinite(t2):
        t2 = t1 + 10.0
    return t1, t2


def uniform_slope_weights(mean_time: np.ndarray, n_reads: np.ndarray) -> np.ndarray:
    """Weights over resultants of the read-noise-limit (uniform) least-squares slope.

    ``slope_uniform = sum_i w_i R_i`` with ``w_i = n_i (N t_i - Nt) / (N Ntt - Nt**2)``, where
    ``N = sum n``, ``Nt = sum n t`` and ``Ntt = sum n t**2``: every read weighted equally.
    """
    t = np.asarray(mean_time, dtype=np.float64)
    n = np.asarray(n_reads, dtype=np.float64)
    big_n = n.sum()
    nt = (n * t).sum()
    ntt = (n * t * t).sum()
    return n * (big_n * t - nt) / (big_n * ntt - nt * nt)


def jump_indices_from_flags(
    jumps: np.ndarray, y: np.ndarray, x: np.ndarray, border: int = 4
) -> np.ndarray:
    """romancal's ``jump_indices`` from a boolean ``(resultant, y, x)`` jump map.

    Parameters
    ----------
    jumps : ndarray of bool, shape (n_resultants, ny, nx)
        True where a jump was detected (in that resultant).
    y, x : ndarray of int
        Absolute detector coordinates of the rows and columns of ``jumps``.
    border : int
        Width of the reference border: rows/columns are given in the science frame.

    Returns
    -------
    ndarray of int16, shape (N, 3)
        Rows ``(resultant, y - border, x - border)``.
    """
    res, iy, ix = np.nonzero(np.asarray(jumps))
    return np.stack([res, np.asarray(y)[iy] - border, np.asarray(x)[ix] - border], axis=1).astype(
        np.int16
    )
