"""Bounded-memory execution (issue #7): region-by-region stores, just-in-time reference reads,
column-strip reads, refpix's streamed corrections."""

from __future__ import annotations

import threading

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from romanxr.io import asdf_reader, block_reader
from romanxr.io.cache import ArrayCache
from romanxr.schedule import AT_END, region_axis, row_axis, store_by_region


def _write(path, array, compression):
    import asdf

    asdf.AsdfFile({"arr": array}).write_to(path, all_array_compression=compression)
    return str(path)


@pytest.mark.parametrize("compression", [None, "lz4"])
def test_column_strip_reads_band_by_band(tmp_path, monkeypatch, compression):
    # 3 x 2000 leading indices > 4096: the strip is read in bands of whole rows
    array = (np.arange(3 * 2000 * 24, dtype=np.uint32).reshape(3, 2000, 24) * 13) % 65521
    path = _write(tmp_path / "a.asdf", array, compression)
    monkeypatch.setattr(block_reader, "_BAND_BYTES", 24 * 4 * 7)  # 7 rows a band
    layout = ArrayCache().layout(path, ("arr",))
    calls = []
    real = layout._read_banded
    monkeypatch.setattr(layout, "_read_banded", lambda *a: calls.append(a) or real(*a))
    for key in [
        (slice(None), slice(None), slice(5, 9)),
        (slice(1, 3), slice(10, 1990), slice(0, 24)),
        (2, slice(None), slice(20, 24)),
    ]:
        np.testing.assert_array_equal(layout.read(key), array[key])
    assert calls, "the banded path was not taken"


