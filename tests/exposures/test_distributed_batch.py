"""A batch of exposures on a dask.distributed LocalCluster of 2 worker processes: the same
cal files as on the threaded scheduler, from Python (one tree) and from the command line
(``--scheduler``, ``--workers``).

The cluster talks TCP over the loopback interface only, hence ``enable_socket``.
"""

from __future__ import annotations

import numpy as np
import pytest

import romanxr
from romanxr import cli
from tests.exposures._batch import make_batch

distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.enable_socket, pytest.mark.slow]

VARIABLES = ("data", "dq", "err", "var_poisson")


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    return make_batch(tmp_path_factory.mktemp("distributed_batch"))


@pytest.fixture(scope="module")
def threaded(batch, tmp_path_factory):
    """The batch written on the threaded scheduler: {file name: cal file}."""
    import dask

    out = tmp_path_factory.mktemp("threaded")
    with batch.cache.activate(), dask.config.set(scheduler="threads"):
        report = romanxr.open_exposures(batch.members).roman.calibrate().roman.to_asdf(out)
    return {p.name: p for p in report.written.values()}


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit="1GiB",
        host="127.0.0.1",
        dashboard_address=":0",  # a free port (None means 8787, which a parallel test may hold)
    ) as c:
        yield c


def _assert_same_files(folder, threaded):
    for name, expected_path in threaded.items():
        got = romanxr.open_cal(folder / name, chunks=None)
        expected = romanxr.open_cal(expected_path, chunks=None)
        for var in VARIABLES:
            np.testing.assert_array_equal(got[var].values, expected[var].values, err_msg=var)


def test_the_tree_on_two_worker_processes_equals_threaded(batch, threaded, cluster, tmp_path):
    from distributed import Client

    with Client(cluster):
        cal = romanxr.open_exposures(batch.members).roman.calibrate()
        report = cal.roman.to_asdf(tmp_path)
        store = cal.roman.to_zarr(tmp_path / "tree.zarr")
    assert sorted(p.name for p in report.written.values()) == sorted(threaded)
    _assert_same_files(tmp_path, threaded)
    for path in batch.members:
        node = romanxr.open_zarr(store / f"r0000101001001001001_0001/{path.name.split('_')[2]}")
        expected = romanxr.open_cal(threaded[path.name.replace("_uncal", "_cal")], chunks=None)
        np.testing.assert_array_equal(node["data"].values, expected["data"].values)


def test_the_cli_on_an_existing_cluster_equals_threaded(batch, threaded, cluster, tmp_path):
    args = ["calibrate", *map(str, batch.members), "--output-dir", str(tmp_path)]
    assert cli.main([*args, "--scheduler", cluster.scheduler_address]) == 0
    _assert_same_files(tmp_path, threaded)


def test_the_cli_starts_its_own_local_cluster(batch, threaded, tmp_path, monkeypatch):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    args = ["calibrate", *map(str, batch.members), "--output-dir", str(tmp_path)]
    assert cli.main([*args, "--workers", "2"]) == 0
    _assert_same_files(tmp_path, threaded)
