"""A synthetic WFI detector with known per-pixel properties.

:func:`make_detector` draws every property the Exposure Level Pipeline corrects for (gain, read
noise, saturation, classical non-linearity, dark current, flat, bad pixels, reference-pixel
drift, dark decay, ADC integral non-linearity) as plain numpy arrays. The same
:class:`DetectorModel` drives both the simulator (:mod:`romanxr.testing.simulate`) and the
reference-file writer (:mod:`romanxr.testing.references`), so the reference files describe the
simulated detector exactly (or, for the linearity polynomial, to a documented accuracy).

Units: DN unless stated; gain in electrons per DN; rates in DN/s; times in s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from romanxr.dataset import BORDER
from romanxr.dq import PixelFlag

__all__ = [
    "AMP33_COLUMNS",
    "CHANNEL_WIDTH",
    "DETECTORS",
    "PAD_COLUMNS",
    "DetectorModel",
    "DriftModel",
    "channel_read_order",
    "dark_decay_signal",
    "evaluate_polynomial",
    "frame_read_time",
    "make_detector",
]

#: Columns of one science readout channel.
CHANNEL_WIDTH = 128
#: Idle pixel times after every row of a channel (the refpix model's pad columns).
PAD_COLUMNS = 12
#: Columns of the amp33 reference output.
AMP33_COLUMNS = 128
#: Valid detector names.
DETECTORS = tuple(f"WFI{i:02d}" for i in range(1, 19))

#: Degree of the LINEARITY (observed -> linear) polynomial; 6 keeps the inverse of the
#: quadratic non-linearity below 0.01 DN over 0..65535 for the default coefficient range.
LINEARITY_DEGREE = 6


def evaluate_polynomial(coeffs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Evaluate ``sum_k coeffs[k] * x**k`` per pixel (Horner, float64).

    Parameters
    ----------
    coeffs : ndarray, shape (ncoeff, ...)
        Coefficients, lowest order first; trailing dims broadcast against ``x``.
    x : ndarray
        Values.
    """
    coeffs = np.asarray(coeffs, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(coeffs.shape[1:], x.shape), dtype=np.float64)
    for k in range(coeffs.shape[0] - 1, -1, -1):
        out *= x
        out += coeffs[k]
    return out


