"""Reference-pixel correction on plain ndarrays, one resultant at a time.

Geometry. A frame of ``n_rows`` rows and ``128 * n_channels`` detector columns is read by
``n_channels`` amplifiers of 128 columns; odd channels read right to left. ``amp33`` (128
columns) is read alongside as one more channel. Each channel row is followed by 12 idle pixel
times, modelled as 12 zero "pad" columns, so every channel is a time series of
``L = n_rows * 140`` samples and its rFFT has ``M = L / 2 + 1`` frequencies.

Per resultant (after the per-pixel offset has been subtracted by the caller):

1. channel view ``(n_channels + 1, n_rows, 140)`` in read order with zero pads;
2. per channel, remove the least-squares line in time fitted to the non-zero samples of the
   first and last 4 rows (zeros stay zero);
3. amp33: fill zeros by a ``sin(j pi / 32)``-weighted average of the non-zero neighbours, then
   three passes of FFT low-pass interpolation of the pad samples;
4. correction of channel ``c``: ``irfft((F_L gamma_c + F_R zeta_c + F_A alpha_c) * 2M)`` with
   ``F_L``/``F_R`` the rFFTs of the left (x 0-3) and right (last 4 columns) reference columns
   padded to 140 (scaled by ``L`` and the duty cycle 140/4) and ``F_A`` that of amp33;
5. back to the frame layout.

The arithmetic follows romancal's float32/float64 promotions so results agree to float32
rounding. Memory per resultant: the frame, its channel view and one batch of spectra.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
from scipy import fft

__all__ = [
    "CHANNEL_WIDTH",
    "PAD_COLUMNS",
    "REF_COLUMNS",
    "ROW_LENGTH",
    "channel_corrections",
    "channel_fits",
    "correct_resultant",
    "cosine_interpolate",
    "fft_interpolate",
    "fit_trend",
    "from_channels",
    "offset_from_sum",
    "read_order",
    "reference_spectra",
    "refpix_reference_coefficients",
    "remove_trends",
    "spectrum_length",
    "subtract_trend",
    "to_channels",
    "trend_rows",
    "trend_times",
]

REF_COLUMNS = 4
PAD_COLUMNS = 12
CHANNEL_WIDTH = 128
ROW_LENGTH = CHANNEL_WIDTH + PAD_COLUMNS
#: Number of rows at the top and at the bottom used for the trend fit.
TREND_ROWS = 4
#: Length of the sine kernel of the amp33 cosine interpolation (one per detector channel).
COSINE_KERNEL = 32
FFT_ITERATIONS = 3
#: Channels whose spectra are inverse-transformed together (bounds the temporary memory).
_BATCH = 8


def spectrum_length(n_rows: int) -> int:
    """Number of rFFT frequencies ``M = n_rows * 140 / 2 + 1`` the coefficients must have."""
    return n_rows * ROW_LENGTH // 2 + 1


def offset_from_sum(total: np.ndarray, n_resultants: int) -> np.ndarray:
    """Per-pixel offset from the float32 sum over resultants.

    The offset is the intercept of a least-squares line in the resultant index centred on
    zero, i.e. the mean; it is evaluated as ``(sum * Sxx) / (n * Sxx)`` in float32, the way
    romancal does, so that values which become exactly zero (and are then treated as masked by
    the trend fit) are the same ones.
    """
    index = np.arange(n_resultants, dtype=np.float32)
    index = index - np.mean(index)
    sxx = np.sum(index**2)
    total = np.asarray(total, dtype=np.float32)
    if sxx == 0:  # a single resultant: the offset is the value itself
        return total.copy()
    return (total * sxx) / (n_resultants * sxx)


def to_channels(frame: np.ndarray) -> np.ndarray:
    """``(rows, 128 k)`` frame -> ``(k, rows, 140)`` float32 read-order channels with zero pads."""
    rows, cols = frame.shape
    k = cols // CHANNEL_WIDTH
    view = frame.reshape(rows, k, CHANNEL_WIDTH).transpose(1, 0, 2)
    out = np.zeros((k, rows, ROW_LENGTH), dtype=np.float32)
    out[0::2, :, :CHANNEL_WIDTH] = view[0::2]
    out[1::2, :, :CHANNEL_WIDTH] = view[1::2, :, ::-1]
    return out


def from_channels(channels: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_channels` (pads dropped): ``(rows, 128 k)`` float32."""
    k, rows, _ = channels.shape
    data = channels[:, :, :CHANNEL_WIDTH]
    out = np.empty((rows, k, CHANNEL_WIDTH), dtype=np.float32)
    out[:, 0::2] = data[0::2].transpose(1, 0, 2)
    out[:, 1::2] = data[1::2, :, ::-1].transpose(1, 0, 2)
    return out.reshape(rows, k * CHANNEL_WIDTH)


