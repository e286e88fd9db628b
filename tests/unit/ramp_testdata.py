"""Small synthetic ramps and READNOISE/GAIN reference files for the ramp-fitting tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from romanxr.dataset import ReadPatternInfo, resultant_coords

BORDER = 4
#: romancal's 2x2 test ramps (resultants at (y, x) of the science block), pattern [[1]..[4]]
SIMPLE_RESULTANTS = np.array(
    [
        [[2.0, 2.0], [5.0, 1.0]],
        [[4.0, 5.0], [6.0, 2.0]],
        [[5.0, 6.0], [7.0, 6.0]],
        [[7.0, 7.0], [7.0, 7.0]],
    ],
    dtype=np.float32,
)
FRAME_TIME = 3.04


def fit_block(fitter, data, rp, readnoise, gain, groupdq=None, frame_time=3.04, **kw):
    """Call a ramp-fit block kernel on plain arrays: ``data`` (nres,) or (nres, ny, nx), a read
    pattern, uniform read noise and gain, optional ``groupdq``; ``kw`` goes to the kernel."""
    data = np.asarray(data, np.float32)
    if data.ndim == 1:
        data = data[:, None, None]
    info = ReadPatternInfo(rp, frame_time)
    shape = data.shape[1:]
    gdq = np.zeros(data.shape, np.uint8) if groupdq is None else np.asarray(groupdq, np.uint8)
    if gdq.ndim == 1:
        gdq = gdq[:, None, None]
    return fitter(
        data,
        gdq,
        np.zeros(shape, np.uint32),
        np.full(shape, readnoise, np.float32),
        np.full(shape, gain, np.float32),
        mean_time=info.mean_time,
        n_reads=info.n_reads,
        variance_time=info.variance_time,
        **kw,
    )


def make_ramp(
    science: np.ndarray,
    read_pattern: list[list[int]] | None = None,
    *,
    frame_time: float = FRAME_TIME,
    groupdq: np.ndarray | None = None,
    pixeldq: np.ndarray | None = None,
    border_arrays: bool = True,
    chunks: dict | None = None,
) -> xr.Dataset:
    """A ramp Dataset: ``science`` (nres, ny, nx) embedded in a 4-pixel border of ones.

    ``groupdq``/``pixeldq`` (if given) are for the science block. With ``border_arrays`` the
    Dataset carries amp33 and the border reference arrays like a dq_init output.
    """
    science = np.asarray(science, dtype=np.float32)
    nres, ny, nx = science.shape
    read_pattern = read_pattern or [[i + 1] for i in range(nres)]
    info = ReadPatternInfo(read_pattern, frame_time)
    full = np.ones((nres, ny + 2 * BORDER, nx + 2 * BORDER), np.float32)
    full[:, BORDER:-BORDER, BORDER:-BORDER] = science
    gdq = np.zeros(full.shape, np.uint8)
    if groupdq is not None:
        gdq[:, BORDER:-BORDER, BORDER:-BORDER] = groupdq
    pdq = np.zeros(full.shape[1:], np.uint32)
    if pixeldq is not None:
        pdq[BORDER:-BORDER, BORDER:-BORDER] = pixeldq
    fy, fx = full.shape[1:]
    coords = {"y": np.arange(fy), "x": np.arange(fx), **resultant_coords(info)}
    variables = {
        "data": (("resultant", "y", "x"), full),
        "groupdq": (("resultant", "y", "x"), gdq),
        "pixeldq": (("y", "x"), pdq),
    }
    if border_arrays:
        rng = np.random.default_rng(3)
        variables["amp33"] = (
            ("resultant", "y", "amp33_x"),
            rng.integers(0, 100, (nres, fy, 128)).astype(np.uint16),
        )
        variables["border_ref_pix_left"] = (
            ("resultant", "y", "ref_col"),
            full[:, :, :BORDER].copy(),
        )
        variables["border_ref_pix_right"] = (
            ("resultant", "y", "ref_col"),
            full[:, :, -BORDER:].copy(),
        )
        variables["border_ref_pix_top"] = (
            ("resultant", "ref_row", "x"),
            full[:, -BORDER:, :].copy(),
        )
        variables["border_ref_pix_bottom"] = (
            ("resultant", "ref_row", "x"),
            full[:, :BORDER, :].copy(),
        )
        variables["dq_border_ref_pix_left"] = (("y", "ref_col"), np.zeros((fy, 4), np.uint32))
        variables["dq_border_ref_pix_right"] = (("y", "ref_col"), np.zeros((fy, 4), np.uint32))
        variables["dq_border_ref_pix_top"] = (("ref_row", "x"), np.zeros((4, fx), np.uint32))
        variables["dq_border_ref_pix_bottom"] = (("ref_row", "x"), np.zeros((4, fx), np.uint32))
    meta = {
        "filename": "r0000101001001001001_0001_wfi01_uncal.asdf",
        "exposure": {
            "read_pattern": [list(g) for g in read_pattern],
            "frame_time": frame_time,
            "nresultants": nres,
            "type": "WFI_IMAGE",
            "start_time": "2026-01-01T00:00:00.000",
        },
        "instrument": {"name": "WFI", "detector": "WFI01", "optical_element": "F158"},
        "cal_step": {"dq_init": "COMPLETE"},
    }
    ds = xr.Dataset(variables, coords=coords, attrs={"meta": meta})
    if chunks:
        ds = ds.chunk(chunks)
    return ds


def write_refs(tmp_path: Path, shape: tuple[int, int], *, gain, readnoise) -> tuple[Path, Path]:
    """READNOISE and GAIN reference files (roman_datamodels fakes) with the given values."""
    import roman_datamodels.datamodels as dm

    rn = dm.ReadnoiseRefModel.create_fake_data(shape=shape)
    rn.data = np.broadcast_to(np.asarray(readnoise, np.float32), shape).copy()
    rn_path = tmp_path / "readnoise.asdf"
    rn.save(rn_path)
    g = dm.GainRefModel.create_fake_data(shape=shape)
    g.data = np.broadcast_to(np.asarray(gain, np.float32), shape).copy()
    g_path = tmp_path / "gain.asdf"
    g.save(g_path)
    return rn_path, g_path


def monte_carlo_ramps(ntrial: int = 2000, seed: int = 42):
    """romancal's scatter test: pattern [[1-4],[5],[6-8],[9-12]], 10 e-/read, sigma 20.

    Returns ``(read_pattern, resultants (nres, 1, ntrial) float32, true rate DN/s)`` (gain 1).
    """
    rng = np.random.default_rng(seed)
    read_pattern = [[1, 2, 3, 4], [5], [6, 7, 8], [9, 10, 11, 12]]
    nreads = np.array([len(g) for g in read_pattern])
    per_read = rng.poisson(10.0, size=(nreads.sum(), ntrial)).astype(np.float64)
    cumulative = np.cumsum(per_read, axis=0)
    edges = np.concatenate([[0], np.cumsum(nreads)])
    resultants = np.array(
        [cumulative[edges[i] : edges[i + 1]].mean(axis=0) for i in range(len(nreads))]
    )
    resultants += rng.normal(0, 1, resultants.shape) * (20.0 / np.sqrt(nreads))[:, None]
    return read_pattern, resultants[:, None, :].astype(np.float32), 10.0 / FRAME_TIME
