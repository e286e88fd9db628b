"""The Level-1 reader: lazy, right layout, metadata kept, works on files romanxr did not write."""

from __future__ import annotations

import time

import dask
import numpy as np
import pytest
import roman_datamodels.datamodels as dm
import xarray as xr

import romanxr
from romanxr.errors import ExposureError, FileFormatError, WrongProductError
from romanxr.io import RomanBackendEntrypoint


class _NoCompute:
    """A dask scheduler that fails the test if anything is computed."""

    def __call__(self, dsk, keys, **kwargs):
        raise AssertionError("a dask compute was triggered")


def test_open_uncal_layout(tmp_uncal):
    pattern = [[1], [2, 3], [4], [5, 6, 7], [8], [9]]
    path = tmp_uncal(shape=(6, 20, 24), read_pattern=pattern)
    ds = romanxr.open_uncal(path)
    assert ds["data"].dims == ("resultant", "y", "x")
    assert ds.sizes == {"resultant": 6, "y": 20, "x": 24, "amp33_x": 24}
    assert ds["data"].dtype == np.uint16
    assert isinstance(ds["data"].data, dask.array.Array)
    # coordinates from the MA table, with frame_time 3.04 s
    np.testing.assert_allclose(ds["mean_time"], 3.04 * np.array([1, 2.5, 4, 6, 8, 9]))
    np.testing.assert_array_equal(ds["n_reads"], [1, 2, 1, 3, 1, 1])
    # tau of [5, 6, 7]: (5*5 + 3*6 + 1*7) / 9 reads
    assert ds["variance_time"].values[3] == pytest.approx(3.04 * 50 / 9)
    np.testing.assert_array_equal(ds["first_read"], [1, 2, 4, 5, 8, 9])
    np.testing.assert_array_equal(ds["last_read"], [1, 3, 4, 7, 8, 9])
    np.testing.assert_array_equal(ds["x"], np.arange(24))
    assert ds.attrs["meta"]["exposure"]["read_pattern"] == pattern
    # plain python containers all the way down (no lazy asdf nodes kept alive)
    assert type(ds.attrs["meta"]["exposure"]["read_pattern"]) is list
    assert type(ds.attrs["meta"]["exposure"]["read_pattern"][1]) is list
    assert type(ds.attrs["meta"]["exposure"]) is dict
    assert ds.attrs["meta"]["instrument"]["detector"] == "WFI01"
    # values equal what roman_datamodels reads
    with dm.open(path) as model:
        np.testing.assert_array_equal(ds["data"].values, model.data)
        np.testing.assert_array_equal(ds["amp33"].values, model.amp33)


def test_tau_matches_upstream_constants():
    from romanxr.dataset import ReadPatternInfo

    pattern = [list(range(1, 5)), [5], [6, 7, 8], list(range(9, 19)), [19, 20, 21]]
    pattern.append(list(range(22, 37)))
    info = ReadPatternInfo(pattern, 3.04)
    np.testing.assert_allclose(info.mean_time, [7.6, 15.2, 21.28, 41.04, 60.8, 88.16])
    np.testing.assert_allclose(
        info.variance_time, [5.7, 15.2, 19.928888, 36.024, 59.448887, 80.593781], rtol=1e-6
    )
    np.testing.assert_array_equal(info.n_reads, [4, 1, 3, 10, 3, 15])


def test_open_dataset_engine_and_numpy(tmp_uncal):
    path = tmp_uncal()
    lazy = xr.open_dataset(path, engine=RomanBackendEntrypoint)
    assert not isinstance(lazy["data"].data, dask.array.Array)
    eager = romanxr.open_uncal(path, chunks=None)
    chunked = romanxr.open_uncal(path, chunks={"y": 8})
    assert chunked["data"].chunks == ((6,), (8, 8, 8, 8), (32,))
    xr.testing.assert_identical(eager.load(), chunked.compute())
    xr.testing.assert_identical(lazy.load(), eager)


def test_entry_point_registered():
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="xarray.backends")}
    if "roman" not in names:
        pytest.skip("romanxr is not installed (entry points come from the installed package)")
    ep = next(ep for ep in entry_points(group="xarray.backends") if ep.name == "roman")
    assert ep.load() is RomanBackendEntrypoint


def test_optional_arrays(tmp_path):
    shape = (4, 16, 16)
    model = dm.ScienceRawModel.create_fake_data(shape=shape)
    model.meta.exposure.read_pattern = [[1], [2], [3], [4]]
    model.meta.exposure.frame_time = 3.04
    model.resultantdq = np.zeros(shape, dtype=np.uint8)
    model.resultantdq[2, 3, 4] = 8
    model.reference_read = np.full(shape[1:], 7, dtype=np.uint16)
    model.reference_amp33 = np.full((shape[1], shape[2]), 3, dtype=np.uint16)
    path = tmp_path / "opt_uncal.asdf"
    model.save(path)
    ds = romanxr.open_uncal(path)
    assert ds["resultantdq"].dtype == np.uint8 and int(ds["resultantdq"][2, 3, 4]) == 8
    assert ds["reference_read"].dims == ("y", "x")
    assert ds["reference_amp33"].dims == ("y", "amp33_x")
    assert int(ds["reference_read"].max()) == 7


@pytest.fixture(scope="module")
def full_frame_uncal(tmp_path_factory):
    path = tmp_path_factory.mktemp("full") / "r0000101001001001001_0001_wfi01_uncal.asdf"
    model = dm.ScienceRawModel.create_fake_data(shape=(2, 4096, 4096))
    model.meta.exposure.read_pattern = [[1], [2, 3]]
    model.meta.exposure.frame_time = 3.04
    model.save(path)
    return path


