"""``meta.statistics`` of a cal.asdf, from the arrays as the writer stores them.

romancal 1.1.0 records image statistics in every image it returns (``populate_statistics``:
median, robust rms and good-pixel fraction); the cal.asdf writer
(:mod:`romanxr.io.asdf_writer`) computes the same numbers from the stored (cast) arrays once
they are computed, reading them back a band of rows at a time. The numerics are in
:mod:`romanxr.kernels.statistics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from romanxr.kernels.statistics import PLACEHOLDER, good_values, image_statistics

__all__ = ["PLACEHOLDER", "cal_statistics"]

#: rows read back at a time (4088 columns: about 10 MiB of data, dq and err)
ROWS = 256


def cal_statistics(sources: Mapping[str, Any], rows: int = ROWS) -> dict[str, float]:
    """``meta.statistics`` of an image from the writer's array sources.

    Parameters
    ----------
    sources : mapping
        ``data``, ``dq`` and ``err`` as :class:`~romanxr.io.asdf_stream.ArraySource` (the
        values in their storage dtypes, as they go into the file).
    rows : int
        Rows read back at a time.

    Returns
    -------
    dict
        As :func:`romanxr.kernels.statistics.image_statistics`.
    """
    data, dq, err = sources["data"], sources["dq"], sources["err"]
    ny = data.shape[0]
    n_pixels = math.prod(data.shape)
    buffer = np.empty(n_pixels, dtype=np.float32)
    filled = 0
    for start in range(0, ny, rows):
        stop = min(ny, start + rows)
        values = good_values(
            data.slab((), start, stop), dq.slab((), start, stop), err.slab((), start, stop)
        )
        buffer[filled : filled + values.size] = values
        filled += values.size
    return image_statistics(buffer[:filled], n_pixels)
