"""Zarr v3 writer/reader: identical round trips, lossless attrs, compression, atomic replace."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr
from astropy.time import Time
from writer_fakes import (
    CountingScheduler,
    backed,
    image_dataset,
    make_cal_file,
    make_uncal_file,
    no_compute,
    ramp_dataset,
    temporaries,
)

import romanxr
from romanxr.errors import FileFormatError, OutputError
from romanxr.io import atomic
from romanxr.io.zarr_io import ATTRS_KEY, decode_attrs, encode_attrs, open_zarr, to_zarr


@pytest.fixture
def image(tmp_path):
    return image_dataset(romanxr.open_cal(make_cal_file(tmp_path / "in_cal.asdf")))


@pytest.fixture
def ramp(tmp_path):
    return ramp_dataset(romanxr.open_uncal(make_uncal_file(tmp_path / "in_uncal.asdf")))


RICH_PARAMETERS = {
    "jump": {
        "rejection_threshold": np.float32(0.1),
        "flag_4_neighbors": np.bool_(True),
        "max_jump": np.int64(2**40),
        "window": (3, 5),
        "nested": [[1, 2], [3, [4.5, None]]],
        "when": Time("2027-01-02T03:04:05.123", scale="utc"),
        "name": np.str_("likely"),
    },
    "ramp_fit": {"algorithm": "ols_cas22", "weights": np.arange(3, dtype=np.float32)},
}


def strip_wcs(attrs):
    """attrs without the gwcs object and step_parameters (compared by their own helpers)."""
    meta = {k: v for k, v in attrs["meta"].items() if k != "wcs"}
    return {**{k: v for k, v in attrs.items() if k != "step_parameters"}, "meta": meta}


def assert_same(a: xr.Dataset, b: xr.Dataset):
    """Values, dtypes, dims, coords and attrs equal; the gwcs object compared by evaluation."""
    assert set(a.variables) == set(b.variables)
    for name in a.variables:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].dims == b[name].dims, name
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert set(a.coords) == set(b.coords)
    wa, wb = a.attrs["meta"].get("wcs"), b.attrs["meta"].get("wcs")
    if wa is not None:
        np.testing.assert_array_equal(wa(3.0, 4.0), wb(3.0, 4.0))
    xr.testing.assert_identical(
        a.drop_attrs(deep=False).assign_attrs(strip_wcs(a.attrs)),
        b.drop_attrs(deep=False).assign_attrs(strip_wcs(b.attrs)),
    )
    assert_params_equal(a.attrs.get("step_parameters"), b.attrs.get("step_parameters"))


def assert_params_equal(a, b):
    """Deep equality that also checks the types of numpy scalars and tuples."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            assert_params_equal(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_params_equal(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, Time):
        assert a.isot == b.isot and a.scale == b.scale
    else:
        assert a == b


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_image_round_trip_identical(tmp_path, image, backend):
    ds = backed(image, backend)
    ds.attrs["step_parameters"] = RICH_PARAMETERS
    out = to_zarr(ds, tmp_path / "img.zarr")
    assert out == tmp_path / "img.zarr"
    back = open_zarr(out)
    assert_same(ds, back)
    assert_params_equal(ds.attrs["step_parameters"], back.attrs["step_parameters"])
    assert back["err"].dtype == np.float32  # in-memory dtypes kept (float16 only in cal.asdf)
    assert back["mean_time"].attrs == ds["mean_time"].attrs
    assert back["data"].chunks is not None  # lazily read with dask by default
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_ramp_round_trip_identical(tmp_path, ramp, backend):
    ds = backed(ramp, backend)
    back = open_zarr(to_zarr(ds, tmp_path / "ramp.zarr"), chunks=None)
    assert_same(ds, back)
    assert back["groupdq"].dtype == np.uint8 and back["data"].dtype == np.float32
    assert back["data"].chunks is None


def test_meta_times_and_gwcs_lossless(tmp_path, image):
    meta = image.attrs["meta"]
    assert isinstance(meta["exposure"]["start_time"], Time)
    assert type(meta["wcs"]).__name__ == "WCS"
    back = open_zarr(to_zarr(image, tmp_path / "m.zarr"))
    assert isinstance(back.attrs["meta"]["exposure"]["start_time"], Time)
    assert back.attrs["meta"]["exposure"]["start_time"] == meta["exposure"]["start_time"]
    assert type(back.attrs["meta"]["wcs"]).__name__ == "WCS"
    assert back.attrs["meta"]["exposure"]["read_pattern"] == [[1], [2, 3], [4, 5, 6]]


