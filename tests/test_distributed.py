"""The pipeline on a ``dask.distributed`` LocalCluster of worker processes.

The graph built by :func:`romanxr.calibrate` must pickle (no open files, no locks), its pixel
reads must happen inside the workers (which open the files themselves), and the results must be
identical to the threaded scheduler's, in memory, in Zarr (written by the workers in parallel)
and in cal.asdf.

The cluster talks TCP over the loopback interface only, hence ``enable_socket``.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.enable_socket, pytest.mark.slow]

VARIABLES = ("data", "dq", "err", "var_poisson", "chisq", "dumo")
CHUNKS = {"y": 64}  # 4 row bands: several tasks per step and per worker


@pytest.fixture(scope="module")
def exposure(tmp_path_factory):
    from romanxr.testing import make_detector, make_reference_set, simulate_exposure

    folder = tmp_path_factory.mktemp("distributed")
    det = make_detector((256, 256), seed=7)  # two 128-column channels: refpix runs too
    refs = make_reference_set(folder / "refs", det)
    sim = simulate_exposure(det, seed=7, path=folder)
    return sim.path, refs.overrides()


@pytest.fixture(scope="module")
def threaded(exposure):
    import dask

    from romanxr.pipeline import calibrate

    path, overrides = exposure
    with dask.config.set(scheduler="threads"):
        return calibrate(path, overrides=overrides, chunks=CHUNKS).compute()


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit="1GiB",
            host="127.0.0.1",
            dashboard_address=":0",  # a free port: None means 8787, which a parallel test may hold
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def _assert_same(result, expected):
    for name in VARIABLES:
        np.testing.assert_array_equal(np.asarray(result[name]), expected[name].values, err_msg=name)


def test_graph_pickles_without_open_files(exposure):
    import cloudpickle

    from romanxr.pipeline import calibrate

    path, overrides = exposure
    cal = calibrate(path, overrides=overrides, chunks=CHUNKS)
    graph = dict(cal["data"].data.__dask_graph__())
    blob = cloudpickle.dumps(graph)
    # what a worker gets back: nothing that holds an open file or a memory map
    restored = pickle.loads(blob)
    assert len(restored) == len(graph)

    def walk(obj, depth=0):
        if depth > 6:
            return
        assert not isinstance(obj, np.memmap), "a memory map travels in the graph"
        assert type(obj).__name__ != "AsdfFile", "an open ASDF file travels in the graph"
        if isinstance(obj, dict):
            for v in obj.values():
                walk(v, depth + 1)
        elif isinstance(obj, list | tuple):
            for v in obj:
                walk(v, depth + 1)

    walk(graph)


def test_naming_the_graph_reads_no_pixels(exposure, monkeypatch):
    # a distributed submit names (tokenizes) the whole graph on the client: nothing in it may
    # be read for that (a lazily indexed reference would be read and hashed whole, per task)
    from dask.base import tokenize

    from romanxr.io.asdf_reader import AsdfBackendArray
    from romanxr.pipeline import calibrate

    path, overrides = exposure
    cal = calibrate(path, overrides=overrides, chunks=CHUNKS)
    graph = dict(cal.__dask_graph__())
    assert any(str(key[0] if isinstance(key, tuple) else key).startswith("refpix") for key in graph)
    reads = []
    real = AsdfBackendArray._raw_getitem
    monkeypatch.setattr(
        AsdfBackendArray,
        "_raw_getitem",
        lambda self, key: reads.append(self.keys) or real(self, key),
    )
    tokenize(graph)
    assert reads == []


def test_distributed_results_equal_threaded(exposure, threaded, client):
    from romanxr.io import cache as array_cache
    from romanxr.pipeline import calibrate

    path, overrides = exposure
    array_cache.CACHE.clear()
    cal = calibrate(path, overrides=overrides, chunks=CHUNKS)
    result = client.compute(cal).result()
    _assert_same(result, threaded)
    # the pixels were read by the workers, which opened the file themselves
    # (the client itself only reads the small reference files)
    exposure_data = (os.path.abspath(path), ("roman", "data"))

    def exposure_read() -> bool:
        cache = array_cache.CACHE
        return any((k[0], k[-1]) == exposure_data for k in [*cache._items, *cache._layouts])

    assert any(client.run(exposure_read).values())
    assert not exposure_read()


def test_distributed_writes_zarr_and_asdf(exposure, threaded, client, tmp_path):
    import romanxr
    from romanxr.pipeline import calibrate

    path, overrides = exposure
    zarr_out = tmp_path / "cal.zarr"
    calibrate(path, overrides=overrides, chunks=CHUNKS, output=zarr_out)
    _assert_same(romanxr.open_zarr(zarr_out).compute(), threaded)

    asdf_out = tmp_path / "r_cal.asdf"
    calibrate(path, overrides=overrides, chunks=CHUNKS, output=asdf_out)
    back = romanxr.open_cal(asdf_out, chunks=None)
    np.testing.assert_array_equal(back["data"].values, threaded["data"].values)
    np.testing.assert_array_equal(back["dq"].values, threaded["dq"].values)
    # float16 on disk, as romancal writes them
    np.testing.assert_array_equal(
        back["err"].values, threaded["err"].values.astype(np.float16).astype(np.float32)
    )


def test_catalog_runs_serially_on_a_cluster_with_the_threaded_result(client, tmp_path):
    """source_catalog forks no processes on a cluster (its workers are daemonic and their
    cores the cluster's): the task fits the PSF in the worker, with the same catalog."""
    import dask

    from romanxr.schedule import fork_workers
    from romanxr.steps import source_catalog as step
    from romanxr.testing.catalog_refs import make_apcorr_reference, make_epsf_reference
    from tests.unit.test_psf_parallel import crowded_image

    assert client.submit(fork_workers, pure=False).result() == 1
    assert fork_workers() == 1  # the client is the default scheduler here
    refs = {
        "override_apcorr": str(make_apcorr_reference(tmp_path / "apcorr.asdf", psf_sigma=1.2)),
        "override_epsf": str(make_epsf_reference(tmp_path / "epsf.asdf", psf_sigma=1.2)),
    }
    ds = crowded_image().chunk({"y": 80})
    options = {"bkg_boxsize": 32, "npixels": 5, "snr_threshold": 5.0}
    with dask.config.set(scheduler="threads", num_workers=2):
        expected = step.catalog_table(step.source_catalog(ds, **options, **refs))
    with step._LOCK:
        step._RESULTS.clear()
        step._TABLES.clear()
    table = step.catalog_table(step.source_catalog(ds, **options, **refs))
    assert table.colnames == expected.colnames
    for name in table.colnames:
        a, b = np.asarray(table[name]), np.asarray(expected[name])
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
