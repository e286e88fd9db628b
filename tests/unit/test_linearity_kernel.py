"""The compiled linearity kernel against a plain per-pixel transcription of romancal's linearity.

The reference below is written for clarity, one pixel and one read at a time, with numpy's own
``interp`` for the INL term; the kernel must agree with it bit for bit (NaN where NaN) on
random ramps with saturated resultants, NaN and zero-slope coefficients, NO_LIN_CORR pixels,
values outside the INL table, values on its nodes, clamped results, and every INL lookup path
(consecutive integers, a power-of-two step, uneven, not strictly increasing).
"""

from __future__ import annotations

import numpy as np
import pytest

from romanxr.kernels.linearity import CLAMP, linearity_correction, pack_read_pattern
from romanxr.kernels.linearity_inl import inl_plan

NO_LIN_CORR, DNU, SAT = 1 << 20, 1, 2
READ_PATTERN = [[1], [2, 3], [4, 5, 6, 7], [8], [9, 10, 11], [12, 13]]


def _sanitised(coeffs, lin_dq, pdq):
    c = np.array(coeffs, dtype=np.float32)
    for y, x in np.ndindex(c.shape[1:]):
        bad = bool(np.isnan(c[:, y, x]).any()) or (c.shape[0] > 1 and c[1, y, x] == 0)
        if bad:
            pdq[y, x] |= NO_LIN_CORR
        if bad or lin_dq[y, x] & NO_LIN_CORR:
            c[:, y, x] = 0
            if c.shape[0] > 1:
                c[1, y, x] = 1
    return c


def _poly(c, v):
    """``((c[n-1] v + c[n-2]) v + ...) v + c[0]`` in the type of ``v``."""
    r = c[-1] * v
    for k in range(len(c) - 2, 0, -1):
        r = (r + c[k]) * v
    return r + c[0]


def reference(data, gdq, pdq, lin, ilin, lin_dq, channel, read_pattern, inl=None):
    """romancal's linearity, pixel by pixel and read by read."""
    pdq = pdq | lin_dq
    lin = _sanitised(lin, lin_dq, pdq)
    ilin = _sanitised(ilin, lin_dq, pdq)
    means = [float(np.mean(g)) for g in read_pattern]
    out = data.copy()
    gout = gdq.copy()
    nres = data.shape[0]
    for y, x in np.ndindex(data.shape[1:]):
        p32 = lin[:, y, x]
        p64 = [float(c) for c in lin[:, y, x]]
        q64 = [float(c) for c in ilin[:, y, x]]
        sat = (gdq[:, y, x] & SAT) != 0
        last = min(max(int((~sat).sum()) - 1, 2) - 1, nres - 1)
        d0, dl = data[0, y, x], data[last, y, x]
        first = d0 if sat[0] else _poly(p32, d0)
        lastlin = dl if sat[last] else _poly(p32, dl)
        rate = float(np.float32(lastlin - first)) / (means[last] - means[0]) if last else 0.0
        for i, reads in enumerate(read_pattern):
            obs = [_poly(q64, float(first) + rate * (r - means[0])) for r in reads]
            total = 0.0
            for o in obs:
                total += o
            shift = float(data[i, y, x]) - total / len(reads)
            acc = 0.0
            for o in obs:
                v = o + shift
                if inl is not None:
                    values, rows = inl
                    v = v + float(np.interp(v, values, rows[channel[x]]))
                acc += _poly(p64, v)
            if sat[i]:
                continue
            value = np.float32(acc / len(reads))
            if abs(value) > CLAMP:
                value = np.float32(CLAMP) if value > 0 else np.float32(-CLAMP)
                gout[i, y, x] |= DNU
            out[i, y, x] = value
    return out, gout, pdq


def _case(seed, ny=3, nx=40, integer=False):
    rng = np.random.default_rng(seed)
    nres = len(READ_PATTERN)
    rate = rng.uniform(-50, 3000, (ny, nx))
    means = np.array([np.mean(g) for g in READ_PATTERN])
    data = rng.uniform(-200, 5000, (ny, nx)) + rate * means[:, None, None]
    data[:, 0, :4] = np.array([-5.0, 0.0, 64.0, 65535.0])[None, :]  # ends and nodes
    if integer:
        data = np.round(data)
    data = data.astype(np.float32)
    data[2, 1, 5] = np.nan
    gdq = np.zeros((nres, ny, nx), np.uint8)
    for y, x in np.ndindex(ny, nx):  # saturated from some resultant on, for a third of them
        if rng.random() < 0.33:
            gdq[rng.integers(0, nres) :, y, x] |= SAT
    gdq[:, 0, 7] = SAT  # all saturated
    gdq[1:, 0, 8] = SAT  # only the first one left
    gdq |= (rng.random(gdq.shape) < 0.1).astype(np.uint8) * 4  # unrelated bits pass
    pdq = (rng.random((ny, nx)) < 0.2).astype(np.uint32) * 4
    lin = np.zeros((5, ny, nx), np.float32)
    lin[0] = rng.uniform(-3, 3, (ny, nx))
    lin[1] = rng.uniform(0.9, 1.1, (ny, nx))
    lin[2] = rng.uniform(-1e-6, 3e-6, (ny, nx))
    lin[3] = rng.uniform(-1e-11, 1e-11, (ny, nx))
    lin[4] = rng.uniform(-1e-16, 1e-16, (ny, nx))
    ilin = np.zeros((3, ny, nx), np.float32)
    ilin[0] = -lin[0]
    ilin[1] = 1 / lin[1]
    ilin[2] = -lin[2]
    lin[3, 1, 2] = np.nan  # NaN in the forward polynomial only
    ilin[2, 1, 3] = np.nan  # in the inverse only
    lin[1, 2, 4] = 0  # zero slope
    lin_dq = np.zeros((ny, nx), np.uint32)
    lin_dq[2, 6] = NO_LIN_CORR
    lin_dq[1, 9] = 1
    lin[:, 2, 10] = [0, 1e8, 0, 0, 0]  # clamped: +1e6 (DO_NOT_USE unless saturated)
    lin[:, 2, 11] = [0, -1e8, 0, 0, 0]  # and -1e6
    return data, gdq, pdq, lin, ilin, lin_dq


