"""Simulate a whole WFI exposure: up to 18 detector files seeing one sky.

Every detector gets its own ``*_wfiNN_uncal.asdf`` (romancal's names), its own
``meta.instrument.detector``, its own detector model and reference set (its distortion puts it
at its place in the focal plane of :mod:`romanxr.focal_plane`) and its own pointing keywords,
all derived from one telescope attitude: the WFI centre at ``(ra, dec)`` with the V3 axis at
position angle ``roll`` there.

The sky is one star catalogue (RA, Dec, flux). It is drawn around the detectors' footprints
(stars up to a few pixels beyond each edge, at the density :func:`make_scene` uses) and every
detector renders every star whose PSF reaches its science area, placed through that
detector's own distortion and pointing. Detector footprints do not overlap on the WFI (there
are gaps between them), so a star lies on at most one detector.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from romanxr.dataset import BORDER
from romanxr.focal_plane import WFI_CENTRE_V2V3, detector_name
from romanxr.testing.detector import DetectorModel, make_detector
from romanxr.testing.references import REFTYPES, ReferenceSet, _distortion, make_reference_set
from romanxr.testing.scene import render_sources
from romanxr.testing.simulate import SimulatedExposure, simulate_exposure
from romanxr.wcs import v2v3_to_sky

__all__ = ["SimulatedWfiExposure", "detector_pointing", "simulate_wfi_exposure"]

#: Stars are drawn this many pixels beyond each edge of a detector.
EDGE_MARGIN = 4.0
_PSF_SIGMA = 1.2


@dataclass
class SimulatedWfiExposure:
    """A simulated multi-detector exposure on disk.

    Attributes
    ----------
    directory : pathlib.Path
        Where the uncal files are.
    files : dict
        Detector name -> the uncal file.
    reference_files : dict
        Detector name -> {reftype: path} (the dark decay file is one for all detectors, as in
        CRDS).
    exposures : dict
        Detector name -> :class:`~romanxr.testing.SimulatedExposure` (its truth included);
        empty when simulated with ``keep_truth=False``.
    references : dict
        Detector name -> :class:`~romanxr.testing.ReferenceSet`; empty with
        ``keep_truth=False``.
    catalog : dict of ndarray
        The sky: ``ra``, ``dec`` (deg), ``flux`` (e-/s), ``saturating``.
    crds_cache : LocalCrdsCache or None
        A local CRDS cache resolving every detector's references.
    pointing : (ra, dec, roll)
        The WFI centre and the V3 position angle there (deg).
    """

    directory: Path
    files: dict[str, Path]
    reference_files: dict[str, dict[str, Path]]
    exposures: dict[str, SimulatedExposure]
    references: dict[str, ReferenceSet]
    catalog: dict[str, np.ndarray]
    crds_cache: Any
    pointing: tuple[float, float, float]

    @property
    def paths(self) -> list[Path]:
        """The uncal files, in detector order."""
        return [self.files[name] for name in sorted(self.files)]


@dataclass(frozen=True)
class _Footprint:
    """What the focal-plane geometry needs of a detector: its name and science shape."""

    detector: str
    science_shape: tuple[int, int]


def detector_pointing(
    v2_ref: float, v3_ref: float, ra: float, dec: float, roll: float
) -> tuple[float, float, float]:
    """``(ra_ref, dec_ref, roll_ref)`` of a detector's reference point under one attitude.

    The attitude puts the WFI centre at ``(ra, dec)`` with the V3 position angle ``roll``;
    the result makes :func:`romanxr.wcs.v2v3_to_sky` of the detector the same rotation.
    """
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    common = v2v3_to_sky(*WFI_CENTRE_V2V3, roll, ra, dec)
    ra_ref, dec_ref = (float(c) for c in common(v2_ref, v3_ref))
    # the roll at the reference point: the V3 direction's position angle there
    up = common(v2_ref, v3_ref + 100.0)
    unrolled = v2v3_to_sky(v2_ref, v3_ref, 0.0, ra_ref, dec_ref)(v2_ref, v3_ref + 100.0)
    centre = SkyCoord(ra_ref * u.deg, dec_ref * u.deg)
    pa = centre.position_angle(SkyCoord(up[0] * u.deg, up[1] * u.deg)).deg
    pa0 = centre.position_angle(SkyCoord(unrolled[0] * u.deg, unrolled[1] * u.deg)).deg
    return ra_ref, dec_ref, float((pa - pa0) % 360.0)


def _sky_to_pixel(
    det: DetectorModel | _Footprint, v2: np.ndarray, v3: np.ndarray
) -> tuple[Any, Any]:
    return _distortion(det).inverse(v2, v3)


def _draw_catalog(
    dets: list[_Footprint], tel2sky: Any, seed: int
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The star catalogue, and its (V2, V3) under the common attitude."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7101]))
    v2s, v3s, fluxes, saturating = [], [], [], []
    for det in dets:
        sy, sx = det.science_shape
        n_stars, n_sat = max(2, sy * sx // 400), max(1, sy * sx // 40000)
        n = n_stars + n_sat
        x = rng.uniform(-EDGE_MARGIN, sx - 1 + EDGE_MARGIN, n)
        y = rng.uniform(-EDGE_MARGIN, sy - 1 + EDGE_MARGIN, n)
        flux = np.exp(rng.uniform(np.log(50.0), np.log(5000.0), n))
        flux[n_stars:] = np.exp(rng.uniform(np.log(6e4), np.log(2e5), n_sat))
        v2, v3 = _distortion(det)(x, y)
        v2s.append(v2)
        v3s.append(v3)
        fluxes.append(flux)
        saturating.append(np.arange(n) >= n_stars)
    v2, v3 = np.concatenate(v2s), np.concatenate(v3s)
    ra, dec = tel2sky(v2, v3)
    catalog = {
        "ra": np.asarray(ra),
        "dec": np.asarray(dec),
        "flux": np.concatenate(fluxes),
        "saturating": np.concatenate(saturating),
    }
    return catalog, v2, v3


def _dark_decay_for_all(path: Path, decay: dict[str, tuple[float, float]]) -> None:
    """One darkdecaysignal file with every detector's values (CRDS selects it by time).

    ``decay`` maps detector name -> (amplitude DN, time constant s).
    """
    from romanxr.io.asdf_setup import datamodels

    dm = datamodels()

    with dm.open(path) as model:
        table = dict(model.decay_table)
        for name, (amplitude, tau) in decay.items():
            table[name] = {"amplitude": amplitude, "time_constant": tau}
        model.decay_table = table
        model.meta.instrument.detector = "WFI01"
        model.save(path.with_suffix(".tmp.asdf"))
    os.replace(path.with_suffix(".tmp.asdf"), path)


def _simulate_detector(
    det: DetectorModel,
    catalog: dict[str, np.ndarray],
    v2: np.ndarray,
    v3: np.ndarray,
    half: int,
    seed: int,
    directory: Path,
    attitude: tuple[float, float, float],
    **simulate: Any,
) -> SimulatedExposure:
    """One detector's file: the catalogue stars its PSF reaches, at its own pointing."""
    ra, dec, roll = attitude
    sy, sx = det.science_shape
    x, y = (np.asarray(c) for c in _sky_to_pixel(det, v2, v3))
    near = (x > -half) & (x < sx - 1 + half) & (y > -half) & (y < sy - 1 + half)
    on = (x >= -0.5) & (x < sx - 0.5) & (y >= -0.5) & (y < sy - 0.5)
    scene = render_sources((sy, sx), x[near], y[near], catalog["flux"][near])
    sources = {
        "x": x[on] + BORDER,
        "y": y[on] + BORDER,
        "flux": catalog["flux"][on],
        "saturating": catalog["saturating"][on],
        "ra": catalog["ra"][on],
        "dec": catalog["dec"][on],
        "catalog_index": np.flatnonzero(on),
    }
    ra_ref, dec_ref, roll_ref = detector_pointing(
        *_distortion(det)((sx - 1) / 2.0, (sy - 1) / 2.0), ra, dec, roll
    )
    return simulate_exposure(
        det,
        scene=scene,
        sources=sources,
        seed=seed,
        path=directory,
        ra=ra_ref,
        dec=dec_ref,
        roll=roll_ref,
        **simulate,
    )


