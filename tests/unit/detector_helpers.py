"""Small synthetic exposures and reference files for the dq_init/saturation/linearity tests.

Files are written with roman_datamodels' own ``create_fake_data`` so they are valid products.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import dask
import numpy as np


def write_uncal(
    path: Path,
    data: np.ndarray,
    *,
    read_pattern=None,
    frame_time: float = 3.04,
    resultantdq: np.ndarray | None = None,
    reference_read: np.ndarray | None = None,
    reference_amp33: np.ndarray | None = None,
    amp33: np.ndarray | None = None,
    guide_window=None,
    data_encoding_offset: int | None = None,
) -> Path:
    """Write a Level-1 file holding ``data`` (uint16, (resultant, y, x))."""
    import roman_datamodels.datamodels as dm

    data = np.asarray(data, dtype=np.uint16)
    nres, ny, _ = data.shape
    model = dm.ScienceRawModel.create_fake_data(shape=data.shape)
    model.meta.exposure.read_pattern = read_pattern or [[i + 1] for i in range(nres)]
    model.meta.exposure.nresultants = nres
    model.meta.exposure.frame_time = frame_time
    model.data = data
    model.amp33 = (
        np.asarray(amp33, dtype=np.uint16)
        if amp33 is not None
        else np.full((nres, ny, 128), 100, dtype=np.uint16)
    )
    if resultantdq is not None:
        model.resultantdq = np.asarray(resultantdq, dtype=np.uint8)
    if reference_read is not None:
        model.reference_read = np.asarray(reference_read, dtype=np.uint16)
    if reference_amp33 is not None:
        model.reference_amp33 = np.asarray(reference_amp33, dtype=np.uint16)
    if guide_window is not None:
        xs, xe, ys, ye = guide_window
        gs = model.meta.guide_star
        gs.window_xstart, gs.window_xstop = xs, xe
        gs.window_ystart, gs.window_ystop = ys, ye
    if data_encoding_offset is not None:
        model.meta.instrument.data_encoding_offset = data_encoding_offset
    model.save(path)
    return Path(path)


def write_mask(path: Path, dq: np.ndarray) -> Path:
    import roman_datamodels.datamodels as dm

    ref = dm.MaskRefModel.create_fake_data()
    ref.dq = np.asarray(dq, dtype=np.uint32)
    ref.save(path)
    return Path(path)


def write_saturation(path: Path, threshold: np.ndarray, dq: np.ndarray | None = None) -> Path:
    import roman_datamodels.datamodels as dm

    threshold = np.asarray(threshold, dtype=np.float32)
    ref = dm.SaturationRefModel.create_fake_data()
    ref.data = threshold
    ref.dq = np.zeros(threshold.shape, np.uint32) if dq is None else np.asarray(dq, np.uint32)
    ref.save(path)
    return Path(path)


def write_linearity(path: Path, coeffs: np.ndarray, dq: np.ndarray | None = None, inverse=False):
    import roman_datamodels.datamodels as dm

    coeffs = np.asarray(coeffs, dtype=np.float32)
    model = dm.InverselinearityRefModel if inverse else dm.LinearityRefModel
    ref = model.create_fake_data()
    ref.coeffs = coeffs
    ref.dq = np.zeros(coeffs.shape[1:], np.uint32) if dq is None else np.asarray(dq, np.uint32)
    ref.save(path)
    return Path(path)


def write_inl(path: Path, value: np.ndarray, corrections: dict[int, np.ndarray]) -> Path:
    """INL reference: ``corrections[k]`` is science channel k's correction on ``value``."""
    import roman_datamodels.datamodels as dm

    ref = dm.IntegralnonlinearityRefModel.create_fake_data()
    ref.value = np.asarray(value, dtype=np.uint16)
    ref.meta.n_channels = 32
    ref.meta.n_pixels_per_channel = 128
    ref.inl_table = {
        f"science_channel_{k:02d}": {
            "instrument_channel": k,
            "correction": np.asarray(corrections.get(k, corrections[1]), dtype=np.float64),
        }
        for k in range(1, 33)
    }
    ref.save(path)
    return Path(path)


def _no_compute(dsk, keys, **kwargs):
    raise AssertionError("a dask computation ran while the graph was being built")


@contextmanager
def raise_if_dask_computes():
    """Fail if anything is computed with dask inside the block."""
    with dask.config.set(scheduler=_no_compute):
        yield


def snapshot(ds):
    """A deep copy of a Dataset's values and attrs, to prove a step left its input alone."""
    import copy

    return ds.load().copy(deep=True), copy.deepcopy(ds.attrs)


def make_ramp(tmp_path, data, *, read_pattern=None, chunks=None, name="r_uncal.asdf", **kw):
    """Write an L1 file holding ``data`` and return it after dq_init (no mask)."""
    import romanxr
    from romanxr.steps.dq_init import dq_init

    path = write_uncal(tmp_path / name, data, read_pattern=read_pattern, **kw)
    return dq_init(romanxr.open_uncal(path, chunks=chunks), override_mask="N/A")
