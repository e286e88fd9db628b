"""Small ramp Datasets as dq_init leaves them, for the refpix/dark_decay/wfi18 tests."""

from __future__ import annotations

import numpy as np
import xarray as xr

from romanxr.dataset import ReadPatternInfo, resultant_coords


def make_ramp(
    data: np.ndarray,
    *,
    y0: int = 0,
    x0: int = 0,
    read_pattern=None,
    frame_time: float = 3.04,
    detector: str = "WFI01",
    amp33: np.ndarray | None = None,
    pixeldq: np.ndarray | None = None,
    borders: bool = False,
) -> xr.Dataset:
    """A ramp Dataset with absolute coords starting at (y0, x0)."""
    data = np.asarray(data, dtype=np.float32)
    nres, ny, nx = data.shape
    read_pattern = read_pattern or [[i + 1] for i in range(nres)]
    info = ReadPatternInfo(read_pattern, frame_time)
    coords = dict(resultant_coords(info))
    coords["y"] = np.arange(y0, y0 + ny, dtype=np.int64)
    coords["x"] = np.arange(x0, x0 + nx, dtype=np.int64)
    variables = {
        "data": (("resultant", "y", "x"), data),
        "pixeldq": (
            ("y", "x"),
            np.zeros((ny, nx), np.uint32) if pixeldq is None else pixeldq.astype(np.uint32),
        ),
        "groupdq": (("resultant", "y", "x"), np.zeros((nres, ny, nx), np.uint8)),
    }
    if amp33 is not None:
        variables["amp33"] = (("resultant", "y", "amp33_x"), amp33.astype(np.uint16))
        coords["amp33_x"] = np.arange(amp33.shape[-1], dtype=np.int64)
    if borders:
        variables["border_ref_pix_left"] = (("resultant", "y", "ref_col"), data[:, :, :4].copy())
        variables["border_ref_pix_right"] = (("resultant", "y", "ref_col"), data[:, :, -4:].copy())
        coords["ref_col"] = np.arange(4, dtype=np.int64)
    meta = {
        "filename": "test_uncal.asdf",
        "exposure": {"read_pattern": read_pattern, "frame_time": frame_time, "type": "WFI_IMAGE"},
        "instrument": {"name": "WFI", "detector": detector, "optical_element": "F158"},
        "cal_step": {"dq_init": "COMPLETE"},
    }
    return xr.Dataset(variables, coords=coords, attrs={"meta": meta})


def write_decay_reference(path, detector="WFI01", amplitude=0.4, time_constant=23.0):
    """A DARKDECAYSIGNAL reference with one entry set."""
    import roman_datamodels.datamodels as dm

    ref = dm.DarkdecaysignalRefModel.create_fake_data()
    ref.decay_table[detector] = {"amplitude": amplitude, "time_constant": time_constant}
    ref.save(path)
    return path


def write_refpix_reference(path, gamma, zeta, alpha):
    """A REFPIX reference holding the given (channels, M) complex coefficient arrays."""
    import roman_datamodels.datamodels as dm

    ref = dm.RefpixRefModel.create_fake_data(shape=gamma.shape)
    ref.gamma = np.asarray(gamma, dtype=np.complex128)
    ref.zeta = np.asarray(zeta, dtype=np.complex128)
    ref.alpha = np.asarray(alpha, dtype=np.complex128)
    ref.save(path)
    return path