def test_store_by_region_matches_store_and_computes_shared_work_once():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 64, 16))
    calls = []

    def shared(a):
        calls.append(1)
        return a.mean(axis=(1, 2), keepdims=True)

    arr = da.from_array(x, chunks=(4, 8, 16))
    mean = da.from_delayed(dask.delayed(shared)(arr), (4, 1, 1), dtype=float)
    out3 = arr - mean
    out2 = out3.sum(axis=0)
    t3, t2 = np.zeros(out3.shape), np.zeros(out2.shape)
    order: list[int] = []

    class Recorder:
        def __init__(self, target):
            self.target = target

        def __setitem__(self, key, value):
            order.append(key[-2].start)
            self.target[key] = value

    store_by_region([out3, out2], [Recorder(t3), Recorder(t2)], [1, 0], region_rows=16)
    expect = x - x.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(t3, expect)
    np.testing.assert_allclose(t2, expect.sum(axis=0))
    assert len(calls) == 1  # kept from the first region for the others
    regions = [start // 16 for start in order]
    assert regions == sorted(regions)  # one region after the other


def test_store_by_region_keeps_one_region_in_flight():
    alive = {"now": 0, "max": 0}
    lock = threading.Lock()

    def make(block):
        with lock:
            alive["now"] += 1
            alive["max"] = max(alive["max"], alive["now"])
        return block * 2

    class Target:
        def __setitem__(self, key, value):
            with lock:
                alive["now"] -= 1

    src = da.ones((256, 8), chunks=(8, 8)).map_blocks(make, dtype=float)
    store_by_region([src], [Target()], [0], region_rows=32)
    assert alive["max"] <= 4  # 32 rows of 8-row chunks: never more than one region's chunks


def test_row_axis():
    assert row_axis(("resultant", "y", "x")) == 1
    assert row_axis(("resultant", "frame_y", "amp33_x")) == 1
    assert row_axis(("x",)) is None
    assert region_axis("border_ref_pix_left", ("resultant", "frame_y", "ref_col")) == 1
    assert region_axis("border_ref_pix_bottom", ("resultant", "ref_row", "frame_x")) == AT_END
    assert region_axis("border_ref_pix_top", ("resultant", "ref_row", "frame_x")) is None


def test_chunk_like_does_not_read_the_reference_while_building(tmp_path, monkeypatch):
    from romanxr.schedule import chunk_like

    array = np.arange(2 * 40 * 30, dtype=np.float32).reshape(2, 40, 30)
    path = _write(tmp_path / "r.asdf", array, "lz4")
    backend = asdf_reader.AsdfBackendArray(path, ("arr",), array.shape, array.dtype)
    from xarray.core import indexing

    ref = xr.DataArray(
        xr.Variable(("coeff", "y", "x"), indexing.LazilyIndexedArray(backend)), name="coeffs"
    )
    reads = []
    real = asdf_reader.AsdfBackendArray._raw_getitem
    monkeypatch.setattr(
        asdf_reader.AsdfBackendArray,
        "_raw_getitem",
        lambda self, key: reads.append(key) or real(self, key),
    )
    like = xr.DataArray(np.zeros((3, 40, 30), np.float32), dims=("resultant", "y", "x")).chunk(
        {"y": 16, "x": 15}
    )
    chunked = chunk_like(ref, like)
    assert reads == []  # nothing read to build the graph
    assert chunked.chunks == ((2,), (16, 16, 8), (15, 15))
    np.testing.assert_array_equal(chunked.values, array)
    assert len(reads) == 6  # one read per chunk, when computed


def test_saturation_pixel_dq_does_not_depend_on_the_data(tmp_path):
    from romanxr.steps.saturation import saturation
    from tests.unit.detector_helpers import make_ramp, write_saturation

    rng = np.random.default_rng(3)
    data = rng.integers(900, 1100, (3, 16, 12)).astype(np.uint16)
    data[:, 2, 3] = 60000
    ds = make_ramp(tmp_path, data)
    thresh = np.full((16, 12), 5e4, np.float32)
    thresh[5, 5] = np.nan
    ref = write_saturation(tmp_path / "sat.asdf", thresh)
    lazy_in = ds.chunk({"y": 8})
    out = saturation(lazy_in, override_saturation=ref)
    data_keys = set(dict(lazy_in["data"].data.__dask_graph__()))
    pdq_keys = set(dict(out.pixeldq.data.__dask_graph__()))
    assert not (data_keys & pdq_keys)  # the pixel DQ needs no byte of the ramp
    assert data_keys & set(dict(out.groupdq.data.__dask_graph__()))
    eager = saturation(ds, override_saturation=ref)
    np.testing.assert_array_equal(out.pixeldq.values, eager.pixeldq.values)
    np.testing.assert_array_equal(out.groupdq.values, eager.groupdq.values)


def test_groups_do_not_hold_results_for_each_other():
    calls = []

    def shared():
        calls.append(1)
        return np.ones((16, 8))

    common = da.from_delayed(dask.delayed(shared, pure=True)(), (16, 8), dtype=float)
    common = common.rechunk((4, 8))
    one, two = common + 1, common * 3  # two files that share an input with the same key
    t1, t2 = np.zeros((16, 8)), np.zeros((16, 8))
    store_by_region([one, two], [t1, t2], [0, 0], groups=[0, 1], region_rows=8)
    np.testing.assert_array_equal(t1, 2)
    np.testing.assert_array_equal(t2, 3)
    # kept between the regions of a group, made again for the next group (not held across)
    assert len(calls) == 2


def test_outputs_sharing_a_chain_compute_it_once():
    # Several outputs of one step (a ramp fit's slope, err, variances) share its tasks. Each
    # collection optimized on its own fuses the shared task into its own chunk, and the work
    # ran once per output (the ramp fit four times in the full pipeline).
    calls = []

    def fit(block):
        calls.append(1)
        return block * 2.0

    x = da.from_array(np.arange(64.0).reshape(16, 4), chunks=(4, 4))
    shared = x.map_blocks(fit, dtype=float, meta=np.array((), dtype=float))
    outputs = [shared + 1, shared * 3, -shared]
    targets = [np.zeros((16, 4)) for _ in outputs]
    store_by_region(outputs, targets, [0, 0, 0], region_rows=8)
    base = np.arange(64.0).reshape(16, 4) * 2
    for got, want in zip(targets, [base + 1, base * 3, -base], strict=True):
        np.testing.assert_array_equal(got, want)
    assert len(calls) == x.numblocks[0]


@pytest.mark.enable_socket
def test_cluster_gather_computes_a_shared_chain_once(tmp_path):
    distributed = pytest.importorskip("distributed")
    from romanxr.io.asdf_writer import _gather_into

    log = tmp_path / "calls"  # the task is pickled even in-process: count in a file
    log.touch()

    def fit(block):
        with open(log, "a") as fh:
            fh.write("x")
        return block * 2.0

    x = da.from_array(np.arange(64.0).reshape(16, 4), chunks=(4, 4))
    shared = x.map_blocks(fit, dtype=float, meta=np.array((), dtype=float))
    outputs = [shared + 1, -shared]
    targets = [np.zeros((16, 4)) for _ in outputs]
    with (
        distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):
        _gather_into(client, outputs, targets)
    base = np.arange(64.0).reshape(16, 4) * 2
    np.testing.assert_array_equal(targets[0], base + 1)
    np.testing.assert_array_equal(targets[1], -base)
    assert len(log.read_text()) == x.numblocks[0]


def test_calibration_reads_each_chunk_once(tmp_path, monkeypatch):
    # Ramp chunks are read twice and so are the references of the pixel DQ (mask,
    # saturation): refpix's reference-pixel pass reads clones of the ramp and of the pixel
    # DQ, so that no band waits in memory for it. Every other reference chunk is read once.
    # Graphs optimized piece by piece (dask.delayed on arrays, to_delayed, from_delayed) made
    # copies of fused read chains that ran again next to the originals (up to 4 reads).
    from collections import Counter

    import romanxr
    from romanxr.pipeline import calibrate
    from romanxr.testing import make_detector, make_reference_set, simulate_exposure

    det = make_detector((256, 256), seed=3)
    refs = make_reference_set(tmp_path / "refs", det)
    sim = simulate_exposure(det, seed=3, path=tmp_path)
    cal = calibrate(sim.path, overrides=refs.overrides(), chunks={"y": 64})
    reads: Counter = Counter()
    real = block_reader.BlockLayout.read

    def counted(self, key):
        reads[(self.path, self.data_offset, str(key))] += 1
        return real(self, key)

    monkeypatch.setattr(block_reader.BlockLayout, "read", counted)
    romanxr.to_asdf(cal, tmp_path / "out_cal.asdf")
    twice = {str(refs.overrides()["mask"]), str(refs.overrides()["saturation"])}
    assert {k[0] for k in reads} > twice | {str(sim.path)}
    for (path, _, key), n in reads.items():
        if path == str(sim.path):  # the ramp (256 columns) twice, amp33 (128) once
            assert n == (2 if "slice(0, 256," in key else 1), (path, key, n)
        else:
            assert n == (2 if path in twice else 1), (path, key, n)


def test_store_by_region_places_at_end_sources_in_the_last_region():
    from romanxr.schedule import AT_END

    order: list[str] = []

    class Recorder:
        def __init__(self, label):
            self.label = label

        def __setitem__(self, key, value):
            order.append(self.label)

    rows = da.ones((32, 4), chunks=(8, 4))
    top, bottom = da.ones((2, 4)), da.ones((2, 4))  # no row axis
    store_by_region(
        [rows, top, bottom],
        [Recorder("rows"), Recorder("top"), Recorder("bottom")],
        [0, None, AT_END],
        region_rows=16,
    )
    # two regions of two row chunks each: top goes with the first, bottom with the last
    assert sorted(order[:3]) == ["rows", "rows", "top"]
    assert sorted(order[3:]) == ["bottom", "rows", "rows"]


def test_prelude_runs_first_band_by_band_and_keeps_only_its_result():
    # A whole-frame fit from a twin of the bands (wfi18_transient): the twin's row statistics
    # are computed band by band in regions of their own, then the fit, then the bands of the
    # result, which are made only when their region comes up.
    from romanxr.schedule.graph import clone, prelude

    events: list[tuple[str, int]] = []
    lock = threading.Lock()

    def make(block, block_info=None):
        with lock:
            events.append(("make", block_info[None]["chunk-location"][0]))
        return block * 2.0

    x = da.from_array(np.arange(64.0 * 4).reshape(64, 4), chunks=(8, 4))
    frame = x.map_blocks(make, dtype=float, meta=np.array((), dtype=float))
    twin = clone(frame)  # the same values under other keys
    rows = prelude(twin.sum(axis=1), "rows-test", rows=True)
    fit = prelude(rows.rechunk(-1).mean(keepdims=True), "fit-test")

    class Target:
        def __init__(self):
            self.array = np.zeros(frame.shape)

        def __setitem__(self, key, value):
            with lock:
                events.append(("store", key[0].start // 8))
            self.array[key] = value

    target = Target()
    store_by_region([frame - fit], [target], [0], region_rows=16)
    values = np.arange(64.0 * 4).reshape(64, 4) * 2.0
    np.testing.assert_allclose(target.array, values - values.sum(axis=1).mean())
    # first every band once for the twin, in row order by regions of two bands, and no
    # store; then the result's bands, each made in its own region (none waits for the fit)
    twin, rest = events[:8], events[8:]
    assert {kind for kind, _ in twin} == {"make"}
    assert sorted(b for _, b in twin) == list(range(8))
    assert [b // 2 for _, b in twin] == sorted(b // 2 for _, b in twin)
    assert sorted(b for kind, b in rest if kind == "make") == list(range(8))
    for kind, band in rest:  # a band is made only in the region that stores it
        if kind == "store":
            made = {b for k, b in rest[: rest.index((kind, band))] if k == "make"}
            assert band in made and max(made) // 2 == band // 2


def test_prelude_rows_read_from_the_key():
    from romanxr.schedule.graph import PRELUDE, prelude, prelude_rows

    rows = prelude(da.zeros(40, chunks=16), "r", rows=True)
    assert [prelude_rows(k) for k in rows.__dask_keys__()] == [0, 16, 32]
    uneven = prelude(da.zeros(40, chunks=((8, 16, 16),)), "u", rows=True)
    assert all(prelude_rows(k) is None for k in uneven.__dask_keys__())
    assert all(k[0].startswith(PRELUDE) for k in uneven.__dask_keys__())
    assert prelude_rows(("something-else", 3)) is None


def test_wfi18_fit_holds_no_band_and_matches_the_plain_chain(tmp_path, monkeypatch):
    # The WFI18 transient fit needs every row before any row is corrected. The pipeline takes
    # it from a twin of the earlier steps, computed band by band in prelude regions: what
    # those regions keep for the bands of the result is the fit and a few coordinate
    # vectors, not the ramp (before: every band of the ramp until the last region).
    import asdf

    import romanxr
    import romanxr.pipeline.executor as executor
    import romanxr.schedule.regions as regions
    from romanxr.pipeline import calibrate
    from romanxr.testing import simulate_wfi_exposure

    sim = simulate_wfi_exposure(tmp_path / "sim", [18], shape=(256, 256), seed=5)
    for key, value in sim.crds_cache.environ().items():
        monkeypatch.setenv(key, value)
    skip = {"source_catalog": {"skip": True}, "tweakreg": {"skip": True}}
    kept: dict = {}
    real_run = regions._run_regions

    def spy(graph, outputs, plan, last, trim_after=None):
        import dask.threaded

        n_pre = -1 if trim_after is None else trim_after
        crossing = {k for (k, n), m in last.items() if n <= n_pre < m}
        real_get = dask.threaded.get

        def get(sub, keys, **kwargs):
            values = real_get(sub, keys, **kwargs)
            kept.update({k: v for k, v in zip(keys, values, strict=True) if k in crossing})
            return values

        monkeypatch.setattr(dask.threaded, "get", get)
        kept["preludes"] = n_pre + 1
        try:
            return real_run(graph, outputs, plan, last, trim_after=trim_after)
        finally:
            monkeypatch.setattr(dask.threaded, "get", real_get)

    monkeypatch.setattr(regions, "_run_regions", spy)
    cal = calibrate(sim.paths[0], steps=skip, chunks={"y": 64})
    assert cal.attrs["meta"]["cal_step"]["wfi18_transient"] == "COMPLETE"
    romanxr.to_asdf(cal, tmp_path / "twin_cal.asdf")
    preludes = kept.pop("preludes")
    assert preludes >= 2  # the twin's row means (by regions of rows), then the fit
    held = sum(np.asarray(v).nbytes for v in kept.values())
    ramp = 8 * 256 * 256 * 4
    assert any("wfi18-fit" in str(k) for k in kept)
    assert held < ramp / 100, {k: np.asarray(v).nbytes for k, v in kept.items()}

    monkeypatch.setattr(regions, "_run_regions", real_run)
    monkeypatch.setattr(executor, "_twin_builder", lambda *args: None)
    plain = calibrate(sim.paths[0], steps=skip, chunks={"y": 64})
    romanxr.to_asdf(plain, tmp_path / "plain_cal.asdf")
    with asdf.open(tmp_path / "twin_cal.asdf") as a, asdf.open(tmp_path / "plain_cal.asdf") as b:
        for name in ("data", "dq", "err", "var_poisson", "chisq"):
            np.testing.assert_array_equal(np.asarray(a["roman"][name]), b["roman"][name])