def simulate_wfi_exposure(
    directory: str | os.PathLike,
    detectors: Iterable[int | str] = range(1, 19),
    *,
    shape: tuple[int, int] = (32, 32),
    seed: int = 0,
    ra: float = 270.0,
    dec: float = 66.0,
    roll: float = 30.0,
    optical_element: str = "F158",
    references: bool = True,
    crds_cache: bool = True,
    keep_truth: bool = True,
    **simulate: Any,
) -> SimulatedWfiExposure:
    """Simulate one exposure on several WFI detectors, with references and a CRDS cache.

    Parameters
    ----------
    directory : path-like
        Output folder (created): the uncal files, ``references/`` and ``crds_cache/``.
    detectors : iterable of int or str
        Which detectors (``1`` ... ``18`` or ``"WFI07"``); default all 18.
    shape : (ny, nx)
        Frame shape of every detector, border included.
    seed : int
        Seed of the sky and of every detector (each detector derives its own).
    ra, dec, roll : float
        Sky position of the WFI centre and the V3 position angle there (deg).
    optical_element : str
        Filter of the exposure and of the references.
    references, crds_cache : bool
        Write each detector's reference set, and a local CRDS cache resolving them all.
    keep_truth : bool
        Keep every detector's model and truth in the result (``exposures``, ``references``).
        A full-frame detector model is about 1.5 GiB: pass False for many large detectors,
        so that only one is in memory at a time and the result holds the file names.
    **simulate
        More arguments of :func:`~romanxr.testing.simulate_exposure` (``read_pattern``,
        ``noiseless``, ``n_jumps``, ``workers``, ...).

    Returns
    -------
    SimulatedWfiExposure
    """
    names = sorted({detector_name(d) for d in detectors})
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tel2sky = v2v3_to_sky(*WFI_CENTRE_V2V3, roll, ra, dec)
    seeds = np.random.SeedSequence([int(seed), 7100]).generate_state(len(names))
    science = (shape[0] - 2 * BORDER, shape[1] - 2 * BORDER)
    catalog, v2, v3 = _draw_catalog([_Footprint(n, science) for n in names], tel2sky, seed)
    half = int(np.ceil(5 * _PSF_SIGMA))
    boresight = {"ra_v1": ra, "dec_v1": dec, "pa_v3": roll, "target_ra": ra, "target_dec": dec}
    exposures: dict[str, SimulatedExposure] = {}
    refsets: dict[str, ReferenceSet] = {}
    files: dict[str, Path] = {}
    ref_files: dict[str, dict[str, Path]] = {}
    decay: dict[str, tuple[float, float]] = {}
    for name, det_seed in zip(names, seeds, strict=True):
        # one detector model at a time: a full-frame one is ~1.5 GiB
        det = make_detector(tuple(shape), detector=name, seed=int(det_seed))
        decay[name] = (float(det.dark_decay_amplitude), float(det.dark_decay_time_constant))
        sim = _simulate_detector(
            det,
            catalog,
            v2,
            v3,
            half,
            int(det_seed),
            directory,
            (ra, dec, roll),
            optical_element=optical_element,
            pointing=boresight,
            **simulate,
        )
        files[name] = sim.path
        if keep_truth:
            exposures[name] = sim
        if references:
            types = tuple(t for t in REFTYPES if t != "darkdecaysignal" or name == names[0])
            refset = make_reference_set(
                directory / "references", det, optical_element=optical_element, reftypes=types
            )
            ref_files[name] = dict(refset.paths)
            if keep_truth:
                refsets[name] = refset
        del det, sim
    cache = None
    if references:
        decay_file = ref_files[names[0]]["darkdecaysignal"]
        _dark_decay_for_all(decay_file, decay)
        for paths in [*ref_files.values(), *(r.paths for r in refsets.values())]:
            paths.setdefault("darkdecaysignal", decay_file)
        if crds_cache:
            from romanxr.testing.crds_cache import build_local_crds_cache

            unique = sorted({p for r in ref_files.values() for p in r.values()})
            cache = build_local_crds_cache(directory / "crds_cache", unique)
    return SimulatedWfiExposure(
        directory=directory,
        files=files,
        reference_files=ref_files,
        exposures=exposures,
        references=refsets,
        catalog=catalog,
        crds_cache=cache,
        pointing=(float(ra), float(dec), float(roll)),
    )