def test_encode_decode_attrs_types():
    attrs = {"step_parameters": RICH_PARAMETERS, "meta": {"a": {"b": [np.uint8(7)]}}}
    back, var_attrs = decode_attrs(encode_attrs(attrs, {"x": {"units": "s"}}))
    assert_params_equal(attrs, back)
    assert var_attrs == {"x": {"units": "s"}}


def test_compressed_and_chunked(tmp_path, image):
    ds = backed(image, "numpy")
    out = to_zarr(ds, tmp_path / "c.zarr", chunks={"y": 8, "x": 16})
    meta = json.loads((out / "data" / "zarr.json").read_text())
    assert meta["zarr_format"] == 3
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [8, 16]
    assert "zstd" in [codec["name"] for codec in meta["codecs"]]
    assert len(list((out / "data" / "c").rglob("*"))) >= 2  # more than one chunk on disk
    blosc = to_zarr(ds, tmp_path / "b.zarr", compressor="blosc")
    meta = json.loads((blosc / "dq" / "zarr.json").read_text())
    assert "blosc" in [codec["name"] for codec in meta["codecs"]]
    assert_same(ds, open_zarr(blosc))


def test_irregular_dask_chunks_are_made_regular(tmp_path, image):
    ds = image.load().chunk({"y": (3, 7, 6)})
    back = open_zarr(to_zarr(ds, tmp_path / "i.zarr"))
    np.testing.assert_array_equal(back["data"].values, ds["data"].values)


def test_one_compute(tmp_path, image):
    import dask

    ds = backed(image, "dask")
    counter = CountingScheduler()
    with dask.config.set(scheduler=counter):
        to_zarr(ds, tmp_path / "o.zarr")
    assert counter.calls == 1


def test_open_dataset_engine_roman(tmp_path, image):
    ds = backed(image, "numpy")
    out = to_zarr(ds, tmp_path / "e.zarr")
    back = xr.open_dataset(out, engine="roman")
    assert_same(ds, back)
    chunked = xr.open_dataset(str(out), engine="roman", chunks={})
    assert chunked["data"].chunks is not None
    assert_same(ds, chunked.load())
    assert romanxr.open_zarr is open_zarr


def test_not_a_romanxr_store(tmp_path, image):
    plain = tmp_path / "plain.zarr"
    image.load().drop_attrs().to_zarr(plain, zarr_format=3, consolidated=False)
    with pytest.raises(FileFormatError, match=ATTRS_KEY):
        open_zarr(plain)


def test_input_is_not_modified(tmp_path, image):
    ds = backed(image, "dask")
    before_attrs = dict(ds.attrs)
    before_encoding = {n: dict(v.encoding) for n, v in ds.variables.items()}
    to_zarr(ds, tmp_path / "n.zarr")
    assert ds.attrs == before_attrs
    assert {n: dict(v.encoding) for n, v in ds.variables.items()} == before_encoding


# --------------------------------------------------------------------------------------------
# errors and atomicity


def test_existing_store_needs_overwrite(tmp_path, image):
    ds = backed(image, "dask")
    target = tmp_path / "s.zarr"
    to_zarr(ds, target)
    with no_compute(), pytest.raises(OutputError, match="overwrite=True"):
        to_zarr(ds, target)
    changed = ds.assign(data=ds["data"] + 1)
    to_zarr(changed, target, overwrite=True)
    np.testing.assert_array_equal(open_zarr(target)["data"].values, changed["data"].values)
    assert temporaries(tmp_path) == []


def test_overwrite_without_rename_exchange(tmp_path, image, monkeypatch):
    """The fallback (rename aside, move in, delete) gives the same result."""
    monkeypatch.setattr(atomic, "_rename_exchange", lambda a, b: False)
    ds = backed(image, "numpy")
    target = tmp_path / "f.zarr"
    to_zarr(ds, target)
    to_zarr(ds.assign(data=ds["data"] * 2), target, overwrite=True)
    np.testing.assert_array_equal(open_zarr(target)["data"].values, ds["data"].values * 2)
    assert temporaries(tmp_path) == []


