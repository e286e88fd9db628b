"""Bad metadata and arrays on user-built Datasets (items 3, 4): ExposureError at graph-building
time from every ramp step, never from inside a compute.

The reader's own read_pattern checks are in ``tests/io/test_reader.py``
(``test_read_pattern_problems``, ``test_read_pattern_length_mismatch``); here the same problems
reach the steps through Datasets built or edited by hand.
"""

from __future__ import annotations

import copy

import dask
import numpy as np
import pytest
import xarray as xr

import romanxr
from romanxr.dataset import validate_read_pattern
from romanxr.errors import ExposureError, RomanxrError
from romanxr.steps.dark_decay import dark_decay
from romanxr.steps.dq_init import dq_init
from romanxr.steps.jump import jump
from romanxr.steps.linearity import linearity
from romanxr.steps.ramp_fit import ramp_fit
from romanxr.steps.refpix import refpix
from romanxr.steps.saturation import saturation
from romanxr.steps.wfi18_transient import wfi18_transient

RAMP_STEPS = [dq_init, saturation, refpix, dark_decay, wfi18_transient, linearity, jump, ramp_fit]


def _raise_on_compute(*args, **kwargs):
    raise AssertionError("a dask compute happened while building the graph")


@pytest.fixture(scope="module")
def uncal(tmp_path_factory):
    import roman_datamodels.datamodels as dm

    shape = (4, 16, 16)
    model = dm.ScienceRawModel.create_fake_data(shape=shape)
    model.meta.exposure.read_pattern = [[1], [2, 3], [4], [5, 6]]
    model.meta.exposure.frame_time = 3.04
    model.meta.exposure.nresultants = 4
    model.data = np.random.default_rng(3).integers(1000, 2000, size=shape, dtype=np.uint16)
    model.amp33 = np.zeros((4, 16, 128), np.uint16)  # the real width: refpix checks it
    path = tmp_path_factory.mktemp("contract") / "c_uncal.asdf"
    model.save(path)
    return path


def _as_input_of(step, ds):
    """The uncal for dq_init; for later steps a ramp as dq_init leaves it (built by hand)."""
    if step is dq_init:
        return ds
    data = ds["data"].astype(np.float32)
    return ds.assign(
        data=data,
        pixeldq=xr.zeros_like(data.isel(resultant=0, drop=True), dtype=np.uint32),
        groupdq=xr.zeros_like(data, dtype=np.uint8),
    ).drop_vars(["resultantdq"], errors="ignore")


@pytest.fixture
def ds(uncal):
    return romanxr.open_uncal(uncal, chunks={"y": 8})


def _with_exposure(ds, **exposure):
    out = ds.copy()
    out.attrs = copy.deepcopy(ds.attrs)
    for key, value in exposure.items():
        if value is _DELETE:
            out.attrs["meta"]["exposure"].pop(key, None)
        else:
            out.attrs["meta"]["exposure"][key] = value
    return out


_DELETE = object()

BAD_READ_PATTERNS = {
    "missing": (dict(read_pattern=_DELETE), "read_pattern is missing"),
    "empty": (dict(read_pattern=[]), "read_pattern is empty"),
    "empty_group": (dict(read_pattern=[[1], [], [4], [5]]), r"read_pattern\[1\] is empty"),
    "too_short": (dict(read_pattern=[[1], [2], [3]]), "describes 3 resultants but the data have 4"),
    "too_long": (dict(read_pattern=[[i] for i in range(1, 7)]), "describes 6 resultants"),
    "decreasing": (dict(read_pattern=[[1], [3], [2], [4]]), "strictly increasing"),
    "duplicate": (dict(read_pattern=[[1], [2, 2], [3], [4]]), "strictly increasing"),
    "zero_read": (dict(read_pattern=[[0], [1], [2], [3]]), "positive"),
    "not_int": (dict(read_pattern=[[1.5], [2], [3], [4]]), "must be integers"),
    "frame_time_zero": (dict(frame_time=0.0), "frame_time must be a positive number"),
    "frame_time_negative": (dict(frame_time=-3.04), "frame_time must be a positive number"),
    "frame_time_nan": (dict(frame_time=float("nan")), "frame_time must be a positive number"),
    "frame_time_missing": (dict(frame_time=_DELETE), "frame_time must be a positive number"),
}


@pytest.mark.parametrize("step", RAMP_STEPS, ids=lambda s: s.__name__)
@pytest.mark.parametrize("case", sorted(BAD_READ_PATTERNS))
def test_read_pattern_problems_in_every_ramp_step(ds, step, case):
    changes, match = BAD_READ_PATTERNS[case]
    bad = _with_exposure(_as_input_of(step, ds), **changes)
    with dask.config.set(scheduler=_raise_on_compute), pytest.raises(ExposureError, match=match):
        step(bad)


@pytest.mark.parametrize("case", sorted(BAD_READ_PATTERNS))
def test_read_pattern_problems_name_source_and_field(case):
    changes, match = BAD_READ_PATTERNS[case]
    exposure = {"read_pattern": [[1], [2, 3], [4], [5, 6]], "frame_time": 3.04, **changes}
    exposure = {k: v for k, v in exposure.items() if v is not _DELETE}
    with pytest.raises(ExposureError, match=match) as e:
        validate_read_pattern(
            exposure.get("read_pattern"), exposure.get("frame_time"), 4, source="x_uncal.asdf"
        )
    assert str(e.value).startswith("x_uncal.asdf: meta.exposure.")


def _bad_arrays(ds):
    data = ds["data"]
    return {
        "float64": (ds.assign(data=data.astype(np.float64)), "'data' must be uint16 or float32"),
        "int32": (ds.assign(data=data.astype(np.int32)), "'data' must be uint16 or float32"),
        "2d": (
            ds.drop_vars([v for v in ds.data_vars if v != "data"]).assign(
                data=data.isel(resultant=0, drop=True)
            ),
            "'data' must have dims",
        ),
        "4d": (
            ds.drop_vars([v for v in ds.data_vars if v != "data"]).assign(
                data=data.expand_dims(extra=1)
            ),
            "'data' must have dims",
        ),
        "transposed": (ds.assign(data=data.transpose("y", "x", "resultant")), "must have dims"),
        "renamed": (
            ds.drop_vars([v for v in ds.data_vars if v != "data"])
            .assign(data=data.rename(resultant="group"))
            .drop_dims("resultant", errors="ignore"),
            "must have dims",
        ),
        "no_data": (ds.drop_vars("data"), "no 'data' variable"),
        "no_meta": (ds.assign_attrs(meta=None), "no Roman metadata"),
    }


@pytest.mark.parametrize("step", RAMP_STEPS, ids=lambda s: s.__name__)
@pytest.mark.parametrize(
    "case", ["float64", "int32", "2d", "4d", "transposed", "renamed", "no_data", "no_meta"]
)
def test_bad_arrays_in_every_ramp_step(ds, step, case):
    bad, match = _bad_arrays(_as_input_of(step, ds))[case]
    with dask.config.set(scheduler=_raise_on_compute), pytest.raises(ExposureError, match=match):
        step(bad)


def test_not_a_dataset():
    with pytest.raises(ExposureError, match=r"expected an xarray\.Dataset, got DataArray"):
        dq_init(xr.DataArray(np.zeros((2, 2, 2), np.uint16)))


def test_errors_are_romanxr_and_value_errors():
    assert issubclass(ExposureError, RomanxrError) and issubclass(ExposureError, ValueError)
