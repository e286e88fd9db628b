"""Pixel read-time map of a WFI frame, shared by dark_decay and wfi18_transient.

The map is separable: the read time of science-frame pixel ``(y, x)`` is ``row_time(y) +
column_time(x)``. Each of the 32 channels (128 columns) reads one row in ``128 + 14`` clock
cycles of :data:`PIXEL_TIME`; a guide-window excursion interrupts the frame every 256 rows (its
duration is whatever the frame time leaves after the science pixels, split into 16 excursions and
inflated by a pseudo-time factor 1.5); the clock count is scaled so that one frame plus one last
excursion lasts ``frame_time``. Odd channels read right to left. The science frame is the detector
frame flipped in columns when ``sca % 3 == 0`` and in rows otherwise.

Evaluating the two 1-D parts at absolute ``y``/``x`` coordinates gives the map of any cut-out in
full-frame geometry without building the 4096x4096 array.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CHANNEL_WIDTH",
    "FRAME_SIZE",
    "PIXEL_TIME",
    "ROW_OVERHEAD",
    "column_time",
    "read_order_time",
    "read_time_map",
    "row_time",
]

#: Duration of one readout clock cycle (s).
PIXEL_TIME = 4.915263e-6
#: Rows and columns of a full frame.
FRAME_SIZE = 4096
#: Columns per readout channel.
CHANNEL_WIDTH = 128
#: Idle clock cycles at the end of each channel row in the timing model (refpix models 12).
ROW_OVERHEAD = 14
#: Science rows read between guide-window excursions.
GUIDE_WINDOW_STRIDE = 256
#: Inflation of the guide-window time (the WFI18 transient decays faster during it).
GUIDE_WINDOW_PSEUDOTIME = 1.5


def _clock_constants(frame_time: float) -> tuple[float, float]:
    """Cycles per guide-window excursion and the clock count that maps to ``frame_time``."""
    row_cycles = CHANNEL_WIDTH + ROW_OVERHEAD
    last_science_cycle = (CHANNEL_WIDTH - 1) + (FRAME_SIZE - 1) * row_cycles
    n_excursions = FRAME_SIZE // GUIDE_WINDOW_STRIDE
    guide_cycles = frame_time / PIXEL_TIME - last_science_cycle
    per_excursion = guide_cycles / n_excursions * GUIDE_WINDOW_PSEUDOTIME
    # the latest pixel comes after the 15 interior excursions; one more excursion ends the frame
    full_scale = last_science_cycle + (n_excursions - 1) * per_excursion + per_excursion
    return per_excursion, full_scale


def _detector_row(y: np.ndarray, sca: int) -> np.ndarray:
    return y if sca % 3 == 0 else (FRAME_SIZE - 1) - y


def _detector_col(x: np.ndarray, sca: int) -> np.ndarray:
    return (FRAME_SIZE - 1) - x if sca % 3 == 0 else x


def row_time(frame_time: float, sca: int, y: np.ndarray, frame: float = 0.0) -> np.ndarray:
    """Row part of the read time (s) at absolute science-frame rows ``y``.

    Includes the frame offset ``frame * frame_time``.
    """
    per_excursion, full_scale = _clock_constants(frame_time)
    r = _detector_row(np.asarray(y, dtype=np.int64), sca)
    cycles = r * float(CHANNEL_WIDTH + ROW_OVERHEAD) + (r // GUIDE_WINDOW_STRIDE) * per_excursion
    return frame_time * cycles / full_scale + frame * frame_time


def read_order_time(frame_time: float, read_col: np.ndarray) -> np.ndarray:
    """Time (s) into a channel row at read-order column ``read_col`` (0..127)."""
    _, full_scale = _clock_constants(frame_time)
    return frame_time * np.asarray(read_col, dtype=np.float64) / full_scale


def column_time(frame_time: float, sca: int, x: np.ndarray) -> np.ndarray:
    """Column part of the read time (s) at absolute science-frame columns ``x``."""
    c = _detector_col(np.asarray(x, dtype=np.int64), sca)
    within = c % CHANNEL_WIDTH
    # odd channels read right to left
    read_order = np.where((c // CHANNEL_WIDTH) % 2 == 1, CHANNEL_WIDTH - 1 - within, within)
    return read_order_time(frame_time, read_order)


def read_time_map(
    frame_time: float,
    sca: int,
    frame: float = 0.0,
    y: np.ndarray | None = None,
    x: np.ndarray | None = None,
) -> np.ndarray:
    """Read time (s) of every pixel, ``T(frame_time, sca, frame)``.

    Parameters
    ----------
    frame_time : float
        ``meta.exposure.frame_time`` (s).
    sca : int
        Detector number 1..18.
    frame : float
        Frame (read) number added as ``frame * frame_time``; may be fractional.
    y, x : array of int, optional
        Absolute science-frame rows/columns to evaluate (default: the full 0..4095 frame).

    Returns
    -------
    ndarray of float64, shape (len(y), len(x))
    """
    y = np.arange(FRAME_SIZE) if y is None else np.asarray(y)
    x = np.arange(FRAME_SIZE) if x is None else np.asarray(x)
    return row_time(frame_time, sca, y, frame)[:, None] + column_time(frame_time, sca, x)[None, :]