def channel_read_order(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Readout channel and read-order column of detector columns ``x``.

    Channel ``c`` holds columns ``128c .. 128c+127``; odd channels are read right to left, so
    their read-order column is ``127 - (x mod 128)``. A frame narrower than 4096 columns is
    treated as a cut-out starting at detector column 0.
    """
    x = np.asarray(x)
    channel = x // CHANNEL_WIDTH
    within = x % CHANNEL_WIDTH
    read_col = np.where(channel % 2 == 1, CHANNEL_WIDTH - 1 - within, within)
    return channel, read_col


def frame_read_time(
    frame_time: float, detector_number: int, y: np.ndarray, read_col: np.ndarray
) -> np.ndarray:
    """Time (s) after the start of a frame at which pixel (``y``, ``read_col``) is read.

    The timing model of :mod:`romanxr.kernels.timing`, written in terms
    of the read-order column inside a channel, which the simulator works with (mirrored
    columns on detectors 3, 6, ..., 18 leave it unchanged). ``y`` are absolute science-frame
    rows. Broadcasts ``y`` against ``read_col``.
    """
    from romanxr.kernels.timing import read_order_time, row_time

    return row_time(frame_time, detector_number, y) + read_order_time(frame_time, read_col)


def dark_decay_signal(
    amplitude: float,
    time_constant: float,
    frame_time: float,
    detector_number: int,
    read: int,
    y: np.ndarray,
    read_col: np.ndarray,
) -> np.ndarray:
    """Dark decay (DN) in read ``read``: ``A exp(-(T + (read - 1.5) frame_time) / tau)``.

    ``T`` is :func:`frame_read_time`; the offset 1.5 puts ``t = 0`` in the middle of read 1.
    """
    t = frame_read_time(frame_time, detector_number, y, read_col) + (read - 1.5) * frame_time
    return amplitude * np.exp(-t / time_constant)


@dataclass
class DriftModel:
    """Common-mode bias drift seen identically by every pixel read at the same moment.

    All 32 science channels and amp33 are sampled simultaneously, so a drift of the readout
    electronics is a function of time only. Pixel time, in seconds since the start of read 1::

        T(k, y, c) = (k - 1) * frame_time + frame_time * (y * 140 + c) / (ny * 140)

    with ``k`` the 1-based read number, ``y`` the row and ``c`` the read-order column inside the
    channel (``140 = 128 + 12`` pad pixel times per row, as the refpix model assumes). The drift
    is ``slow_amplitude * sin(2 pi T / slow_period + slow_phase) + linear_rate * T +
    fast_amplitude * sin(2 pi T / fast_period + fast_phase)``: within one read it varies slowly
    down the rows (a few cycles per frame at most), which the refpix algorithm removes from the
    science channels by low-pass filtering the left/right reference columns. Each channel
    (and amp33) also has a constant ``channel_offsets`` pedestal, identical in all reads (refpix
    keeps it; a constant does not change a slope).
    """

    ny: int
    frame_time: float
    slow_amplitude: float = 20.0
    slow_period: float = 200.0
    slow_phase: float = 0.3
    linear_rate: float = 0.1
    fast_amplitude: float = 2.0
    fast_period: float = 1.2
    fast_phase: float = 1.1
    channel_offsets: np.ndarray = field(default_factory=lambda: np.zeros(33))

    def pixel_time(self, read: int, y: np.ndarray, read_col: np.ndarray) -> np.ndarray:
        """Time (s) at which read ``read`` samples row ``y``, read-order column ``read_col``."""
        row_len = CHANNEL_WIDTH + PAD_COLUMNS
        frac = (np.asarray(y, dtype=np.float64) * row_len + read_col) / (self.ny * row_len)
        return (read - 1) * self.frame_time + self.frame_time * frac

    def common(self, read: int, y: np.ndarray, read_col: np.ndarray) -> np.ndarray:
        """Common-mode drift (DN) without the channel pedestals."""
        t = self.pixel_time(read, y, read_col)
        return (
            self.slow_amplitude * np.sin(2 * np.pi * t / self.slow_period + self.slow_phase)
            + self.linear_rate * t
            + self.fast_amplitude * np.sin(2 * np.pi * t / self.fast_period + self.fast_phase)
        )

    def science(self, read: int, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Drift (DN) of detector pixels (rows ``y`` as a column vector, columns ``x``)."""
        channel, read_col = channel_read_order(np.asarray(x))
        y = np.asarray(y)[:, None] if np.ndim(y) == 1 else np.asarray(y)
        offsets = self.channel_offsets[np.minimum(channel, 31)]
        return self.common(read, y, read_col[None, :]) + offsets[None, :]

    def amp33(self, read: int, y: np.ndarray) -> np.ndarray:
        """Drift (DN) of amp33 (channel 33, read left to right), shape (len(y), 128)."""
        y = np.asarray(y)[:, None]
        cols = np.arange(AMP33_COLUMNS)[None, :]
        return self.common(read, y, cols) + self.channel_offsets[32]


@dataclass
class DetectorModel:
    """Per-pixel truth of a synthetic detector (arrays cover the full frame incl. the border).

    Attributes
    ----------
    shape : (ny, nx)
        Full frame shape, border included.
    detector : str
        ``"WFI01"`` .. ``"WFI18"``.
    gain : ndarray float32 (ny, nx)
        Electrons per DN.
    read_noise : ndarray float32 (ny, nx)
        Gaussian noise of a single read (DN).
    saturation : ndarray float32 (ny, nx)
        Saturation threshold in observed DN (NaN: no check).
    bias : ndarray float32 (ny, nx)
        Reset level (linear DN) of every pixel; the non-linearity acts on ``bias + signal``.
    nonlinearity_beta : ndarray float64 (ny, nx)
        ``observed = linear - beta * linear**2`` (``beta`` is float32-representable).
    inverse_linearity_coeffs : ndarray float32 (3, ny, nx)
        ``[0, 1, -beta]``: the INVERSELINEARITY polynomial, exactly what the simulator applies.
    linearity_coeffs : ndarray float32 (7, ny, nx)
        LINEARITY polynomial (observed -> linear), a least-squares inverse; NaN where no
        correction exists.
    linearity_dq : ndarray uint32 (ny, nx)
        NO_LIN_CORR where the linearity coefficients are NaN.
    dark_rate : ndarray float32 (ny, nx)
        Dark current (DN/s); zero in reference pixels; hot pixels are much larger.
    flat : ndarray float32 (ny-8, nx-8)
        Flat field of the science area as written to the FLAT reference (NaN/0 = unknown).
    response : ndarray float32 (ny-8, nx-8)
        Relative response the simulator applies: the flat where valid, 1 where the flat is
        NaN/0, and 0 for dead pixels.
    mask : ndarray uint32 (ny, nx)
        MASK reference dq: REFERENCE_PIXEL on the border, DEAD, HOT.
    dark_decay_amplitude, dark_decay_time_constant : float
        Dark decay ``A exp(-t / tau)`` (DN, s).
    drift : DriftModel
        Reference-pixel (common-mode) drift.
    amp33_bias : ndarray float32 (ny, 128)
        Reset level of the amp33 columns.
    inl_value : ndarray uint16 (n,)
        ADC integral non-linearity abscissa (DN).
    inl_correction : ndarray float64 (32, n)
        INL correction per science channel (added by the pipeline; subtracted by the ADC).
    seed : int
        Seed the properties were drawn with.
    """

    shape: tuple[int, int]
    detector: str
    frame_time: float
    gain: np.ndarray
    read_noise: np.ndarray
    saturation: np.ndarray
    bias: np.ndarray
    nonlinearity_beta: np.ndarray
    inverse_linearity_coeffs: np.ndarray
    linearity_coeffs: np.ndarray
    linearity_dq: np.ndarray
    dark_rate: np.ndarray
    dark_rate_error: np.ndarray
    flat: np.ndarray
    flat_error: np.ndarray
    response: np.ndarray
    mask: np.ndarray
    dark_decay_amplitude: float
    dark_decay_time_constant: float
    drift: DriftModel
    amp33_bias: np.ndarray
    amp33_read_noise: float
    inl_value: np.ndarray
    inl_correction: np.ndarray
    seed: int

    @property
    def science_shape(self) -> tuple[int, int]:
        """Shape of the science area (the L2 image)."""
        return (self.shape[0] - 2 * BORDER, self.shape[1] - 2 * BORDER)

    @property
    def detector_number(self) -> int:
        """1..18."""
        return int(self.detector[3:])

    @property
    def dead(self) -> np.ndarray:
        """Dead pixels (full frame bool)."""
        return (self.mask & np.uint32(PixelFlag.DEAD)) != 0

    @property
    def hot(self) -> np.ndarray:
        """Hot pixels (full frame bool)."""
        return (self.mask & np.uint32(PixelFlag.HOT)) != 0

    def nonlinear(self, linear: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        """Apply the classical non-linearity (linear -> observed DN) to rows ``rows``."""
        beta = self.nonlinearity_beta[rows]
        return linear - beta * linear * linear

    def linearize(self, observed: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        """Apply the LINEARITY polynomial (observed -> linear DN) to rows ``rows``."""
        return evaluate_polynomial(self.linearity_coeffs[:, rows], observed)

    def inl(self, observed: np.ndarray, x: np.ndarray) -> np.ndarray:
        """INL correction (DN) the pipeline adds at ``observed`` for columns ``x``."""
        out = np.zeros(np.shape(observed), dtype=np.float64)
        if not np.any(self.inl_correction):
            return out
        channel = np.minimum(np.asarray(x) // CHANNEL_WIDTH, 31)
        value = self.inl_value.astype(np.float64)
        for c in np.unique(channel):
            cols = channel == c
            out[..., cols] = np.interp(observed[..., cols], value, self.inl_correction[c])
        return out


def _inverse_quadratic_coefficients(beta_max: float, degree: int) -> np.ndarray:
    """Universal coefficients ``a_k`` so that ``v + sum a_k v**k`` inverts ``v = u - u**2``.

    With ``u = beta * linear`` and ``v = beta * observed`` the inverse of the quadratic
    non-linearity is the same function for every pixel, ``u = (1 - sqrt(1 - 4 v)) / 2``.
    Fit it once by least squares on ``0 <= v <= beta_max * 65535`` (with ``a_0 = 0`` and
    ``a_1 = 1`` fixed), then a pixel's LINEARITY coefficients are ``c_k = a_k beta**(k-1)``.
    """
    vmax = max(beta_max * 65535.0, 1e-6) * 1.01
    v = np.linspace(0.0, vmax, 20001)
    g = (1.0 - np.sqrt(1.0 - 4.0 * v)) / 2.0
    powers = np.arange(2, degree + 1)
    design = v[:, None] ** powers[None, :]
    scale = vmax**powers
    a, *_ = np.linalg.lstsq(design / scale, g - v, rcond=None)
    full = np.zeros(degree + 1)
    full[1] = 1.0
    full[2:] = a / scale
    return full


def make_detector(
    shape: tuple[int, int] = (4096, 4096),
    *,
    detector: str = "WFI01",
    seed: int = 0,
    frame_time: float = 3.04,
    gain: float = 1.8,
    gain_scatter: float = 0.03,
    read_noise: float = 5.0,
    read_noise_scatter: float = 0.1,
    saturation_range: tuple[float, float] = (55000.0, 60000.0),
    bias: float = 2000.0,
    bias_scatter: float = 150.0,
    nonlinearity: float = 8e-7,
    nonlinearity_scatter: float = 0.1,
    dark_rate: float = 0.005,
    flat_scatter: float = 0.02,
    dark_decay_amplitude: float = 0.4,
    dark_decay_time_constant: float = 23.0,
    drift_amplitude: float = 20.0,
    inl_amplitude: float = 0.0,
    bad_fraction: float = 0.002,
) -> DetectorModel:
    """Draw a synthetic detector.

    Parameters
    ----------
    shape : (ny, nx)
        Full frame incl. the 4-pixel reference border; at least 16x16 (e.g. 32x32 for unit
        tests, 4096x4096 for a real frame).
    detector : str
        ``WFI01`` .. ``WFI18``.
    seed : int
        Seed for every random draw (same seed -> identical detector).
    frame_time : float
        Seconds between reads (enters the drift's time model).
    gain, gain_scatter : float
        Mean gain (e-/DN) and its relative scatter.
    read_noise, read_noise_scatter : float
        Mean per-read noise (DN) and its relative scatter.
    saturation_range : (float, float)
        Uniform range of saturation thresholds (observed DN).
    bias, bias_scatter : float
        Reset level (DN) and its scatter.
    nonlinearity, nonlinearity_scatter : float
        Mean quadratic coefficient ``beta`` (1/DN) and its relative scatter.
    dark_rate : float
        Typical dark current (DN/s).
    flat_scatter : float
        Relative pixel-to-pixel scatter of the flat.
    dark_decay_amplitude, dark_decay_time_constant : float
        Dark decay signal ``A exp(-t/tau)`` (DN, s).
    drift_amplitude : float
        Amplitude of the slow common-mode drift (DN); 0 switches all drift off.
    inl_amplitude : float
        Amplitude of the ADC integral non-linearity (DN); 0 (default) means none.
    bad_fraction : float
        Fraction of science pixels drawn for each kind of defect (dead, hot, NaN flat, zero
        flat, NaN saturation, no linearity correction); at least one of each.

    Returns
    -------
    DetectorModel
    """
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of WFI01..WFI18, got {detector!r}")
    ny, nx = (int(s) for s in shape)
    if ny < 16 or nx < 16:
        raise ValueError(f"shape must be at least 16x16 (4-pixel border each side), got {shape}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7001]))
    f32 = np.float32

    gain_arr = (gain * (1 + gain_scatter * rng.standard_normal((ny, nx)))).astype(f32)
    rn = (read_noise * (1 + read_noise_scatter * rng.standard_normal((ny, nx)))).astype(f32)
    rn = np.maximum(rn, f32(0.5 * read_noise))
    sat = rng.uniform(*saturation_range, size=(ny, nx)).astype(f32)
    bias_arr = (bias + bias_scatter * rng.standard_normal((ny, nx))).astype(f32)
    beta = nonlinearity * (1 + nonlinearity_scatter * rng.standard_normal((ny, nx)))
    beta = np.clip(beta, 0.5 * nonlinearity, 1.5 * nonlinearity).astype(f32).astype(np.float64)

    inv = np.zeros((3, ny, nx), dtype=f32)
    inv[1] = 1.0
    inv[2] = (-beta).astype(f32)
    a = _inverse_quadratic_coefficients(float(beta.max()), LINEARITY_DEGREE)
    lin = np.empty((LINEARITY_DEGREE + 1, ny, nx), dtype=f32)
    for k in range(LINEARITY_DEGREE + 1):
        lin[k] = (a[k] * beta ** max(k - 1, 0)).astype(f32) if k else f32(a[0])

    # defects in the science area, each kind on its own random pixels
    sy, sx = ny - 2 * BORDER, nx - 2 * BORDER
    n_bad = max(1, round(bad_fraction * sy * sx))
    picks = rng.choice(sy * sx, size=6 * n_bad, replace=False).reshape(6, n_bad)

    def full_index(flat_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return flat_idx // sx + BORDER, flat_idx % sx + BORDER

    mask = np.zeros((ny, nx), dtype=np.uint32)
    refpix_flag = np.uint32(PixelFlag.REFERENCE_PIXEL)
    mask[:BORDER, :] |= refpix_flag
    mask[-BORDER:, :] |= refpix_flag
    mask[:, :BORDER] |= refpix_flag
    mask[:, -BORDER:] |= refpix_flag
    dead_y, dead_x = full_index(picks[0])
    hot_y, hot_x = full_index(picks[1])
    mask[dead_y, dead_x] |= np.uint32(PixelFlag.DEAD | PixelFlag.DO_NOT_USE)
    mask[hot_y, hot_x] |= np.uint32(PixelFlag.HOT)

    dark = (dark_rate * rng.lognormal(0.0, 0.3, size=(ny, nx))).astype(f32)
    dark[hot_y, hot_x] = rng.uniform(0.5, 5.0, size=n_bad).astype(f32)
    reference = (mask & refpix_flag) != 0
    dark[reference] = 0.0
    dark[dead_y, dead_x] = 0.0
    dark_err = (0.1 * dark + 1e-4).astype(f32)

    flat = (1 + flat_scatter * rng.standard_normal((sy, sx))).astype(f32)
    flat_err = np.full((sy, sx), 0.005, dtype=f32)
    nan_flat = np.unravel_index(picks[2], (sy, sx))
    zero_flat = np.unravel_index(picks[3], (sy, sx))
    flat[nan_flat] = np.nan
    flat[zero_flat] = 0.0
    response = np.where(np.isfinite(flat) & (flat != 0), flat, f32(1.0)).astype(f32)
    response[dead_y - BORDER, dead_x - BORDER] = 0.0

    sat_nan = full_index(picks[4])
    sat[sat_nan] = np.nan
    no_lin = full_index(picks[5])
    lin[:, no_lin[0], no_lin[1]] = np.nan
    lin_dq = np.zeros((ny, nx), dtype=np.uint32)
    lin_dq[no_lin] = np.uint32(PixelFlag.NO_LIN_CORR)

    drift = DriftModel(
        ny=ny,
        frame_time=float(frame_time),
        slow_amplitude=float(drift_amplitude),
        linear_rate=0.005 * float(drift_amplitude),
        fast_amplitude=0.1 * float(drift_amplitude),
        channel_offsets=(2.5 * drift_amplitude * rng.standard_normal(33)),
    )
    amp33_bias = (bias + bias_scatter * rng.standard_normal((ny, AMP33_COLUMNS))).astype(f32)

    inl_value = np.round(np.linspace(0, 65535, 1025)).astype(np.uint16)
    phase = rng.uniform(0, 2 * np.pi, size=32)
    grid = inl_value.astype(np.float64)
    inl_corr = inl_amplitude * np.sin(2 * np.pi * grid[None, :] / 4096.0 + phase[:, None])

    return DetectorModel(
        shape=(ny, nx),
        detector=detector,
        frame_time=float(frame_time),
        gain=gain_arr,
        read_noise=rn,
        saturation=sat,
        bias=bias_arr,
        nonlinearity_beta=beta,
        inverse_linearity_coeffs=inv,
        linearity_coeffs=lin,
        linearity_dq=lin_dq,
        dark_rate=dark,
        dark_rate_error=dark_err,
        flat=flat,
        flat_error=flat_err,
        response=response,
        mask=mask,
        dark_decay_amplitude=float(dark_decay_amplitude),
        dark_decay_time_constant=float(dark_decay_time_constant),
        drift=drift,
        amp33_bias=amp33_bias,
        amp33_read_noise=float(read_noise),
        inl_value=inl_value,
        inl_correction=inl_corr.astype(np.float64),
        seed=int(seed),
    )
