"""WFI18 first-read transient on plain ndarrays.

WFI18 shows a glow in its first read that decays with readout time. The model is a double
exponential in the pixel read time ``t`` (from :mod:`romanxr.kernels.timing`),
``a * exp(-t / tau_a) + b * exp(-t / tau_b)``, fitted to per-row means of the first resultant's
excess over a backward extrapolation from resultants 1 and 2. Fit parameters travel as one
5-vector ``[ok, a, b, tau_a, tau_b]`` (``ok`` = 1.0 when the fit succeeded) so that the reduce
(row statistics, fit) and apply (subtract or mask) halves can be separate lazy stages.
"""

from __future__ import annotations

import numpy as np

from romanxr.kernels.quiet import ignoring

__all__ = [
    "N_MASKED_ROWS",
    "double_exponential",
    "first_read_residual",
    "fit_transient",
    "mask_transient_rows",
    "row_residual_means",
    "subtract_transient",
]

#: Rows 0..999 (absolute, full frame incl. border) of resultant 0 are masked when no fit is made.
N_MASKED_ROWS = 1000
#: Fewer resultants than this: no fit, mask instead.
MIN_RESULTANTS = 5


def double_exponential(t: np.ndarray, a: float, b: float, tau_a: float, tau_b: float) -> np.ndarray:
    """``a * exp(-t / tau_a) + b * exp(-t / tau_b)``."""
    return a * np.exp(-t / tau_a) + b * np.exp(-t / tau_b)


def first_read_residual(
    d0: np.ndarray, d1: np.ndarray, d2: np.ndarray, mean_time: np.ndarray
) -> np.ndarray:
    """Excess of resultant 0 over the line through resultants 1 and 2 (float64, DN)."""
    dt = np.diff(np.asarray(mean_time, dtype=np.float64))
    rate = (d2 - d1) / dt[1]
    return d0 - (d1 - rate * dt[0])


def row_residual_means(residual: np.ndarray, later_difference: np.ndarray) -> np.ndarray:
    """Per-row 3-sigma-clipped mean of ``residual`` over the faintly illuminated pixels.

    Pixels whose ``later_difference`` (resultant 4 minus 3) exceeds the median of their row are
    excluded; clipping uses astropy's defaults (median centre, standard deviation, 5 iterations).
    Works row by row, so any block of whole rows gives the same answer as the full frame.
    """
    from astropy.stats import sigma_clipped_stats

    if residual.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    # Non-finite pixels are masked here rather than left to astropy (which clips them with a
    # warning), and rows with no usable pixel are not passed at all (their mean is NaN; the fit
    # then fails and the caller masks instead). No warnings filter is touched: filters are
    # process-global, and this runs in dask's worker threads.
    bright = later_difference > np.median(later_difference, axis=1, keepdims=True)
    excluded = bright | ~np.isfinite(residual)
    usable = ~excluded.all(axis=1)
    means = np.full(residual.shape[0], np.nan, dtype=np.float64)
    if usable.any():
        mean, _, _ = sigma_clipped_stats(residual[usable], mask=excluded[usable], sigma=3.0, axis=1)
        means[usable] = mean
    return means


def fit_transient(
    row_means: np.ndarray, row_times: np.ndarray, tau_guesses: tuple[float, float]
) -> np.ndarray:
    """Fit the double exponential to the row means; ``[ok, a, b, tau_a, tau_b]``.

    The start is ``[1.1 r0, -0.1 r0, tau_guesses...]`` with ``r0`` the first row mean. ``ok`` is 0
    when the fit fails (non-finite input, no convergence), and the caller masks instead.
    """
    from scipy import optimize

    row_means = np.asarray(row_means, dtype=np.float64)
    if row_means.size < 4:
        return np.array([0.0, 0.0, 0.0, 1.0, 1.0])
    p0 = [row_means[0] * 1.1, row_means[0] * -0.1, tau_guesses[0], tau_guesses[1]]
    try:
        with ignoring(optimize.OptimizeWarning):
            params, _ = optimize.curve_fit(double_exponential, row_times, row_means, p0=p0)
    except (ValueError, RuntimeError):
        return np.array([0.0, 0.0, 0.0, 1.0, 1.0])
    return np.concatenate([[1.0], params])


def subtract_transient(
    data: np.ndarray,
    row_times: np.ndarray,
    col_times: np.ndarray,
    science: np.ndarray,
    params: np.ndarray,
) -> np.ndarray:
    """Copy of ``data`` (resultant, y, x) with the fitted model subtracted from resultant 0.

    Only pixels where ``science`` (y, x) is true change, and only when ``params[0]`` (ok) is set.
    """
    out = data.copy()
    if params[0] and out.shape[0]:
        t = row_times[:, None] + col_times[None, :]
        model = double_exponential(t, *params[1:])
        out[0] = np.where(science, out[0] - model, out[0])
    return out


def mask_transient_rows(
    groupdq: np.ndarray, y: np.ndarray, params: np.ndarray, flag: int
) -> np.ndarray:
    """Copy of ``groupdq`` with ``flag`` OR-ed into resultant 0 at absolute rows < 1000.

    Applied only when the fit did not succeed (``params[0] == 0``).
    """
    out = groupdq.copy()
    if not params[0] and out.shape[0]:
        rows = np.asarray(y) < N_MASKED_ROWS
        out[0, rows, :] |= np.asarray(flag, dtype=out.dtype)
    return out
