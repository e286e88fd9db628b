"""Data-quality flags.

Same names and bit values as ``roman_datamodels.dqflags`` (checked by a test), as plain
``IntFlag`` enums so they combine with ``|`` and work in numba kernels as ints.
Pixel flags live in ``uint32`` arrays (``pixeldq``, ``dq``); group flags in ``uint8`` arrays
(``groupdq``). Bit 7 means OUTLIER for pixels but WFI18_TRANSIENT for groups.
"""

from __future__ import annotations

from enum import IntFlag

import numpy as np

__all__ = ["GROUP_DTYPE", "PIXEL_DTYPE", "GroupFlag", "PixelFlag", "describe"]

PIXEL_DTYPE = np.uint32
GROUP_DTYPE = np.uint8


class PixelFlag(IntFlag):
    """Pixel data-quality flags (uint32)."""

    GOOD = 0
    DO_NOT_USE = 1 << 0
    SATURATED = 1 << 1
    JUMP_DET = 1 << 2
    DROPOUT = 1 << 3
    GW_AFFECTED_DATA = 1 << 4
    PERSISTENCE = 1 << 5
    AD_FLOOR = 1 << 6
    OUTLIER = 1 << 7
    UNRELIABLE_ERROR = 1 << 8
    NON_SCIENCE = 1 << 9
    DEAD = 1 << 10
    HOT = 1 << 11
    WARM = 1 << 12
    LOW_QE = 1 << 13
    TELEGRAPH = 1 << 15
    NONLINEAR = 1 << 16
    BAD_REF_PIXEL = 1 << 17
    NO_FLAT_FIELD = 1 << 18
    NO_GAIN_VALUE = 1 << 19
    NO_LIN_CORR = 1 << 20
    NO_SAT_CHECK = 1 << 21
    UNRELIABLE_BIAS = 1 << 22
    UNRELIABLE_DARK = 1 << 23
    UNRELIABLE_SLOPE = 1 << 24
    UNRELIABLE_FLAT = 1 << 25
    RESERVED_5 = 1 << 26
    RESERVED_6 = 1 << 27
    UNRELIABLE_RESET = 1 << 28
    RESERVED_7 = 1 << 29
    OTHER_BAD_PIXEL = 1 << 30
    REFERENCE_PIXEL = 1 << 31


class GroupFlag(IntFlag):
    """Group (resultant) data-quality flags (uint8)."""

    GOOD = 0
    DO_NOT_USE = 1 << 0
    SATURATED = 1 << 1
    JUMP_DET = 1 << 2
    DROPOUT = 1 << 3
    AD_FLOOR = 1 << 6
    WFI18_TRANSIENT = 1 << 7


def describe(value: int, flags: type[IntFlag] = PixelFlag) -> list[str]:
    """Return the names of the flags set in ``value``.

    Parameters
    ----------
    value : int
        A DQ value.
    flags : type
        :class:`PixelFlag` (default) or :class:`GroupFlag`.

    Returns
    -------
    list of str
        Flag names, lowest bit first; ``["GOOD"]`` for 0.
    """
    value = int(value)
    if value == 0:
        return ["GOOD"]
    return [f.name for f in flags if f.value and value & f.value]