def test_file_in_the_way_is_replaced_with_overwrite(tmp_path, image):
    target = tmp_path / "x.zarr"
    target.write_text("not a store")
    ds = backed(image, "numpy")
    with pytest.raises(OutputError, match="exists"):
        to_zarr(ds, target)
    to_zarr(ds, target, overwrite=True)
    assert target.is_dir()
    assert_same(ds, open_zarr(target))


def test_errors_before_compute(tmp_path, image):
    ds = backed(image, "dask")
    with no_compute(), pytest.raises(OutputError, match="does not exist"):
        to_zarr(ds, tmp_path / "missing" / "a.zarr")
    store = tmp_path / "a.zarr"
    to_zarr(ds, store)
    reread = open_zarr(store)
    with no_compute(), pytest.raises(OutputError, match="input"):
        to_zarr(reread, store, overwrite=True)


def test_failure_mid_write_keeps_previous_store(tmp_path, image, monkeypatch):
    ds = backed(image, "numpy")
    target = tmp_path / "p.zarr"
    to_zarr(ds, target)
    real = xr.Dataset.to_zarr

    def half(self, store, *args, **kwargs):
        # part of the store is on disk when the write fails
        real(self[["data"]], store, mode="w-", zarr_format=3, consolidated=False)
        raise OSError("disk full (injected)")

    monkeypatch.setattr(xr.Dataset, "to_zarr", half)
    with pytest.raises(OSError, match="injected"):
        to_zarr(ds.assign(data=ds["data"] + 5), target, overwrite=True)
    monkeypatch.setattr(xr.Dataset, "to_zarr", real)
    assert_same(ds, open_zarr(target))
    assert temporaries(tmp_path) == []


def test_interrupt_leaves_no_store(tmp_path, image):
    import dask

    ds = backed(image, "dask")

    def interrupted(dsk, keys, **kwargs):
        raise KeyboardInterrupt

    with dask.config.set(scheduler=interrupted), pytest.raises(KeyboardInterrupt):
        to_zarr(ds, tmp_path / "k.zarr")
    assert not (tmp_path / "k.zarr").exists()
    assert temporaries(tmp_path) == []


def test_stray_store_of_killed_run_cleaned(tmp_path, image):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stray = tmp_path / f".k.zarr.romanxr-tmp-{proc.pid}-cafebabe"
    shutil.copytree(to_zarr(backed(image, "numpy"), tmp_path / "seed.zarr"), stray)
    to_zarr(backed(image, "numpy"), tmp_path / "k.zarr")
    assert not stray.exists()
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_memory_store(image, backend):
    from zarr.storage import MemoryStore

    store = MemoryStore()
    ds = backed(image, backend)  # dask: filled region by region through the store object
    assert to_zarr(ds, store) is store
    assert_same(ds, open_zarr(store))
    with no_compute(), pytest.raises(OutputError, match="overwrite=True"):
        to_zarr(backed(image, "dask"), store)
    to_zarr(ds.assign(data=ds["data"] - 1), store, overwrite=True)
    np.testing.assert_array_equal(open_zarr(store)["data"].values, ds["data"].values - 1)


def test_threaded_write_goes_region_by_region(tmp_path):
    """On the local threaded scheduler the dask-backed variables are computed a band of rows
    at a time across all variables (as the cal.asdf writer does), not variable by variable:
    a later band of one variable is never made before an earlier band of another."""
    import threading

    import dask.array as da

    from romanxr.schedule import REGION_ROWS

    made = []
    lock = threading.Lock()

    def kernel(block, block_info=None):
        with lock:
            made.append(block_info[0]["array-location"][0][0] // REGION_ROWS)
        return block + 1

    ny = 3 * REGION_ROWS
    base = da.zeros((ny, 4), chunks=(REGION_ROWS // 4, 4), dtype=np.float32)
    ds = xr.Dataset(
        {
            name: (("y", "x"), base.map_blocks(kernel, dtype=np.float32, name=name) * k)
            for k, name in enumerate(("data", "err", "var_poisson"), start=1)
        },
        coords={"y": np.arange(ny), "x": np.arange(4)},
    )
    back = open_zarr(to_zarr(ds, tmp_path / "r.zarr"))
    np.testing.assert_array_equal(back["err"].values, np.full((ny, 4), 2, np.float32))
    assert len(made) == 3 * 12  # every chunk of every variable made once
    assert made == sorted(made)  # band after band
