"""romancal associations: members relative to the association's folder, romancal's output
names, and typed errors for unknown member types and missing files before anything runs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import romanxr
from romanxr.errors import AssociationError
from tests.exposures._batch import make_batch
from tests.unit.detector_helpers import raise_if_dask_computes


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    return make_batch(tmp_path_factory.mktemp("asn"))


def _romancal_association(folder, members, **kwargs):
    """An association written by romancal's own asn_from_list, members relative to it."""
    from romancal.associations.asn_from_list import asn_from_list

    items = [os.path.relpath(m, folder) for m in members]
    asn = asn_from_list(items, product_name="r0000101001001001001_0001", **kwargs)
    _, text = asn.dump()
    path = folder / "r0000101001001001001_0001_asn.json"
    path.write_text(text)
    return path


def test_an_association_from_romancal_runs_with_members_elsewhere(batch, tmp_path):
    pytest.importorskip("romancal")
    asn = _romancal_association(tmp_path, batch.members)
    assert (batch.folder / "data") != tmp_path  # the members live in another folder
    with raise_if_dask_computes():
        tree = romanxr.open_exposures(asn)
    assert sorted(n.path for n in tree.leaves) == [
        "/r0000101001001001001_0001/wfi01",
        "/r0000101001001001001_0001/wfi02",
    ]
    report = tree.roman.calibrate().roman.to_asdf(tmp_path)
    names = sorted(p.name for p in report.written.values())
    # romancal names each output from its member's meta.filename with the cal suffix
    assert names == sorted(m.name.replace("_uncal", "_cal") for m in batch.members)
    alone = romanxr.calibrate(batch.members[0]).compute()
    back = romanxr.open_cal(tmp_path / names[0], chunks=None)
    np.testing.assert_array_equal(back["data"].values, alone["data"].values)


def _write(tmp_path, members):
    path = tmp_path / "by_hand_asn.json"
    product = {"name": "r0000101001001001001_0001", "members": members}
    path.write_text(json.dumps({"asn_type": "image", "products": [product]}))
    return path


def test_a_missing_member_is_named_with_the_association(batch, tmp_path):
    rel = os.path.relpath(batch.members[0], tmp_path)
    asn = _write(
        tmp_path,
        [
            {"expname": rel, "exptype": "science"},
            {"expname": "gone_uncal.asdf", "exptype": "science"},
        ],
    )
    with raise_if_dask_computes(), pytest.raises(AssociationError) as info:
        romanxr.open_exposures(asn)
    assert str(asn) in str(info.value) and "gone_uncal.asdf" in str(info.value)


def test_an_unknown_member_type_is_refused(batch, tmp_path):
    rel = os.path.relpath(batch.members[0], tmp_path)
    asn = _write(tmp_path, [{"expname": rel, "exptype": "flatfield"}])
    with pytest.raises(AssociationError, match=r"exptype 'flatfield'") as info:
        romanxr.open_exposures(asn)
    assert rel in str(info.value) and str(asn) in str(info.value)


def test_a_json_that_is_not_an_association_is_refused(tmp_path):
    path = tmp_path / "x_asn.json"
    path.write_text("{}")
    with pytest.raises(AssociationError, match="no 'products'"):
        romanxr.open_exposures(path)
