"""Streaming cal.asdf writer (issue #7): bounded memory, any chunk layout, asdf's exact bytes."""

from __future__ import annotations

import errno
import itertools
import os
import tracemalloc
from pathlib import Path

import asdf
import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from astropy.time import Time
from writer_fakes import backed, image_dataset, make_cal_file, make_uncal_file, ramp_dataset

import romanxr
from romanxr._version import __version__
from romanxr.errors import OutputError
from romanxr.io import asdf_meta, asdf_stream, asdf_writer
from romanxr.io.asdf_stream import ChunkedScratch, MemorySource, untouched_zeros, write_blocks
from romanxr.io.asdf_writer import to_asdf
from romanxr.io.product import IMAGE_DTYPES
from romanxr.kernels.ramp_common import jump_indices_from_flags
from romanxr.kernels.statistics import good_values, image_statistics

rdm = pytest.importorskip("roman_datamodels")

FIXED_NOW = Time("2026-01-02T03:04:05.000")


@pytest.fixture
def cal_path(tmp_path):
    return make_cal_file(tmp_path / "in_cal.asdf")


@pytest.fixture
def fixed_now(monkeypatch):
    """file_date is the only thing that differs between two writes of the same Dataset."""
    monkeypatch.setattr(Time, "now", classmethod(lambda cls: FIXED_NOW))


def _slices(chunks):
    from dask.array.core import slices_from_chunks

    return slices_from_chunks(chunks)


# --------------------------------------------------------------------------------------------
# scratch layout


LAYOUTS = [
    ((20, 30), ((20,), (8, 8, 8, 6))),  # column strips
    ((20, 30), ((5, 5, 5, 5), (30,))),  # row bands
    ((20, 30), ((7, 3, 10), (1, 12, 17))),  # irregular tiles
    ((3, 10, 9), ((1, 2), (4, 6), (9,))),  # (resultant, y, x), split resultants
    ((3, 10, 9), ((3,), (10,), (2, 2, 5))),
    ((17,), ((5, 5, 7),)),
]


@pytest.mark.parametrize(("shape", "chunks"), LAYOUTS)
@pytest.mark.parametrize("budget", [1, 7, 64, 10**6])
def test_chunked_scratch_any_layout_any_order(tmp_path, shape, chunks, budget):
    rng = np.random.default_rng(5)
    array = rng.integers(0, 2**16, shape).astype(np.uint16)
    with open(tmp_path / "scratch", "w+b") as fh:
        fh.write(b"x" * 11)  # the array's region need not start at 0
        target = ChunkedScratch(fh.fileno(), 11, shape, np.uint16, chunks, "t")
        assert target.region == array.nbytes
        order = list(_slices(chunks))
        rng.shuffle(order)  # chunks arrive in any order
        for where in order:
            target[where] = array[where].astype(np.int64)  # cast on the way in
        target.check_complete()
        slabs = list(target.slabs(budget))
        if budget >= array.nbytes:
            assert len(slabs) == 1
        assert all(s.flags.c_contiguous and s.dtype == np.uint16 for s in slabs)
        np.testing.assert_array_equal(np.concatenate([s.ravel() for s in slabs]), array.ravel())
        fh.seek(0)
        assert fh.read(11) == b"x" * 11  # nothing written before its region


def test_chunked_scratch_rejects_what_is_not_one_chunk(tmp_path):
    with open(tmp_path / "scratch", "w+b") as fh:
        target = ChunkedScratch(fh.fileno(), 0, (4, 4), np.float32, ((2, 2), (4,)))
        with pytest.raises(ValueError, match="not one chunk"):
            target[0:3, 0:4] = np.zeros((3, 4))
        target[0:2, :] = np.zeros((2, 4))
        with pytest.raises(RuntimeError, match="1 of 2 chunks"):
            target.check_complete()


