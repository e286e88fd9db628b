"""Dark-decay signal on plain ndarrays.

The signal a read ``k`` sees at pixel ``(y, x)`` is ``A * exp(-T(ft, sca, k - 1.5)[y, x] / tau)``.
Because ``T`` is a row part plus a column part plus ``(k - 1.5) * ft``, the exponential factorises
into ``A * exp(-row/tau) * exp(-col/tau) * exp(-(k - 1.5) * ft / tau)``, and the mean over the
reads of a resultant only touches the last factor. The correction of resultant ``i`` is then an
outer product ``w_i * e_row(y) * e_col(x)``: one exponential per row and per column instead of one
per pixel and read, and no 4096x4096 temporary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from romanxr.kernels.timing import column_time, row_time

__all__ = [
    "FRAME_OFFSET",
    "dark_decay_factors",
    "dark_decay_signal",
    "resultant_weights",
    "subtract_dark_decay",
]

#: Read offset of the amplitude's t = 0: the middle of read 1.
FRAME_OFFSET = 1.5


def resultant_weights(
    read_pattern: Sequence[Sequence[int]],
    frame_time: float,
    time_constant: float,
    frame_offset: float = FRAME_OFFSET,
) -> np.ndarray:
    """``mean_{k in read_pattern[i]} exp(-(k - frame_offset) * frame_time / tau)`` per resultant."""
    return np.array(
        [
            np.mean(
                np.exp(
                    -(np.asarray(g, dtype=np.float64) - frame_offset) * frame_time / time_constant
                )
            )
            for g in read_pattern
        ],
        dtype=np.float64,
    )


def dark_decay_factors(
    frame_time: float,
    sca: int,
    amplitude: float,
    time_constant: float,
    y: np.ndarray,
    x: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column factors ``A * exp(-row_time(y)/tau)`` and ``exp(-column_time(x)/tau)``."""
    e_row = amplitude * np.exp(-row_time(frame_time, sca, y) / time_constant)
    e_col = np.exp(-column_time(frame_time, sca, x) / time_constant)
    return e_row, e_col


def dark_decay_signal(
    frame_time: float,
    sca: int,
    read_pattern: Sequence[Sequence[int]],
    amplitude: float,
    time_constant: float,
    y: np.ndarray,
    x: np.ndarray,
) -> np.ndarray:
    """Dark-decay signal (DN) of every resultant at absolute pixels ``y`` x ``x``.

    Returns
    -------
    ndarray of float64, shape (n_resultants, len(y), len(x))
    """
    w = resultant_weights(read_pattern, frame_time, time_constant)
    e_row, e_col = dark_decay_factors(frame_time, sca, amplitude, time_constant, y, x)
    return w[:, None, None] * e_row[None, :, None] * e_col[None, None, :]


def subtract_dark_decay(
    data: np.ndarray, e_row: np.ndarray, e_col: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Return ``data - weights[i] * e_row[y] * e_col[x]`` (a new array, ``data``'s dtype).

    ``data`` is ``(resultant, y, x)``; the product is formed in float64 per resultant.
    """
    out = np.empty_like(data)
    outer = e_row[:, None] * e_col[None, :]
    for i in range(data.shape[0]):
        out[i] = data[i] - weights[i] * outer
    return out
