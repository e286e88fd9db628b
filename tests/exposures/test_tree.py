"""open_exposures and dt.roman: a lazy tree of detector files, calibrated node by node with the
same values as one file at a time, written to cal.asdf files and to one Zarr store."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import roman_datamodels.datamodels as dm
import xarray as xr

import romanxr
from romanxr.errors import BatchError, InputError
from tests.exposures._batch import make_batch
from tests.unit.detector_helpers import raise_if_dask_computes

VARIABLES = ("data", "dq", "err", "var_poisson")
EXPOSURE = "r0000101001001001001_0001"


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    return make_batch(tmp_path_factory.mktemp("tree"), exposures=3)


def _node(name: str) -> str:
    exposure, detector = name.split("_")[1], name.split("_")[2]
    return f"/r0000101001001001001_{exposure}/{detector}"


def test_open_exposures_is_one_lazy_node_per_file(batch):
    with raise_if_dask_computes():
        tree = romanxr.open_exposures(batch.members)
    assert sorted(n.path for n in tree.leaves) == sorted(_node(p.name) for p in batch.members)
    node = tree[f"{EXPOSURE}/wfi02"].to_dataset()
    alone = romanxr.open_uncal(batch.folder / "data" / f"{EXPOSURE}_wfi02_uncal.asdf")
    assert set(node.data_vars) == set(alone.data_vars)
    assert node.attrs["meta"] == alone.attrs["meta"]
    assert node["data"].chunks == alone["data"].chunks
    assert node.attrs["exposure"] == EXPOSURE and node.attrs["detector"] == "wfi02"
    assert node.attrs["source_file"].endswith(f"{EXPOSURE}_wfi02_uncal.asdf")


def test_a_glob_a_folder_and_a_list_give_the_same_tree(batch):
    data = batch.folder / "data"
    names = [
        sorted(n.path for n in romanxr.open_exposures(s).leaves)
        for s in (batch.members, str(data / "r*_uncal.asdf"), data)
    ]
    assert names[0] == names[1] == names[2] and len(names[0]) == len(batch.members)


def test_a_pattern_that_matches_nothing_is_refused(tmp_path):
    with pytest.raises(InputError, match="matches no file"):
        romanxr.open_exposures(str(tmp_path / "r*_uncal.asdf"))


def test_summary_lists_every_node(batch):
    text = repr(romanxr.open_exposures(batch.members).roman)
    assert f"{len(batch.members)} detector(s)" in text
    for path in batch.members:
        assert f"{_node(path.name)}: exposure" in text
    assert "detector wfi01, ramp, 8 resultant x 32 y x 256 x" in text


def test_calibrate_builds_the_whole_graph_without_computing(batch):
    tree = romanxr.open_exposures(batch.members)
    with raise_if_dask_computes():
        cal = tree.roman.calibrate()
    assert all(cal[p]["data"].dims == ("y", "x") for p in (n.path for n in cal.leaves))
    assert "image" in repr(cal.roman)


def test_steps_are_forwarded_to_every_node(batch):
    tree = romanxr.open_exposures(batch.members)
    with raise_if_dask_computes():
        out = tree.roman.dq_init().roman.saturation()
    for path in batch.members:
        alone = romanxr.open_uncal(path).roman.dq_init().roman.saturation()
        node = out[_node(path.name)].to_dataset()
        np.testing.assert_array_equal(node["groupdq"].values, alone["groupdq"].values)


def test_calibrated_tree_equals_each_file_alone_in_asdf_and_zarr(batch, solo, tmp_path):
    cal = romanxr.open_exposures(batch.members).roman.calibrate()
    report = cal.roman.to_asdf(tmp_path)
    assert report.ok and len(report.written) == len(batch.members)
    for path in batch.members:
        name = path.name.replace("_uncal", "_cal")
        assert report.written[_node(path.name)] == tmp_path / name
        back = romanxr.open_cal(tmp_path / name, chunks=None)
        expected = solo[path.name]
        np.testing.assert_array_equal(back["data"].values, expected["data"].values)
        np.testing.assert_array_equal(back["dq"].values, expected["dq"].values)
        # each cal has its _wcs.asdf beside it, as romancal writes them
        with dm.open(tmp_path / name.replace("_cal", "_wcs")) as wcs:
            assert type(wcs) is dm.WfiWcsModel
            x, y = np.array([0.0, 7.0, 20.0]), np.array([0.0, 3.0, 11.0])
            sky = back.attrs["meta"]["wcs"](x, y)
            for a, b in zip(wcs.wcs_l2(x, y), sky, strict=True):
                np.testing.assert_array_equal(a, b)
    store = cal.roman.to_zarr(tmp_path / "exposures.zarr")
    assert (store / "zarr.json").is_file()
    back_tree = xr.open_datatree(store, engine="zarr")
    for path in batch.members:
        node = back_tree[_node(path.name)]
        for name in VARIABLES:
            np.testing.assert_array_equal(
                node[name].values, solo[path.name][name].values, err_msg=name
            )
        one = romanxr.open_zarr(store / _node(path.name).strip("/"))
        assert one.attrs["exposure"] == _node(path.name).split("/")[1]


def test_the_zarr_store_is_not_written_when_a_node_cannot_be(batch, tmp_path):
    cal = romanxr.open_exposures(batch.members).roman.calibrate()
    # a node the Zarr writer refuses: attrs ASDF cannot serialise
    bad = cal[_node(batch.members[1].name)].to_dataset().assign_attrs(bad=object())
    cal[_node(batch.members[1].name)] = xr.DataTree(bad)
    with pytest.raises(BatchError):
        cal.roman.to_zarr(tmp_path / "exposures.zarr")
    assert not (tmp_path / "exposures.zarr").exists()
    assert not [p for p in tmp_path.iterdir() if "romanxr-tmp" in p.name]


@pytest.fixture
def six_with_one_truncated(batch, tmp_path):
    """Copies of the 6 members (3 exposures x 2 detectors), the third one truncated."""
    data = tmp_path / "data"
    data.mkdir()
    for path in batch.members:
        shutil.copy(path, data / path.name)
    copies = sorted(data.iterdir())
    assert len(copies) == 6
    bad = copies[2]
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    return copies, bad


def test_a_truncated_member_stops_the_run_before_any_compute(six_with_one_truncated, tmp_path):
    members, bad = six_with_one_truncated
    with raise_if_dask_computes(), pytest.raises(BatchError) as info:
        romanxr.open_exposures(members)
    assert list(info.value.problems) == [str(bad)]
    assert "truncated" in str(info.value) and bad.name in str(info.value)


def test_continue_on_error_writes_the_good_members(six_with_one_truncated, solo, tmp_path):
    members, bad = six_with_one_truncated
    out = tmp_path / "out"
    out.mkdir()
    tree = romanxr.open_exposures(members, on_error="continue")
    report = tree.roman.calibrate(on_error="continue").roman.to_asdf(out, on_error="continue")
    assert list(report.failed) == [str(bad)] and "truncated" in report.failed[str(bad)]
    # each good member's cal and its _wcs.asdf, nothing of the bad one
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name.replace("_uncal", suffix) for p in members if p != bad for suffix in ("_cal", "_wcs")
    )
    for path in members:
        if path != bad:
            back = romanxr.open_cal(out / path.name.replace("_uncal", "_cal"), chunks=None)
            np.testing.assert_array_equal(back["data"].values, solo[path.name]["data"].values)
    assert "1 failed" in str(report)


def test_calibrate_refuses_one_output_for_the_whole_tree(batch, tmp_path):
    from romanxr.errors import ConfigError

    tree = romanxr.open_exposures(batch.members)
    with pytest.raises(ConfigError, match="to_asdf"):
        tree.roman.calibrate(output=tmp_path / "x_cal.asdf")


def test_a_member_without_references_is_listed_before_any_compute(batch, tmp_path):
    from romanxr.testing import exposure_file_name, simulate_exposure

    # WFI03 has no references in the batch's CRDS cache
    stray = simulate_exposure((32, 256), seed=5, detector_name="WFI03", path=tmp_path)
    assert stray.path.name == exposure_file_name("WFI03")
    tree = romanxr.open_exposures([*batch.members, stray.path])
    with raise_if_dask_computes(), pytest.raises(BatchError) as info:
        tree.roman.calibrate()
    assert list(info.value.problems) == [str(stray.path)]
    with raise_if_dask_computes():
        cal = tree.roman.calibrate(on_error="continue")
    assert len(cal.leaves) == len(batch.members)
    assert list(cal.roman.failures) == [str(stray.path)]
    assert f"failed {stray.path}" in repr(cal.roman)
