"""Synthetic scenes for simulated exposures: a uniform sky and Gaussian point sources."""

from __future__ import annotations

import numpy as np

from romanxr.dataset import BORDER

__all__ = ["make_scene", "render_sources"]


def make_scene(
    science_shape: tuple[int, int],
    *,
    seed: int = 0,
    sky: float = 1.0,
    n_stars: int | None = None,
    n_saturating: int | None = None,
    psf_sigma: float = 1.2,
    flux_range: tuple[float, float] = (50.0, 5000.0),
    saturating_flux_range: tuple[float, float] = (6e4, 2e5),
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sky plus Gaussian point sources on the science area (electrons per second per pixel).

    Parameters
    ----------
    science_shape : (ny, nx)
        Science-area shape (frame minus the border).
    seed : int
        Random seed.
    sky : float
        Uniform sky (e-/s per pixel).
    n_stars, n_saturating : int, optional
        Number of ordinary and of saturating stars (default: 1 per 400 pixels, at least 2; and
        1 per 40000 pixels, at least 1).
    psf_sigma : float
        Gaussian PSF sigma (pixels).
    flux_range, saturating_flux_range : (float, float)
        Log-uniform total fluxes (e-/s).

    Returns
    -------
    scene : ndarray float64
        e-/s per pixel.
    sources : dict of ndarray
        ``x``, ``y`` (absolute detector pixels), ``flux``, ``saturating``.
    """
    sy, sx = science_shape
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7002]))
    n_stars = max(2, sy * sx // 400) if n_stars is None else int(n_stars)
    n_saturating = max(1, sy * sx // 40000) if n_saturating is None else int(n_saturating)
    n = n_stars + n_saturating
    margin = min(3.0, (min(sy, sx) - 1) / 2)
    xs = rng.uniform(margin, sx - 1 - margin, n)
    ys = rng.uniform(margin, sy - 1 - margin, n)
    flux = np.exp(rng.uniform(*np.log(flux_range), n))
    flux[n_stars:] = np.exp(rng.uniform(*np.log(saturating_flux_range), n_saturating))
    scene = render_sources((sy, sx), xs, ys, flux, sky=sky, psf_sigma=psf_sigma)
    sources = {
        "x": xs + BORDER,
        "y": ys + BORDER,
        "flux": flux,
        "saturating": np.arange(n) >= n_stars,
    }
    return scene, sources


def render_sources(
    science_shape: tuple[int, int],
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    *,
    sky: float = 1.0,
    psf_sigma: float = 1.2,
) -> np.ndarray:
    """Uniform sky plus Gaussian point sources (e-/s per pixel) on the science area.

    ``x``, ``y`` are 0-based science-area pixels (centres may lie outside the area: the part
    of the PSF that falls on it is drawn); ``flux`` is the total of each source (e-/s).
    """
    sy, sx = science_shape
    scene = np.full((sy, sx), float(sky), dtype=np.float64)
    half = int(np.ceil(5 * psf_sigma))
    for x0, y0, f in zip(np.asarray(x), np.asarray(y), np.asarray(flux), strict=True):
        ix, iy = round(x0), round(y0)
        ylo, yhi = max(iy - half, 0), min(iy + half + 1, sy)
        xlo, xhi = max(ix - half, 0), min(ix + half + 1, sx)
        if ylo >= yhi or xlo >= xhi:
            continue
        yy = np.arange(ylo, yhi)[:, None] - y0
        xx = np.arange(xlo, xhi)[None, :] - x0
        scene[ylo:yhi, xlo:xhi] += (
            f / (2 * np.pi * psf_sigma**2) * np.exp(-(xx**2 + yy**2) / (2 * psf_sigma**2))
        )
    return scene