def _inl(kind, nchan):
    rng = np.random.default_rng(7)
    if kind == "direct":
        values = np.arange(65536, dtype=np.uint16)
    elif kind == "step":  # 0, 64, ..., 65472, 65535: a power-of-two step, shorter last gap
        values = np.append(np.arange(0, 65535, 64), 65535).astype(np.uint16)
    elif kind == "uneven":  # the simulator's table: steps of 64 and one of 63
        values = np.round(np.linspace(0, 65535, 1025)).astype(np.uint16)
    else:  # "search": a repeated node, not strictly increasing
        values = np.array([0, 1, 2, 3, 3, 4000, 60000, 65535], dtype=np.uint16)
    rows = rng.normal(0, 2, (nchan, values.size))
    return values, rows


@pytest.mark.parametrize("inl_kind", [None, "direct", "step", "uneven", "search"])
@pytest.mark.parametrize("integer", [False, True])
def test_kernel_equals_reference(inl_kind, integer):
    data, gdq, pdq, lin, ilin, lin_dq = _case(1, integer=integer)
    x0 = 110  # a cut-out across the channel boundary at column 128
    channel = (np.arange(x0, x0 + data.shape[2]) // 128).astype(np.int64)
    reads, starts = pack_read_pattern(READ_PATTERN)
    inl = None if inl_kind is None else _inl(inl_kind, int(channel.max()) + 1)
    if inl is not None:  # the lookup path this case is meant to exercise
        mode = inl_plan(inl[0].astype(np.float64))[0]
        assert mode == {"direct": 1, "uneven": 2, "search": 3, "step": 4}[inl_kind]
    kwargs = {} if inl is None else {"inl_values": inl[0], "inl_corrections": inl[1]}
    inputs = [a.copy() for a in (data, gdq, pdq, lin, ilin, lin_dq)]
    got = linearity_correction(*inputs, channel, reads=reads, starts=starts, **kwargs)
    want = reference(data, gdq, pdq, lin, ilin, lin_dq, channel, READ_PATTERN, inl)
    for g, w, name in zip(got, want, ("data", "groupdq", "pixeldq"), strict=True):
        assert g.dtype == w.dtype, name
        np.testing.assert_array_equal(g, w, err_msg=name)  # NaN == NaN, else bit for bit
    # the inputs are not modified
    for a, b in zip(inputs, (data, gdq, pdq, lin, ilin, lin_dq), strict=True):
        np.testing.assert_array_equal(a, b)
    # the case exercises what it claims to
    assert (want[1] & DNU).any() and (want[2] & NO_LIN_CORR).any()
    assert np.isnan(want[0]).any()


def test_kernel_any_layout_and_float64_coefficients():
    """Strided inputs, (y, coeff, x)-ordered coefficients and float64 coefficients (rounded to
    float32 as the reference files store them) give the same answer."""
    data, gdq, pdq, lin, ilin, lin_dq = _case(2, nx=20)
    channel = np.zeros(20, np.int64)
    reads, starts = pack_read_pattern(READ_PATTERN)
    values, rows = _inl("uneven", 1)
    kw = {"reads": reads, "starts": starts, "inl_values": values, "inl_corrections": rows}
    base = linearity_correction(data, gdq, pdq, lin, ilin, lin_dq, channel, **kw)
    yfirst = np.ascontiguousarray(lin.transpose(1, 0, 2)).transpose(1, 0, 2)
    wide = np.zeros((data.shape[0], data.shape[1], 40), np.float32)
    wide[:, :, ::2] = data
    other = linearity_correction(
        wide[:, :, ::2], gdq, pdq, yfirst, ilin.astype(np.float64), lin_dq, channel, **kw
    )
    for a, b in zip(base, other, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unchanged_groupdq_is_not_copied():
    """Nothing clamped: the group DQ given is returned as it is (no 8-bit copy per chunk)."""
    data, gdq, pdq, lin, ilin, lin_dq = _case(3)
    lin[:, 2, 10:12] = [[0], [1], [0], [0], [0]]  # no clamped pixel left
    reads, starts = pack_read_pattern(READ_PATTERN)
    channel = np.zeros(data.shape[2], np.int64)
    _, g, _ = linearity_correction(
        data, gdq, pdq, lin, ilin, lin_dq, channel, reads=reads, starts=starts
    )
    assert g is gdq
