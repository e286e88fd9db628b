"""The tree writers and the batch command write each node's ``_cat.parquet`` and
``_segm.asdf`` beside its cal when source_catalog ran on it (by default, since issue 15)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import roman_datamodels.datamodels as dm

import romanxr
from romanxr import cli
from tests.exposures._batch import make_batch


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    return make_batch(tmp_path_factory.mktemp("tree_catalog"), catalog=True)


def _products(folder, members):
    stems = [m.name.removesuffix("_uncal.asdf") for m in members]
    return {
        s: [folder / f"{s}_{k}" for k in ("cal.asdf", "cat.parquet", "segm.asdf")] for s in stems
    }


def _check(folder, members):
    for cal, cat, segm in _products(folder, members).values():
        with dm.open(cal) as model:
            assert model.meta.cal_step.source_catalog == "COMPLETE"
            assert model.meta.cal_step.tweakreg == "SKIPPED"
            shape = model.data.shape
        table = pq.read_table(cat)
        assert table.num_rows > 0 and "x_centroid" in table.column_names
        with dm.open(segm) as model:
            labels = np.asarray(model.data)
            assert labels.shape == shape
            assert len(np.unique(labels[labels > 0])) == table.num_rows  # a label per row
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert not leftovers  # the temporary names were renamed away


@pytest.mark.parametrize("on_error", ["raise", "continue"])
def test_to_asdf_writes_each_nodes_catalog_products(batch, tmp_path, on_error):
    tree = romanxr.open_exposures(batch.members)
    report = tree.roman.calibrate().roman.to_asdf(tmp_path, on_error=on_error)
    assert report.ok and len(report.written) == len(batch.members)
    _check(tmp_path, batch.members)


def test_existing_catalog_products_are_refused_before_any_work(batch, tmp_path):
    from romanxr.errors import OutputError

    first = batch.members[0].name.removesuffix("_uncal.asdf")
    (tmp_path / f"{first}_segm.asdf").write_text("keep me")
    tree = romanxr.open_exposures(batch.members)
    with pytest.raises(OutputError):
        tree.roman.calibrate().roman.to_asdf(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{first}_segm.asdf"]


def test_the_batch_command_writes_each_members_catalog_products(batch, tmp_path):
    args = ["calibrate", *map(str, batch.members), "--output-dir", str(tmp_path)]
    assert cli.main(args) == 0
    _check(tmp_path, batch.members)