def test_full_frame_open_is_lazy_and_fast(full_frame_uncal):
    start = time.perf_counter()
    with dask.config.set(scheduler=_NoCompute()):
        ds = romanxr.open_uncal(full_frame_uncal)
        assert ds.sizes["y"] == 4096 and ds.sizes["x"] == 4096
        assert isinstance(ds["data"].data, dask.array.Array)
        subset = ds["data"].isel(y=slice(0, 10)) + 1  # building a graph computes nothing
        assert subset.shape == (2, 10, 4096)
    elapsed = time.perf_counter() - start
    # opening reads the YAML tree and block headers only; pixel data would take far longer
    assert elapsed < 5.0, elapsed


def test_not_asdf(tmp_path):
    path = tmp_path / "notes_uncal.asdf"
    path.write_text("hello")
    with pytest.raises(FileFormatError, match="not an ASDF file"):
        romanxr.open_uncal(path)


def test_truncated_block(tmp_uncal, tmp_path):
    path = tmp_uncal()
    data = path.read_bytes()
    cut = tmp_path / "cut_uncal.asdf"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(FileFormatError, match="truncated"):
        romanxr.open_uncal(cut)


def test_cal_given_for_uncal(tmp_path):
    model = dm.ImageModel.create_fake_data(shape=(3, 16, 16))
    path = tmp_path / "x_cal.asdf"
    model.save(path)
    with pytest.raises(WrongProductError, match="wfi_image"):
        romanxr.open_uncal(path)
    ds = romanxr.open_cal(path)
    assert ds["data"].dims == ("y", "x")
    assert ds["amp33"].dims == ("resultant", "frame_y", "amp33_x")
    np.testing.assert_array_equal(ds["x"], np.arange(4, 20))


def test_read_pattern_length_mismatch(tmp_uncal):
    path = tmp_uncal(shape=(3, 8, 8), read_pattern=[[1], [2]])
    with pytest.raises(ExposureError, match="read_pattern describes 2 resultants"):
        romanxr.open_uncal(path)


@pytest.mark.parametrize(
    ("pattern", "frame_time", "match"),
    [
        ([], 3.04, "empty"),
        ([[1], [1], [2]], 3.04, "strictly increasing"),
        ([[2], [1], [3]], 3.04, "strictly increasing"),
        ([[1], [2], [3]], 0.0, "frame_time"),
    ],
)
def test_read_pattern_problems(tmp_uncal, pattern, frame_time, match):
    path = tmp_uncal(shape=(3, 8, 8), read_pattern=pattern or None, frame_time=frame_time)
    if not pattern:
        import roman_datamodels.datamodels as rdm

        with rdm.open(path) as m:
            m.meta.exposure.read_pattern = []
            m.save(path.with_name("empty_uncal.asdf"))
        path = path.with_name("empty_uncal.asdf")
    with pytest.raises(ExposureError, match=match):
        romanxr.open_uncal(path)


def test_dq_flags_match_roman_datamodels():
    from roman_datamodels import dqflags

    from romanxr.dq import GroupFlag, PixelFlag

    def table(enum):
        return {name: int(member.value) for name, member in enum.__members__.items()}

    assert table(dqflags.pixel) == table(PixelFlag)
    assert table(dqflags.group) == table(GroupFlag)


@pytest.mark.parametrize("compression", [None, "lz4", "zlib"])
def test_block_framing_reads_the_headers_asdf_wrote(tmp_path, compression):
    import asdf

    from romanxr.io.asdf_file import block_list
    from romanxr.io.blocks import BLOCK_MAGIC, read_block_header

    path = tmp_path / "f.asdf"
    arrays = {"a": np.arange(5000, dtype=np.uint16), "b": np.ones((30, 7), np.float32)}
    asdf.AsdfFile(arrays).write_to(path, all_array_compression=compression)
    with asdf.open(path, lazy_load=True) as af, open(path, "rb") as fh:
        blocks = block_list(af, str(path))
        assert len(blocks) == 2
        for block in blocks:
            ours = read_block_header(fh, int(block.offset) - len(BLOCK_MAGIC))
            theirs = block.header
            assert ours.data_offset == block.data_offset
            assert ours.compression == bytes(theirs["compression"]).rstrip(b"\0")
            assert (ours.used, ours.data_size) == (theirs["used_size"], theirs["data_size"])
            assert ours.checksum == bytes(theirs["checksum"])
        with pytest.raises(ValueError, match="no ASDF block"):
            read_block_header(fh, 0)


def test_lazy_variable_checks_dims_and_reads_nothing(tmp_path):
    import asdf

    from romanxr.io.asdf_reader import lazy_variable

    path = tmp_path / "v.asdf"
    array = np.arange(12, dtype=np.int32).reshape(3, 4)
    asdf.AsdfFile({"roman": {"arr": array}}).write_to(path, all_array_compression="lz4")
    with asdf.open(path, lazy_load=True) as af:
        node = af.tree["roman"]["arr"]
        with pytest.raises(WrongProductError, match=r"roman\.arr has 2 dimensions"):
            lazy_variable(str(path), ("roman", "arr"), node, ("y",))
        var = lazy_variable(str(path), ("roman", "arr"), node, ("y", "x"))
    # the file is closed: the variable reads by path when asked
    np.testing.assert_array_equal(var[1:, 2].values, array[1:, 2])
