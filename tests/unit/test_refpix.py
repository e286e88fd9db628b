"""refpix on mini frames (a few rows, 2-4 channels) and 12-row full widths."""

from __future__ import annotations

import os

import dask
import numpy as np
import pytest

from romanxr.dq import PixelFlag
from romanxr.errors import ExposureError, ReferenceMismatchError
from romanxr.kernels import refpix as K
from romanxr.refs import ReferenceResolver
from romanxr.steps.refpix import refpix
from tests.unit._ramp_factory import make_ramp, write_refpix_reference

OFF = {
    "remove_offset": False,
    "remove_trends": False,
    "cosine_interpolate": False,
    "fft_interpolate": False,
}


def _no_compute(*args, **kwargs):
    raise RuntimeError("the graph was computed while it should only have been built")


def _read_time(ny, nch):
    x = np.arange(nch * 128)
    read_col = np.where((x // 128) % 2 == 1, 127 - x % 128, x % 128)
    return np.arange(ny)[:, None] * 140 + read_col[None, :]


def _ref(tmp_path, ny, nch, kind="zero", seed=0, name="refpix.asdf"):
    m = K.spectrum_length(ny)
    if kind == "zero":
        g = z = a = np.zeros((nch, m), np.complex128)
    elif kind == "drift":
        g, z, a = K.refpix_reference_coefficients(ny, nch)
    else:
        rng = np.random.default_rng(seed)
        g, z, a = (
            (rng.normal(size=(nch, m)) + 1j * rng.normal(size=(nch, m))) * 1e-3 for _ in range(3)
        )
    return write_refpix_reference(tmp_path / name, g, z, a)


def _ramp(nres=4, ny=8, nch=2, seed=1, **kw):
    rng = np.random.default_rng(seed)
    data = rng.normal(1000, 20, (nres, ny, nch * 128)).astype(np.float32)
    amp33 = rng.integers(900, 1100, (nres, ny, 128)).astype(np.uint16)
    return make_ramp(data, amp33=amp33, borders=True, **kw)


def test_channel_views_round_trip_and_pads_zero():
    frame = np.arange(4 * 384, dtype=np.float32).reshape(4, 384) + 1
    ch = K.to_channels(frame)
    assert ch.shape == (3, 4, 140)
    np.testing.assert_array_equal(ch[:, :, 128:], 0)
    np.testing.assert_array_equal(ch[1, 0, :128], frame[0, 255:127:-1])  # odd channel reversed
    np.testing.assert_array_equal(K.from_channels(ch), frame)
    K.remove_trends(ch)
    np.testing.assert_array_equal(ch[:, :, 128:], 0)  # zero pads stay zero


def test_pure_linear_trend_removed():
    ny, nch = 8, 2
    t = _read_time(ny, nch + 1)
    line = (500.0 + 0.01 * t).astype(np.float32)  # same time line in every channel
    out = K.correct_resultant(
        line,
        *(np.zeros((nch, K.spectrum_length(ny)), np.complex64),) * 3,
        cosine_interpolate_=False,
        fft_interpolate_=False,
    )
    np.testing.assert_allclose(out, 0.0, atol=2e-3)


def test_constant_offset_leaves_data_unchanged(tmp_path):
    rng = np.random.default_rng(2)
    frame = rng.normal(1000, 50, (8, 256)).astype(np.float32)
    amp = rng.integers(900, 1100, (8, 128)).astype(np.uint16)
    data = np.repeat(frame[None], 5, axis=0)
    ds = make_ramp(data, amp33=np.repeat(amp[None], 5, axis=0))
    out = refpix(ds, override_refpix=_ref(tmp_path, 8, 2, "random"))
    # every pixel equals its mean over resultants: nothing is left to correct
    np.testing.assert_array_equal(out.data.values, data)
    np.testing.assert_array_equal(out.amp33.values, ds.amp33.values)


def test_common_mode_drift_removed(tmp_path):
    ny, nch, nres = 16, 4, 4
    t = _read_time(ny, nch)
    base = np.random.default_rng(1).normal(1000, 10, (ny, nch * 128)).astype(np.float32)
    amplitude = np.array([5.0, -5.0, 10.0, -10.0])  # averages out of the per-pixel offset
    drift = amplitude[:, None, None] * np.sin(2 * np.pi * 2 * t / (ny * 140))[None]
    data = (base[None] + drift).astype(np.float32)
    ds = make_ramp(data, amp33=np.full((nres, ny, 128), 1000, np.uint16))
    ref = _ref(tmp_path, ny, nch, "drift")
    out = refpix(ds, override_refpix=ref, remove_trends=False)
    np.testing.assert_allclose(out.data.values, base[None].repeat(nres, 0), atol=3e-4)
    # with trend removal on, a drift symmetric in time (no in-frame line for the trend fit to
    # take out first) is still removed to a few per cent
    centred = t - (ny * 140 - 1) / 2
    drift = amplitude[:, None, None] * np.cos(2 * np.pi * 2 * centred / (ny * 140))[None]
    full = refpix(
        ds.assign(data=(ds.data.dims, (base[None] + drift).astype(np.float32))), override_refpix=ref
    )
    assert np.abs(full.data.values - base).max() < 0.1 * np.abs(drift).max()
    # and the zero reference leaves the drift in
    zero = refpix(
        ds, override_refpix=_ref(tmp_path, ny, nch, "zero", name="z.asdf"), remove_trends=False
    )
    np.testing.assert_allclose(zero.data.values, data, atol=1e-3)


def test_amp33_written_as_absolute_uint16(tmp_path):
    ny = 8
    data = np.full((2, ny, 256), 100, np.float32)
    amp = np.full((2, ny, 128), 2, np.uint16)
    amp[:, :4] = amp[:, -4:] = 5  # trend rows fit the constant 5, the middle becomes 2 - 5
    ds = make_ramp(data, amp33=amp)
    out = refpix(
        ds,
        override_refpix=_ref(tmp_path, ny, 2),
        remove_offset=False,
        cosine_interpolate=False,
        fft_interpolate=False,
    )
    assert out.amp33.dtype == np.uint16
    np.testing.assert_array_equal(out.amp33.values[:, 4:-4], 3)
    np.testing.assert_array_equal(out.amp33.values[:, :4], 0)


def test_bad_reference_pixels_zeroed(tmp_path):
    ds = _ramp(nres=3, ny=6)
    pixeldq = np.zeros((6, 256), np.uint32)
    pixeldq[2, 1] = PixelFlag.BAD_REF_PIXEL
    pixeldq[3, 100] = PixelFlag.DO_NOT_USE
    ds["pixeldq"] = (("y", "x"), pixeldq)
    out = refpix(ds, override_refpix=_ref(tmp_path, 6, 2), **OFF)
    assert np.all(out.data.values[:, 2, 1] == 0)
    expect = ds.data.values.copy()
    expect[:, 2, 1] = 0
    np.testing.assert_array_equal(out.data.values, expect)


def test_border_columns_overwritten(tmp_path):
    ds = _ramp(nres=3, ny=8)
    out = refpix(ds, override_refpix=_ref(tmp_path, 8, 2, "random"))
    np.testing.assert_array_equal(out.border_ref_pix_left.values, out.data.values[:, :, :4])
    np.testing.assert_array_equal(out.border_ref_pix_right.values, out.data.values[:, :, -4:])
    assert not np.array_equal(out.data.values, ds.data.values)


def test_switches_do_what_they_say(tmp_path):
    ds = _ramp(nres=4, ny=8)
    ref = _ref(tmp_path, 8, 2, "random")
    full = refpix(ds, override_refpix=ref).data.values
    no_offset = refpix(ds, override_refpix=ref, remove_offset=False).data.values
    assert not np.allclose(full, no_offset, atol=1e-2)
    # all off and a zero reference: an identity
    ident = refpix(ds, override_refpix=_ref(tmp_path, 8, 2, name="z.asdf"), **OFF)
    np.testing.assert_array_equal(ident.data.values, ds.data.values)


def test_numpy_equals_dask_lazy_and_input_unmodified(tmp_path):
    ds = _ramp(nres=4, ny=12, nch=2)
    before = ds.copy(deep=True)
    ref = _ref(tmp_path, 12, 2, "random")
    eager = refpix(ds, override_refpix=ref)
    with dask.config.set(scheduler=_no_compute):
        lazy = refpix(ds.chunk({"y": 5, "x": 100}), override_refpix=ref)
    assert lazy.data.chunks is not None
    for name in ("data", "amp33", "border_ref_pix_left", "border_ref_pix_right"):
        np.testing.assert_array_equal(lazy[name].values, eager[name].values)
    assert ds.identical(before) and ds.attrs == before.attrs
    assert eager.attrs["meta"]["cal_step"]["refpix"] == "COMPLETE"
    assert eager.attrs["meta"]["ref_file"]["refpix"] == "refpix.asdf"
    assert eager.attrs["step_parameters"]["refpix"]["remove_offset"] is True


def test_any_row_count_needs_matching_reference(tmp_path):
    ds = _ramp(nres=3, ny=10)
    with pytest.raises(ReferenceMismatchError, match="701"):
        refpix(ds, override_refpix=_ref(tmp_path, 8, 2))
    out = refpix(ds, override_refpix=_ref(tmp_path, 10, 2, name="r10.asdf"))
    assert out.data.shape == (3, 10, 256)


def test_channel_count_must_match_reference(tmp_path):
    with pytest.raises(ReferenceMismatchError, match="channels"):
        refpix(_ramp(nres=2, ny=8, nch=4), override_refpix=_ref(tmp_path, 8, 2))


def test_column_cutout_rejected(tmp_path):
    ds = _ramp(nres=2, ny=8, nch=2, x0=128)
    with pytest.raises(ExposureError, match="whole detector rows"):
        refpix(ds, override_refpix=_ref(tmp_path, 8, 2))
    with pytest.raises(ExposureError, match="amp33"):
        refpix(_ramp(nres=2, ny=8).drop_vars("amp33"), override_refpix=_ref(tmp_path, 8, 2))


def test_row_cutout_keeps_absolute_rows(tmp_path):
    ds = _ramp(nres=3, ny=8, y0=2000)
    out = refpix(ds, override_refpix=_ref(tmp_path, 8, 2, "random"))
    np.testing.assert_array_equal(out.y.values, np.arange(2000, 2008))


def test_not_applicable_reference_skips():
    ds = _ramp(nres=2, ny=8)
    out = refpix(ds, resolver=ReferenceResolver(overrides={"refpix": "N/A"}))
    assert out.attrs["meta"]["cal_step"]["refpix"] == "SKIPPED"
    np.testing.assert_array_equal(out.data.values, ds.data.values)


def test_reference_coefficients_shape_and_passband():
    g, z, a = K.refpix_reference_coefficients(16, 4)
    m = K.spectrum_length(16)
    assert g.shape == z.shape == a.shape == (4, m) and g.dtype == np.complex128
    assert np.all(a == 0) and np.array_equal(g, z)
    np.testing.assert_allclose(g[0, :8], 16 * 140 / (4 * m))
    assert np.all(g[:, 8:] == 0)


@pytest.fixture
def scratch_base(tmp_path, monkeypatch):
    """ROMANXR_TMPDIR set to a fresh folder, with this process's run directory made anew."""
    from romanxr.schedule import scratch

    base = tmp_path / "scratch"
    monkeypatch.setenv("ROMANXR_TMPDIR", str(base))
    scratch.cleanup()
    yield base
    scratch.cleanup()


@pytest.mark.parametrize("spill", [True, False])
def test_streamed_groups_equal_whole_frame(tmp_path, monkeypatch, scratch_base, spill):
    """Corrections cut into row groups, read back from the scratch file or (when it cannot be
    written) transformed again per group, give the whole-frame result bit for bit."""
    from romanxr.kernels import refpix_stages

    ds = _ramp(nres=3, ny=24, nch=2)
    ref = _ref(tmp_path, 24, 2, "random")
    eager = refpix(ds, override_refpix=ref)
    monkeypatch.setattr(refpix_stages, "CORRECTION_BYTES", 3 * 8 * 256 * 4)  # 8-row groups
    monkeypatch.setattr(refpix_stages, "CHANNEL_BLOCK", 1)
    if spill:
        dead = scratch_base / "romanxr-999999999-x-left"  # of a run killed long ago
        dead.mkdir(parents=True)
        (dead / "refpix-0123-0.f32").write_bytes(b"x")
    else:  # no scratch folder at all: every group computes its rows
        monkeypatch.setenv("ROMANXR_TMPDIR", str(tmp_path / "missing"))
    lazy = refpix(ds.chunk({"y": 4}), override_refpix=ref)
    np.testing.assert_array_equal(lazy.data.values, eager.data.values)
    np.testing.assert_array_equal(lazy.amp33.values, eager.amp33.values)
    if spill:
        # the dead run's directory was swept; the groups removed the scratch files once all
        # had read them
        (run,) = scratch_base.iterdir()
        assert run.name.startswith(f"romanxr-{os.getpid()}-")
        assert list(run.iterdir()) == []
    else:
        assert not (tmp_path / "missing").exists()


def test_scratch_file_is_read_by_every_group_in_any_order(tmp_path):
    """Groups run in any order (a plain ``compute`` need not run the last rows last): each
    reads its rows from the file, none transforms again, and the file goes after the last read.
    """
    from romanxr.kernels import refpix_stages as stages
    from romanxr.schedule import banded
    from romanxr.schedule.graph import Opaque

    nres, ny, nch = 2, 24, 2
    m = K.spectrum_length(ny)
    rng = np.random.default_rng(5)
    spectra = (rng.normal(size=(nres, 3, m)) + 1j * rng.normal(size=(nres, 3, m))).astype(
        np.complex64
    )
    coeffs = tuple(
        (rng.normal(size=(nch, m)) + 1j * rng.normal(size=(nch, m))).astype(np.complex64)
        for _ in range(3)
    )
    flags = {"remove_offset": True, "remove_trends": True}
    path = str(tmp_path / "refpix-test-0.f32")
    constants = Opaque(coeffs, "test")  # as stream_border_stage hands them to its tasks

    def spill():
        return banded._spill(stages.corrections_by_resultant, spectra, constants, 0, nch, path)

    def read(rows, n_groups):
        return banded._read_back(
            path, no_transform, (nres, ny), None, flags, constants, 0, nch, rows, n_groups, 128
        )

    def no_transform(*args, **kwargs):
        raise AssertionError("a group transformed again instead of reading the file")

    assert spill() == path
    whole = stages.group_corrections(spectra, coeffs, 0, nch, slice(None))
    groups = [slice(16, 24), slice(0, 8), slice(8, 16)]  # the last rows first
    for i, rows in enumerate(groups):
        np.testing.assert_array_equal(read(rows, len(groups)), whole[:, rows])
        assert os.path.exists(path) == (i < len(groups) - 1)
    assert list(tmp_path.iterdir()) == []

    # rows read but the count cannot be kept (its file is gone): the rows are still used, and
    # the file is left to the run directory's cleanup
    assert spill() == path
    os.unlink(path + ".reads")
    np.testing.assert_array_equal(read(slice(0, 8), 1), whole[:, :8])
    assert os.path.exists(path)