def _trend_rows(rows: int) -> np.ndarray:
    # first 4 and last 4 rows; for fewer than 8 rows some rows count twice, as in romancal
    top = np.arange(TREND_ROWS)
    return np.concatenate([top, rows - TREND_ROWS + top])


def remove_trends(channels: np.ndarray) -> None:
    """Subtract, in place, each channel's line in time fitted to its top/bottom rows.

    Time is the sample index ``row * 140 + column`` centred on zero; only non-zero samples of
    the first and last 4 rows enter the ordinary least-squares fit, and only non-zero samples are
    corrected. A channel with no non-zero sample is left alone; with exactly one, its value is
    removed as a constant.
    """
    k, rows, width = channels.shape
    t = np.arange(rows * width, dtype=np.float64).reshape(rows, width)
    t -= (rows * width - 1) / 2.0
    ref = _trend_rows(rows)
    t_ref = t[ref]
    for c in range(k):
        y = channels[c][ref].astype(np.float64)
        use = y != 0
        n = int(use.sum())
        if n == 0:
            continue
        tx = t_ref[use]
        yv = y[use]
        if n == 1:
            slope, intercept = 0.0, float(yv[0])
        else:
            tm, ym = tx.mean(), yv.mean()
            slope = float(np.sum((tx - tm) * (yv - ym)) / np.sum((tx - tm) ** 2))
            intercept = float(ym - slope * tm)
        chan = channels[c]
        line = (t * slope + intercept) * (chan != 0)
        np.subtract(chan, line, out=chan, casting="unsafe")


def cosine_interpolate(series: np.ndarray) -> None:
    """Fill zeros of a 1-D float32 series, in place, by sine-weighted neighbour averages.

    ``fill = conv(v, k) / conv(v != 0, k)`` with ``k_j = sin(j pi / 32)``, ``j = 1..32`` ("same"
    convolution); non-finite fills become 0 (and infinities the largest float32).
    """
    kernel = np.sin(np.arange(1, COSINE_KERNEL + 1, dtype=np.float32) * np.pi / COSINE_KERNEL)
    valid = (series != 0).astype(np.int64)
    num = np.convolve(series, kernel, mode="same")
    den = np.convolve(valid, kernel, mode="same")
    with np.errstate(divide="ignore", invalid="ignore"):
        fill = num / den
    series += (fill * (1 - valid)).astype(np.float32)
    np.nan_to_num(series, copy=False)


