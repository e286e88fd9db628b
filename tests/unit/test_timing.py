"""The pixel read-time map T(ft, sca, frame) used by dark_decay."""

from __future__ import annotations

import numpy as np
import pytest

from romanxr.kernels.timing import PIXEL_TIME, column_time, read_time_map, row_time

FT = 3.04


def _scale(ft):
    # by hand: 4096 rows x (128 + 14) cycles, 16 guide-window excursions inflated by 1.5
    last = 127 + 4095 * 142
    per_gw = (ft / PIXEL_TIME - last) / 16 * 1.5
    return per_gw, last + 16 * per_gw


def test_first_pixels_and_row_step_by_hand():
    per_gw, full = _scale(FT)
    # sca 3: columns flipped, rows not; detector (row 0, col 0) is science (0, 4095)
    t = read_time_map(FT, 3, y=np.array([0, 1, 255, 256]), x=np.array([4095, 4094]))
    assert t[0, 0] == 0.0
    np.testing.assert_allclose(t[0, 1], FT * 1 / full, rtol=1e-12)
    np.testing.assert_allclose(t[1, 0], FT * 142 / full, rtol=1e-12)
    # crossing a 256-row boundary adds one guide-window excursion
    np.testing.assert_allclose(t[3, 0] - t[2, 0], FT * (142 + per_gw) / full, rtol=1e-9)


def test_frame_within_frame_time_and_offset():
    t0 = read_time_map(FT, 1, y=np.arange(0, 4096, 97), x=np.arange(0, 4096, 89))
    assert t0.min() >= 0 and t0.max() < FT
    t2 = read_time_map(FT, 1, 2.5, y=np.arange(0, 4096, 97), x=np.arange(0, 4096, 89))
    np.testing.assert_allclose(t2 - t0, 2.5 * FT, rtol=1e-12)


def test_channels_alternate_read_direction():
    x = np.arange(256)
    c = column_time(FT, 1, x)
    # channel 0 reads left to right, channel 1 right to left: both start at their outer edges
    assert c[0] == c[255] == 0.0
    assert np.all(np.diff(c[:128]) > 0) and np.all(np.diff(c[128:]) < 0)
    np.testing.assert_array_equal(c[:128], c[128:][::-1])


@pytest.mark.parametrize("sca", [1, 2, 3, 18])
def test_orientation(sca):
    y = np.arange(0, 4096, 255)
    x = np.arange(0, 4096, 127)
    t = read_time_map(FT, sca, y=y, x=x)
    r = row_time(FT, sca, y)
    if sca % 3 == 0:  # rows not flipped: later rows are read later
        assert np.all(np.diff(r) > 0)
        assert t[0].min() == t.min()
    else:  # rows flipped: the top of the science frame is read first
        assert np.all(np.diff(r) < 0)
        assert t[-1].min() == t.min()


def test_cutout_equals_full_map_slice():
    full = read_time_map(FT, 5)
    y, x = np.arange(1000, 1040), np.arange(2040, 2100)
    np.testing.assert_array_equal(read_time_map(FT, 5, y=y, x=x), full[1000:1040, 2040:2100])