def test_untouched_zeros_are_zeros_and_not_traced():
    tracemalloc.start()
    try:
        z = untouched_zeros((512, 1024), np.float32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert z.shape == (512, 1024) and z.dtype == np.float32
    assert peak < 2**20  # not a 2 MiB heap allocation
    assert not z[::64, ::64].any()
    assert untouched_zeros((0, 3), np.int16).shape == (0, 3)


# --------------------------------------------------------------------------------------------
# blocks: what asdf itself writes


def _asdf_file(tmp_path, arrays, name, **kwargs):
    path = tmp_path / name
    asdf.AsdfFile({"a": arrays}).write_to(path, **kwargs)
    return path


@pytest.mark.parametrize("compression", ["lz4", None])
def test_blocks_byte_identical_to_asdf_multi_piece(tmp_path, compression):
    """Arrays over 4 MiB: several lz4 pieces of exactly 4 MiB, as asdf cuts them."""
    rng = np.random.default_rng(0)
    big = rng.normal(size=(1100, 1000)).astype(np.float32)  # 4.2 MiB: two lz4 pieces
    big[:600] = 1.0  # a compressible part
    small = rng.integers(0, 9, (3, 5, 7)).astype(np.uint8)
    empty = np.zeros((0, 3), np.int16)
    reference = _asdf_file(
        tmp_path,
        {"big": big, "small": small, "empty": empty},
        "ref.asdf",
        all_array_compression=compression,
    )
    stand_ins = {k: untouched_zeros(v.shape, v.dtype) for k, v in [("big", big), ("small", small)]}
    ours = _asdf_file(
        tmp_path, {**stand_ins, "empty": empty}, "ours.asdf", all_array_compression="lz4"
    )
    lazy = da.from_array(big, chunks=(1100, 128))  # column strips
    scratch_file = tmp_path / "scratch"
    with open(scratch_file, "w+b") as fh:
        strips = ChunkedScratch(fh.fileno(), 0, big.shape, big.dtype, lazy.chunks)
        da.store(lazy, strips, lock=False, scheduler="threads")
        write_blocks(
            ours,
            {
                ("a", "big"): strips,
                ("a", "small"): MemorySource(small.astype(np.int64), np.uint8),
                ("a", "empty"): MemorySource(empty, np.int16),
            },
            compression,
        )
    assert ours.read_bytes() == reference.read_bytes()
    with asdf.open(ours, validate_checksums=True) as af:
        np.testing.assert_array_equal(af["a"]["big"], big)


def test_lz4_pieces_of_any_size_read_by_asdf(tmp_path, monkeypatch):
    """The framing (4-byte big-endian length, lz4 block with its size) with a piece size that
    cuts rows: asdf's reader and checksum validation accept it."""
    monkeypatch.setattr(asdf_stream, "PIECE", 1000)
    rng = np.random.default_rng(1)
    arrays = {
        "f": rng.normal(size=(37, 41)).astype(np.float32),
        "h": rng.normal(size=(2, 30, 11)).astype(np.float16),
    }
    path = _asdf_file(tmp_path, {k: np.zeros_like(v) for k, v in arrays.items()}, "f.asdf")
    write_blocks(path, {("a", k): MemorySource(v, v.dtype) for k, v in arrays.items()}, "lz4")
    with asdf.open(path, validate_checksums=True) as af:
        for key, value in arrays.items():
            np.testing.assert_array_equal(af["a"][key], value)
        blocks = af._blocks.blocks
        headers = {k: blocks[i].header for i, k in enumerate(("f", "h"))}
    for key, value in arrays.items():
        header = headers[key]
        assert bytes(header["compression"]) == b"lz4\0"
        assert header["data_size"] == value.nbytes
        assert header["allocated_size"] == header["used_size"]
    # walk the pieces of "f": ceil(nbytes / 1000) of them, each 1000 bytes uncompressed
    raw = path.read_bytes()
    start = raw.index(asdf_stream.BLOCK_MAGIC) + 4 + 2 + 48
    pieces, pos = [], start
    while len(pieces) * 1000 < arrays["f"].nbytes:
        length = int.from_bytes(raw[pos : pos + 4], "big")
        pieces.append(int.from_bytes(raw[pos + 4 : pos + 8], "little"))
        pos += 4 + length
    assert pieces == [1000] * (len(pieces) - 1) + [arrays["f"].nbytes % 1000 or 1000]


@pytest.mark.parametrize("compression", ["zlib", "bzp2"])
def test_other_compressions_stream_readably(tmp_path, cal_path, compression):
    ds = backed(image_dataset(romanxr.open_cal(cal_path)), "dask")
    out = to_asdf(ds, tmp_path / "z_cal.asdf", compression=compression)
    with asdf.open(out, validate_checksums=True) as af:
        np.testing.assert_array_equal(af["roman"]["data"], ds["data"].values)
        np.testing.assert_array_equal(af["roman"]["err"], ds["err"].values.astype(np.float16))


def test_unknown_compression_raises_before_compute(tmp_path, cal_path):
    from writer_fakes import no_compute

    from romanxr.errors import InputError

    ds = backed(image_dataset(romanxr.open_cal(cal_path)), "dask")
    with no_compute(), pytest.raises(InputError, match="compression"):
        to_asdf(ds, tmp_path / "z_cal.asdf", compression="zstd")
    assert list(tmp_path.iterdir()) == [cal_path]


# --------------------------------------------------------------------------------------------
# the whole file: what the in-memory writer made


def _in_memory_reference(ds: xr.Dataset, path: Path, compression: str | None) -> Path:
    """The file the writer made before streaming: every array cast in memory, the model given
    to asdf as a whole (arrays copied, so no two share a block)."""
    kind = "cal" if ds["data"].ndim == 2 else "ramp"
    arrays = asdf_writer._collect(ds, kind, "ref")
    values = {}
    for name, (array, dtype) in arrays.items():
        value = np.asarray(array.values)
        if name == asdf_writer.JUMP_FLAGS:
            rows = jump_indices_from_flags(value, array["y"].values, array["x"].values, 4)
            values[asdf_writer.JUMP_INDICES] = asdf_writer._cast_indices(rows)
        elif name == asdf_writer.JUMP_INDICES:
            values[name] = asdf_writer._cast_indices(value)
        else:
            values[name] = np.array(asdf_writer._cast_block(value, dtype), order="C", copy=True)
    meta = asdf_meta.prepare_meta(ds.attrs["meta"], kind=kind, filename=path.name)
    if kind == "cal":  # romancal's statistics of the arrays as stored
        good = good_values(values["data"], values["dq"], values["err"])
        meta["statistics"] = image_statistics(good, values["data"].size)
    model = asdf_writer._build_model(kind, meta, values)
    extra = {"romanxr_version": __version__}
    if "step_parameters" in ds.attrs:
        extra["step_parameters"] = asdf_meta.plain_value(ds.attrs["step_parameters"])
    if "frame_shape" in ds.attrs:
        extra["frame_shape"] = [int(v) for v in ds.attrs["frame_shape"]]
    if asdf_writer.JUMP_INDICES in arrays:
        extra["dims"] = {"jump_indices": list(arrays["jump_indices"][0].dims)}
    coords = asdf_meta.nondefault_coords(ds, kind)
    if coords:
        extra["coords"] = coords
    af = asdf.AsdfFile()
    af.tree = {"roman": model._instance, "romanxr": extra}
    af.write_to(path, all_array_compression=compression)
    return path


def _with_jumps(ds: xr.Dataset, backend: str) -> xr.Dataset:
    rng = np.random.default_rng(4)
    jumps = rng.random((3, *ds["data"].shape)) < 0.05
    ds = ds.assign(jumps=(("resultant", "y", "x"), jumps))
    if backend == "dask":
        ds["jumps"] = ds["jumps"].chunk({"resultant": 2, "y": 5, "x": 7})
    return ds


def _write_both(tmp_path, ds, compression, name="r_cal.asdf"):
    (tmp_path / "ours").mkdir(exist_ok=True)
    (tmp_path / "ref").mkdir(exist_ok=True)
    ours = to_asdf(ds, tmp_path / "ours" / name, compression=compression, overwrite=True)
    reference = _in_memory_reference(ds, tmp_path / "ref" / name, compression)
    return ours, reference


@pytest.mark.usefixtures("fixed_now")
@pytest.mark.parametrize("compression", ["lz4", None])
@pytest.mark.parametrize("backend", ["numpy", "dask"])
@pytest.mark.parametrize("jumps", [False, True])
def test_cal_file_identical_to_in_memory_writer(tmp_path, cal_path, compression, backend, jumps):
    ds = backed(image_dataset(romanxr.open_cal(cal_path)), backend)
    ds.attrs["step_parameters"] = {"ramp_fit": {"algorithm": "likely"}}
    if jumps:
        ds = _with_jumps(ds, backend)
    ours, reference = _write_both(tmp_path, ds, compression)
    assert ours.read_bytes() == reference.read_bytes()
    with asdf.open(ours, validate_checksums=True) as af:
        assert af["roman"]["data"].shape == ds["data"].shape
    with rdm.open(ours) as model:
        model.validate()
        np.testing.assert_array_equal(model.dq, ds["dq"].values)
        if jumps:
            expected = jump_indices_from_flags(
                np.asarray(ds["jumps"].values), ds["y"].values, ds["x"].values, 4
            )
            assert len(expected) > 10
            np.testing.assert_array_equal(model["jump_indices"], expected)


@pytest.mark.usefixtures("fixed_now")
@pytest.mark.parametrize(
    "chunks",
    [{"y": -1, "x": 3}, {"y": 5, "x": -1}, {"y": 7, "x": 5}],
    ids=["strips", "rows", "tiles"],
)
def test_cutout_in_any_chunk_layout_identical(tmp_path, cal_path, chunks):
    ds = image_dataset(romanxr.open_cal(cal_path)).load().isel(y=slice(2, 15), x=slice(1, 12))
    ds = ds.chunk({**chunks, "frame_y": 9, "resultant": 1})
    ds["jump_indices"] = (("jump", "jump_axis"), da.from_array(np.array([[1, 2, 3]]), chunks=1))
    ours, reference = _write_both(tmp_path, ds, "lz4")
    assert ours.read_bytes() == reference.read_bytes()
    back = romanxr.open_cal(ours)
    np.testing.assert_array_equal(back["x"].values, ds["x"].values)
    np.testing.assert_array_equal(back["jump_indices"].values, [[1, 2, 3]])


@pytest.mark.usefixtures("fixed_now")
@pytest.mark.parametrize("compression", ["lz4", None])
@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_ramp_file_identical_to_in_memory_writer(tmp_path, compression, backend):
    """(The in-memory writer stored a numpy ramp's dq_border_ref_pix_top/bottom as views into
    pixeldq's block; each array now has its own block, as it had for dask input.)"""
    uncal = romanxr.open_uncal(make_uncal_file(tmp_path / "in_uncal.asdf"))
    ds = backed(ramp_dataset(uncal), backend)
    ours, reference = _write_both(tmp_path, ds, compression, "r_dqinit.asdf")
    assert ours.read_bytes() == reference.read_bytes()
    with rdm.open(ours) as model:
        np.testing.assert_array_equal(model.groupdq, ds["groupdq"].values)


# --------------------------------------------------------------------------------------------
# memory and failures


def _lazy_image(cal: xr.Dataset, n: int, chunk: int) -> xr.Dataset:
    """A lazy ``n`` x ``n`` Level-2 image (random dask chunks) with ``cal``'s metadata."""
    rng = da.random.default_rng(0)
    nres, frame = cal.sizes["resultant"], n + 8

    def f32(shape, chunks):
        return rng.random(shape, chunks=chunks).astype(np.float32)

    c = (chunk, chunk)
    variables = {"data": (("y", "x"), f32((n, n), c))}
    variables["dq"] = (("y", "x"), rng.integers(0, 9, (n, n), chunks=c).astype(np.uint32))
    for name in ("err", "var_poisson", "var_rnoise", "chisq", "dumo"):
        variables[name] = (("y", "x"), f32((n, n), c))
    amp33 = rng.integers(0, 9, (nres, frame, 8), chunks=(1, chunk, 8)).astype(np.uint16)
    variables["amp33"] = (("resultant", "frame_y", "amp33_x"), amp33)
    for side in ("left", "right"):
        ref = f32((nres, frame, 4), (1, chunk, 4))
        variables[f"border_ref_pix_{side}"] = (("resultant", "frame_y", "ref_col"), ref)
        dq = da.zeros((frame, 4), dtype=np.uint32, chunks=(chunk, 4))
        variables[f"dq_border_ref_pix_{side}"] = (("frame_y", "ref_col"), dq)
    for side in ("top", "bottom"):
        ref = f32((nres, 4, frame), (1, 4, chunk))
        variables[f"border_ref_pix_{side}"] = (("resultant", "ref_row", "frame_x"), ref)
        dq = da.zeros((4, frame), dtype=np.uint32, chunks=(4, chunk))
        variables[f"dq_border_ref_pix_{side}"] = (("ref_row", "frame_x"), dq)
    coords = {"y": np.arange(4, 4 + n), "x": np.arange(4, 4 + n)}
    return xr.Dataset(variables, coords=coords, attrs={"meta": cal.attrs["meta"]})


@pytest.mark.parametrize("compression", ["lz4", None])
def test_lazy_write_memory_does_not_grow_with_the_output(
    tmp_path, cal_path, monkeypatch, compression
):
    """Python-heap peak (tracemalloc also sees numpy's buffers) while writing a lazy 1024x1024
    image: the output arrays hold 18 MiB; the in-memory writer's peak was 33 MiB (all of
    them, plus cast copies). The streaming one needs its chunks (128x128), a few copy
    buffers of PIECE bytes and lz4's 4 MiB output buffer while asdf writes the tree
    (measured 6 MiB; 3 MiB for a 512x512 image)."""
    monkeypatch.setattr(asdf_stream, "PIECE", 1 << 18, raising=False)
    ds = _lazy_image(romanxr.open_cal(cal_path), 1024, 128)
    output = sum(v.size * np.dtype(IMAGE_DTYPES[k]).itemsize for k, v in ds.items())
    assert output > 18 * 2**20
    to_asdf(ds.isel(y=slice(0, 8), x=slice(0, 8)), tmp_path / "warm_cal.asdf")  # asdf imports
    tracemalloc.start()
    try:
        with dask.config.set(scheduler="synchronous"):
            start, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            out = to_asdf(ds, tmp_path / "lazy_cal.asdf", compression=compression)
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - start < 12 * 2**20, f"{(peak - start) / 2**20:.1f} MiB"
    back = romanxr.open_cal(out, chunks=None)
    np.testing.assert_array_equal(back["data"].values, ds["data"].values)


def test_full_disk_while_storing_chunks(tmp_path, cal_path, monkeypatch):
    ds = backed(image_dataset(romanxr.open_cal(cal_path)), "dask")
    target = tmp_path / "o_cal.asdf"
    to_asdf(ds, target)
    good = target.read_bytes()

    def enospc(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(asdf_stream.os, "pwrite", enospc)
    with pytest.raises(OutputError, match="No space left") as info:
        to_asdf(ds, target, overwrite=True)
    assert str(target) in str(info.value) and isinstance(info.value, OSError)
    assert target.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in_cal.asdf", "o_cal.asdf"]


def test_every_chunk_store_goes_to_the_scratch(tmp_path, cal_path, monkeypatch):
    """No dask chunk is gathered into an output-sized array: each lands in its own region."""
    seen = []
    real = ChunkedScratch.__setitem__

    def spy(self, key, value):
        seen.append((id(self), tuple((s.start, s.stop) for s in key)))
        real(self, key, value)

    monkeypatch.setattr(ChunkedScratch, "__setitem__", spy)
    ds = backed(image_dataset(romanxr.open_cal(cal_path)), "dask")
    to_asdf(ds, tmp_path / "o_cal.asdf")
    n_chunks = sum(
        int(np.prod([len(c) for c in v.chunks])) for v in ds.data_vars.values() if v.chunks
    )
    assert len(seen) == n_chunks == len(set(seen))


def test_chunk_grid_offsets_cover_the_region_once():
    chunks = ((2, 3), (4, 1, 2))
    target = ChunkedScratch(0, 100, (5, 7), np.float64, chunks)
    sizes = [a * b * 8 for a, b in itertools.product(*chunks)]
    assert np.diff(target.offsets).tolist() == sizes
    assert target.offsets[0] == 100 and target.region == 5 * 7 * 8


def _gwcs_with_arrays():
    """A gwcs whose polynomials asdf stores as binary blocks, as a distortion model is."""
    from astropy.modeling import models
    from gwcs import WCS
    from gwcs import coordinate_frames as cf

    rng = np.random.default_rng(6)
    px = models.Polynomial2D(
        3, **{f"c{i}_{j}": rng.random() for i in range(3) for j in range(3 - i)}
    )
    py = models.Polynomial2D(3, c0_1=1.0, c1_1=1e-4)
    transform = models.Mapping((0, 1, 0, 1)) | (px & py)
    return WCS(
        forward_transform=transform,
        input_frame=cf.Frame2D(name="detector"),
        output_frame=cf.Frame2D(name="v2v3"),
    )


@pytest.mark.usefixtures("fixed_now")
@pytest.mark.parametrize("compression", ["lz4", None])
def test_metadata_arrays_of_a_gwcs_keep_their_blocks(tmp_path, cal_path, compression):
    pytest.importorskip("gwcs")
    ds = backed(image_dataset(romanxr.open_cal(cal_path)), "dask")
    ds.attrs["meta"] = {**ds.attrs["meta"], "wcs": _gwcs_with_arrays()}
    ours, reference = _write_both(tmp_path, ds, compression)
    tree = asdf_stream.read_tree(ours)
    outside = [k for k in tree.sources if k[:2] != ("roman", k[1]) or len(k) > 2]
    assert outside, "the gwcs wrote no blocks: the test does not test anything"
    assert ours.read_bytes() == reference.read_bytes()
    back = romanxr.open_cal(ours)
    np.testing.assert_allclose(back.attrs["meta"]["wcs"](3.0, 5.0), _gwcs_with_arrays()(3.0, 5.0))


def test_to_asdf_many_writes_each_file_like_to_asdf_one_after_the_other(
    tmp_path, cal_path, monkeypatch
):
    from romanxr.io import to_asdf_many
    from romanxr.schedule import regions as ordered

    base = backed(image_dataset(romanxr.open_cal(cal_path)), "dask")
    other = base.assign(data=base["data"] * 2)
    single = [to_asdf(ds, tmp_path / f"single{i}.asdf") for i, ds in enumerate((base, other))]
    seen_groups: list[int] = []
    real = ordered.store_by_region

    def spy(sources, targets, axes, groups=None, **kw):
        seen_groups.extend(groups)
        return real(sources, targets, axes, groups=groups, **kw)

    monkeypatch.setattr(asdf_writer, "store_by_region", spy)
    paths = to_asdf_many([(base, tmp_path / "a.asdf"), (other, tmp_path / "b.asdf")])
    assert [p.name for p in paths] == ["a.asdf", "b.asdf"]
    assert sorted(set(seen_groups)) == [0, 1]  # one group (computed in turn) per file
    for made, expect in zip(paths, single, strict=True):
        with asdf.open(made) as got, asdf.open(expect) as want:
            for name in ("data", "dq", "err", "var_poisson"):
                np.testing.assert_array_equal(got["roman"][name], want["roman"][name])
    with pytest.raises(OutputError, match="twice"):
        to_asdf_many([(base, tmp_path / "c.asdf"), (other, tmp_path / "c.asdf")])
    assert not (tmp_path / "c.asdf").exists()