def fft_interpolate(
    channel: np.ndarray, iterations: int = FFT_ITERATIONS, workers: int | None = None
) -> None:
    """Replace, in place, the pad samples of a ``(rows, 140)`` channel by a low-passed version.

    Each iteration applies the apodizer ``(1 + cos(2 pi f / L)) / 2`` to the rFFT of the whole
    series and overwrites only the 12 pad columns of every row.
    """
    rows, width = channel.shape
    length = rows * width
    series = channel.reshape(length)
    apodize = (1.0 + np.cos(2.0 * np.pi * np.arange(length // 2 + 1) / length)) / 2.0
    pads = np.zeros((rows, width), dtype=bool)
    pads[:, CHANNEL_WIDTH:] = True
    pads = pads.reshape(length)
    for _ in range(iterations):
        smooth = fft.irfft(apodize * fft.rfft(series, workers=workers), n=length, workers=workers)
        series[pads] = smooth[pads].astype(np.float32)


def _reference_spectrum(
    channel: np.ndarray, length: int, duty: bool, workers: int | None
) -> np.ndarray:
    rows, _ = channel.shape
    if duty:
        series = np.zeros((rows, ROW_LENGTH), dtype=np.float32)
        series[:, :REF_COLUMNS] = channel[:, :REF_COLUMNS]
    else:
        series = channel
    spec = fft.rfft(series.reshape(length) / np.float32(length), workers=workers)
    if duty:
        # only 4 of 140 samples per row carry data
        spec *= ROW_LENGTH / REF_COLUMNS
    return spec


def read_order(frame: np.ndarray, channel: int) -> np.ndarray:
    """View of one channel's 128 columns in read order (odd channels reversed)."""
    view = frame[..., channel * CHANNEL_WIDTH : (channel + 1) * CHANNEL_WIDTH]
    return view[..., ::-1] if channel % 2 else view


def trend_times(n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample times ``row * 140 + column`` centred on zero, as a row part and a column part.

    Returns
    -------
    t_rows : ndarray, float64, shape (n_rows,)
    t_cols : ndarray, float64, shape (128,)
        ``t[row, col] = t_rows[row] + t_cols[col]`` for read-order column ``col``.
    """
    length = n_rows * ROW_LENGTH
    t_rows = np.arange(n_rows, dtype=np.float64) * ROW_LENGTH - (length - 1) / 2.0
    t_cols = np.arange(CHANNEL_WIDTH, dtype=np.float64)
    return t_rows, t_cols


def trend_rows(n_rows: int) -> np.ndarray:
    """Rows whose samples enter the trend fit: the first and the last :data:`TREND_ROWS`."""
    return _trend_rows(n_rows)


def fit_trend(values: np.ndarray, t_rows: np.ndarray, t_cols: np.ndarray) -> tuple[float, float]:
    """Least-squares line ``slope * t + intercept`` through the non-zero samples of a channel.

    Parameters
    ----------
    values : ndarray, shape (n, k)
        Read-order samples of one channel on its trend rows (see :func:`trend_rows`).
    t_rows, t_cols : ndarray
        Their times, as returned by :func:`trend_times` for those rows and columns.

    Returns
    -------
    (slope, intercept)
        ``(nan, nan)`` when no sample is non-zero (the channel is then left alone); with
        exactly one, its value is removed as a constant.
    """
    y = values.astype(np.float64)
    use = y != 0
    n = int(use.sum())
    if n == 0:
        return (np.nan, np.nan)
    tx = (t_rows[:, None] + t_cols[None, :])[use]
    yv = y[use]
    if n == 1:
        return (0.0, float(yv[0]))
    tm, ym = tx.mean(), yv.mean()
    slope = float(np.sum((tx - tm) * (yv - ym)) / np.sum((tx - tm) ** 2))
    return (slope, float(ym - slope * tm))


def subtract_trend(
    view: np.ndarray, t_rows: np.ndarray, t_cols: np.ndarray, fit: tuple[float, float]
) -> None:
    """Subtract a fitted line from the non-zero samples of a read-order channel view, in place.

    ``view`` holds rows with times ``t_rows`` and read-order columns with times ``t_cols``; a
    ``(nan, nan)`` fit leaves it alone. The line is evaluated in float64 and the difference
    rounded to the view's dtype, so any band of rows gets the values the whole frame would.
    """
    slope, intercept = float(fit[0]), float(fit[1])
    if np.isnan(slope):
        return
    if view.dtype == np.float32 and view.ndim == 2:
        _subtract_line(view, np.ascontiguousarray(t_rows), t_cols * slope + intercept, slope)
        return
    line = (t_rows[:, None] * slope + (t_cols * slope + intercept)[None, :]) * (view != 0)
    np.subtract(view, line, out=view, casting="unsafe")


@numba.njit(nogil=True, cache=True)
def _subtract_line(view, t_rows, col_part, slope):  # pragma: no cover - compiled
    """``view -= t_rows * slope + col_part`` where ``view != 0``, each difference in float64."""
    for i in range(view.shape[0]):
        row_part = t_rows[i] * slope
        for j in range(view.shape[1]):
            v = view[i, j]
            if v != 0:
                view[i, j] = np.float32(np.float64(v) - (row_part + col_part[j]))


def reference_spectra(
    left: np.ndarray,
    right: np.ndarray,
    amp33: np.ndarray,
    fits: tuple[tuple[float, float], tuple[float, float], tuple[float, float]],
    *,
    cosine_interpolate_: bool = True,
    fft_interpolate_: bool = True,
    workers: int | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """The three reference spectra of one resultant, from the reference pixels only.

    Parameters
    ----------
    left, right : ndarray, float32, shape (rows, 4)
        The first 4 read-order columns of the first and the last detector channel (detector
        columns 0..3 and last..last-3), offset removed and bad reference pixels zeroed.
    amp33 : ndarray, float32, shape (rows, 128)
        The amp33 channel, offset removed.
    fits : three (slope, intercept)
        Trend fits (:func:`fit_trend`) of the first channel, the last channel and amp33;
        ``(nan, nan)`` skips the trend removal.
    cosine_interpolate_, fft_interpolate_ : bool
        Switch the amp33 interpolation stages on or off.
    workers : int, optional
        Threads for scipy.fft.

    Returns
    -------
    (f_left, f_right, f_amp33), amp33_out
        complex128 spectra of length ``rows * 70 + 1`` and the processed amp33 channel
        (float32, rows x 128: trend removed and interpolated).
    """
    rows = amp33.shape[0]
    length = rows * ROW_LENGTH
    t_rows, t_cols = trend_times(rows)
    left = np.array(left, dtype=np.float32, copy=True)
    right = np.array(right, dtype=np.float32, copy=True)
    subtract_trend(left, t_rows, t_cols[:REF_COLUMNS], fits[0])
    subtract_trend(right, t_rows, t_cols[:REF_COLUMNS], fits[1])
    padded = np.zeros((rows, ROW_LENGTH), dtype=np.float32)
    padded[:, :CHANNEL_WIDTH] = amp33
    subtract_trend(padded[:, :CHANNEL_WIDTH], t_rows, t_cols, fits[2])
    if cosine_interpolate_:
        cosine_interpolate(padded.reshape(length))
    if fft_interpolate_:
        fft_interpolate(padded, workers=workers)
    spectra = (
        _reference_spectrum(left, length, True, workers),
        _reference_spectrum(right, length, True, workers),
        _reference_spectrum(padded, length, False, workers),
    )
    return spectra, padded[:, :CHANNEL_WIDTH].copy()


@numba.njit(nogil=True, cache=True)
def _combine(f_left, f_right, f_amp33, gamma, zeta, alpha, scale, out):  # pragma: no cover
    """``out = (F_L gamma + F_R zeta + F_A alpha) * scale`` in one pass, in the inputs' precision.

    The numpy expression's operations in its order (complex products, two sums, then the
    scale) without its three full-size temporaries. numpy may fuse the products' multiply-adds
    (FMA) where the CPU has them, so the two can differ in the last bit; this kernel gives the
    same bits on every machine.
    """
    for c in range(gamma.shape[0]):
        for f in range(gamma.shape[1]):
            v = f_left[f] * gamma[c, f]
            v = v + f_right[f] * zeta[c, f]
            v = v + f_amp33[f] * alpha[c, f]
            out[c, f] = v * scale


def channel_corrections(
    spectra: tuple[np.ndarray, np.ndarray, np.ndarray],
    gamma: np.ndarray,
    zeta: np.ndarray,
    alpha: np.ndarray,
    n_rows: int,
    rows: slice = slice(None),
    workers: int | None = None,
    out: Sequence[np.ndarray] | None = None,
) -> np.ndarray | None:
    """Corrections ``irfft((F_L gamma_c + F_R zeta_c + F_A alpha_c) 2M)`` of some channels.

    Parameters
    ----------
    spectra : (f_left, f_right, f_amp33)
        From :func:`reference_spectra`.
    gamma, zeta, alpha : ndarray, complex, shape (k, n_rows * 70 + 1)
        The weights of ``k`` channels. The products are formed in the coefficients' precision
        (at least complex64).
    n_rows : int
        Rows of the frame.
    rows : slice
        Rows of the result to keep (a band); every channel is still transformed whole.
    workers : int, optional
        Threads for scipy.fft.
    out : sequence of k arrays, optional
        Where to write each channel's ``(selected rows, 128)`` read-order correction (e.g.
        views into a detector-order array); then nothing is returned.

    Returns
    -------
    ndarray, float32, shape (k, selected rows, 128), or None
        In read order (odd channels are reversed on the detector).
    """
    length = n_rows * ROW_LENGTH
    ctype = np.result_type(gamma.dtype, zeta.dtype, alpha.dtype, np.complex64)
    f_left, f_right, f_amp33 = (np.asarray(f).astype(ctype, copy=False) for f in spectra)
    scale = ctype.type(2 * gamma.shape[1])
    k = gamma.shape[0]
    n_sel = len(range(n_rows)[rows])
    result = None
    if out is None:
        result = np.empty((k, n_sel, CHANNEL_WIDTH), dtype=np.float32)
        out = list(result)
    for start in range(0, k, _BATCH):
        stop = min(start + _BATCH, k)
        if ctype == np.complex64:
            prod = np.empty((stop - start, gamma.shape[1]), dtype=ctype)
            _combine(
                f_left,
                f_right,
                f_amp33,
                np.ascontiguousarray(gamma[start:stop]),
                np.ascontiguousarray(zeta[start:stop]),
                np.ascontiguousarray(alpha[start:stop]),
                scale,
                prod,
            )
        else:  # complex128: numpy's own arithmetic, as romancal
            prod = f_left * gamma[start:stop]
            prod += f_right * zeta[start:stop]
            prod += f_amp33 * alpha[start:stop]
            prod *= scale
        corr = fft.irfft(prod, n=length, axis=-1, workers=workers)
        del prod
        corr = corr.reshape(stop - start, n_rows, ROW_LENGTH)[:, rows, :CHANNEL_WIDTH]
        for i in range(stop - start):
            out[start + i][...] = corr[i]
    return result


def channel_fits(
    ref_rows: np.ndarray, n_rows: int, enabled: bool = True
) -> list[tuple[float, float]]:
    """Trend fits of every channel of a frame, from its trend rows.

    ``ref_rows`` holds the rows :func:`trend_rows` of one resultant's ``(rows, 128 * k)``
    frame (amp33 may be the last channel); returns ``k`` fits (``(nan, nan)`` everywhere if
    not ``enabled``).
    """
    k = ref_rows.shape[-1] // CHANNEL_WIDTH
    if not enabled:
        return [(np.nan, np.nan)] * k
    t_rows, t_cols = trend_times(n_rows)
    t_ref = t_rows[_trend_rows(n_rows)]
    return [fit_trend(read_order(ref_rows, c), t_ref, t_cols) for c in range(k)]


def correct_resultant(
    frame: np.ndarray,
    gamma: np.ndarray,
    zeta: np.ndarray,
    alpha: np.ndarray,
    *,
    remove_trends_: bool = True,
    cosine_interpolate_: bool = True,
    fft_interpolate_: bool = True,
    workers: int | None = None,
) -> np.ndarray:
    """Reference-pixel correct one resultant.

    Composes :func:`channel_fits`, :func:`reference_spectra`, :func:`channel_corrections`
    and :func:`subtract_trend` on a whole frame; the streaming step applies the same pieces to
    bands of rows, with identical results.

    Parameters
    ----------
    frame : ndarray, float32, shape (rows, 128 * (n + 1))
        Detector columns (``n`` channels, ``n`` even) followed by the 128 amp33 columns, with
        the per-pixel offset already removed (if wanted) and bad reference pixels zeroed.
    gamma, zeta, alpha : ndarray, complex, shape (n, rows * 70 + 1)
        Weights of the left, right and amp33 spectra for each detector channel. complex128
        reproduces romancal bit for bit; complex64 (what the step passes) halves time and
        memory and changes the result by far less than the float32 rounding of the data.
    remove_trends_, cosine_interpolate_, fft_interpolate_ : bool
        Switch the corresponding stage on or off.
    workers : int, optional
        Threads for scipy.fft.

    Returns
    -------
    ndarray, float32, same shape as ``frame``
        The corrected frame (amp33 columns after trend removal and interpolation).
    """
    frame = np.array(frame, dtype=np.float32, copy=True)
    rows, cols = frame.shape
    n_det = cols // CHANNEL_WIDTH - 1
    fits = channel_fits(frame[_trend_rows(rows)], rows, remove_trends_)
    spectra, amp33 = reference_spectra(
        frame[:, :REF_COLUMNS],
        read_order(frame, n_det - 1)[:, :REF_COLUMNS],
        read_order(frame, n_det),
        (fits[0], fits[n_det - 1], fits[n_det]),
        cosine_interpolate_=cosine_interpolate_,
        fft_interpolate_=fft_interpolate_,
        workers=workers,
    )
    read_order(frame, n_det)[...] = amp33
    corr = channel_corrections(spectra, gamma, zeta, alpha, rows, workers=workers)
    t_rows, t_cols = trend_times(rows)
    for c in range(n_det):
        view = read_order(frame, c)
        subtract_trend(view, t_rows, t_cols, fits[c])
        view -= corr[c]
    return frame


def refpix_reference_coefficients(
    n_rows: int, n_channels: int = 32, cutoff: float = 0.5, taper_to: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients that remove a common-mode drift seen in the left/right reference columns.

    Derivation. Let every channel carry the same slowly varying signal ``s(t)`` (t = read-order
    sample index, ``L = n_rows * 140`` samples). The left reference series is ``s`` kept on 4 of
    every 140 samples, so below the row frequency (``n_rows`` cycles per frame) its spectrum is
    ``(4/140) S(f)``; the step scales it by ``140/4`` and ``1/L``, so ``F_L ~ S/L`` and
    likewise ``F_R``. The correction ``irfft((F_L gamma + F_R zeta) * 2M)`` equals ``s``
    low-passed by ``w(f)`` when ``gamma = zeta = w(f) L / (4 M)`` (the two sides averaged).
    ``w`` is 1 below ``cutoff * n_rows`` cycles per frame (half the row frequency, where the
    first alias of the 4/140 sampling starts) and 0 above; ``alpha = 0`` (amp33 unused).

    Parameters
    ----------
    n_rows : int
        Rows of the frame (4096 for a full frame).
    n_channels : int
        Detector channels (32 for a full frame).
    cutoff : float
        Pass band edge as a fraction of the row frequency.
    taper_to : float, optional
        If given, ``w`` falls from 1 at ``cutoff`` to 0 at ``taper_to`` (same units) along a
        raised cosine instead of a sharp edge (less ringing at the ends of the series).

    Returns
    -------
    gamma, zeta, alpha : ndarray, complex128, shape (n_channels, n_rows * 70 + 1)
    """
    length = n_rows * ROW_LENGTH
    m = spectrum_length(n_rows)
    freq = np.arange(m)
    if taper_to is None:
        window = (freq < cutoff * n_rows).astype(np.float64)
    else:
        f1 = max(cutoff * n_rows, 1.0)
        f2 = max(taper_to * n_rows, f1 + 1.0)
        window = 0.5 * (1 + np.cos(np.pi * np.clip((freq - f1) / (f2 - f1), 0.0, 1.0)))
    weights = window * length / (4.0 * m)
    gamma = np.broadcast_to(weights.astype(np.complex128), (n_channels, m)).copy()
    zeta = gamma.copy()
    alpha = np.zeros((n_channels, m), dtype=np.complex128)
    return gamma, zeta, alpha
