"""Simulate a Level-1 WFI exposure (``*_uncal.asdf``) whose truth is known.

The simulator builds every read of the ramp from physics and the detector model of
:mod:`romanxr.testing.detector`, then averages reads into resultants with an (uneven) MA table,
exactly as the on-board electronics do. Read ``k`` (1-based) is taken ``k * frame_time`` after
the reset. Per read, in this order:

1. electrons: Poisson increments of ``(scene * response + dark_rate * gain) * dt`` (reference
   pixels and dead pixels see no light; reference pixels have no dark current). Reads that are
   skipped by the MA table are not drawn one by one: a sum of Poisson draws is one Poisson draw
   of the summed mean. Cosmic-ray jumps add ``amplitude * gain`` electrons from their read on.
2. linear DN: ``bias + electrons / gain``.
3. classical non-linearity: ``observed = linear - beta * linear**2``, the INVERSELINEARITY
   polynomial ``[0, 1, -beta]`` evaluated with its float32 coefficients.
4. additive electronics terms: the common-mode drift with per-channel pedestals
   (:class:`~romanxr.testing.detector.DriftModel`, also in the border and amp33) and the dark
   decay signal ``A exp(-t / tau)`` (detector pixels incl. the border, not amp33) with
   ``t = (k - 1.5) * frame_time + T(y, c)``, ``T`` the pixel read-time map
   (:func:`~romanxr.testing.detector.frame_read_time`; ``k - 1.5`` puts ``t = 0`` in the
   middle of read 1, as romancal does).
5. Gaussian read noise of the pixel (DN per read), then the ADC: the INL correction is
   subtracted (the pipeline adds it back), rounded to an integer and clipped to 0..65535.
6. resultant = mean of its reads, rounded to uint16.

``first_saturated_read`` in the truth is the first read whose value (before clipping) reaches
the pixel's saturation threshold. With ``noiseless=True`` the Poisson and read noise draws are
replaced by their expectations (the ADC rounding stays).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from romanxr.dataset import BORDER
from romanxr.testing._reads import simulate_reads
from romanxr.testing.detector import (
    AMP33_COLUMNS,
    CHANNEL_WIDTH,
    DetectorModel,
    channel_read_order,
    dark_decay_signal,
    make_detector,
)
from romanxr.testing.exposure_meta import exposure_file_name, fill_meta
from romanxr.testing.scene import make_scene

__all__ = [
    "DEFAULT_READ_PATTERN",
    "SimulatedExposure",
    "SimulationTruth",
    "simulate_exposure",
]

#: An uneven 8-resultant MA table (25 reads, 76 s at 3.04 s per read).
DEFAULT_READ_PATTERN: list[list[int]] = [
    [1],
    [2, 3],
    [4, 5, 6, 7],
    [8, 9, 10, 11, 12],
    [13, 14, 15, 16],
    [17, 18],
    [19, 20, 21, 22, 23, 24],
    [25],
]
#: Rows simulated at once; fixed so that results do not depend on the frame size.
BAND_ROWS = 128


@dataclass
class SimulationTruth:
    """What went into a simulated exposure.

    Attributes
    ----------
    rate : ndarray float32 (ny, nx)
        True linear slope (DN/s) incl. dark current: what ramp fitting should recover (0 in
        reference pixels).
    source_rate : ndarray float32 (ny-8, nx-8)
        ``rate`` minus the dark current on the science area (what the dark step leaves).
    scene_rate : ndarray float32 (ny-8, nx-8)
        ``scene / gain`` (DN/s): the source rate divided by the response, i.e. what a correct
        flat field leaves (dead pixels and invalid-flat pixels carry their undivided value).
    scene : ndarray float64 (ny-8, nx-8)
        Scene electrons per second per pixel before the response.
    sources : dict of ndarray
        ``x``, ``y`` (absolute science-frame pixels), ``flux`` (e-/s), ``saturating`` (bool).
    jumps : dict of ndarray
        ``y``, ``x`` (absolute pixels), ``read`` (1-based read of the jump), ``amplitude``
        (linear DN), ``resultant`` (first resultant containing a read >= ``read``).
    first_saturated_read : ndarray int16 (ny, nx)
        First read whose value reached the saturation threshold (0: never).
    first_saturated_resultant : ndarray int16 (ny, nx)
        First resultant whose stored value reached the threshold (-1: never).
    read_pattern, frame_time, mean_time
        The MA table used and the resultant mean times (s).
    noiseless : bool
        Whether the noise draws were replaced by their expectations.
    detector : DetectorModel
        The detector (gain, bias, drift, dark decay, ...).
    guide_window : dict
        ``window_xstart/xstop/ystart/ystop`` written to ``meta.guide_star``.
    """

    rate: np.ndarray
    source_rate: np.ndarray
    scene_rate: np.ndarray
    scene: np.ndarray
    sources: dict[str, np.ndarray]
    jumps: dict[str, np.ndarray]
    first_saturated_read: np.ndarray
    first_saturated_resultant: np.ndarray
    read_pattern: list[list[int]]
    frame_time: float
    mean_time: np.ndarray
    noiseless: bool
    detector: DetectorModel
    guide_window: dict[str, int]
    reference_read: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def dark_decay(self, read: int, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Dark decay signal (DN) added to read ``read`` at rows ``y`` (vector) x cols ``x``."""
        det = self.detector
        _, read_col = channel_read_order(np.asarray(x))
        return dark_decay_signal(
            det.dark_decay_amplitude,
            det.dark_decay_time_constant,
            self.frame_time,
            det.detector_number,
            read,
            np.asarray(y)[:, None],
            read_col[None, :],
        )

    def drift(self, read: int, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Reference-pixel drift (DN) of read ``read`` (pedestals included)."""
        return self.detector.drift.science(read, np.asarray(y), np.asarray(x))

    def resultant_drift(self, resultant: int) -> np.ndarray:
        """Mean drift over the reads of one resultant, full frame (DN)."""
        det = self.detector
        y = np.arange(det.shape[0])
        x = np.arange(det.shape[1])
        reads = self.read_pattern[resultant]
        return np.mean([self.drift(k, y, x) for k in reads], axis=0)


@dataclass
class SimulatedExposure:
    """A simulated exposure on disk plus its truth.

    Attributes
    ----------
    path : pathlib.Path
        The ``*_uncal.asdf`` file (``wfi_science_raw``).
    truth : SimulationTruth
        Known inputs.
    """

    path: Path
    truth: SimulationTruth

    @functools.cached_property
    def dataset(self) -> xr.Dataset:
        """The file opened with :func:`romanxr.open_uncal` (default chunks)."""
        from romanxr.io import open_uncal

        return open_uncal(self.path)

    @property
    def detector(self) -> DetectorModel:
        """The detector model of the simulation."""
        return self.truth.detector


# --------------------------------------------------------------------------------------------
# scene


# --------------------------------------------------------------------------------------------
# read-by-read simulation


def _resultant_of_read(read_pattern: Sequence[Sequence[int]]) -> dict[int, int]:
    return {int(r): i for i, group in enumerate(read_pattern) for r in group}


def _draw_jumps(
    rng: np.random.Generator,
    n_jumps: int,
    det: DetectorModel,
    read_pattern: list[list[int]],
    amplitude_range: tuple[float, float],
) -> dict[str, np.ndarray]:
    sy, sx = det.science_shape
    last = read_pattern[-1][-1]
    n_jumps = min(int(n_jumps), sy * sx)
    flat_idx = rng.choice(sy * sx, size=n_jumps, replace=False)
    y = (flat_idx // sx + BORDER).astype(np.int64)
    x = (flat_idx % sx + BORDER).astype(np.int64)
    first_read_after_r0 = read_pattern[1][0] if len(read_pattern) > 1 else 1
    reads = rng.integers(first_read_after_r0, last + 1, size=n_jumps).astype(np.int64)
    amplitude = rng.uniform(*amplitude_range, size=n_jumps)
    last_reads = np.array([g[-1] for g in read_pattern])
    resultant = np.searchsorted(last_reads, reads, side="left").astype(np.int64)
    order = np.lexsort((x, y))
    return {
        "y": y[order],
        "x": x[order],
        "read": reads[order],
        "amplitude": amplitude[order],
        "resultant": resultant[order],
    }


def _simulate_band(
    det: DetectorModel,
    rows: slice,
    electron_rate: np.ndarray,
    read_pattern: list[list[int]],
    frame_time: float,
    jumps: dict[str, np.ndarray],
    rng: np.random.Generator,
    noiseless: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate rows ``rows``; returns (resultants float64, amp33 float64, first_sat_read)."""
    nres = len(read_pattern)
    y = np.arange(rows.start, rows.stop)
    nb = y.size
    nx = det.shape[1]
    x = np.arange(nx)
    channel, read_col = channel_read_order(x)
    cols = np.arange(CHANNEL_WIDTH)
    offsets = det.drift.channel_offsets[np.minimum(channel, 31)]
    which = _resultant_of_read(read_pattern)
    n_reads = np.array([len(g) for g in read_pattern], dtype=np.float64)

    gain = det.gain[rows].astype(np.float64)
    bias = det.bias[rows].astype(np.float64)
    beta = det.nonlinearity_beta[rows]
    rn = det.read_noise[rows].astype(np.float64)

    in_band = (jumps["y"] >= rows.start) & (jumps["y"] < rows.stop)
    jy = jumps["y"][in_band] - rows.start
    jx = jumps["x"][in_band]
    jump_read = np.zeros((nb, nx), dtype=np.int64)
    jump_electrons = np.zeros((nb, nx), dtype=np.float64)
    jump_read[jy, jx] = jumps["read"][in_band]
    jump_electrons[jy, jx] = jumps["amplitude"][in_band] * gain[jy, jx]

    used = np.array(sorted(which), dtype=np.int64)
    dt = np.diff(used, prepend=0).astype(np.float64) * frame_time
    res_index = np.array([which[int(k)] for k in used], dtype=np.int64)
    # drift and dark decay depend on (row, read-order column) only: evaluate them on the
    # (reads, rows, 128) grid; the kernel picks each pixel's column
    grid = np.empty((used.size, nb, CHANNEL_WIDTH), dtype=np.float64)
    for u, k in enumerate(used):
        grid[u] = det.drift.common(int(k), y[:, None], cols[None, :])
        grid[u] += dark_decay_signal(
            det.dark_decay_amplitude,
            det.dark_decay_time_constant,
            frame_time,
            det.detector_number,
            int(k),
            y[:, None],
            cols[None, :],
        )
    if np.any(det.inl_correction):
        inl_value = det.inl_value.astype(np.float64)
        inl_correction = np.ascontiguousarray(det.inl_correction, dtype=np.float64)
    else:
        inl_value = np.zeros(0)
        inl_correction = np.zeros((32, 0))
    inl_channel = np.minimum(x // CHANNEL_WIDTH, 31).astype(np.int64)

    out = np.zeros((nres, nb, nx), dtype=np.float64)
    first_sat = np.zeros((nb, nx), dtype=np.int16)
    simulate_reads(
        np.ascontiguousarray(electron_rate, dtype=np.float64),
        gain,
        bias,
        np.ascontiguousarray(beta, dtype=np.float64),
        rn,
        np.ascontiguousarray(det.saturation[rows], dtype=np.float64),
        grid,
        read_col.astype(np.int64),
        offsets.astype(np.float64),
        used,
        dt,
        res_index,
        jump_read,
        jump_electrons,
        inl_value,
        inl_correction,
        inl_channel,
        bool(noiseless),
        rng,
        out,
        first_sat,
    )

    amp33 = np.zeros((nres, nb, AMP33_COLUMNS), dtype=np.float64)
    for k in used:
        a33 = det.amp33_bias[rows].astype(np.float64) + det.drift.amp33(int(k), y)
        if not noiseless:
            a33 += det.amp33_read_noise * rng.standard_normal(a33.shape)
        amp33[which[int(k)]] += np.clip(np.rint(a33), 0, 65535)
    out /= n_reads[:, None, None]
    amp33 /= n_reads[:, None, None]
    return np.rint(out), np.rint(amp33), first_sat


def simulate_exposure(
    detector: DetectorModel | tuple[int, int] = (32, 32),
    *,
    read_pattern: Sequence[Sequence[int]] | None = None,
    frame_time: float = 3.04,
    scene: np.ndarray | float | None = None,
    seed: int = 0,
    n_jumps: int | None = None,
    jump_amplitude_range: tuple[float, float] = (200.0, 3000.0),
    noiseless: bool = False,
    optical_element: str = "F158",
    path: str | os.PathLike | None = None,
    reference_read: bool = False,
    resultantdq: bool = False,
    guide_window: dict[str, int] | None = None,
    ra: float = 270.0,
    dec: float = 66.0,
    roll: float = 30.0,
    detector_name: str = "WFI01",
    workers: int | None = None,
    sources: dict[str, np.ndarray] | None = None,
    pointing: dict[str, float] | None = None,
) -> SimulatedExposure:
    """Simulate a Level-1 exposure and write it as ``*_uncal.asdf``.

    Parameters
    ----------
    detector : DetectorModel or (ny, nx)
        The detector; a shape builds one with :func:`make_detector` (``seed`` and
        ``detector_name`` are passed on).
    read_pattern : list of list of int, optional
        MA table (1-based read numbers per resultant); default :data:`DEFAULT_READ_PATTERN`.
    frame_time : float
        Seconds per read.
    scene : ndarray or float, optional
        Electrons/s per pixel on the science area (shape ``(ny-8, nx-8)``), a uniform value, or
        None for :func:`make_scene` (sky, stars, a few saturating stars).
    seed : int
        Seed of the scene, jumps and noise draws (the same seed gives the same file).
    n_jumps : int, optional
        Cosmic-ray jumps (default: 1 per 300 science pixels, at least 3).
    jump_amplitude_range : (float, float)
        Uniform range of jump amplitudes (linear DN).
    noiseless : bool
        Replace Poisson and read noise by their expectations.
    optical_element : str
        ``meta.instrument.optical_element``.
    path : path-like, optional
        Output file or directory (a directory gets :func:`exposure_file_name`); default a new
        temporary directory.
    reference_read : bool
        Also write ``reference_read``/``reference_amp33`` (the per-pixel minimum over the
        resultants) and subtract them from ``data``/``amp33``, as the on-board reference read
        subtraction does; dq_init adds them back.
    resultantdq : bool
        Write an all-zero ``resultantdq``.
    guide_window : dict, optional
        ``window_xstart/xstop/ystart/ystop``; default a box (16 pixels, less on small frames)
        at the frame centre.
    ra, dec, roll : float
        Pointing of the aperture reference point (deg).
    detector_name : str
        Detector when ``detector`` is a shape.
    workers : int, optional
        Threads simulating row bands in parallel (default: the CPU count). The result is the
        same for any number.
    sources : dict of ndarray, optional
        What an explicit ``scene`` holds (``x``, ``y`` absolute pixels, ``flux``,
        ``saturating``, ...), recorded in the truth.
    pointing : dict, optional
        ``meta.pointing`` values (``ra_v1``, ``dec_v1``, ``pa_v3``, ``target_ra``,
        ``target_dec``) shared by all detectors of one exposure; default from ``ra``/``dec``.

    Returns
    -------
    SimulatedExposure
        ``.path``, ``.dataset`` (lazy, via :func:`romanxr.open_uncal`) and ``.truth``.
    """
    from romanxr.io.asdf_setup import datamodels

    dm = datamodels()

    if not isinstance(detector, DetectorModel):
        detector = make_detector(
            tuple(detector), detector=detector_name, seed=seed, frame_time=frame_time
        )
    if detector.frame_time != float(frame_time):
        # the drift and dark-decay time models follow the exposure's frame time
        detector = dataclasses.replace(
            detector,
            frame_time=float(frame_time),
            drift=dataclasses.replace(detector.drift, frame_time=float(frame_time)),
        )
    det = detector
    given_sources = sources
    ny, nx = det.shape
    sy, sx = det.science_shape
    pattern = [[int(r) for r in g] for g in (read_pattern or DEFAULT_READ_PATTERN)]
    from romanxr.dataset import validate_read_pattern

    info = validate_read_pattern(pattern, frame_time, source="simulate_exposure")
    nres = len(pattern)

    if scene is None:
        scene_arr, sources = make_scene((sy, sx), seed=seed)
    elif np.isscalar(scene):
        scene_arr = np.full((sy, sx), float(scene))
        sources = {k: np.zeros(0) for k in ("x", "y", "flux")}
        sources["saturating"] = np.zeros(0, dtype=bool)
    else:
        scene_arr = np.asarray(scene, dtype=np.float64)
        if scene_arr.shape == (ny, nx):
            scene_arr = scene_arr[BORDER:-BORDER, BORDER:-BORDER]
        if scene_arr.shape != (sy, sx):
            raise ValueError(
                f"scene must have the science-area shape {(sy, sx)} or the frame shape "
                f"{(ny, nx)}, got {scene_arr.shape}"
            )
        sources = {k: np.zeros(0) for k in ("x", "y", "flux")}
        sources["saturating"] = np.zeros(0, dtype=bool)
    if given_sources is not None:
        sources = dict(given_sources)

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7003]))
    if n_jumps is None:
        n_jumps = max(3, sy * sx // 300)
    jumps = _draw_jumps(rng, n_jumps, det, pattern, jump_amplitude_range)

    # electrons per second: light on the science area (times the response), dark everywhere
    light = np.zeros((ny, nx), dtype=np.float64)
    light[BORDER:-BORDER, BORDER:-BORDER] = scene_arr * det.response
    electron_rate = light + det.dark_rate.astype(np.float64) * det.gain
    rate = (electron_rate / det.gain).astype(np.float32)

    data = np.empty((nres, ny, nx), dtype=np.uint16)
    amp33 = np.empty((nres, ny, AMP33_COLUMNS), dtype=np.uint16)
    first_sat = np.empty((ny, nx), dtype=np.int16)
    n_bands = (ny + BAND_ROWS - 1) // BAND_ROWS
    band_seeds = np.random.SeedSequence([int(seed), 7004]).spawn(n_bands)

    def run_band(b: int) -> None:
        rows = slice(b * BAND_ROWS, min((b + 1) * BAND_ROWS, ny))
        res, a33, fs = _simulate_band(
            det,
            rows,
            electron_rate[rows],
            pattern,
            frame_time,
            jumps,
            np.random.default_rng(band_seeds[b]),
            noiseless,
        )
        data[:, rows] = res.astype(np.uint16)
        amp33[:, rows] = a33.astype(np.uint16)
        first_sat[rows] = fs

    # each band has its own generator, so the result does not depend on the thread count
    n_workers = max(1, min(int(workers or os.cpu_count() or 1), n_bands))
    if n_workers == 1:
        for b in range(n_bands):
            run_band(b)
    else:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            list(pool.map(run_band, range(n_bands)))

    sat = det.saturation
    reached = data >= np.where(np.isnan(sat), np.inf, sat)[None]
    first_sat_res = np.where(reached.any(axis=0), reached.argmax(axis=0), -1).astype(np.int16)

    if guide_window is None:
        # dq_init flags whole columns under the window: keep it narrow on small frames
        size = min(16, max(2, nx // 8), max(2, ny // 8))
        xs, ys = max(nx // 2, BORDER), max(ny // 2, BORDER)
        guide_window = {
            "window_xstart": xs,
            "window_xstop": min(xs + size, nx - BORDER),
            "window_ystart": ys,
            "window_ystop": min(ys + size, ny - BORDER),
        }

    file_name = exposure_file_name(det.detector)
    if path is None:
        out_path = Path(tempfile.mkdtemp(prefix="romanxr_sim_")) / file_name
    else:
        out_path = Path(path)
        if out_path.is_dir():
            out_path = out_path / file_name
        else:
            file_name = out_path.name

    model = dm.ScienceRawModel.create_fake_data(shape=(nres, ny, nx))
    fill_meta(
        model, det, pattern, frame_time, optical_element, guide_window, file_name, ra, dec, roll
    )
    for key, value in (pointing or {}).items():
        model.meta.pointing[key] = float(value)
    if reference_read:
        ref = data.min(axis=0)
        ref_a33 = amp33.min(axis=0)
        model.data = data - ref[None]
        model.amp33 = amp33 - ref_a33[None]
        model.reference_read = ref
        model.reference_amp33 = ref_a33
    else:
        model.data = data
        model.amp33 = amp33
    if resultantdq:
        model.resultantdq = np.zeros((nres, ny, nx), dtype=np.uint8)
    model.save(out_path)

    sci = np.s_[BORDER:-BORDER, BORDER:-BORDER]
    source_rate = rate[sci] - det.dark_rate[sci]
    gain_sci = det.gain[sci].astype(np.float64)
    truth = SimulationTruth(
        rate=rate,
        source_rate=source_rate.astype(np.float32),
        scene_rate=(scene_arr / gain_sci).astype(np.float32),
        scene=scene_arr,
        sources=sources,
        jumps=jumps,
        first_saturated_read=first_sat,
        first_saturated_resultant=first_sat_res,
        read_pattern=pattern,
        frame_time=float(frame_time),
        mean_time=info.mean_time,
        noiseless=bool(noiseless),
        detector=det,
        guide_window=dict(guide_window),
        reference_read=bool(reference_read),
    )
    return SimulatedExposure(path=out_path, truth=truth)
